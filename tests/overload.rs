//! Overload and abuse, against the real binary with short settings: the connection cap in
//! both modes, the rate limiter, the header and idle timeouts, slowloris, and a client
//! that pipelines without reading.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::thread;
use std::time::{Duration, Instant};

use common::{Client, Server};

/// The value of one sample line of `/metrics`, asked on `client`.
fn metric(client: &mut Client, series: &str) -> u64 {
    let text = client.get("/metrics").text().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// Opens `n` keep-alive connections that the server has really accepted (each answered).
fn open_clients(server: &Server, n: usize) -> Vec<Client> {
    (0..n)
        .map(|_| {
            let mut c = server.client();
            c.get("/get?name=i").assert(200, "i: 0\n");
            c
        })
        .collect()
}

#[test]
fn cap_queue_leaves_the_extra_client_in_the_backlog_until_one_closes() {
    let server = Server::start(&["--max-conns", "10"]);
    let mut clients = open_clients(&server, 10);
    let mut extra = Client::connect(server.addr); // the kernel completes the handshake
    extra.send(b"GET /get?name=i HTTP/1.1\r\nHost: t\r\n\r\n");
    extra.expect_open(Duration::from_millis(700)); // ...but nobody answers
    assert_eq!(metric(&mut clients[0], "counterd_connections_peak"), 10);

    drop(clients.pop());
    let t0 = Instant::now();
    extra.read_response().assert(200, "i: 0\n");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(metric(&mut extra, "counterd_connections_peak"), 10);
    assert_eq!(metric(&mut extra, "counterd_connections_rejected_total"), 0);
}

#[test]
fn cap_queue_serves_200_concurrent_clients_with_the_exact_count() {
    let server = Server::start(&["--max-conns", "10"]);
    server.get("/set?name=c&val=0").assert(200, "ok\n");
    let addr = server.addr;
    let threads: Vec<_> = (0..200)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..5 {
                    c.get("/inc?name=c").assert(200, "ok\n");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    server.get("/get?name=c").assert(200, "c: 1000\n");
    let mut c = server.client();
    let peak = metric(&mut c, "counterd_connections_peak");
    assert!(peak <= 10, "peak {peak} over the cap");
}

#[test]
fn cap_reject_answers_503_with_retry_after_and_closes() {
    let server = Server::start(&["--max-conns", "10", "--overload", "reject"]);
    let mut clients = open_clients(&server, 10);
    let mut extra = Client::connect(server.addr);
    let resp = extra.read_response(); // the 503 comes without asking
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("Retry-After"), Some("1"));
    assert!(resp.closes());
    extra.expect_eof();
    // A client that sent its request first also gets the 503, not a reset.
    let mut eager = Client::connect(server.addr);
    eager.send(b"GET /inc?name=i HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(eager.read_response().status, 503);
    eager.expect_eof();
    assert_eq!(
        metric(&mut clients[0], "counterd_connections_rejected_total"),
        2
    );
    assert_eq!(metric(&mut clients[0], "counterd_connections_open"), 10);
    clients[0].get("/get?name=i").assert(200, "i: 0\n"); // the refused inc did nothing
    drop(clients.pop());
    thread::sleep(Duration::from_millis(100));
    server.get("/get?name=i").assert(200, "i: 0\n"); // room again
}

/// A TCP connection from a chosen loopback source address.
fn connect_from(source: [u8; 4], to: SocketAddr) -> Client {
    // SAFETY: plain socket calls on a descriptor we own; it is handed to TcpStream at once.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let stream = TcpStream::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(source);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0,
            "bind"
        );
        let SocketAddr::V4(to) = to else {
            panic!("IPv4 only")
        };
        sa.sin_port = to.port().to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        assert_eq!(
            libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len),
            0,
            "connect"
        );
        stream
    };
    Client::from_stream(stream)
}

