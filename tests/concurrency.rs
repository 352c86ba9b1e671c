//! Many clients at once against the one-threaded server: no lost update, no crossed answer.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{Client, Server};

#[test]
fn concurrent_incs_lose_no_update() {
    const KEEP_ALIVE_THREADS: usize = 50;
    const KEEP_ALIVE_INCS: usize = 200;
    const SHORT_THREADS: usize = 20;
    const SHORT_INCS: usize = 50;

    let server = Server::start(&[]);
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

#[test]
fn concurrent_set_and_get_never_cross_answers() {
    const THREADS: usize = 16;
    const ROUNDS: i64 = 150;

    let server = Server::start(&[]);
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

#[test]
fn many_idle_connections_do_not_block_an_active_one() {
    let server = Server::start(&[]);
    // Idle connections, some with half a request in, some with nothing.
    let mut idle: Vec<Client> = (0..200).map(|_| server.client()).collect();
    for (n, c) in idle.iter_mut().enumerate() {
        if n % 2 == 0 {
            c.send(b"GET /inc?name=i HTTP/1.1\r\nHost:");
        }
    }
    let mut active = server.client();
    for n in 1..=50 {
        active.get("/inc?name=j").assert(200, "ok\n");
        active.get("/get?name=j").assert(200, &format!("j: {n}\n"));
    }
    // The half requests complete later and are answered on their own connections.
    for (n, c) in idle.iter_mut().enumerate() {
        if n % 2 == 0 {
            c.send(b" t\r\n\r\n");
            c.read_response().assert(200, "ok\n");
        }
    }
    active.get("/get?name=i").assert(200, "i: 100\n");
}
