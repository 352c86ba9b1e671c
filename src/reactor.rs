//! The I/O driver: one `mio::Poll`, the listener, the signal pipe and a slab of
//! connections, all edge-triggered. Together with `pump.rs` (the bytes of one socket) and
//! `journal_file.rs` (the journal's writes) this is the only part of counterd that does
//! I/O while serving; every decision is made by the sans-I/O parts it calls.
//!
//! One turn of the loop ([`Reactor::run`]), as in Redis's `ae.c`:
//! 1. sleep in `epoll_wait` until readiness or the nearest deadline (the poll timeout);
//! 2. for each event: [`Reactor::accept`] what [`Admission`] lets in, or
//!    [`Reactor::drive`] one connection — `pump` reads what the socket has, hands the
//!    bytes to its [`Conn`] (which asks the [`Router`] for answers), writes the answers;
//! 3. drive the connections that used up their read budget last turn, fire due deadlines,
//!    retry accepting if it stalled at the cap;
//! 4. with `--journal`, [`Reactor::commit`]: write (and sync) the turn's records, then
//!    release the turn's answers.
//!
//! Nothing here blocks and nothing is shared: one event is handled at a time, which is why
//! the counter store needs no lock.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::admission::{Admission, Admit};
use crate::config::Limits;
use crate::conn::{Conn, Next};
use crate::episode::Episode;
use crate::journal;
use crate::journal_file::JournalFile;
use crate::metrics::Timeout;
use crate::pump::{Buffers, Env, Mode, Pumped, READ_BUDGET, ReadState, pump};
use crate::router::Router;
use crate::timers::{Slot, Timers};

// Small numbers, as in mio's own examples: mio's trace lines print them as they are.
const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// A connection's token is its slab key plus this, above the special tokens.
const FIRST_CLIENT: usize = 2;

fn client_token(key: usize) -> Token {
    Token(key + FIRST_CLIENT)
}

/// One read's worth: also the most a connection holds back under backpressure.
const READ_BUF: usize = 64 * 1024;
/// How long a graceful shutdown waits for connections to finish writing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct Client {
    socket: TcpStream,
    conn: Conn,
    timer: Slot,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// Served, or being refused with `503` (which does not count against the cap).
    admitted: Admit,
    /// The turn `read.reads_left` belongs to: the read budget is per connection per turn,
    /// however often the connection is driven in it (an event, then its place in `yielded`).
    turn: u64,
    read: ReadState,
    /// In `yielded` already: a connection waits there at most once.
    queued: bool,
    /// In `held`: answers formed this turn wait for the journal.
    held: bool,
}

impl AsMut<Slot> for Client {
    fn as_mut(&mut self) -> &mut Slot {
        &mut self.timer
    }
}

pub struct Reactor {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    clients: Slab<Client>,
    timers: Timers,
    router: Router,
    limits: Limits,
    admission: Admission,
    bufs: Buffers,
    /// Connections that used up their read budget, to be driven again next turn.
    yielded: VecDeque<usize>,
    /// With `--journal`: the file, and the connections whose answers wait for it.
    journal: Option<JournalFile>,
    held: Vec<usize>,
    /// One warning per episode of clients too slow to send a request.
    slow_clients: Episode,
    stopping: Option<Instant>,
    started: Instant,
}

impl Reactor {
    pub fn new(
        listener: TcpListener,
        router: Router,
        limits: Limits,
        admission: Admission,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([libc::SIGINT, libc::SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            listener: Some(listener),
            signals,
            clients: Slab::with_capacity(1024),
            timers: Timers::new(),
            router,
            limits,
            admission,
            bufs: Buffers::new(READ_BUF),
            yielded: VecDeque::new(),
            journal: None,
            held: Vec::new(),
            slow_clients: Episode::default(),
            stopping: None,
            started: Instant::now(),
        })
    }

