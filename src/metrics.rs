//! Counters for `/metrics`, in the Prometheus text exposition format.
//!
//! Plain integers: the one thread that serves requests is the only one that counts.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Get,
    Set,
    Inc,
    Metrics,
    Other,
}

impl Route {
    const ALL: [Route; 5] = [
        Route::Get,
        Route::Set,
        Route::Inc,
        Route::Metrics,
        Route::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Get => "get",
            Route::Set => "set",
            Route::Inc => "inc",
            Route::Metrics => "metrics",
            Route::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Idle keep-alive, never-sent, and output that makes no progress.
    Idle,
    /// Request head or body not complete in time.
    Header,
}

/// Every status this server can send; the last slot counts anything else.
const CODES: [u16; 13] = [
    200, 400, 404, 405, 408, 409, 413, 429, 431, 501, 503, 505, 507,
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: u64,
    pub connections_peak: u64,
    pub connections_accepted: u64,
    pub connections_rejected: u64,
    pub rate_limited: u64,
    pub loop_iterations: u64,
    pub events: u64,
    requests: [u64; Route::ALL.len()],
    responses: [u64; CODES.len() + 1],
    timeouts: [u64; 2],
}

impl Metrics {
    pub fn opened(&mut self) {
        self.connections_accepted += 1;
        self.connections_open += 1;
        self.connections_peak = self.connections_peak.max(self.connections_open);
    }

    pub fn closed(&mut self) {
        self.connections_open = self.connections_open.saturating_sub(1);
    }

    pub fn request(&mut self, route: Route) {
        self.requests[route as usize] += 1;
    }

    pub fn response(&mut self, status: u16) {
        let slot = CODES
            .iter()
            .position(|&c| c == status)
            .unwrap_or(CODES.len());
        self.responses[slot] += 1;
    }

    pub fn timeout(&mut self, kind: Timeout) {
        self.timeouts[kind as usize] += 1;
    }

    pub fn requests_total(&self) -> u64 {
        self.requests.iter().sum()
    }

    pub fn responses_with(&self, status: u16) -> u64 {
        CODES
            .iter()
            .position(|&c| c == status)
            .map_or(0, |i| self.responses[i])
    }

    /// The exposition text. `counters` is the store's size, a gauge owned elsewhere.
    pub fn render(&self, counters: usize) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        single(
            o,
            "connections_open",
            "gauge",
            "Client connections open now.",
            self.connections_open,
        );
        single(
            o,
            "connections_peak",
            "gauge",
            "Most client connections open at once.",
            self.connections_peak,
        );
        single(
            o,
            "connections_accepted_total",
            "counter",
            "Client connections accepted.",
            self.connections_accepted,
        );
        single(
            o,
            "connections_rejected_total",
            "counter",
            "Connections refused at the cap with 503.",
            self.connections_rejected,
        );
        header(
            o,
            "requests_total",
            "counter",
            "Requests handled, by route.",
        );
        for route in Route::ALL {
            labelled(
                o,
                "requests_total",
                "route",
                route.label(),
                self.requests[route as usize],
            );
        }
        header(
            o,
            "responses_total",
            "counter",
            "Responses sent, by status code.",
        );
        for (code, n) in CODES.iter().zip(self.responses) {
            labelled(
                o,
                "responses_total",
                "code",
                itoa::Buffer::new().format(*code),
                n,
            );
        }
        labelled(
            o,
            "responses_total",
            "code",
            "other",
            self.responses[CODES.len()],
        );
        single(
            o,
            "rate_limited_total",
            "counter",
            "Requests refused by the rate limiter with 429.",
            self.rate_limited,
        );
        header(
            o,
            "timeouts_total",
            "counter",
            "Connections closed by a timeout, by kind.",
        );
        labelled(
            o,
            "timeouts_total",
            "kind",
            "idle",
            self.timeouts[Timeout::Idle as usize],
        );
        labelled(
            o,
            "timeouts_total",
            "kind",
            "header",
            self.timeouts[Timeout::Header as usize],
        );
        single(
            o,
            "counters",
            "gauge",
            "Named counters in the store.",
            counters as u64,
        );
        single(
            o,
            "loop_iterations_total",
            "counter",
            "Reactor loop iterations, one poll each.",
            self.loop_iterations,
        );
        single(
            o,
            "events_total",
            "counter",
            "Readiness events handled.",
            self.events,
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(
        out,
        "# HELP counterd_{name} {help}\n# TYPE counterd_{name} {kind}\n"
    );
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "counterd_{name} {value}");
}

fn labelled(out: &mut String, name: &str, label: &str, value: &str, n: u64) {
    let _ = writeln!(out, "counterd_{name}{{{label}=\"{value}\"}} {n}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_series() {
        let mut m = Metrics::default();
        m.opened();
        m.opened();
        m.closed();
        m.request(Route::Inc);
        m.response(200);
        m.response(299);
        m.timeout(Timeout::Header);
        let text = m.render(7);
        for line in [
            "counterd_connections_open 1",
            "counterd_connections_peak 2",
            "counterd_connections_accepted_total 2",
            "counterd_connections_rejected_total 0",
            "counterd_requests_total{route=\"inc\"} 1",
            "counterd_requests_total{route=\"get\"} 0",
            "counterd_responses_total{code=\"200\"} 1",
            "counterd_responses_total{code=\"other\"} 1",
            "counterd_rate_limited_total 0",
            "counterd_timeouts_total{kind=\"header\"} 1",
            "counterd_timeouts_total{kind=\"idle\"} 0",
            "counterd_counters 7",
            "counterd_loop_iterations_total 0",
            "counterd_events_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line belongs to a family declared just before it.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family), "{line} outside {family}");
            }
        }
    }
}
