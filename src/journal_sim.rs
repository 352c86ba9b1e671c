//! A power cut, simulated, sans I/O. [`JournalFile`] runs over [`SimDisk`], an in-memory
//! disk that records every create, write, sync, rename and directory sync the journal
//! makes, and the driver ([`record`]) notes when each turn's answers went out. From that
//! log, [`check_run`] generates every disk state a power cut could leave and checks that
//! counterd recovers from each exactly as the rules of `journal.rs` say.
//!
//! The disk model, after Linux's page cache and what a file system promises:
//! - bytes written to a file are durable once an `fdatasync`/`fsync` of it returns; bytes
//!   written since may reach the disk in whole, in part, or not at all, page by page
//!   ([`PAGE`] bytes here, small so that turns straddle many) and in any order: a later
//!   page kept while an earlier one is lost. A lost page reads as NULs (the size reached the
//!   disk, the data did not) or as old bytes (a reused block: an older journal's bytes at
//!   that offset); the size may also stop short at the last page kept, or at any byte;
//! - creates and renames are durable once the directory is synced; before, any prefix of
//!   them (in order) may have reached the disk.
//!
//! Every state is opened with the real `JournalFile::open_on` and checked: it starts or
//! refuses exactly per the rules (against an oracle that compares the state with what was
//! written, turn by turn); a start holds exactly the counters after some turn, the last one
//! whose bytes are all there (nothing invented, a prefix of turns); every change the
//! `--fsync` mode promised is there (`always`: every acknowledged turn; `everysec`: every
//! turn acknowledged more than a second and a turn before the cut; every mode: everything
//! a finished compaction held); a start never refuses under the run's own mode; a side
//! file holds exactly the bytes cut. For some states, the recovery itself is then cut by a
//! power cut at every step, and must come out the same with the side file durable before
//! the journal loses those bytes.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::{Fsync, PRELOAD};
use crate::journal::{self, Tail};
use crate::journal_file::{JournalFile, OpenError, Storage};
use crate::metrics::Metrics;
use crate::store::Store;

/// The page size of the simulated page cache.
pub const PAGE: usize = 32;
/// Time between two turns of the driver.
pub const STEP: Duration = Duration::from_millis(300);
const JOURNAL: &str = "d/counters.journal";

/// Counters, sorted: what a store holds.
pub type State = Vec<(String, i64)>;

/// What a write holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tag {
    /// A journal holding the state after turn k: a rewrite's whole file, or a journal that
    /// was there before the run.
    Compacted(usize),
    /// Turn k's records and commit line.
    Turn(usize),
    /// Anything else (side files).
    #[default]
    Other,
}

/// One entry of the log.
#[derive(Clone, Debug)]
pub enum Op {
    Create {
        path: PathBuf,
        ino: usize,
    },
    Write {
        ino: usize,
        data: Vec<u8>,
        tag: Tag,
    },
    /// `fdatasync` or `fsync`: the file's bytes so far are durable.
    Sync {
        ino: usize,
    },
    /// `from` named inode `ino`.
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: usize,
    },
    SyncDir,
    /// Not a disk operation: turn k's answers went out, at this time since the start.
    Ack {
        turn: usize,
        at: Duration,
    },
}

/// The disk as the page cache sees it, and the log of how it got there.
#[derive(Clone, Default, Debug)]
pub struct Disk {
    /// Each inode's bytes.
    pub files: Vec<Vec<u8>>,
    pub names: BTreeMap<PathBuf, usize>,
    pub log: Vec<Op>,
    tag: Tag,
    salt: u32,
}

impl Disk {
    fn create(&mut self, path: &Path) -> usize {
        let ino = self.files.len();
        self.files.push(Vec::new());
        self.names.insert(path.to_path_buf(), ino);
        self.log.push(Op::Create {
            path: path.to_path_buf(),
            ino,
        });
        ino
    }

    /// The bytes a name holds.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        let ino = *self.names.get(Path::new(path))?;
        Some(&self.files[ino])
    }

    fn side_files(&self) -> Vec<(PathBuf, usize)> {
        let prefix = format!("{JOURNAL}.aside-");
        let names = self.names.iter();
        names
            .filter(|(p, _)| p.to_string_lossy().starts_with(&prefix))
            .map(|(p, &ino)| (p.clone(), ino))
            .collect()
    }
}

/// [`Storage`] over a shared [`Disk`].
#[derive(Clone, Default)]
pub struct SimDisk(pub Rc<RefCell<Disk>>);

pub struct SimFile {
    ino: usize,
}

impl SimDisk {
    pub fn new(disk: Disk) -> SimDisk {
        SimDisk(Rc::new(RefCell::new(disk)))
    }

