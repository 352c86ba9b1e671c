//! Checks shared by more than one test file: the ones counterd and the thread-per-connection
//! twins of `examples/` must all pass (see `tests/twins.rs`). Each takes a running server.

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use super::{Client, Response, Server, get_request};

/// Asserts the headers every answer carries (docs/reference.md, "HTTP API" and "HTTP/1.x behaviour").
#[track_caller]
pub fn assert_standard_headers(r: &Response) {
    assert_eq!(r.version, "HTTP/1.1", "{r:?}");
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=utf-8"),
        "{r:?}"
    );
    assert_eq!(r.headers_named("Content-Length").len(), 1, "{r:?}");
    let date = r.header("Date").unwrap_or_else(|| panic!("no Date: {r:?}"));
    // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
    assert!(
        date.len() == 29 && date.ends_with(" GMT") && date.as_bytes()[3] == b',',
        "bad Date {date:?}"
    );
    for (name, _) in &r.headers {
        assert!(
            is_canonical(name),
            "header {name:?} is not in canonical case: {:?}",
            r.raw_head
        );
    }
    for name in ["Content-Type", "Content-Length", "Date"] {
        assert!(
            r.raw_head.contains(&format!("\r\n{name}: ")),
            "{name} not written canonically: {:?}",
            r.raw_head
        );
    }
}

/// `Content-Length`, `Retry-After`, `Date`: every dash-separated word capitalised.
pub fn is_canonical(name: &str) -> bool {
    name.split('-').all(|w| {
        let mut cs = w.chars();
        cs.next().is_some_and(|c| c.is_ascii_uppercase()) && cs.all(|c| !c.is_ascii_uppercase())
    })
}

