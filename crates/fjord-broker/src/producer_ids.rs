//! Allocation of idempotent producer ids, unique across restarts and, in a cluster, across
//! brokers.
//!
//! Ids are handed out from blocks. On a single node the end of the current block is written to
//! `<log.dir>/producer-id-block` before any id of it is used, so a crash can skip ids but never
//! reuse one. In cluster mode blocks come from the controller (AllocateProducerIds, KIP-730),
//! which records each in the metadata log; the next block is fetched in the background while
//! the current one still has ids, as Kafka's RPCProducerIdManager does, because the
//! transaction coordinator asks for ids from a task that must not wait on the network.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_controller::api::{AllocateProducerIdsRequest, ControllerRequest, ControllerResponse};
use fjord_controller::ErrorCode;
use fjord_storage::{IoVerb, StorageError};

use crate::cluster::ClusterNode;

/// Ids reserved per write of the block file.
const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-id-block";

/// When fewer ids than this fraction of a block are left, the next block is fetched.
const PREFETCH_BELOW_PERCENT: i64 = 10;

/// How long an idempotent producer's InitProducerId waits for a block from the controller.
const BLOCK_WAIT: Duration = Duration::from_secs(5);

/// Why no producer id could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    /// The block file could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Every id of the current block is used and the controller has not answered with the
    /// next one yet; retriable.
    #[error("no producer id block from the controller yet: {0}")]
    BlockPending(String),
}

#[derive(Debug, Clone, Copy, Default)]
struct Block {
    next: i64,
    end: i64,
}

impl Block {
    fn left(&self) -> i64 {
        self.end - self.next
    }
}

/// Blocks handed out by the controller.
#[derive(Debug)]
struct ControllerBlocks {
    node: Arc<ClusterNode>,
    state: Mutex<BlockState>,
    arrived: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct BlockState {
    current: Block,
    next: Option<Block>,
    fetching: bool,
    last_error: Option<String>,
}

#[derive(Debug)]
enum Source {
    File { path: PathBuf, block: Mutex<Block> },
    Controller(Arc<ControllerBlocks>),
}

/// Hands out producer ids.
#[derive(Debug)]
pub struct ProducerIdManager {
    source: Source,
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
            source: Source::File {
                path,
                block: Mutex::new(Block {
                    next: reserved_end,
                    end: reserved_end,
                }),
            },
        })
    }

    /// Cluster mode: ids from blocks the controller allocates to this broker (which must be
    /// registered). The first block is fetched at once.
    pub fn from_controller(node: Arc<ClusterNode>) -> ProducerIdManager {
        let blocks = Arc::new(ControllerBlocks {
            node,
            state: Mutex::new(BlockState::default()),
            arrived: tokio::sync::Notify::new(),
        });
        start_fetch(&blocks);
        ProducerIdManager {
            source: Source::Controller(blocks),
        }
    }

    /// A producer id never handed out before, without waiting: in cluster mode
    /// [`ProducerIdError::BlockPending`] when the controller's next block has not arrived.
    pub fn next_id(&self) -> Result<i64, ProducerIdError> {
        match &self.source {
            Source::File { path, block } => {
                let mut block = block.lock().unwrap_or_else(|p| p.into_inner());
                if block.next >= block.end {
                    let end = block.end + BLOCK_SIZE;
                    persist(path, end)?;
                    block.end = end;
                }
                let id = block.next;
                block.next += 1;
                Ok(id)
            }
            Source::Controller(blocks) => take_id(blocks),
        }
    }

    /// Like [`ProducerIdManager::next_id`], but waits (bounded) for a block the controller
    /// has not delivered yet; for callers that may wait, such as InitProducerId.
    pub async fn next_id_waiting(&self) -> Result<i64, ProducerIdError> {
        let Source::Controller(blocks) = &self.source else {
            return self.next_id();
        };
        let deadline = tokio::time::Instant::now() + BLOCK_WAIT;
        loop {
            let arrived = blocks.arrived.notified();
            match take_id(blocks) {
                Err(ProducerIdError::BlockPending(_)) if tokio::time::Instant::now() < deadline => {
                    let _ = tokio::time::timeout_at(deadline, arrived).await;
                }
                outcome => return outcome,
            }
        }
    }
}

fn take_id(blocks: &Arc<ControllerBlocks>) -> Result<i64, ProducerIdError> {
    let mut state = blocks.state.lock().unwrap_or_else(|p| p.into_inner());
    if state.current.left() <= 0 {
        if let Some(next) = state.next.take() {
            state.current = next;
        }
    }
    let outcome = if state.current.left() > 0 {
        let id = state.current.next;
        state.current.next += 1;
        Ok(id)
    } else {
        Err(ProducerIdError::BlockPending(
            state
                .last_error
                .clone()
                .unwrap_or_else(|| "requested".into()),
        ))
    };
    let low = state.current.left() * 100 < BLOCK_SIZE * PREFETCH_BELOW_PERCENT;
    let fetch = low && state.next.is_none() && !state.fetching;
    drop(state);
    if fetch {
        start_fetch(blocks);
    }
    outcome
}

/// Asks the controller for the next block in the background.
fn start_fetch(blocks: &Arc<ControllerBlocks>) {
    {
        let mut state = blocks.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.fetching {
            return;
        }
        state.fetching = true;
    }
    let blocks = blocks.clone();
    tokio::spawn(async move {
        let node = &blocks.node;
        let request = ControllerRequest::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id: node.node_id(),
            broker_epoch: node.broker_epoch(),
        });
        let outcome = match node.submit(request).await {
            Ok(ControllerResponse::AllocateProducerIds(r)) if r.error == ErrorCode::None => {
                Ok(Block {
                    next: r.producer_id_start,
                    end: r.producer_id_start + i64::from(r.producer_id_len),
                })
            }
            Ok(ControllerResponse::AllocateProducerIds(r)) => Err(format!("{:?}", r.error)),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        let mut state = blocks.state.lock().unwrap_or_else(|p| p.into_inner());
        state.fetching = false;
        match outcome {
            Ok(block) => {
                tracing::debug!(
                    start = block.next,
                    end = block.end,
                    "producer id block from the controller"
                );
                state.last_error = None;
                if state.current.left() <= 0 {
                    state.current = block;
                } else {
                    state.next = Some(block);
                }
            }
            Err(reason) => {
                tracing::warn!(%reason, "could not get a producer id block from the controller");
                state.last_error = Some(reason);
            }
        }
        drop(state);
        blocks.arrived.notify_waiters();
    });
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