    fn tag(&self, tag: Tag) {
        self.0.borrow_mut().tag = tag;
    }

    fn note(&self, op: Op) {
        self.0.borrow_mut().log.push(op);
    }
}

impl Storage for SimDisk {
    type File = SimFile;

    fn open(&mut self, path: &Path) -> io::Result<(SimFile, Vec<u8>)> {
        let mut d = self.0.borrow_mut();
        let ino = match d.names.get(path) {
            Some(&ino) => ino,
            None => d.create(path),
        };
        Ok((SimFile { ino }, d.files[ino].clone()))
    }

    fn create(&mut self, path: &Path, exclusive: bool) -> io::Result<SimFile> {
        let mut d = self.0.borrow_mut();
        if exclusive && d.names.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        // A truncated file is a new inode here: its old bytes matter to nobody.
        Ok(SimFile {
            ino: d.create(path),
        })
    }

    /// Every file is written sequentially from its start, so a write always appends.
    fn write(&mut self, file: &mut SimFile, data: &[u8]) -> io::Result<()> {
        let mut d = self.0.borrow_mut();
        d.files[file.ino].extend_from_slice(data);
        let tag = d.tag;
        d.log.push(Op::Write {
            ino: file.ino,
            data: data.to_vec(),
            tag,
        });
        Ok(())
    }

    fn sync_data(&mut self, file: &mut SimFile) -> io::Result<()> {
        self.note(Op::Sync { ino: file.ino });
        Ok(())
    }

    fn sync_all(&mut self, file: &mut SimFile) -> io::Result<()> {
        self.note(Op::Sync { ino: file.ino });
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let mut d = self.0.borrow_mut();
        let ino = d.names.remove(from).ok_or(io::ErrorKind::NotFound)?;
        d.names.insert(to.to_path_buf(), ino);
        d.log.push(Op::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            ino,
        });
        Ok(())
    }

    fn sync_dir(&mut self, _dir: &Path) -> io::Result<()> {
        self.note(Op::SyncDir);
        Ok(())
    }

    fn reopen(&mut self, path: &Path) -> io::Result<SimFile> {
        let d = self.0.borrow();
        let ino = *d.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(SimFile { ino })
    }

    fn salt(&mut self) -> u32 {
        let mut d = self.0.borrow_mut();
        d.salt += 1;
        d.salt
    }
}

