//! The process from the outside: the listening line, flags, signals and graceful shutdown.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, get_request, parse_response, run_bin, server_bin};

const EXIT_WAIT: Duration = Duration::from_secs(5);

#[test]
fn banner_is_the_only_stdout_line() {
    let mut server = Server::start(&[]);
    assert_eq!(
        server.banner,
        format!("listening on http://127.0.0.1:{}", server.addr.port())
    );
    assert!(server.addr.ip().is_loopback());
    server.get("/inc?name=i").assert(200, "ok\n");
    let (status, _) = server.stop_with("TERM", EXIT_WAIT).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert_eq!(
        server.stdout_after_banner(),
        "",
        "nothing but the banner on stdout"
    );
}

#[test]
fn sigterm_with_an_idle_keep_alive_client_exits_0_promptly() {
    let mut server = Server::start(&[]);
    let mut idle = server.client();
    idle.get("/get?name=i").assert(200, "i: 0\n");
    // A second client that never sent anything.
    let mut silent = server.client();
    let (status, took) = server.stop_with("TERM", EXIT_WAIT).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    idle.expect_eof();
    silent.expect_eof();
}

#[test]
fn sigterm_logs_a_one_line_summary() {
    let mut server = Server::start(&[]);
    let mut a = server.client();
    a.get("/set?name=x&val=0").assert(200, "ok\n");
    a.get("/inc?name=x").assert(200, "ok\n");
    server.get("/get?name=x").assert(200, "x: 1\n");
    drop(a);
    let (status, _) = server.stop_with("TERM", EXIT_WAIT).unwrap();
    assert_eq!(status.code(), Some(0));
    let stderr = server.stderr();
    let summary = stderr
        .lines()
        .find(|l| l.contains("stopped after"))
        .unwrap_or_else(|| panic!("no summary line in stderr:\n{stderr}"));
    assert!(
        summary.contains(": 2 connections, 3 requests"),
        "summary: {summary:?}"
    );
    let uptime = summary
        .split("stopped after ")
        .nth(1)
        .and_then(|s| s.split('s').next());
    assert!(
        uptime.and_then(|s| s.parse::<f64>().ok()).is_some(),
        "uptime in {summary:?}"
    );
}

#[test]
fn sigint_also_exits_0() {
    let mut server = Server::start(&[]);
    server.get("/get?name=i").assert(200, "i: 0\n");
    let (status, took) = server.stop_with("INT", EXIT_WAIT).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        server.stderr().contains("stopped after"),
        "{}",
        server.stderr()
    );
}

#[test]
fn shutdown_stops_accepting() {
    let mut server = Server::start(&[]);
    let addr = server.addr;
    server.stop_with("TERM", EXIT_WAIT).unwrap();
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "still accepting after exit");
}

/// A client that pipelined much more than it read when the signal came gets whole answers
/// up to where the server stopped, never a cut one, then EOF.
#[test]
fn shutdown_finishes_pending_answers_without_cutting_one() {
    const N: usize = 10_000;
    let mut server = Server::start(&[]);
    let mut c = server.client();
    // /metrics answers are ~3 KB each: far more output than the socket buffers hold, so
    // backpressure is holding answers back when the signal comes.
    let one = get_request("/metrics", "HTTP/1.1", &[]);
    let flood: Vec<u8> = one.iter().copied().cycle().take(one.len() * N).collect();
    let mut writer = c.stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        for chunk in flood.chunks(16 * 1024) {
            if writer.write_all(chunk).is_err() {
                return; // the server has gone
            }
        }
    });
    thread::sleep(Duration::from_millis(300)); // answers pile up unread
    server.signal("TERM").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 64 * 1024];
    let reset = loop {
        assert!(Instant::now() < deadline, "no EOF after 10 s");
        match c.stream.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    };
    sender.join().unwrap();
    drop(c); // a server lingering for our close may now finish
    let status = server.wait_exit(EXIT_WAIT).expect("server exits");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    let mut answers = 0;
    let mut at = 0;
    while let Some((r, used)) = parse_response(&got[at..], false) {
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.text().contains("counterd_requests_total"), "{r:?}");
        answers += 1;
        at += used;
    }
    eprintln!("{answers} of {N} answers before EOF (reset: {reset})");
    assert!(answers > 0, "no answers at all");
    assert!(
        answers < N,
        "the server answered everything: the test did not test shutdown"
    );
    assert_eq!(
        at,
        got.len(),
        "after {answers} whole answers the stream was cut (reset: {reset}); {} bytes of a partial answer",
        got.len() - at
    );
}

