//! What the tests of every layer share (built for tests and fuzzing only): the one parser
//! of HTTP responses, and the one router fixture.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::http::{self, HttpDate};
use crate::router::Router;
use crate::store::Store;

/// A response as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Status line and headers, up to and including the empty line.
    pub raw_head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    /// Every header `name` (case-insensitive), trimmed, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.raw_head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// The body as text (the API's bodies are UTF-8).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }

    /// Whether the response says the connection closes after it.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Parses one response at the start of `buf`; `None` until it is complete. `head_only`:
/// the answer to a HEAD, which has a `Content-Length` but no body.
pub fn parse_response(buf: &[u8], head_only: bool) -> Option<(Response, usize)> {
    let end = http::find_head_end(buf, 0)?;
    let raw_head = String::from_utf8(buf[..end].to_vec()).expect("an ASCII head");
    let status = raw_head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {raw_head:?}"));
    let mut r = Response {
        status,
        raw_head,
        body: Vec::new(),
    };
    let len: usize = match r.header("Content-Length") {
        Some(v) => v.parse().expect("a numeric Content-Length"),
        None => 0,
    };
    let len = if head_only { 0 } else { len };
    let body = buf.get(end..end + len)?;
    r.body = body.to_vec();
    Some((r, end + len))
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
pub fn router(max: usize) -> Router {
    let mut store = Store::new(max);
    store.set("i", 0).expect("room for i");
    router_with(store, &Config::default())
}

pub fn router_with(store: Store, config: &Config) -> Router {
    let mut r = Router::new(store, config, HttpDate::new(UNIX_EPOCH));
    r.started = SystemTime::UNIX_EPOCH;
    r
}
