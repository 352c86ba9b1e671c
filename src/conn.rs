//! One client connection as a state machine: bytes in, bytes out, no socket.
//!
//! The reactor feeds it what it reads ([`Conn::receive`], [`Conn::eof`]), writes what
//! [`Conn::output`] holds and reports it ([`Conn::written`]), asks [`Conn::wants_read`]
//! before reading, [`Conn::next`] after each round, and [`Conn::deadline`] for its timer.
//! Everything about HTTP/1.x on a stream lives here: pipelining, bodies to skip, closing
//! rules, half-close, output backpressure and the per-request clocks.

use std::mem;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::http::{self, Request};
use crate::metrics::Timeout;
use crate::router::Router;

/// Past this much unsent output the connection stops reading (and stops answering what it
/// has already read) until the client catches up.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// How long a connection closed for an error keeps draining input after its last answer,
/// so that the client reads that answer instead of a reset.
pub const LINGER: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8192,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
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
    /// No more requests: flush the answers, then close (after a linger, for errors).
    Closing { linger: bool },
    /// Our side is shut; input is discarded until the client closes or time runs out.
    Lingering { until: Instant },
    /// Close now, pending output or not.
    Done,
}

pub struct Conn {
    peer: IpAddr,
    state: State,
    /// The client has closed its sending side.
    read_closed: bool,
    /// Input not yet answered: the start of a request, or (under backpressure) requests
    /// held back. Empty and unallocated between requests.
    inbuf: Vec<u8>,
    /// How far into `inbuf` the end of the head has already been looked for.
    scanned: usize,
    /// The head of a request whose body is still arriving; answered once the body is in.
    held_head: Vec<u8>,
    body_left: u64,
    /// Answers not yet written. The reactor lends this buffer and takes it back when it is
    /// empty, so an idle connection holds none.
    pub out: Vec<u8>,
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
            read_closed: false,
            inbuf: Vec::new(),
            scanned: 0,
            held_head: Vec::new(),
            body_left: 0,
            out: Vec::new(),
            request_started: None,
            last_progress: now,
        }
    }

    /// A connection accepted over the cap in `reject` mode: `503`, then close.
    pub fn rejected(peer: IpAddr, now: Instant, router: &mut Router) -> Conn {
        let mut conn = Conn::new(peer, now);
        router.metrics.connections_rejected += 1;
        let retry = Some(("Retry-After", &b"1"[..]));
        router.refuse(&mut conn.out, 503, retry, "server at its connection limit, retry later");
        conn.state = State::Closing { linger: true };
        conn
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Whether the reactor should read more. False under backpressure, once the client has
    /// closed, and while a closing connection flushes.
    pub fn wants_read(&self) -> bool {
        !self.read_closed
            && match self.state {
                State::Open => self.out.len() < OUTPUT_HIGH_WATER,
                State::Lingering { .. } => true,
                State::Closing { .. } | State::Done => false,
            }
    }

    /// Bytes read from the client. Answers are appended to [`Conn::out`].
    pub fn receive(&mut self, data: &[u8], router: &mut Router, now: Instant) {
        if self.state != State::Open {
            return; // closing or lingering: input is discarded
        }
        if self.inbuf.is_empty() {
            // Common case: whole requests, answered straight from the reactor's buffer.
            let used = self.process(data, router, now);
            if self.state == State::Open {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.inbuf.extend_from_slice(data);
            self.process_held(router, now);
        }
        self.update_request_clock(now);
    }

    /// The client will send nothing more. What it sent is still answered.
    pub fn eof(&mut self) {
        self.read_closed = true;
    }

    /// The answers still to be written.
    pub fn output(&self) -> &[u8] {
        if self.state == State::Done { &[] } else { &self.out }
    }

    /// `n` bytes of [`Conn::output`] reached the socket. Once everything is out, requests
    /// held back by backpressure are answered.
    pub fn written(&mut self, n: usize, router: &mut Router, now: Instant) {
        self.out.drain(..n.min(self.out.len()));
        self.last_progress = now;
        if self.out.is_empty() && !self.inbuf.is_empty() && self.state == State::Open {
            self.process_held(router, now);
            self.update_request_clock(now);
        }
    }

    pub fn next(&self) -> Next {
        match self.state {
            State::Done => Next::Close,
            _ if !self.out.is_empty() => Next::Continue,
            // With nothing left to send, what is buffered is an incomplete request.
            State::Open if self.read_closed => Next::Close,
            State::Open => Next::Continue,
            State::Closing { linger: true } if !self.read_closed => Next::Shutdown,
            State::Closing { .. } => Next::Close,
            State::Lingering { .. } if self.read_closed => Next::Close,
            State::Lingering { .. } => Next::Continue,
        }
    }

    /// The reactor has shut down our sending side after [`Next::Shutdown`].
    pub fn linger(&mut self, now: Instant) {
        self.state = State::Lingering { until: now + LINGER };
    }

    /// Graceful server shutdown: finish writing what is owed, answer nothing new.
    pub fn stop(&mut self) {
        self.inbuf = Vec::new();
        self.body_left = 0;
        self.state = match self.state {
            State::Open | State::Closing { .. } if !self.out.is_empty() => {
                State::Closing { linger: false }
            }
            _ => State::Done,
        };
    }

    /// When this connection next needs attention if nothing happens on its socket.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        if let State::Lingering { until } = self.state {
            return until;
        }
        let idle = self.last_progress + limits.idle_timeout;
        match self.header_clock() {
            Some(started) => idle.min(started + limits.header_timeout),
            None => idle,
        }
    }

    /// The deadline has passed: answer `408` to a request that is too slow, or give up on a
    /// client that is idle or does not read.
    pub fn on_timeout(&mut self, router: &mut Router, now: Instant) {
        if now < self.deadline(&router.limits) {
            return;
        }
        if let State::Lingering { .. } = self.state {
            self.state = State::Done;
            return;
        }
        let header_late = self
            .header_clock()
            .is_some_and(|t| now >= t + router.limits.header_timeout);
        if header_late && self.state == State::Open {
            router.metrics.timeout(Timeout::Header);
            self.inbuf = Vec::new();
            self.held_head = Vec::new();
            self.body_left = 0;
            self.request_started = None;
            self.last_progress = now;
            router.refuse(&mut self.out, 408, None, "request not received in time");
            self.state = State::Closing { linger: true };
        } else {
            router.metrics.timeout(Timeout::Idle);
            self.state = State::Done;
        }
    }

    /// The header clock runs while a request is arriving, but not while the connection is
    /// held back by its own unread output: that is the slow-read guard's business.
    fn header_clock(&self) -> Option<Instant> {
        self.request_started.filter(|_| self.out.len() < OUTPUT_HIGH_WATER)
    }

    fn update_request_clock(&mut self, now: Instant) {
        let arriving = self.state == State::Open && (self.body_left > 0 || !self.inbuf.is_empty());
        if !arriving {
            self.request_started = None;
        } else if self.request_started.is_none() {
            self.request_started = Some(now);
        }
    }

    /// Processes `inbuf` in place (taken out so that requests can borrow from it).
    fn process_held(&mut self, router: &mut Router, now: Instant) {
        let mut buf = mem::take(&mut self.inbuf);
        let used = self.process(&buf, router, now);
        if self.state == State::Open && used < buf.len() {
            buf.drain(..used);
            self.inbuf = buf;
        } // else: all consumed, or closing; dropping the buffer keeps idle connections small
    }

    /// Answers every complete request at the start of `buf`; returns the bytes consumed.
    fn process(&mut self, buf: &[u8], router: &mut Router, now: Instant) -> usize {
        let mut pos = 0;
        while self.state == State::Open {
            if self.body_left > 0 {
                let n = self.body_left.min((buf.len() - pos) as u64);
                pos += n as usize;
                self.body_left -= n;
                if self.body_left > 0 {
                    break;
                }
                self.answer_held(router, now);
                continue;
            }
            if self.out.len() >= OUTPUT_HIGH_WATER {
                break; // backpressure: the rest waits in `inbuf`
            }
            if self.scanned == 0 {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
                while buf.get(pos).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
                    pos += 1;
                }
            }
            let rest = &buf[pos..];
            if rest.is_empty() {
                break;
            }
            match self.parse_next(rest, router.limits.max_head_bytes) {
                Ok(Some((req, len))) => {
                    pos += len;
                    if req.body_len > 0 {
                        self.held_head.clear();
                        self.held_head.extend_from_slice(&rest[..len]);
                        self.body_left = req.body_len;
                    } else {
                        self.answer(&req, router, now, pos < buf.len());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(e, router);
                    break;
                }
            }
        }
        pos
    }

    /// Finds the next request head in `rest`. A head seen for the first time goes straight
    /// to httparse (one pass when it is complete, an early 400 when it is garbage); a head
    /// that keeps arriving is only searched in its new bytes until its end shows up.
    fn parse_next<'b>(
        &mut self,
        rest: &'b [u8],
        max_head: usize,
    ) -> Result<Option<(Request<'b>, usize)>, http::Error> {
        if self.scanned > 0 {
            match http::find_head_end(rest, self.scanned) {
                Some(end) if end > max_head => return Err(http::Error::HeadTooLarge),
                Some(_) => {}
                None if rest.len() > max_head => return Err(http::Error::HeadTooLarge),
                None => {
                    self.scanned = http::resume_search_at(rest.len());
                    return Ok(None);
                }
            }
        }
        match http::parse(rest)? {
            Some((_, len)) if len > max_head => Err(http::Error::HeadTooLarge),
            Some(found) => {
                self.scanned = 0;
                Ok(Some(found))
            }
            None if self.scanned > 0 => Err(http::Error::Garbled),
            None if rest.len() > max_head => Err(http::Error::HeadTooLarge),
            None => {
                self.scanned = http::resume_search_at(rest.len()).max(1);
                Ok(None)
            }
        }
    }

    fn answer(&mut self, req: &Request<'_>, router: &mut Router, now: Instant, more: bool) {
        router.handle(req, self.peer, now, &mut self.out);
        self.last_progress = now;
        self.request_started = None;
        if !req.keep_alive {
            // Bytes after a request that said "close" would turn into a reset if we closed
            // on them: linger in that case only.
            self.state = State::Closing { linger: more };
        }
    }

    fn answer_held(&mut self, router: &mut Router, now: Instant) {
        let head = mem::take(&mut self.held_head);
        match http::parse(&head) {
            Ok(Some((req, _))) => self.answer(&req, router, now, false),
            Ok(None) => self.fail(http::Error::Garbled, router),
            Err(e) => self.fail(e, router),
        }
    }

    fn fail(&mut self, err: http::Error, router: &mut Router) {
        log::debug!("{}: {err}", self.peer);
        router.refuse(&mut self.out, err.status(), None, err);
        self.state = State::Closing { linger: true };
    }
}
