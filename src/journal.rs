//! The journal's format, sans I/O: how changes are written down, how a file is read back
//! after a crash or a power cut, and when it is worth rewriting. `journal_file.rs` does the
//! file I/O, once per loop turn.
//!
//! Text, one record per line, readable with `cat`. The records of one loop turn end with a
//! commit line, and the compacted part at the top is one turn like any other:
//!
//! ```text
//! counterd-journal 2 5f3a9c01
//! set i 0
//! set hello%20world -5
//! commit 2 29 52fbeba1
//! inc i
//! inc i
//! commit 2 12 76fd6380
//! ```
//!
//! `commit COUNT BYTES CRC`: the turn's record count, the length of its records in bytes,
//! and the CRC-32C (8 hex digits) of the journal's first line followed by those records.
//! The first line's salt changes with every rewrite, so a turn left over in a reused disk
//! block from an older journal never checks out in a newer one; the length lets recovery
//! find and check a turn from its commit line alone, even when what comes before it is
//! damaged. A turn is applied only when its commit line is there and matches, so a power
//! cut can leave a turn out but never leave half of one in.
//!
//! Names are percent-encoded: `%`, and every byte outside `!`..=`~` (space, newline,
//! control bytes, UTF-8), is written `%XX`, so that any name round-trips and a line never
//! holds a space or a newline it does not mean.
//!
//! Journals written before commit lines existed start `counterd-journal 1` and still load:
//! record by record, with a NUL byte (never part of a record) starting the torn tail.

use std::fmt;

use crate::config::Fsync;
use crate::store::Counters;

/// The first line of a journal without commit lines (before round 3).
pub const HEADER_V1: &[u8] = b"counterd-journal 1\n";
/// The first line of a journal with commit lines, before its salt (8 hex digits) and `\n`.
const HEADER_V2: &[u8] = b"counterd-journal 2 ";
const COMMIT: &[u8] = b"commit ";

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

/// The first line of a journal whose checksums are salted with `salt`.
pub fn header(salt: u32) -> Vec<u8> {
    let mut out = HEADER_V2.to_vec();
    hex8(&mut out, salt);
    out.push(b'\n');
    out
}

/// What every commit line of one journal is checked against: the CRC-32C register after
/// the journal's first line, from which each turn's checksum continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    after_header: u32,
}

impl Seal {
    /// The seal of a journal that starts with `header(salt)`.
    pub fn new(salt: u32) -> Seal {
        Seal::of_header(&header(salt))
    }

    fn of_header(line: &[u8]) -> Seal {
        Seal {
            after_header: crc32c::update(!0, line),
        }
    }

    /// The checksum of a turn whose records are `records`.
    pub fn crc(&self, records: &[u8]) -> u32 {
        !crc32c::update(self.after_header, records)
    }

    /// Appends the commit line of a turn whose records (whole lines) are `records`.
    pub fn commit(&self, records: &[u8], out: &mut Vec<u8>) {
        let count = records.iter().filter(|&&b| b == b'\n').count();
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(COMMIT);
        out.extend_from_slice(n.format(count).as_bytes());
        out.push(b' ');
        out.extend_from_slice(n.format(records.len()).as_bytes());
        out.push(b' ');
        hex8(out, self.crc(records));
        out.push(b'\n');
    }
}

fn hex8(out: &mut Vec<u8>, v: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.push(HEX[(v >> (shift * 4)) as usize & 15]);
    }
}

fn unhex8(field: &[u8]) -> Option<u32> {
    if field.len() != 8 || !field.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(field).ok()?, 16).ok()
}

