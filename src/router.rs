//! Request → store → response: the counter API with the bodies of the original program
//! and honest status codes.
//!
//! [`Router`] is also the state every connection's requests share (the store, the rate
//! limiter, the metrics, the cached `Date`), all owned by the one reactor thread.

use std::borrow::Cow;
use std::fmt::Display;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, warn};

use crate::config::Config;
use crate::conn::Service;
use crate::episode::Episode;
use crate::http::{self, ContentType, Framing, HttpDate, Method, Reply, Request};
use crate::journal;
use crate::metrics::{Metrics, Process, Route};
use crate::query;
use crate::ratelimit::RateLimiter;
use crate::store::{Counters, IncError, Store};

/// Longest counter name, in bytes (after decoding).
pub const MAX_NAME: usize = 256;

pub struct Router<C = Store> {
    /// The counters: the reactor's own [`Store`], or, in the thread-per-connection twins
    /// of `examples/`, a handle to one shared behind a lock or a manager thread.
    pub store: C,
    pub metrics: Metrics,
    pub limiter: Option<RateLimiter>,
    pub date: HttpDate,
    /// `--work-us`: blocking work per request, a teaching device (see README).
    pub work: Duration,
    /// One warning per episode of rate limiting, not one per refused request.
    pub rate_limiting: Episode,
    /// For `process_start_time_seconds`.
    pub started: SystemTime,
    /// Reads the `process_*` series for `/metrics`: `process::sample` in the server, nothing
    /// by default, so that the router stays free of I/O and its answers deterministic.
    pub process: fn(SystemTime) -> Option<Process>,
    /// With `--journal`: the records of this turn's changes, which the reactor writes (and
    /// syncs) before it lets this turn's answers out.
    pub journal: Option<Vec<u8>>,
}

/// `GET /dashboard`: one self-contained page that polls `/metrics` and draws the loop live.
pub const DASHBOARD: &str = include_str!("dashboard.html");

impl<C: Counters> Router<C> {
    /// A router for `config`'s rate limit and `--work-us`, answering from `store`.
    pub fn new(store: C, config: &Config, date: HttpDate) -> Router<C> {
        Router {
            store,
            metrics: Metrics::default(),
            limiter: config
                .rate
                .map(|r| RateLimiter::new(r.per_second, r.burst, RateLimiter::DEFAULT_MAX_TRACKED)),
            date,
            work: config.work,
            rate_limiting: Episode::default(),
            started: SystemTime::now(),
            process: |_| None,
            journal: None,
        }
    }

    /// Answers one request, appending the response to `out`.
    pub fn handle(&mut self, req: &Request<'_>, peer: IpAddr, now: Instant, out: &mut Vec<u8>) {
        let framing = Framing {
            keep_alive: req.keep_alive,
            http10: req.http10,
            head_only: req.method == Method::Head,
        };
        let (path, query) = split_target(req.target);
        let route = match path {
            "/get" => Route::Get,
            "/set" => Route::Set,
            "/inc" => Route::Inc,
            "/metrics" => Route::Metrics,
            "/dashboard" => Route::Dashboard,
            _ => Route::Other,
        };
        self.metrics.request(route);
        let status = self.dispatch(route, req.method, query, peer, now, framing, out);
        debug!("{peer} {} {} -> {status}", req.method_name, req.target);
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        route: Route,
        method: Method,
        query: &str,
        peer: IpAddr,
        now: Instant,
        framing: Framing,
        out: &mut Vec<u8>,
    ) -> u16 {
        if let Some(limiter) = &mut self.limiter {
            if let Err(secs) = limiter.check(peer, now) {
                self.metrics.rate_limited += 1;
                if self.rate_limiting.begins(now) {
                    warn!(
                        "rate limiting clients, starting with {peer} (--rate); see counterd_rate_limited_total"
                    );
                }
                let mut n = itoa::Buffer::new();
                let retry = Some(("Retry-After", n.format(secs).as_bytes()));
                return self.reply(out, framing, 429, retry, &[b"too many requests\n"]);
            }
        }
        if method == Method::Other {
            let allow = Some(("Allow", &b"GET, HEAD"[..]));
            return self.reply(out, framing, 405, allow, &[b"method not allowed\n"]);
        }
        if !self.work.is_zero() {
            // Deliberately blocking: this is what one slow call does to every client.
            std::thread::sleep(self.work);
        }
        match route {
            Route::Get => self.get(query, framing, out),
            Route::Set => self.set(query, framing, out),
            Route::Inc => self.inc(query, framing, out),
            Route::Metrics => {
                let process = (self.process)(self.started);
                let text = self.metrics.render(self.store.count(), process.as_ref());
                self.reply(out, framing, 200, None, &[text.as_bytes()])
            }
            Route::Dashboard => {
                let body = [DASHBOARD.as_bytes()];
                self.respond(out, framing, 200, None, &body, ContentType::Html)
            }
            Route::Other => self.reply(out, framing, 404, None, &[b"404 page not found\n"]),
        }
    }