#[test]
fn rate_limit_per_client_address() {
    let server = Server::start(&["--rate", "20", "--burst", "1"]);
    let mut a = server.client();
    a.get("/get?name=i").assert(200, "i: 0\n");
    let refused = a.get("/get?name=i");
    assert_eq!(refused.status, 429, "{refused:?}");
    let retry: u64 = refused
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(!refused.closes(), "a 429 keeps the connection");
    thread::sleep(Duration::from_millis(100));
    a.get("/get?name=i").assert(200, "i: 0\n");
    // Another source address has a bucket of its own, even while 127.0.0.1's is empty.
    assert_eq!(a.get("/get?name=i").status, 429);
    let mut b = connect_from([127, 0, 0, 2], server.addr);
    b.get("/get?name=i").assert(200, "i: 0\n");
    thread::sleep(Duration::from_millis(100));
    assert_eq!(metric(&mut a, "counterd_rate_limited_total"), 2);
}

#[test]
fn header_timeout_answers_408_to_a_half_sent_head() {
    let server = Server::start(&["--header-timeout", "1"]);
    let mut slow = server.client();
    let t0 = Instant::now();
    slow.send(b"GET /inc?name=i HTTP/1.1\r\nHost: t\r\n");
    let resp = slow.read_response();
    let took = t0.elapsed();
    assert_eq!(resp.status, 408, "{resp:?}");
    assert!(resp.closes());
    slow.expect_eof();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    // A body that trickles is timed the same way.
    let mut slow_body = server.client();
    slow_body.send(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(slow_body.read_response().status, 408);
    server.get("/get?name=i").assert(200, "i: 0\n");
    let mut c = server.client();
    assert_eq!(
        metric(&mut c, "counterd_timeouts_total{kind=\"header\"}"),
        2
    );
}

#[test]
fn slowloris_does_not_delay_a_normal_client() {
    let server = Server::start(&["--header-timeout", "1"]);
    let addr = server.addr;
    let mut lorises: Vec<TcpStream> = (0..200)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    for s in &mut lorises {
        s.write_all(b"GET /get?name=i HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
    }
    let mut normal = server.client();
    let mut worst = Duration::ZERO;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        for s in &mut lorises {
            let _ = s.write_all(b"X"); // one more byte each; never the end of the head
        }
        let t = Instant::now();
        normal.get("/inc?name=i").assert(200, "ok\n");
        worst = worst.max(t.elapsed());
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!("worst normal-client latency during slowloris: {worst:?}");
    assert!(
        worst < Duration::from_millis(200),
        "normal client waited {worst:?}"
    );
    // Every slowloris connection got its 408 and was closed.
    for s in &mut lorises {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(
            buf.starts_with(b"HTTP/1.1 408 "),
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
    }
}

#[test]
fn idle_timeout_closes_idle_connections_but_not_busy_ones() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let mut idle = server.client();
    idle.get("/get?name=i").assert(200, "i: 0\n");
    let mut silent = server.client(); // never sends anything
    let mut busy = server.client();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2000) {
        busy.get("/inc?name=i").assert(200, "ok\n");
        thread::sleep(Duration::from_millis(200));
    }
    idle.expect_eof();
    silent.expect_eof();
    busy.get("/get?name=i").assert(200, "i: 10\n");
    assert!(metric(&mut busy, "counterd_timeouts_total{kind=\"idle\"}") >= 2);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn pipelining_without_reading_is_bounded_and_answered_in_order() {
    const N: usize = 20_000;
    let server = Server::start(&[]);
    let pid = server.pid();
    let rss_before = rss_kib(pid);

    let mut greedy = server.client();
    let mut writer = greedy.stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let sender = thread::spawn(move || {
        let mut burst = Vec::new();
        for k in 0..N {
            burst.extend_from_slice(
                format!("GET /get?name=p{k} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
            );
        }
        writer.write_all(&burst).expect("all requests sent");
    });

    // While the greedy client does not read, the server stays small and serves others.
    let mut peak = rss_before;
    let mut other = server.client();
    for _ in 0..20 {
        other.get("/inc?name=i").assert(200, "ok\n");
        peak = peak.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(25));
    }
    eprintln!("RSS before {rss_before} KiB, peak while not reading {peak} KiB");
    assert!(
        peak < rss_before + 8 * 1024,
        "RSS grew from {rss_before} to {peak} KiB"
    );

    for k in 0..N {
        greedy
            .read_response()
            .assert(404, &format!("p{k} not found\n"));
    }
    sender.join().unwrap();
    let after = rss_kib(pid);
    eprintln!("RSS after all answers: {after} KiB");
    assert!(after < rss_before + 8 * 1024);
}

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_pauses_accepting_without_spinning() {
    // 12 descriptors: half are held back from the cap (6, of which one for a 503), but the
    // process holds about 8 before its first client, so refusing a crowd runs it out of
    // descriptors (EMFILE) anyway.
    let counterd = common::server_bin();
    let args = [
        "--nofile=12:12",
        counterd.to_str().unwrap(),
        "--overload",
        "reject",
        "0",
    ];
    let server = Server::start_exact(std::path::Path::new("/usr/bin/prlimit"), &args);
    let mut kept = server.client();
    kept.get("/get?name=i").assert(200, "i: 0\n");
    // A crowd that connects and never reads or closes: each is refused and lingers.
    let crowd: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - before;
    assert!(
        used < 20,
        "{used} ticks of CPU in 1 s while out of descriptors: spinning?"
    );
    kept.get("/get?name=i").assert(200, "i: 0\n");
    let stderr = server.stderr();
    assert_eq!(
        stderr.matches("accept failed").count(),
        1,
        "one warning per episode:\n{stderr}"
    );
    assert!(stderr.contains("Too many open files"), "{stderr}");
    drop(crowd);
    drop(kept);
    thread::sleep(Duration::from_millis(500));
    server.get("/inc?name=i").assert(200, "ok\n");
}

/// Clients that complete the TCP handshake within `wait` each, out of `n` tried one after
/// another; stops at the first that does not (its SYN was dropped: the backlog is full).
fn handshakes(addr: SocketAddr, n: usize, wait: Duration) -> Vec<TcpStream> {
    let mut done = Vec::new();
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, wait) {
            Ok(s) => done.push(s),
            Err(_) => break,
        }
    }
    done
}

