//! The journal's format, sans I/O: how changes are written down, how a file is read back,
//! and when it is worth rewriting. The reactor does the file I/O (`src/reactor.rs`,
//! `Journal`), once per loop turn.
//!
//! Text, one record per line, readable with `cat`:
//!
//! ```text
//! counterd-journal 1
//! set i 0
//! set hello%20world -5
//! inc i
//! ```
//!
//! Names are percent-encoded: `%`, and every byte outside `!`..=`~` (space, newline,
//! control bytes, UTF-8), is written `%XX`, so that any name round-trips and a line never
//! holds a space or a newline it does not mean.

use std::fmt;

use crate::store::Counters;

pub const HEADER: &[u8] = b"counterd-journal 1\n";

/// A journal that has grown past this many times its compacted size (and past
/// [`COMPACT_MIN`]) is rewritten.
pub const COMPACT_FACTOR: u64 = 2;
pub const COMPACT_MIN: u64 = 4 << 20;

/// Appends a `set` record.
pub fn set(out: &mut Vec<u8>, name: &str, value: i64) {
    out.extend_from_slice(b"set ");
    escape(out, name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    out.push(b'\n');
}

/// Appends an `inc` record.
pub fn inc(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"inc ");
    escape(out, name.as_bytes());
    out.push(b'\n');
}

fn escape(out: &mut Vec<u8>, name: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in name {
        if (b'!'..=b'~').contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

fn unescape(field: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        match field[i] {
            b'%' => {
                let hex = field.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            }
            b if (b'!'..=b'~').contains(&b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// What reading a journal back found.
#[derive(Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Bytes of whole, good records (the header included): the file is cut to this.
    pub good: usize,
    /// A last record without its newline was cut off (a crash mid-append).
    pub torn: bool,
    pub records: u64,
    /// The file held nothing at all: a new journal, which gets the preload.
    pub fresh: bool,
}

/// A record that cannot be applied, other than a torn last one: never skipped silently.
#[derive(Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: usize,
    pub why: &'static str,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "journal damaged at byte {}: {}", self.offset, self.why)
    }
}

/// Applies the records in `data` to `store`.
pub fn replay<C: Counters>(data: &[u8], store: &mut C) -> Result<Replayed, Damage> {
    if data.is_empty() {
        return Ok(Replayed {
            good: 0,
            torn: false,
            records: 0,
            fresh: true,
        });
    }
    let Some(first) = data.iter().position(|&b| b == b'\n') else {
        // A header cut short can only be a crash while the file was being created.
        return if HEADER.starts_with(data) {
            Ok(Replayed {
                good: 0,
                torn: true,
                records: 0,
                fresh: true,
            })
        } else {
            Err(Damage {
                offset: 0,
                why: "not a counterd journal",
            })
        };
    };
    if &data[..=first] != HEADER {
        return Err(Damage {
            offset: 0,
            why: "not a counterd journal (version 1)",
        });
    }
    let mut at = first + 1;
    let mut records = 0;
    while at < data.len() {
        let Some(len) = data[at..].iter().position(|&b| b == b'\n') else {
            return Ok(Replayed {
                good: at,
                torn: true,
                records,
                fresh: false,
            });
        };
        apply(&data[at..at + len], store).map_err(|why| Damage { offset: at, why })?;
        records += 1;
        at += len + 1;
    }
    Ok(Replayed {
        good: at,
        torn: false,
        records,
        fresh: false,
    })
}

fn apply<C: Counters>(line: &[u8], store: &mut C) -> Result<(), &'static str> {
    let mut fields = line.split(|&b| b == b' ');
    let op = fields.next().unwrap_or_default();
    let name = fields.next().ok_or("record without a name")?;
    let name = unescape(name).filter(|n| !n.is_empty()).ok_or("bad name")?;
    match (op, fields.next(), fields.next()) {
        (b"set", Some(v), None) => {
            let v = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
            let v = v.ok_or("bad value")?;
            store
                .set(&name, v)
                .map_err(|_| "more counters than --max-counters")
        }
        (b"inc", None, None) => store
            .inc(&name)
            .map(|_| ())
            .map_err(|_| "inc of a missing counter, or an overflow"),
        _ => Err("unknown record"),
    }
}

/// The compacted form: the header and one `set` per counter.
pub fn compacted<'a>(counters: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    for (name, value) in counters {
        set(&mut out, name, value);
    }
    out
}

