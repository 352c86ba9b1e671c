//! The calls to the operating system that sit outside the loop: the descriptor limit and
//! the listening socket at start, and `/proc/self` when `/metrics` is asked for. (The loop's
//! own calls are in `reactor.rs` and `pump.rs`.)

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use log::warn;

use crate::metrics::Process;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// Binds the listener with our own backlog. mio (like std) always asks `listen(2)` for
/// 128, which under `ab -c 1000` overflows (every dropped SYN costs its client a 1 s
/// retransmit) and caps `queue` mode's waiting room at 128 clients; socket2 builds the
/// socket step by step, and mio takes it over as it is.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std and mio do: a restarted server can bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(max) = somaxconn.filter(|&max| max < backlog) {
        warn!("--backlog {backlog} is more than net.core.somaxconn allows; the kernel uses {max}");
    }
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Reads the process figures; `None` where `/proc` is not there to read.
pub fn sample(started: SystemTime) -> Option<Process> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let (cpu_ticks, rss_pages) = parse_stat(&stat)?;
    // SAFETY: sysconf reads a constant; getrlimit writes only the struct we pass.
    let (hz, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max_fds = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } {
        0 => lim.rlim_cur,
        _ => 0,
    };
    Some(Process {
        cpu_seconds: cpu_ticks as f64 / hz.max(1) as f64,
        resident_bytes: rss_pages * page.max(0) as u64,
        open_fds: fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        max_fds,
        start_time_seconds: started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    })
}

/// `utime + stime` (clock ticks) and `rss` (pages) from a `/proc/PID/stat` line. The
/// command name in parentheses may itself hold spaces and parentheses: fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state is field 3 of the line, so field N is fields[N - 3].
    let num = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((num(14)? + num(15)?, num(24)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_end_of_the_name() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 1234 5000000 321 18446744073709551615";
        assert_eq!(parse_stat(line), Some((10, 321)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let p = sample(SystemTime::now()).expect("/proc/self");
        assert!(p.resident_bytes > 0 && p.open_fds > 0 && p.max_fds > 0);
    }
}
