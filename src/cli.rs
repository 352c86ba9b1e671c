//! Command line: `counterd [OPTIONS] [PORT]`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, Fsync, Overload, Rate};
use crate::work::WorkMode;

/// `--help`, with the defaults of [`Config::default`] (the one place they live).
pub fn usage() -> String {
    let d = Config::default();
    let secs = |t: std::time::Duration| t.as_secs_f64();
    format!(
        "\
counterd — named counters over HTTP/1.x, served by one thread on a mio reactor

Usage: counterd [OPTIONS] [PORT]

Arguments:
  [PORT]  port to listen on; 0 picks a free one [default: {port}]

Options:
      --bind ADDR              address to listen on, IPv4 or IPv6 [default: {bind}]
      --backlog N              listen backlog: where clients wait at the cap and in bursts
                               of new connections (the kernel caps it at
                               net.core.somaxconn) [default: {backlog}]
      --max-conns N            cap on open client connections [default: {max_conns}]
      --overload queue|reject  at the cap: leave new clients in the listen backlog (queue)
                               or answer them 503 (reject) [default: queue]
      --rate R                 per-client-IP limit, requests per second (429 past it) [default: off]
      --burst B                requests a client may make back to back [default: max(1, ceil(R))]
      --idle-timeout SECS      close connections idle (or not reading) this long [default: {idle}]
      --header-timeout SECS    a request must arrive within this from its first byte (408)
                               [default: {header}]
      --max-header-bytes N     largest request head (431 past it) [default: {head}]
      --max-counters N         most counters the store holds (507 past it) [default: {counters}]
      --journal FILE           keep the counters in FILE across restarts [default: off]
      --fsync always|everysec|no
                               with --journal: fdatasync every turn's records before
                               answering (always), at most once a second (everysec), or
                               leave it to the kernel (no) [default: everysec]
      --journal-recover        with --journal: where a damaged turn has valid turns after
                               it and --fsync always would refuse to start, start from the
                               point before it, keeping the rest in a side file
      --work-us N              teaching device: every counter request needs N µs of work
                               before its answer, standing for a slow call [default: 0]
      --work sleep|spin|timer|pool
                               how the loop spends that work: block the thread (sleep),
                               compute on its core (spin), wait on a timer in the loop
                               (timer), or block a worker thread (pool) [default: sleep]
      --pool-threads N         worker threads for --work pool, 1 to 1024 [default: {pool}]
  -v, --verbose                log every request (same as RUST_LOG=debug)
  -h, --help                   print this help
  -V, --version                print the version

Logs go to stderr; RUST_LOG=trace logs every readiness event. The only line on stdout is
`listening on http://ADDR:PORT`, once the socket is bound.
",
        port = d.port,
        bind = d.bind,
        backlog = d.backlog,
        max_conns = d.max_conns,
        idle = secs(d.limits.idle_timeout),
        header = secs(d.limits.header_timeout),
        head = d.limits.max_head_bytes,
        counters = d.max_counters,
        pool = d.pool_threads,
    )
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Config),
    Help,
    Version,
}

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Self {
        Error(e.to_string())
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, Error> {
    use lexopt::prelude::*;
    let mut o = Config::default();
    let (mut rate, mut burst) = (None, None);
    let mut port_seen = false;
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('v') | Long("verbose") => o.verbose = true,
            Long("bind") => {
                o.bind = value(&mut p, "--bind", "an IPv4 or IPv6 address", |s| {
                    s.parse().ok()
                })?
            }
            Long("backlog") => {
                o.backlog = value(
                    &mut p,
                    "--backlog",
                    "a whole number from 1 to 65535",
                    within(1, 65_535),
                )?
            }
            Long("max-conns") => {
                o.max_conns = value(
                    &mut p,
                    "--max-conns",
                    "a whole number from 1 to 1000000",
                    within(1, MAX_CONNS),
                )?
            }
            Long("overload") => {
                o.overload = value(&mut p, "--overload", "`queue` or `reject`", |s| match s {
                    "queue" => Some(Overload::Queue),
                    "reject" => Some(Overload::Reject),
                    _ => None,
                })?
            }
            Long("rate") => {
                rate = Some(value(
                    &mut p,
                    "--rate",
                    "a number of requests per second above 0, at most 1e9",
                    |s| s.parse::<f64>().ok().filter(|r| *r > 0.0 && *r <= 1e9),
                )?)
            }
            Long("burst") => {
                burst = Some(value(&mut p, "--burst", "a number from 1 to 1e9", |s| {
                    s.parse::<f64>().ok().filter(|b| (1.0..=1e9).contains(b))
                })?)
            }
            Long("idle-timeout") => {
                o.limits.idle_timeout = value(&mut p, "--idle-timeout", SECS_WANTED, secs)?
            }
            Long("header-timeout") => {
                o.limits.header_timeout = value(&mut p, "--header-timeout", SECS_WANTED, secs)?
            }
            Long("max-header-bytes") => {
                o.limits.max_head_bytes = value(
                    &mut p,
                    "--max-header-bytes",
                    "a whole number from 64 to 1048576",
                    within(64, MAX_HEADER_BYTES),
                )?
            }
            Long("max-counters") => {
                o.max_counters = value(
                    &mut p,
                    "--max-counters",
                    "a whole number from 0 to 100000000",
                    within(0, MAX_COUNTERS),
                )?
            }
            Long("journal") => {
                let path = PathBuf::from(p.value()?);
                if path.as_os_str().is_empty() {
                    return Err(Error(
                        "invalid value '' for --journal: want a file path".into(),
                    ));
                }
                o.journal = Some(path);
            }
            Long("fsync") => {
                o.fsync = value(
                    &mut p,
                    "--fsync",
                    "`always`, `everysec` or `no`",
                    |s| match s {
                        "always" => Some(Fsync::Always),
                        "everysec" => Some(Fsync::EverySec),
                        "no" => Some(Fsync::No),
                        _ => None,
                    },
                )?
            }
            Long("work") => {
                o.work.mode = value(
                    &mut p,
                    "--work",
                    "`sleep`, `spin`, `timer` or `pool`",
                    |s| match s {
                        "sleep" => Some(WorkMode::Sleep),
                        "spin" => Some(WorkMode::Spin),
                        "timer" => Some(WorkMode::Timer),
                        "pool" => Some(WorkMode::Pool),
                        _ => None,
                    },
                )?
            }
            Long("pool-threads") => {
                o.pool_threads = value(&mut p, "--pool-threads", "a number from 1 to 1024", |s| {
                    s.parse::<usize>().ok().filter(|n| (1..=1024).contains(n))
                })?
            }
            Long("journal-recover") => o.journal_recover = true,
            Long("work-us") => {
                o.work.time = value(
                    &mut p,
                    "--work-us",
                    "microseconds from 0 to 10000000",
                    |s| {
                        s.parse::<u64>()
                            .ok()
                            .filter(|n| *n <= 10_000_000)
                            .map(Duration::from_micros)
                    },
                )?
            }
            Value(v) if !port_seen => {
                port_seen = true;
                let v = v.string()?;
                o.port = v.parse().map_err(|_| {
                    Error(format!("invalid port '{v}': want a number from 0 to 65535"))
                })?;
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if burst.is_some() && rate.is_none() {
        return Err(Error("--burst needs --rate".into()));
    }
    if o.journal_recover && o.journal.is_none() {
        return Err(Error("--journal-recover needs --journal".into()));
    }
    o.rate = rate.map(|r| Rate::new(r, burst));
    Ok(Command::Run(o))
}

fn value<T>(
    p: &mut lexopt::Parser,
    flag: &str,
    want: &str,
    conv: impl Fn(&str) -> Option<T>,
) -> Result<T, Error> {
    let raw = p.value()?;
    let s = raw.to_string_lossy();
    conv(&s).ok_or_else(|| Error(format!("invalid value '{s}' for {flag}: want {want}")))
}

/// Upper bounds: each is far beyond any real use, and small enough that every sum and
/// product the server makes of it stays representable.
const MAX_CONNS: usize = 1_000_000;
const MAX_HEADER_BYTES: usize = 1 << 20;
const MAX_COUNTERS: usize = 100_000_000;
/// A year: any timeout the clock can add to `now` without overflowing.
const MAX_SECS: f64 = 365.0 * 86_400.0;
const SECS_WANTED: &str = "seconds above 0, at most 31536000 (a year)";

fn within<T: std::str::FromStr + PartialOrd>(min: T, max: T) -> impl Fn(&str) -> Option<T> {
    move |s| s.parse::<T>().ok().filter(|n| *n >= min && *n <= max)
}

fn secs(s: &str) -> Option<Duration> {
    let v = s
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0 && *v <= MAX_SECS)?;
    Some(Duration::from_secs_f64(v).max(Duration::from_micros(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(OsString::from)) {
            Ok(Command::Run(o)) => Ok(o),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    use std::net::IpAddr;

    #[test]
    fn defaults() {
        let o = run(&[]).unwrap();
        assert_eq!(o, Config::default());
        assert_eq!(o.port, 8000);
        assert_eq!(o.rate, None);
    }

    #[test]
    fn everything() {
        let o = run(&[
            "9000",
            "--bind",
            "::1",
            "--max-conns",
            "10",
            "--overload",
            "reject",
            "--rate",
            "2.5",
            "--idle-timeout",
            "0.5",
            "--header-timeout=2",
            "--max-header-bytes",
            "1024",
            "--max-counters",
            "5",
            "--work-us",
            "1000",
            "-v",
        ])
        .unwrap();
        assert_eq!(o.port, 9000);
        assert_eq!(o.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(o.max_conns, 10);
        assert_eq!(o.overload, Overload::Reject);
        assert_eq!(o.rate.map(|r| r.burst), Some(3.0));
        assert_eq!(o.limits.idle_timeout, Duration::from_millis(500));
        assert_eq!(o.limits.header_timeout, Duration::from_secs(2));
        assert_eq!((o.limits.max_head_bytes, o.max_counters), (1024, 5));
        assert_eq!(o.work.time, Duration::from_millis(1));
        assert!(o.verbose);
        assert_eq!(
            run(&["--rate", "20", "--burst", "1"]).unwrap().rate,
            Some(Rate {
                per_second: 20.0,
                burst: 1.0
            })
        );
        assert_eq!(run(&["0"]).unwrap().port, 0);
    }

    #[test]
    fn bad_values_are_errors() {
        for args in [
            &["70000"][..],
            &["abc"],
            &["1", "2"],
            &["--bind", "localhost"],
            &["--max-conns", "0"],
            &["--max-conns", "-1"],
            &["--overload", "drop"],
            &["--rate", "0"],
            &["--rate", "nan"],
            &["--rate", "1", "--burst", "0.5"],
            &["--burst", "3"],
            &["--idle-timeout", "0"],
            &["--header-timeout", "-1"],
            &["--max-header-bytes", "10"],
            &["--max-header-bytes", "99999999999"],
            &["--max-header-bytes", "1048577"],
            &["--idle-timeout", "1e19"],
            &["--idle-timeout", "inf"],
            &["--idle-timeout", "nan"],
            &["--header-timeout", "31536001"],
            &["--max-conns", "1000001"],
            &["--max-conns", "99999999999999999999999"],
            &["--max-counters", "100000001"],
            &["--rate", "inf"],
            &["--rate", "1e10"],
            &["--rate", "1", "--burst", "inf"],
            &["--work-us", "10000001"],
            &["--backlog", "0"],
            &["--backlog", "65536"],
            &["--backlog", "-5"],
            &["--nope"],
            &["--fsync", "sometimes"],
            &["--journal", ""],
            &["--journal"],
            &["--journal-recover"],
            &["--journal-recover=yes", "--journal", "j"],
            &["--bind", "127.0.0.1:80"],
            &["--bind"],
        ] {
            assert!(run(args).is_err(), "{args:?} should be refused");
        }
        assert!(
            run(&["--max-conns", "x"])
                .unwrap_err()
                .contains("--max-conns")
        );
    }

    #[test]
    fn the_largest_values_are_accepted() {
        let o = run(&[
            "--backlog",
            "65535",
            "--max-conns",
            "1000000",
            "--idle-timeout",
            "31536000",
            "--header-timeout",
            "1e-9",
            "--max-header-bytes",
            "1048576",
            "--max-counters",
            "100000000",
            "--rate",
            "1e9",
            "--burst",
            "1e9",
            "--work-us",
            "10000000",
        ])
        .unwrap();
        assert_eq!(o.backlog, 65_535);
        assert_eq!(o.limits.idle_timeout, Duration::from_secs(31_536_000));
        assert_eq!(o.limits.header_timeout, Duration::from_micros(1));
        assert_eq!(o.limits.max_head_bytes, 1 << 20);
    }

    #[test]
    fn every_refusal_names_its_flag_and_what_it_wants() {
        let e = run(&["--idle-timeout", "1e19"]).unwrap_err();
        assert!(e.contains("--idle-timeout") && e.contains("a year"), "{e}");
        let e = run(&["--backlog", "0"]).unwrap_err();
        assert!(e.contains("--backlog") && e.contains("65535"), "{e}");
    }

    #[test]
    fn journal_recover_is_a_switch_for_a_journal() {
        let o = run(&["--journal", "j", "--fsync", "always", "--journal-recover"]).unwrap();
        assert!(o.journal_recover && o.fsync == Fsync::Always);
        assert!(!run(&["--journal", "j"]).unwrap().journal_recover);
        let e = run(&["--journal-recover"]).unwrap_err();
        assert!(e.contains("--journal-recover needs --journal"), "{e}");
        assert!(usage().contains("--journal-recover"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["--help".into()]).unwrap(), Command::Help);
        assert_eq!(parse(["-h".into()]).unwrap(), Command::Help);
        assert_eq!(parse(["-V".into()]).unwrap(), Command::Version);
        let help = usage();
        assert!(help.contains("[default: 8192]") && help.contains("[default: 127.0.0.1]"));
    }
}
