//! `application/x-www-form-urlencoded` query strings.
//!
//! Decoding borrows from the request whenever a component has no `%` and no `+`, so the
//! common request (`name=i`) costs no allocation. The whole query is validated, not just
//! the keys asked for: a malformed query is the client's bug and deserves a `400`, even
//! in a parameter we would otherwise ignore.

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryError::BadEscape => "invalid percent-escape in query",
            QueryError::NotUtf8 => "query does not decode to UTF-8",
        })
    }
}

/// Finds the first value of each of `keys`; unknown keys are ignored, later duplicates too.
pub fn find<'a, const N: usize>(
    query: &'a str,
    keys: [&str; N],
) -> Result<[Option<Cow<'a, str>>; N], QueryError> {
    let mut found: [Option<Cow<'a, str>>; N] = std::array::from_fn(|_| None);
    // Most queries (`name=i`) escape nothing: then every component stands as it is, and
    // one scan of the whole query replaces a decoding pass per component.
    let plain = !query.bytes().any(|b| b == b'%' || b == b'+');
    let mut rest = query;
    while !rest.is_empty() {
        let (pair, tail) = match rest.bytes().position(|b| b == b'&') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = tail;
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.bytes().position(|b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        let (k, v) = if plain {
            (Cow::Borrowed(k), Cow::Borrowed(v))
        } else {
            (decode(k)?, decode(v)?)
        };
        if let Some(i) = keys.iter().position(|key| *key == k) {
            if found[i].is_none() {
                found[i] = Some(v);
            }
        }
    }
    Ok(found)
}

/// Decodes one component: `+` is a space, `%XX` a byte.
pub fn decode(s: &str) -> Result<Cow<'_, str>, QueryError> {
    let raw = s.as_bytes();
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex(b));
                let lo = raw.get(i + 2).and_then(|&b| hex(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(QueryError::BadEscape),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| QueryError::NotUtf8)
}

/// The inverse of [`decode`]: escapes everything but unreserved characters, space as `+`.
/// For tests and fuzzing only: the server never encodes.
#[cfg(any(test, feature = "test-support"))]
pub fn encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(q: &str, key: &str) -> Result<Option<String>, QueryError> {
        find(q, [key]).map(|[v]| v.map(Cow::into_owned))
    }

    #[test]
    fn plain_values_borrow() {
        let [name, val] = find("name=i&val=5", ["name", "val"]).unwrap();
        assert!(matches!(name, Some(Cow::Borrowed("i"))));
        assert!(matches!(val, Some(Cow::Borrowed("5"))));
    }

    #[test]
    fn plus_and_percent() {
        assert_eq!(one("name=a+b", "name").unwrap().as_deref(), Some("a b"));
        assert_eq!(one("name=a%20b", "name").unwrap().as_deref(), Some("a b"));
        assert_eq!(one("name=%2B", "name").unwrap().as_deref(), Some("+"));
        assert_eq!(one("name=%e2%82%AC", "name").unwrap().as_deref(), Some("€"));
        assert_eq!(one("name=100%25", "name").unwrap().as_deref(), Some("100%"));
    }

    #[test]
    fn escaped_keys_match() {
        assert_eq!(one("na%6De=x", "name").unwrap().as_deref(), Some("x"));
    }

    #[test]
    fn bad_escapes() {
        for q in ["name=%", "name=%2", "name=%zz", "name=%2g", "name=a%"] {
            assert_eq!(one(q, "name"), Err(QueryError::BadEscape), "{q}");
        }
        // ...even in a parameter nobody asked for.
        assert_eq!(one("name=x&junk=%q1", "name"), Err(QueryError::BadEscape));
    }

    #[test]
    fn non_utf8() {
        assert_eq!(one("name=%ff", "name"), Err(QueryError::NotUtf8));
        assert_eq!(one("name=%c3", "name"), Err(QueryError::NotUtf8));
        assert_eq!(one("name=%c3%a9", "name").unwrap().as_deref(), Some("é"));
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(one("name=a&name=b", "name").unwrap().as_deref(), Some("a"));
        let [n, v] = find("val=1&name=x&val=2", ["name", "val"]).unwrap();
        assert_eq!((n.as_deref(), v.as_deref()), (Some("x"), Some("1")));
    }

    #[test]
    fn missing_empty_and_bare_keys() {
        assert_eq!(one("", "name").unwrap(), None);
        assert_eq!(one("other=1", "name").unwrap(), None);
        assert_eq!(one("name=", "name").unwrap().as_deref(), Some(""));
        assert_eq!(one("name", "name").unwrap().as_deref(), Some(""));
        assert_eq!(one("&&name=q&&", "name").unwrap().as_deref(), Some("q"));
        assert_eq!(one("name=a=b", "name").unwrap().as_deref(), Some("a=b"));
    }

    #[test]
    fn encode_round_trips() {
        for s in [
            "", "i", "a b", "x&y=z", "100%", "€uro", "+", "\n\r\0", "~._-",
        ] {
            let q = format!("name={}", encode(s));
            assert_eq!(one(&q, "name").unwrap().as_deref(), Some(s), "{q}");
        }
    }
}
