//! counterd: a table of named counters served over HTTP/1.x by one thread running a
//! hand-written epoll reactor on mio.
//!
//! A sans-I/O core takes bytes and time in and gives bytes and decisions out:
//! [`config`] (what the command line says, via [`cli`]), [`store`], [`query`], [`http`],
//! [`router`], [`conn`], [`work`], [`admission`], [`ratelimit`], [`timers`], [`journal`],
//! [`metrics`], [`trace`] (the flight recorder). One I/O driver does the rest: [`reactor`]
//! (the loop), with [`pump`] (one socket's reads and writes), [`pool`] (worker threads for
//! `--work pool`), [`journal_file`] and [`os`] (setup and `/proc`). Start reading at
//! `reactor.rs`.
//!
//! Dependencies point one way, from the driver down to the core:
//! `reactor → pump → conn → http`, `reactor → router → store`, `reactor → pool`, and
//! `conn` knows the router only as a [`conn::Service`].

pub mod admission;
pub mod cli;
pub mod config;
pub mod conn;
pub mod episode;
#[cfg(any(test, feature = "test-support"))]
pub mod fuzzing;
pub mod http;
pub mod journal;
pub mod journal_file;
#[cfg(any(test, feature = "test-support"))]
pub mod journal_sim;
pub mod metrics;
pub mod os;
pub mod pool;
pub mod pump;
pub mod query;
pub mod ratelimit;
pub mod reactor;
pub mod router;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
pub mod timers;
pub mod trace;
pub mod work;
