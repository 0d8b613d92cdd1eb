//! A small, validating JSON scanner specialised for Realtime audio delta frames.
//!
//! A delta frame is a flat JSON object of a handful of short strings and integers
//! plus one large base64 string. Building a generic JSON tree (or a Python dict)
//! for it means copying the base64 text once more and allocating a dozen objects,
//! all to read six fields. Instead we walk the top-level object once, note where
//! the interesting members live in the frame (`Text` spans, no copies), and
//! validate-and-skip everything else, including nested objects and arrays.
//!
//! Compatibility target is Python's `json.loads`: the same grammar (including its
//! `NaN`/`Infinity` extension), strict strings (no raw control characters), and
//! "last duplicate key wins". Whether a frame is an audio delta is only known at
//! the end (members come in any order), so the scan records problems instead of
//! failing early and the caller decides between `None` and an error.
//!
//! The base64 payload is the one member we do not validate character by
//! character here: we find its closing quote with `memchr` and leave validation
//! to the base64 decoder, which rejects every byte outside the alphabet anyway.

use memchr::memchr;

use super::text::{escape_len, find_special, Text};
use super::WireError;

/// Which of the two audio delta event names a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaKind {
    /// `response.output_audio.delta` (Realtime GA).
    Ga,
    /// `response.audio.delta` (Realtime beta).
    Beta,
}

impl DeltaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaKind::Ga => "response.output_audio.delta",
            DeltaKind::Beta => "response.audio.delta",
        }
    }

    fn from_bytes(name: &[u8]) -> Option<Self> {
        match name {
            b"response.output_audio.delta" => Some(DeltaKind::Ga),
            b"response.audio.delta" => Some(DeltaKind::Beta),
            _ => None,
        }
    }
}

/// What a member of interest held.
#[derive(Clone, Copy, Debug)]
enum Slot<T> {
    Missing,
    Null,
    Found(T),
    /// Present with the wrong JSON type (named for the error message).
    Wrong(&'static str),
}

/// A syntactically valid audio delta frame, members located but not decoded.
#[derive(Debug)]
pub struct RawDelta<'a> {
    pub kind: DeltaKind,
    pub event_id: Option<Text<'a>>,
    pub item_id: Text<'a>,
    pub response_id: Text<'a>,
    pub output_index: i64,
    pub content_index: i64,
    /// The base64 text as it appears in the frame (may contain `\/` escapes).
    pub delta: &'a [u8],
}

/// Scan `frame`: `Ok(None)` when it is not an audio delta (any other type, or not
/// JSON at all), an error when it claims to be one but is malformed.
pub fn scan(frame: &[u8]) -> Result<Option<RawDelta<'_>>, WireError> {
    let mut members = Members::default();
    let mut cur = Cursor { b: frame, i: 0 };
    let parsed = cur.top_object(&mut members);
    let Some(kind) = members.kind else {
        return Ok(None);
    };
    if let Err(Syntax(offset)) = parsed {
        return Err(WireError::Json { offset });
    }
    members.finish(kind).map(Some)
}

#[derive(Default)]
struct Members<'a> {
    kind: Option<DeltaKind>,
    event_id: Option<Slot<Text<'a>>>,
    item_id: Option<Slot<Text<'a>>>,
    response_id: Option<Slot<Text<'a>>>,
    output_index: Option<Slot<&'a [u8]>>,
    content_index: Option<Slot<&'a [u8]>>,
    delta: Option<Slot<&'a [u8]>>,
}

impl<'a> Members<'a> {
    fn finish(self, kind: DeltaKind) -> Result<RawDelta<'a>, WireError> {
        let event_id = match self.event_id.unwrap_or(Slot::Missing) {
            Slot::Missing | Slot::Null => None,
            Slot::Found(t) => Some(t),
            Slot::Wrong(found) => return Err(wrong("event_id", "a string", found)),
        };
        Ok(RawDelta {
            kind,
            event_id,
            item_id: required(self.item_id, "item_id", "a string")?,
            response_id: required(self.response_id, "response_id", "a string")?,
            output_index: int_field(self.output_index, "output_index")?,
            content_index: int_field(self.content_index, "content_index")?,
            delta: required(self.delta, "delta", "a base64 string")?,
        })
    }
}

fn wrong(field: &'static str, expected: &'static str, found: &'static str) -> WireError {
    WireError::FieldType {
        field,
        expected,
        found,
    }
}

