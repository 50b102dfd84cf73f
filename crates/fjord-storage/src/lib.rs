//! The Fjord partition log: Kafka's on-disk layout, written by hand.
//!
//! One [`Log`] per partition directory `<log.dir>/<topic>-<partition>/`:
//!
//! ```text
//!  orders-0/
//!  ├── 00000000000000000000.log        batches at offsets [0, 1200)     (sealed)
//!  ├── 00000000000000000000.index      rel offset -> file position, every 4 KiB
//!  ├── 00000000000000000000.timeindex  max timestamp so far -> rel offset
//!  ├── 00000000000000000000.txnindex   aborted transactions whose abort marker is in
//!  │                                   this segment (only once there is one)
//!  ├── 00000000000000001200.log        batches at offsets [1200, LEO)   (active)
//!  ├── 00000000000000001200.index
//!  ├── 00000000000000001200.timeindex
//!  ├── 00000000000000001180.snapshot   producer state as of offset 1180 (newest two kept)
//!  ├── leader-epoch-checkpoint         where each leader epoch starts (replication)
//!  └── log-start-offset                raised by DeleteRecords
//!
//!   append ──► validate all batches ──► assign offsets in place ──► one pwrite to the
//!              (header + CRC only)       (base offset, epoch,         active .log, then
//!                                         LogAppendTime)              index entries
//!
//!   read(offset) ──► segment by base offset (binary search) ──► .index floor entry
//!                ──► walk batch headers ──► ReadPlan { Arc<File>, position, len }
//!                    (copied by the caller after the lock is released)
//! ```
//!
//! Batches are stored exactly as producers sent them; only the base offset, partition
//! leader epoch and (for LogAppendTime) the max timestamp are rewritten. Durability is the
//! caller's explicit choice: [`Log::flush_target`] snapshots the files to `fdatasync`,
//! [`FlushTarget::sync`] runs without the log lock (group commit), and
//! [`Log::mark_flushed`] advances the recovery point to persist in the
//! `recovery-point-offset-checkpoint` ([`checkpoint`]). After a crash, [`Log::open`] trusts
//! what lies below the recovery point and CRC-checks the rest, truncating at the first bad
//! batch.
//!
//! For replication, the log keeps Kafka's leader-epoch cache (`leader-epoch-checkpoint`,
//! [`EpochEntry`]): the leader records each new epoch as it appends
//! ([`Log::append_with_leader_epoch`]) and answers OffsetForLeaderEpoch from it
//! ([`Log::end_offset_for_epoch`]); a follower copies the leader's batches as they are
//! ([`Log::append_as_follower`]) and cuts what diverged ([`Log::truncate_to`],
//! [`Log::truncate_fully_and_start_at`]).
//!
//! For transactions, the log keeps Kafka's aborted-transaction index next to the segments
//! ([`Log::append_aborted_txn`], [`Log::aborted_txns`] for read_committed fetches) and
//! stores the broker's producer-state snapshots as opaque bytes
//! ([`Log::write_producer_snapshot`]).
//!
//! ```
//! use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
//! use fjord_storage::{Log, LogConfig};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut log = Log::open(dir.path(), LogConfig::default(), 0, 1_000).unwrap();
//! let record = RecordSpec { timestamp: 1_000, value: Some(b"hello".to_vec()), ..Default::default() };
//! let mut batch = build_batch(&BatchSpec::default(), &[record]);
//! let info = log.append(&mut batch, 1_000).unwrap();
//! assert_eq!((info.first_offset, log.log_end_offset()), (0, 1));
//!
//! let plan = log.read(0, 1 << 20, log.log_end_offset()).unwrap();
//! let mut out = Vec::new();
//! plan.read_into(&mut out).unwrap();
//! assert_eq!(out, batch);
//! log.close().unwrap();
//! ```

pub mod checkpoint;
pub mod cleaner;
mod config;
mod error;
mod index;
mod leader_epoch;
mod log;
mod producer_snapshot;
mod segment;
mod txn_index;

pub use config::LogConfig;
pub use error::{IoVerb, StorageError};
pub use fjord_protocol::batch::TimestampType;
pub use leader_epoch::{EpochEntry, LEADER_EPOCH_CHECKPOINT_FILE};
pub use log::{AppendInfo, FlushTarget, Log, ReadPlan, RetentionOutcome, LOG_START_OFFSET_FILE};
pub use txn_index::AbortedTxn;