/// A decimal without sign or leading zeros (but `0`), as [`Seal::commit`] writes it.
fn decimal(field: &[u8]) -> Option<usize> {
    let canonical = !field.is_empty()
        && field.len() <= 19
        && field.iter().all(u8::is_ascii_digit)
        && (field[0] != b'0' || field.len() == 1);
    if !canonical {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
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
    /// 1 (records only) or 2 (turns with commit lines).
    pub version: u8,
    /// Bytes of whole, applied turns (the first line included): what the journal keeps.
    pub good: usize,
    /// What follows `good`.
    pub tail: Tail,
    pub records: u64,
    /// Turns applied, the compacted part included (0 for an old journal).
    pub turns: u64,
    /// The file held nothing at all: a new journal, which gets the preload.
    pub fresh: bool,
}

/// What lies after the last good turn.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Tail {
    /// Nothing: the file ends with a whole turn.
    None,
    /// An incomplete or damaged last turn with nothing valid after it: a crash cut the last
    /// write short or lost part of it. Cut off, in every mode.
    Torn,
    /// A bad turn with valid turns after it (the first at byte `next`): what out-of-order
    /// writeback makes of unsynced pages, or, if the bad turn had been synced, damage to
    /// acknowledged data.
    ValidAfter { next: usize },
    /// An old journal with a NUL byte at byte `nul` (in the line at `good`) and bytes other
    /// than NULs after it: a lost page with later writes behind it. Nothing there can be
    /// checked, so it is kept aside rather than applied or dropped.
    Unchecked { nul: usize },
}

/// What to do with a replayed journal, by [`Replayed::action`].
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Action {
    /// Start from what was replayed; anything after `good` is a torn tail, cut off.
    Start,
    /// Start from what was replayed, after moving everything from `good` on to a side file.
    SetAside,
    /// Acknowledged data may be at stake: exit 1 naming `good`.
    Refuse,
}

impl Replayed {
    /// The recovery rules. With `--fsync always` a turn is written only once the one before
    /// it is synced, so valid turns behind a bad one mean synced data was damaged: refuse,
    /// unless `--journal-recover` asks for the point-in-time cut. With `everysec` and `no`
    /// unsynced pages reach the disk in any order, and the cut is what a power cut allows.
    pub fn action(&self, fsync: Fsync, recover: bool) -> Action {
        match self.tail {
            Tail::None | Tail::Torn => Action::Start,
            Tail::Unchecked { .. } => Action::SetAside,
            Tail::ValidAfter { .. } if fsync == Fsync::Always && !recover => Action::Refuse,
            Tail::ValidAfter { .. } => Action::SetAside,
        }
    }
}

/// Damage that no crash explains: never skipped silently.
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

