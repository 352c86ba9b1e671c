//! counterd: a table of named counters served over HTTP/1.x by one thread running a
//! hand-written epoll reactor on mio.
//!
//! A sans-I/O core — [`store`], [`query`], [`http`], [`router`], [`conn`], [`timers`],
//! [`limits`], [`metrics`] — takes bytes in and gives bytes out; [`reactor`] is the only
//! module that touches sockets. Start reading at `reactor.rs`.

pub mod cli;
pub mod conn;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod process;
pub mod pump;
pub mod query;
pub mod reactor;
pub mod router;
pub mod store;
pub mod timers;
