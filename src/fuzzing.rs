//! The bodies of the fuzz targets in `fuzz/`, kept in the library so that a plain
//! `cargo test` (tests/fuzz_corpus.rs) replays every committed corpus file and regression
//! through exactly the same checks. Each function panics when a property is violated.
//!
//! - [`parse_request`]: request framing (`http::parse`, `find_head_end`) on arbitrary bytes.
//! - [`query`]: the `x-www-form-urlencoded` decoder, against a reference and in round trips.
//! - [`connection`]: the per-connection state machine fed one stream cut into arbitrary
//!   reads, compared with the same stream fed in one piece and with a model of the framing.
//! - [`journal`]: journal replay on arbitrary bytes, and turns written and read back.
//! - [`journal_crash`]: journal replay over what a power cut leaves of a journal, against
//!   the oracle of the crash simulator (`journal_sim.rs`).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::config::{Config, Limits};
use crate::conn::{Answer, Conn, Next, OUTPUT_HIGH_WATER, Refuse, Service};
use crate::http::{self, Body, BodySkip, MAX_BODY, Method, Request};
use crate::query::{self, QueryError};
use crate::router::{App, Handled};
use crate::store::Store;
use crate::testkit;
use crate::work::{Job, Work, WorkMode};

// ---------------------------------------------------------------------------------------
// parse_request

