//! Watching the loop, against the real binary: the loop and process series of `/metrics`,
//! the `/dashboard` page, and the timed trace.

mod common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use common::{Server, server_bin};

/// `series value` lines of an exposition, labels included in the series.
fn samples(text: &str) -> Vec<(&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series value");
            (series, value.parse().unwrap_or_else(|_| panic!("{l}")))
        })
        .collect()
}

fn value(text: &str, series: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(s, _)| *s == series)
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .1
}

/// The cumulative buckets of histogram `name`, in order, and its count.
fn buckets(text: &str, name: &str) -> (Vec<(String, f64)>, f64) {
    let prefix = format!("{name}_bucket{{le=\"");
    let b = samples(text)
        .into_iter()
        .filter_map(|(s, v)| {
            Some((
                s.strip_prefix(&prefix)?.trim_end_matches("\"}").to_string(),
                v,
            ))
        })
        .collect();
    (b, value(text, &format!("{name}_count")))
}

#[test]
fn metrics_account_for_the_loop_and_the_process() {
    let server = Server::start(&[]);
    let mut c = server.client();
    for _ in 0..50 {
        c.get("/inc?name=i").assert(200, "ok\n");
    }
    thread::sleep(Duration::from_millis(50));
    let text = c.get("/metrics").text().to_string();
    let busy = value(&text, "counterd_loop_busy_seconds_total");
    let wait = value(&text, "counterd_loop_wait_seconds_total");
    assert!(busy > 0.0 && wait > 0.0, "busy {busy}, wait {wait}");
    assert!(busy + wait < 60.0);
    let turns = value(&text, "counterd_loop_iterations_total");
    for (name, bounds) in [
        ("counterd_loop_events_per_wakeup", 12),
        ("counterd_loop_turn_seconds", 20),
    ] {
        let (b, count) = buckets(&text, name);
        assert_eq!(b.len(), bounds, "{name}: {b:?}");
        assert_eq!(b.last().unwrap().0, "+Inf");
        assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name} not cumulative: {b:?}"
        );
        assert_eq!(b.last().unwrap().1, count, "{name}: +Inf is the count");
        // One observation per turn (the turn answering this request may not be counted yet).
        assert!(
            count >= 50.0 && count <= turns,
            "{name}: {count} of {turns} turns"
        );
        assert!(value(&text, &format!("{name}_sum")) > 0.0);
    }
    let (b, _) = buckets(&text, "counterd_loop_events_per_wakeup");
    assert_eq!(b[0].0, "1");
    assert_eq!(b[10].0, "1024");
    let (b, _) = buckets(&text, "counterd_loop_turn_seconds");
    assert_eq!((b[0].0.as_str(), b[18].0.as_str()), ("0.000001", "1"));

    let rss = value(&text, "process_resident_memory_bytes");
    assert!(rss > 100_000.0 && rss < 1e9, "{rss}");
    assert!(value(&text, "process_open_fds") >= 5.0);
    assert!(value(&text, "process_max_fds") >= 64.0);
    assert!(value(&text, "process_cpu_seconds_total") >= 0.0);
    let started = value(&text, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started <= now && started > now - 60.0, "{started} vs {now}");
    assert_eq!(value(&text, "counterd_requests_total{route=\"inc\"}"), 50.0);
}

#[test]
fn dashboard_is_one_self_contained_page() {
    let server = Server::start(&[]);
    let r = server.get("/dashboard");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.len() < 256 * 1024, "{} bytes", page.len());
    assert!(page.contains("/metrics"), "the page polls /metrics");
    let lower = page.to_ascii_lowercase();
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "@import",
        "url(http",
    ] {
        assert!(
            !lower.contains(external),
            "loads something from elsewhere: {external}"
        );
    }
    for series in [
        "counterd_requests_total",
        "counterd_responses_total",
        "counterd_loop_busy_seconds_total",
        "counterd_loop_events_per_wakeup",
        "counterd_loop_turn_seconds",
        "counterd_connections_open",
    ] {
        assert!(
            page.contains(&format!("data-metric=\"{series}\"")),
            "no figure for {series}"
        );
    }
    // HEAD: the same head, no body.
    let mut c = server.client();
    let head = c.request("HEAD", "/dashboard");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("Content-Length"),
        Some(page.len().to_string().as_str())
    );
    let text = server.get("/metrics").text().to_string();
    assert_eq!(
        value(&text, "counterd_requests_total{route=\"dashboard\"}"),
        2.0
    );
}

