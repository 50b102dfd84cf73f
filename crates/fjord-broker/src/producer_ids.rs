//! Allocation of idempotent producer ids, unique across restarts.
//!
//! Ids are handed out from blocks; the end of the current block is written to
//! `<log.dir>/producer-id-block` before any id of it is used, so a crash can skip ids but never
//! reuse one (Kafka's ProducerIdManager does the same with blocks from the controller).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fjord_storage::{IoVerb, StorageError};

/// Ids reserved per write of the block file.
const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-id-block";

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// Hands out producer ids.
#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIdManager {
    /// Continues after the last block reserved by a previous run.
    pub fn open(log_dir: &Path) -> Result<ProducerIdManager, StorageError> {
        let path = log_dir.join(FILE_NAME);
        let reserved_end = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                StorageError::io(
                    IoVerb::Read,
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(StorageError::io(IoVerb::Read, &path, e)),
        };
        Ok(ProducerIdManager {
            path,
            block: Mutex::new(Block {
                next: reserved_end,
                end: reserved_end,
            }),
        })
    }

    /// A producer id never handed out before.
    pub fn next_id(&self) -> Result<i64, StorageError> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        if block.next >= block.end {
            let end = block.end + BLOCK_SIZE;
            persist(&self.path, end)?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

fn persist(path: &Path, end: i64) -> Result<(), StorageError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(format!("{end}\n").as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| StorageError::io(IoVerb::Write, path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let manager = ProducerIdManager::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| manager.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(manager);
        let manager = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(manager.next_id().unwrap(), BLOCK_SIZE);
    }
}