#[test]
fn help_prints_usage_to_stdout_and_exits_0() {
    for flag in ["--help", "-h"] {
        let out = run_bin(&server_bin(), &[flag], EXIT_WAIT);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Usage:"), "{flag}: {stdout}");
        for documented in [
            "--bind",
            "--max-conns",
            "--overload",
            "--rate",
            "--burst",
            "--idle-timeout",
            "--header-timeout",
            "--max-header-bytes",
            "--max-counters",
            "--work-us",
            "-v",
        ] {
            assert!(
                stdout.contains(documented),
                "{flag} does not document {documented}:\n{stdout}"
            );
        }
        assert!(
            out.stderr.is_empty(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_flag_values_exit_2_with_a_message_on_stderr() {
    for args in [
        &["--max-conns", "x"][..],
        &["--max-conns", "0"],
        &["--overload", "drop"],
        &["70000"],
        &["-1"],
        &["abc"],
        &["--bind", "localhost"],
        &["--bind"],
        &["--rate", "0"],
        &["--idle-timeout", "never"],
        &["--header-timeout", "0"],
        &["--max-header-bytes", "ten"],
        &["--max-counters", "-5"],
        &["--no-such-flag"],
        &["0", "1"],
    ] {
        let out = run_bin(&server_bin(), args, EXIT_WAIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} exit status; stderr: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{args:?} wrote to stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!stderr.trim().is_empty(), "{args:?}: no message on stderr");
    }
    // The message names what was wrong.
    let out = run_bin(&server_bin(), &["--max-conns", "x"], EXIT_WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-conns") && stderr.contains('x'),
        "{stderr}"
    );
    let out = run_bin(&server_bin(), &["--overload", "drop"], EXIT_WAIT);
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop"));
    let out = run_bin(&server_bin(), &["70000"], EXIT_WAIT);
    assert!(String::from_utf8_lossy(&out.stderr).contains("70000"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_bin(&server_bin(), &[&port], EXIT_WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "bound a port already in use; stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&port),
        "the error names the address: {stderr}"
    );
}

#[test]
fn bind_ipv6_loopback() {
    let mut server = Server::start(&["--bind", "::1"]);
    assert_eq!(server.addr.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(
        server.banner,
        format!("listening on http://[::1]:{}", server.addr.port())
    );
    let mut c = server.client();
    c.get("/set?name=v6&val=6").assert(200, "ok\n");
    c.get("/inc?name=v6").assert(200, "ok\n");
    c.get("/get?name=v6").assert(200, "v6: 7\n");
    let (status, _) = server.stop_with("TERM", EXIT_WAIT).unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn verbose_logs_requests_to_stderr_only() {
    let mut server = Server::start(&["-v"]);
    server.get("/inc?name=i").assert(200, "ok\n");
    server.get("/get?name=zzz").assert(404, "zzz not found\n");
    server.stop_with("TERM", EXIT_WAIT).unwrap();
    let stderr = server.stderr();
    assert!(
        stderr.contains("/inc?name=i"),
        "-v logs each request:\n{stderr}"
    );
    assert!(
        stderr.contains("/get?name=zzz"),
        "-v logs each request:\n{stderr}"
    );
    assert_eq!(server.stdout_after_banner(), "");
}

/// Every flag at and past the edges of its range: past them, exit 2 with a message that
/// names the flag; at them, a server that serves, survives odd clients, and stops cleanly.
/// Nothing a command line says may panic the process later (`--idle-timeout 1e19` once
/// did, at the first connection, adding the timeout to the clock).
#[test]
fn no_flag_value_makes_the_server_panic() {
    for args in [
        &["--idle-timeout", "1e19"][..],
        &["--idle-timeout", "inf"],
        &["--idle-timeout", "nan"],
        &["--idle-timeout", "-0"],
        &["--header-timeout", "1e400"],
        &["--header-timeout", "31536001"],
        &["--max-header-bytes", "99999999999"],
        &["--max-header-bytes", "1048577"],
        &["--max-header-bytes", "63"],
        &["--max-conns", "18446744073709551616"],
        &["--max-conns", "1000001"],
        &["--max-counters", "100000001"],
        &["--rate", "1e10"],
        &["--rate", "inf"],
        &["--rate", "-1"],
        &["--rate", "1", "--burst", "1e10"],
        &["--rate", "1", "--burst", "nan"],
        &["--work-us", "10000001"],
        &["--work-us", "-1"],
        &["--backlog", "0"],
        &["--backlog", "65536"],
        &["--backlog", "4294967296"],
        &["--bind", "::1::"],
        &["99999"],
    ] {
        let out = run_bin(&server_bin(), args, EXIT_WAIT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let named = args
            .iter()
            .any(|a| a.starts_with("--") && stderr.contains(a));
        assert!(named || args[0] == "99999", "{args:?}: {stderr}");
    }
    for args in [
        &["--idle-timeout", "31536000", "--header-timeout", "31536000"][..],
        &["--idle-timeout", "1e-9", "--header-timeout", "1e-9"],
        &["--max-header-bytes", "64"],
        &["--max-header-bytes", "1048576"],
        &["--max-conns", "1"],
        &["--max-conns", "1000000"],
        &["--max-counters", "0"],
        &["--max-counters", "100000000"],
        &["--rate", "1e-300"],
        &["--rate", "1e9", "--burst", "1e9"],
        &["--backlog", "1"],
        &["--backlog", "65535"],
        &["--overload", "reject", "--max-conns", "1"],
    ] {
        let mut server = Server::start(args);
        for raw in [
            &b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /set?name=new&val=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /inc?name=i HTTP/1.1\r\nHost: x\r\n\r\nGET /get?name=i HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /get?name=i HTTP/1.1\r\nHost: x\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            b"GET /inc?name=i HT",
            b"BAD\r\n\r\n",
        ] {
            // The answer may be anything the flags call for, or a close: only the server's
            // survival is asserted here.
            if let Ok(mut s) = std::net::TcpStream::connect(server.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = s.write_all(raw);
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = std::io::copy(&mut s, &mut std::io::sink());
            }
        }
        thread::sleep(Duration::from_millis(20)); // let every timer fire
        assert!(server.is_running(), "{args:?}: {}", server.stderr());
        server.signal("TERM").unwrap();
        let status = server.wait_exit(EXIT_WAIT).expect("server exits");
        let stderr = server.stderr();
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