#[test]
fn trace_lines_carry_microseconds_turns_and_token_names() {
    let bin = server_bin();
    let args = ["RUST_LOG=trace", bin.to_str().unwrap(), "0"];
    let server = Server::start_exact(Path::new("/usr/bin/env"), &args);
    server.get("/inc?name=i").assert(200, "ok\n");
    // The request's own log line comes after the turn and event lines before it.
    let log = server.stderr_with("GET /inc?name=i -> 200");
    let ours: Vec<&str> = log.lines().filter(|l| l.contains("counterd::")).collect();
    assert!(ours.len() > 5, "{log}");
    let mut last = 0u64;
    for line in &ours {
        let (stamp, _) = line
            .trim_start()
            .split_once("us ")
            .unwrap_or_else(|| panic!("{line}"));
        let us: u64 = stamp
            .parse()
            .unwrap_or_else(|_| panic!("no timestamp: {line}"));
        assert!(us >= last, "time runs backwards: {line}");
        last = us;
    }
    assert!(log.contains("event listener readable=true"), "{log}");
    // mio's own trace lines print tokens as numbers: the special ones are small.
    assert!(!log.contains("18446744073709551615"), "{log}");
    let turn = ours
        .iter()
        .find(|l| l.contains("counterd::reactor: turn 1: slept "))
        .unwrap_or_else(|| panic!("no turn line:\n{log}"));
    assert!(turn.contains("us in epoll_wait, 1 event, busy "), "{turn}");
    assert!(
        log.contains("GET /inc?name=i -> 200"),
        "the method as sent: {log}"
    );
}

/// A signal that interrupts `epoll_wait` is part of the sleep: it must neither log a turn
/// twice nor count the time asleep as busy (the accounting once did both after `EINTR`).
#[test]
fn a_signal_during_the_sleep_is_neither_a_turn_nor_busy_time() {
    let bin = server_bin();
    let args = ["RUST_LOG=trace", bin.to_str().unwrap(), "0"];
    let mut server = Server::start_exact(Path::new("/usr/bin/env"), &args);
    server.get("/inc?name=i").assert(200, "ok\n");
    server.stderr_with("GET /inc?name=i -> 200");
    thread::sleep(Duration::from_millis(400)); // asleep in epoll_wait, nothing to do
    let (exit, _) = server.stop_with("TERM", Duration::from_secs(10)).unwrap();
    assert!(exit.success());
    let log = server.stderr();
    let mut turns = Vec::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("counterd::reactor: turn ") else {
            continue;
        };
        let (turn, rest) = rest.split_once(": slept ").unwrap();
        let busy = rest.rsplit_once(", busy ").unwrap().1;
        let busy: u64 = busy.trim_end_matches("us").parse().unwrap();
        turns.push((turn.parse::<u64>().unwrap(), busy));
    }
    assert!(turns.len() >= 2, "{log}");
    for pair in turns.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "a turn logged twice or skipped:\n{log}"
        );
    }
    for (turn, busy) in &turns {
        assert!(
            *busy < 200_000,
            "turn {turn} busy {busy}us: the sleep counted as work\n{log}"
        );
    }
}

/// `GET /trace` on the real server: Chrome Trace Event JSON that the checker accepts
/// (slices nested, flows paired), with the turns, their events, the waits of `--work
/// timer` and `--work pool` drawn from their start to their completion, and a bounded size.
#[test]
fn trace_answers_the_last_turns_as_nested_slices_with_flows() {
    for (mode, pool_track) in [("timer", false), ("pool", true)] {
        let args = ["--work-us", "20000", "--work", mode, "--pool-threads", "2"];
        let server = Server::start(&args);
        let mut c = server.client();
        for _ in 0..3 {
            c.get("/inc?name=i").assert(200, "ok\n");
        }
        let r = c.get("/trace");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let sum = counterd::trace::check::check(r.text()).unwrap_or_else(|e| panic!("{mode}: {e}"));
        let turns: Vec<_> = sum.of("turn").collect();
        assert!(turns.len() >= 3, "{mode}: {} turns", turns.len());
        let nested: usize = turns.iter().map(|t| sum.events_in(t).count()).sum();
        assert_eq!(
            nested,
            sum.of("event").count(),
            "{mode}: every event inside its turn"
        );
        assert!(
            nested >= turns.len(),
            "{mode}: {nested} events in {} turns",
            turns.len()
        );
        // Three waits, each a flow from where it started to where it was answered.
        assert!(sum.flows.len() >= 3, "{mode}: flows {:?}", sum.flows);
        assert!(sum.counters > 0, "{mode}: no connections counter");
        assert_eq!(
            sum.tracks.len() > 1,
            pool_track,
            "{mode}: tracks {:?}",
            sum.tracks
        );
        // The newest turns only, when asked; and never more than the ring allows.
        let few = c.get("/trace?turns=2");
        let few = counterd::trace::check::check(few.text()).unwrap();
        assert!(few.of("turn").count() <= 2, "{mode}");
        assert!(r.body.len() < 4 << 20, "{mode}: {} bytes", r.body.len());
    }
}