    fn get(&mut self, query: &str, framing: Framing, out: &mut Vec<u8>) -> u16 {
        let (name, _) = match params(query) {
            Ok(p) => p,
            Err(why) => return self.bad_request(out, framing, why),
        };
        match self.store.get(&name) {
            Some(v) => {
                let mut n = itoa::Buffer::new();
                let body = [name.as_bytes(), b": ", n.format(v).as_bytes(), b"\n"];
                self.reply(out, framing, 200, None, &body)
            }
            None => self.reply(out, framing, 404, None, &[name.as_bytes(), b" not found\n"]),
        }
    }

    fn set(&mut self, query: &str, framing: Framing, out: &mut Vec<u8>) -> u16 {
        let (name, val) = match params(query) {
            Ok(p) => p,
            Err(why) => return self.bad_request(out, framing, why),
        };
        let Some(val) = val else {
            return self.bad_request(out, framing, "missing val");
        };
        // i64's parser is exactly "optional sign, then decimal digits, in range".
        let Ok(val) = val.parse::<i64>() else {
            let body = [
                &b"invalid val \""[..],
                val.as_bytes(),
                b"\": want a decimal i64\n",
            ];
            return self.reply(out, framing, 400, None, &body);
        };
        match self.store.set(&name, val) {
            Ok(()) => {
                if let Some(records) = &mut self.journal {
                    journal::set(records, &name, val);
                }
                self.reply(out, framing, 200, None, &[b"ok\n"])
            }
            Err(_) => {
                let mut n = itoa::Buffer::new();
                let max = n.format(self.store.max()).as_bytes();
                let body = [&b"too many counters (limit "[..], max, b")\n"];
                self.reply(out, framing, 507, None, &body)
            }
        }
    }

    fn inc(&mut self, query: &str, framing: Framing, out: &mut Vec<u8>) -> u16 {
        let (name, _) = match params(query) {
            Ok(p) => p,
            Err(why) => return self.bad_request(out, framing, why),
        };
        match self.store.inc(&name) {
            Ok(_) => {
                if let Some(records) = &mut self.journal {
                    journal::inc(records, &name);
                }
                self.reply(out, framing, 200, None, &[b"ok\n"])
            }
            Err(IncError::NotFound) => {
                self.reply(out, framing, 404, None, &[name.as_bytes(), b" not found\n"])
            }
            Err(IncError::Overflow) => {
                let body = [name.as_bytes(), b": increment would overflow\n"];
                self.reply(out, framing, 409, None, &body)
            }
        }
    }

    fn bad_request(&mut self, out: &mut Vec<u8>, framing: Framing, why: impl Display) -> u16 {
        let body = format!("{why}\n");
        self.reply(out, framing, 400, None, &[body.as_bytes()])
    }

    fn reply(
        &mut self,
        out: &mut Vec<u8>,
        framing: Framing,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        body: &[&[u8]],
    ) -> u16 {
        self.respond(out, framing, status, extra, body, ContentType::Text)
    }

    /// Every response goes through here, so every response is counted.
    fn respond(
        &mut self,
        out: &mut Vec<u8>,
        framing: Framing,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        body: &[&[u8]],
        content_type: ContentType,
    ) -> u16 {
        self.metrics.response(status);
        http::write_response(
            out,
            &Reply {
                status,
                extra,
                body,
                content_type,
            },
            framing,
            &self.date,
        );
        status
    }
}

/// What a connection asks of the router: answers, and refusals that close.
impl<C: Counters> Service for Router<C> {
    fn answer(&mut self, req: &Request<'_>, peer: IpAddr, now: Instant, out: &mut Vec<u8>) {
        self.handle(req, peer, now, out);
    }

    /// Framing errors, timeouts, the 503 at the cap: counted like every response.
    fn refuse(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        why: &dyn Display,
    ) {
        let body = format!("{why}\n");
        self.reply(out, Framing::CLOSE, status, extra, &[body.as_bytes()]);
    }
}

/// Splits a request target into path and query, accepting absolute-form
/// (`http://host/get?name=x`) as RFC 9112 §3.2.2 requires of servers.
pub fn split_target(target: &str) -> (&str, &str) {
    let origin = match target.as_bytes().first() {
        Some(b'/') => target, // origin-form, the common case
        _ => match scheme_rest(target) {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => target,
        },
    };
    match origin.bytes().position(|b| b == b'?') {
        Some(i) => (&origin[..i], &origin[i + 1..]),
        None => (origin, ""),
    }
}

