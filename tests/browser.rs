//! The dashboard in a real browser: headless Chromium loads `/dashboard` from a server
//! under load and the figures it shows must be live. Chromium is installed with apt-get
//! when it is missing (as root, as in CI); without it this test fails, it never skips.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::Server;

fn chromium() -> &'static str {
    const BIN: &str = "chromium";
    let found = || {
        Command::new("sh")
            .args(["-c", "command -v chromium"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !found() {
        let install =
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium";
        let status = Command::new("sh").args(["-c", install]).status();
        assert!(
            status.is_ok_and(|s| s.success()) && found(),
            "this test needs Debian's chromium (apt-get install chromium)"
        );
    }
    BIN
}

/// The text of every element carrying `data-metric="SERIES"` (and `extra`, if given).
fn figures<'a>(dom: &'a str, series: &str, extra: &str) -> Vec<&'a str> {
    let needle = format!("data-metric=\"{series}\"");
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let Some(end) = rest.find('>') else { break };
        let attrs = &rest[..end];
        let text = &rest[end + 1..];
        let text = &text[..text.find('<').unwrap_or(text.len())];
        if attrs.contains(extra) {
            out.push(text.trim());
        }
    }
    out
}

/// The leading number of a figure such as `37.5%` or `12.3 µs`.
fn number(figure: &str) -> f64 {
    let end = figure
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(figure.len());
    figure[..end]
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {figure:?}"))
}

