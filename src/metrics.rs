//! Counters for `/metrics`, in the Prometheus text exposition format.
//!
//! Plain integers: the one thread that serves requests is the only one that counts. The
//! loop's own figures (time asleep and busy, events per wakeup, turn time) are fixed-size
//! histograms, so recording them allocates nothing.

use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Get,
    Set,
    Inc,
    Metrics,
    Dashboard,
    Trace,
    Other,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Get,
        Route::Set,
        Route::Inc,
        Route::Metrics,
        Route::Dashboard,
        Route::Trace,
        Route::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Get => "get",
            Route::Set => "set",
            Route::Inc => "inc",
            Route::Metrics => "metrics",
            Route::Dashboard => "dashboard",
            Route::Trace => "trace",
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

/// Upper bounds of `counterd_loop_events_per_wakeup`: 1, 2, 4, … 1024 (then +Inf).
pub const EVENT_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Upper bounds, in seconds, of `counterd_loop_turn_seconds` (and the journal's fsync
/// time): 1 µs to 1 s in 1-2.5-5 steps (then +Inf).
pub const TIME_BUCKETS: [f64; 19] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
];

/// A Prometheus histogram with `N` fixed bounds: counts per bucket (not yet cumulative;
/// that is done when rendering), the sum and the count.
#[derive(Debug, Clone)]
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// `buckets[i]` counts values in `(bounds[i-1], bounds[i]]`; `buckets[N]` the rest.
    buckets: [u64; N],
    over: u64,
    sum: f64,
    count: u64,
}

impl<const N: usize> Histogram<N> {
    pub const fn new(bounds: &'static [f64; N]) -> Histogram<N> {
        Histogram {
            bounds,
            buckets: [0; N],
            over: 0,
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        // A linear scan: N is at most 19 and most values land in the first few buckets.
        match self.bounds.iter().position(|&b| v <= b) {
            Some(i) => self.buckets[i] += 1,
            None => self.over += 1,
        }
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "counterd_{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "counterd_{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "counterd_{name}_sum {}", self.sum);
        let _ = writeln!(out, "counterd_{name}_count {}", self.count);
    }
}

/// The loop's own accounting: where the thread's time goes, turn by turn.
#[derive(Debug, Clone)]
pub struct LoopStats {
    /// Time inside `epoll_wait` and outside it: their rates are the loop's utilisation.
    pub wait: Duration,
    pub busy: Duration,
    pub events_per_wakeup: Histogram<11>,
    /// Busy time of one turn: the longest a ready client waits behind the others.
    pub turn: Histogram<19>,
}

impl Default for LoopStats {
    fn default() -> Self {
        LoopStats {
            wait: Duration::ZERO,
            busy: Duration::ZERO,
            events_per_wakeup: Histogram::new(&EVENT_BUCKETS),
            turn: Histogram::new(&TIME_BUCKETS),
        }
    }
}

impl LoopStats {
    /// One `epoll_wait` returned `events` after sleeping `slept`.
    pub fn woke(&mut self, slept: Duration, events: usize) {
        self.wait += slept;
        self.events_per_wakeup.observe(events as f64);
    }

    /// One turn's work, from `epoll_wait` returning to calling it again, took `busy`.
    pub fn turned(&mut self, busy: Duration) {
        self.busy += busy;
        self.turn.observe(busy.as_secs_f64());
    }
}

/// With `--journal`: what the group commit did.
#[derive(Debug, Clone)]
pub struct JournalStats {
    pub on: bool,
    pub records: u64,
    pub bytes: u64,
    pub fsyncs: u64,
    pub fsync_seconds: Histogram<19>,
    pub compactions: u64,
}

impl Default for JournalStats {
    fn default() -> Self {
        JournalStats {
            on: false,
            records: 0,
            bytes: 0,
            fsyncs: 0,
            fsync_seconds: Histogram::new(&TIME_BUCKETS),
            compactions: 0,
        }
    }
}

/// The standard `process_*` series, sampled by whoever renders (`os::sample` in the server).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Process {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: u64,
    pub connections_peak: u64,
    pub connections_accepted: u64,
    pub connections_rejected: u64,
    pub rate_limited: u64,
    pub loop_iterations: u64,
    pub events: u64,
    pub looping: LoopStats,
    pub journal: JournalStats,
    /// Requests parked on a timer or out at the pool (`--work timer|pool`).
    pub work_in_flight: u64,
    /// Pool workers in a blocking call.
    pub pool_busy_threads: u64,
    requests: [u64; Route::ALL.len()],
    /// Every response, whatever its status: read per event by the flight recorder, so kept
    /// as it happens rather than summed from `responses` each time.
    responses_total: u64,
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