    /// Keeps the counters in `journal` from now on (it has been replayed into the store).
    pub fn with_journal(mut self, journal: JournalFile) -> Reactor {
        self.router.journal = Some(Vec::with_capacity(READ_BUF));
        self.router.metrics.journal.on = true;
        self.router.metrics.journal.compactions = 1; // the rewrite at start
        self.journal = Some(journal);
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Serves until SIGINT/SIGTERM and a graceful shutdown.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        // When the turn now ending began (`epoll_wait` returned), what it slept and saw.
        let mut turn: Option<(Instant, Duration, usize)> = None;
        loop {
            let now = Instant::now();
            if let Some((began, slept, n)) = turn {
                let busy = now - began;
                self.router.metrics.looping.turned(busy);
                trace!(
                    "turn {}: slept {}us in epoll_wait, {n} {}, busy {}us",
                    self.router.metrics.loop_iterations,
                    slept.as_micros(),
                    if n == 1 { "event" } else { "events" },
                    busy.as_micros()
                );
            }
            if let Some(deadline) = self.stopping {
                if self.clients.is_empty() {
                    break;
                }
                if now >= deadline {
                    warn!(
                        "{} still writing after {SHUTDOWN_GRACE:?}; closing them",
                        plural(self.clients.len() as u64, "connection")
                    );
                    break;
                }
            }
            self.wait(&mut events)?;
            let woke = Instant::now();
            let n = events.iter().count();
            self.router.metrics.looping.woke(woke - now, n);
            turn = Some((woke, woke - now, n));
            let now = woke;
            self.router.date.update(SystemTime::now());
            self.router.metrics.loop_iterations += 1;
            // Connections that yielded last turn go after this turn's events.
            let yielded = self.yielded.len();
            for event in events.iter() {
                self.router.metrics.events += 1;
                trace!(
                    "event {} readable={} writable={} read_closed={} write_closed={} error={}",
                    TokenName(event.token()),
                    event.is_readable(),
                    event.is_writable(),
                    event.is_read_closed(),
                    event.is_write_closed(),
                    event.is_error()
                );
                match event.token() {
                    LISTENER => self.accept(now),
                    SIGNALS => {
                        if self.on_signal(now) {
                            return self.finish();
                        }
                    }
                    Token(token) => {
                        let key = token - FIRST_CLIENT;
                        if let Some(client) = self.clients.get_mut(key) {
                            client.read.peer_closed |= event.is_read_closed();
                        }
                        self.drive(key, now)
                    }
                }
            }
            for _ in 0..yielded {
                if let Some(key) = self.yielded.pop_front() {
                    if let Some(client) = self.clients.get_mut(key) {
                        client.queued = false;
                    }
                    self.drive(key, now);
                }
            }
            self.expire(now);
            if self.admission.stalled() {
                self.accept(now);
            }
            self.commit(now)?;
        }
        self.finish()
    }

