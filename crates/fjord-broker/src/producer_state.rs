//! Idempotent-producer state of one partition: for each producer id, its epoch and the last
//! five batches it wrote, so retries are recognised and answered with their original offsets
//! and gaps are refused (Kafka's ProducerStateManager).
//!
//! It also tracks each producer's open transaction (the offset of its first transactional
//! batch not yet followed by a marker): the smallest of those is the partition's first unstable
//! offset, the limit of what read_committed consumers may see.
//!
//! The table is saved as a snapshot (see [`ProducerStates::encode`]) and rebuilt after a restart
//! from the newest snapshot plus the batches after it. A producer the table does not know may
//! continue at any sequence (as in Kafka since KIP-360, so a producer whose state aged out is
//! not stuck); it only loses duplicate detection for retries of batches it no longer remembers.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Batches remembered per producer, as in Kafka (the producer keeps at most five in flight).
const BATCHES_REMEMBERED: usize = 5;

/// One written batch, as far as deduplication needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the batch's first record.
    pub first_sequence: i32,
    /// Sequence of the batch's last record.
    pub last_sequence: i32,
    /// Offset the first record got.
    pub first_offset: i64,
    /// Offset the last record got.
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// The epoch of the transaction coordinator whose marker came last: markers of an older
    /// coordinator (one that lost its partition's leadership) are fenced.
    coordinator_epoch: i32,
    batches: VecDeque<BatchMetadata>,
    /// Broker time of the producer's last write, for `producer.id.expiration.ms`.
    last_write_ms: i64,
    /// First offset of the producer's open transaction in this partition.
    txn_first_offset: Option<i64>,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            // Kafka's "no coordinator epoch yet".
            coordinator_epoch: -1,
            batches: VecDeque::new(),
            last_write_ms: 0,
            txn_first_offset: None,
        }
    }
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Sequence of the last record written, -1 if none is remembered.
    pub last_sequence: i32,
    /// Broker time of its last write.
    pub last_timestamp_ms: i64,
    /// First offset of its open transaction, -1 if none.
    pub current_txn_start_offset: i64,
    /// Epoch of the transaction coordinator whose marker came last, -1 if none.
    pub coordinator_epoch: i32,
}

/// A transaction that a marker just closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Its first transactional batch in this partition (the marker's offset if it wrote none).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
}

/// A snapshot that cannot be read; the caller rebuilds from the log instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("producer-state snapshot is {0}")]
pub struct SnapshotError(&'static str);

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Next in sequence (or a new epoch/producer): append it.
    Append,
    /// Already written: answer with these offsets, write nothing.
    Duplicate(BatchMetadata),
    /// The producer's epoch is older than one already seen: a zombie.
    StaleEpoch {
        /// The epoch the partition knows.
        current: i16,
    },
    /// A gap, or a new epoch that does not start at sequence 0.
    OutOfOrder {
        /// The sequence expected next.
        expected: i32,
    },
}

/// Producer states of one partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// (first offset, producer id) of every open transaction, smallest first.
    open_txns: BTreeSet<(i64, i64)>,
}

/// Snapshot layout version; bumped when the layout changes.
const SNAPSHOT_VERSION: u16 = 2;
/// The layout before the coordinator epoch was kept; still read.
const SNAPSHOT_VERSION_WITHOUT_COORDINATOR_EPOCH: u16 = 1;

