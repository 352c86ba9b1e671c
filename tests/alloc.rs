//! Steady-state requests allocate nothing: a counting global allocator watches the
//! reactor's own per-turn path — `pump::read` into each connection's state machine and the
//! router, then `pump::flush` of every connection at the end of the turn, with the shared
//! buffers — serve get, inc and set-of-an-existing-name on several connections per turn,
//! after a warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use counterd::config::Limits;
use counterd::conn::Conn;
use counterd::pump::{self, Buffers, Env, READ_BUDGET, ReadState};
use counterd::router::App;
use counterd::testkit;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A socket with one request to read per turn, that takes every answer whole.
struct Socket {
    input: Option<&'static [u8]>,
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let input = self.input.take().ok_or(io::ErrorKind::WouldBlock)?;
        buf[..input.len()].copy_from_slice(input);
        Ok(input.len())
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Keep-alive connections served together, turn after turn, as the reactor serves them.
struct Turns {
    app: App,
    bufs: Buffers,
    conns: Vec<(Socket, Conn, ReadState)>,
}

impl Turns {
    fn new(conns: usize) -> Turns {
        let now = Instant::now();
        let conn = || {
            let socket = Socket { input: None };
            let conn = Conn::new(IpAddr::V4(Ipv4Addr::LOCALHOST), now);
            (socket, conn, ReadState::default())
        };
        Turns {
            app: testkit::router(1000),
            bufs: Buffers::new(64 * 1024),
            conns: (0..conns).map(|_| conn()).collect(),
        }
    }

    /// `n` turns in which every connection sends `request`; returns the allocations made.
    fn serve(&mut self, request: &'static [u8], n: usize) -> u64 {
        let now = Instant::now();
        let limits = Limits::default();
        let before = allocations();
        for k in 0..n {
            // What the reactor records for every turn: loop time and the two histograms.
            let slept = std::time::Duration::from_micros(k as u64 % 5000);
            self.app.state.metrics.looping.woke(slept, k % 300);
            self.app.state.metrics.looping.turned(slept / 3);
            let mut env = Env {
                bufs: &mut self.bufs,
                svc: &mut self.app,
                limits: &limits,
                now,
            };
            for (key, (socket, conn, rs)) in self.conns.iter_mut().enumerate() {
                socket.input = Some(request);
                rs.reads_left = READ_BUDGET;
                pump::read(key, socket, conn, rs, &mut env).unwrap();
                assert!(!conn.output().is_empty());
            }
            for (key, (socket, conn, rs)) in self.conns.iter_mut().enumerate() {
                pump::flush(key, socket, conn, rs, env.bufs, now).unwrap();
                assert!(conn.output().is_empty());
            }
        }
        allocations() - before
    }
}

#[test]
fn get_inc_and_set_existing_allocate_nothing_per_request() {
    let mut turns = Turns::new(8);
    let requests: [&'static [u8]; 4] = [
        b"GET /get?name=i HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\n\r\n",
        b"GET /inc?name=i HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
        b"GET /set?name=i&val=-12345 HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
        b"HEAD /get?name=i HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ];
    // Warm-up: the spare output buffers are made once.
    for r in requests {
        turns.serve(r, 10);
    }
    for r in requests {
        let n = turns.serve(r, 1000);
        assert_eq!(
            n,
            0,
            "{} allocations for 1000 turns of 8 x {:?}",
            n,
            String::from_utf8_lossy(r)
        );
    }
    // The counter really moved, so the loop above did real work.
    assert_eq!(turns.app.state.store.get("i"), Some(-12345));
    // And the allocator is really counted: a new name allocates.
    let before = allocations();
    turns.serve(b"GET /set?name=fresh&val=1 HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    assert!(
        allocations() > before,
        "the counting allocator sees allocations"
    );
}

/// The flight recorder is always on, so it must cost no allocation: after `new`, recording
/// turns, events, waits and pool jobs (the ring wrapping many times) and rendering it into
/// a buffer sized once with `max_json_bytes` allocate nothing.
#[test]
fn the_flight_recorder_allocates_nothing_after_construction() {
    use counterd::trace::{Job, Kind, Recorder, Source, render_json};
    use std::time::Duration;
    let origin = Instant::now();
    let mut rec = Recorder::new(1024, 0, 4, origin);
    let at = |ns: u64| origin + Duration::from_nanos(ns);
    let mut out = Vec::with_capacity(rec.max_json_bytes() + counterd::trace::MAX_FRAME_BYTES);
    let before = allocations();
    let mut t = 0u64;
    for turn in 0..5_000u64 {
        t += 1_000;
        rec.turn(at(t), Duration::from_nanos(900), (turn % 300) as u32);
        for e in 0..5u32 {
            t += 100;
            rec.event(at(t), Source::Conn(e), Kind::ready(true, e % 2 == 0, false));
            rec.io(100, 200, 1);
        }
        rec.parked(at(t), turn);
        rec.to_pool(at(t), turn + 1_000_000);
        let (id, worker) = (turn + 1_000_000, (turn % 4) as u16);
        rec.job(Job {
            id,
            worker,
            start: at(t),
            end: at(t + 50),
        });
        if turn > 0 {
            rec.completed(at(t + 60), turn - 1);
            rec.completed(at(t + 60), turn + 1_000_000);
        }
        rec.end_turn(at(t + 100));
        if turn % 1000 == 999 {
            out.clear();
            render_json(&[&rec], usize::MAX, &mut out);
        }
    }
    assert_eq!(allocations() - before, 0);
    // The document is real: turns, events and flows were written.
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.contains("\"cat\":\"turn\"") && text.contains("\"ph\":\"f\""));
    assert!(text.contains("\"cat\":\"job\""));
}