/// Whether a journal of `size` bytes, `compacted` of which was its last rewrite, should be
/// rewritten now.
pub fn should_compact(size: u64, compacted: u64) -> bool {
    size >= COMPACT_MIN && size > COMPACT_FACTOR.saturating_mul(compacted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> Store {
        Store::new(1000)
    }

    #[test]
    fn records_are_readable_text_and_replay() {
        let mut j = HEADER.to_vec();
        set(&mut j, "i", 0);
        set(&mut j, "hello world", -5);
        inc(&mut j, "i");
        inc(&mut j, "i");
        assert_eq!(
            String::from_utf8(j.clone()).unwrap(),
            "counterd-journal 1\nset i 0\nset hello%20world -5\ninc i\ninc i\n"
        );
        let mut s = store();
        let r = replay(&j, &mut s).unwrap();
        assert_eq!(
            (r.good, r.torn, r.records, r.fresh),
            (j.len(), false, 4, false)
        );
        assert_eq!(s.get("i"), Some(2));
        assert_eq!(s.get("hello world"), Some(-5));
    }

    #[test]
    fn any_name_round_trips() {
        for name in [
            "a",
            "%",
            "%25",
            "a b\nc\r\n",
            "naïve ☃",
            "\u{7f}\u{0}x",
            "+&=?",
        ] {
            let mut j = HEADER.to_vec();
            set(&mut j, name, i64::MIN);
            let line = &j[HEADER.len()..j.len() - 1];
            assert_eq!(line.iter().filter(|&&b| b == b' ').count(), 2, "{name:?}");
            assert!(line.iter().all(|&b| (b' '..=b'~').contains(&b)));
            let mut s = store();
            replay(&j, &mut s).unwrap();
            assert_eq!(s.get(name), Some(i64::MIN), "{name:?}");
        }
    }

    #[test]
    fn a_torn_last_record_is_cut_off() {
        let mut j = HEADER.to_vec();
        set(&mut j, "i", 7);
        let whole = j.len();
        j.extend_from_slice(b"inc i"); // no newline: the crash came mid-append
        let mut s = store();
        let r = replay(&j, &mut s).unwrap();
        assert_eq!((r.good, r.torn), (whole, true));
        assert_eq!(s.get("i"), Some(7));
        // A header cut short: a crash while the journal was being created.
        let r = replay(b"counterd-jou", &mut store()).unwrap();
        assert!(r.torn && r.fresh && r.good == 0);
        assert!(replay(b"", &mut store()).unwrap().fresh);
    }

    #[test]
    fn damage_stops_with_its_offset() {
        let mut j = HEADER.to_vec();
        set(&mut j, "i", 1);
        let at = j.len();
        for bad in [
            &b"set i x\n"[..],
            b"set i 1 2\n",
            b"frob i\n",
            b"inc nope\n",
            b"set %zz 1\n",
            b"set  1\n",
            b"inc\n",
            b"set i 99999999999999999999\n",
        ] {
            let mut d = j.clone();
            d.extend_from_slice(bad);
            set(&mut d, "i", 2); // good records after the damage do not hide it
            let e = replay(&d, &mut store()).unwrap_err();
            assert_eq!(e.offset, at, "{:?}", String::from_utf8_lossy(bad));
            assert!(e.to_string().contains(&format!("byte {at}")));
        }
        assert_eq!(
            replay(b"GARBAGE\nset i 1\n", &mut store())
                .unwrap_err()
                .offset,
            0
        );
        assert_eq!(replay(b"GARBAGE", &mut store()).unwrap_err().offset, 0);
    }

    #[test]
    fn an_overflowing_inc_is_damage() {
        let mut j = HEADER.to_vec();
        set(&mut j, "i", i64::MAX);
        inc(&mut j, "i");
        assert!(replay(&j, &mut store()).is_err());
    }

    #[test]
    fn compacted_form_replays_to_the_same_counters() {
        let mut s = store();
        s.set("a", 1).unwrap();
        s.set("b c", -2).unwrap();
        let mut pairs: Vec<(String, i64)> = vec![("a".into(), 1), ("b c".into(), -2)];
        pairs.sort();
        let j = compacted(pairs.iter().map(|(n, v)| (n.as_str(), *v)));
        let mut back = store();
        replay(&j, &mut back).unwrap();
        assert_eq!((back.get("a"), back.get("b c")), (Some(1), Some(-2)));
    }

    #[test]
    fn compaction_waits_for_twice_the_size_and_a_few_mib() {
        assert!(!should_compact(1 << 20, 100));
        assert!(!should_compact(COMPACT_MIN, COMPACT_MIN / 2));
        assert!(should_compact(COMPACT_MIN + 1, COMPACT_MIN / 2));
        assert!(should_compact(10 << 20, 1000));
        assert!(!should_compact(10 << 20, 6 << 20));
    }
}