/// The sequence after `seq`, wrapping as Kafka does at i32::MAX.
fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    /// Decides what to do with a batch from `producer_id` at `epoch` covering
    /// `first_sequence..=last_sequence`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        last_sequence: i32,
    ) -> SequenceCheck {
        let Some(entry) = self.producers.get(&producer_id) else {
            return SequenceCheck::Append;
        };
        if epoch < entry.epoch {
            return SequenceCheck::StaleEpoch {
                current: entry.epoch,
            };
        }
        if epoch > entry.epoch {
            return if first_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder { expected: 0 }
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if next_sequence(last.last_sequence) != first_sequence => {
                SequenceCheck::OutOfOrder {
                    expected: next_sequence(last.last_sequence),
                }
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records a batch that was written (or found in the log on rebuild); a transactional
    /// batch opens the producer's transaction here if none is open.
    pub fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        batch: BatchMetadata,
        transactional: bool,
        now_ms: i64,
    ) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        // Batches without a sequence (a coordinator's writes for the producer) only open the
        // transaction; they are not part of the producer's own sequence.
        if batch.first_sequence >= 0 {
            entry.batches.push_back(batch);
            while entry.batches.len() > BATCHES_REMEMBERED {
                entry.batches.pop_front();
            }
        }
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
        if transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(batch.first_offset);
            self.open_txns.insert((batch.first_offset, producer_id));
        }
    }

    /// Checks a write the broker makes for a producer (a marker, a transactional offset
    /// commit): one with an older epoch than the producer's current one is from a fenced
    /// instance. Returns the current epoch on refusal.
    pub fn check_epoch(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(entry.epoch),
            _ => Ok(()),
        }
    }

    /// Refuses a marker from a transaction coordinator older than the one whose marker
    /// came last (Kafka's TRANSACTION_COORDINATOR_FENCED); `Err` carries the current epoch.
    pub fn check_coordinator_epoch(
        &self,
        producer_id: i64,
        coordinator_epoch: i32,
    ) -> Result<(), i32> {
        match self.producers.get(&producer_id) {
            Some(entry) if coordinator_epoch < entry.coordinator_epoch => {
                Err(entry.coordinator_epoch)
            }
            _ => Ok(()),
        }
    }

    /// Records a commit or abort marker written at `offset` by a coordinator at
    /// `coordinator_epoch`, closing the producer's open transaction. A marker with a newer
    /// epoch (after a fence) restarts sequences at 0.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        offset: i64,
        now_ms: i64,
    ) -> CompletedTxn {
        let entry = self.producers.entry(producer_id).or_default();
        entry.coordinator_epoch = coordinator_epoch;
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
        let first_offset = match entry.txn_first_offset.take() {
            Some(first) => {
                self.open_txns.remove(&(first, producer_id));
                first
            }
            None => offset,
        };
        CompletedTxn {
            producer_id,
            first_offset,
            last_offset: offset,
        }
    }

    /// The first offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_txns.first().map(|(offset, _)| *offset)
    }

    /// Forgets producers idle for longer than `expiration_ms` that have no open transaction
    /// (Kafka's `producer.id.expiration.ms`); returns how many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_write_ms) <= expiration_ms
        });
        before - self.producers.len()
    }

    /// Every known producer, by id.
    pub fn summaries(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerSummary {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp_ms: e.last_write_ms,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        out.sort_by_key(|s| s.producer_id);
        out
    }

    /// The table as bytes, for a snapshot file: a version, then per producer its id, epoch,
    /// last write time, open transaction, coordinator epoch and remembered batches, then a
    /// CRC-32C of all of it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_write_ms.to_be_bytes());
            out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads [`ProducerStates::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<ProducerStates, SnapshotError> {
        let (body, crc) = bytes
            .split_last_chunk::<4>()
            .ok_or(SnapshotError("too short"))?;
        if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
            return Err(SnapshotError("corrupt (checksum mismatch)"));
        }
        let mut r = Reader(body);
        let version = u16::from_be_bytes(r.take()?);
        if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_WITHOUT_COORDINATOR_EPOCH {
            return Err(SnapshotError("of an unknown version"));
        }
        let count = u32::from_be_bytes(r.take()?);
        let mut states = ProducerStates::default();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let last_write_ms = i64::from_be_bytes(r.take()?);
            let txn = i64::from_be_bytes(r.take()?);
            let coordinator_epoch = if version == SNAPSHOT_VERSION {
                i32::from_be_bytes(r.take()?)
            } else {
                -1
            };
            let [batches] = r.take::<1>()?;
            let mut entry = ProducerEntry {
                epoch,
                coordinator_epoch,
                batches: VecDeque::new(),
                last_write_ms,
                txn_first_offset: (txn >= 0).then_some(txn),
            };
            for _ in 0..batches {
                entry.batches.push_back(BatchMetadata {
                    first_sequence: i32::from_be_bytes(r.take()?),
                    last_sequence: i32::from_be_bytes(r.take()?),
                    first_offset: i64::from_be_bytes(r.take()?),
                    last_offset: i64::from_be_bytes(r.take()?),
                });
            }
            if txn >= 0 {
                states.open_txns.insert((txn, id));
            }
            states.producers.insert(id, entry);
        }
        if !r.0.is_empty() {
            return Err(SnapshotError("followed by unexpected bytes"));
        }
        Ok(states)
    }

    /// Producers known to this partition.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// Reads fixed-size fields off the front of a snapshot.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(SnapshotError("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_sequence: i32, last_sequence: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_sequence,
            last_sequence,
            first_offset,
            last_offset: first_offset + i64::from(last_sequence - first_sequence),
        }
    }

    #[test]
    fn unknown_producer_may_start_anywhere() {
        let states = ProducerStates::default();
        assert_eq!(states.check(7, 0, 0, 4), SequenceCheck::Append);
        assert_eq!(states.check(7, 0, 42, 50), SequenceCheck::Append);
    }

    #[test]
    fn next_sequence_appends_and_retry_is_a_duplicate_with_original_offsets() {
        let mut states = ProducerStates::default();
        states.record(7, 0, batch(0, 4, 100), false, 0);
        assert_eq!(states.check(7, 0, 5, 9), SequenceCheck::Append);
        assert_eq!(
            states.check(7, 0, 0, 4),
            SequenceCheck::Duplicate(batch(0, 4, 100))
        );
    }

    #[test]
    fn gap_is_out_of_order() {
        let mut states = ProducerStates::default();
        states.record(7, 0, batch(0, 4, 100), false, 0);
        assert_eq!(
            states.check(7, 0, 6, 9),
            SequenceCheck::OutOfOrder { expected: 5 }
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..6 {
            states.record(7, 0, batch(i * 10, i * 10 + 9, i64::from(i) * 10), false, 0);
        }
        assert_eq!(
            states.check(7, 0, 0, 9),
            SequenceCheck::OutOfOrder { expected: 60 },
            "the oldest batch fell out of the window"
        );
        assert_eq!(
            states.check(7, 0, 10, 19),
            SequenceCheck::Duplicate(batch(10, 19, 10))
        );
    }

    #[test]
    fn older_epoch_is_stale_and_newer_epoch_restarts_at_zero() {
        let mut states = ProducerStates::default();
        states.record(7, 3, batch(0, 4, 100), false, 0);
        assert_eq!(
            states.check(7, 2, 5, 9),
            SequenceCheck::StaleEpoch { current: 3 }
        );
        assert_eq!(states.check(7, 4, 0, 3), SequenceCheck::Append);
        assert_eq!(
            states.check(7, 4, 5, 9),
            SequenceCheck::OutOfOrder { expected: 0 }
        );
        states.record(7, 4, batch(0, 3, 200), false, 0);
        assert_eq!(states.check(7, 4, 4, 9), SequenceCheck::Append);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(7, 0, batch(i32::MAX - 1, i32::MAX, 100), false, 0);
        assert_eq!(states.check(7, 0, 0, 3), SequenceCheck::Append);
    }

    #[test]
    fn open_transactions_set_the_first_unstable_offset_until_their_marker() {
        let mut states = ProducerStates::default();
        assert_eq!(states.first_unstable_offset(), None);
        states.record(1, 0, batch(0, 4, 10), true, 0);
        states.record(2, 0, batch(0, 4, 15), true, 0);
        states.record(1, 0, batch(5, 9, 20), true, 0);
        assert_eq!(states.first_unstable_offset(), Some(10));
        let done = states.complete_txn(1, 0, 0, 25, 0);
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 1,
                first_offset: 10,
                last_offset: 25
            }
        );
        assert_eq!(states.first_unstable_offset(), Some(15));
        states.complete_txn(2, 0, 0, 26, 0);
        assert_eq!(states.first_unstable_offset(), None);
        // A marker for a producer without data here closes an empty transaction.
        assert_eq!(states.complete_txn(3, 0, 0, 27, 0).first_offset, 27);
    }

    #[test]
    fn a_fenced_epoch_marker_resets_sequences_and_older_markers_are_refused() {
        let mut states = ProducerStates::default();
        states.record(1, 0, batch(0, 4, 10), true, 0);
        states.complete_txn(1, 1, 0, 11, 0);
        assert_eq!(states.check(1, 1, 0, 0), SequenceCheck::Append);
        assert_eq!(states.check_epoch(1, 0), Err(1));
        assert_eq!(states.check_epoch(1, 1), Ok(()));
        assert_eq!(states.check_epoch(9, 0), Ok(()));
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut states = ProducerStates::default();
        states.record(1, 0, batch(0, 0, 1), false, 1_000);
        states.record(2, 0, batch(0, 0, 2), true, 1_000);
        states.record(3, 0, batch(0, 0, 3), false, 9_000);
        assert_eq!(states.expire(10_000, 5_000), 1);
        let ids: Vec<i64> = states.summaries().iter().map(|s| s.producer_id).collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn snapshot_round_trips_and_detects_damage() {
        let mut states = ProducerStates::default();
        states.record(1, 3, batch(0, 4, 10), true, 77);
        states.record(1, 3, batch(5, 9, 20), true, 78);
        states.record(2, 0, batch(0, 0, 30), false, 79);
        let bytes = states.encode();
        let back = ProducerStates::decode(&bytes).unwrap();
        assert_eq!(back, states);
        assert_eq!(back.first_unstable_offset(), Some(10));
        let mut damaged = bytes.clone();
        damaged[7] ^= 1;
        assert!(ProducerStates::decode(&damaged).is_err());
        assert!(ProducerStates::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ProducerStates::decode(&[]).is_err());
    }

    #[test]
    fn markers_of_an_older_coordinator_are_fenced_and_the_epoch_survives_a_snapshot() {
        let mut states = ProducerStates::default();
        states.record(1, 0, batch(0, 0, 10), true, 1);
        assert_eq!(states.check_coordinator_epoch(1, 0), Ok(()));
        states.complete_txn(1, 0, 4, 11, 2);
        assert_eq!(states.check_coordinator_epoch(1, 3), Err(4));
        assert_eq!(states.check_coordinator_epoch(1, 4), Ok(()));
        assert_eq!(
            states.check_coordinator_epoch(2, 0),
            Ok(()),
            "unknown producer"
        );
        let back = ProducerStates::decode(&states.encode()).unwrap();
        assert_eq!(back.check_coordinator_epoch(1, 3), Err(4));
    }

    #[test]
    fn snapshots_of_the_previous_layout_are_still_read() {
        let mut states = ProducerStates::default();
        states.record(1, 2, batch(0, 4, 10), true, 77);
        // Version 1: no coordinator epoch between the open transaction and the batches.
        let mut old = Vec::new();
        old.extend_from_slice(&1u16.to_be_bytes());
        old.extend_from_slice(&1u32.to_be_bytes());
        old.extend_from_slice(&1i64.to_be_bytes());
        old.extend_from_slice(&2i16.to_be_bytes());
        old.extend_from_slice(&77i64.to_be_bytes());
        old.extend_from_slice(&10i64.to_be_bytes());
        old.push(1);
        for v in [0i32.to_be_bytes(), 4i32.to_be_bytes()] {
            old.extend_from_slice(&v);
        }
        old.extend_from_slice(&10i64.to_be_bytes());
        old.extend_from_slice(&14i64.to_be_bytes());
        let crc = crc32c::crc32c(&old);
        old.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(ProducerStates::decode(&old).unwrap(), states);
    }
}
