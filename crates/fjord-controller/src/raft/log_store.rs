//! The metadata log and the vote, durable under the metadata dir.
//!
//! ```text
//!   <metadata.log.dir>/metadata.log    frames of JSON openraft entries, in index order
//!   <metadata.log.dir>/quorum-state    one frame: vote, committed log id, last purged log id
//! ```
//!
//! Appends are written and fsynced before openraft is told they are flushed, so an entry
//! that counted towards a commit survives kill -9. Truncation (a new leader overwrote our
//! uncommitted tail) cuts the file and fsyncs. Purging (after a snapshot) first records the
//! purge point in `quorum-state`, then rewrites the log without the purged prefix; a crash in
//! between leaves entries that recovery drops. Recovery keeps the longest valid, gap-free
//! prefix of the log and cuts off a torn tail.
//!
//! Writes run on the blocking pool so an fsync never stalls the async workers; openraft
//! issues them one at a time. The entries are also kept in memory (the log is bounded by
//! snapshots) for the replication readers.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};

use super::file::{
    decode_frames, encode_frame, open_append, read_whole, sync_dir, write_atomically, StoreError,
    HEADER_BYTES,
};
use super::TypeConfig;

/// File of log entries.
pub(crate) const LOG_FILE: &str = "metadata.log";
/// File of the vote and log pointers.
pub(crate) const STATE_FILE: &str = "quorum-state";

type LogEntry = Entry<TypeConfig>;

/// What `quorum-state` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
}

/// The in-memory copy readers use.
#[derive(Debug, Default)]
struct MemLog {
    entries: BTreeMap<u64, LogEntry>,
    last_purged: Option<LogId<u64>>,
}

/// The log file and the quorum state; touched only on the blocking pool.
#[derive(Debug)]
struct Disk {
    dir: PathBuf,
    log: File,
    /// Byte position of each entry's frame, by log index.
    positions: BTreeMap<u64, u64>,
    len: u64,
    state: QuorumState,
}

fn lock<'a, T>(mutex: &'a Mutex<T>, path: &Path) -> Result<MutexGuard<'a, T>, StoreError> {
    mutex.lock().map_err(|_| StoreError::Poisoned {
        path: path.to_path_buf(),
    })
}

impl Disk {
    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    fn save_state(&self) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&self.state).map_err(|e| StoreError::Corrupt {
            path: self.dir.join(STATE_FILE),
            reason: e.to_string(),
        })?;
        write_atomically(&self.dir, STATE_FILE, &json)
    }

    fn append(
        &mut self,
        first_index: u64,
        frames: Vec<u8>,
        sizes: Vec<u64>,
    ) -> Result<(), StoreError> {
        let path = self.log_path();
        self.log
            .write_all(&frames)
            .map_err(StoreError::io("append to", &path))?;
        self.log
            .sync_data()
            .map_err(StoreError::io("fsync", &path))?;
        let mut pos = self.len;
        for (index, size) in (first_index..).zip(sizes) {
            self.positions.insert(index, pos);
            pos += size;
        }
        self.len = pos;
        Ok(())
    }

    /// Cuts the log before entry `index`.
    fn truncate(&mut self, index: u64) -> Result<(), StoreError> {
        let Some(&pos) = self.positions.get(&index) else {
            return Ok(());
        };
        let path = self.log_path();
        self.log
            .set_len(pos)
            .map_err(StoreError::io("truncate", &path))?;
        self.log
            .sync_all()
            .map_err(StoreError::io("fsync", &path))?;
        self.positions.split_off(&index);
        self.len = pos;
        Ok(())
    }

    /// Drops entries up to `log_id` inclusive.
    fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StoreError> {
        self.state.last_purged = Some(log_id);
        self.save_state()?;
        let keep_from = self
            .positions
            .range(log_id.index + 1..)
            .next()
            .map_or(self.len, |(_, &pos)| pos);
        let path = self.log_path();
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut rest = Vec::new();
        self.log
            .seek(SeekFrom::Start(keep_from))
            .and_then(|_| self.log.read_to_end(&mut rest))
            .map_err(StoreError::io("read", &path))?;
        let mut out = File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
        out.write_all(&rest)
            .map_err(StoreError::io("write", &tmp))?;
        out.sync_all().map_err(StoreError::io("fsync", &tmp))?;
        fs::rename(&tmp, &path).map_err(StoreError::io("rename into", &path))?;
        sync_dir(&self.dir)?;
        self.log = open_append(&path)?;
        self.positions = self
            .positions
            .split_off(&(log_id.index + 1))
            .into_iter()
            .map(|(index, pos)| (index, pos - keep_from))
            .collect();
        self.len -= keep_from;
        Ok(())
    }
}

