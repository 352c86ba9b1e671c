//! Wiring only: parse the command line, set up logging and limits, bind, serve.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::SystemTime;

use log::{error, warn};

use counterd::cli::{self, Command, Options};
use counterd::conn::Limits;
use counterd::http::HttpDate;
use counterd::limits::{self, RateLimiter};
use counterd::reactor::{self, Reactor};
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
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .init();
    match serve(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(opts: Options) -> std::io::Result<()> {
    let mut max_conns = opts.max_conns;
    match limits::raise_fd_limit() {
        Ok(fds) if limits::max_conns_for(fds) < max_conns => {
            max_conns = limits::max_conns_for(fds);
            warn!(
                "--max-conns {} is more than {fds} file descriptors allow; using {max_conns}",
                opts.max_conns
            );
        }
        Ok(_) => {}
        Err(e) => warn!("cannot read RLIMIT_NOFILE: {e}"),
    }

    let mut store = Store::new(opts.max_counters);
    for name in ["i", "j"] {
        let _ = store.set(name, 0);
    }
    let limits = Limits {
        max_head_bytes: opts.max_header_bytes,
        header_timeout: opts.header_timeout,
        idle_timeout: opts.idle_timeout,
    };
    let mut router = Router::new(store, limits, HttpDate::new(SystemTime::now()));
    router.work = opts.work;
    if let (Some(rate), Some(burst)) = (opts.rate, opts.burst()) {
        router.limiter = Some(RateLimiter::new(
            rate,
            burst,
            RateLimiter::DEFAULT_MAX_TRACKED,
        ));
    }

    let addr = SocketAddr::new(opts.bind, opts.port);
    let listener = mio::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let config = reactor::Config {
        max_conns,
        overload: opts.overload,
    };
    let reactor = Reactor::new(listener, router, config)?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", reactor.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);

    reactor.run()
}