    /// Sleeps in `epoll_wait` until readiness or the nearest deadline. A signal that
    /// interrupts the sleep (`EINTR`) is part of the same sleep, not the end of a turn.
    fn wait(&mut self, events: &mut Events) -> io::Result<()> {
        loop {
            let timeout = self.poll_timeout(Instant::now());
            match self.poll.poll(events, timeout) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                done => return done,
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let later = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        [
            self.timers.timeout(now),
            later(self.admission.deadline()),
            later(self.stopping),
            later(self.journal.as_ref().and_then(JournalFile::sync_due)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Accepts until `WouldBlock` (edge-triggered: the listener will not report again for
    /// connections already queued), or until [`Admission`] says stop.
    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if !self.admission.may_accept(now) {
                return;
            }
            match listener.accept() {
                Ok((socket, peer)) => {
                    let how = self.admission.admit(now);
                    self.admit(socket, peer.ip(), how, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.admission.drained();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The client gave up while queued: nothing to do, keep accepting.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    self.admission.accept_failed(&e, now);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut socket: TcpStream, peer: IpAddr, how: Admit, now: Instant) {
        // Whole answers go out in one write; never let Nagle hold one back.
        let _ = socket.set_nodelay(true);
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut socket, client_token(key), Interest::READABLE)
        {
            warn!("cannot register a new connection: {e}");
            self.admission.closed(how);
            return;
        }
        let mut conn = Conn::new(peer, now);
        match how {
            Admit::Serve => self.router.metrics.opened(),
            Admit::Refuse => {
                self.router.metrics.connections_rejected += 1;
                let retry = Some(("Retry-After", &b"1"[..]));
                let why = "server at its connection limit, retry later";
                conn.refuse(&mut self.router, 503, retry, &why);
            }
        }
        trace!("{key}: accepted {peer}");
        let timer = self.timers.slot();
        entry.insert(Client {
            socket,
            conn,
            timer,
            writable: false,
            admitted: how,
            turn: 0,
            read: ReadState::default(),
            queued: false,
            held: false,
        });
        match how {
            Admit::Refuse => self.drive(key, now), // the 503 is ready to go
            Admit::Serve => self.rearm(key),
        }
    }

    /// Does all the I/O one connection is ready for, then closes it or updates its interest
    /// and deadline.
    fn drive(&mut self, key: usize, now: Instant) {
        // With a journal, answers wait for the end of the turn (see `commit`).
        let mode = if self.journal.is_some() {
            Mode::Hold
        } else {
            Mode::Serve
        };
        self.drive_as(key, now, mode);
    }

    fn drive_as(&mut self, key: usize, now: Instant, mode: Mode) {
        let Some(client) = self.clients.get_mut(key) else {
            return; // closed earlier in this turn
        };
        let turn = self.router.metrics.loop_iterations;
        if client.turn != turn {
            client.turn = turn;
            client.read.reads_left = READ_BUDGET;
        }
        let mut env = Env {
            bufs: &mut self.bufs,
            svc: &mut self.router,
            limits: &self.limits,
            now,
        };
        let close = loop {
            match pump(
                key,
                &mut client.socket,
                &mut client.conn,
                &mut client.read,
                &mut env,
                mode,
            ) {
                Err(e) => {
                    debug!("{key}: {e}");
                    break true;
                }
                Ok(Pumped::Yielded) if !client.queued => {
                    client.queued = true;
                    self.yielded.push_back(key);
                }
                Ok(Pumped::Yielded) | Ok(Pumped::Blocked) => {}
            }
            match client.conn.next() {
                Next::Continue => break false,
                Next::Close => break true,
                Next::Shutdown => {
                    // Half-close, then read until the client closes: closing now with its
                    // input unread would reset the connection and could destroy the answer.
                    if client.socket.shutdown(Shutdown::Write).is_err() {
                        break true;
                    }
                    client.conn.linger(now);
                }
            }
        };
        if mode == Mode::Hold && !client.held && !client.conn.output().is_empty() {
            client.held = true;
            self.held.push(key);
        }
        if close {
            self.close(key);
            return;
        }
        let want_write = !client.conn.output().is_empty();
        if want_write != client.writable {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(&mut client.socket, client_token(key), interest)
            {
                debug!("{key}: reregister: {e}");
                self.close(key);
                return;
            }
            client.writable = want_write;
        }
        self.rearm(key);
    }

    fn rearm(&mut self, key: usize) {
        if let Some(client) = self.clients.get_mut(key) {
            let at = client.conn.deadline(&self.limits);
            self.timers.arm(key, &mut client.timer, at);
        }
    }

    fn close(&mut self, key: usize) {
        // Dropping the socket closes it, which also removes it from the epoll set.
        let client = self.clients.remove(key);
        self.admission.closed(client.admitted);
        if client.admitted == Admit::Serve {
            self.router.metrics.closed();
        }
        trace!("{key}: closed");
    }

    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.timers.pop_due(now, &mut self.clients) {
            let client = &mut self.clients[key];
            let fired = client.conn.on_timeout(&mut self.router, &self.limits, now);
            if let Some(kind) = fired {
                self.router.metrics.timeout(kind);
            }
            if fired == Some(Timeout::Header) && self.slow_clients.begins(now) {
                warn!(
                    "requests not received within --header-timeout, starting with {}: answering 408",
                    client.conn.peer()
                );
            }
            self.drive(key, now); // writes a 408, closes, or re-arms
        }
        self.timers.purge(&mut self.clients);
    }

    /// The end of a turn with `--journal`: this turn's records go out in one `write`
    /// (then, with `--fsync always`, one `fdatasync`), and only then are this turn's
    /// answers released — group commit, as Redis flushes its AOF before the loop sleeps.
    /// An error stops the server before any unrecorded change is acknowledged.
    fn commit(&mut self, now: Instant) -> io::Result<()> {
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        let records = self.router.journal.as_mut().expect("journal buffer");
        journal.append(records, now, &mut self.router.metrics)?;
        records.clear();
        for key in std::mem::take(&mut self.held) {
            if let Some(client) = self.clients.get_mut(key) {
                client.held = false;
                self.drive_as(key, now, Mode::Flush);
            }
        }
        let journal = self.journal.as_mut().expect("journal");
        journal.maybe_sync(now, &mut self.router.metrics)?;
        if journal::should_compact(journal.size, journal.compacted) {
            let started = Instant::now();
            journal.compact(self.router.store.iter())?;
            self.router.metrics.journal.compactions += 1;
            info!(
                "journal compacted to {} bytes in {:.1} ms",
                journal.size,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        Ok(())
    }

    /// Returns true when the process should stop right away (a second signal).
    fn on_signal(&mut self, now: Instant) -> bool {
        let mut signals = Vec::new();
        signals.extend(self.signals.pending());
        for signal in signals {
            if self.stopping.is_some() {
                warn!("signal {signal} during shutdown: stopping now");
                return true;
            }
            info!("signal {signal}: shutting down");
            self.begin_shutdown(now);
        }
        false
    }

    /// Stops accepting, closes idle connections and lets the others finish writing.
    fn begin_shutdown(&mut self, now: Instant) {
        self.listener = None;
        self.stopping = Some(now + SHUTDOWN_GRACE);
        let keys: Vec<usize> = self.clients.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.clients[key].conn.stop();
            self.drive(key, now);
        }
    }

    fn finish(mut self) -> io::Result<()> {
        if let Some(journal) = &mut self.journal {
            let records = self.router.journal.as_mut().expect("journal buffer");
            journal.append(records, Instant::now(), &mut self.router.metrics)?;
            journal.sync(&mut self.router.metrics)?;
        }
        let m = &self.router.metrics;
        info!(
            "stopped after {:.1}s: {}, {}",
            self.started.elapsed().as_secs_f64(),
            plural(m.connections_accepted, "connection"),
            plural(m.requests_total(), "request")
        );
        Ok(())
    }
}

/// Tokens as the trace names them: the two special ones by name, connections by slab key.
struct TokenName(Token);

impl std::fmt::Display for TokenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            LISTENER => f.write_str("listener"),
            SIGNALS => f.write_str("signals"),
            Token(token) => write!(f, "{}", token - FIRST_CLIENT),
        }
    }
}

/// `1 connection`, `2 connections`.
fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
