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