fn required<T>(
    slot: Option<Slot<T>>,
    field: &'static str,
    expected: &'static str,
) -> Result<T, WireError> {
    match slot.unwrap_or(Slot::Missing) {
        Slot::Found(v) => Ok(v),
        Slot::Missing => Err(WireError::MissingField(field)),
        Slot::Null => Err(wrong(field, expected, "null")),
        Slot::Wrong(found) => Err(wrong(field, expected, found)),
    }
}

/// Parse an integer member; fractions, exponents and `NaN` are the wrong type.
fn int_field(slot: Option<Slot<&[u8]>>, field: &'static str) -> Result<i64, WireError> {
    let raw = required(slot, field, "an integer")?;
    let (neg, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(wrong(field, "an integer", "a non-integer number"));
    }
    let mut value: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or(WireError::IntRange(field))?;
    }
    Ok(value)
}

/// The frame is not well-formed JSON; the offset of the offending byte.
#[derive(Debug)]
struct Syntax(usize);

/// Members we look for, by key.
enum Key {
    Type,
    Delta,
    EventId,
    ItemId,
    ResponseId,
    OutputIndex,
    ContentIndex,
    Other,
}

impl Key {
    fn of(text: Text<'_>) -> Key {
        if !text.escaped {
            return Key::from_bytes(text.raw);
        }
        // Escaped keys (`"\u0074ype"`) are legal JSON and rare; decode them.
        let mut s = String::new();
        match text.decode_into(&mut s) {
            Ok(()) => Key::from_bytes(s.as_bytes()),
            Err(()) => Key::Other,
        }
    }

    fn from_bytes(key: &[u8]) -> Key {
        match key {
            b"type" => Key::Type,
            b"delta" => Key::Delta,
            b"event_id" => Key::EventId,
            b"item_id" => Key::ItemId,
            b"response_id" => Key::ResponseId,
            b"output_index" => Key::OutputIndex,
            b"content_index" => Key::ContentIndex,
            _ => Key::Other,
        }
    }
}

/// Nesting deeper than this inside skipped values is rejected (Python's own
/// decoder gives up with `RecursionError` at roughly twice this depth).
const MAX_DEPTH: usize = 512;

/// One bit per open container (1 = object, 0 = array), no heap allocation.
struct Nesting {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl Nesting {
    fn push(&mut self, object: bool, at: usize) -> Result<(), Syntax> {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        let slot = self.bits.get_mut(word).ok_or(Syntax(at))?;
        if object {
            *slot |= 1 << bit;
        } else {
            *slot &= !(1 << bit);
        }
        self.depth += 1;
        Ok(())
    }

    /// Whether the innermost open container is an object.
    fn top_is_object(&self) -> bool {
        let d = self.depth.wrapping_sub(1);
        self.bits
            .get(d / 64)
            .is_some_and(|w| w & (1 << (d % 64)) != 0)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Syntax> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(Syntax(self.i))
        }
    }

