//! A checker of trace JSON for the tests (of the recorder, and of `GET /trace`): a strict
//! little JSON parser (the crate takes no JSON dependency) and the rules Perfetto and
//! `chrome://tracing` need — slices on a track nest or follow each other, never overlap
//! partly; every event slice lies in a turn of its track; every flow start has one end;
//! every track used is named.

use std::collections::{BTreeMap, HashMap};

/// A JSON value. Numbers keep their text, so that times compare to the nanosecond.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// A time in microseconds (at most three decimals) as nanoseconds, exactly.
    pub fn as_ns(&self) -> Option<u64> {
        let Value::Num(n) = self else { return None };
        let (int, frac) = n.split_once('.').unwrap_or((n, ""));
        if frac.len() > 3 || n.contains(['e', 'E', '-']) {
            return None;
        }
        let int: u64 = int.parse().ok()?;
        let frac: u64 = format!("{frac:0<3}").parse().ok()?;
        int.checked_mul(1000)?.checked_add(frac)
    }
}

/// Parses one JSON document (RFC 8259), whitespace around it allowed, nothing else.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.at != p.s.len() {
        return Err(p.error("text after the document"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        let from = self.at.saturating_sub(40);
        let to = (self.at + 40).min(self.s.len());
        format!(
            "{what} at byte {}: …{}…",
            self.at,
            String::from_utf8_lossy(&self.s[from..to])
        )
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.s.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 64 {
            return Err(self.error("nested too deep"));
        }
        self.ws();
        match self.s.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                if self.eat(b'}') {
                    return Ok(Value::Obj(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.error("expected ':'"));
                    }
                    members.push((key, self.value(depth + 1)?));
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b'}') {
                        return Ok(Value::Obj(members));
                    }
                    return Err(self.error("expected ',' or '}'"));
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(Value::Arr(items));
                    }
                    return Err(self.error("expected ',' or ']'"));
                }
            }
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn word(&mut self, word: &str, v: Value) -> Result<Value, String> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(v)
        } else {
            Err(self.error("bad literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.at;
        while matches!(self.s.get(self.at), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - from
    }

    fn number(&mut self) -> Result<Value, String> {
        let from = self.at;
        if self.s[self.at] == b'-' {
            self.at += 1;
        }
        let int_from = self.at;
        match self.digits() {
            0 => return Err(self.error("expected digits")),
            n if n > 1 && self.s[int_from] == b'0' => return Err(self.error("leading zero")),
            _ => {}
        }
        if self.s.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("expected digits after '.'"));
            }
        }
        if matches!(self.s.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.s.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected exponent digits"));
            }
        }
        let text = std::str::from_utf8(&self.s[from..self.at]).expect("ASCII");
        Ok(Value::Num(text.to_string()))
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.at) != Some(&b'"') {
            return Err(self.error("expected a string"));
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                return Err(self.error("unterminated string"));
            };
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| self.error("not UTF-8")),
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' | b'\\' | b'/' => e as char,
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.s.get(self.at..self.at + 4).ok_or("short \\u")?;
                            self.at += 4;
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.error("bad \\u"))?;
                            // Surrogates are not needed by anything written here.
                            char::from_u32(code).ok_or_else(|| self.error("surrogate in \\u"))?
                        }
                        _ => return Err(self.error("bad escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.error("control character in a string")),
                _ => out.push(b),
            }
        }
    }
}

/// One `X` slice as the checks see it.
#[derive(Clone, Debug)]
pub struct Slice {
    pub tid: u64,
    pub cat: String,
    pub name: String,
    pub start: u64,
    pub end: u64,
    pub args: Value,
}

/// What a checked trace holds.
#[derive(Debug, Default)]
pub struct Summary {
    /// Track names by tid.
    pub tracks: BTreeMap<u64, String>,
    /// Every `X` slice, in the order written.
    pub slices: Vec<Slice>,
    /// Flows as (name, from tid, to tid).
    pub flows: Vec<(String, u64, u64)>,
    /// `C` events.
    pub counters: usize,
}

impl Summary {
    pub fn of<'a>(&'a self, cat: &'a str) -> impl Iterator<Item = &'a Slice> + 'a {
        self.slices.iter().filter(move |s| s.cat == cat)
    }

    /// The event slices inside `turn` (on its track).
    pub fn events_in<'a>(&'a self, turn: &'a Slice) -> impl Iterator<Item = &'a Slice> + 'a {
        self.of("event")
            .filter(move |e| e.tid == turn.tid && turn.start <= e.start && e.end <= turn.end)
    }
}