/// The session of the original post, byte for byte, on one keep-alive connection.
pub fn original_session(server: &Server) {
    let mut c = server.client();
    for (target, status, body) in [
        ("/set?name=x&val=0", 200, "ok\n"),
        ("/get?name=x", 200, "x: 0\n"),
        ("/inc?name=x", 200, "ok\n"),
        ("/get?name=x", 200, "x: 1\n"),
        ("/get?name=i", 200, "i: 0\n"),
        ("/get?name=j", 200, "j: 0\n"),
        ("/get?name=y", 404, "y not found\n"),
    ] {
        let r = c.get(target);
        r.assert(status, body);
        assert_standard_headers(&r);
        assert_eq!(
            r.header("Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert!(!r.closes(), "HTTP/1.1 keep-alive: {r:?}");
    }
}

/// 50 keep-alive clients × 200 incs and 20 clients × 50 incs on fresh connections, all at
/// once: the counter ends at exactly the number of answers.
pub fn concurrent_incs_lose_no_update(server: &Server) {
    const KEEP_ALIVE_THREADS: usize = 50;
    const KEEP_ALIVE_INCS: usize = 200;
    const SHORT_THREADS: usize = 20;
    const SHORT_INCS: usize = 50;

    server.get("/set?name=c&val=0").assert(200, "ok\n");
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(KEEP_ALIVE_THREADS + SHORT_THREADS));
    let mut threads = Vec::new();
    for _ in 0..KEEP_ALIVE_THREADS {
        let barrier = barrier.clone();
        threads.push(thread::spawn(move || {
            let mut c = Client::connect(addr);
            barrier.wait();
            for _ in 0..KEEP_ALIVE_INCS {
                c.get("/inc?name=c").assert(200, "ok\n");
            }
        }));
    }
    for _ in 0..SHORT_THREADS {
        let barrier = barrier.clone();
        threads.push(thread::spawn(move || {
            barrier.wait();
            for n in 0..SHORT_INCS {
                // Alternate between an explicit close and simply dropping the connection.
                let mut c = Client::connect(addr);
                if n % 2 == 0 {
                    c.send(b"GET /inc?name=c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                    c.read_response().assert(200, "ok\n");
                    c.expect_eof();
                } else {
                    c.get("/inc?name=c").assert(200, "ok\n");
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("client thread");
    }
    let want = KEEP_ALIVE_THREADS * KEEP_ALIVE_INCS + SHORT_THREADS * SHORT_INCS;
    server
        .get("/get?name=c")
        .assert(200, &format!("c: {want}\n"));
}

/// 16 clients set, get and inc their own counters and one shared counter at once: every
/// answer is the asking client's own, and no value is torn.
pub fn concurrent_set_and_get_never_cross_answers(server: &Server) {
    const THREADS: usize = 16;
    const ROUNDS: i64 = 150;

    server.get("/set?name=shared&val=0").assert(200, "ok\n");
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let own = format!("own{t}");
                barrier.wait();
                for round in 0..ROUNDS {
                    // Each thread's own counter: what it sets is exactly what it reads back.
                    let v = (t as i64) * 1_000_000 + round;
                    c.get(&format!("/set?name={own}&val={v}"))
                        .assert(200, "ok\n");
                    c.get(&format!("/get?name={own}"))
                        .assert(200, &format!("{own}: {v}\n"));
                    c.get(&format!("/inc?name={own}")).assert(200, "ok\n");
                    c.get(&format!("/get?name={own}"))
                        .assert(200, &format!("{own}: {}\n", v + 1));
                    // A counter everyone writes: the answer is some thread's whole value,
                    // and each value encodes (thread, round) so a torn one would show.
                    c.get(&format!("/set?name=shared&val={v}"))
                        .assert(200, "ok\n");
                    let r = c.get("/get?name=shared");
                    assert_eq!(r.status, 200);
                    let seen: i64 = r
                        .text()
                        .strip_prefix("shared: ")
                        .and_then(|s| s.strip_suffix('\n'))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("bad answer {:?}", r.text()));
                    let (who, when) = (seen / 1_000_000, seen % 1_000_000);
                    assert!(
                        (0..THREADS as i64).contains(&who) && when < ROUNDS,
                        "{seen}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    for t in 0..THREADS {
        // The last round set (t, ROUNDS - 1) and then incremented it.
        let v = (t as i64) * 1_000_000 + (ROUNDS - 1) + 1;
        server
            .get(&format!("/get?name=own{t}"))
            .assert(200, &format!("own{t}: {v}\n"));
    }
}

/// 100 pipelined sets in one write, then 100 gets in a scrambled order with a 404 in the
/// middle, in one write: every answer comes back, in order, and the connection stays open.
pub fn hundred_pipelined_requests_in_order(server: &Server) {
    let mut c = server.client();
    let mut sets = Vec::new();
    for n in 0..100 {
        sets.extend(get_request(
            &format!("/set?name=p{n}&val={}", n * n + 7),
            "HTTP/1.1",
            &[],
        ));
    }
    c.send(&sets);
    for n in 0..100 {
        let r = c.read_response();
        assert_eq!((r.status, r.text()), (200, "ok\n"), "set {n}");
    }
    // Gets in a scrambled order, each with a distinct answer, plus a 404 in the middle.
    let order: Vec<u32> = (0..100).map(|k| (k * 37 + 11) % 100).collect();
    let mut gets = Vec::new();
    for (k, n) in order.iter().enumerate() {
        gets.extend(get_request(&format!("/get?name=p{n}"), "HTTP/1.1", &[]));
        if k == 50 {
            gets.extend(get_request("/get?name=absent", "HTTP/1.1", &[]));
        }
    }
    c.send(&gets);
    for (k, n) in order.iter().enumerate() {
        c.read_response()
            .assert(200, &format!("p{n}: {}\n", n * n + 7));
        if k == 50 {
            c.read_response().assert(404, "absent not found\n");
        }
    }
    c.expect_open(Duration::from_millis(100));
}

/// 20,000 pipelined incs written by a thread while nobody reads: the server holds off (it
/// must not buffer without bound), then every answer arrives once the client reads.
pub fn pipelined_flood_without_reading(server: &Server) {
    let mut c = server.client();
    c.get("/set?name=f&val=0").assert(200, "ok\n");
    const N: usize = 20_000;
    let one = get_request("/inc?name=f", "HTTP/1.1", &[]);
    let raw: Vec<u8> = one.iter().copied().cycle().take(one.len() * N).collect();
    let mut writer = c.stream.try_clone().unwrap();
    let t = thread::spawn(move || writer.write_all(&raw));
    thread::sleep(Duration::from_millis(300));
    for n in 0..N {
        let r = c.read_response();
        assert_eq!((r.status, r.text()), (200, "ok\n"), "answer {n}");
    }
    t.join().unwrap().expect("requests written");
    c.get("/get?name=f").assert(200, &format!("f: {N}\n"));
}

/// Each of `targets` is a `400` that keeps the connection open (a bad query is the
/// client's mistake, not the stream's), with the standard headers.
#[track_caller]
pub fn api_400s_keep_the_connection(c: &mut Client, targets: &[&str]) {
    for target in targets {
        let r = c.get(target);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert_standard_headers(&r);
        assert!(
            !r.closes(),
            "a 400 from the API keeps the connection: {r:?}"
        );
    }
}

/// A pipelined burst (set, ten incs, get of `name`) sent whole, then a half-close: every
/// answer comes back, then EOF.
pub fn half_closed_burst_gets_every_answer(c: &mut Client, name: &str) {
    let mut raw = get_request(&format!("/set?name={name}&val=100"), "HTTP/1.1", &[]);
    for _ in 0..10 {
        raw.extend(get_request(&format!("/inc?name={name}"), "HTTP/1.1", &[]));
    }
    raw.extend(get_request(&format!("/get?name={name}"), "HTTP/1.1", &[]));
    c.send(&raw);
    c.shutdown_write();
    for _ in 0..11 {
        c.read_response().assert(200, "ok\n");
    }
    c.read_response().assert(200, &format!("{name}: 110\n"));
    c.expect_eof();
}

/// HTTP/1.0 with `Connection: keep-alive` stays open and says so, `rounds` times; then a
/// 1.0 request without it is answered with `Connection: close`, and the server closes.
pub fn http10_keep_alive_then_close(c: &mut Client, rounds: usize) {
    for n in 0..rounds {
        c.send(&get_request(
            "/get?name=j",
            "HTTP/1.0",
            &["Connection: keep-alive"],
        ));
        let r = c.read_response();
        r.assert(200, "j: 0\n");
        assert!(
            r.raw_head.contains("\r\nConnection: keep-alive\r\n"),
            "request {n}: {r:?}"
        );
        c.expect_open(Duration::from_millis(100));
    }
    c.send(&get_request("/get?name=j", "HTTP/1.0", &[]));
    let r = c.read_response();
    r.assert(200, "j: 0\n");
    assert!(r.closes(), "{r:?}");
    c.expect_eof();
}