#[test]
fn queue_mode_keeps_hundreds_of_clients_waiting_in_the_backlog() {
    // The default backlog is 1024: std's and mio's 128 let only 129 of 600 through.
    let server = Server::start(&["--max-conns", "1"]);
    let mut held = server.client();
    held.get("/get?name=i").assert(200, "i: 0\n");
    let waiting = handshakes(server.addr, 600, Duration::from_millis(500));
    assert_eq!(waiting.len(), 600, "clients completed the handshake");
    // They really wait: the first is answered once the held connection closes.
    let mut first = Client::from_stream(waiting.into_iter().next().unwrap());
    first.send(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n");
    first.expect_open(Duration::from_millis(200));
    drop(held);
    first.read_response().assert(200, "ok\n");
}

#[test]
fn backlog_flag_sets_the_waiting_room() {
    let server = Server::start(&["--max-conns", "1", "--backlog", "16"]);
    let mut held = server.client();
    held.get("/get?name=i").assert(200, "i: 0\n");
    let waiting = handshakes(server.addr, 40, Duration::from_millis(300));
    // Linux queues one more than the backlog.
    assert!(
        (16..=18).contains(&waiting.len()),
        "{} clients got through a backlog of 16",
        waiting.len()
    );
}

#[test]
fn a_low_descriptor_limit_still_serves_half_of_it() {
    // Queue mode sends no 503s, so only the fixed reserve is held back: 64 descriptors
    // allow 32 connections (the reserve and 503 budget together once left room for 1).
    let counterd = common::server_bin();
    let args = ["--nofile=64:64", counterd.to_str().unwrap(), "0"];
    let server = Server::start_exact(std::path::Path::new("/usr/bin/prlimit"), &args);
    assert!(
        server.stderr_with("using 32").contains("using 32"),
        "the cap is clamped to 32: {}",
        server.stderr()
    );
    let mut served = open_clients(&server, 32);
    // The 33rd waits in the backlog until one of the 32 leaves.
    let mut extra = server.client();
    extra.send(b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n");
    extra.expect_open(Duration::from_millis(300));
    served.pop();
    extra.read_response().assert(200, "ok\n");
    for c in &mut served {
        c.get("/get?name=i").assert(200, "i: 1\n");
    }
}