fn scheme_rest(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    let is_http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    is_http.then_some(rest)
}

/// The `name` and `val` of a query; `Err` is the reason for a `400`.
fn params(query: &str) -> Result<(Cow<'_, str>, Option<Cow<'_, str>>), String> {
    let [name, val] = query::find(query, ["name", "val"]).map_err(|e| e.to_string())?;
    match name {
        None => Err("missing name".into()),
        Some(n) if n.is_empty() => Err("empty name".into()),
        Some(n) if n.len() > MAX_NAME => Err(format!("name longer than {MAX_NAME} bytes")),
        Some(n) => Ok((n, val)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use std::net::Ipv4Addr;

    fn router() -> Router {
        router_with_max(100)
    }

    fn router_with_max(max: usize) -> Router {
        let mut r = testkit::router(max);
        r.store.set("j", 0).unwrap();
        r
    }

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Sends `GET target` (or another method) and returns (status, headers, body).
    fn call(r: &mut Router, method: &str, target: &str) -> (u16, String, String) {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        let (req, _) = http::parse(raw.as_bytes()).unwrap().unwrap();
        let mut out = Vec::new();
        r.handle(&req, PEER, Instant::now(), &mut out);
        let (resp, used) = testkit::parse_response(&out, method == "HEAD").expect("an answer");
        assert_eq!(
            used,
            out.len(),
            "one answer, Content-Length matching its body"
        );
        (resp.status, resp.raw_head.clone(), resp.text().to_string())
    }

    fn get(r: &mut Router, target: &str) -> (u16, String) {
        let (s, _, b) = call(r, "GET", target);
        (s, b)
    }

    #[test]
    fn the_original_session() {
        let mut r = router();
        assert_eq!(get(&mut r, "/set?name=x&val=0"), (200, "ok\n".into()));
        assert_eq!(get(&mut r, "/get?name=x"), (200, "x: 0\n".into()));
        assert_eq!(get(&mut r, "/inc?name=x"), (200, "ok\n".into()));
        assert_eq!(get(&mut r, "/get?name=x"), (200, "x: 1\n".into()));
        assert_eq!(get(&mut r, "/get?name=i"), (200, "i: 0\n".into()));
        assert_eq!(get(&mut r, "/get?name=y"), (404, "y not found\n".into()));
        assert_eq!(get(&mut r, "/inc?name=y"), (404, "y not found\n".into()));
        assert_eq!(
            get(&mut r, "/get?name=y"),
            (404, "y not found\n".into()),
            "inc never creates"
        );
        assert_eq!(get(&mut r, "/nope"), (404, "404 page not found\n".into()));
        assert_eq!(get(&mut r, "/"), (404, "404 page not found\n".into()));
    }

    #[test]
    fn values() {
        let mut r = router();
        for (v, want) in [
            ("-5", "-5"),
            ("+5", "5"),
            ("007", "7"),
            ("9223372036854775807", "9223372036854775807"),
            ("-9223372036854775808", "-9223372036854775808"),
        ] {
            assert_eq!(
                get(&mut r, &format!("/set?name=v&val={}", query::encode(v))).0,
                200,
                "{v}"
            );
            assert_eq!(get(&mut r, "/get?name=v").1, format!("v: {want}\n"));
        }
        for bad in [
            "",
            "abc",
            "1.5",
            " 1",
            "1 ",
            "0x10",
            "--1",
            "9223372036854775808",
            "1e3",
        ] {
            let (status, body) = get(&mut r, &format!("/set?name=v&val={}", query::encode(bad)));
            assert_eq!(status, 400, "val {bad:?}");
            assert!(
                body.contains(&format!("\"{bad}\"")),
                "body names the value: {body}"
            );
        }
        assert_eq!(get(&mut r, "/set?name=v"), (400, "missing val\n".into()));
        assert_eq!(
            get(&mut r, "/get?name=v").1,
            "v: -9223372036854775808\n",
            "refused sets change nothing"
        );
    }

    #[test]
    fn overflow_is_409_and_keeps_the_value() {
        let mut r = router();
        get(&mut r, "/set?name=m&val=9223372036854775807");
        assert_eq!(
            get(&mut r, "/inc?name=m"),
            (409, "m: increment would overflow\n".into())
        );
        assert_eq!(get(&mut r, "/get?name=m").1, "m: 9223372036854775807\n");
    }

    #[test]
    fn names() {
        let mut r = router();
        for target in ["/get", "/get?", "/get?nam=x", "/inc?val=1", "/set?val=1"] {
            assert_eq!(
                get(&mut r, target),
                (400, "missing name\n".into()),
                "{target}"
            );
        }
        assert_eq!(get(&mut r, "/get?name="), (400, "empty name\n".into()));
        let n256 = "a".repeat(256);
        assert_eq!(get(&mut r, &format!("/set?name={n256}&val=1")).0, 200);
        assert_eq!(
            get(&mut r, &format!("/get?name={n256}")).1,
            format!("{n256}: 1\n")
        );
        let n257 = "a".repeat(257);
        assert_eq!(get(&mut r, &format!("/get?name={n257}")).0, 400);
        // 256 bytes after decoding: 128 two-byte characters.
        let e128 = "%C3%A9".repeat(128);
        assert_eq!(get(&mut r, &format!("/set?name={e128}&val=2")).0, 200);
        assert_eq!(get(&mut r, &format!("/set?name={e128}a&val=2")).0, 400);
        assert_eq!(get(&mut r, "/set?name=a+b%21&val=3").0, 200);
        assert_eq!(get(&mut r, "/get?name=a%20b!").1, "a b!: 3\n");
        assert_eq!(
            get(&mut r, "/get?name=x&name=i").1,
            "x not found\n",
            "first wins"
        );
        assert_eq!(get(&mut r, "/get?junk=1&name=i&other").1, "i: 0\n");
    }

    #[test]
    fn bad_queries_are_400() {
        let mut r = router();
        assert_eq!(get(&mut r, "/get?name=%zz").0, 400);
        assert_eq!(get(&mut r, "/get?name=%ff").0, 400);
        assert_eq!(get(&mut r, "/set?name=x&val=1&z=%").0, 400);
        assert_eq!(
            get(&mut r, "/get?name=x").0,
            404,
            "the bad set created nothing"
        );
    }

    #[test]
    fn max_counters_is_507() {
        let mut r = router_with_max(4); // i and j preloaded
        assert_eq!(get(&mut r, "/set?name=a&val=1").0, 200);
        assert_eq!(get(&mut r, "/set?name=b&val=1").0, 200);
        let (status, body) = get(&mut r, "/set?name=c&val=1");
        assert_eq!(
            (status, body.as_str()),
            (507, "too many counters (limit 4)\n")
        );
        assert_eq!(
            get(&mut r, "/set?name=a&val=5").0,
            200,
            "existing names still settable"
        );
    }

    #[test]
    fn methods() {
        let mut r = router();
        let (status, head, body) = call(&mut r, "POST", "/set?name=i&val=5");
        assert_eq!(status, 405);
        assert!(head.contains("\r\nAllow: GET, HEAD"), "{head}");
        assert_eq!(body, "method not allowed\n");
        assert_eq!(get(&mut r, "/get?name=i").1, "i: 0\n", "405 did not set");
        let (status, head, body) = call(&mut r, "HEAD", "/get?name=i");
        assert_eq!((status, body.as_str()), (200, ""));
        assert!(
            head.contains("Content-Length: 5\r\n"),
            "HEAD has GET's length: {head}"
        );
        assert_eq!(call(&mut r, "HEAD", "/inc?name=i").0, 200);
        assert_eq!(
            get(&mut r, "/get?name=i").1,
            "i: 1\n",
            "HEAD /inc increments"
        );
    }

    #[test]
    fn absolute_form() {
        let mut r = router();
        assert_eq!(get(&mut r, "http://h:8000/get?name=i").1, "i: 0\n");
        assert_eq!(get(&mut r, "HTTP://h/inc?name=i").0, 200);
        assert_eq!(split_target("http://h"), ("/", ""));
        assert_eq!(split_target("/get?a=b?c"), ("/get", "a=b?c"));
        assert_eq!(split_target("*"), ("*", ""));
    }

    #[test]
    fn metrics_route_and_counting() {
        let mut r = router();
        get(&mut r, "/inc?name=i");
        get(&mut r, "/get?name=nope");
        let (status, body) = get(&mut r, "/metrics");
        assert_eq!(status, 200);
        assert!(
            body.contains("counterd_requests_total{route=\"inc\"} 1\n"),
            "{body}"
        );
        assert!(body.contains("counterd_requests_total{route=\"metrics\"} 1\n"));
        assert!(body.contains("counterd_responses_total{code=\"404\"} 1\n"));
        assert!(body.contains("counterd_counters 2\n"));
    }

    #[test]
    fn rate_limit_is_429_with_retry_after() {
        let mut r = router();
        r.limiter = Some(RateLimiter::new(20.0, 1.0, 100));
        assert_eq!(call(&mut r, "GET", "/get?name=i").0, 200);
        let (status, head, _) = call(&mut r, "GET", "/get?name=i");
        assert_eq!(status, 429);
        assert!(head.contains("\r\nRetry-After: 1"), "{head}");
        assert_eq!(r.metrics.rate_limited, 1);
    }
}
