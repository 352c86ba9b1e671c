//! What the tests of every layer share (built for tests and fuzzing only): the one parser
//! of HTTP responses — used by the unit tests, the fuzz checks and the integration tests
//! alike — and the one router fixture.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::http::HttpDate;
use crate::router::App;
use crate::store::Store;

/// One parsed HTTP response, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// In the order and case the server wrote them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The head exactly as received, up to and including the empty line.
    pub raw_head: String,
}

impl Response {
    /// The value of the first header called `name` (case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the headers called `name` (case-insensitively).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as UTF-8 (panics otherwise).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    /// Whether the server announced that it closes the connection.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// Asserts status and body at once, with the whole response in the message.
    #[track_caller]
    pub fn assert(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, String::from_utf8_lossy(&self.body).as_ref()),
            (status, body),
            "{self:?}"
        );
    }
}

/// Parses one response at the start of `buf`, framed by its `Content-Length` (or by its
/// head alone if `head_only`, the answer to a HEAD). `None`: not complete yet. Panics on a
/// malformed response: a bad status line or header line, or not exactly one
/// `Content-Length`.
pub fn parse_response(buf: &[u8], head_only: bool) -> Option<(Response, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let raw_head = String::from_utf8(buf[..head_end].to_vec()).expect("response head is UTF-8");
    let mut lines = raw_head[..head_end - 4].split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let reason = parts.next().unwrap_or_default().to_string();
    assert!(
        version.starts_with("HTTP/1."),
        "bad status line {status_line:?}"
    );
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            assert!(
                !n.is_empty() && !n.contains(' '),
                "bad header name in {l:?}"
            );
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        lengths.len(),
        1,
        "want exactly one Content-Length in {raw_head:?}"
    );
    let len: usize = lengths[0]
        .parse()
        .unwrap_or_else(|_| panic!("bad Content-Length in {raw_head:?}"));
    let end = head_end + if head_only { 0 } else { len };
    let body = buf.get(head_end..end)?.to_vec();
    Some((
        Response {
            version,
            status,
            reason,
            headers,
            body,
            raw_head,
        },
        end,
    ))
}

/// Every response in `buf`, which must hold whole responses only.
pub fn parse_responses(mut buf: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (r, used) = parse_response(buf, false).expect("a whole response");
        out.push(r);
        buf = &buf[used..];
    }
    out
}

/// The router every unit test and fuzz check starts from: `i` at 0, room for `max`
/// counters, the default configuration, and a frozen `Date`.
pub fn router(max: usize) -> App {
    let mut store = Store::new(max);
    store.set("i", 0).expect("room for i");
    router_with(store, &Config::default())
}

pub fn router_with(store: Store, config: &Config) -> App {
    let mut r = App::new(store, config, HttpDate::new(UNIX_EPOCH));
    r.state.started = SystemTime::UNIX_EPOCH;
    r
}
