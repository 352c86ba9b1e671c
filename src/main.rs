//! Wiring only: parse the command line, set up logging and limits, bind, serve.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::SystemTime;

use log::{error, warn};

use counterd::cli::{self, Command, Options};
use counterd::conn::Limits;
use counterd::http::HttpDate;
use counterd::limits::{self, FdBudget, RateLimiter};
use counterd::reactor::{self, Journal, OpenError, Overload, Reactor};
use counterd::router::Router;
use counterd::store::Store;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("counterd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("counterd: {e}\nTry 'counterd --help'.");
            return ExitCode::from(2);
        }
    };
    let default_level = if opts.verbose { "debug" } else { "info" };
    // Every line carries the microseconds since start, so a trace shows where the loop's
    // time goes (env_logger's own timestamps are wall-clock and need a heavier build).
    let start = std::time::Instant::now();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format(move |buf, record| {
            writeln!(
                buf,
                "{:>10}us {:<5} {}: {}",
                start.elapsed().as_micros(),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .init();
    match serve(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Runs the server; `Err` is the exit code, its reason already logged.
fn serve(opts: Options) -> Result<(), ExitCode> {
    run(opts).map_err(|e| match e {
        Stop::Io(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
        Stop::Code(code) => code,
    })
}

enum Stop {
    Io(io::Error),
    Code(ExitCode),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

impl From<ExitCode> for Stop {
    fn from(c: ExitCode) -> Self {
        Stop::Code(c)
    }
}

fn run(opts: Options) -> Result<(), Stop> {
    let reject = opts.overload == Overload::Reject;
    let budget = match limits::raise_fd_limit() {
        Ok(fds) => FdBudget::new(fds, reject),
        Err(e) => {
            warn!("cannot read RLIMIT_NOFILE: {e}");
            FdBudget::new(u64::MAX, reject)
        }
    };
    let mut max_conns = opts.max_conns;
    if budget.max_conns < max_conns {
        max_conns = budget.max_conns;
        warn!(
            "--max-conns {} is more than the file descriptor limit allows; using {max_conns}",
            opts.max_conns
        );
    }

    // The original program's counters; with a journal, only a new journal gets them.
    const PRELOAD: [(&str, i64); 2] = [("i", 0), ("j", 0)];
    let mut store = Store::new(opts.max_counters);
    let journal = match &opts.journal {
        None => {
            for (name, value) in PRELOAD {
                let _ = store.set(name, value);
            }
            None
        }
        Some(path) => match Journal::open(path, opts.fsync, &mut store, &PRELOAD) {
            Ok(j) => Some(j),
            Err(OpenError::Path(e)) => {
                error!("cannot open the journal {}: {e}", path.display());
                return Err(ExitCode::from(2).into());
            }
            Err(OpenError::Damaged(why)) => {
                error!("{why}; refusing to start rather than drop data");
                return Err(ExitCode::FAILURE.into());
            }
            Err(OpenError::Io(e)) => {
                error!("{e}");
                return Err(ExitCode::FAILURE.into());
            }
        },
    };
    let limits = Limits {
        max_head_bytes: opts.max_header_bytes,
        header_timeout: opts.header_timeout,
        idle_timeout: opts.idle_timeout,
    };
    let mut router = Router::new(store, limits, HttpDate::new(SystemTime::now()));
    router.work = opts.work;
    router.process = counterd::process::sample;
    if let (Some(rate), Some(burst)) = (opts.rate, opts.burst()) {
        router.limiter = Some(RateLimiter::new(
            rate,
            burst,
            RateLimiter::DEFAULT_MAX_TRACKED,
        ));
    }

    let addr = SocketAddr::new(opts.bind, opts.port);
    let listener = listen(addr, opts.backlog)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let config = reactor::Config {
        max_conns,
        overload: opts.overload,
        reject_budget: budget.reject_budget,
    };
    let mut reactor = Reactor::new(listener, router, config)?;
    if let Some(j) = journal {
        reactor = reactor.with_journal(j);
    }

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", reactor.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);

    Ok(reactor.run()?)
}

/// Binds the listener with our own backlog. mio (like std) always asks `listen(2)` for
/// 128, which under `ab -c 1000` overflows (every dropped SYN costs its client a 1 s
/// retransmit) and caps `queue` mode's waiting room at 128 clients; socket2 builds the
/// socket step by step, and mio takes it over as it is.
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<mio::net::TcpListener> {
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
