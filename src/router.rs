//! Request → store → response: the counter API with the bodies of the original program
//! and honest status codes.
//!
//! Three parts, so that each is named once:
//! - [`State`]: what every request shares — the store, the metrics, the rate limiter, the
//!   cached `Date`, this turn's journal records. The reactor owns it; one thread touches it.
//! - [`Router`]: the dispatcher. It answers a request now, or, when the request needs work
//!   that the loop does not block for (`--work timer|pool`), hands back the [`Job`] to finish
//!   once the work is done ([`Router::finish`]).
//! - [`App`]: both, answering every request at once — the thread-per-connection twins of
//!   `examples/`, the unit tests and the fuzz targets use it.

use std::borrow::Cow;
use std::fmt::Display;
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use log::{debug, warn};

use crate::config::Config;
use crate::conn::{Answer, Refuse, Service};
use crate::episode::Episode;
use crate::http::{self, ContentType, Framing, HttpDate, Method, Reply, Request};
use crate::journal;
use crate::metrics::{Metrics, Process, Route};
use crate::query;
use crate::ratelimit::RateLimiter;
use crate::store::{Counters, IncError, Store};
use crate::trace::{self, Recorder};
use crate::work::{Job, Op, Work, WorkMode};

/// Longest counter name, in bytes (after decoding).
pub const MAX_NAME: usize = 256;

/// `GET /dashboard`: one self-contained page that polls `/metrics` and draws the loop live.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// What every request shares, owned by the one thread that serves them.
pub struct State<C = Store> {
    /// The counters: the reactor's own [`Store`], or, in the thread-per-connection twins
    /// of `examples/`, a handle to one shared behind a lock or a manager thread.
    pub store: C,
    pub metrics: Metrics,
    pub date: HttpDate,
    limiter: Option<RateLimiter>,
    /// One warning per episode of rate limiting, not one per refused request.
    rate_limiting: Episode,
    /// For `process_start_time_seconds`.
    pub started: SystemTime,
    /// Reads the `process_*` series for `/metrics`: `os::sample` in the server, nothing
    /// by default, so that the router stays free of I/O and its answers deterministic.
    pub process: fn(SystemTime) -> Option<Process>,
    /// With `--journal` (see [`State::keep_journal`]): the records of this turn's changes,
    /// which the reactor writes (and syncs) before any of this turn's answers go out.
    journaling: bool,
    pub records: Vec<u8>,
    /// The flight recorder of the loop's last turns, answered by `GET /trace`. The
    /// reactor records into it; a router without a loop (the twins) leaves it empty.
    pub trace: Recorder,
}

impl<C: Counters> State<C> {
    /// The state for `config`'s rate limit, answering from `store`.
    pub fn new(store: C, config: &Config, date: HttpDate) -> State<C> {
        State {
            store,
            metrics: Metrics::default(),
            date,
            limiter: config
                .rate
                .map(|r| RateLimiter::new(r.per_second, r.burst, RateLimiter::DEFAULT_MAX_TRACKED)),
            rate_limiting: Episode::default(),
            started: SystemTime::now(),
            process: |_| None,
            journaling: false,
            records: Vec::new(),
            trace: Recorder::new(2, 0, 0, Instant::now()),
        }
    }

    /// Records every change in [`State::records`] from now on.
    pub fn keep_journal(&mut self) {
        self.journaling = true;
        self.metrics.journal.on = true;
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

    fn bad_request(&mut self, out: &mut Vec<u8>, framing: Framing, why: impl Display) -> u16 {
        let body = format!("{why}\n");
        self.reply(out, framing, 400, None, &[body.as_bytes()])
    }
}

/// The dispatcher: which route, which checks, and when the answer is formed.
#[derive(Debug, Clone, Copy)]
pub struct Router {
    /// `--work-us` and `--work`: what a counter request waits for before its answer.
    work: Work,
}

/// What [`Router::handle`] did with a request.
#[derive(Debug)]
pub enum Handled {
    /// The answer is in the output.
    Now,
    /// The request waits for work the loop does not block for; [`Router::finish`] answers
    /// it once the work is done.
    Later(Job),
}

impl Router {
    pub fn new(work: Work) -> Router {
        Router { work }
    }

    pub fn work(&self) -> Work {
        self.work
    }

