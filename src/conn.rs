//! One client connection as a state machine: bytes in, bytes out, no socket.
//!
//! The reactor feeds it what it reads ([`Conn::receive`], [`Conn::eof`]), writes what
//! [`Conn::output`] holds and reports it ([`Conn::written`]), asks [`Conn::wants_read`]
//! before reading, [`Conn::next`] after each round, and [`Conn::deadline`] for its timer.
//! Everything about HTTP/1.x on a stream lives here: pipelining, bodies to skip, closing
//! rules, half-close, output backpressure and the per-request clocks.
//!
//! What a request means is not its business: it hands each complete request to a
//! [`Service`] (the router, in counterd), which answers it now or later. A request
//! answered later is served as Go's `net/http` serves a connection: one request at a time,
//! so the connection reads nothing more until [`Conn::answer_later`] brings the answer,
//! and the answers stay in request order.

use std::mem;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::http::{self, BodySkip, Request};
use crate::metrics::Timeout;

/// Past this much unsent output the connection stops reading (and stops answering what it
/// has already read) until the client catches up.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// How long a closing connection keeps draining input after its last answer,
/// so that the client reads that answer instead of a reset.
pub const LINGER: Duration = Duration::from_secs(2);

/// Whether a [`Service`] answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The whole response is in the output.
    Now,
    /// It will come through [`Conn::answer_later`]; until then the connection waits.
    Later,
}

/// What a connection needs from the application behind it, and nothing more: an answer
/// to one complete request, or (through [`Refuse`]) a response that refuses and closes.
pub trait Service: Refuse {
    /// Answers `req` from `peer` by appending the whole response to `out`, or takes it on
    /// to answer later.
    fn answer(
        &mut self,
        req: &Request<'_>,
        peer: IpAddr,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Answer;
}

/// What a connection needs to refuse: for framing errors, timeouts, and whoever refuses a
/// connection as a whole (the `503` at the cap).
pub trait Refuse {
    /// Appends a response with `status`, one optional extra header and `why` as its body,
    /// framed to close the connection.
    fn refuse(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        why: &dyn std::fmt::Display,
    );
}

/// What the reactor should do once it has done the I/O it could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for readiness (or the deadline).
    Continue,
    /// All answers are out: shut down our sending side, then keep reading until the client
    /// closes (see [`LINGER`]).
    Shutdown,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Serving requests.
    Open,
    /// No more requests: flush the answers, then shut our side and linger (see [`LINGER`]).
    Closing,
    /// Our side is shut; input is discarded until the client closes or time runs out.
    Lingering { until: Instant },
    /// Close now, pending output or not.
    Done,
}

pub struct Conn {
    peer: IpAddr,
    state: State,
    /// A request is in work: its answer comes later. Whether the connection stays open
    /// after it (its keep-alive, or false once the server stops).
    waiting: Option<bool>,
    /// The client has closed its sending side.
    read_closed: bool,
    /// Input not yet answered: the start of a request, or (under backpressure) requests
    /// held back. Empty and unallocated between requests.
    inbuf: Vec<u8>,
    /// `inbuf` may hold requests that were held back — by backpressure or behind a request
    /// in work — rather than the start of one still arriving: see [`Conn::resume`].
    held_back: bool,
    /// How far into `inbuf` the end of the head has already been looked for.
    scanned: usize,
    /// How much of `inbuf` httparse has last seen (see `parse_next`).
    parsed: usize,
    /// The head of a request whose body is still arriving; answered once the body is in.
    held_head: Vec<u8>,
    /// Reads past that body as it arrives, holding none of it.
    body: Option<BodySkip>,
    /// Answers; `out[sent..]` is not yet written. The reactor lends this buffer
    /// ([`Conn::lend_buffer`]) and takes it back once it is flushed
    /// ([`Conn::return_buffer`]), so an idle connection holds none.
    out: Vec<u8>,
    /// How much of `out` has reached the socket. Sent bytes are dropped from the front
    /// only once they are at least half the buffer, so a client that reads a little at a
    /// time costs linear copying, not quadratic.
    sent: usize,
    /// When the request now arriving started: the header timeout runs from here.
    request_started: Option<Instant>,
    /// Last answer or write progress: the idle and slow-read timeouts run from here.
    last_progress: Instant,
}

impl Conn {
    pub fn new(peer: IpAddr, now: Instant) -> Conn {
        Conn {
            peer,
            state: State::Open,
            waiting: None,
            held_back: false,
            read_closed: false,
            inbuf: Vec::new(),
            scanned: 0,
            parsed: 0,
            held_head: Vec::new(),
            body: None,
            out: Vec::new(),
            sent: 0,
            request_started: None,
            last_progress: now,
        }
    }

