//! The replicated state machine: the [`MetadataImage`], plus the snapshot that bounds the log.
//!
//! ```text
//!   <metadata.log.dir>/metadata.checkpoint   one frame: snapshot meta + image, as JSON
//! ```
//!
//! Applying an entry moves the image to the entry's index and applies its records; the new
//! image is published on a `watch` channel, which is how brokers follow committed metadata.
//! The image itself is not written on apply: on restart the node loads the checkpoint and
//! openraft re-applies the log from there up to the saved commit point. A snapshot (built
//! every `snapshot_threshold_entries`, or received from the leader) is written durably before
//! openraft purges the log it covers.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::file::{read_whole, write_atomically, StoreError};
use super::TypeConfig;
use crate::image::MetadataImage;

/// File of the latest snapshot.
pub(crate) const SNAPSHOT_FILE: &str = "metadata.checkpoint";

type Meta = SnapshotMeta<u64, BasicNode>;

/// What the checkpoint file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    meta: Meta,
    image: MetadataImage,
}

/// A snapshot kept for followers that need it.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    image: Arc<MetadataImage>,
}

/// openraft's state machine for one controller.
#[derive(Debug, Clone)]
pub(crate) struct StateMachineStore {
    dir: PathBuf,
    applied: Arc<Mutex<Applied>>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    image_tx: Arc<watch::Sender<Arc<MetadataImage>>>,
}

fn poisoned(dir: &Path) -> StorageError<u64> {
    StorageIOError::read_state_machine(&StoreError::Poisoned {
        path: dir.to_path_buf(),
    })
    .into()
}

fn snapshot_id(last: Option<LogId<u64>>) -> String {
    match last {
        Some(id) => format!("{}-{}", id.leader_id.term, id.index),
        None => "empty".into(),
    }
}

/// Writes `checkpoint` unless a snapshot at least as new is already stored, so a slow
/// builder cannot overwrite a newer snapshot installed from the leader meanwhile.
fn store_snapshot(
    dir: &Path,
    slot: &Mutex<Option<StoredSnapshot>>,
    checkpoint: &Checkpoint,
    data: Vec<u8>,
) -> Result<(), StorageError<u64>> {
    let mut slot = slot.lock().map_err(|_| poisoned(dir))?;
    if let Some(current) = slot.as_ref() {
        if current.meta.last_log_id > checkpoint.meta.last_log_id {
            return Ok(());
        }
    }
    let signature = Some(checkpoint.meta.signature());
    let json = serde_json::to_vec(checkpoint)
        .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
    write_atomically(dir, SNAPSHOT_FILE, &json)
        .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
    *slot = Some(StoredSnapshot {
        meta: checkpoint.meta.clone(),
        data,
    });
    Ok(())
}

impl StateMachineStore {
    /// Loads the checkpoint under `dir`, if any. The image starts there.
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let checkpoint: Option<Checkpoint> = read_whole(dir, SNAPSHOT_FILE)?
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                path: dir.join(SNAPSHOT_FILE),
                reason: e.to_string(),
            })?;
        let (applied, snapshot) = match checkpoint {
            Some(Checkpoint { meta, image }) => {
                let data = serde_json::to_vec(&image).map_err(|e| StoreError::Corrupt {
                    path: dir.join(SNAPSHOT_FILE),
                    reason: e.to_string(),
                })?;
                let applied = Applied {
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership.clone(),
                    image: Arc::new(image),
                };
                (applied, Some(StoredSnapshot { meta, data }))
            }
            None => (
                Applied {
                    last_applied: None,
                    membership: StoredMembership::default(),
                    image: Arc::new(MetadataImage::default()),
                },
                None,
            ),
        };
        let (image_tx, _) = watch::channel(applied.image.clone());
        Ok(Self {
            dir: dir.to_path_buf(),
            applied: Arc::new(Mutex::new(applied)),
            snapshot: Arc::new(Mutex::new(snapshot)),
            image_tx: Arc::new(image_tx),
        })
    }

    /// Whether a checkpoint was found or received.
    pub(crate) fn has_snapshot(&self) -> bool {
        self.snapshot.lock().is_ok_and(|s| s.is_some())
    }

    /// A receiver of the committed image.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image_tx.subscribe()
    }

    fn applied(&self) -> Result<MutexGuard<'_, Applied>, StorageError<u64>> {
        self.applied.lock().map_err(|_| poisoned(&self.dir))
    }
}

/// Builds a snapshot of the state as of the moment it was created.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    store: StateMachineStore,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    image: Arc<MetadataImage>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: snapshot_id(self.last_applied),
        };
        let checkpoint = Checkpoint {
            meta: meta.clone(),
            image: (*self.image).clone(),
        };
        let data = serde_json::to_vec(&checkpoint.image)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let dir = self.store.dir.clone();
        let slot = self.store.snapshot.clone();
        let stored = data.clone();
        tokio::task::spawn_blocking(move || store_snapshot(&dir, &slot, &checkpoint, stored))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))??;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "metadata snapshot written");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self.applied()?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.applied()?;
        let mut image = (*applied.image).clone();
        let mut responses = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            image.advance_to(entry.log_id.index);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for record in &batch.records {
                        if let Err(error) = image.apply(record) {
                            tracing::warn!(index = entry.log_id.index, %error, ?record, "metadata record skipped");
                        }
                    }
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            responses.push(());
        }
        applied.image = Arc::new(image);
        self.image_tx.send_replace(applied.image.clone());
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (last_applied, membership, image) = match self.applied() {
            Ok(a) => (a.last_applied, a.membership.clone(), a.image.clone()),
            Err(_) => (None, StoredMembership::default(), Arc::default()),
        };
        SnapshotBuilder {
            store: self.clone(),
            last_applied,
            membership,
            image,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let checkpoint = Checkpoint {
            meta: meta.clone(),
            image,
        };
        let dir = self.dir.clone();
        let slot = self.snapshot.clone();
        let checkpoint = tokio::task::spawn_blocking(move || {
            store_snapshot(&dir, &slot, &checkpoint, data).map(|()| checkpoint)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))??;
        let mut applied = self.applied()?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.image = Arc::new(checkpoint.image);
        self.image_tx.send_replace(applied.image.clone());
        tracing::info!(snapshot = %meta.snapshot_id, "metadata snapshot installed from the leader");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let slot = self.snapshot.lock().map_err(|_| poisoned(&self.dir))?;
        Ok(slot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
