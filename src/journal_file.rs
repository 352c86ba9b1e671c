//! The journal file: opened and recovered at start, appended to once per loop turn by the
//! reactor, synced as `--fsync` says, and compacted now and then. The format itself (what
//! a turn looks like, how a file is read back after a crash) is `journal.rs`, free of I/O.
//!
//! Every file operation goes through [`Storage`], one method per system call, so that the
//! crash-state simulator (`journal_sim.rs`) can run exactly this code over a disk that
//! forgets what was not synced. [`Os`] is the real one.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{info, trace, warn};

use crate::config::Fsync;
use crate::journal::{self, Action, Seal, Tail};
use crate::metrics::Metrics;
use crate::store::Store;

/// The file operations the journal makes, each one system call (or `write_all`'s loop).
pub trait Storage {
    type File;
    /// Opens `path` for appending, creating it if missing, and reads all of it.
    fn open(&mut self, path: &Path) -> io::Result<(Self::File, Vec<u8>)>;
    /// Creates `path` for writing: truncating it, or with `exclusive` only if it is new.
    fn create(&mut self, path: &Path, exclusive: bool) -> io::Result<Self::File>;
    fn write(&mut self, file: &mut Self::File, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&mut self, file: &mut Self::File) -> io::Result<()>;
    /// `fsync`.
    fn sync_all(&mut self, file: &mut Self::File) -> io::Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync` of a directory, which makes the creates and renames in it durable.
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    /// Opens an existing `path` for appending.
    fn reopen(&mut self, path: &Path) -> io::Result<Self::File>;
    /// A salt for a rewritten journal, unlikely to repeat on this disk.
    fn salt(&mut self) -> u32;
}

/// The real file system.
pub struct Os;

impl Storage for Os {
    type File = File;

    fn open(&mut self, path: &Path) -> io::Result<(File, Vec<u8>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok((file, data))
    }

    fn create(&mut self, path: &Path, exclusive: bool) -> io::Result<File> {
        if exclusive {
            OpenOptions::new().write(true).create_new(true).open(path)
        } else {
            File::create(path)
        }
    }

    fn write(&mut self, file: &mut File, data: &[u8]) -> io::Result<()> {
        file.write_all(data)
    }

    fn sync_data(&mut self, file: &mut File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&mut self, file: &mut File) -> io::Result<()> {
        file.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }

    fn reopen(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }

    /// The clock's nanoseconds and the process id, mixed: a rewrite never happens twice in
    /// the same nanosecond of one process.
    fn salt(&mut self) -> u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut seed = nanos.to_le_bytes().to_vec();
        seed.extend_from_slice(&std::process::id().to_le_bytes());
        journal::crc32c::checksum(&seed)
    }
}

/// The journal file: opened and replayed at start, appended to once per turn.
pub struct JournalFile<S: Storage = Os> {
    storage: S,
    file: S::File,
    path: PathBuf,
    fsync: Fsync,
    pub size: u64,
    /// Size right after the last rewrite.
    pub compacted: u64,
    /// Written but not yet synced, since when.
    dirty_since: Option<Instant>,
    /// The current file's salt, and the checksum state of its first line, which every
    /// commit line continues.
    salt: u32,
    seal: Seal,
    /// A turn's records and its commit line, for one `write`.
    buf: Vec<u8>,
}

/// Why a journal could not be opened: the path (exit 2) or its contents (exit 1).
pub enum OpenError {
    Path(io::Error),
    /// Damage no crash explains, or acknowledged data at stake: the whole message.
    Damaged(String),
    Io(io::Error),
}

impl JournalFile {
    /// Opens (creating) `path`, recovers it into `store` by the rules of `journal.rs`
    /// (`recover`: `--journal-recover`), preloads `preload` only into a new journal, and
    /// rewrites it compacted.
    pub fn open(
        path: &Path,
        fsync: Fsync,
        recover: bool,
        store: &mut Store,
        preload: &[(&str, i64)],
    ) -> Result<JournalFile, OpenError> {
        JournalFile::open_on(Os, path, fsync, recover, store, preload)
    }
}

impl<S: Storage> JournalFile<S> {
    /// [`JournalFile::open`] on any storage.
    pub fn open_on(
        mut storage: S,
        path: &Path,
        fsync: Fsync,
        recover: bool,
        store: &mut Store,
        preload: &[(&str, i64)],
    ) -> Result<JournalFile<S>, OpenError> {
        let shown = path.display();
        let (file, data) = storage.open(path).map_err(OpenError::Path)?;
        let replayed = journal::replay(&data, store)
            .map_err(|d| OpenError::Damaged(format!("{shown}: {d}")))?;
        let good = replayed.good;
        let rest = data.len() - good;
        match (replayed.action(fsync, recover), replayed.tail) {
            (Action::Refuse, tail) => {
                let next = match tail {
                    Tail::ValidAfter { next } => next,
                    _ => unreachable!("only valid turns after a bad one are refused"),
                };
                return Err(OpenError::Damaged(format!(
                    "{shown}: journal damaged at byte {good}: a turn that is incomplete or \
                     fails its checksum, with valid turns after it (the first at byte {next}); \
                     with --fsync always they were written only after it was synced, so \
                     acknowledged changes are at stake. --journal-recover starts from byte \
                     {good} and keeps the {rest} bytes from there in a side file"
                )));
            }
            (Action::SetAside, tail) => {
                let aside = set_aside(&mut storage, path, good, &data[good..]).map_err(|e| {
                    OpenError::Io(io::Error::new(
                        e.kind(),
                        format!(
                            "cannot write a side file next to the journal {shown}: {e}; \
                             not starting without the {rest} bytes from byte {good}"
                        ),
                    ))
                })?;
                let aside = aside.display();
                match tail {
                    Tail::Unchecked { nul } => warn!(
                        "{shown}: a hole of NUL bytes at byte {nul} (a page lost in a power \
                         cut) in an old journal: recovered up to byte {good}; the {rest} \
                         bytes from there, which cannot be checked, are kept in {aside}"
                    ),
                    _ => warn!(
                        "{shown}: the turn at byte {good} is incomplete or fails its checksum \
                         but valid turns follow (unsynced pages reached the disk out of order \
                         before a power cut): recovered to the point before it, byte {good}; \
                         the {rest} bytes from there are kept in {aside}"
                    ),
                }
            }
            (_, Tail::Torn) => warn!(
                "{shown}: a torn last {} ({rest} bytes at byte {good}) was cut off",
                if replayed.version == 1 {
                    "record"
                } else {
                    "turn"
                }
            ),
            _ => {}
        }
        if replayed.fresh {
            for (name, value) in preload {
                let _ = store.set(name, *value);
            }
        }
        info!(
            "{shown}: {} records in {} turns replayed (version {} journal), {} counters",
            replayed.records,
            replayed.turns,
            replayed.version,
            store.len()
        );
        let mut journal = JournalFile {
            storage,
            file,
            path: path.to_path_buf(),
            fsync,
            size: data.len() as u64,
            compacted: 0,
            dirty_since: None,
            salt: 0,
            seal: Seal::new(0),
            buf: Vec::new(),
        };
        let started = Instant::now();
        journal.compact(store.iter()).map_err(OpenError::Io)?;
        info!(
            "{shown}: compacted to {} bytes in {:.1} ms",
            journal.size,
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(journal)
    }

    /// One `write` of a turn's records and their commit line, then `fdatasync` with
    /// `--fsync always`. A turn without records writes nothing.
    pub fn append(&mut self, records: &[u8], now: Instant, m: &mut Metrics) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        self.buf.extend_from_slice(records);
        self.seal.commit(records, &mut self.buf);
        self.storage
            .write(&mut self.file, &self.buf)
            .map_err(|e| self.error("write to", e))?;
        self.size += self.buf.len() as u64;
        m.journal.records += records.iter().filter(|&&b| b == b'\n').count() as u64;
        m.journal.bytes += self.buf.len() as u64;
        trace!("journal: wrote {} bytes", self.buf.len());
        match self.fsync {
            Fsync::Always => self.sync(m),
            Fsync::EverySec => {
                self.dirty_since.get_or_insert(now);
                Ok(())
            }
            Fsync::No => Ok(()),
        }
    }

    /// With `everysec`: when the oldest unsynced write is a second old.
    pub fn sync_due(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + Duration::from_secs(1))
    }

    pub fn maybe_sync(&mut self, now: Instant, m: &mut Metrics) -> io::Result<()> {
        match self.sync_due() {
            Some(due) if now >= due => self.sync(m),
            _ => Ok(()),
        }
    }

    pub fn sync(&mut self, m: &mut Metrics) -> io::Result<()> {
        let started = Instant::now();
        self.storage
            .sync_data(&mut self.file)
            .map_err(|e| self.error("fdatasync", e))?;
        self.dirty_since = None;
        m.journal.fsyncs += 1;
        m.journal
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Rewrites the journal as one turn, one record per counter, under a new salt: a
    /// temporary file, `fsync`, `rename` over the journal, `fsync` of the directory, so
    /// that a crash at any point leaves either the old journal or the new one, whole.
    pub fn compact<'a>(
        &mut self,
        counters: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> io::Result<()> {
        let mut salt = self.storage.salt();
        if salt == self.salt {
            salt = salt.wrapping_add(1);
        }
        let data = journal::compacted(counters, salt);
        let mut tmp_path = self.path.clone().into_os_string();
        tmp_path.push(".tmp");
        let tmp_path = PathBuf::from(tmp_path);
        let s = &mut self.storage;
        let mut tmp = s
            .create(&tmp_path, false)
            .map_err(|e| file_error(&self.path, "create", e))?;
        s.write(&mut tmp, &data)
            .map_err(|e| file_error(&self.path, "write to", e))?;
        s.sync_all(&mut tmp)
            .map_err(|e| file_error(&self.path, "fsync", e))?;
        drop(tmp);
        s.rename(&tmp_path, &self.path)
            .map_err(|e| file_error(&self.path, "rename over", e))?;
        s.sync_dir(dir_of(&self.path))
            .map_err(|e| file_error(&self.path, "fsync the directory of", e))?;
        self.file = s
            .reopen(&self.path)
            .map_err(|e| file_error(&self.path, "reopen", e))?;
        self.size = data.len() as u64;
        self.compacted = self.size;
        self.dirty_since = None;
        self.salt = salt;
        self.seal = Seal::new(salt);
        Ok(())
    }

    fn error(&self, what: &str, e: io::Error) -> io::Error {
        file_error(&self.path, what, e)
    }
}

fn file_error(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "cannot {what} the journal {}: {e}; stopping before acknowledging unrecorded changes",
            path.display()
        ),
    )
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `rest`, the part of the journal from byte `at` that recovery does not apply, to
/// a new file next to it (`FILE.aside-AT`, or `FILE.aside-AT.2`, ... if taken: a side
/// file is never overwritten), synced and in a synced directory before the journal is
/// rewritten without it. Returns its path.
fn set_aside<S: Storage>(s: &mut S, path: &Path, at: usize, rest: &[u8]) -> io::Result<PathBuf> {
    let mut base = path.as_os_str().to_owned();
    base.push(format!(".aside-{at}"));
    for n in 1..=1000 {
        let mut name = base.clone();
        if n > 1 {
            name.push(format!(".{n}"));
        }
        let side = PathBuf::from(name);
        let mut file = match s.create(&side, true) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        s.write(&mut file, rest)?;
        s.sync_all(&mut file)?;
        drop(file);
        s.sync_dir(dir_of(path))?;
        return Ok(side);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} and 999 more side files exist", base.to_string_lossy()),
    ))
}