/// Reads the log and state from `dir`, repairing a torn tail. Returns the disk handle and
/// the surviving entries.
fn recover(dir: &Path) -> Result<(Disk, Vec<LogEntry>), StoreError> {
    fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
    let state: QuorumState = match read_whole(dir, STATE_FILE)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: dir.join(STATE_FILE),
            reason: e.to_string(),
        })?,
        None => QuorumState::default(),
    };
    let path = dir.join(LOG_FILE);
    let mut log = open_append(&path)?;
    let mut bytes = Vec::new();
    log.read_to_end(&mut bytes)
        .map_err(StoreError::io("read", &path))?;
    let (frames, _) = decode_frames(&bytes);
    let mut entries = Vec::new();
    let mut positions = BTreeMap::new();
    let mut valid_len = 0;
    let mut expected = state.last_purged.map(|l| l.index + 1);
    for (pos, payload) in frames {
        let Ok(entry) = serde_json::from_slice::<LogEntry>(payload) else {
            break;
        };
        let index = entry.get_log_id().index;
        match expected {
            // Left over from a purge interrupted before the rewrite.
            Some(next) if index < next => {}
            Some(next) if index > next => break,
            _ => {
                positions.insert(index, pos as u64);
                entries.push(entry);
                expected = Some(index + 1);
            }
        }
        valid_len = pos + HEADER_BYTES + payload.len();
    }
    if valid_len < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            kept = valid_len,
            dropped = bytes.len() - valid_len,
            "cutting an incomplete tail off the metadata log"
        );
        log.set_len(valid_len as u64)
            .map_err(StoreError::io("truncate", &path))?;
        log.sync_all().map_err(StoreError::io("fsync", &path))?;
    }
    let disk = Disk {
        dir: dir.to_path_buf(),
        log,
        positions,
        len: valid_len as u64,
        state,
    };
    Ok((disk, entries))
}

fn write_error(e: &StoreError) -> StorageError<u64> {
    StorageIOError::write_logs(e).into()
}

/// openraft's log storage for one controller.
#[derive(Debug)]
pub(crate) struct LogStore {
    dir: PathBuf,
    disk: Arc<Mutex<Disk>>,
    mem: Arc<Mutex<MemLog>>,
}

impl LogStore {
    /// Opens (or creates) the log under `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let (disk, entries) = recover(dir)?;
        let mem = MemLog {
            entries: entries
                .into_iter()
                .map(|e| (e.get_log_id().index, e))
                .collect(),
            last_purged: disk.state.last_purged,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            disk: Arc::new(Mutex::new(disk)),
            mem: Arc::new(Mutex::new(mem)),
        })
    }

    /// Whether nothing was ever written: no vote, no entries, nothing purged. Such a node
    /// initializes the cluster.
    pub(crate) fn is_fresh(&self) -> Result<bool, StoreError> {
        let disk = lock(&self.disk, &self.dir)?;
        let mem = lock(&self.mem, &self.dir)?;
        Ok(disk.state.vote.is_none() && mem.entries.is_empty() && mem.last_purged.is_none())
    }

    async fn on_disk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Disk) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StorageError<u64>> {
        let disk = self.disk.clone();
        let dir = self.dir.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut disk = lock(&disk, &dir)?;
            f(&mut disk)
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?;
        outcome.map_err(|e| write_error(&e))
    }

    fn mem(&self) -> Result<MutexGuard<'_, MemLog>, StorageError<u64>> {
        lock(&self.mem, &self.dir).map_err(|e| StorageIOError::read_logs(&e).into())
    }

    fn state(&self) -> Result<QuorumState, StorageError<u64>> {
        lock(&self.disk, &self.dir)
            .map(|d| d.state.clone())
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }
}

/// Reads entries for replication; shares the in-memory copy with the [`LogStore`].
#[derive(Debug, Clone)]
pub(crate) struct LogReader {
    dir: PathBuf,
    mem: Arc<Mutex<MemLog>>,
}

fn read_range<RB: RangeBounds<u64>>(
    mem: &Mutex<MemLog>,
    dir: &Path,
    range: RB,
) -> Result<Vec<LogEntry>, StorageError<u64>> {
    let mem = lock(mem, dir).map_err(|e| StorageError::from(StorageIOError::read_logs(&e)))?;
    Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError<u64>> {
        read_range(&self.mem, &self.dir, range)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError<u64>> {
        read_range(&self.mem, &self.dir, range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let mem = self.mem()?;
        let last_purged_log_id = mem.last_purged;
        let last_log_id = mem
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            dir: self.dir.clone(),
            mem: self.mem.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let vote = *vote;
        self.on_disk(move |disk| {
            disk.state.vote = Some(vote);
            disk.save_state()
        })
        .await
        .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.state()?.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.on_disk(move |disk| {
            if disk.state.committed == committed {
                return Ok(());
            }
            disk.state.committed = committed;
            disk.save_state()
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.state()?.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = LogEntry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let Some(first_index) = entries.first().map(|e| e.get_log_id().index) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let mut frames = Vec::new();
        let mut sizes = Vec::with_capacity(entries.len());
        for entry in &entries {
            let json = serde_json::to_vec(entry)
                .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?;
            let before = frames.len();
            encode_frame(&json, &mut frames);
            sizes.push((frames.len() - before) as u64);
        }
        let written = self
            .on_disk(move |disk| disk.append(first_index, frames, sizes))
            .await;
        if let Err(e) = written {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(e);
        }
        {
            let mut mem = self.mem()?;
            for entry in entries {
                mem.entries.insert(entry.get_log_id().index, entry);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.on_disk(move |disk| disk.truncate(log_id.index))
            .await?;
        self.mem()?.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.on_disk(move |disk| disk.purge(log_id)).await?;
        let mut mem = self.mem()?;
        mem.last_purged = Some(log_id);
        mem.entries = mem.entries.split_off(&(log_id.index + 1));
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_store_test.rs"]
mod tests;
