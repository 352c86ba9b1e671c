//! "Work that takes time" against the real binary: `--work-us N` with each `--work` mode.
//! `timer` overlaps waits on one thread, `pool` is capped at its threads, `sleep` blocks
//! everyone; in every mode answers stay in request order, counts stay exact, a request
//! read is carried out, and `/metrics` never waits.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server, TempDir, get_request};

fn metric(client: &mut Client, series: &str) -> u64 {
    let r = client.get("/metrics");
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{}", r.text()))
}

/// `clients` connections each send one `/inc?name=w` at once; returns how long the last
/// answer took.
fn concurrent_incs(server: &Server, clients: usize) -> Duration {
    let mut conns: Vec<Client> = (0..clients).map(|_| server.client()).collect();
    let started = Instant::now();
    for c in &mut conns {
        c.send(&get_request("/inc?name=w", "HTTP/1.1", &[]));
    }
    for c in &mut conns {
        c.read_response().assert(200, "ok\n");
    }
    started.elapsed()
}

#[test]
fn timer_mode_overlaps_twenty_waits_of_200_ms_on_one_thread() {
    let server = Server::start(&["--work-us", "200000", "--work", "timer"]);
    server.get("/set?name=w&val=0").assert(200, "ok\n");
    let took = concurrent_incs(&server, 20);
    assert!(
        took < Duration::from_millis(800),
        "20 waits of 200 ms took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(200),
        "no wait at all: {took:?}"
    );
    server.get("/get?name=w").assert(200, "w: 20\n");
    let threads = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    assert!(threads.contains("Threads:\t1\n"), "{threads}");
}

#[test]
fn pool_mode_with_four_threads_serves_eight_waits_in_two_rounds() {
    let args = [
        "--work-us",
        "200000",
        "--work",
        "pool",
        "--pool-threads",
        "4",
    ];
    let server = Server::start(&args);
    server.get("/set?name=w&val=0").assert(200, "ok\n");
    let took = concurrent_incs(&server, 8);
    assert!(
        took >= Duration::from_millis(400),
        "8 waits on 4 threads in {took:?}"
    );
    assert!(
        took < Duration::from_millis(750),
        "more than two rounds: {took:?}"
    );
    server.get("/get?name=w").assert(200, "w: 8\n");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    assert!(
        status.contains("Threads:\t5\n"),
        "the loop and 4 workers: {status}"
    );
}

#[test]
fn sleep_mode_blocks_every_client_of_the_loop() {
    let server = Server::start(&["--work-us", "100000"]);
    server.get("/set?name=w&val=0").assert(200, "ok\n"); // 100 ms
    let took = concurrent_incs(&server, 4);
    assert!(
        took >= Duration::from_millis(400),
        "4 sleeps of 100 ms in {took:?}"
    );
    server.get("/get?name=w").assert(200, "w: 4\n");
}

#[test]
fn pipelined_requests_with_work_are_answered_one_at_a_time_in_order() {
    for mode in ["timer", "pool", "spin", "sleep"] {
        let server = Server::start(&["--work-us", "20000", "--work", mode]);
        let mut c = server.client();
        let mut raw = Vec::new();
        for target in [
            "/set?name=a&val=5",
            "/inc?name=a",
            "/metrics",
            "/get?name=a",
            "/inc?name=nope",
            "/get?name=a%zz",
            "/inc?name=a",
            "/get?name=a",
        ] {
            raw.extend(get_request(target, "HTTP/1.1", &[]));
        }
        c.send(&raw);
        c.read_response().assert(200, "ok\n");
        c.read_response().assert(200, "ok\n");
        let metrics = c.read_response();
        assert_eq!(metrics.status, 200, "{mode}");
        assert!(
            metrics.text().contains("counterd_work_in_flight 0\n"),
            "{mode}"
        );
        c.read_response().assert(200, "a: 6\n");
        c.read_response().assert(404, "nope not found\n");
        assert_eq!(c.read_response().status, 400, "{mode}");
        c.read_response().assert(200, "ok\n");
        c.read_response().assert(200, "a: 7\n");
    }
}