    /// Responses so far, of every status (what the flight recorder counts per event).
    pub fn responses_total(&self) -> u64 {
        self.responses_total
    }

    pub fn response(&mut self, status: u16) {
        let slot = CODES
            .iter()
            .position(|&c| c == status)
            .unwrap_or(CODES.len());
        self.responses[slot] += 1;
        self.responses_total += 1;
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

    /// The exposition text. `counters` is the store's size, a gauge owned elsewhere;
    /// `process` the process series, when they could be read.
    pub fn render(&self, counters: usize, process: Option<&Process>) -> String {
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
        single(
            o,
            "work_in_flight",
            "gauge",
            "Requests waiting for their work: parked on a timer or out at the pool.",
            self.work_in_flight,
        );
        single(
            o,
            "pool_busy_threads",
            "gauge",
            "Pool worker threads in a blocking call (--work pool).",
            self.pool_busy_threads,
        );
        let l = &self.looping;
        float(
            o,
            "counterd_loop_busy_seconds_total",
            "counter",
            "Time the loop spent outside epoll_wait.",
            l.busy.as_secs_f64(),
        );
        float(
            o,
            "counterd_loop_wait_seconds_total",
            "counter",
            "Time the loop spent asleep in epoll_wait.",
            l.wait.as_secs_f64(),
        );
        l.events_per_wakeup.render(
            o,
            "loop_events_per_wakeup",
            "Events returned by one epoll_wait.",
        );
        l.turn.render(
            o,
            "loop_turn_seconds",
            "Busy time of one loop turn: how long a ready client can wait behind the others.",
        );
        let j = &self.journal;
        if j.on {
            single(
                o,
                "journal_records_total",
                "counter",
                "Journal records written.",
                j.records,
            );
            single(
                o,
                "journal_bytes_total",
                "counter",
                "Journal bytes written.",
                j.bytes,
            );
            single(
                o,
                "journal_fsyncs_total",
                "counter",
                "fdatasync calls on the journal.",
                j.fsyncs,
            );
            j.fsync_seconds.render(
                o,
                "journal_fsync_seconds",
                "Time one fdatasync of the journal took.",
            );
            single(
                o,
                "journal_compactions_total",
                "counter",
                "Journal rewrites as one record per counter.",
                j.compactions,
            );
        }
        if let Some(p) = process {
            let o = &mut out;
            float(
                o,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                p.cpu_seconds,
            );
            float(
                o,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                p.resident_bytes as f64,
            );
            float(
                o,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                p.open_fds as f64,
            );
            float(
                o,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                p.max_fds as f64,
            );
            float(
                o,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds,
            );
        }
        out
    }
}

/// A family of one sample with a full name (`process_*` has no `counterd_` prefix).
fn float(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
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
        m.looping.woke(Duration::from_millis(3), 3);
        m.looping.woke(Duration::from_millis(1), 2000);
        m.looping.turned(Duration::from_micros(30));
        m.looping.turned(Duration::from_secs(2));
        let p = Process {
            cpu_seconds: 1.5,
            resident_bytes: 4096,
            open_fds: 9,
            max_fds: 1024,
            start_time_seconds: 1.7e9,
        };
        let text = m.render(7, Some(&p));
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
            "counterd_loop_wait_seconds_total 0.004",
            "counterd_loop_busy_seconds_total 2.00003",
            "counterd_loop_events_per_wakeup_bucket{le=\"2\"} 0",
            "counterd_loop_events_per_wakeup_bucket{le=\"4\"} 1",
            "counterd_loop_events_per_wakeup_bucket{le=\"1024\"} 1",
            "counterd_loop_events_per_wakeup_bucket{le=\"+Inf\"} 2",
            "counterd_loop_events_per_wakeup_sum 2003",
            "counterd_loop_events_per_wakeup_count 2",
            "counterd_loop_turn_seconds_bucket{le=\"0.000001\"} 0",
            "counterd_loop_turn_seconds_bucket{le=\"0.00005\"} 1",
            "counterd_loop_turn_seconds_bucket{le=\"1\"} 1",
            "counterd_loop_turn_seconds_bucket{le=\"+Inf\"} 2",
            "counterd_loop_turn_seconds_count 2",
            "process_cpu_seconds_total 1.5",
            "process_resident_memory_bytes 4096",
            "process_open_fds 9",
            "process_max_fds 1024",
            "process_start_time_seconds 1700000000",
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
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}: not a number");
            }
        }
    }
}