/// Loads the dashboard of a server started with `args` under keep-alive load; returns the
/// DOM Chromium saw.
fn dashboard_under_load(args: &[&str]) -> String {
    let browser = chromium();
    let server = Server::start(args);
    let stop = Arc::new(AtomicBool::new(false));
    // Load: keep-alive clients incrementing as fast as they can, until the page is read.
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, addr) = (stop.clone(), server.addr);
            thread::spawn(move || {
                let mut c = common::Client::connect(addr);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    c.get("/inc?name=i").assert(200, "ok\n");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let url = format!("http://{}/dashboard", server.addr);
    let out = Command::new("timeout")
        .args([
            "120",
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--dump-dom", "--virtual-time-budget=5000", &url])
        .output()
        .expect("run chromium");
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = load.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sent > 100, "the load sent {sent} requests");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_dashboard_shows_live_figures_under_load() {
    let dom = dashboard_under_load(&[]);
    let one = |series: &str| {
        let f = figures(&dom, series, "");
        assert!(!f.is_empty(), "no figure for {series} in\n{dom}");
        number(f[0])
    };
    assert!(one("counterd_requests_total") > 0.0, "requests/s");
    assert!(one("counterd_responses_total") > 0.0, "responses/s");
    assert!(one("counterd_loop_busy_seconds_total") > 0.0, "utilisation");
    assert!(
        one("counterd_loop_events_per_wakeup") >= 1.0,
        "events per wakeup"
    );
    assert!(one("counterd_loop_iterations_total") > 0.0);
    assert!(
        one("counterd_connections_open") >= 4.0,
        "the load's connections"
    );
    let p99 = figures(&dom, "counterd_loop_turn_seconds", "data-quantile=\"0.99\"");
    assert!(number(p99[0]) > 0.0, "turn time p99 {p99:?}");
}

#[test]
fn with_a_journal_the_dashboard_shows_fsyncs_per_second() {
    let dir = std::env::temp_dir().join(format!("counterd-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = dir.join("j");
    let dom = dashboard_under_load(&["--journal", journal.to_str().unwrap(), "--fsync", "always"]);
    let _ = std::fs::remove_dir_all(&dir);
    let f = figures(&dom, "counterd_journal_fsyncs_total", "");
    assert!(
        !f.is_empty() && number(f[0]) > 0.0,
        "fsyncs/s {f:?} in\n{dom}"
    );
}

/// The elements drawn in the timeline's SVG with `data-trace="ROLE"` (the page's script
/// and styles name the same attributes, so only the drawing is searched).
fn drawn(dom: &str, tag: &str, role: &str) -> usize {
    let svg = &dom[dom.find("id=\"timeline\"").expect("the timeline's SVG")..];
    let svg = &svg[..svg.find("</svg>").expect("the SVG's end")];
    svg.matches(&format!("<{tag} data-trace=\"{role}\""))
        .count()
}

/// The timeline's drawing code on a trace the recorder really wrote: the page, opened as
/// `dashboard.html?trace=FILE`, draws every turn, event, job and wait of it.
#[test]
fn the_timeline_draws_every_turn_event_job_and_wait_of_a_recorded_trace() {
    use counterd::trace::{Job, Kind, Recorder, Source, render_json};
    use std::time::{Duration, Instant};
    let browser = chromium();
    let origin = Instant::now();
    let mut r = Recorder::new(4096, 0, 2, origin);
    let at = |ns: u64| origin + Duration::from_nanos(ns);
    let mut t = 1_000_000;
    for turn in 0..20u64 {
        t += 40_000; // asleep 40 µs
        r.turn(at(t), Duration::from_micros(40), 5);
        for e in 0..3u32 {
            r.event(at(t), Source::Conn(e), Kind::Read);
            r.io(60, 120, 1);
            if e == 0 && turn < 18 {
                r.parked(at(t + 100), turn); // answered two turns later
            }
            if e == 1 && turn >= 2 {
                r.completed(at(t + 50), turn - 2);
            }
            if e == 2 && turn == 3 {
                r.to_pool(at(t + 10), 1_000);
            }
            if e == 2 && turn == 5 {
                let start = at(t - 60_000); // after the hand-off, two turns back
                let end = start + Duration::from_micros(40);
                r.job(Job {
                    id: 1_000,
                    worker: 1,
                    start,
                    end,
                });
                r.completed(at(t + 20), 1_000);
            }
            t += 3_000;
        }
        r.end_turn(at(t));
    }
    let mut json = Vec::new();
    render_json(&[&r], usize::MAX, &mut json);
    counterd::trace::check::check(std::str::from_utf8(&json).unwrap()).expect("a valid trace");

    let dir = std::env::temp_dir().join(format!("counterd-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dashboard.html"), counterd::router::DASHBOARD).unwrap();
    std::fs::write(dir.join("trace.json"), &json).unwrap();
    let url = format!(
        "file://{}/dashboard.html?trace=trace.json&turns=20",
        dir.display()
    );
    let out = Command::new("timeout")
        .args([
            "120",
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--allow-file-access-from-files", "--dump-dom"])
        .args(["--virtual-time-budget=5000", &url])
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&dir);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-trace-ready=\"1\""),
        "the page never drew:\n{dom}"
    );
    assert_eq!(drawn(&dom, "rect", "turn"), 20, "{dom}");
    assert_eq!(drawn(&dom, "rect", "sleep"), 20);
    assert_eq!(drawn(&dom, "rect", "event"), 60);
    assert_eq!(drawn(&dom, "rect", "job"), 1);
    // 18 parked requests, and the pool hand-off in two legs (to the worker and back).
    assert_eq!(drawn(&dom, "path", "flow"), 20);
    // A lane for the loop and one per pool worker.
    assert_eq!(drawn(&dom, "rect", "lane"), 3);
    assert!(dom.contains(">20 turns<"), "the summary: {dom}");
}

/// The live timeline on the real server under load: `/dashboard` polls `/trace` and draws
/// the newest turns with their events.
#[test]
fn the_timeline_shows_live_turns_and_events_under_load() {
    let dom = dashboard_under_load(&[]);
    let turns = drawn(&dom, "rect", "turn");
    let events = drawn(&dom, "rect", "event");
    assert!(turns >= 2, "{turns} turns drawn in\n{dom}");
    assert!(events >= turns, "{events} events in {turns} turns");
    let summary = figures_by_id(&dom, "trace-summary");
    assert!(number(summary) >= 2.0, "summary {summary:?}");
}

/// The text of the element with `id="ID"`.
fn figures_by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &dom[at..];
    let text = &rest[rest.find('>').unwrap() + 1..];
    text[..text.find('<').unwrap_or(text.len())].trim()
}