#[test]
fn a_request_read_is_carried_out_though_its_client_closes() {
    for mode in ["timer", "pool"] {
        let server = Server::start(&["--work-us", "200000", "--work", mode]);
        let mut c = server.client();
        c.send(&get_request("/inc?name=i", "HTTP/1.1", &[]));
        thread::sleep(Duration::from_millis(50)); // read and in work
        drop(c);
        thread::sleep(Duration::from_millis(300));
        let mut other = server.client();
        // /get waits for its own work; the /inc of the closed client came first.
        other.get("/get?name=i").assert(200, "i: 1\n");
        assert_eq!(metric(&mut other, "counterd_work_in_flight"), 0, "{mode}");
    }
}

#[test]
fn metrics_never_wait_and_count_the_work_in_flight() {
    for (mode, busy) in [("timer", 0), ("pool", 3)] {
        let args = ["--work-us", "500000", "--work", mode, "--pool-threads", "3"];
        let server = Server::start(&args);
        let mut waiting: Vec<Client> = (0..5).map(|_| server.client()).collect();
        for c in &mut waiting {
            c.send(&get_request("/get?name=i", "HTTP/1.1", &[]));
        }
        thread::sleep(Duration::from_millis(100));
        let mut m = server.client();
        let asked = Instant::now();
        assert_eq!(metric(&mut m, "counterd_work_in_flight"), 5, "{mode}");
        assert_eq!(metric(&mut m, "counterd_pool_busy_threads"), busy, "{mode}");
        assert!(
            asked.elapsed() < Duration::from_millis(200),
            "{mode}: /metrics waited"
        );
        for c in &mut waiting {
            c.read_response().assert(200, "i: 0\n");
        }
    }
}

#[test]
fn no_idle_timeout_fires_while_a_request_is_in_work() {
    let args = [
        "--work-us",
        "600000",
        "--work",
        "timer",
        "--idle-timeout",
        "0.2",
    ];
    let server = Server::start(&args);
    let mut c = server.client();
    c.get("/inc?name=i").assert(200, "ok\n");
    c.get("/get?name=i").assert(200, "i: 1\n");
}

#[test]
fn sigterm_answers_the_requests_in_work_then_exits() {
    for mode in ["timer", "pool"] {
        let mut server = Server::start(&["--work-us", "400000", "--work", mode]);
        let mut c = server.client();
        c.send(&get_request("/inc?name=i", "HTTP/1.1", &[]));
        thread::sleep(Duration::from_millis(100));
        server.signal("TERM").unwrap();
        let r = c.read_response();
        r.assert(200, "ok\n");
        c.expect_eof();
        let status = server.wait_exit(Duration::from_secs(6)).expect("exits");
        assert_eq!(status.code(), Some(0), "{mode}: {}", server.stderr());
    }
}

#[test]
fn counts_are_exact_under_concurrency_in_every_mode() {
    for mode in ["sleep", "spin", "timer", "pool"] {
        let server = Server::start(&["--work-us", "500", "--work", mode]);
        server.get("/set?name=n&val=0").assert(200, "ok\n");
        let addr = server.addr;
        let workers: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    for _ in 0..50 {
                        c.get("/inc?name=n").assert(200, "ok\n");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        server.get("/get?name=n").assert(200, "n: 400\n");
    }
}

#[test]
fn with_a_journal_a_change_made_after_work_is_kept() {
    let dir = TempDir::new("after-work");
    let journal = dir.file("j");
    let path = journal.to_str().unwrap();
    for mode in ["timer", "pool"] {
        let _ = std::fs::remove_file(&journal);
        let args = ["--work-us", "50000", "--work", mode, "--journal", path];
        let mut server = Server::start(&args);
        server.get("/set?name=k&val=41").assert(200, "ok\n");
        server.get("/inc?name=k").assert(200, "ok\n");
        server.stop_with("KILL", Duration::from_secs(5)).unwrap();
        let server = Server::start(&["--journal", path]);
        server.get("/get?name=k").assert(200, "k: 42\n");
    }
}

#[test]
fn bad_work_flags_are_exit_2() {
    for args in [
        &["--work", "nap"][..],
        &["--pool-threads", "0"],
        &["--pool-threads", "1025"],
        &["--pool-threads", "-1"],
    ] {
        let bin = common::server_bin();
        let out = common::run_bin(&bin, args, Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
