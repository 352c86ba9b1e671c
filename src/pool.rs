//! `--work pool`: worker threads for calls that can only block — libuv's thread pool,
//! nginx's `aio threads`, Redis's background I/O threads.
//!
//! A worker runs the blocking call (here: sleeping `--work-us`) and nothing else; it never
//! sees the store. Its completion comes back to the loop through a channel and a
//! [`mio::Waker`], and the loop finishes the request in the turn that sees it.
//!
//! The loop hands each task to one idle worker over that worker's own channel, and keeps
//! the tasks that find every worker busy in its own queue: which workers are busy is then
//! known on the loop thread alone, so nothing here needs a lock or an atomic.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::warn;
use mio::Waker;

/// One blocking call to make: the job's id in the loop's `InWork`, and how long it blocks.
#[derive(Debug, Clone, Copy)]
struct Task {
    id: usize,
    time: Duration,
}

/// A finished task, as the loop receives it.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub id: usize,
    pub worker: usize,
    /// When the worker started and ended the call.
    pub started: Instant,
    pub ended: Instant,
}

pub struct Pool {
    tasks: Vec<Sender<Task>>,
    idle: Vec<usize>,
    /// Tasks waiting for a worker, oldest first.
    queue: VecDeque<Task>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` workers that wake the loop through `waker` when they finish.
    pub fn new(threads: usize, waker: Arc<Waker>) -> io::Result<Pool> {
        let (done_tx, done) = mpsc::channel();
        let mut pool = Pool {
            tasks: Vec::with_capacity(threads),
            idle: (0..threads).rev().collect(),
            queue: VecDeque::new(),
            done,
            threads: Vec::with_capacity(threads),
        };
        for worker in 0..threads {
            let (tx, rx) = mpsc::channel::<Task>();
            let done_tx = done_tx.clone();
            let waker = Arc::clone(&waker);
            let handle = thread::Builder::new()
                .name(format!("pool-{worker}"))
                .spawn(move || work(worker, rx, done_tx, waker))?;
            pool.tasks.push(tx);
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Runs the blocking call of job `id` on an idle worker, or queues it until one is.
    pub fn submit(&mut self, id: usize, time: Duration) {
        let task = Task { id, time };
        match self.idle.pop() {
            Some(worker) => self.send(worker, task),
            None => self.queue.push_back(task),
        }
    }

    /// The next finished task, if any; its worker takes the oldest queued task.
    pub fn next_done(&mut self) -> Option<Done> {
        let done = match self.done.try_recv() {
            Ok(done) => done,
            Err(TryRecvError::Empty) => return None,
            // Unreachable while `self` holds the workers' channels; nothing can finish then.
            Err(TryRecvError::Disconnected) => return None,
        };
        match self.queue.pop_front() {
            Some(task) => self.send(done.worker, task),
            None => self.idle.push(done.worker),
        }
        Some(done)
    }

    /// Workers in a call now: `counterd_pool_busy_threads`.
    pub fn busy(&self) -> usize {
        self.tasks.len() - self.idle.len()
    }

    /// Tasks waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn send(&mut self, worker: usize, task: Task) {
        if self.tasks[worker].send(task).is_err() {
            // A worker only ends when its channel closes, which happens in `drop`.
            warn!("pool worker {worker} is gone; its task is lost");
        }
    }
}

impl Drop for Pool {
    /// Closes every worker's channel, then waits for the calls in progress to end.
    fn drop(&mut self) {
        self.tasks.clear();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

fn work(worker: usize, tasks: Receiver<Task>, done: Sender<Done>, waker: Arc<Waker>) {
    for task in tasks {
        let started = Instant::now();
        thread::sleep(task.time); // the blocking call
        let ended = Instant::now();
        let finished = Done {
            id: task.id,
            worker,
            started,
            ended,
        };
        if done.send(finished).is_err() {
            return; // the loop is gone
        }
        if let Err(e) = waker.wake() {
            warn!("pool worker {worker} cannot wake the loop: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};

    fn wait_for(pool: &mut Pool, poll: &mut Poll, n: usize) -> Vec<Done> {
        let mut events = Events::with_capacity(8);
        let mut got = Vec::new();
        while got.len() < n {
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();
            assert!(!events.is_empty(), "no wake-up within 5 s");
            got.extend(std::iter::from_fn(|| pool.next_done()));
        }
        got
    }

    #[test]
    fn tasks_beyond_the_workers_queue_and_run_as_workers_free_up() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let mut pool = Pool::new(2, waker).unwrap();
        let ms = Duration::from_millis(30);
        for id in 0..5 {
            pool.submit(id, ms);
        }
        assert_eq!(pool.busy(), 2);
        assert_eq!(pool.queued(), 3);
        let mut done = wait_for(&mut pool, &mut poll, 5);
        assert_eq!(pool.busy(), 0);
        assert_eq!(pool.queued(), 0);
        done.sort_by_key(|d| d.id);
        assert_eq!(
            done.iter().map(|d| d.id).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(
            done.iter()
                .all(|d| d.ended - d.started >= ms && d.worker < 2)
        );
        // Two workers, five calls of 30 ms: three rounds, so the last ends 90 ms or more
        // after the first starts.
        let first = done.iter().map(|d| d.started).min().unwrap();
        let last = done.iter().map(|d| d.ended).max().unwrap();
        assert!(last - first >= 3 * ms, "{:?}", last - first);
    }
}
