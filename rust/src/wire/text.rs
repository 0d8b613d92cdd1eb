//! JSON string helpers for the delta scanner: finding the end of a string,
//! validating escapes and decoding them.
//!
//! Ids and keys in Realtime frames are short ASCII strings that almost never
//! contain escapes, so the fast path is "find the closing quote and check the
//! span"; decoding escapes (`\uXXXX`, surrogate pairs, `\/`) is the rare path.

use memchr::memchr;

/// The raw contents of a JSON string (between the quotes), still escaped if
/// `escaped` is set.
#[derive(Clone, Copy, Debug)]
pub struct Text<'a> {
    pub raw: &'a [u8],
    pub escaped: bool,
}

impl Text<'_> {
    /// Decode to an owned string (one exact-size allocation when unescaped).
    pub fn to_owned_string(self) -> Result<String, ()> {
        if self.escaped {
            let mut s = String::new();
            self.decode_into(&mut s)?;
            Ok(s)
        } else {
            std::str::from_utf8(self.raw)
                .map(str::to_owned)
                .map_err(|_| ())
        }
    }

    /// Decode into `out` (cleared first). Fails on lone surrogates, which a Rust
    /// `String` cannot hold.
    pub fn decode_into(&self, out: &mut String) -> Result<(), ()> {
        out.clear();
        if !self.escaped {
            out.push_str(std::str::from_utf8(self.raw).map_err(|_| ())?);
            return Ok(());
        }
        let mut bytes = std::mem::take(out).into_bytes();
        unescape(self.raw, &mut bytes)?;
        *out = String::from_utf8(bytes).map_err(|_| ())?;
        Ok(())
    }
}

/// Offset of the first `"`, `\\` or control character in `s` (or `s.len()`),
/// and whether a non-ASCII byte may occur before it. Works a word (8 bytes) at
/// a time with the classic "has a byte less than n" bit tricks: ids and keys
/// are 5-30 bytes, where this beats both a byte loop and `memchr`'s setup.
pub(super) fn find_special(s: &[u8]) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut high = 0u64;
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        // A byte of `x` is flagged if it is below n (for x = w ^ c: equal to c);
        // the lowest flagged byte is always a true match.
        let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
        let hit = below(quote, 1) | below(slash, 1) | below(w, 0x20);
        high |= w & HIGH;
        if hit != 0 {
            return (at + (hit.trailing_zeros() / 8) as usize, high != 0);
        }
        at += 8;
    }
    for &c in words.remainder() {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return (at, high != 0);
        }
        high |= u64::from(c & 0x80);
        at += 1;
    }
    (at, high != 0)
}

/// Length of the escape sequence at the start of `s` (which begins with `\`),
/// or `None` if it is not a valid JSON escape.
pub(super) fn escape_len(s: &[u8]) -> Option<usize> {
    match s.get(1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => s.get(2..6)?.iter().all(u8::is_ascii_hexdigit).then_some(6),
        _ => None,
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    let mut v = 0;
    for &d in digits {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Decode the JSON string contents `raw` into `out` (appended). Validates
/// everything itself; lone surrogates are an error.
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    let mut i = 0;
    while let Some(rel) = memchr(b'\\', raw.get(i..).unwrap_or_default()) {
        let plain = raw.get(i..i + rel).ok_or(())?;
        if plain.iter().any(|&c| c < 0x20) {
            return Err(());
        }
        out.extend_from_slice(plain);
        i += rel;
        let esc = raw.get(i..).unwrap_or_default();
        let len = escape_len(esc).ok_or(())?;
        let simple = match esc.get(1) {
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'/') => Some(b'/'),
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0c),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            _ => None,
        };
        i += len;
        let ch = if let Some(c) = simple {
            char::from(c)
        } else {
            let unit = hex4(esc.get(2..).unwrap_or_default()).ok_or(())?;
            match unit {
                0xD800..=0xDBFF => {
                    // A high surrogate must be followed by `\uDC00`..`\uDFFF`.
                    let low = raw.get(i..i + 6).ok_or(())?;
                    if !low.starts_with(b"\\u") {
                        return Err(());
                    }
                    let lo = hex4(low.get(2..).unwrap_or_default()).ok_or(())?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return Err(());
                    }
                    i += 6;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (lo - 0xDC00)).ok_or(())?
                }
                _ => char::from_u32(unit).ok_or(())?,
            }
        };
        let mut utf8 = [0; 4];
        out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
    }
    let tail = raw.get(i..).unwrap_or_default();
    if tail.iter().any(|&c| c < 0x20) {
        return Err(());
    }
    out.extend_from_slice(tail);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::find_special;

    /// The word-at-a-time search agrees with the obvious byte loop.
    #[test]
    fn find_special_matches_byte_loop() {
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xe9, b'0', 0x00, b'!', b'#',
        ];
        let mut x = 12345u32;
        for len in 0..40 {
            for _ in 0..400 {
                let s: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        // Mostly plain letters so matches land at every offset.
                        let r = x as usize % 64;
                        *alphabet.get(r).unwrap_or(&b'q')
                    })
                    .collect();
                let want = s
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                    .unwrap_or(s.len());
                let (got, high) = find_special(&s);
                assert_eq!(got, want, "{s:?}");
                if s[..want].iter().any(|&c| c >= 0x80) {
                    assert!(high, "{s:?}");
                }
            }
        }
    }
}