/// Request framing on arbitrary bytes: the verdict is consistent with itself, with every
/// prefix of the input, and with [`http::find_head_end`]; every refusal is a status of docs/reference.md.
pub fn parse_request(data: &[u8]) {
    let full = http::parse(data);
    match &full {
        Ok(Some((req, len))) => {
            let len = *len;
            assert!(
                len > 0 && len <= data.len(),
                "head length {len} of {}",
                data.len()
            );
            // The head alone parses to the same request (this is how a request whose body
            // is still arriving is parsed again once the body is in).
            assert_eq!(
                http::parse(&data[..len]),
                Ok(Some((req.clone(), len))),
                "the head alone parses differently"
            );
            match req.body {
                Body::None => {}
                Body::Length(n) => assert!(n > 0 && n <= MAX_BODY),
                Body::Chunked => assert!(!req.http10, "chunked in HTTP/1.0"),
            }
            assert!(!req.target.is_empty());
            assert!(
                !req.target
                    .bytes()
                    .any(|b| matches!(b, b' ' | b'\r' | b'\n')),
                "target {:?}",
                req.target
            );
            if !req.http10 {
                // HTTP/1.1 stays open unless the request says `Connection: close`.
                assert_eq!(req.keep_alive, !has_token(data, len, b"close"));
            } else if req.keep_alive {
                assert!(
                    has_token(data, len, b"keep-alive"),
                    "1.0 kept alive unasked"
                );
            }
            match data.first() {
                Some(b'\r' | b'\n') => {} // httparse skips empty lines; the connection does too
                _ => assert_eq!(
                    http::find_head_end(data, 0),
                    Some(len),
                    "httparse and find_head_end disagree on where the head ends"
                ),
            }
        }
        Ok(None) => {}
        Err(e) => {
            let status = e.status();
            assert!(matches!(status, 400 | 413 | 431 | 505), "{e:?} is {status}");
            assert_ne!(http::reason(status), "Unknown");
            assert!(!e.to_string().is_empty());
        }
    }

    // A verdict reached on a prefix never changes as more bytes arrive: the connection
    // relies on it to answer the same whatever the reads.
    for cut in cut_points(data) {
        let prefix = &data[..cut];
        match http::parse(prefix) {
            Ok(None) => {}
            verdict => assert_eq!(
                verdict, full,
                "the first {cut} bytes got a verdict that the whole input does not"
            ),
        }
        // Resuming the search for the end of the head where a search of the prefix stopped
        // finds the same end as searching from the start.
        let whole = http::find_head_end(data, 0);
        match http::find_head_end(prefix, 0) {
            Some(end) => assert_eq!(Some(end), whole, "end in prefix {cut}"),
            None => assert_eq!(
                http::find_head_end(data, http::resume_search_at(cut)),
                whole,
                "resumed search after {cut} bytes"
            ),
        }
    }
    if let Some(end) = http::find_head_end(data, 0) {
        let head = &data[..end];
        assert!(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"));
    }
}

/// Every prefix length of a short input; for a long one, a spread of lengths plus the
/// places around each line end, where the verdicts change.
fn cut_points(data: &[u8]) -> Vec<usize> {
    if data.len() <= 256 {
        return (0..data.len()).collect();
    }
    let mut cuts: Vec<usize> = (0..64).map(|k| k * data.len() / 64).collect();
    for (i, _) in data
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .take(64)
    {
        cuts.extend([i, i + 1, (i + 2).min(data.len())]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.retain(|&c| c < data.len());
    cuts
}

/// Whether a `Connection` header of the head `data[..len]` lists `token`.
fn has_token(data: &[u8], len: usize, token: &[u8]) -> bool {
    data[..len].split(|&b| b == b'\n').skip(1).any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = line.split_at(colon);
        name.eq_ignore_ascii_case(b"connection")
            && value[1..]
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

// ---------------------------------------------------------------------------------------
// query

/// The query decoder: agrees with a reference decoder on arbitrary text, and decodes what
/// our encoder (and a reference encoder with every legal choice) produced back to the
/// original.
pub fn query(data: &[u8]) {
    // Arbitrary text through decode and find, against the reference.
    let text = String::from_utf8_lossy(data);
    let got = query::decode(&text);
    assert_eq!(
        got.as_deref().map_err(|e| *e),
        reference_decode(&text).as_deref().map_err(|e| *e),
        "decode({text:?})"
    );
    if !text.contains(['%', '+']) {
        assert!(
            matches!(got, Ok(Cow::Borrowed(_))),
            "plain text is borrowed"
        );
    }
    let found = query::find(&text, ["name", "val"]).map(|f| f.map(|v| v.map(Cow::into_owned)));
    assert_eq!(
        found,
        reference_find(&text, ["name", "val"]),
        "find({text:?})"
    );

    // Round trips. The first byte chooses the reference encoder's escapes.
    let (salt, rest) = data.split_first().map_or((0, data), |(s, r)| (*s, r));
    let plain = String::from_utf8_lossy(rest);
    let ours = query::encode(&plain);
    assert!(
        ours.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%+".contains(&b)),
        "encode({plain:?}) = {ours:?}"
    );
    assert_eq!(query::decode(&ours).as_deref(), Ok(&*plain), "{ours:?}");
    let theirs = reference_encode(&plain, salt);
    assert_eq!(query::decode(&theirs).as_deref(), Ok(&*plain), "{theirs:?}");
    let q = format!("val={theirs}&name={ours}&name=second&val=x");
    let [name, val] = query::find(&q, ["name", "val"]).expect("valid query");
    assert_eq!(name.as_deref(), Some(&*plain));
    assert_eq!(val.as_deref(), Some(&*plain));
}

/// Decoding, written the obvious way: the result, or the first thing wrong with it.
fn reference_decode(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(QueryError::BadEscape)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

type Found<const N: usize> = Result<[Option<String>; N], QueryError>;

fn reference_find<const N: usize>(q: &str, keys: [&str; N]) -> Found<N> {
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        let (k, v) = (reference_decode(k)?, reference_decode(v)?);
        for (slot, key) in found.iter_mut().zip(keys) {
            if key == k && slot.is_none() {
                *slot = Some(v.clone());
            }
        }
    }
    Ok(found)
}

/// An encoder that makes every choice a client may make: characters left as they are where
/// that is unambiguous, escapes in upper or lower case, spaces as `+` or `%20`.
fn reference_encode(s: &str, salt: u8) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        let choice = salt.rotate_left(i as u32 % 8) & 3;
        let special = matches!(c, '%' | '+' | '&' | '=' | '#');
        match (c, choice) {
            (' ', 0 | 1) => out.push('+'),
            (_, 0) if !special => out.push(c),
            _ => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    if choice == 2 {
                        out.push_str(&format!("%{b:02x}"));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// connection

/// The largest read the target makes; buffered input stays within this plus one head.
pub const CHUNK_CAP: usize = 4096;

/// How one input drives a connection. Layout: `flags`, `n`, then `n % 16` bytes of read
/// sizes (used in turn, over and over), then the stream. `n / 16`, when not 0, makes every
/// counter request an answer that comes later, `n / 16 - 1` rounds after it was asked
/// (`--work timer|pool`, with the input choosing when the work ends).
///
/// `flags`: bit 0 half-close after the stream; bit 1 a lazy client that reads answers only
/// when the server stops reading; bits 2–3 how much the client reads at a time (all, or a
/// size from the table scaled by 1, 64, or tiny); bits 4–5 the head limit (8192, 2048, 512,
/// 128); bits 6–7 the stream repeated 1, 2, 4 or 8 times.
#[derive(Debug, Clone)]
struct Plan {
    eof: bool,
    lazy: bool,
    write_mode: u8,
    max_head: usize,
    reads: Vec<usize>,
    writes: Vec<usize>,
    /// Counter requests are answered this many rounds later.
    later: Option<usize>,
}

fn plan(data: &[u8]) -> (Plan, Vec<u8>) {
    let flags = data.first().copied().unwrap_or(0);
    let n = data.get(1).map_or(0, |n| usize::from(n % 16));
    let later = data.get(1).and_then(|n| usize::from(n / 16).checked_sub(1));
    let table = data.get(2..).map_or(&[][..], |t| &t[..n.min(t.len())]);
    let stream = data.get(2 + table.len()..).unwrap_or(&[]);
    let read_size = |b: u8| {
        let b = usize::from(b);
        if b < 128 { b + 1 } else { (b - 127) * 32 }.min(CHUNK_CAP)
    };
    let write_mode = (flags >> 2) & 3;
    let plan = Plan {
        eof: flags & 1 != 0,
        lazy: flags & 2 != 0,
        write_mode,
        max_head: [8192, 2048, 512, 128][usize::from((flags >> 4) & 3)],
        reads: table.iter().map(|&b| read_size(b)).collect(),
        writes: table
            .iter()
            .map(|&b| match write_mode {
                1 => read_size(b),
                2 => read_size(b) * 64,
                _ => 1 + usize::from(b) / 16,
            })
            .collect(),
        later,
    };
    (plan, stream.repeat(1 << (flags >> 6)))
}

/// What one run of a connection produced.
struct Run {
    out: Vec<u8>,
    metrics: String,
    /// The connection still holds the start of a request it has not answered.
    pending: bool,
    /// The last answer said `Connection: close` and the connection is shutting down.
    closed: bool,
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The per-connection state machine against a real store: cutting the stream differently
/// does not change the answers, every answer is a well-formed HTTP/1.1 response of the kind
/// a model of the framing expects, output and buffered input stay bounded, and nothing is
/// answered after an answer that closes.
pub fn connection(data: &[u8]) {
    let (plan, stream) = plan(data);
    let limits = Limits {
        max_head_bytes: plan.max_head,
        ..Limits::default()
    };
    let whole_plan = Plan {
        eof: plan.eof,
        lazy: false,
        write_mode: 0,
        max_head: plan.max_head,
        reads: vec![stream.len().max(1)],
        writes: Vec::new(),
        later: None,
    };
    let whole = drive(&whole_plan, &stream, limits);
    let expected = model(&stream, plan.max_head);
    check_answers(&whole.out, &expected, limits);

    let cut = drive(&plan, &stream, limits);
    if cut.out != whole.out {
        // One legitimate difference: a head still arriving is handed to httparse only when
        // its end shows up or it has doubled, so a stream that stops (without a half-close)
        // in the middle of a bad head may not have had its refusal yet.
        let refusal = whole.out.strip_prefix(&cut.out[..]).map(|tail| {
            let (status, len, close) = answer_at(tail, false);
            (status, len == tail.len(), close)
        });
        assert!(
            !plan.eof
                && cut.pending
                && matches!(refusal, Some((400 | 413 | 431 | 505, true, true))),
            "answers depend on the reads: {plan:?}\n  in one piece: {:?}\n  in pieces:   {:?}",
            String::from_utf8_lossy(&whole.out),
            String::from_utf8_lossy(&cut.out)
        );
    } else {
        assert_eq!(cut.metrics, whole.metrics, "metrics depend on the reads");
        assert_eq!(cut.closed, whole.closed);
    }
}

/// The service of a fuzzed connection: the router over a small store, with counter
/// requests needing work; whether their answers come at once or later is the plan's.
struct Fuzzed {
    app: App,
    defer: bool,
    job: Option<Job>,
}

impl Fuzzed {
    fn new(defer: bool) -> Fuzzed {
        let mut store = Store::new(16);
        store.set("i", 0).unwrap();
        store.set("j", 0).unwrap();
        store.set("m", i64::MAX - 1).unwrap();
        let config = Config {
            work: Work {
                mode: WorkMode::Timer,
                time: Duration::from_nanos(1),
            },
            ..Config::default()
        };
        let app = testkit::router_with(store, &config);
        Fuzzed {
            app,
            defer,
            job: None,
        }
    }
}

impl Service for Fuzzed {
    fn answer(
        &mut self,
        req: &Request<'_>,
        peer: IpAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Answer {
        let App { state, router } = &mut self.app;
        match router.handle(state, req, peer, now, out) {
            Handled::Now => Answer::Now,
            Handled::Later(job) if self.defer => {
                assert!(
                    self.job.is_none(),
                    "a second request in work on one connection"
                );
                self.job = Some(job);
                Answer::Later
            }
            Handled::Later(job) => {
                router.finish(state, &job, out);
                Answer::Now
            }
        }
    }
}

impl Refuse for Fuzzed {
    fn refuse(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        why: &dyn std::fmt::Display,
    ) {
        self.app.refuse(out, status, extra, why);
    }
}

/// Drives a connection the way the reactor does: reads only while it wants to, writes what
/// the client accepts, half-closes if planned, lingers after `Next::Shutdown`.
fn drive(plan: &Plan, stream: &[u8], limits: Limits) -> Run {
    let now = Instant::now();
    let mut router = Fuzzed::new(plan.later.is_some());
    let mut waited = 0;
    let mut conn = Conn::new(PEER, now);
    let read_cap = plan.reads.iter().copied().max().unwrap_or(CHUNK_CAP);
    let (mut reads, mut writes) = (plan.reads.iter().cycle(), plan.writes.iter().cycle());
    let mut fed = 0;
    let mut eof_sent = false;
    let mut lingering = false;
    let mut got = Vec::new();
    for _round in 0.. {
        assert!(_round < 10_000_000, "no end in sight");
        let mut progressed = false;
        if let Some(job) = router.job.take() {
            assert!(
                conn.is_waiting() && !conn.wants_read(),
                "read while in work"
            );
            if Some(waited) == plan.later {
                let App { state, router: r } = &mut router.app;
                conn.answer_later(now, |out| {
                    r.finish(state, &job, out);
                });
                waited = 0;
            } else {
                router.job = Some(job);
                waited += 1;
            }
            progressed = true;
        }
        if conn.can_resume() {
            conn.resume(&mut router, &limits, now);
            progressed = true;
        }
        if conn.wants_read() {
            if fed < stream.len() {
                let n = reads
                    .next()
                    .copied()
                    .unwrap_or(CHUNK_CAP)
                    .min(stream.len() - fed);
                conn.receive(&stream[fed..fed + n], &mut router, &limits, now);
                fed += n;
                progressed = true;
                if lingering {
                    assert!(conn.output().is_empty(), "answered while lingering");
                }
            } else if plan.eof && !eof_sent {
                conn.eof(&mut router, &limits, now);
                eof_sent = true;
                progressed = true;
            }
        }
        check_bounds(&conn, read_cap, limits);
        let client_reads = !plan.lazy || !conn.wants_read() || fed == stream.len();
        if !conn.output().is_empty() && client_reads {
            let pending = conn.output().len();
            let n = match plan.write_mode {
                0 => pending,
                _ => writes.next().copied().unwrap_or(pending).min(pending),
            };
            got.extend_from_slice(&conn.output()[..n]);
            conn.written(n, now);
            check_bounds(&conn, read_cap, limits);
            progressed = true;
        }
        match conn.next() {
            Next::Close => break,
            Next::Shutdown => {
                assert!(conn.output().is_empty());
                conn.linger(now);
                lingering = true;
                progressed = true;
            }
            Next::Continue => {}
        }
        if !progressed {
            break;
        }
    }
    assert!(conn.output().is_empty() || !lingering);
    // Whatever else arrives after an answer that closed is not answered.
    if lingering && conn.wants_read() {
        conn.receive(
            b"GET /inc?name=i HTTP/1.1\r\n\r\n",
            &mut router,
            &limits,
            now,
        );
        assert!(conn.output().is_empty(), "answered after closing");
    }
    Run {
        out: got,
        metrics: (router.app.state.metrics).render(router.app.state.store.len(), None),
        pending: conn.buffered_input() > 0,
        closed: lingering || conn.next() == Next::Close,
    }
}

/// Output stops growing one answer past the high-water mark; buffered input is at most one
/// read plus one head.
fn check_bounds(conn: &Conn, read_cap: usize, limits: Limits) {
    let out = conn.output().len();
    assert!(
        out < OUTPUT_HIGH_WATER + max_answer(limits),
        "{out} bytes of output pending"
    );
    let held = conn.buffered_input();
    assert!(
        held <= read_cap + limits.max_head_bytes,
        "{held} bytes of input buffered (reads of up to {read_cap})"
    );
}

/// The largest single answer: `/metrics`, or a `400` that quotes a value from the head.
fn max_answer(limits: Limits) -> usize {
    16 * 1024 + limits.max_head_bytes
}

/// What the model expects of one answer.
#[derive(Debug, Clone, Copy)]
struct Expect {
    /// A framing error: its status; the connection closes.
    refused: Option<u16>,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
    method: Method,
}

/// The framing rules of docs/reference.md applied to the whole stream at once: which requests get an
/// answer, of what kind, and where answering stops.
fn model(stream: &[u8], max_head: usize) -> Vec<Expect> {
    let mut expect = Vec::new();
    let mut pos = 0;
    loop {
        while stream.get(pos).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            pos += 1;
        }
        let rest = &stream[pos..];
        if rest.is_empty() {
            break;
        }
        let refuse = |status| Expect {
            refused: Some(status),
            head_only: false,
            keep_alive: false,
            http10: false,
            method: Method::Other,
        };
        match http::parse(&rest[..rest.len().min(max_head)]) {
            Ok(Some((req, len))) => {
                let mut body = 0;
                if let Some(mut skip) = BodySkip::new(req.body, max_head) {
                    match skip.skip(&rest[len..]) {
                        Err(e) => {
                            expect.push(refuse(e.status()));
                            break;
                        }
                        Ok(_) if !skip.is_done() => break, // the body is still to come
                        Ok(n) => body = n,
                    }
                }
                pos += len + body;
                expect.push(Expect {
                    refused: None,
                    head_only: req.method == Method::Head,
                    keep_alive: req.keep_alive,
                    http10: req.http10,
                    method: req.method,
                });
                if !req.keep_alive {
                    break;
                }
            }
            Ok(None) if rest.len() > max_head => {
                expect.push(refuse(431));
                break;
            }
            Ok(None) if http::find_head_end(rest, 0).is_some() => {
                expect.push(refuse(400));
                break;
            }
            Ok(None) => break,
            Err(e) => {
                expect.push(refuse(e.status()));
                break;
            }
        }
    }
    expect
}

/// Checks that `out` is exactly the answers `expected`, each well formed.
fn check_answers(out: &[u8], expected: &[Expect], limits: Limits) {
    let mut rest = out;
    for (k, want) in expected.iter().enumerate() {
        let (status, len, _) = answer_at(rest, want.head_only);
        let head_end = http::find_head_end(rest, 0).unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let ctx = || format!("answer {k} ({want:?}): {head:?}");
        assert!(len <= max_answer(limits), "{}", ctx());
        let mut lines = head.split("\r\n");
        lines.next(); // status line, checked by answer_at
        let mut next = || lines.next().unwrap_or_default();
        assert_eq!(
            next(),
            "Content-Type: text/plain; charset=utf-8",
            "{}",
            ctx()
        );
        assert!(next().starts_with("Content-Length: "), "{}", ctx());
        assert_eq!(next(), "Date: Thu, 01 Jan 1970 00:00:00 GMT", "{}", ctx());
        let mut line = next();
        if !want.keep_alive {
            assert_eq!(line, "Connection: close", "{}", ctx());
            line = next();
        } else if want.http10 {
            assert_eq!(line, "Connection: keep-alive", "{}", ctx());
            line = next();
        }
        match (want.refused, want.method) {
            (Some(refused), _) => assert_eq!(status, refused, "{}", ctx()),
            (None, Method::Other) => {
                assert_eq!(status, 405, "{}", ctx());
                assert_eq!(line, "Allow: GET, HEAD", "{}", ctx());
                line = next();
            }
            (None, _) => assert!(matches!(status, 200 | 400 | 404 | 409 | 507), "{}", ctx()),
        }
        assert_eq!(line, "", "{}", ctx());
        assert_eq!(next(), "", "{}", ctx());
        assert!(lines.next().is_none(), "{}", ctx());
        if !want.head_only {
            let body = &rest[head_end..len];
            assert!(body.ends_with(b"\n"), "{}: body {body:?}", ctx());
        }
        rest = &rest[len..];
    }
    assert!(
        rest.is_empty(),
        "{} answers expected, then {:?}",
        expected.len(),
        String::from_utf8_lossy(rest)
    );
}

/// Reads the answer at the start of `out`: its status, its length (head, and body unless
/// `head_only`), and whether it closes. Panics unless the status line and `Content-Length`
/// are well formed and the whole answer is there.
fn answer_at(out: &[u8], head_only: bool) -> (u16, usize, bool) {
    let (r, len) = testkit::parse_response(out, head_only).expect("a whole answer");
    let status_line = r.raw_head.split("\r\n").next().unwrap();
    assert_eq!(
        status_line,
        format!("HTTP/1.1 {} {}", r.status, http::reason(r.status))
    );
    assert_ne!(http::reason(r.status), "Unknown");
    assert!(r.header("Content-Length").is_some(), "{:?}", r.raw_head);
    (r.status, len, r.closes())
}

// ---------------------------------------------------------------------------------------
// journal

/// Journal replay on arbitrary bytes never panics, and its verdict is one of: a fresh
/// journal, whole turns (or records) with what follows them described, or damage at an
/// offset inside the input. Then the input, read as `(name, value)` pairs, is written as
/// turns, replayed and compacted, and both give back exactly the counters written.
pub fn journal(data: &[u8]) {
    use crate::journal::{self, Seal, Tail};
    let mut store = Store::new(1000);
    match journal::replay(data, &mut store) {
        Ok(r) => {
            assert!(r.good <= data.len());
            match r.tail {
                Tail::None => assert_eq!(r.good, data.len(), "only a tail is left unread"),
                Tail::Torn => assert!(r.good < data.len()),
                Tail::ValidAfter { next } => assert!(r.good <= next && next < data.len()),
                Tail::Unchecked { nul } => assert!(r.good <= nul && data[nul] == 0),
            }
            if r.good > 0 {
                assert_eq!(data[r.good - 1], b'\n');
            }
            if r.fresh {
                assert_eq!(r.records, 0);
            }
        }
        Err(e) => assert!(e.offset < data.len(), "{e}"),
    }

    // Round trip: names are any UTF-8 (lossily made from the input), values any i64, a
    // turn every few changes.
    let salt = crate::journal::crc32c::checksum(data);
    let seal = Seal::new(salt);
    let mut model: Vec<(String, i64)> = Vec::new();
    let mut file = journal::compacted([], salt);
    let mut turn = Vec::new();
    for (k, chunk) in data.chunks(12).take(64).enumerate() {
        let (name, value) = chunk.split_at(chunk.len().saturating_sub(8));
        let name = String::from_utf8_lossy(name).into_owned();
        if name.is_empty() {
            continue;
        }
        let mut v = [0u8; 8];
        v[..value.len()].copy_from_slice(value);
        let value = i64::from_le_bytes(v);
        if value % 3 == 0 && model.iter().any(|(n, old)| *n == name && *old < i64::MAX) {
            journal::inc(&mut turn, &name);
            let entry = model.iter_mut().find(|(n, _)| *n == name).unwrap();
            entry.1 += 1;
        } else {
            journal::set(&mut turn, &name, value);
            match model.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = value,
                None => model.push((name, value)),
            }
        }
        if k % 3 == 2 {
            file.extend_from_slice(&turn);
            seal.commit(&turn, &mut file);
            turn.clear();
        }
    }
    if !turn.is_empty() {
        file.extend_from_slice(&turn);
        seal.commit(&turn, &mut file);
    }
    let mut back = Store::new(1000);
    let r = journal::replay(&file, &mut back).expect("turns we wrote replay");
    assert_eq!((r.good, r.tail), (file.len(), Tail::None));
    let mut compacted = Store::new(1000);
    journal::replay(&journal::compacted(back.iter(), !salt), &mut compacted)
        .expect("compacted form");
    assert_eq!(back.len(), model.len());
    assert_eq!(compacted.len(), model.len());
    for (name, value) in &model {
        assert_eq!(back.get(name), Some(*value), "{name:?}");
        assert_eq!(compacted.get(name), Some(*value), "{name:?}");
    }
}

/// Journal replay over the states a power cut leaves. The input writes a journal as
/// counterd does (a compacted part, then turns), says how much of it `--fsync` had synced,
/// and what the crash kept of the rest: which pages (of a size it picks) reached the disk,
/// whether each lost one reads as NULs or as an older journal's bytes, and where the size
/// stopped. Replay must recover exactly what the crash simulator's oracle reads from the
/// bytes — the counters after the last turn that is all there, cut as a torn tail or with
/// valid turns after it — keep every synced turn, and under `always` never meet valid
/// turns after a bad one.
///
/// Layout: mode, turns, page size, salt (2 bytes), then the changes (one byte each, as
/// many as the turns take), the synced turn (everysec), then the crash: one byte per 8
/// pages (kept or lost), one per 8 lost pages (NULs or old bytes), one for the size.
pub fn journal_crash(data: &[u8]) {
    use crate::config::Fsync;
    use crate::journal::{self, Seal};
    use crate::journal_sim::{Expect, Tag, check_replay, oracle};

    let mut input = data.iter().copied();
    let mut byte = move || input.next().unwrap_or(0);
    let fsync = [Fsync::Always, Fsync::EverySec, Fsync::No][usize::from(byte() % 3)];
    let turns = 1 + usize::from(byte() % 16);
    let page = [1, 3, 16, 64, 4096][usize::from(byte() % 5)];
    let salt = u32::from(byte()) << 8 | u32::from(byte());
    const NAMES: [&str; 4] = ["i", "j", "a b", "n"];
    let state = |s: &Store| {
        let mut v: Vec<(String, i64)> = s.iter().map(|(n, v)| (n.to_string(), v)).collect();
        v.sort();
        v
    };

    // The journal as written, turn by turn, and the counters after each.
    let mut store = Store::new(100);
    store.set("i", 0).unwrap();
    let mut w = journal::compacted(state(&store).iter().map(|(n, v)| (n.as_str(), *v)), salt);
    let mut segments = vec![(0, w.len(), Tag::Compacted(0))];
    let mut states = vec![state(&store)];
    let seal = Seal::new(salt);
    for k in 1..=turns {
        let mut records = Vec::new();
        for c in 0..1 + byte() % 4 {
            let b = byte();
            let name = NAMES[usize::from(b % 4)];
            if c == 0 || b & 4 != 0 {
                let v = i64::from(b as i8) << (b >> 5);
                store.set(name, v).unwrap();
                journal::set(&mut records, name, v);
            } else if store.inc(name).is_ok() {
                journal::inc(&mut records, name);
            }
        }
        let start = w.len();
        w.extend_from_slice(&records);
        seal.commit(&records, &mut w);
        segments.push((start, w.len(), Tag::Turn(k)));
        states.push(state(&store));
    }
    // What was synced: every turn but the last under `always`; some under `everysec`;
    // only the compacted part (the rewrite's own fsync) under `no`.
    let synced = match fsync {
        Fsync::Always => turns - 1,
        Fsync::EverySec => usize::from(byte()) % (turns + 1),
        Fsync::No => 0,
    };
    let durable = segments[synced].1;
    // An older journal, whose bytes a reused block may hold.
    let mut old = journal::compacted([("j", 1), ("i", 99)], salt ^ 0xa5a5);
    for _ in 0..32 {
        old.extend_from_slice(b"inc i\n");
        Seal::new(salt ^ 0xa5a5).commit(b"inc i\n", &mut old);
    }

    // The crash.
    let mut f = w.clone();
    let first = durable / page;
    let pages = w.len().div_ceil(page) - first;
    let (mut kept, mut stale) = (0u8, 0u8);
    let mut last_kept_end = durable;
    for p in 0..pages {
        if p % 8 == 0 {
            (kept, stale) = (byte(), byte());
        }
        let range = ((first + p) * page).max(durable)..((first + p + 1) * page).min(w.len());
        if kept & (1 << (p % 8)) != 0 {
            last_kept_end = range.end;
            continue;
        }
        for i in range {
            f[i] = if stale & (1 << (p % 8)) != 0 {
                old.get(i).copied().unwrap_or(0)
            } else {
                0
            };
        }
    }
    let size = byte();
    let len = match size % 4 {
        0 | 1 => w.len(),
        2 => last_kept_end,
        _ => durable + usize::from(size >> 2) * (w.len() - durable) / 63,
    };
    f.truncate(len);

    let expect = oracle(&segments, &w, &f);
    let Expect::Recover {
        turn, valid_after, ..
    } = expect
    else {
        panic!("synced bytes cannot be lost: {expect:?}");
    };
    assert!(
        turn >= synced,
        "turn {synced} was synced, recovered to {turn}"
    );
    if let Err(e) = check_replay(&segments, &f, &expect, &states) {
        panic!("{e}");
    }
    if fsync == Fsync::Always {
        assert!(!valid_after, "under always only the last turn is unsynced");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_trivial_inputs() {
        for data in [
            &b""[..],
            b"\0",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"%",
            b"\xff\xff",
        ] {
            parse_request(data);
            query(data);
            connection(data);
        }
    }

    #[test]
    fn connection_plan_layout() {
        let (plan, stream) = plan(b"\x51\x02\x00\xffabc");
        assert!(plan.eof && !plan.lazy);
        assert_eq!(plan.reads, [1, CHUNK_CAP]);
        assert_eq!(plan.max_head, 2048);
        assert_eq!(stream, b"abcabc");
    }

    #[test]
    fn model_follows_a_pipelined_stream() {
        let stream =
            b"GET /get?name=i HTTP/1.1\r\nHost: x\r\n\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nxx\
                       GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let m = model(stream, 8192);
        assert_eq!(m.len(), 3);
        assert!(m[1].head_only && !m[2].keep_alive);
        assert_eq!(
            model(
                b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x\r\n\r\n",
                8192
            )[0]
            .refused,
            Some(400)
        );
    }
}
