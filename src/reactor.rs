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
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::conn::{Conn, Next};
use crate::journal;
use crate::limits::Episode;
use crate::metrics::Metrics;
use crate::pump::{Buffers, Mode, Pumped, READ_BUDGET, ReadState, pump};
use crate::router::Router;
use crate::store::Store;
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
    config: Config,
    bufs: Buffers,
    /// Connections that used up their read budget, to be driven again next turn.
    yielded: VecDeque<usize>,
    /// With `--journal`: the file, and the connections whose answers wait for it.
    journal: Option<Journal>,
    held: Vec<usize>,
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
            journal: None,
            held: Vec::new(),
            open: 0,
            rejecting: 0,
            at_cap: false,
            accept_paused_until: None,
            accept_trouble: Episode::default(),
            stopping: None,
            started: Instant::now(),
        })
    }

    /// Keeps the counters in `journal` from now on (it has been replayed into the store).
    pub fn with_journal(mut self, journal: Journal) -> Reactor {
        self.router.journal = Some(Vec::with_capacity(READ_BUF));
        self.router.metrics.journal.on = true;
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
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
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
            self.commit(now)?;
        }
        self.finish()
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

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let later = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        [
            self.timers.timeout(now),
            later(self.accept_paused_until),
            later(self.stopping),
            later(self.journal.as_ref().and_then(Journal::sync_due)),
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
            held: false,
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
        let close = loop {
            match pump(
                key,
                &mut client.socket,
                &mut client.conn,
                &mut client.read,
                &mut self.bufs,
                &mut self.router,
                now,
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
            Token(key) => write!(f, "{key}"),
        }
    }
}

/// `1 connection`, `2 connections`.
fn plural(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

/// The journal file: opened and replayed at start, appended to once per turn.
pub struct Journal {
    file: File,
    path: PathBuf,
    fsync: Fsync,
    size: u64,
    /// Size right after the last rewrite.
    compacted: u64,
    /// Written but not yet synced, since when.
    dirty_since: Option<Instant>,
}

/// Why a journal could not be opened: the path (exit 2) or its contents (exit 1).
pub enum OpenError {
    Path(io::Error),
    Damaged(String),
    Io(io::Error),
}

impl Journal {
    /// Opens (creating) `path`, replays it into `store`, preloading `preload` only into a
    /// new journal, and rewrites it compacted.
    pub fn open(
        path: &Path,
        fsync: Fsync,
        store: &mut Store,
        preload: &[(&str, i64)],
    ) -> Result<Journal, OpenError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(OpenError::Path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(OpenError::Path)?;
        let replayed = journal::replay(&data, store)
            .map_err(|d| OpenError::Damaged(format!("{}: {d}", path.display())))?;
        if replayed.torn {
            warn!(
                "{}: a torn last record ({} bytes at byte {}) was cut off",
                path.display(),
                data.len() - replayed.good,
                replayed.good
            );
        }
        if replayed.fresh {
            for (name, value) in preload {
                let _ = store.set(name, *value);
            }
        }
        info!(
            "{}: {} records replayed, {} counters",
            path.display(),
            replayed.records,
            store.len()
        );
        let mut journal = Journal {
            file,
            path: path.to_path_buf(),
            fsync,
            size: data.len() as u64,
            compacted: 0,
            dirty_since: None,
        };
        journal.compact(store.iter()).map_err(OpenError::Io)?;
        Ok(journal)
    }

    /// One `write` of a turn's records, then `fdatasync` with `--fsync always`.
    fn append(&mut self, records: &[u8], now: Instant, m: &mut Metrics) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(records)
            .map_err(|e| self.error("write to", e))?;
        self.size += records.len() as u64;
        m.journal.records += records.iter().filter(|&&b| b == b'\n').count() as u64;
        m.journal.bytes += records.len() as u64;
        trace!("journal: wrote {} bytes", records.len());
        match self.fsync {
            Fsync::Always => self.sync(m),
            Fsync::EverySec => {
                self.dirty_since.get_or_insert(now);
                Ok(())
            }
            Fsync::No => Ok(()),
        }
    }

    /// With `everysec`: when the oldest unsynced write is a second old.
    fn sync_due(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + Duration::from_secs(1))
    }

    fn maybe_sync(&mut self, now: Instant, m: &mut Metrics) -> io::Result<()> {
        match self.sync_due() {
            Some(due) if now >= due => self.sync(m),
            _ => Ok(()),
        }
    }

    fn sync(&mut self, m: &mut Metrics) -> io::Result<()> {
        let started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| self.error("fdatasync", e))?;
        self.dirty_since = None;
        m.journal.fsyncs += 1;
        m.journal
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Rewrites the journal as one record per counter: a temporary file, `fsync`, `rename`
    /// over the journal, `fsync` of the directory, so that a crash at any point leaves
    /// either the old journal or the new one.
    fn compact<'a>(
        &mut self,
        counters: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> io::Result<()> {
        let data = journal::compacted(counters);
        let mut tmp_path = self.path.clone().into_os_string();
        tmp_path.push(".tmp");
        let tmp_path = PathBuf::from(tmp_path);
        let mut tmp = File::create(&tmp_path).map_err(|e| self.error("create", e))?;
        tmp.write_all(&data)
            .map_err(|e| self.error("write to", e))?;
        tmp.sync_all().map_err(|e| self.error("fsync", e))?;
        std::fs::rename(&tmp_path, &self.path).map_err(|e| self.error("rename over", e))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.error("fsync the directory of", e))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| self.error("reopen", e))?;
        self.size = data.len() as u64;
        self.compacted = self.size;
        self.dirty_since = None;
        Ok(())
    }

    fn error(&self, what: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "cannot {what} the journal {}: {e}; stopping before acknowledging unrecorded changes",
                self.path.display()
            ),
        )
    }
}