    /// Answers one request into `out`, or hands back the job that will.
    pub fn handle<C: Counters>(
        &self,
        st: &mut State<C>,
        req: &Request<'_>,
        peer: IpAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Handled {
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
            "/trace" => Route::Trace,
            _ => Route::Other,
        };
        st.metrics.request(route);
        let status = match self.dispatch(st, route, req.method, query, peer, now, framing, out) {
            Ok(status) => status,
            Err(job) => {
                debug!("{peer} {} {} -> in work", req.method_name, req.target);
                return Handled::Later(job);
            }
        };
        debug!("{peer} {} {} -> {status}", req.method_name, req.target);
        Handled::Now
    }

    /// The status of the answer written, or the job to finish after the work.
    #[allow(clippy::too_many_arguments)]
    fn dispatch<C: Counters>(
        &self,
        st: &mut State<C>,
        route: Route,
        method: Method,
        query: &str,
        peer: IpAddr,
        now: Instant,
        framing: Framing,
        out: &mut Vec<u8>,
    ) -> Result<u16, Job> {
        if let Some(limiter) = &mut st.limiter {
            if let Err(secs) = limiter.check(peer, now) {
                st.metrics.rate_limited += 1;
                if st.rate_limiting.begins(now) {
                    warn!(
                        "rate limiting clients, starting with {peer} (--rate); see counterd_rate_limited_total"
                    );
                }
                let mut n = itoa::Buffer::new();
                let retry = Some(("Retry-After", n.format(secs).as_bytes()));
                return Ok(st.reply(out, framing, 429, retry, &[b"too many requests\n"]));
            }
        }
        if method == Method::Other {
            let allow = Some(("Allow", &b"GET, HEAD"[..]));
            return Ok(st.reply(out, framing, 405, allow, &[b"method not allowed\n"]));
        }
        let op = match route {
            Route::Get | Route::Set | Route::Inc => match op(route, query) {
                Ok(op) => op,
                Err(why) => return Ok(st.bad_request(out, framing, why)),
            },
            Route::Metrics => {
                let process = (st.process)(st.started);
                let text = st.metrics.render(st.store.count(), process.as_ref());
                return Ok(st.reply(out, framing, 200, None, &[text.as_bytes()]));
            }
            Route::Dashboard => {
                let body = [DASHBOARD.as_bytes()];
                return Ok(st.respond(out, framing, 200, None, &body, ContentType::Html));
            }
            Route::Trace => {
                // `?turns=N`: the newest N whole turns (the dashboard asks for 60); else all.
                let turns = match query::find(query, ["turns"]) {
                    Ok([Some(n)]) => n.parse().unwrap_or(usize::MAX),
                    _ => usize::MAX,
                };
                let mut json = Vec::new();
                trace::render_json(&[&st.trace], turns, &mut json);
                let body = [json.as_slice()];
                return Ok(st.respond(out, framing, 200, None, &body, ContentType::Json));
            }
            Route::Other => {
                return Ok(st.reply(out, framing, 404, None, &[b"404 page not found\n"]));
            }
        };
        let (op, name) = op;
        if !self.work.time.is_zero() {
            match self.work.mode {
                // The problem the other modes answer: this blocks every client of the loop.
                WorkMode::Sleep => std::thread::sleep(self.work.time),
                WorkMode::Spin => spin(self.work.time),
                WorkMode::Timer | WorkMode::Pool => {
                    let name = name.into_owned().into_boxed_str();
                    return Err(Job { op, name, framing });
                }
            }
        }
        Ok(apply(st, op, &name, framing, out))
    }

