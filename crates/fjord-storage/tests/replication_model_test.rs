//! Property test: random leader and follower appends, truncations, full truncations,
//! DeleteRecords and reopens (clean and crash) are checked against a simple in-memory model
//! of the records, log start, log end and leader-epoch cache.

use fjord_protocol::batch::{build_batch, BatchIter, BatchSpec, RecordSpec};
use fjord_storage::{EpochEntry, Log, LogConfig, StorageError};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Leader append of batches with these record counts; `epoch` 0 keeps the current epoch,
    /// 1 starts a new one, 2 uses a stale one.
    Lead {
        epoch: u8,
        records: Vec<usize>,
    },
    /// Follower append: per batch (records, gap before it, epoch as in `Lead`).
    Follow(Vec<(usize, bool, u8)>),
    /// A follower request overlapping the log end, which must be refused.
    Overlap {
        back: u8,
    },
    /// Truncation to an offset inside (or at the start of) a batch, or to the log end.
    Truncate {
        pick: u16,
        within: u8,
    },
    TruncateFully {
        delta: i16,
    },
    DeleteRecords {
        at: u16,
    },
    Reopen {
        clean: bool,
        trust: bool,
    },
}

fn epoch_choice() -> impl Strategy<Value = u8> {
    prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (epoch_choice(), proptest::collection::vec(1usize..4, 1..4))
            .prop_map(|(epoch, records)| Op::Lead { epoch, records }),
        6 => proptest::collection::vec((1usize..4, proptest::bool::weighted(0.15), epoch_choice()), 1..5)
            .prop_map(Op::Follow),
        1 => any::<u8>().prop_map(|back| Op::Overlap { back }),
        3 => (any::<u16>(), any::<u8>()).prop_map(|(pick, within)| Op::Truncate { pick, within }),
        1 => (-20i16..60).prop_map(|delta| Op::TruncateFully { delta }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(clean, trust)| Op::Reopen { clean, trust }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

fn batch_at(base: i64, epoch: i32, records: usize) -> Vec<u8> {
    let specs: Vec<RecordSpec> = (0..records)
        .map(|i| RecordSpec {
            timestamp: NOW + base + i as i64,
            value: Some(vec![b'r'; 40]),
            ..Default::default()
        })
        .collect();
    let spec = BatchSpec {
        base_offset: base,
        partition_leader_epoch: epoch,
        ..BatchSpec::default()
    };
    build_batch(&spec, &specs)
}

/// What the log must hold. Batches below the log start stay listed (retention may or may
/// not have deleted their segment); reads never reach them.
#[derive(Debug, Default)]
struct Model {
    /// (first offset, last offset, bytes as stored).
    batches: Vec<(i64, i64, Vec<u8>)>,
    log_start: i64,
    log_end: i64,
    /// Where the first segment starts: the log end when the log was last emptied.
    first_base: i64,
    epochs: Vec<(i32, i64)>,
    /// Newest epoch handed out, for generating appends.
    epoch_counter: i32,
}

impl Model {
    fn epoch_for(&mut self, choice: u8) -> i32 {
        match choice {
            1 => {
                self.epoch_counter += 1;
                self.epoch_counter
            }
            2 => self.epoch_counter - 1,
            _ => self.epoch_counter,
        }
    }

    /// Kafka's assign, restricted to epochs newer than the latest.
    fn assign(&mut self, epoch: i32, start: i64) {
        if epoch < 0 || self.epochs.last().is_some_and(|&(e, _)| epoch <= e) {
            return;
        }
        self.epochs.retain(|&(_, s)| s < start);
        self.epochs.push((epoch, start));
    }

    fn truncate_epochs_from_start(&mut self, start: i64) {
        if let Some(i) = self.epochs.iter().rposition(|&(_, s)| s <= start) {
            self.epochs.drain(..i);
            self.epochs[0].1 = start;
        }
    }

    fn end_offset_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let &(latest, _) = self.epochs.last()?;
        if epoch == latest {
            return Some((epoch, self.log_end));
        }
        let floor = self.epochs.iter().rev().find(|&&(e, _)| e <= epoch);
        let higher = self.epochs.iter().find(|&&(e, _)| e > epoch);
        Some(match (floor, higher) {
            (Some(&(f, _)), Some(&(_, start))) => (f, start),
            _ => (-1, -1),
        })
    }

    fn visible(&self) -> Vec<u8> {
        self.batches
            .iter()
            .filter(|b| b.1 >= self.log_start)
            .flat_map(|b| b.2.iter().copied())
            .collect()
    }

    fn empty_at(&mut self, offset: i64) {
        self.batches.clear();
        self.epochs.clear();
        self.log_start = offset;
        self.log_end = offset;
        self.first_base = offset;
    }
}

fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let plan = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert!(!plan.is_empty(), "nothing at {offset}");
        plan.read_into(&mut out).unwrap();
        offset = plan.next_offset();
    }
    out
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    prop_assert_eq!(log.log_end_offset(), model.log_end);
    prop_assert_eq!(read_all(log), model.visible());
    let entries: Vec<EpochEntry> = model
        .epochs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect();
    prop_assert_eq!(log.epoch_entries(), entries);
    prop_assert_eq!(log.latest_epoch(), model.epochs.last().map(|e| e.0));
    for epoch in -1..=model.epoch_counter + 1 {
        prop_assert_eq!(
            log.end_offset_for_epoch(epoch),
            model.end_offset_for(epoch),
            "epoch {}",
            epoch
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn replication_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0, NOW).unwrap();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Lead { epoch, records } => {
                    let epoch = model.epoch_for(epoch);
                    let mut req: Vec<u8> = records.iter().flat_map(|&n| batch_at(0, -1, n)).collect();
                    let info = log.append_with_leader_epoch(&mut req, epoch, NOW).unwrap();
                    prop_assert_eq!(info.first_offset, model.log_end);
                    model.assign(epoch, info.first_offset);
                    for r in BatchIter::new(&req) {
                        let (h, bytes) = r.unwrap();
                        model.batches.push((h.base_offset, h.last_offset(), bytes.to_vec()));
                    }
                    model.log_end = info.last_offset + 1;
                }
                Op::Follow(batches) => {
                    let mut req = Vec::new();
                    let mut next = model.log_end;
                    for (records, gap, epoch) in batches {
                        if gap {
                            next += 7;
                        }
                        let epoch = model.epoch_for(epoch);
                        let b = batch_at(next, epoch, records);
                        model.assign(epoch, next);
                        model.batches.push((next, next + records as i64 - 1, b.clone()));
                        next += records as i64;
                        req.extend_from_slice(&b);
                    }
                    let info = log.append_as_follower(&mut req, NOW).unwrap();
                    prop_assert_eq!(info.last_offset + 1, next);
                    model.log_end = next;
                }
                Op::Overlap { back } => {
                    let base = model.log_end - 1 - i64::from(back % 4);
                    if base < 0 {
                        continue;
                    }
                    let mut req = batch_at(base, model.epoch_counter + 1, 2);
                    match log.append_as_follower(&mut req, NOW) {
                        Err(StorageError::NonContiguousAppend { expected, got }) => {
                            prop_assert_eq!((expected, got), (model.log_end, base));
                        }
                        other => prop_assert!(false, "{:?}", other),
                    }
                }
                Op::Truncate { pick, within } => {
                    // An offset inside a visible batch, or the log end.
                    let candidates: Vec<&(i64, i64, Vec<u8>)> =
                        model.batches.iter().filter(|b| b.1 >= model.log_start).collect();
                    let n = candidates.len() + 1;
                    let k = usize::from(pick) % n;
                    let offset = match candidates.get(k) {
                        Some(&&(first, last, _)) => {
                            let lo = first.max(model.log_start);
                            lo + i64::from(within) % (last - lo + 1)
                        }
                        None => model.log_end,
                    };
                    log.truncate_to(offset).unwrap();
                    if offset < model.log_end {
                        // The log ends where the last batch kept ends.
                        let cut = model.batches.iter().position(|b| b.1 >= offset).unwrap();
                        let new_end = match cut {
                            0 => model.first_base,
                            _ => model.batches[cut - 1].1 + 1,
                        };
                        if new_end < model.log_start {
                            let start = model.log_start;
                            model.empty_at(start);
                        } else {
                            model.batches.truncate(cut);
                            model.log_end = new_end;
                            model.epochs.retain(|&(_, s)| s < new_end);
                        }
                    }
                }
                Op::TruncateFully { delta } => {
                    let offset = (model.log_end + i64::from(delta)).max(0);
                    log.truncate_fully_and_start_at(offset).unwrap();
                    model.empty_at(offset);
                }
                Op::DeleteRecords { at } => {
                    let span = (model.log_end - model.log_start + 1) as u64;
                    let offset = model.log_start + (u64::from(at) % span) as i64;
                    prop_assert_eq!(log.delete_records_before(offset).unwrap(), offset.max(model.log_start));
                    if offset > model.log_start {
                        model.log_start = offset;
                        model.truncate_epochs_from_start(offset);
                    }
                }
                Op::Reopen { clean, trust } => {
                    let recovery_point = if clean {
                        log.close().unwrap();
                        i64::MAX
                    } else if trust {
                        let rp = log.recovery_point();
                        drop(log);
                        rp
                    } else {
                        drop(log);
                        0
                    };
                    log = Log::open(dir.path(), config(), recovery_point, NOW).unwrap();
                    // Kafka drops an entry starting at the log end on load (it covers no
                    // record); one appears when the log start reached the log end.
                    let end = model.log_end;
                    model.epochs.retain(|&(_, s)| s < end);
                }
            }
            check(&log, &model)?;
        }
    }
}