    /// Answers nothing more: `status` goes out after what is already owed, then the
    /// connection closes (lingering). For whoever refuses a connection as a whole, such as
    /// the admission policy's `503` at the cap, and for every framing error.
    pub fn refuse<R: Refuse>(
        &mut self,
        svc: &mut R,
        status: u16,
        extra: Option<(&'static str, &[u8])>,
        why: &dyn std::fmt::Display,
    ) {
        self.inbuf = Vec::new();
        self.held_head = Vec::new();
        self.body = None;
        self.request_started = None;
        svc.refuse(&mut self.out, status, extra, why);
        self.state = State::Closing;
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Whether the reactor should read more. False under backpressure, once the client has
    /// closed, and while a closing connection flushes.
    pub fn wants_read(&self) -> bool {
        !self.read_closed
            && match self.state {
                State::Open => self.waiting.is_none() && self.pending() < OUTPUT_HIGH_WATER,
                State::Lingering { .. } => true,
                State::Closing | State::Done => false,
            }
    }

    /// Bytes read from the client. Answers are appended to [`Conn::out`].
    pub fn receive<S: Service>(&mut self, data: &[u8], svc: &mut S, limits: &Limits, now: Instant) {
        if self.state != State::Open {
            return; // closing or lingering: input is discarded
        }
        if self.inbuf.is_empty() {
            // Common case: whole requests, answered straight from the reactor's buffer.
            let used = self.process(data, svc, limits, now);
            if self.state == State::Open {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.inbuf.extend_from_slice(data);
            self.process_held(svc, limits, now);
        }
        self.update_request_clock(now);
    }

    /// The client will send nothing more. What it sent is still answered.
    ///
    /// A head still arriving is shown to httparse only now and then (see `parse_next`), so
    /// the start of a request held here may already be refusable. It gets its verdict now:
    /// otherwise a client that half-closes after a bad request would get its `400` or
    /// nothing, depending on how its bytes happened to be cut into reads.
    pub fn eof<S: Service>(&mut self, svc: &mut S, limits: &Limits, now: Instant) {
        self.read_closed = true;
        if self.state == State::Open
            && self.body.is_none()
            && !self.inbuf.is_empty()
            && self.pending() < OUTPUT_HIGH_WATER
        {
            self.parsed = 0; // due at once
            self.process_held(svc, limits, now);
            self.update_request_clock(now);
        }
    }

    /// Bytes of input held: the start of a request still arriving, a head whose body is
    /// still arriving, or requests held back by backpressure. For tests and fuzzing.
    #[cfg(any(test, feature = "test-support"))]
    pub fn buffered_input(&self) -> usize {
        self.inbuf.len() + self.held_head.len()
    }

    /// The answers still to be written.
    pub fn output(&self) -> &[u8] {
        if self.state == State::Done {
            &[]
        } else {
            &self.out[self.sent..]
        }
    }

    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Before input is handed over: a connection with no output buffer takes `spare`, the
    /// reactor's, so that in the common case (answers fit in the socket) no connection
    /// ever owns one.
    pub fn lend_buffer(&mut self, spare: &mut Vec<u8>) {
        if self.out.capacity() == 0 {
            mem::swap(&mut self.out, spare);
        }
    }

    /// Once the output is flushed, the larger of the two empty buffers goes back to the
    /// reactor and the connection holds nothing.
    pub fn return_buffer(&mut self, spare: &mut Vec<u8>) {
        if self.pending() == 0 && self.out.capacity() > 0 {
            self.out.clear();
            self.sent = 0;
            if self.out.capacity() > spare.capacity() {
                mem::swap(&mut self.out, spare);
            }
            self.out = Vec::new();
        }
    }

    /// `n` bytes of [`Conn::output`] reached the socket.
    pub fn written(&mut self, n: usize, now: Instant) {
        self.sent += n.min(self.pending());
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent >= self.pending() {
            // Moves fewer bytes than were sent since the last move: linear overall.
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        self.last_progress = now;
    }

    /// Requests held back (by backpressure, or behind a request in work) that can be
    /// answered now: the reactor calls [`Conn::resume`] before it reads more, so that
    /// every small read by the client does not let another full read pile up behind them.
    pub fn can_resume(&self) -> bool {
        self.held_back
            && self.state == State::Open
            && self.waiting.is_none()
            && self.pending() < OUTPUT_HIGH_WATER
    }

    /// Answers what [`Conn::can_resume`] says can be answered.
    pub fn resume<S: Service>(&mut self, svc: &mut S, limits: &Limits, now: Instant) {
        if self.can_resume() {
            if self.read_closed {
                self.parsed = 0; // no more bytes will come: the held head gets its verdict
            }
            self.process_held(svc, limits, now);
            self.update_request_clock(now);
        }
    }

    /// Whether a request is in work, its answer still to come.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// The answer to the request in work: `write` appends it to the output. The requests
    /// that arrived behind it wait for [`Conn::resume`].
    pub fn answer_later(&mut self, now: Instant, write: impl FnOnce(&mut Vec<u8>)) {
        let Some(keep_alive) = self.waiting.take() else {
            return; // nothing is owed (cannot happen: one request in work at a time)
        };
        write(&mut self.out);
        self.answered(keep_alive, now);
    }

    pub fn next(&self) -> Next {
        match self.state {
            State::Done => Next::Close,
            _ if self.pending() > 0 || self.waiting.is_some() => Next::Continue,
            // With nothing left to send, what is buffered is an incomplete request.
            State::Open if self.read_closed => Next::Close,
            State::Open => Next::Continue,
            State::Closing if !self.read_closed => Next::Shutdown,
            State::Closing => Next::Close,
            State::Lingering { .. } if self.read_closed => Next::Close,
            State::Lingering { .. } => Next::Continue,
        }
    }

    /// The reactor has shut down our sending side after [`Next::Shutdown`].
    pub fn linger(&mut self, now: Instant) {
        self.state = State::Lingering {
            until: later(now, LINGER),
        };
    }

    /// Graceful server shutdown: finish writing what is owed, answer nothing new. Requests
    /// already sent but not yet answered are dropped, so the close lingers: closing on
    /// unread input would reset the connection and cut the last answers short.
    pub fn stop(&mut self) {
        // Input not yet answered means the client may still be sending: linger, not close.
        let unanswered = !self.inbuf.is_empty() || self.body.is_some();
        self.inbuf = Vec::new();
        self.held_head = Vec::new();
        self.body = None;
        if let Some(keep_alive) = &mut self.waiting {
            *keep_alive = false; // the request in work is answered, then the connection closes
            return;
        }
        self.state = match self.state {
            State::Open | State::Closing if self.pending() > 0 || unanswered => State::Closing,
            _ => State::Done,
        };
    }

    /// When this connection next needs attention if nothing happens on its socket.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        if let State::Lingering { until } = self.state {
            return until;
        }
        if self.waiting.is_some() && self.pending() == 0 {
            // No idle timeout while a request is in work: the wait is the server's.
            return later(self.last_progress, Duration::MAX);
        }
        let idle = later(self.last_progress, limits.idle_timeout);
        match self.header_clock() {
            Some(started) => idle.min(later(started, limits.header_timeout)),
            None => idle,
        }
    }

    /// The deadline may have passed: answer `408` to a request that is too slow, or give up
    /// on a client that is idle or does not read. Returns the timeout that fired, if any (a
    /// linger running out is no timeout: it is how closing ends).
    pub fn on_timeout<R: Refuse>(
        &mut self,
        svc: &mut R,
        limits: &Limits,
        now: Instant,
    ) -> Option<Timeout> {
        if now < self.deadline(limits) {
            return None;
        }
        if let State::Lingering { .. } = self.state {
            self.state = State::Done;
            return None;
        }
        let header_late = self
            .header_clock()
            .is_some_and(|t| now >= later(t, limits.header_timeout));
        if header_late && self.state == State::Open {
            self.last_progress = now;
            self.refuse(svc, 408, None, &"request not received in time");
            Some(Timeout::Header)
        } else {
            self.state = State::Done;
            Some(Timeout::Idle)
        }
    }

    /// The header clock runs while a request is arriving, but not while the connection is
    /// held back by its own unread output: that is the slow-read guard's business.
    fn header_clock(&self) -> Option<Instant> {
        self.request_started
            .filter(|_| self.pending() < OUTPUT_HIGH_WATER)
    }

    fn update_request_clock(&mut self, now: Instant) {
        let arriving = self.state == State::Open
            && self.waiting.is_none()
            && (self.body.is_some() || !self.inbuf.is_empty());
        if !arriving {
            self.request_started = None;
        } else if self.request_started.is_none() {
            self.request_started = Some(now);
        }
    }

    /// Processes `inbuf` in place (taken out so that requests can borrow from it).
    fn process_held<S: Service>(&mut self, svc: &mut S, limits: &Limits, now: Instant) {
        self.held_back = false;
        let mut buf = mem::take(&mut self.inbuf);
        let used = self.process(&buf, svc, limits, now);
        if self.state == State::Open && used < buf.len() {
            buf.drain(..used);
            self.inbuf = buf;
        } // else: all consumed, or closing; dropping the buffer keeps idle connections small
    }

    /// Answers every complete request at the start of `buf`; returns the bytes consumed.
    fn process<S: Service>(
        &mut self,
        buf: &[u8],
        svc: &mut S,
        limits: &Limits,
        now: Instant,
    ) -> usize {
        let mut pos = 0;
        while self.state == State::Open && self.waiting.is_none() {
            if let Some(skip) = &mut self.body {
                let skipped = skip.skip(&buf[pos..]).map(|n| (n, skip.is_done()));
                match skipped {
                    Ok((n, true)) => pos += n,
                    Ok((n, false)) => {
                        pos += n;
                        break; // the rest of the body is still to come
                    }
                    Err(e) => {
                        // The head is never answered: after broken framing, what follows
                        // could be a request smuggled in the body.
                        self.fail(e, svc);
                        break;
                    }
                }
                self.body = None;
                self.answer_held(svc, now);
                continue;
            }
            if self.pending() >= OUTPUT_HIGH_WATER {
                self.held_back = true;
                break; // backpressure: the rest waits in `inbuf`
            }
            if self.parsed == 0 {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
                while buf.get(pos).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                    pos += 1;
                }
            }
            let rest = &buf[pos..];
            if rest.is_empty() {
                break;
            }
            match self.parse_next(rest, limits.max_head_bytes) {
                Ok(Some((req, len))) => {
                    pos += len;
                    match BodySkip::new(req.body, limits.max_head_bytes) {
                        Some(skip) => {
                            self.held_head.clear();
                            self.held_head.extend_from_slice(&rest[..len]);
                            self.body = Some(skip);
                        }
                        None => self.answer(&req, svc, now),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(e, svc);
                    break;
                }
            }
        }
        pos
    }

    /// Finds the next request head in `rest`, which starts at a request boundary.
    ///
    /// httparse cannot resume, so a head that arrives in pieces is only searched for its
    /// end in the bytes that are new, and handed to httparse when its end shows up, when it
    /// passes the size limit, or when it has doubled since httparse last saw it (so that
    /// garbage still gets an early `400` while the total work stays linear). httparse is
    /// given at most `max_head` bytes, and its verdict on a prefix never changes as more
    /// bytes arrive, so the answer does not depend on how the input was cut into reads.
    fn parse_next<'b>(
        &mut self,
        rest: &'b [u8],
        max_head: usize,
    ) -> Result<Option<(Request<'b>, usize)>, http::Error> {
        // On first sight httparse is the search (one pass over a head that arrived whole).
        let end = match self.parsed {
            0 => None,
            _ => http::find_head_end(rest, self.scanned),
        };
        let due = end.is_some() || rest.len() > max_head || rest.len() >= 2 * self.parsed;
        if due {
            let window = &rest[..rest.len().min(max_head)];
            self.parsed = window.len();
            match http::parse(window) {
                Ok(Some(found)) => {
                    self.scanned = 0;
                    self.parsed = 0;
                    return Ok(Some(found));
                }
                Ok(None) if rest.len() > max_head => return Err(http::Error::HeadTooLarge),
                Ok(None) if end.is_some() => return Err(http::Error::Garbled),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        self.scanned = http::resume_search_at(rest.len());
        Ok(None)
    }

    fn answer<S: Service>(&mut self, req: &Request<'_>, svc: &mut S, now: Instant) {
        match svc.answer(req, self.peer, now, &mut self.out) {
            Answer::Now => self.answered(req.keep_alive, now),
            Answer::Later => {
                // What follows this request waits in `inbuf` until its answer is out.
                self.waiting = Some(req.keep_alive);
                self.held_back = true;
                self.request_started = None;
            }
        }
    }

    fn answered(&mut self, keep_alive: bool, now: Instant) {
        self.last_progress = now;
        self.request_started = None;
        if !keep_alive {
            // Always linger: bytes the client sends after a "close" request, whether they
            // are here already or still on their way, would turn our close into a reset
            // that destroys the answer before the client has read it.
            self.state = State::Closing;
        }
    }

    fn answer_held<S: Service>(&mut self, svc: &mut S, now: Instant) {
        let head = mem::take(&mut self.held_head);
        match http::parse(&head) {
            Ok(Some((req, _))) => self.answer(&req, svc, now),
            Ok(None) => self.fail(http::Error::Garbled, svc),
            Err(e) => self.fail(e, svc),
        }
    }

    fn fail<S: Service>(&mut self, err: http::Error, svc: &mut S) {
        log::debug!("{}: {err}", self.peer);
        svc.refuse(&mut self.out, err.status(), None, &err);
        self.state = State::Closing;
    }
}

/// `t + d`, or a moment too far away to matter if the clock cannot represent it. The CLI
/// bounds every duration, so this is the second line of defence, not the first.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::App;
    use crate::testkit::{self, parse_responses};
    use std::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A connection plus its world, driven the way the reactor drives it.
    struct Harness {
        conn: Conn,
        router: App,
        limits: Limits,
        now: Instant,
    }

    impl Harness {
        fn new() -> Harness {
            Harness::with_limits(Limits::default())
        }

        fn with_limits(limits: Limits) -> Harness {
            let now = Instant::now();
            Harness {
                conn: Conn::new(PEER, now),
                router: testkit::router(1000),
                limits,
                now,
            }
        }

        fn feed(&mut self, bytes: &[u8]) {
            assert!(
                self.conn.wants_read(),
                "fed a connection that does not want to read"
            );
            self.conn
                .receive(bytes, &mut self.router, &self.limits, self.now);
        }

        /// Takes everything the connection has to say, as the client would read it.
        fn drain(&mut self) -> Vec<u8> {
            let mut got = Vec::new();
            loop {
                while !self.conn.output().is_empty() {
                    let n = self.conn.output().len();
                    got.extend_from_slice(self.conn.output());
                    self.conn.written(n, self.now);
                }
                if !self.conn.can_resume() {
                    return got;
                }
                self.conn.resume(&mut self.router, &self.limits, self.now);
            }
        }

        fn responses(&mut self) -> Vec<testkit::Response> {
            parse_responses(&self.drain())
        }

        fn eof(&mut self) {
            self.conn.eof(&mut self.router, &self.limits, self.now);
        }

        fn timeout(&mut self) -> Option<Timeout> {
            self.conn
                .on_timeout(&mut self.router, &self.limits, self.now)
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
        }
    }

    fn get(target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n")
    }

    /// Answers `/slow` later (as the reactor's service does for requests in work), and
    /// everything else at once through the router.
    struct Deferring {
        app: App,
        deferred: usize,
    }

    impl Service for Deferring {
        fn answer(
            &mut self,
            req: &Request<'_>,
            peer: IpAddr,
            now: Instant,
            out: &mut Vec<u8>,
        ) -> Answer {
            if req.target == "/slow" {
                self.deferred += 1;
                return Answer::Later;
            }
            self.app.answer(req, peer, now, out)
        }
    }

    impl Refuse for Deferring {
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

    fn deferring() -> (Conn, Deferring, Limits, Instant) {
        let now = Instant::now();
        let svc = Deferring {
            app: testkit::router(100),
            deferred: 0,
        };
        (Conn::new(PEER, now), svc, Limits::default(), now)
    }

    const LATER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlater\n";

    #[test]
    fn a_request_in_work_holds_what_follows_until_its_answer() {
        let (mut conn, mut svc, limits, now) = deferring();
        let stream = format!(
            "{}{}{}",
            get("/inc?name=i"),
            get("/slow"),
            get("/get?name=i")
        );
        let mut pieces = stream.as_bytes().chunks(5);
        for piece in pieces.by_ref() {
            conn.receive(piece, &mut svc, &limits, now);
            if !conn.wants_read() {
                break;
            }
        }
        assert_eq!(svc.deferred, 1);
        assert!(conn.is_waiting());
        assert!(
            !conn.wants_read(),
            "one request at a time: nothing more is read"
        );
        assert!(!conn.can_resume(), "what follows waits for the answer");
        assert_eq!(conn.next(), Next::Continue, "the answer is owed");
        // What was read before the request went into work is held, nothing more.
        let first = conn.output().len();
        conn.written(first, now);
        let held = conn.buffered_input();
        assert!(held <= get("/get?name=i").len(), "held {held} bytes");
        // No idle or header timeout while the request is in work.
        let later_on = now + limits.idle_timeout * 3;
        assert_eq!(conn.on_timeout(&mut svc, &limits, later_on), None);
        assert!(conn.deadline(&limits) > later_on);
        // The answer comes; what followed is answered next, in order.
        conn.answer_later(now, |out| out.extend_from_slice(LATER));
        assert!(!conn.is_waiting());
        assert!(conn.output().starts_with(LATER));
        assert!(conn.can_resume());
        conn.resume(&mut svc.app, &limits, now);
        assert!(conn.wants_read());
        for piece in pieces {
            conn.receive(piece, &mut svc, &limits, now);
        }
        let rest = conn.output()[LATER.len()..].to_vec();
        let r = parse_responses(&rest);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].text(), "i: 1\n");
    }

    #[test]
    fn a_stop_during_work_answers_the_request_then_closes() {
        let (mut conn, mut svc, limits, now) = deferring();
        conn.receive(
            format!("{}{}", get("/slow"), get("/get?name=i")).as_bytes(),
            &mut svc,
            &limits,
            now,
        );
        assert!(conn.is_waiting());
        conn.stop();
        assert_eq!(
            conn.next(),
            Next::Continue,
            "the answer in work is still owed"
        );
        conn.answer_later(now, |out| out.extend_from_slice(LATER));
        assert_eq!(conn.output(), LATER, "nothing after the stop is answered");
        conn.written(LATER.len(), now);
        assert_eq!(conn.next(), Next::Shutdown);
    }

    #[test]
    fn a_close_request_in_work_closes_after_its_answer() {
        let (mut conn, mut svc, limits, now) = deferring();
        let raw = b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        conn.receive(raw, &mut svc, &limits, now);
        conn.answer_later(now, |out| out.extend_from_slice(LATER));
        conn.written(LATER.len(), now);
        assert_eq!(conn.next(), Next::Shutdown);
    }

    #[test]
    fn an_incomplete_request_is_not_something_to_resume() {
        let mut h = Harness::new();
        h.feed(b"GET /get?name=i HTTP/1.1\r\nHo");
        assert!(h.conn.buffered_input() > 0);
        assert!(
            !h.conn.can_resume(),
            "resuming would find nothing to answer"
        );
    }

    #[test]
    fn one_request_one_answer_and_nothing_held() {
        let mut h = Harness::new();
        h.feed(get("/inc?name=i").as_bytes());
        let r = h.responses();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].status, r[0].text()), (200, "ok\n"));
        assert_eq!(h.conn.next(), Next::Continue);
        assert!(h.conn.inbuf.capacity() == 0 && h.conn.held_head.capacity() == 0);
    }

    #[test]
    fn pipelined_requests_answered_in_order() {
        let mut h = Harness::new();
        let mut burst = String::new();
        for k in 0..100 {
            burst += &get(&format!("/set?name=n{k}&val={k}"));
            burst += &get(&format!("/get?name=n{k}"));
        }
        h.feed(burst.as_bytes());
        let r = h.responses();
        assert_eq!(r.len(), 200);
        for k in 0..100 {
            assert_eq!(r[2 * k].text(), "ok\n");
            assert_eq!(r[2 * k + 1].text(), format!("n{k}: {k}\n"));
        }
    }

    #[test]
    fn any_chunking_gives_the_same_bytes() {
        let stream = [
            get("/set?name=a&val=5"),
            "\r\n".into(), // stray empty line between requests is ignored
            "GET /inc?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz".into(),
            get("/get?name=a"),
            "HEAD /get?name=a HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            "GET /get?name=a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".into(),
            get("/nope"),
        ]
        .concat();
        let mut whole = Harness::new();
        whole.feed(stream.as_bytes());
        let want = whole.drain();
        let answers = want.windows(9).filter(|w| w == b"HTTP/1.1 ").count();
        assert_eq!(answers, 6);
        for size in [1, 2, 3, 5, 7, 13, 64] {
            let mut h = Harness::new();
            let mut got = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                h.feed(chunk);
                got.extend(h.drain());
            }
            assert_eq!(got, want, "chunks of {size}");
        }
    }

    #[test]
    fn byte_by_byte_head_is_scanned_linearly() {
        let mut h = Harness::new();
        let mut req = b"GET /get?name=i HTTP/1.1\r\nHost: x\r\n".to_vec();
        for k in 0..60 {
            req.extend_from_slice(format!("X-Pad-{k}: {}\r\n", "v".repeat(40)).as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let mut parses = 0;
        for (k, b) in req.iter().enumerate() {
            let before = h.conn.parsed;
            h.feed(std::slice::from_ref(b));
            if k + 1 < req.len() {
                assert!(h.conn.output().is_empty());
                // Each byte is searched O(1) times, and httparse runs only when the partial
                // head has doubled: O(log n) runs over O(n) bytes in all.
                assert!(
                    h.conn.scanned + 2 >= h.conn.inbuf.len(),
                    "rescanned at byte {k}"
                );
                parses += usize::from(h.conn.parsed != before);
            }
        }
        assert!(parses <= 13, "httparse ran {parses} times");
        assert_eq!(h.responses()[0].text(), "i: 0\n");
    }

    #[test]
    fn garbage_is_refused_early_without_waiting_for_the_end() {
        let mut h = Harness::new();
        h.feed(b"GET /get?name=i HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n");
        h.feed(b"Bad Header: x\r\n");
        let mut sent = 0;
        while h.conn.output().is_empty() {
            h.feed(b"X-More: y\r\n");
            sent += 1;
            assert!(sent < 20, "no early answer");
        }
        assert_eq!(h.responses()[0].status, 400);
        let mut h = Harness::new();
        h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n");
        let mut k = 0;
        while h.conn.output().is_empty() {
            h.feed(format!("H{k}: v\r\n").as_bytes());
            k += 1;
            assert!(k < 200, "no early answer");
        }
        assert_eq!(
            h.responses()[0].status,
            431,
            "too many headers, end not yet sent"
        );
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let mut h = Harness::new();
        h.feed(b"GET /get?name=i HTTP/1.0\r\n\r\n");
        let r = h.responses();
        assert!(r[0].raw_head.contains("\r\nConnection: close\r\n"));
        assert_eq!(
            h.conn.next(),
            Next::Shutdown,
            "the client may still be sending"
        );

        let mut h = Harness::new();
        h.feed(b"GET /get?name=i HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = h.responses();
        assert!(r[0].raw_head.contains("\r\nConnection: keep-alive\r\n"));
        assert_eq!(h.conn.next(), Next::Continue);
    }

    #[test]
    fn connection_close_answers_then_closes_and_ignores_the_rest() {
        let mut h = Harness::new();
        let two = format!(
            "GET /inc?name=i HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{}",
            get("/inc?name=i")
        );
        h.feed(two.as_bytes());
        let r = h.responses();
        assert_eq!(r.len(), 1);
        assert!(r[0].raw_head.contains("Connection: close"));
        assert_eq!(h.router.state.store.get("i"), Some(1));
        // Bytes followed the close: linger so they do not turn into a reset.
        assert_eq!(h.conn.next(), Next::Shutdown);
        h.conn.linger(h.now);
        h.feed(b"more junk");
        assert!(h.conn.output().is_empty());
        h.eof();
        assert_eq!(h.conn.next(), Next::Close);
    }

    /// Drives a `Connection: close` request to its end: the answer must be followed by a
    /// half-close and a linger, however the trailing bytes arrive, so that the kernel never
    /// resets the connection under an answer the client has not read yet.
    fn closes_by_lingering(close_req: &[u8], trailing_first: bool, trailing_after: bool) {
        let mut h = Harness::new();
        let mut input = close_req.to_vec();
        if trailing_first {
            input.extend_from_slice(get("/inc?name=i").as_bytes());
        }
        h.feed(&input);
        assert_eq!(
            h.conn.next(),
            Next::Continue,
            "the answer is still to be sent"
        );
        let r = h.responses();
        assert_eq!(r.len(), 1);
        assert!(r[0].raw_head.contains("\r\nConnection: close\r\n"));
        assert_eq!(h.conn.next(), Next::Shutdown);
        h.conn.linger(h.now);
        assert!(h.conn.wants_read(), "lingering reads and discards");
        if trailing_after {
            h.feed(get("/inc?name=i").as_bytes());
            assert!(h.conn.output().is_empty());
            assert_eq!(h.conn.next(), Next::Continue);
        }
        h.eof();
        assert_eq!(h.conn.next(), Next::Close);
        assert_eq!(
            h.router.state.store.get("i"),
            Some(1),
            "only the close request ran"
        );
    }

    #[test]
    fn a_close_lingers_whether_trailing_bytes_came_before_or_after_the_answer() {
        let close = b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        for (before, after) in [(false, false), (true, false), (false, true), (true, true)] {
            closes_by_lingering(close, before, after);
        }
        // HTTP/1.0 without keep-alive closes the same way.
        closes_by_lingering(b"GET /inc?name=i HTTP/1.0\r\n\r\n", false, true);
        // So does a close request with a body: it is answered from `answer_held`.
        let with_body =
            b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc";
        for (before, after) in [(false, false), (true, false), (false, true)] {
            closes_by_lingering(with_body, before, after);
        }
    }

    #[test]
    fn a_close_after_the_client_half_closed_needs_no_linger() {
        let mut h = Harness::new();
        h.feed(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        h.eof();
        assert_eq!(h.responses().len(), 1);
        assert_eq!(h.conn.next(), Next::Close, "nothing more can arrive");
    }

    #[test]
    fn output_read_a_little_at_a_time_is_not_copied_quadratically() {
        let mut h = Harness::new();
        let n = 3000;
        h.feed(get("/get?name=i").repeat(n).as_bytes());
        let mut got = Vec::new();
        let mut moved = 0; // bytes shifted to the front of the buffer
        while !h.conn.output().is_empty() {
            let k = h.conn.output().len().min(7);
            got.extend_from_slice(&h.conn.output()[..k]);
            let before = (h.conn.sent, h.conn.pending());
            h.conn.written(k, h.now);
            h.conn.resume(&mut h.router, &h.limits, h.now);
            if h.conn.sent == 0 && before.0 + k < before.0 + before.1 {
                moved += before.1 - k;
            }
        }
        let total = got.len();
        assert!(moved <= total, "moved {moved} bytes for {total} of output");
        assert_eq!(parse_responses(&got).len(), n);
    }

    #[test]
    fn lent_buffer_goes_back_once_flushed() {
        let mut h = Harness::new();
        let mut spare = Vec::with_capacity(4096);
        h.conn.lend_buffer(&mut spare);
        assert_eq!(
            spare.capacity(),
            0,
            "the connection holds the reactor's buffer"
        );
        h.feed(get("/get?name=i").as_bytes());
        h.conn.return_buffer(&mut spare);
        assert_eq!(spare.capacity(), 0, "not while output is pending");
        h.drain();
        h.conn.return_buffer(&mut spare);
        assert!(spare.capacity() >= 4096);
        assert_eq!(
            h.conn.out.capacity(),
            0,
            "an idle connection holds no buffer"
        );
    }

    #[test]
    fn half_close_still_gets_every_answer() {
        let mut h = Harness::new();
        h.feed(format!("{}{}", get("/inc?name=i"), get("/get?name=i")).as_bytes());
        h.eof();
        assert!(!h.conn.wants_read());
        assert_eq!(h.conn.next(), Next::Continue, "answers still to send");
        let r = h.responses();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].text(), "i: 1\n");
        assert_eq!(h.conn.next(), Next::Close);
    }

    #[test]
    fn half_close_mid_request_closes_without_answer() {
        let mut h = Harness::new();
        h.feed(b"GET /inc?name=i HT");
        h.eof();
        assert!(h.drain().is_empty());
        assert_eq!(h.conn.next(), Next::Close);
        assert_eq!(h.router.state.store.get("i"), Some(0));
    }

    #[test]
    fn half_close_after_a_bad_head_gets_its_400_whatever_the_reads() {
        // Found by fuzzing (fuzz/regressions/connection/half-close-after-unparsed-bad-head):
        // fed byte by byte, the bad line was never shown to httparse before the half-close.
        let stream = format!("{}GET \r\n", get("/inc?name=i"));
        for size in [1, 2, 3, stream.len()] {
            let mut h = Harness::new();
            for chunk in stream.as_bytes().chunks(size) {
                if h.conn.wants_read() {
                    h.feed(chunk);
                }
            }
            if h.conn.wants_read() {
                h.eof();
            }
            let r = h.responses();
            assert_eq!(r.len(), 2, "reads of {size}");
            assert_eq!(r[1].status, 400, "reads of {size}");
            assert!(r[1].raw_head.contains("\r\nConnection: close\r\n"));
            assert_ne!(h.conn.next(), Next::Continue);
        }
        // A request merely cut short is still closed without an answer.
        let mut h = Harness::new();
        for b in b"GET /inc?name=i HTTP/1.1\r\nHost: x" {
            h.feed(std::slice::from_ref(b));
        }
        h.eof();
        assert!(h.drain().is_empty());
        assert_eq!(h.conn.next(), Next::Close);
    }

    #[test]
    fn body_is_skipped_and_answered_after_it_arrives() {
        let mut h = Harness::new();
        h.feed(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
        assert!(h.drain().is_empty(), "no answer before the body is in");
        assert_eq!(h.router.state.store.get("i"), Some(0));
        h.feed(format!("56789{}", get("/get?name=i")).as_bytes());
        let r = h.responses();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].text(), "i: 1\n");
    }

    /// A chunked POST whose body holds what looks like a request, then a GET.
    const CHUNKED_THEN_GET: &[u8] = b"POST /set?name=i&val=9 HTTP/1.1\r\nHost: x\r\n\
        Transfer-Encoding: chunked\r\n\r\n\
        1c;ext=1\r\nGET /inc?name=i HTTP/1.1\r\n\r\n\r\n4\r\nabcd\r\n0\r\nT: 1\r\n\r\n\
        GET /get?name=i HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn a_chunked_body_is_skipped_and_the_next_request_answered_in_order() {
        for size in [1, 2, 3, 7, 64, CHUNKED_THEN_GET.len()] {
            let mut h = Harness::new();
            for piece in CHUNKED_THEN_GET.chunks(size) {
                h.feed(piece);
                assert!(h.conn.buffered_input() <= 128, "the body is not held");
            }
            let r = h.responses();
            assert_eq!(r.len(), 2, "reads of {size}");
            assert_eq!(r[0].status, 405);
            assert_eq!(r[1].text(), "i: 0\n", "the body was not executed");
        }
    }

    #[test]
    fn a_request_smuggled_after_bad_chunk_framing_is_never_executed() {
        // A bare LF ends the chunk data where a lenient parser would see a second request.
        let smuggle = b"GET /get?name=i HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
            3\r\nabc\n0\r\n\r\nGET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n";
        for size in [1, 5, smuggle.len()] {
            let mut h = Harness::new();
            for piece in smuggle.chunks(size) {
                if h.conn.wants_read() {
                    h.feed(piece);
                }
            }
            let r = h.responses();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].status, 400);
            assert!(r[0].closes());
            assert_eq!(
                h.router.state.store.get("i"),
                Some(0),
                "the smuggled /inc ran"
            );
        }
    }

    #[test]
    fn a_slow_chunked_body_is_408_too() {
        let mut h = Harness::new();
        h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        h.advance(h.limits.header_timeout);
        assert_eq!(h.timeout(), Some(Timeout::Header));
        assert_eq!(h.responses()[0].status, 408);
    }

    #[test]
    fn post_with_body_is_405_and_stream_stays_in_sync() {
        let mut h = Harness::new();
        let body = "GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n"; // looks like a request, is a body
        let post = format!(
            "POST /set?name=i&val=9 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        h.feed(format!("{post}{}", get("/get?name=i")).as_bytes());
        let r = h.responses();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].status, 405);
        assert_eq!(r[1].text(), "i: 0\n", "the body was not executed");
    }

    /// Feeds `input` and expects one answer with `status`, `Connection: close`, and no more.
    fn refused(input: &[u8], status: u16) {
        let mut h = Harness::new();
        h.feed(input);
        assert!(
            !h.conn.wants_read(),
            "closing connections read nothing more"
        );
        // Even if the caller feeds more, it is ignored.
        h.conn.receive(
            get("/inc?name=i").as_bytes(),
            &mut h.router,
            &h.limits,
            h.now,
        );
        let r = h.responses();
        assert_eq!(r.len(), 1, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(r[0].status, status, "{:?}", String::from_utf8_lossy(input));
        assert!(r[0].raw_head.contains("\r\nConnection: close\r\n"));
        assert_eq!(h.conn.next(), Next::Shutdown);
        assert_eq!(h.router.state.store.get("i"), Some(0));
    }

    #[test]
    fn every_bad_input_class_is_answered_and_closed() {
        refused(b"GARBAGE\r\n\r\n", 400);
        refused(b"GET / HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n", 400);
        refused(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400); // TLS hello
        for cl in ["+5", "-1", "5,6", "0x10", ""] {
            refused(
                format!("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\n").as_bytes(),
                400,
            );
        }
        refused(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        );
        refused(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        );
        refused(
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        );
        refused(b"GET /inc?name=i HTTP/1.1\r\n\r\n", 400); // no Host
        refused(
            b"GET /inc?name=i HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            400,
        );
        refused(b"GET /inc?name=i HTTP/1.1\r\nHost: u@a/p, b\r\n\r\n", 400);
        refused(b"GET /inc?name=i#x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        refused(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        let chunked = "POST /inc?name=i HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        refused(format!("{chunked}5\r\nhello\n0\r\n\r\n").as_bytes(), 400);
        refused(format!("{chunked}-1\r\n").as_bytes(), 400);
        refused(format!("{chunked}100001\r\n").as_bytes(), 413);
        refused(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
            413,
        );
        refused(b"GET / HTTP/2.0\r\n\r\n", 505);
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for k in 0..65 {
            many.extend_from_slice(format!("H{k}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        refused(&many, 431);
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        refused(long.as_bytes(), 431);
        // Too large even before the end of the head shows up.
        refused(format!("GET /{}", "a".repeat(9000)).as_bytes(), 431);
    }

    #[test]
    fn head_limit_counts_the_whole_head() {
        let limits = Limits {
            max_head_bytes: 100,
            ..Limits::default()
        };
        let mut h = Harness::with_limits(limits);
        let head = format!(
            "GET /get?name=i HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "v".repeat(50)
        );
        assert!(head.len() <= 100);
        h.feed(head.as_bytes());
        assert_eq!(h.responses()[0].status, 200);
        let mut h = Harness::with_limits(limits);
        let head = format!(
            "GET /get?name=i HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "v".repeat(80)
        );
        for chunk in head.as_bytes().chunks(10) {
            if h.conn.wants_read() {
                h.feed(chunk);
            }
        }
        assert_eq!(h.responses()[0].status, 431);
    }

    #[test]
    fn backpressure_stops_reading_and_resumes_in_order() {
        let mut h = Harness::new();
        let one = get("/get?name=i");
        let per_answer = {
            let mut probe = Harness::new();
            probe.feed(one.as_bytes());
            probe.drain().len()
        };
        // Enough requests for ~2x the high-water mark of answers, fed without reading.
        let n = 2 * OUTPUT_HIGH_WATER / per_answer;
        let stream = one.repeat(n);
        let mut fed = 0;
        for chunk in stream.as_bytes().chunks(64 * 1024) {
            if !h.conn.wants_read() {
                break;
            }
            h.feed(chunk);
            fed += chunk.len();
        }
        assert!(!h.conn.wants_read(), "stopped reading");
        assert!(fed < stream.len());
        // Bounded: output just past the mark, input at most one read beyond it.
        assert!(h.conn.pending() < OUTPUT_HIGH_WATER + per_answer);
        assert!(h.conn.inbuf.len() <= 64 * 1024);
        // The client reads; held requests are answered; reading resumes.
        let mut answers = parse_responses(&h.drain()).len();
        assert!(h.conn.wants_read());
        h.feed(&stream.as_bytes()[fed..]);
        answers += h.responses().len();
        assert_eq!(answers, n);
    }

    #[test]
    fn a_client_that_reads_a_little_at_a_time_is_not_buffered_without_bound() {
        // Found by fuzzing (fuzz/regressions/connection/partial-reads-under-backpressure-
        // grow-input): held-back requests were answered only once the output was empty, but
        // reading resumed as soon as it fell below the mark, so each small read by the
        // client let in another full read of requests that then waited in `inbuf`.
        let mut h = Harness::new();
        let n = 8000;
        let stream = get("/get?name=i").repeat(n);
        let (read, max_head) = (4096, h.limits.max_head_bytes);
        let (mut fed, mut got) = (0, Vec::new());
        while fed < stream.len() {
            if h.conn.wants_read() {
                let end = (fed + read).min(stream.len());
                h.feed(&stream.as_bytes()[fed..end]);
                fed = end;
            } else {
                let k = h.conn.output().len().min(100);
                got.extend_from_slice(&h.conn.output()[..k]);
                h.conn.written(k, h.now);
                h.conn.resume(&mut h.router, &h.limits, h.now);
            }
            assert!(h.conn.pending() < OUTPUT_HIGH_WATER + 1024);
            let held = h.conn.buffered_input();
            assert!(held <= read + max_head, "{held} bytes of input held");
        }
        got.extend(h.drain());
        let r = parse_responses(&got);
        assert_eq!(r.len(), n);
        assert!(r.iter().all(|r| r.text() == "i: 0\n"));
    }

    #[test]
    fn header_timeout_is_408_and_close() {
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let mut h = Harness::with_limits(limits);
        let t0 = h.now;
        h.advance(Duration::from_millis(300));
        h.feed(b"GET /inc?name=i HTTP/1.1\r\nHost");
        assert_eq!(h.conn.deadline(&h.limits), t0 + Duration::from_millis(1300));
        h.advance(Duration::from_millis(900));
        h.feed(b": x\r\n"); // progress does not extend the deadline
        assert_eq!(h.timeout(), None);
        assert!(h.conn.output().is_empty(), "not due yet");
        h.advance(Duration::from_millis(100));
        assert_eq!(
            h.timeout(),
            Some(Timeout::Header),
            "reported, for the metrics"
        );
        let r = h.responses();
        assert_eq!(r[0].status, 408);
        assert!(r[0].raw_head.contains("Connection: close"));
        assert_eq!(h.conn.next(), Next::Shutdown);
        assert_eq!(h.router.state.store.get("i"), Some(0));
        assert_eq!(h.router.state.metrics.responses_with(408), 1);
    }

    #[test]
    fn slow_body_is_408_too() {
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let mut h = Harness::with_limits(limits);
        h.feed(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
        h.advance(Duration::from_secs(1));
        h.timeout();
        assert_eq!(h.responses()[0].status, 408);
    }

    #[test]
    fn idle_timeout_runs_from_the_last_answer() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let mut h = Harness::with_limits(limits);
        let t0 = h.now;
        assert_eq!(h.conn.deadline(&h.limits), t0 + Duration::from_secs(5));
        h.advance(Duration::from_secs(4));
        h.feed(get("/get?name=i").as_bytes());
        h.drain();
        assert_eq!(h.conn.deadline(&h.limits), t0 + Duration::from_secs(9));
        h.advance(Duration::from_secs(5));
        h.timeout();
        assert_eq!(h.conn.next(), Next::Close);
        assert!(h.drain().is_empty(), "idle close says nothing");
    }

    #[test]
    fn slow_reader_is_closed_after_idle_timeout_without_progress() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let mut h = Harness::with_limits(limits);
        h.feed(get("/get?name=i").repeat(4000).as_bytes());
        assert!(!h.conn.output().is_empty());
        h.advance(Duration::from_secs(5));
        h.timeout();
        assert_eq!(h.conn.next(), Next::Close);
        assert!(h.conn.output().is_empty(), "pending output is dropped");
    }

    #[test]
    fn linger_ends_at_eof_or_deadline() {
        let mut h = Harness::new();
        h.feed(b"BAD\r\n\r\n");
        h.drain();
        assert_eq!(h.conn.next(), Next::Shutdown);
        h.conn.linger(h.now);
        assert!(h.conn.wants_read());
        assert_eq!(h.conn.next(), Next::Continue);
        assert_eq!(h.conn.deadline(&h.limits), h.now + LINGER);
        h.advance(LINGER);
        h.timeout();
        assert_eq!(h.conn.next(), Next::Close);
    }

    #[test]
    fn stop_lets_pending_answers_out_and_closes_idle_at_once() {
        let mut idle = Harness::new();
        idle.conn.stop();
        assert_eq!(idle.conn.next(), Next::Close);

        let mut busy = Harness::new();
        busy.feed(format!("{}GET /inc", get("/inc?name=i")).as_bytes());
        busy.conn.stop();
        assert!(!busy.conn.wants_read());
        assert_eq!(busy.conn.next(), Next::Continue);
        assert_eq!(busy.responses().len(), 1);
        assert_eq!(
            busy.conn.next(),
            Next::Shutdown,
            "lingers: input may be unread"
        );
    }

    #[test]
    fn a_connection_refused_as_a_whole_says_so_and_closes() {
        // What the reactor does with a connection over the cap in reject mode.
        let mut h = Harness::new();
        let retry = Some(("Retry-After", &b"1"[..]));
        h.conn.refuse(&mut h.router, 503, retry, &"at the cap");
        assert!(!h.conn.wants_read());
        let r = h.responses();
        assert_eq!((r.len(), r[0].status), (1, 503));
        assert_eq!(r[0].header("Retry-After"), Some("1"));
        assert!(r[0].closes());
        assert_eq!(r[0].text(), "at the cap\n");
        assert_eq!(h.conn.next(), Next::Shutdown);
    }
}