    /// The answer to a request whose work is done: the counter operation runs now, on the
    /// thread that owns the store, and the answer reflects the value at this moment.
    pub fn finish<C: Counters>(&self, st: &mut State<C>, job: &Job, out: &mut Vec<u8>) -> u16 {
        let status = apply(st, job.op, &job.name, job.framing, out);
        debug!("{:?} {} after work -> {status}", job.op, job.name);
        status
    }
}

/// Computes for `time` on this core: CPU work, not a wait.
fn spin(time: std::time::Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

/// The counter operation a request asks for, checked before any work is done for it.
fn op(route: Route, query: &str) -> Result<(Op, Cow<'_, str>), String> {
    let (name, val) = params(query)?;
    let op = match route {
        Route::Get => Op::Get,
        Route::Inc => Op::Inc,
        _ => {
            let Some(val) = val else {
                return Err("missing val".into());
            };
            // i64's parser is exactly "optional sign, then decimal digits, in range".
            match val.parse::<i64>() {
                Ok(v) => Op::Set(v),
                Err(_) => return Err(format!("invalid val \"{val}\": want a decimal i64")),
            }
        }
    };
    Ok((op, name))
}

/// Runs `op` on the store and writes its answer (and, with a journal, its record).
fn apply<C: Counters>(
    st: &mut State<C>,
    op: Op,
    name: &str,
    framing: Framing,
    out: &mut Vec<u8>,
) -> u16 {
    match op {
        Op::Get => match st.store.get(name) {
            Some(v) => {
                let mut n = itoa::Buffer::new();
                let body = [name.as_bytes(), b": ", n.format(v).as_bytes(), b"\n"];
                st.reply(out, framing, 200, None, &body)
            }
            None => st.reply(out, framing, 404, None, &[name.as_bytes(), b" not found\n"]),
        },
        Op::Set(val) => match st.store.set(name, val) {
            Ok(()) => {
                if st.journaling {
                    journal::set(&mut st.records, name, val);
                }
                st.reply(out, framing, 200, None, &[b"ok\n"])
            }
            Err(_) => {
                let mut n = itoa::Buffer::new();
                let max = n.format(st.store.max()).as_bytes();
                let body = [&b"too many counters (limit "[..], max, b")\n"];
                st.reply(out, framing, 507, None, &body)
            }
        },
        Op::Inc => match st.store.inc(name) {
            Ok(_) => {
                if st.journaling {
                    journal::inc(&mut st.records, name);
                }
                st.reply(out, framing, 200, None, &[b"ok\n"])
            }
            Err(IncError::NotFound) => {
                st.reply(out, framing, 404, None, &[name.as_bytes(), b" not found\n"])
            }
            Err(IncError::Overflow) => {
                let body = [name.as_bytes(), b": increment would overflow\n"];
                st.reply(out, framing, 409, None, &body)
            }
        },
    }
}

/// The state and the dispatcher together, answering every request at once: where a
/// request needs work the loop would not block for, this blocks for it instead. For
/// whoever serves one connection per thread (`examples/`), and for tests and fuzzing.
pub struct App<C = Store> {
    pub state: State<C>,
    pub router: Router,
}

impl<C: Counters> App<C> {
    pub fn new(store: C, config: &Config, date: HttpDate) -> App<C> {
        App {
            state: State::new(store, config, date),
            router: Router::new(config.work),
        }
    }

    /// Answers one request, appending the response to `out`.
    pub fn handle(&mut self, req: &Request<'_>, peer: IpAddr, now: Instant, out: &mut Vec<u8>) {
        if let Handled::Later(job) = self.router.handle(&mut self.state, req, peer, now, out) {
            std::thread::sleep(self.router.work().time);
            self.router.finish(&mut self.state, &job, out);
        }
    }
}

impl<C: Counters> Service for App<C> {
    fn answer(
        &mut self,
        req: &Request<'_>,
        peer: IpAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Answer {
        self.handle(req, peer, now, out);
        Answer::Now
    }
}

impl<C: Counters> Refuse for App<C> {
    fn refuse(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        why: &dyn Display,
    ) {
        self.state.refuse(out, status, extra, why);
    }
}

/// Framing errors, timeouts, the `503` at the cap: counted like every response.
impl<C: Counters> Refuse for State<C> {
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

    fn router() -> App {
        router_with_max(100)
    }

    fn router_with_max(max: usize) -> App {
        let mut r = testkit::router(max);
        r.state.store.set("j", 0).unwrap();
        r
    }

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Sends `GET target` (or another method) and returns (status, headers, body).
    fn call(r: &mut App, method: &str, target: &str) -> (u16, String, String) {
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

    fn get(r: &mut App, target: &str) -> (u16, String) {
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
        r.state.limiter = Some(RateLimiter::new(20.0, 1.0, 100));
        assert_eq!(call(&mut r, "GET", "/get?name=i").0, 200);
        let (status, head, _) = call(&mut r, "GET", "/get?name=i");
        assert_eq!(status, 429);
        assert!(head.contains("\r\nRetry-After: 1"), "{head}");
        assert_eq!(r.state.metrics.rate_limited, 1);
    }
}