/// Applies the turns (or, in an old journal, the records) of `data` to `store`.
pub fn replay<C: Counters>(data: &[u8], store: &mut C) -> Result<Replayed, Damage> {
    let fresh = Replayed {
        version: 2,
        good: 0,
        tail: Tail::None,
        records: 0,
        turns: 0,
        fresh: true,
    };
    if data.is_empty() {
        return Ok(fresh);
    }
    let Some(first) = data.iter().position(|&b| b == b'\n') else {
        // A first line cut short can only be a crash while an old journal was being created
        // (a new one arrives whole, by `rename`).
        return if HEADER_V1.starts_with(data) {
            Ok(Replayed {
                tail: Tail::Torn,
                ..fresh
            })
        } else {
            Err(Damage {
                offset: 0,
                why: "not a counterd journal",
            })
        };
    };
    let line = &data[..=first];
    if line == HEADER_V1 {
        return replay_v1(data, first + 1, store);
    }
    let salted = line.len() == HEADER_V2.len() + 9
        && line.starts_with(HEADER_V2)
        && unhex8(&line[HEADER_V2.len()..first]).is_some();
    if !salted {
        return Err(Damage {
            offset: 0,
            why: "not a counterd journal (version 1 or 2)",
        });
    }
    let seal = Seal::of_header(line);
    let mut r = Replayed {
        version: 2,
        good: first + 1,
        tail: Tail::None,
        records: 0,
        turns: 0,
        fresh: false,
    };
    // The compacted part comes first, whole: it is synced before it is renamed into place.
    while r.turns == 0 || r.good < data.len() {
        let Some(turn) = check_turn(data, r.good, &seal) else {
            if r.turns == 0 {
                return Err(Damage {
                    offset: r.good,
                    why: "the compacted part is incomplete or fails its checksum",
                });
            }
            r.tail = match next_valid_turn(data, r.good, &seal) {
                Some(next) => Tail::ValidAfter { next },
                None => Tail::Torn,
            };
            return Ok(r);
        };
        let mut at = r.good;
        while at < turn.commit {
            let len = data[at..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("whole lines");
            apply(&data[at..at + len], store).map_err(|why| Damage { offset: at, why })?;
            at += len + 1;
        }
        r.records += turn.count;
        r.turns += 1;
        r.good = turn.end;
    }
    Ok(r)
}

/// A turn that checks out.
struct Turn {
    /// Where its commit line starts.
    commit: usize,
    /// Just past its commit line.
    end: usize,
    count: u64,
}

/// The turn starting at `at`, if its records end in a commit line that matches them.
fn check_turn(data: &[u8], at: usize, seal: &Seal) -> Option<Turn> {
    let mut line = at;
    let mut count = 0;
    loop {
        let len = data[line..].iter().position(|&b| b == b'\n')?;
        if let Some(c) = commit_line(&data[line..line + len]) {
            let ok = c.count == count && c.bytes == line - at && c.crc == seal.crc(&data[at..line]);
            return ok.then_some(Turn {
                commit: line,
                end: line + len + 1,
                count: count as u64,
            });
        }
        count += 1;
        line += len + 1;
    }
}

/// The start of the first turn at or after `from` that checks out, found from its commit
/// line: its length says where the turn starts, whatever is left of the bytes before it.
fn next_valid_turn(data: &[u8], from: usize, seal: &Seal) -> Option<usize> {
    let mut line = from;
    while line < data.len() {
        // Every `line` here follows a `\n` (or is `from`, a turn's start).
        let len = data[line..].iter().position(|&b| b == b'\n')?;
        if let Some(c) = commit_line(&data[line..line + len]) {
            if let Some(start) = line.checked_sub(c.bytes).filter(|&s| s >= from) {
                let records = &data[start..line];
                let lines = records.iter().filter(|&&b| b == b'\n').count();
                let whole = records.last().is_none_or(|&b| b == b'\n');
                if whole && lines == c.count && seal.crc(records) == c.crc {
                    return Some(start);
                }
            }
        }
        line += len + 1;
    }
    None
}

struct Commit {
    count: usize,
    bytes: usize,
    crc: u32,
}

/// `commit COUNT BYTES CRC`, exactly as [`Seal::commit`] writes it.
fn commit_line(line: &[u8]) -> Option<Commit> {
    let mut fields = line.strip_prefix(COMMIT)?.split(|&b| b == b' ');
    let c = Commit {
        count: decimal(fields.next()?)?,
        bytes: decimal(fields.next()?)?,
        crc: unhex8(fields.next()?)?,
    };
    fields.next().is_none().then_some(c)
}

/// An old journal: records without commit lines, applied as they come.
fn replay_v1<C: Counters>(data: &[u8], from: usize, store: &mut C) -> Result<Replayed, Damage> {
    // A NUL byte is never part of a record (names escape it): it is a page that a crash
    // lost, and the line it falls in is where the torn tail starts.
    let nul = data.iter().position(|&b| b == 0);
    let limit = match nul {
        Some(z) => data[..z]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1),
        None => data.len(),
    };
    let mut r = Replayed {
        version: 1,
        good: from,
        tail: Tail::None,
        records: 0,
        turns: 0,
        fresh: false,
    };
    while r.good < limit {
        let Some(len) = data[r.good..limit].iter().position(|&b| b == b'\n') else {
            break;
        };
        apply(&data[r.good..r.good + len], store).map_err(|why| Damage {
            offset: r.good,
            why,
        })?;
        r.records += 1;
        r.good += len + 1;
    }
    r.tail = match nul {
        Some(z) if data[z..].iter().any(|&b| b != 0) => Tail::Unchecked { nul: z },
        _ if r.good < data.len() => Tail::Torn,
        _ => Tail::None,
    };
    Ok(r)
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

/// The compacted form, one turn: the first line with `salt`, one `set` per counter, and
/// the commit line.
pub fn compacted<'a>(counters: impl IntoIterator<Item = (&'a str, i64)>, salt: u32) -> Vec<u8> {
    let mut out = header(salt);
    let start = out.len();
    for (name, value) in counters {
        set(&mut out, name, value);
    }
    let mut commit = Vec::with_capacity(40);
    Seal::new(salt).commit(&out[start..], &mut commit);
    out.extend_from_slice(&commit);
    out
}

