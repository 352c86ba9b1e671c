//! The I/O driver: one `mio::Poll`, the listener, the signal pipe and a slab of
//! connections, all edge-triggered. This is the only part of counterd that touches sockets.
//!
//! One turn of the loop ([`Reactor::run`]):
//! 1. sleep in `epoll_wait` until readiness or the nearest deadline (the poll timeout);
//! 2. for each event: accept until `WouldBlock`, or `Reactor::drive` one connection —
//!    read until `WouldBlock`, hand the bytes to its [`Conn`], write the answers;
//! 3. fire due deadlines; resume accepting if a connection closed while at the cap.
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

use crate::conn::{Conn, Next};
use crate::limits::Episode;
use crate::pump::{Buffers, Pumped, READ_BUDGET, ReadState, pump};
use crate::router::Router;
use crate::timers::{Slot, Timers};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// One read's worth: also the most a connection holds back under backpressure.
const READ_BUF: usize = 64 * 1024;
/// Pause after `EMFILE`/`ENFILE` before accepting again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a graceful shutdown waits for connections to finish writing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// At the cap, stop accepting: new clients wait in the kernel's listen backlog.
    Queue,
    /// At the cap, accept and answer `503`.
    Reject,
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub max_conns: usize,
    pub overload: Overload,
    /// Connections being refused with `503` at once (`reject` mode).
    pub reject_budget: usize,
}

struct Client {
    socket: TcpStream,
    conn: Conn,
    timer: Slot,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// Counts against the cap (false for a connection being refused with 503).
    counted: bool,
    /// The turn `read.reads_left` belongs to: the read budget is per connection per turn,
    /// however often the connection is driven in it (an event, then its place in `yielded`).
    turn: u64,
    read: ReadState,
    /// In `yielded` already: a connection waits there at most once.
    queued: bool,
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
    config: Config,
    bufs: Buffers,
    /// Connections that used up their read budget, to be driven again next turn.
    yielded: VecDeque<usize>,
    /// Connections counted against the cap, and 503s on their way out.
    open: usize,
    rejecting: usize,
    at_cap: bool,
    accept_paused_until: Option<Instant>,
    accept_trouble: Episode,
    stopping: Option<Instant>,
    started: Instant,
}

