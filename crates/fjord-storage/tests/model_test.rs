//! Property test: random appends, reopens (clean and crash), DeleteRecords and reads are
//! checked against a simple in-memory model of the log.

use fjord_protocol::batch::{build_batch, BatchIter, BatchSpec, RecordSpec};
use fjord_storage::{Log, LogConfig};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(usize, usize)>),
    Read { at: u16, max_bytes: u16 },
    Reopen { clean: bool },
    DeleteRecords { at: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => proptest::collection::vec((1usize..5, 0usize..150), 1..4).prop_map(Op::Append),
        5 => (any::<u16>(), any::<u16>()).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0, NOW).unwrap();
        // Model: every batch as stored (first offset, last offset, bytes).
        let mut model: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        let mut log_start = 0i64;
        for op in ops {
            match op {
                Op::Append(batches) => {
                    let mut req = Vec::new();
                    for (n, len) in &batches {
                        let recs: Vec<RecordSpec> = (0..*n)
                            .map(|i| RecordSpec { timestamp: NOW + i as i64, value: Some(vec![7; *len]), ..Default::default() })
                            .collect();
                        req.extend_from_slice(&build_batch(&BatchSpec::default(), &recs));
                    }
                    let info = log.append(&mut req, NOW).unwrap();
                    prop_assert_eq!(info.first_offset, model.last().map_or(0, |b| b.1 + 1));
                    for r in BatchIter::new(&req) {
                        let (h, bytes) = r.unwrap();
                        model.push((h.base_offset, h.last_offset(), bytes.to_vec()));
                    }
                }
                Op::Read { at, max_bytes } => {
                    let leo = log.log_end_offset();
                    let span = (leo - log_start + 1) as u64;
                    let offset = log_start + (u64::from(at) % span) as i64;
                    let max_bytes = usize::from(max_bytes) % 3000;
                    let plan = log.read(offset, max_bytes, i64::MAX).unwrap();
                    let mut out = Vec::new();
                    plan.read_into(&mut out).unwrap();
                    if offset == leo {
                        prop_assert!(out.is_empty());
                        continue;
                    }
                    let k = model.iter().position(|b| b.1 >= offset).unwrap();
                    let mut expected = Vec::new();
                    let mut m = 0;
                    while expected.len() < out.len() {
                        expected.extend_from_slice(&model[k + m].2);
                        m += 1;
                    }
                    prop_assert_eq!(&out, &expected);
                    prop_assert!(m >= 1);
                    prop_assert!(m == 1 || out.len() <= max_bytes);
                    prop_assert_eq!(plan.first_offset(), model[k].0);
                    prop_assert_eq!(plan.next_offset(), model[k + m - 1].1 + 1);
                }
                Op::Reopen { clean } => {
                    let rp = if clean {
                        let rp = { log.flush().unwrap(); log.recovery_point() };
                        log.close().unwrap();
                        rp
                    } else {
                        drop(log);
                        0
                    };
                    log = Log::open(dir.path(), config(), rp, NOW).unwrap();
                }
                Op::DeleteRecords { at } => {
                    let leo = log.log_end_offset();
                    let target = (u64::from(at) % (leo as u64 + 1)) as i64;
                    log_start = log_start.max(target);
                    prop_assert_eq!(log.delete_records_before(target).unwrap(), log_start);
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.last().map_or(0, |b| b.1 + 1));
            prop_assert_eq!(log.log_start_offset(), log_start);
        }
    }
}