/// A change a client makes.
#[derive(Clone, Debug)]
pub enum Change {
    Set(&'static str, i64),
    Inc(&'static str),
}

/// Turns of changes from a seed: each turn sets something, then a few more changes.
pub fn plan(seed: u64, turns: usize) -> Vec<Vec<Change>> {
    const NAMES: [&str; 5] = ["i", "j", "a b", "ü", "n5"];
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move |n: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % n
    };
    (0..turns)
        .map(|_| {
            let mut changes = Vec::new();
            for k in 0..1 + next(4) {
                let name = NAMES[next(5) as usize];
                if k == 0 || next(3) == 0 {
                    let v = [0, -7, 42, i64::MAX, i64::MIN][next(5) as usize];
                    changes.push(Change::Set(
                        name,
                        v.saturating_add(next(100) as i64 * v.signum()),
                    ));
                } else {
                    changes.push(Change::Inc(name));
                }
            }
            changes
        })
        .collect()
}

/// Turns that each set `i` to another three-digit value: compacted every few turns, every
/// journal has the same layout, so a lost page can read back as an older journal's turn at
/// the very offset of the one lost (which only the salt tells apart).
pub fn steady(turns: usize) -> Vec<Vec<Change>> {
    (0..turns as i64)
        .map(|k| vec![Change::Set("i", 100 + k * 37 % 900)])
        .collect()
}

/// A recorded run: the disk before it, the log, and the counters after each turn
/// (`states[0]`: after the start).
pub struct Run {
    pub fsync: Fsync,
    pub base: Disk,
    pub log: Vec<Op>,
    pub states: Vec<State>,
    /// The last salt used: states get fresh ones after it.
    pub salt: u32,
}

fn state(store: &Store) -> State {
    let mut v: State = store.iter().map(|(n, v)| (n.to_string(), v)).collect();
    v.sort();
    v
}

fn open_error(e: OpenError) -> String {
    match e {
        OpenError::Path(e) | OpenError::Io(e) => format!("I/O error: {e}"),
        OpenError::Damaged(why) => why,
    }
}

/// Runs counterd's journal the way the reactor does: opened (from `initial`, a journal
/// already on disk, if any), one `append` per turn, the turn's answers released, then
/// `maybe_sync`; a compaction every `compact_every` turns; `sync` at the end (a graceful
/// stop).
pub fn record(
    fsync: Fsync,
    initial: Option<&[u8]>,
    turns: &[Vec<Change>],
    compact_every: usize,
) -> Run {
    let mut base = Disk::default();
    if let Some(bytes) = initial {
        base.files.push(bytes.to_vec());
        base.names.insert(PathBuf::from(JOURNAL), 0);
    }
    let disk = SimDisk::new(base.clone());
    disk.tag(Tag::Compacted(0));
    let mut store = Store::new(1000);
    let path = Path::new(JOURNAL);
    let mut j = JournalFile::open_on(disk.clone(), path, fsync, false, &mut store, &PRELOAD)
        .unwrap_or_else(|e| panic!("the run's start: {}", open_error(e)));
    let mut states = vec![state(&store)];
    let mut m = Metrics::default();
    let t0 = Instant::now();
    for (k, changes) in turns.iter().enumerate().map(|(k, c)| (k + 1, c)) {
        let mut records = Vec::new();
        for change in changes {
            match *change {
                Change::Set(name, v) => {
                    store.set(name, v).unwrap();
                    journal::set(&mut records, name, v);
                }
                Change::Inc(name) => {
                    if store.inc(name).is_ok() {
                        journal::inc(&mut records, name);
                    }
                }
            }
        }
        let at = STEP * k as u32;
        disk.tag(Tag::Turn(k));
        j.append(&records, t0 + at, &mut m).unwrap();
        states.push(state(&store));
        disk.note(Op::Ack { turn: k, at });
        j.maybe_sync(t0 + at, &mut m).unwrap();
        if k % compact_every == 0 {
            disk.tag(Tag::Compacted(k));
            let counters = state(&store);
            j.compact(counters.iter().map(|(n, v)| (n.as_str(), *v)))
                .unwrap();
        }
    }
    j.sync(&mut m).unwrap();
    let d = disk.0.borrow();
    Run {
        fsync,
        base,
        log: d.log.clone(),
        states,
        salt: d.salt,
    }
}

/// The disk after some prefix of the log: what the cache holds and what is durable.
#[derive(Clone)]
struct Snap {
    cache: Vec<Vec<u8>>,
    /// Per inode, how many bytes from its start are durable.
    durable: Vec<usize>,
    /// Per inode, its writes: byte range and what they hold.
    segments: Vec<Vec<(usize, usize, Tag)>>,
    /// The directory as a sync last made it durable, and the creates and renames since.
    dir: BTreeMap<PathBuf, usize>,
    pending: Vec<Op>,
    /// The journal's name as the cache sees it, and the inodes it has named, in order.
    live: Option<usize>,
    generations: Vec<usize>,
    acks: Vec<(usize, Duration)>,
    /// The newest compaction whose rename a directory sync made durable.
    compacted_floor: usize,
}

impl Snap {
    fn new(base: &Disk) -> Snap {
        let live = base.names.get(Path::new(JOURNAL)).copied();
        Snap {
            cache: base.files.clone(),
            durable: base.files.iter().map(Vec::len).collect(),
            segments: base
                .files
                .iter()
                .map(|f| vec![(0, f.len(), Tag::Compacted(0))])
                .collect(),
            dir: base.names.clone(),
            pending: Vec::new(),
            live,
            generations: live.into_iter().collect(),
            acks: Vec::new(),
            compacted_floor: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { path, ino } => {
                assert_eq!(*ino, self.cache.len());
                self.cache.push(Vec::new());
                self.durable.push(0);
                self.segments.push(Vec::new());
                self.pending.push(op.clone());
                self.named(path, *ino);
            }
            Op::Write { ino, data, tag } => {
                let f = &mut self.cache[*ino];
                self.segments[*ino].push((f.len(), f.len() + data.len(), *tag));
                f.extend_from_slice(data);
            }
            Op::Sync { ino } => self.durable[*ino] = self.cache[*ino].len(),
            Op::Rename { to, ino, .. } => {
                self.pending.push(op.clone());
                self.named(to, *ino);
            }
            Op::SyncDir => {
                self.dir = names_after(&self.dir, &self.pending);
                self.pending.clear();
                if let Some(&ino) = self.dir.get(Path::new(JOURNAL))
                    && let Some(&(_, _, Tag::Compacted(k))) = self.segments[ino].first()
                {
                    self.compacted_floor = self.compacted_floor.max(k);
                }
            }
            Op::Ack { turn, at } => self.acks.push((*turn, *at)),
        }
    }