/// Whether a journal of `size` bytes, `compacted` of which was its last rewrite, should be
/// rewritten now.
pub fn should_compact(size: u64, compacted: u64) -> bool {
    size >= COMPACT_MIN && size > COMPACT_FACTOR.saturating_mul(compacted)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as iSCSI, ext4 and LevelDB use
/// it: byte at a time from a table built at compile time. A turn of a few KiB costs a few
/// microseconds, against the `write` it rides on.
pub mod crc32c {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };

    /// Feeds `data` to the register `crc` (start from `!0`; the checksum is `!register`).
    pub fn update(mut crc: u32, data: &[u8]) -> u32 {
        for &b in data {
            crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        crc
    }

    pub fn checksum(data: &[u8]) -> u32 {
        !update(!0, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> Store {
        Store::new(1000)
    }

    /// A journal salted with `salt`, compacted from `pairs`, then one turn per entry of
    /// `turns`; also the offset where each appended turn starts.
    fn journal(salt: u32, pairs: &[(&str, i64)], turns: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut j = compacted(pairs.iter().copied(), salt);
        let seal = Seal::new(salt);
        let mut starts = Vec::new();
        for records in turns {
            starts.push(j.len());
            j.extend_from_slice(records);
            seal.commit(records, &mut j);
        }
        (j, starts)
    }

    fn state(s: &Store) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = s.iter().map(|(n, v)| (n.to_string(), v)).collect();
        v.sort();
        v
    }

    #[test]
    fn crc32c_known_answers() {
        // The check value of CRC-32C (RFC 3720, B.4) and the iSCSI test vectors.
        assert_eq!(crc32c::checksum(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::checksum(b""), 0);
        assert_eq!(crc32c::checksum(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::checksum(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c::checksum(&ascending), 0x46DD_794E);
        // Fed in pieces, the same.
        let reg = crc32c::update(crc32c::update(!0, b"1234"), b"56789");
        assert_eq!(!reg, 0xE306_9283);
    }

    #[test]
    fn the_documented_examples_check_out() {
        // This module's and docs/reference.md's, as they are written there.
        for text in [
            "counterd-journal 2 5f3a9c01\nset i 0\nset hello%20world -5\ncommit 2 29 52fbeba1\n\
             inc i\ninc i\ncommit 2 12 76fd6380\n",
            "counterd-journal 2 5f3a9c01\nset i 0\nset a%20b -7\ncommit 2 21 19af8f0f\n\
             inc a%20b\ninc i\ncommit 2 16 4b046c5c\n",
        ] {
            let r = replay(text.as_bytes(), &mut store()).unwrap();
            assert_eq!((r.turns, r.records, r.tail), (2, 4, Tail::None), "{text}");
        }
    }

    #[test]
    fn turns_are_readable_text_and_replay() {
        let mut records = Vec::new();
        inc(&mut records, "i");
        set(&mut records, "hello world", -5);
        let (j, starts) = journal(0x5f3a_9c01, &[("i", 0)], &[&records, b"inc i\n"]);
        let text = String::from_utf8(j.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "counterd-journal 2 5f3a9c01");
        assert_eq!(lines[1], "set i 0");
        // The commit line: count, bytes, and the CRC-32C of the first line and the records.
        let crc = crc32c::checksum(b"counterd-journal 2 5f3a9c01\nset i 0\n");
        assert_eq!(lines[2], format!("commit 1 8 {crc:08x}"));
        assert_eq!(&lines[3..5], ["inc i", "set hello%20world -5"]);
        assert!(lines[5].starts_with("commit 2 27 "), "{text}");
        assert_eq!(lines[6], "inc i");
        assert!(lines[7].starts_with("commit 1 6 "), "{text}");
        assert_eq!(starts[0], text.find("inc i").unwrap());
        let mut s = store();
        let r = replay(&j, &mut s).unwrap();
        assert_eq!(
            r,
            Replayed {
                version: 2,
                good: j.len(),
                tail: Tail::None,
                records: 4,
                turns: 3,
                fresh: false
            }
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
            "commit",
        ] {
            let mut rec = Vec::new();
            set(&mut rec, name, i64::MIN);
            assert_eq!(rec.iter().filter(|&&b| b == b' ').count(), 2, "{name:?}");
            assert!(
                rec[..rec.len() - 1]
                    .iter()
                    .all(|&b| (b' '..=b'~').contains(&b))
            );
            let (j, _) = journal(7, &[], &[&rec]);
            let mut s = store();
            replay(&j, &mut s).unwrap();
            assert_eq!(s.get(name), Some(i64::MIN), "{name:?}");
        }
    }

    #[test]
    fn a_last_turn_cut_anywhere_is_a_torn_tail() {
        let (j, starts) = journal(1, &[("i", 5)], &[b"inc i\n", b"inc i\ninc i\n"]);
        let last = starts[1];
        for cut in last + 1..j.len() {
            let mut s = store();
            let r = replay(&j[..cut], &mut s).unwrap();
            assert_eq!(
                (r.good, r.tail, r.turns),
                (last, Tail::Torn, 2),
                "cut at {cut}"
            );
            assert_eq!(s.get("i"), Some(6));
            assert_eq!(r.action(Fsync::Always, false), Action::Start);
        }
        // Lost bytes inside or after the last turn, NULs where they were: torn, too.
        for hole in last..j.len() {
            let mut d = j.clone();
            d[hole] = 0;
            let r = replay(&d, &mut store()).unwrap();
            assert_eq!((r.good, r.tail), (last, Tail::Torn), "hole at {hole}");
        }
        let mut d = j.clone();
        d.extend_from_slice(&[0; 100]); // the size reached the disk, the data did not
        assert_eq!(replay(&d, &mut store()).unwrap().tail, Tail::Torn);
    }

    #[test]
    fn a_bad_turn_before_valid_ones_is_a_point_in_time_cut_or_a_refusal() {
        let (j, starts) = journal(
            2,
            &[("c", 0)],
            &[b"inc c\n", b"inc c\ninc c\n", b"inc c\n", b"set d 1\n"],
        );
        // Every byte of turn 1 (the second appended) lost to NULs, alone or with those
        // before it up to its start: turns 2 and 3 are still there, and found.
        for hole in starts[1]..starts[2] {
            for from in [starts[1], hole] {
                let mut d = j.clone();
                d[from..=hole].fill(0);
                let mut s = store();
                let r = replay(&d, &mut s).unwrap();
                let want = Tail::ValidAfter { next: starts[2] };
                assert_eq!((r.good, r.tail), (starts[1], want), "{from}..={hole}");
                assert_eq!(s.get("c"), Some(1), "applied up to the bad turn only");
                assert_eq!(s.get("d"), None);
                assert_eq!(r.action(Fsync::EverySec, false), Action::SetAside);
                assert_eq!(r.action(Fsync::No, false), Action::SetAside);
                assert_eq!(r.action(Fsync::Always, false), Action::Refuse);
                assert_eq!(r.action(Fsync::Always, true), Action::SetAside);
            }
        }
        // Even when the newline before a valid turn is lost, its commit line finds it.
        let mut d = j.clone();
        d[starts[2] - 1] = 0;
        let r = replay(&d, &mut store()).unwrap();
        assert_eq!(r.tail, Tail::ValidAfter { next: starts[2] });
        // The issue's always-mode shape: a write torn with a gap, then its own last bytes.
        let mut d = j.clone();
        d[starts[3] + 2..starts[3] + 5].fill(0);
        let r = replay(&d, &mut store()).unwrap();
        assert_eq!((r.good, r.tail), (starts[3], Tail::Torn));
    }

    #[test]
    fn a_turn_from_another_journal_does_not_check_out() {
        // The same bytes under another salt: an old journal's turn in a reused disk block.
        let (j, starts) = journal(3, &[("c", 0)], &[b"inc c\n"]);
        let (other, other_starts) = journal(4, &[("c", 0)], &[b"inc c\n"]);
        assert_eq!(starts, other_starts);
        let mut d = j[..starts[0]].to_vec();
        d.extend_from_slice(&other[other_starts[0]..]);
        let mut s = store();
        let r = replay(&d, &mut s).unwrap();
        assert_eq!((r.good, r.tail), (starts[0], Tail::Torn));
        assert_eq!(s.get("c"), Some(0));
    }

    #[test]
    fn damage_in_the_compacted_part_is_an_error() {
        let (j, starts) = journal(5, &[("a", 1), ("b", 2)], &[b"inc a\n"]);
        let header = header(5).len();
        for at in header..starts[0] {
            let mut d = j.clone();
            d[at] ^= 0x20;
            let e = replay(&d, &mut store()).unwrap_err();
            assert_eq!(e.offset, header, "{e}");
            assert!(e.to_string().contains("compacted part"), "{e}");
        }
        // Missing altogether: only the first line.
        assert_eq!(
            replay(&j[..header], &mut store()).unwrap_err().offset,
            header
        );
        let e = replay(&j[..header - 3], &mut store()).unwrap_err();
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn a_turn_that_checks_out_but_cannot_apply_is_damage() {
        let mut d = compacted([("i", 1)], 6);
        let at = d.len();
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
            let mut d = d.clone();
            let mut records = b"inc i\n".to_vec();
            records.extend_from_slice(bad);
            d.extend_from_slice(&records);
            Seal::new(6).commit(&records, &mut d);
            let e = replay(&d, &mut store()).unwrap_err();
            assert_eq!(e.offset, at + 6, "{}", String::from_utf8_lossy(bad));
            assert!(e.to_string().contains(&format!("byte {}", at + 6)));
        }
        d.truncate(0);
        assert_eq!(
            replay(b"GARBAGE\nset i 1\n", &mut store())
                .unwrap_err()
                .offset,
            0
        );
        assert_eq!(replay(b"GARBAGE", &mut store()).unwrap_err().offset, 0);
        let e = replay(b"counterd-journal 2 5F3A9C01\n", &mut store()).unwrap_err();
        assert_eq!(e.offset, 0, "salt in lower case only");
        let e = replay(b"counterd-journal 3\n", &mut store()).unwrap_err();
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn commit_lines_are_read_exactly_as_written() {
        let seal = Seal::new(9);
        let mut line = Vec::new();
        seal.commit(b"inc i\n", &mut line);
        let c = commit_line(&line[..line.len() - 1]).unwrap();
        assert_eq!((c.count, c.bytes, c.crc), (1, 6, seal.crc(b"inc i\n")));
        for bad in [
            "commit 1 6",
            "commit 01 6 00000000",
            "commit +1 6 00000000",
            "commit 1 6 0000000",
            "commit 1 6 0000000G",
            "commit 1 6 00000000 ",
            "commit  1 6 00000000",
            "commit 1 99999999999999999999 00000000",
        ] {
            assert!(commit_line(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_old_journal_still_loads() {
        let mut j = HEADER_V1.to_vec();
        set(&mut j, "i", 0);
        set(&mut j, "hello world", -5);
        inc(&mut j, "i");
        let mut s = store();
        let r = replay(&j, &mut s).unwrap();
        assert_eq!(
            (r.version, r.good, r.tail, r.records),
            (1, j.len(), Tail::None, 3)
        );
        assert_eq!(s.get("i"), Some(1));
        // A torn last record, a first line cut short.
        let whole = j.len();
        j.extend_from_slice(b"inc i");
        let r = replay(&j, &mut store()).unwrap();
        assert_eq!((r.good, r.tail), (whole, Tail::Torn));
        let r = replay(b"counterd-jou", &mut store()).unwrap();
        assert!(r.tail == Tail::Torn && r.fresh && r.good == 0);
        assert!(replay(b"", &mut store()).unwrap().fresh);
    }

    #[test]
    fn in_an_old_journal_a_nul_starts_the_torn_tail() {
        // The issue's two reproductions.
        let mut j = b"counterd-journal 1\nset c 1\n".to_vec();
        j.extend_from_slice(&[0; 100]);
        j.extend_from_slice(b"inc c\n");
        let mut s = store();
        let r = replay(&j, &mut s).unwrap();
        assert_eq!((r.good, r.tail), (27, Tail::Unchecked { nul: 27 }));
        assert_eq!(s.get("c"), Some(1));
        assert_eq!(r.action(Fsync::Always, false), Action::SetAside);
        let mut s = store();
        let r = replay(b"counterd-journal 1\nset c 1\ninc c\nin\0\0c\n", &mut s).unwrap();
        assert_eq!((r.good, r.tail), (33, Tail::Unchecked { nul: 35 }));
        assert_eq!(s.get("c"), Some(2));
        // Only NULs after the first: nothing to keep.
        let r = replay(b"counterd-journal 1\nset c 1\nin\0\0", &mut store()).unwrap();
        assert_eq!((r.good, r.tail), (27, Tail::Torn));
        // Damage before the NUL is still damage.
        let e = replay(b"counterd-journal 1\nset c x\n\0", &mut store()).unwrap_err();
        assert_eq!(e.offset, 19);
    }

    #[test]
    fn old_journal_damage_stops_with_its_offset() {
        let mut j = HEADER_V1.to_vec();
        set(&mut j, "i", 1);
        let at = j.len();
        for bad in [&b"set i x\n"[..], b"frob i\n", b"inc nope\n", b"inc\n"] {
            let mut d = j.clone();
            d.extend_from_slice(bad);
            set(&mut d, "i", 2); // good records after the damage do not hide it
            let e = replay(&d, &mut store()).unwrap_err();
            assert_eq!(e.offset, at, "{:?}", String::from_utf8_lossy(bad));
        }
        let mut d = j.clone();
        set(&mut d, "i", i64::MAX);
        inc(&mut d, "i");
        assert!(replay(&d, &mut store()).is_err(), "an overflowing inc");
    }

    #[test]
    fn compacted_form_replays_to_the_same_counters() {
        let pairs = [("a", 1), ("b c", -2)];
        let j = compacted(pairs, 0xdead_beef);
        let mut back = store();
        let r = replay(&j, &mut back).unwrap();
        assert_eq!((r.turns, r.records, r.tail), (1, 2, Tail::None));
        assert_eq!(state(&back), [("a".into(), 1), ("b c".into(), -2)]);
        // No counters at all is still one turn.
        let j = compacted([], 1);
        let r = replay(&j, &mut store()).unwrap();
        assert_eq!((r.turns, r.good, r.fresh), (1, j.len(), false));
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