/// Parses `text` and checks it is a trace the viewers accept, with counterd's rules on top.
pub fn check(text: &str) -> Result<Summary, String> {
    let doc = parse(text)?;
    if let Some(unit) = doc.get("displayTimeUnit") {
        if !matches!(unit.as_str(), Some("ns" | "ms")) {
            return Err(format!("displayTimeUnit {unit:?}"));
        }
    }
    let Some(Value::Arr(events)) = doc.get("traceEvents") else {
        return Err("no traceEvents array".into());
    };
    let mut sum = Summary::default();
    let mut used = Vec::new();
    // (cat, name, id) -> (start tid and time, end tid and time)
    type End = Option<(u64, u64)>;
    let mut flows: HashMap<(String, String, u64), (End, End)> = HashMap::new();
    for (i, ev) in events.iter().enumerate() {
        let field = |k: &str| {
            ev.get(k)
                .ok_or_else(|| format!("event {i} has no {k}: {ev:?}"))
        };
        let ph = field("ph")?.as_str().ok_or("ph is not a string")?;
        let pid = field("pid")?.as_u64().ok_or("pid is not an integer")?;
        let tid = field("tid")?.as_u64().ok_or("tid is not an integer")?;
        if pid != 1 {
            return Err(format!("event {i}: pid {pid}, not the one process 1"));
        }
        let name = field("name")?.as_str().ok_or("name is not a string")?;
        let ts = || {
            field("ts")?
                .as_ns()
                .ok_or_else(|| format!("event {i}: ts is not µs to the ns: {ev:?}"))
        };
        match ph {
            "M" => {
                let arg = field("args")?;
                match name {
                    "process_name" => {}
                    "thread_name" => {
                        let n = arg.get("name").and_then(Value::as_str);
                        let n = n.ok_or_else(|| format!("event {i}: thread without a name"))?;
                        sum.tracks.insert(tid, n.to_string());
                    }
                    "thread_sort_index" => {}
                    _ => return Err(format!("event {i}: unknown metadata {name}")),
                }
            }
            "X" => {
                let start = ts()?;
                let dur = field("dur")?
                    .as_ns()
                    .ok_or_else(|| format!("event {i}: bad dur"))?;
                let cat = field("cat")?.as_str().ok_or("cat is not a string")?;
                sum.slices.push(Slice {
                    tid,
                    cat: cat.to_string(),
                    name: name.to_string(),
                    start,
                    end: start + dur,
                    args: ev.get("args").cloned().unwrap_or(Value::Null),
                });
                used.push(tid);
            }
            "C" => {
                ts()?;
                let Some(Value::Obj(args)) = ev.get("args") else {
                    return Err(format!("event {i}: counter without args"));
                };
                if args.is_empty() || args.iter().any(|(_, v)| v.as_u64().is_none()) {
                    return Err(format!("event {i}: counter args {args:?}"));
                }
                sum.counters += 1;
                used.push(tid);
            }
            "s" | "f" => {
                let at = ts()?;
                let cat = field("cat")?.as_str().ok_or("cat is not a string")?;
                let id = field("id")?.as_u64().ok_or("flow id is not an integer")?;
                if id >= 1 << 53 {
                    return Err(format!(
                        "event {i}: flow id {id} is not exact in JavaScript"
                    ));
                }
                let key = (cat.to_string(), name.to_string(), id);
                let pair = flows.entry(key).or_default();
                let end = if ph == "s" {
                    &mut pair.0
                } else {
                    if ev.get("bp").and_then(Value::as_str) != Some("e") {
                        return Err(format!("event {i}: flow end without bp:\"e\""));
                    }
                    &mut pair.1
                };
                if end.replace((tid, at)).is_some() {
                    return Err(format!("event {i}: flow {id} has two {ph} events"));
                }
                used.push(tid);
            }
            _ => return Err(format!("event {i}: phase {ph} is not one counterd writes")),
        }
    }
    for tid in used {
        if !sum.tracks.contains_key(&tid) {
            return Err(format!("tid {tid} is used but has no thread_name"));
        }
    }
    nest(&sum.slices)?;
    // Every event slice in a turn of its track; sleeps in none.
    for e in sum.of("event") {
        if !sum
            .of("turn")
            .any(|t| t.tid == e.tid && t.start <= e.start && e.end <= t.end)
        {
            return Err(format!("event slice outside every turn: {e:?}"));
        }
    }
    for s in sum.of("sleep") {
        if let Some(t) = sum
            .of("turn")
            .find(|t| t.tid == s.tid && t.start < s.end && s.start < t.end)
        {
            return Err(format!("sleep {s:?} overlaps turn {t:?}"));
        }
    }
    // Every flow paired, forward in time, each end inside a slice of its track.
    let inside = |tid: u64, at: u64| {
        sum.slices
            .iter()
            .any(|s| s.tid == tid && s.start <= at && at <= s.end)
    };
    for ((_, name, id), pair) in flows {
        let (Some(from), Some(to)) = pair else {
            return Err(format!("flow {name} {id} is not paired: {pair:?}"));
        };
        if to.1 < from.1 {
            return Err(format!("flow {name} {id} goes back in time: {pair:?}"));
        }
        if !inside(from.0, from.1) || !inside(to.0, to.1) {
            return Err(format!("flow {name} {id} has an end outside every slice"));
        }
        sum.flows.push((name, from.0, to.0));
    }
    Ok(sum)
}

/// Slices on one track nest or follow each other; none starts inside another and ends
/// after it (Perfetto drops such a slice).
fn nest(slices: &[Slice]) -> Result<(), String> {
    let mut by_tid: BTreeMap<u64, Vec<&Slice>> = BTreeMap::new();
    for s in slices {
        by_tid.entry(s.tid).or_default().push(s);
    }
    for (_, mut track) in by_tid {
        // Parents first: by start, then the longest.
        track.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut open: Vec<&Slice> = Vec::new();
        for s in track {
            // Close what ended before s began (a slice of length 0 at a parent's very end
            // still belongs to it).
            while let Some(top) = open.last() {
                if top.end < s.start || (top.end == s.start && s.end > s.start) {
                    open.pop();
                } else {
                    break;
                }
            }
            if let Some(top) = open.last() {
                if s.end > top.end {
                    return Err(format!("{s:?} overlaps {top:?} partly"));
                }
            }
            open.push(s);
        }
    }
    Ok(())
}