    fn named(&mut self, path: &Path, ino: usize) {
        if path == Path::new(JOURNAL) {
            self.live = Some(ino);
            self.generations.push(ino);
        }
    }

    /// The last turn that must survive this crash, by what `fsync` promised.
    fn floor(&self, fsync: Fsync) -> usize {
        let acked = match (fsync, self.acks.last()) {
            (_, None) | (Fsync::No, _) => 0,
            (Fsync::Always, Some(&(turn, _))) => turn,
            (Fsync::EverySec, Some(&(_, now))) => {
                let old = self.acks.iter().rev();
                let mut old = old.filter(|(_, at)| *at + Duration::from_secs(1) + STEP < now);
                old.next().map_or(0, |&(turn, _)| turn)
            }
        };
        acked.max(self.compacted_floor)
    }
}

/// The directory states a crash may leave: `dir` as last synced, with any subset of the
/// creates and renames since (in their order; nothing promises which reached the disk).
fn dir_states(dir: &BTreeMap<PathBuf, usize>, pending: &[Op]) -> Vec<BTreeMap<PathBuf, usize>> {
    assert!(pending.len() <= 8, "{pending:?}");
    (0..1u32 << pending.len())
        .map(|mask| {
            let ops = pending.iter().enumerate();
            let ops = ops.filter(|(k, _)| mask & (1 << k) != 0).map(|(_, op)| op);
            names_after(dir, ops)
        })
        .collect()
}

/// The directory after `ops` (creates and renames) on `dir`.
fn names_after<'a>(
    dir: &BTreeMap<PathBuf, usize>,
    ops: impl IntoIterator<Item = &'a Op>,
) -> BTreeMap<PathBuf, usize> {
    let mut names = dir.clone();
    for op in ops {
        match op {
            Op::Create { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            Op::Rename { from, to, ino } => {
                names.remove(from);
                names.insert(to.clone(), *ino);
            }
            _ => unreachable!("only creates and renames are pending"),
        }
    }
    names
}

/// What the rules say a journal state must recover to, from the bytes written (`w`, as
/// `segments`) and the bytes found (`f`).
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Expect {
    /// A new journal: the preload.
    Fresh,
    /// Damage no power cut explains: exit 1 naming this offset.
    Damaged(usize),
    /// The counters after turn `turn`; `cut`: the offset of the first turn not all there
    /// (a torn tail if nothing after it is whole, else `valid_after`).
    Recover {
        turn: usize,
        cut: Option<usize>,
        valid_after: bool,
    },
}

/// The oracle: which turns of `w` are still there, byte for byte, in `f`.
pub fn oracle(segments: &[(usize, usize, Tag)], w: &[u8], f: &[u8]) -> Expect {
    if f.is_empty() {
        return Expect::Fresh;
    }
    let whole =
        |&(start, end, _): &(usize, usize, Tag)| f.len() >= end && f[start..end] == w[start..end];
    let turn = |tag: Tag| match tag {
        Tag::Compacted(k) | Tag::Turn(k) => k,
        Tag::Other => unreachable!("a journal holds turns only"),
    };
    match segments.iter().position(|s| !whole(s)) {
        None => {
            assert_eq!(
                f.len(),
                w.len(),
                "a state is never longer than what was written"
            );
            Expect::Recover {
                turn: turn(segments.last().expect("bytes were written").2),
                cut: None,
                valid_after: false,
            }
        }
        Some(0) => Expect::Damaged(0),
        Some(k) => Expect::Recover {
            turn: turn(segments[k - 1].2),
            // Ending exactly where turn k would start is ending with a whole turn.
            cut: Some(segments[k].0).filter(|&start| f.len() > start),
            valid_after: segments[k + 1..].iter().any(whole),
        },
    }
}

/// Replays `f` alone and checks it against `expect`, the oracle's reading of it: the
/// counters after the same turn, cut at the same byte, what follows described the same
/// way (nothing, a torn tail, or valid turns from the start of a turn that was written).
pub fn check_replay(
    segments: &[(usize, usize, Tag)],
    f: &[u8],
    expect: &Expect,
    states: &[State],
) -> Result<(), String> {
    let &Expect::Recover {
        turn,
        cut,
        valid_after,
    } = expect
    else {
        return Ok(());
    };
    let mut got = Store::new(1000);
    let r = journal::replay(f, &mut got).map_err(|d| d.to_string())?;
    if state(&got) != states[turn] {
        return Err(format!(
            "replayed {:?}, want {:?}",
            state(&got),
            states[turn]
        ));
    }
    let tail_ok = match (cut, valid_after, r.tail) {
        (None, _, Tail::None) => true,
        (Some(_), false, Tail::Torn) => true,
        (Some(_), true, Tail::ValidAfter { next }) => segments.iter().any(|s| s.0 == next),
        _ => false,
    };
    if r.good != cut.unwrap_or(f.len()) || !tail_ok {
        return Err(format!(
            "replay kept {} bytes with {:?} after them; want a cut at {cut:?}, valid turns \
             after it: {valid_after}",
            r.good, r.tail
        ));
    }
    Ok(())
}

/// How many states were checked and how they came out.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub states: usize,
    pub clean: usize,
    pub torn: usize,
    pub set_aside: usize,
    /// Refusals by the rules' `always` without `--journal-recover` (states from other runs).
    pub refused: usize,
    /// States whose recovery was itself cut at every step.
    pub recoveries_cut: usize,
    pub recovery_states: usize,
}

