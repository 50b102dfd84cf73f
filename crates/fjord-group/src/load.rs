//! Replaying `__consumer_offsets` into groups (Kafka's `doLoadGroupsAndOffsets`).
//!
//! Plain records apply in log order: later commits win, tombstones delete. Records of a
//! transactional batch wait, per partition and producer, for that producer's next marker in
//! the same partition: a commit marker applies them (unless a plain commit of the same
//! partition came later in the log), an abort marker drops them. Whatever still waits at the
//! end of the log stays pending in its group, since the transaction may yet complete.

use std::collections::BTreeMap;

use crate::group::{keep_latest, CommittedOffset, TopicPartition};
use crate::records::{GroupMetadataValue, OffsetsKey, OffsetsRecord, OffsetsValue};

/// One item of `__consumer_offsets` as the runtime reads it back, in log order per partition.
///
/// Plain key/value pairs cannot tell a transaction's offsets from ordinary commits, nor say
/// when the transaction ended, so the runtime passes on what the batch headers say: the
/// producer of a transactional batch, and each control batch's commit or abort marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEntry<K, V> {
    /// A key/value record; a `None` value is a tombstone.
    Record {
        /// The record key.
        key: K,
        /// The record value.
        value: Option<V>,
        /// The producer of a transactional batch; `None` for every other batch (idempotent
        /// producer ids included, since only transactions wait for a marker).
        producer_id: Option<i64>,
        /// The `__consumer_offsets` partition the record was read from.
        partition: i32,
    },
    /// A transaction marker (a control batch's record, key type 1 = commit, 0 = abort).
    Marker {
        /// The producer whose transaction ended.
        producer_id: i64,
        /// Commit (`true`) or abort.
        commit: bool,
        /// The `__consumer_offsets` partition holding the marker; it ends the producer's
        /// records in this partition only.
        partition: i32,
    },
}

/// A transactional offset read back, with the group it belongs to.
type PendingKey = (String, TopicPartition);

/// What replay found for one group.
#[derive(Debug, Default)]
pub(crate) struct LoadedGroup {
    /// The latest group metadata, if the group's record is not tombstoned.
    pub(crate) metadata: Option<GroupMetadataValue>,
    /// Committed offsets.
    pub(crate) offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// Offsets of transactions with no marker yet, per producer id.
    pub(crate) pending: BTreeMap<i64, BTreeMap<TopicPartition, CommittedOffset>>,
}

/// State accumulated while records stream in.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    offsets: BTreeMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
    metadata: BTreeMap<String, Option<GroupMetadataValue>>,
    /// Per (offsets partition, producer id): transactional offsets awaiting a marker.
    pending: BTreeMap<(i32, i64), BTreeMap<PendingKey, CommittedOffset>>,
}

impl Replay {
    /// Applies one decoded record; `log_sequence` must grow with log order.
    pub(crate) fn record(
        &mut self,
        record: OffsetsRecord,
        producer_id: Option<i64>,
        partition: i32,
        log_sequence: u64,
    ) {
        match (record.key, record.value) {
            (OffsetsKey::OffsetCommit(key), Some(OffsetsValue::OffsetCommit(v))) => {
                let tp = TopicPartition {
                    topic: key.topic,
                    partition: key.partition,
                };
                let offset = CommittedOffset {
                    offset: v.offset,
                    leader_epoch: (v.leader_epoch >= 0).then_some(v.leader_epoch),
                    metadata: v.metadata,
                    commit_timestamp_ms: v.commit_timestamp,
                    expire_timestamp_ms: (v.expire_timestamp != -1).then_some(v.expire_timestamp),
                    log_sequence,
                };
                match producer_id {
                    None => {
                        self.offsets
                            .entry(key.group)
                            .or_default()
                            .insert(tp, offset);
                    }
                    Some(producer_id) => {
                        self.pending
                            .entry((partition, producer_id))
                            .or_default()
                            .insert((key.group, tp), offset);
                    }
                }
            }
            (OffsetsKey::OffsetCommit(key), _) => {
                // A tombstone removes the committed offset and every open transaction's offset
                // for the partition, as OffsetDelete and DeleteGroups do live.
                let tp = TopicPartition {
                    topic: key.topic,
                    partition: key.partition,
                };
                if let Some(offsets) = self.offsets.get_mut(&key.group) {
                    offsets.remove(&tp);
                }
                let pending_key = (key.group, tp);
                self.pending.retain(|(p, _), offsets| {
                    if *p == partition {
                        offsets.remove(&pending_key);
                    }
                    !offsets.is_empty()
                });
            }
            (OffsetsKey::GroupMetadata(key), Some(OffsetsValue::GroupMetadata(value))) => {
                self.metadata.insert(key.group, Some(value));
            }
            (OffsetsKey::GroupMetadata(key), _) => {
                self.metadata.insert(key.group, None);
            }
        }
    }

    /// Ends `producer_id`'s transaction in `partition`.
    pub(crate) fn marker(&mut self, producer_id: i64, commit: bool, partition: i32) {
        let Some(pending) = self.pending.remove(&(partition, producer_id)) else {
            return;
        };
        if !commit {
            return;
        }
        for ((group_id, tp), offset) in pending {
            keep_latest(self.offsets.entry(group_id).or_default(), tp, offset);
        }
    }

    /// The groups that exist after replay: those with offsets (committed or pending) or with
    /// untombstoned metadata.
    pub(crate) fn finish(self) -> BTreeMap<String, LoadedGroup> {
        let mut groups: BTreeMap<String, LoadedGroup> = BTreeMap::new();
        for (group_id, offsets) in self.offsets {
            if !offsets.is_empty() {
                groups.entry(group_id).or_default().offsets = offsets;
            }
        }
        for (group_id, metadata) in self.metadata {
            if let Some(metadata) = metadata {
                groups.entry(group_id).or_default().metadata = Some(metadata);
            }
        }
        for ((_, producer_id), pending) in self.pending {
            for ((group_id, tp), offset) in pending {
                groups
                    .entry(group_id)
                    .or_default()
                    .pending
                    .entry(producer_id)
                    .or_default()
                    .insert(tp, offset);
            }
        }
        groups
    }
}
