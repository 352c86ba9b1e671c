//! Wiring only: parse the command line into a [`Config`], set up logging, the descriptor
//! budget, the store (from the journal, if any) and the listener, then serve.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use log::{error, warn};

use counterd::admission::{Admission, FdBudget};
use counterd::cli::{self, Command};
use counterd::config::{Config, Overload, PRELOAD};
use counterd::http::HttpDate;
use counterd::journal_file::{JournalFile, OpenError};
use counterd::os;
use counterd::reactor::Reactor;
use counterd::router::{Router, State};
use counterd::store::Store;

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{}", cli::usage());
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
    let default_level = if config.verbose { "debug" } else { "info" };
    // Every line carries the microseconds since start, so a trace shows where the loop's
    // time goes (env_logger's own timestamps are wall-clock and need a heavier build).
    let start = Instant::now();
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
    match serve(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Code(code)) => code,
        Err(Stop::Io(e)) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the server stopped: an I/O error (exit 1), or an exit code with its reason
/// already logged.
enum Stop {
    Io(io::Error),
    Code(ExitCode),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

fn serve(config: &Config) -> Result<(), Stop> {
    let reject = config.overload == Overload::Reject;
    let budget = match os::raise_fd_limit() {
        Ok(fds) => FdBudget::new(fds, reject),
        Err(e) => {
            warn!("cannot read RLIMIT_NOFILE: {e}");
            FdBudget::new(u64::MAX, reject)
        }
    };
    if budget.max_conns < config.max_conns {
        warn!(
            "--max-conns {} is more than the file descriptor limit allows; using {}",
            config.max_conns, budget.max_conns
        );
    }
    let max_conns = config.max_conns.min(budget.max_conns);
    let admission = Admission::new(max_conns, config.overload, budget.reject_budget);

    let mut store = Store::new(config.max_counters);
    let journal = match &config.journal {
        None => {
            for (name, value) in PRELOAD {
                let _ = store.set(name, value);
            }
            None
        }
        Some(path) => {
            let (fsync, recover) = (config.fsync, config.journal_recover);
            match JournalFile::open(path, fsync, recover, &mut store, &PRELOAD) {
                Ok(j) => Some(j),
                Err(OpenError::Path(e)) => {
                    error!("cannot open the journal {}: {e}", path.display());
                    return Err(Stop::Code(ExitCode::from(2)));
                }
                Err(OpenError::Damaged(why)) => {
                    error!("{why}; refusing to start rather than drop data");
                    return Err(Stop::Code(ExitCode::FAILURE));
                }
                Err(OpenError::Io(e)) => return Err(Stop::Io(e)),
            }
        }
    };
    let mut state = State::new(store, config, HttpDate::new(SystemTime::now()));
    state.process = os::sample;
    let router = Router::new(config.work);

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = os::listen(addr, config.backlog)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let mut reactor = Reactor::new(
        listener,
        state,
        router,
        config.limits,
        admission,
        config.pool_threads,
    )?;
    if let Some(j) = journal {
        reactor = reactor.with_journal(j);
    }

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on http://{}", reactor.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);

    Ok(reactor.run()?)
}