/// One crash state: the inodes' bytes and the directory.
struct Crash {
    files: Vec<Vec<u8>>,
    names: BTreeMap<PathBuf, usize>,
}

/// What opening a state did.
enum Opened {
    Started { state: State, disk: Disk },
    Refused(String),
}

fn open(crash: &Crash, salt: u32, fsync: Fsync, recover: bool) -> Result<Opened, String> {
    let disk = SimDisk::new(Disk {
        files: crash.files.clone(),
        names: crash.names.clone(),
        salt,
        ..Disk::default()
    });
    let mut store = Store::new(1000);
    let path = Path::new(JOURNAL);
    match JournalFile::open_on(disk.clone(), path, fsync, recover, &mut store, &PRELOAD) {
        Ok(_) => Ok(Opened::Started {
            state: state(&store),
            disk: disk.0.borrow().clone(),
        }),
        Err(OpenError::Damaged(why)) => Ok(Opened::Refused(why)),
        Err(e) => Err(open_error(e)),
    }
}

/// The pages of `w` past `durable` that a crash keeps, as masks: every subset when there
/// are few, else each page alone lost or alone kept, every "later kept, earlier lost"
/// split, and a spread of others.
fn page_masks(pages: usize, seed: u64) -> Vec<Vec<bool>> {
    if pages <= 6 {
        return (0..1u32 << pages)
            .map(|m| (0..pages).map(|p| m & (1 << p) != 0).collect())
            .collect();
    }
    let mut masks = Vec::new();
    for p in 0..pages {
        masks.push((0..pages).map(|q| q != p).collect());
        masks.push((0..pages).map(|q| q == p).collect());
        masks.push((0..pages).map(|q| q >= p).collect());
    }
    let mut x = seed | 1;
    for _ in 0..12 {
        masks.push(
            (0..pages)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x & 1 != 0
                })
                .collect(),
        );
    }
    masks
}

/// Every content a crash may leave of a file that holds `w` in the cache, `durable` bytes
/// of it synced; `old`: what a reused block held before.
fn contents(w: &[u8], durable: usize, old: &[u8], seed: u64) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (durable..=w.len()).map(|n| w[..n].to_vec()).collect();
    if durable == w.len() {
        return out;
    }
    let first = durable / PAGE;
    let pages = (w.len() - 1) / PAGE + 1 - first;
    let range = |p: usize| ((first + p) * PAGE).max(durable)..((first + p + 1) * PAGE).min(w.len());
    for mask in page_masks(pages, seed) {
        for stale in [false, true] {
            let mut f = w.to_vec();
            for p in (0..pages).filter(|&p| !mask[p]) {
                for i in range(p) {
                    f[i] = if stale {
                        old.get(i).copied().unwrap_or(b"inc i\n"[i % 6])
                    } else {
                        0
                    };
                }
            }
            // The size as the last write left it, or only up to the last page kept.
            let kept_end = (0..pages)
                .rev()
                .find(|&p| mask[p])
                .map_or(durable, |p| range(p).end);
            out.push(f[..kept_end].to_vec());
            out.push(f);
        }
    }
    out
}