    fn top_object(&mut self, m: &mut Members<'a>) -> Result<(), Syntax> {
        self.ws();
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                self.expect(b'"')?;
                let key = Key::of(self.string()?);
                self.ws();
                self.expect(b':')?;
                self.ws();
                self.member(key, m)?;
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(Syntax(self.i)),
                }
            }
        }
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(Syntax(self.i))
        }
    }

    /// Read one member value, keeping it if `key` is one we want.
    fn member(&mut self, key: Key, m: &mut Members<'a>) -> Result<(), Syntax> {
        let next = self.peek();
        match key {
            Key::Other => self.value(),
            Key::Type => {
                m.kind = None;
                if next == Some(b'"') {
                    self.i += 1;
                    let text = self.string()?;
                    m.kind = if text.escaped {
                        let mut s = String::new();
                        text.decode_into(&mut s)
                            .ok()
                            .and_then(|()| DeltaKind::from_bytes(s.as_bytes()))
                    } else {
                        DeltaKind::from_bytes(text.raw)
                    };
                    Ok(())
                } else {
                    self.value()
                }
            }
            Key::Delta => {
                m.delta = Some(if next == Some(b'"') {
                    self.i += 1;
                    Slot::Found(self.base64_string()?)
                } else {
                    self.other_slot()?
                });
                Ok(())
            }
            Key::EventId | Key::ItemId | Key::ResponseId => {
                let slot = if next == Some(b'"') {
                    self.i += 1;
                    Slot::Found(self.string()?)
                } else {
                    self.other_slot()?
                };
                match key {
                    Key::EventId => m.event_id = Some(slot),
                    Key::ItemId => m.item_id = Some(slot),
                    _ => m.response_id = Some(slot),
                }
                Ok(())
            }
            Key::OutputIndex | Key::ContentIndex => {
                let neg_inf = self
                    .b
                    .get(self.i..)
                    .is_some_and(|r| r.starts_with(b"-Infinity"));
                let slot = match next {
                    Some(b'-' | b'0'..=b'9') if !neg_inf => {
                        let start = self.i;
                        self.number()?;
                        Slot::Found(self.b.get(start..self.i).unwrap_or_default())
                    }
                    _ => self.other_slot()?,
                };
                if matches!(key, Key::OutputIndex) {
                    m.output_index = Some(slot);
                } else {
                    m.content_index = Some(slot);
                }
                Ok(())
            }
        }
    }

    /// Skip a value of a type the caller did not want, naming that type.
    fn other_slot<T>(&mut self) -> Result<Slot<T>, Syntax> {
        let slot = match self.peek() {
            Some(b'n') if self.b.get(self.i..self.i + 4) == Some(b"null") => Slot::Null,
            Some(b'"') => Slot::Wrong("a string"),
            Some(b'{') => Slot::Wrong("an object"),
            Some(b'[') => Slot::Wrong("an array"),
            Some(b't' | b'f') => Slot::Wrong("a boolean"),
            _ => Slot::Wrong("a number"),
        };
        self.value()?;
        Ok(slot)
    }

    /// Validate and skip one JSON value of any type. Iterative, so hostile
    /// nesting cannot overflow the stack.
    fn value(&mut self) -> Result<(), Syntax> {
        let mut nest = Nesting {
            bits: [0; MAX_DEPTH / 64],
            depth: 0,
        };
        'value: loop {
            self.ws();
            match self.peek() {
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        nest.push(true, self.i)?;
                        self.key()?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        nest.push(false, self.i)?;
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.i += 1;
                    self.string()?;
                }
                _ => self.scalar()?,
            }
            // A value ended: close containers or move to the next element.
            loop {
                if nest.depth == 0 {
                    return Ok(());
                }
                self.ws();
                let object = nest.top_is_object();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => nest.depth -= 1,
                    Some(b']') if !object => nest.depth -= 1,
                    _ => return Err(Syntax(self.i)),
                }
                self.i += 1;
            }
        }
    }

    /// `"key" :` inside a skipped object.
    fn key(&mut self) -> Result<(), Syntax> {
        self.expect(b'"')?;
        self.string()?;
        self.ws();
        self.expect(b':')
    }

    /// Numbers and the literals Python's `json` accepts.
    fn scalar(&mut self) -> Result<(), Syntax> {
        const LITERALS: [&[u8]; 6] = [
            b"true",
            b"false",
            b"null",
            b"NaN",
            b"Infinity",
            b"-Infinity",
        ];
        let rest = self.b.get(self.i..).unwrap_or_default();
        if let Some(lit) = LITERALS.iter().find(|lit| rest.starts_with(lit)) {
            self.i += lit.len();
            return Ok(());
        }
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Syntax(self.i)),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Syntax> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Syntax(self.i)),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Syntax(self.i));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Syntax(self.i));
            }
        }
        Ok(())
    }

    /// A string whose opening quote was consumed: validated (escapes, control
    /// characters, UTF-8) and returned still escaped.
    fn string(&mut self) -> Result<Text<'a>, Syntax> {
        let start = self.i;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            let rest = self.b.get(self.i..).unwrap_or_default();
            let (off, high) = find_special(rest);
            ascii &= !high;
            self.i += off;
            match rest.get(off) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    let len = escape_len(rest.get(off..).unwrap_or_default());
                    self.i += len.ok_or(Syntax(self.i))?;
                }
                _ => return Err(Syntax(self.i)), // control character or end of input
            }
        }
        let raw = self.b.get(start..self.i).unwrap_or_default();
        if !ascii && std::str::from_utf8(raw).is_err() {
            return Err(Syntax(start));
        }
        self.i += 1;
        Ok(Text { raw, escaped })
    }

    /// The base64 payload: find the closing quote (one not preceded by an odd
    /// run of backslashes) with `memchr`; the decoder validates the contents.
    fn base64_string(&mut self) -> Result<&'a [u8], Syntax> {
        let start = self.i;
        let mut from = start;
        loop {
            let rest = self.b.get(from..).unwrap_or_default();
            let quote = from + memchr(b'"', rest).ok_or(Syntax(self.b.len()))?;
            let before = self.b.get(start..quote).unwrap_or_default();
            let backslashes = before.iter().rev().take_while(|&&c| c == b'\\').count();
            if backslashes % 2 == 0 {
                self.i = quote + 1;
                return Ok(before);
            }
            from = quote + 1;
        }
    }
}
