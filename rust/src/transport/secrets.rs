//! Keeping credentials out of error text: one rule for the transport (a refused
//! upgrade's body, every error message, close reasons) and, through
//! `_fastvoice.scrub_secrets`, for the Python HTTP providers.
//!
//! Masked: every occurrence of a known secret (the credential header values a
//! connection sent), the token after `Bearer`, anything shaped like an OpenAI
//! key (`sk-` and 12+ key characters) and the key of an
//! `openai-insecure-api-key.` subprotocol. Each masked run is replaced by its
//! redacted form, as `fastvoice.realtime.auth.redact` prints keys (`sk-…wxyz`,
//! `***` under 12 characters), so scrubbing twice changes nothing.

use memchr::memmem;
use pyo3::prelude::*;

/// Characters after `sk-` for a run to count as a key.
const MIN_SK_TAIL: usize = 12;
/// Characters of a `Bearer` token for it to count as a credential.
const MIN_BEARER: usize = 8;
const SUBPROTOCOL_KEY: &[u8] = b"openai-insecure-api-key.";

/// The printable stand-in for a key; the same output as the Python `redact`.
pub fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.is_empty() {
        return "<none>".into();
    }
    if chars.len() < 12 {
        return "***".into();
    }
    let prefix = ["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"]
        .into_iter()
        .find(|p| key.starts_with(p))
        .unwrap_or("");
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 6750 `b64token` characters.
fn token_byte(b: u8) -> bool {
    key_byte(b) || matches!(b, b'.' | b'~' | b'+' | b'/' | b'=')
}

fn run_end(text: &[u8], from: usize, ok: fn(u8) -> bool) -> usize {
    from + text[from..].iter().take_while(|&&b| ok(b)).count()
}

/// Mark the byte ranges the rule masks.
fn mark(text: &[u8], secrets: &[&str], mask: &mut [bool]) {
    for secret in secrets
        .iter()
        .map(|s| s.as_bytes())
        .filter(|s| !s.is_empty())
    {
        for at in memmem::find_iter(text, secret) {
            mask[at..at + secret.len()].fill(true);
        }
    }
    let lower = text.to_ascii_lowercase();
    for at in memmem::find_iter(&lower, b"bearer") {
        if at > 0 && lower[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let start = at
            + 6
            + lower[at + 6..]
                .iter()
                .take_while(|&&b| b == b' ' || b == b'\t')
                .count();
        let end = run_end(text, start, token_byte);
        // A token followed by `…` is already redacted (`Bearer sk-proj-…0123`).
        let redacted = text[end..].starts_with("…".as_bytes());
        if start > at + 6 && end - start >= MIN_BEARER && !redacted {
            mask[start..end].fill(true);
        }
    }
    for at in memmem::find_iter(text, b"sk-") {
        if at > 0 && key_byte(text[at - 1]) {
            continue;
        }
        let end = run_end(text, at + 3, key_byte);
        if end - (at + 3) >= MIN_SK_TAIL {
            mask[at..end].fill(true);
        }
    }
    for at in memmem::find_iter(&lower, SUBPROTOCOL_KEY) {
        let start = at + SUBPROTOCOL_KEY.len();
        let end = run_end(text, start, token_byte);
        mask[start..end].fill(true);
    }
}

/// `text` with every secret the rule finds replaced by its redacted form.
pub fn scrub_bytes(text: &[u8], secrets: &[&str]) -> Vec<u8> {
    let mut mask = vec![false; text.len()];
    mark(text, secrets, &mut mask);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if !mask[i] {
            out.push(text[i]);
            i += 1;
            continue;
        }
        let end = i + mask[i..].iter().take_while(|&&m| m).count();
        out.extend_from_slice(redact(&String::from_utf8_lossy(&text[i..end])).as_bytes());
        i = end;
    }
    out
}

pub fn scrub(text: &str, secrets: &[&str]) -> String {
    if text.is_empty() {
        return String::new();
    }
    String::from_utf8_lossy(&scrub_bytes(text.as_bytes(), secrets)).into_owned()
}

/// Whether a header's value is a credential (its value is then a known secret).
fn credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "password", "cookie"]
        .iter()
        .any(|w| name.contains(w))
}

/// The secrets in a request's headers: each credential value, or the part
/// after its scheme (`Bearer X` gives `X`).
pub fn header_secrets(headers: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if !credential_header(name) {
            continue;
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        // `Bearer X` masks only `X`, so the echo still reads `Bearer sk-…wxyz`.
        match value.split_once(char::is_whitespace) {
            Some((_, rest)) if !rest.trim().is_empty() => out.push(rest.trim().to_owned()),
            _ => out.push(value.to_owned()),
        }
    }
    out
}

/// Mask credentials in `text`: each of `secrets` (exact strings, e.g. the key
/// a request used), `Bearer` tokens, `sk-…` keys and
/// `openai-insecure-api-key.` subprotocol keys, each replaced by its redacted
/// form (`sk-…wxyz`, `***` when short).
#[pyfunction]
#[pyo3(signature = (text, secrets = Vec::new()))]
pub fn scrub_secrets(text: &str, secrets: Vec<String>) -> String {
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    scrub(text, &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";

    #[test]
    fn redact_matches_python() {
        assert_eq!(redact(KEY), "sk-proj-…0123");
        assert_eq!(redact("short"), "***");
        assert_eq!(redact("plain-long-token-9876"), "…9876");
    }

    #[test]
    fn masks_known_secrets_and_shapes() {
        let text = format!("authorization: Bearer {KEY}\r\nx: my-own-secret-value\r\n");
        let out = scrub(&text, &["my-own-secret-value"]);
        assert!(
            !out.contains(KEY) && !out.contains("my-own-secret-value"),
            "{out}"
        );
        assert!(out.contains("Bearer sk-proj-…0123"), "{out}");
        let out = scrub("auth: Bearer abcdefgh123456 and sk-abcdefghijklmnop", &[]);
        assert_eq!(out, "auth: Bearer …3456 and sk-…mnop");
        let out = scrub("openai-insecure-api-key.k1k2k3, realtime", &[]);
        assert_eq!(out, "openai-insecure-api-key.***, realtime");
    }

    #[test]
    fn leaves_ordinary_text_and_is_idempotent() {
        for text in [
            "bearer of bad news",
            "ask-me sk-short",
            "Bearer sk-…0123",
            "Bearer",
        ] {
            assert_eq!(scrub(text, &[]), text);
        }
        let once = scrub(&format!("Bearer {KEY}"), &[KEY]);
        assert_eq!(scrub(&once, &[KEY]), once);
    }

    #[test]
    fn header_secrets_takes_credentials_only() {
        let headers = vec![
            ("Authorization".to_string(), "Bearer abc".to_string()),
            ("api-key".to_string(), "k".to_string()),
            ("OpenAI-Beta".to_string(), "realtime=v1".to_string()),
        ];
        assert_eq!(header_secrets(&headers), ["abc", "k"]);
    }
}