/// Generates every crash state of `run` and checks each; the first violation is an error
/// describing it.
pub fn check_run(run: &Run, stats: &mut Stats) -> Result<(), String> {
    // Crash points: before each disk operation, and at the end; later ones first, so that
    // a state reachable at several is checked against the latest (strictest) promises.
    let mut snaps = Vec::new();
    let mut snap = Snap::new(&run.base);
    for (i, op) in run.log.iter().enumerate() {
        if !matches!(op, Op::Ack { .. }) {
            snaps.push((i, snap.clone()));
        }
        snap.apply(op);
    }
    snaps.push((run.log.len(), snap));
    let mut seen = HashSet::new();
    // Recoveries to cut in turn: every fifth torn and every fifth set-aside state, a dozen
    // of each.
    let (mut torn, mut aside) = (0, 0);
    for (point, snap) in snaps.iter().rev() {
        let floor = snap.floor(run.fsync);
        for (n, names) in dir_states(&snap.dir, &snap.pending).into_iter().enumerate() {
            let live = names.get(Path::new(JOURNAL)).copied();
            let mut files: Vec<Vec<u8>> = (0..snap.cache.len())
                .map(|ino| snap.cache[ino][..snap.durable[ino]].to_vec())
                .collect();
            let variants = match live {
                None => vec![Vec::new()],
                Some(ino) => {
                    let before = snap.generations.iter().take_while(|&&g| g != ino).last();
                    let old = before.map_or(&[][..], |&g| &snap.cache[g][..]);
                    contents(&snap.cache[ino], snap.durable[ino], old, *point as u64)
                }
            };
            for f in variants {
                let mut h = DefaultHasher::new();
                (live, &f).hash(&mut h);
                if !seen.insert(h.finish()) {
                    continue;
                }
                let expect = match live {
                    None => Expect::Fresh,
                    Some(ino) => oracle(&snap.segments[ino], &snap.cache[ino], &f),
                };
                if let Some(ino) = live {
                    files[ino] = f.clone();
                }
                let crash = Crash {
                    files: files.clone(),
                    names: names.clone(),
                };
                let at = || {
                    format!(
                        "crash before op {point} of {} ({:?} run), directory state {n}, \
                         journal {:?}",
                        run.log.len(),
                        run.fsync,
                        String::from_utf8_lossy(&f)
                    )
                };
                if let Some(ino) = live {
                    check_replay(&snap.segments[ino], &f, &expect, &run.states)
                        .map_err(|e| format!("{e}\n{}", at()))?;
                }
                check_state(run, &crash, &expect, floor, stats)
                    .map_err(|e| format!("{e}\n{}", at()))?;
                let kind = match &expect {
                    Expect::Recover {
                        cut: Some(_),
                        valid_after,
                        ..
                    } => Some(if *valid_after { &mut aside } else { &mut torn }),
                    _ => None,
                };
                if let Some(of_kind) = kind {
                    *of_kind += 1;
                    if *of_kind % 5 == 1 && *of_kind <= 60 {
                        check_recovery_cut(run, &crash, &expect, stats).map_err(|e| {
                            format!("{e}\nwhile recovering the state after {}", at())
                        })?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Opens one crash state under the run's mode (and, where valid turns follow a bad one,
/// under `always` with and without `--journal-recover`) and checks the outcome.
fn check_state(
    run: &Run,
    crash: &Crash,
    expect: &Expect,
    floor: usize,
    stats: &mut Stats,
) -> Result<(), String> {
    stats.states += 1;
    // Promises first: what the mode guaranteed must be in the state at all.
    match expect {
        Expect::Fresh if floor > 0 => {
            return Err(format!("turn {floor} was promised, the journal is gone"));
        }
        Expect::Damaged(_) => return Err("a power cut damaged the compacted part".into()),
        Expect::Recover { turn, .. } if *turn < floor => {
            return Err(format!(
                "turn {floor} was promised, the state holds turns up to {turn}"
            ));
        }
        Expect::Recover {
            valid_after: true, ..
        } if run.fsync == Fsync::Always => {
            return Err("under --fsync always a bad turn has valid turns after it".into());
        }
        _ => {}
    }
    let mut modes = vec![(run.fsync, false)];
    if let Expect::Recover {
        valid_after: true, ..
    } = expect
    {
        modes.extend([(Fsync::Always, false), (Fsync::Always, true)]);
    }
    for (fsync, recover) in modes {
        let opened = open(crash, run.salt, fsync, recover)?;
        check_opened(run, crash, expect, fsync, recover, &opened, stats)
            .map_err(|e| format!("--fsync {fsync:?}, recover {recover}: {e}"))?;
    }
    Ok(())
}

fn check_opened(
    run: &Run,
    crash: &Crash,
    expect: &Expect,
    fsync: Fsync,
    recover: bool,
    opened: &Opened,
    stats: &mut Stats,
) -> Result<(), String> {
    let preload: State = PRELOAD.iter().map(|&(n, v)| (n.to_string(), v)).collect();
    let journal = || {
        crash
            .names
            .get(Path::new(JOURNAL))
            .map(|&i| &crash.files[i][..])
    };
    let (want, aside) = match *expect {
        Expect::Fresh => (&preload, None),
        Expect::Damaged(_) => unreachable!("checked before"),
        Expect::Recover {
            turn,
            cut,
            valid_after,
        } => {
            let refuse = valid_after && fsync == Fsync::Always && !recover;
            match (opened, refuse, cut) {
                (Opened::Refused(why), true, Some(cut)) => {
                    stats.refused += 1;
                    return if why.contains(&format!("byte {cut}:")) {
                        Ok(())
                    } else {
                        Err(format!("refused without naming byte {cut}: {why}"))
                    };
                }
                (Opened::Refused(why), _, _) => return Err(format!("refused: {why}")),
                (Opened::Started { .. }, true, _) => return Err("started, should refuse".into()),
                _ => {}
            }
            let aside = cut
                .filter(|_| valid_after)
                .map(|c| &journal().unwrap()[c..]);
            match (cut, valid_after) {
                (None, _) => stats.clean += 1,
                (Some(_), false) => stats.torn += 1,
                (Some(_), true) => stats.set_aside += 1,
            }
            (&run.states[turn], aside)
        }
    };
    let Opened::Started { state: got, disk } = opened else {
        return Err("refused".into());
    };
    if got != want {
        return Err(format!("recovered {got:?}, want {want:?}"));
    }
    // The rewritten journal holds the same, and nothing else.
    let mut back = Store::new(1000);
    let r = journal::replay(disk.read(JOURNAL).unwrap(), &mut back).map_err(|d| d.to_string())?;
    if state(&back) != *want || r.turns != 1 {
        return Err(format!(
            "the rewrite holds {:?} in {} turns",
            state(&back),
            r.turns
        ));
    }
    // A side file exactly when valid turns were cut, holding exactly the bytes cut.
    let before: HashSet<&PathBuf> = crash.names.keys().collect();
    let new: Vec<_> = disk
        .side_files()
        .into_iter()
        .filter(|(p, _)| !before.contains(p))
        .collect();
    match (aside, &new[..]) {
        (None, []) => Ok(()),
        (Some(rest), [(_, ino)]) if disk.files[*ino] == rest => Ok(()),
        (want, got) => Err(format!(
            "side files {:?}, want one holding {:?}",
            got.iter()
                .map(|(p, i)| (p, String::from_utf8_lossy(&disk.files[*i])))
                .collect::<Vec<_>>(),
            want.map(String::from_utf8_lossy)
        )),
    }
}

/// Cuts the recovery of `crash` at every step, with every directory prefix, keeping
/// either only what was synced or everything written; each must start again with the
/// same counters, and once the journal is no longer the one with the bytes cut, a side
/// file holding them must be durable.
fn check_recovery_cut(
    run: &Run,
    crash: &Crash,
    expect: &Expect,
    stats: &mut Stats,
) -> Result<(), String> {
    let &Expect::Recover {
        turn,
        cut: Some(cut),
        valid_after,
    } = expect
    else {
        unreachable!("only cut states")
    };
    stats.recoveries_cut += 1;
    let original = crash.names[Path::new(JOURNAL)];
    let rest = crash.files[original][cut..].to_vec();
    let base = Disk {
        files: crash.files.clone(),
        names: crash.names.clone(),
        salt: run.salt,
        ..Disk::default()
    };
    let sim = SimDisk::new(base.clone());
    let mut store = Store::new(1000);
    JournalFile::open_on(
        sim.clone(),
        Path::new(JOURNAL),
        run.fsync,
        false,
        &mut store,
        &PRELOAD,
    )
    .map_err(open_error)?;
    let log = sim.0.borrow().log.clone();
    let mut snap = Snap::new(&base);
    for point in 0..=log.len() {
        if point > 0 {
            snap.apply(&log[point - 1]);
        }
        for (n, names) in dir_states(&snap.dir, &snap.pending).into_iter().enumerate() {
            for synced_only in [true, false] {
                let files = (0..snap.cache.len())
                    .map(|i| {
                        let keep = if synced_only {
                            snap.durable[i]
                        } else {
                            snap.cache[i].len()
                        };
                        snap.cache[i][..keep].to_vec()
                    })
                    .collect();
                let again = Crash {
                    files,
                    names: names.clone(),
                };
                stats.recovery_states += 1;
                let at = || {
                    format!(
                        "recovery cut before op {point} of {log:?}, directory state {n}, synced only {synced_only}"
                    )
                };
                match open(&again, run.salt + 100, run.fsync, false)? {
                    Opened::Started { state, .. } if state == run.states[turn] => {}
                    Opened::Started { state, .. } => {
                        return Err(format!(
                            "{}: recovered {state:?}, want {:?}",
                            at(),
                            run.states[turn]
                        ));
                    }
                    Opened::Refused(why) => return Err(format!("{}: refused: {why}", at())),
                }
                let replaced = names.get(Path::new(JOURNAL)) != Some(&original);
                let kept = again.names.iter().any(|(p, &i)| {
                    p.to_string_lossy().contains(".aside-") && again.files[i] == rest
                });
                if valid_after && replaced && !kept {
                    return Err(format!(
                        "{}: the journal was replaced before its side file was durable",
                        at()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An old journal (version 1) with a few records, for a run that starts from one.
    fn old_journal() -> Vec<u8> {
        let mut j = journal::HEADER_V1.to_vec();
        journal::set(&mut j, "i", 5);
        journal::set(&mut j, "old", -1);
        journal::inc(&mut j, "i");
        j
    }

    #[test]
    fn every_crash_state_recovers_by_the_rules() {
        let started = Instant::now();
        let mut total = Stats::default();
        let runs = [
            (Fsync::Always, None, plan(1, 24), 6),
            (Fsync::EverySec, None, plan(2, 36), 9),
            (Fsync::No, None, plan(3, 24), 8),
            (Fsync::EverySec, Some(old_journal()), plan(4, 16), 8),
            (Fsync::EverySec, None, steady(24), 4),
        ];
        for (fsync, initial, turns, compact_every) in runs {
            let run = record(fsync, initial.as_deref(), &turns, compact_every);
            let compactions = run
                .log
                .iter()
                .filter(|op| matches!(op, Op::Rename { .. }))
                .count();
            assert!(compactions >= 3, "{fsync:?}: {compactions} compactions");
            let mut stats = Stats::default();
            if let Err(e) = check_run(&run, &mut stats) {
                panic!("violation: {e}");
            }
            eprintln!(
                "{fsync:?} run, {} ops, {compactions} compactions: {stats:?}",
                run.log.len()
            );
            total.states += stats.states;
            total.clean += stats.clean;
            total.torn += stats.torn;
            total.set_aside += stats.set_aside;
            total.refused += stats.refused;
            total.recoveries_cut += stats.recoveries_cut;
            total.recovery_states += stats.recovery_states;
        }
        eprintln!("{total:?} in {:.1} s", started.elapsed().as_secs_f64());
        // Every outcome happened: the checks above did not pass by seeing nothing.
        assert!(total.states >= 3000, "{total:?}");
        assert!(
            total.clean > 0 && total.torn > 100 && total.set_aside > 100,
            "{total:?}"
        );
        assert!(
            total.refused > 100 && total.recovery_states > 100,
            "{total:?}"
        );
    }

    #[test]
    fn the_oracle_reads_turns_byte_for_byte() {
        let segs = [
            (0, 4, Tag::Compacted(0)),
            (4, 6, Tag::Turn(1)),
            (6, 8, Tag::Turn(2)),
        ];
        let w = b"head1122";
        let recover = |turn, cut, valid_after| Expect::Recover {
            turn,
            cut,
            valid_after,
        };
        assert_eq!(oracle(&segs, w, b""), Expect::Fresh);
        assert_eq!(oracle(&segs, w, w), recover(2, None, false));
        assert_eq!(oracle(&segs, w, b"head11"), recover(1, None, false));
        assert_eq!(oracle(&segs, w, b"head112"), recover(1, Some(6), false));
        assert_eq!(oracle(&segs, w, b"head1"), recover(0, Some(4), false));
        assert_eq!(oracle(&segs, w, b"head"), recover(0, None, false));
        assert_eq!(
            oracle(&segs, w, b"head\x00\x0022"),
            recover(0, Some(4), true)
        );
        assert_eq!(oracle(&segs, w, b"hea"), Expect::Damaged(0));
    }

    #[test]
    fn crash_contents_cover_cuts_holes_and_reordering() {
        let w: Vec<u8> = (0..100).map(|i| b'a' + (i % 26) as u8).collect();
        let all = contents(&w, 10, &[b'#'; 100], 1);
        assert!(
            all.iter().all(|f| f.len() >= 10 && f[..10] == w[..10]),
            "synced bytes kept"
        );
        for n in 10..=100 {
            assert!(all.contains(&w[..n].to_vec()), "cut at {n}");
        }
        // A later page kept while an earlier one was lost, as NULs and as old bytes.
        let hole = |f: &Vec<u8>, fill: u8| {
            f.len() == 100 && f[32..64].iter().all(|&b| b == fill) && f[64..] == w[64..]
        };
        assert!(all.iter().any(|f| hole(f, 0)));
        assert!(all.iter().any(|f| hole(f, b'#')));
    }
}
