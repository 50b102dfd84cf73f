//! Idempotent-producer state of one partition: for each producer id, its epoch and the last
//! five batches it wrote, so retries are recognised and answered with their original offsets
//! and gaps are refused (Kafka's ProducerStateManager).
//!
//! The table is rebuilt after a restart from the batches of the newest segment. A producer the
//! table does not know may continue at any sequence (as in Kafka since KIP-360, so a producer
//! whose state aged out is not stuck); it only loses duplicate detection for retries of batches
//! older than what was rebuilt.

use std::collections::{HashMap, VecDeque};

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

#[derive(Debug, Default, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
}

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
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

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

    /// Records a batch that was written (or found in the log on rebuild).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMetadata) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(batch);
        while entry.batches.len() > BATCHES_REMEMBERED {
            entry.batches.pop_front();
        }
    }

    /// Forgets producers whose state is rebuilt from a later scan, e.g. after truncation.
    pub fn clear(&mut self) {
        self.producers.clear();
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
        states.record(7, 0, batch(0, 4, 100));
        assert_eq!(states.check(7, 0, 5, 9), SequenceCheck::Append);
        assert_eq!(
            states.check(7, 0, 0, 4),
            SequenceCheck::Duplicate(batch(0, 4, 100))
        );
    }

    #[test]
    fn gap_is_out_of_order() {
        let mut states = ProducerStates::default();
        states.record(7, 0, batch(0, 4, 100));
        assert_eq!(
            states.check(7, 0, 6, 9),
            SequenceCheck::OutOfOrder { expected: 5 }
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..6 {
            states.record(7, 0, batch(i * 10, i * 10 + 9, i64::from(i) * 10));
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
        states.record(7, 3, batch(0, 4, 100));
        assert_eq!(
            states.check(7, 2, 5, 9),
            SequenceCheck::StaleEpoch { current: 3 }
        );
        assert_eq!(states.check(7, 4, 0, 3), SequenceCheck::Append);
        assert_eq!(
            states.check(7, 4, 5, 9),
            SequenceCheck::OutOfOrder { expected: 0 }
        );
        states.record(7, 4, batch(0, 3, 200));
        assert_eq!(states.check(7, 4, 4, 9), SequenceCheck::Append);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(7, 0, batch(i32::MAX - 1, i32::MAX, 100));
        assert_eq!(states.check(7, 0, 0, 3), SequenceCheck::Append);
    }
}