impl Reactor {
    pub fn new(listener: TcpListener, router: Router, config: Config) -> io::Result<Reactor> {
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
            config,
            bufs: Buffers::new(READ_BUF),
            yielded: VecDeque::new(),
            open: 0,
            rejecting: 0,
            at_cap: false,
            accept_paused_until: None,
            accept_trouble: Episode::default(),
            stopping: None,
            started: Instant::now(),
        })
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
        loop {
            let now = Instant::now();
            if let Some(deadline) = self.stopping {
                if self.clients.is_empty() {
                    break;
                }
                if now >= deadline {
                    warn!(
                        "{} connections still writing after {SHUTDOWN_GRACE:?}; closing them",
                        self.clients.len()
                    );
                    break;
                }
            }
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            self.router.date.update(SystemTime::now());
            self.router.metrics.loop_iterations += 1;
            // Connections that yielded last turn go after this turn's events.
            let yielded = self.yielded.len();
            for event in events.iter() {
                self.router.metrics.events += 1;
                trace!(
                    "event {:?} readable={} writable={} read_closed={} write_closed={} error={}",
                    event.token(),
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
                    Token(key) => {
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
            if self.at_cap || self.accept_paused_until.is_some() {
                self.accept(now);
            }
        }
        self.finish()
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let later = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        [
            self.timers.timeout(now),
            later(self.accept_paused_until),
            later(self.stopping),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Accepts until `WouldBlock` (edge-triggered: the listener will not report again for
    /// connections already queued), the cap, or a shortage of file descriptors.
    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.accept_paused_until = None;
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let room = self.open < self.config.max_conns;
            if !room
                && (self.config.overload == Overload::Queue
                    || self.rejecting >= self.config.reject_budget)
            {
                if !self.at_cap {
                    self.at_cap = true;
                    warn!(
                        "at the connection cap ({}): new clients wait in the listen backlog",
                        self.config.max_conns
                    );
                }
                return;
            }
            match listener.accept() {
                Ok((socket, peer)) => {
                    if room && self.at_cap {
                        self.at_cap = false;
                        info!("below the connection cap again");
                    } else if !room && !self.at_cap {
                        self.at_cap = true;
                        warn!(
                            "at the connection cap ({}): refusing new clients with 503",
                            self.config.max_conns
                        );
                    }
                    self.admit(socket, peer.ip(), room, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The client gave up while queued: nothing to do, keep accepting.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: the pending connection stays queued and the
                    // listener stays readable, so retrying now would spin. Pause instead.
                    if self.accept_trouble.begins(now) {
                        warn!("accept failed: {e}; pausing accepts for {ACCEPT_PAUSE:?} at a time");
                    }
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut socket: TcpStream, peer: IpAddr, room: bool, now: Instant) {
        // Whole answers go out in one write; never let Nagle hold one back.
        let _ = socket.set_nodelay(true);
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            warn!("cannot register a new connection: {e}");
            return;
        }
        let conn = if room {
            self.open += 1;
            self.router.metrics.opened();
            Conn::new(peer, now)
        } else {
            self.rejecting += 1;
            Conn::rejected(peer, now, &mut self.router)
        };
        trace!("{key}: accepted {peer}");
        let timer = self.timers.slot();
        entry.insert(Client {
            socket,
            conn,
            timer,
            writable: false,
            counted: room,
            turn: 0,
            read: ReadState::default(),
            queued: false,
        });
        if !room {
            self.drive(key, now); // the 503 is ready to go
        } else {
            self.rearm(key);
        }
    }

    /// Does all the I/O one connection is ready for, then closes it or updates its interest
    /// and deadline.
    fn drive(&mut self, key: usize, now: Instant) {
        let Some(client) = self.clients.get_mut(key) else {
            return; // closed earlier in this turn
        };
        let turn = self.router.metrics.loop_iterations;
        if client.turn != turn {
            client.turn = turn;
            client.read.reads_left = READ_BUDGET;
        }
        let close = loop {
            match pump(
                key,
                &mut client.socket,
                &mut client.conn,
                &mut client.read,
                &mut self.bufs,
                &mut self.router,
                now,
            ) {
                Err(e) => {
                    debug!("{key}: {e}");
                    break true;
                }
                Ok(Pumped::Yielded) if !client.queued => {
                    client.queued = true;
                    self.yielded.push_back(key);
                }
                Ok(Pumped::Yielded) => {}
                Ok(Pumped::Blocked) => {}
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
                    .reregister(&mut client.socket, Token(key), interest)
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
            let at = client.conn.deadline(&self.router.limits);
            self.timers.arm(key, &mut client.timer, at);
        }
    }

    fn close(&mut self, key: usize) {
        // Dropping the socket closes it, which also removes it from the epoll set.
        let client = self.clients.remove(key);
        if client.counted {
            self.open -= 1;
            self.router.metrics.closed();
        } else {
            self.rejecting -= 1;
        }
        trace!("{key}: closed");
    }

    fn expire(&mut self, now: Instant) {
        while let Some(key) = self.timers.pop_due(now, &mut self.clients) {
            let client = &mut self.clients[key];
            client.conn.on_timeout(&mut self.router, now);
            self.drive(key, now); // writes a 408, closes, or re-arms
        }
        self.timers.purge(&mut self.clients);
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

    fn finish(self) -> io::Result<()> {
        let m = &self.router.metrics;
        info!(
            "stopped after {:.1}s: {} connections, {} requests",
            self.started.elapsed().as_secs_f64(),
            m.connections_accepted,
            m.requests_total()
        );
        Ok(())
    }
}
