//! The journal file: opened and replayed at start, appended to once per loop turn by the
//! reactor, synced as `--fsync` says, and compacted now and then. The format itself (what
//! a record looks like, how a file is read back) is `journal.rs`, free of I/O.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{info, trace, warn};

use crate::config::Fsync;
use crate::journal;
use crate::metrics::Metrics;
use crate::store::Store;

/// The journal file: opened and replayed at start, appended to once per turn.
pub struct JournalFile {
    file: File,
    path: PathBuf,
    fsync: Fsync,
    pub size: u64,
    /// Size right after the last rewrite.
    pub compacted: u64,
    /// Written but not yet synced, since when.
    dirty_since: Option<Instant>,
}

/// Why a journal could not be opened: the path (exit 2) or its contents (exit 1).
pub enum OpenError {
    Path(io::Error),
    Damaged(String),
    Io(io::Error),
}

impl JournalFile {
    /// Opens (creating) `path`, replays it into `store`, preloading `preload` only into a
    /// new journal, and rewrites it compacted.
    pub fn open(
        path: &Path,
        fsync: Fsync,
        store: &mut Store,
        preload: &[(&str, i64)],
    ) -> Result<JournalFile, OpenError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(OpenError::Path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(OpenError::Path)?;
        let replayed = journal::replay(&data, store)
            .map_err(|d| OpenError::Damaged(format!("{}: {d}", path.display())))?;
        if replayed.torn {
            warn!(
                "{}: a torn last record ({} bytes at byte {}) was cut off",
                path.display(),
                data.len() - replayed.good,
                replayed.good
            );
        }
        if replayed.fresh {
            for (name, value) in preload {
                let _ = store.set(name, *value);
            }
        }
        info!(
            "{}: {} records replayed, {} counters",
            path.display(),
            replayed.records,
            store.len()
        );
        let mut journal = JournalFile {
            file,
            path: path.to_path_buf(),
            fsync,
            size: data.len() as u64,
            compacted: 0,
            dirty_since: None,
        };
        let started = Instant::now();
        journal.compact(store.iter()).map_err(OpenError::Io)?;
        info!(
            "{}: compacted to {} bytes in {:.1} ms",
            path.display(),
            journal.size,
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(journal)
    }

    /// One `write` of a turn's records, then `fdatasync` with `--fsync always`.
    pub fn append(&mut self, records: &[u8], now: Instant, m: &mut Metrics) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(records)
            .map_err(|e| self.error("write to", e))?;
        self.size += records.len() as u64;
        m.journal.records += records.iter().filter(|&&b| b == b'\n').count() as u64;
        m.journal.bytes += records.len() as u64;
        trace!("journal: wrote {} bytes", records.len());
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
        self.file
            .sync_data()
            .map_err(|e| self.error("fdatasync", e))?;
        self.dirty_since = None;
        m.journal.fsyncs += 1;
        m.journal
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Rewrites the journal as one record per counter: a temporary file, `fsync`, `rename`
    /// over the journal, `fsync` of the directory, so that a crash at any point leaves
    /// either the old journal or the new one.
    pub fn compact<'a>(
        &mut self,
        counters: impl IntoIterator<Item = (&'a str, i64)>,
    ) -> io::Result<()> {
        let data = journal::compacted(counters);
        let mut tmp_path = self.path.clone().into_os_string();
        tmp_path.push(".tmp");
        let tmp_path = PathBuf::from(tmp_path);
        let mut tmp = File::create(&tmp_path).map_err(|e| self.error("create", e))?;
        tmp.write_all(&data)
            .map_err(|e| self.error("write to", e))?;
        tmp.sync_all().map_err(|e| self.error("fsync", e))?;
        std::fs::rename(&tmp_path, &self.path).map_err(|e| self.error("rename over", e))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.error("fsync the directory of", e))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| self.error("reopen", e))?;
        self.size = data.len() as u64;
        self.compacted = self.size;
        self.dirty_since = None;
        Ok(())
    }

    fn error(&self, what: &str, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "cannot {what} the journal {}: {e}; stopping before acknowledging unrecorded changes",
                self.path.display()
            ),
        )
    }
}
