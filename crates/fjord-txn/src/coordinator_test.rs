//! State-machine tests: each drives the coordinator through one behaviour of Kafka's
//! TransactionCoordinator and asserts the exact effects emitted.

use super::*;
use crate::records::TopicPartitions;

const TIMEOUT_MS: i32 = 60_000;

fn coordinator() -> TransactionCoordinator {
    TransactionCoordinator::new(
        TxnConfig::default(),
        Box::new(SequentialProducerIds::default()),
    )
}

fn init(id: &str) -> InitProducerIdRequest {
    InitProducerIdRequest {
        version: 4,
        transactional_id: Some(id.into()),
        transaction_timeout_ms: TIMEOUT_MS,
        producer_id: -1,
        producer_epoch: -1,
    }
}

fn add(
    id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(&str, i32)],
) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest {
        version: 3,
        transactional_id: id.into(),
        producer_id,
        producer_epoch: epoch,
        partitions: partitions
            .iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect(),
    }
}

fn end(id: &str, producer_id: i64, epoch: i16, commit: bool) -> EndTxnRequest {
    EndTxnRequest {
        version: 3,
        transactional_id: id.into(),
        producer_id,
        producer_epoch: epoch,
        commit,
    }
}

fn respond(request_id: u64, response: Response) -> Effect {
    Effect::Respond {
        request_id: RequestId(request_id),
        response,
    }
}

fn init_ok(request_id: u64, producer_id: i64, producer_epoch: i16) -> Effect {
    respond(
        request_id,
        Response::InitProducerId(InitProducerIdResponse {
            error: ErrorCode::None,
            producer_id,
            producer_epoch,
        }),
    )
}

struct Value {
    producer_id: i64,
    epoch: i16,
    state: TransactionState,
    partitions: Option<Vec<(&'static str, Vec<i32>)>>,
    last_update_ms: i64,
    start_ms: i64,
}

fn persist(persist_id: u64, id: &str, v: Value) -> Effect {
    Effect::Persist {
        persist_id: PersistId(persist_id),
        transactional_id: id.into(),
        record: TransactionLogRecord {
            transactional_id: id.into(),
            value: Some(TransactionLogValue {
                producer_id: v.producer_id,
                producer_epoch: v.epoch,
                transaction_timeout_ms: TIMEOUT_MS,
                status: v.state,
                partitions: v.partitions.map(|p| {
                    p.into_iter()
                        .map(|(topic, partition_ids)| TopicPartitions {
                            topic: topic.into(),
                            partition_ids,
                        })
                        .collect()
                }),
                last_update_timestamp_ms: v.last_update_ms,
                start_timestamp_ms: v.start_ms,
            }),
        },
    }
}

/// Runs one call that persists and completes it, returning the completion's effects.
fn durable(c: &mut TransactionCoordinator, effects: Vec<Effect>, now_ms: i64) -> Vec<Effect> {
    let Some(Effect::Persist { persist_id, .. }) = effects.first() else {
        panic!("expected a persist first: {effects:?}");
    };
    c.complete_persist(*persist_id, Ok(()), now_ms)
}

/// "t" is initialised (pid 0, epoch 0) and has partition t-0 in an Ongoing transaction
/// started at 100. Persist ids 0 and 1 are used.
fn ongoing(c: &mut TransactionCoordinator) {
    let e = c.init_producer_id(RequestId(1), init("t"), 0);
    durable(c, e, 0);
    let e = c.add_partitions_to_txn(RequestId(2), add("t", 0, 0, &[("t", 0)]), 100);
    durable(c, e, 100);
}

#[test]
fn init_assigns_new_producer_id_at_epoch_0() {
    let mut c = coordinator();
    let effects = c.init_producer_id(RequestId(1), init("t"), 10);
    assert_eq!(
        effects,
        vec![persist(
            0,
            "t",
            Value {
                producer_id: 0,
                epoch: 0,
                state: TransactionState::Empty,
                partitions: None,
                last_update_ms: 10,
                start_ms: -1,
            }
        )]
    );
    assert_eq!(
        c.complete_persist(PersistId(0), Ok(()), 10),
        vec![init_ok(1, 0, 0)]
    );
}

#[test]
fn idempotent_producer_gets_an_id_without_state() {
    let mut c = coordinator();
    let request = InitProducerIdRequest {
        transactional_id: None,
        ..init("")
    };
    assert_eq!(
        c.init_producer_id(RequestId(1), request, 0),
        vec![init_ok(1, 0, 0)]
    );
    assert!(c.list_transactions(&[], &[]).is_empty());
}

#[test]
fn init_rejects_timeout_above_max() {
    let mut c = coordinator();
    let request = InitProducerIdRequest {
        transaction_timeout_ms: 900_001,
        ..init("t")
    };
    assert_eq!(
        c.init_producer_id(RequestId(1), request, 0),
        vec![respond(
            1,
            Response::InitProducerId(InitProducerIdResponse::error(
                ErrorCode::InvalidTransactionTimeout
            ))
        )]
    );
}

#[test]
fn reinit_bumps_epoch_and_fences_old_producer() {
    let mut c = coordinator();
    let e = c.init_producer_id(RequestId(1), init("t"), 0);
    durable(&mut c, e, 0);
    let e = c.init_producer_id(RequestId(2), init("t"), 5);
    assert_eq!(durable(&mut c, e, 5), vec![init_ok(2, 0, 1)]);
    // The old instance (epoch 0) is fenced.
    assert_eq!(
        c.add_partitions_to_txn(RequestId(3), add("t", 0, 0, &[("t", 0)]), 6),
        vec![respond(
            3,
            Response::AddPartitionsToTxn(ErrorCode::ProducerFenced)
        )]
    );
}

#[test]
fn reinit_during_ongoing_transaction_aborts_it_first() {
    let mut c = coordinator();
    ongoing(&mut c);
    let effects = c.init_producer_id(RequestId(3), init("t"), 200);
    assert_eq!(
        effects,
        vec![persist(
            2,
            "t",
            Value {
                producer_id: 0,
                epoch: 1,
                state: TransactionState::PrepareAbort,
                partitions: Some(vec![("t", vec![0])]),
                last_update_ms: 200,
                start_ms: 100,
            }
        )]
    );
    // The old producer is fenced at once, before the abort is durable.
    assert_eq!(
        c.end_txn(RequestId(4), end("t", 0, 0, true), 201),
        vec![respond(4, Response::EndTxn(ErrorCode::ProducerFenced))]
    );
    assert_eq!(
        c.complete_persist(PersistId(2), Ok(()), 202),
        vec![
            respond(
                3,
                Response::InitProducerId(InitProducerIdResponse::error(
                    ErrorCode::ConcurrentTransactions
                ))
            ),
            Effect::WriteMarkers {
                coordinator_epoch: 0,
                transactional_id: "t".into(),
                producer_id: 0,
                epoch: 1,
                commit: false,
                partitions: vec![TopicPartition::new("t", 0)],
            },
        ]
    );
    // The retry waits for the markers, then bumps again.
    assert_eq!(
        c.init_producer_id(RequestId(5), init("t"), 203),
        vec![respond(
            5,
            Response::InitProducerId(InitProducerIdResponse::error(
                ErrorCode::ConcurrentTransactions
            ))
        )]
    );
    let e = c.markers_written("t", 0, 1, 204);
    durable(&mut c, e, 204);
    let e = c.init_producer_id(RequestId(6), init("t"), 205);
    assert_eq!(durable(&mut c, e, 205), vec![init_ok(6, 0, 2)]);
}

#[test]
fn add_partitions_with_stale_epoch_is_fenced() {
    let mut c = coordinator();
    let e = c.init_producer_id(RequestId(1), init("t"), 0);
    durable(&mut c, e, 0);
    let e = c.init_producer_id(RequestId(2), init("t"), 0);
    durable(&mut c, e, 0);
    assert_eq!(
        c.add_partitions_to_txn(RequestId(3), add("t", 0, 0, &[("t", 0)]), 1),
        vec![respond(
            3,
            Response::AddPartitionsToTxn(ErrorCode::ProducerFenced)
        )]
    );
    // Clients before KIP-588 (v0/v1) get INVALID_PRODUCER_EPOCH.
    let old = AddPartitionsToTxnRequest {
        version: 1,
        ..add("t", 0, 0, &[("t", 0)])
    };
    assert_eq!(
        c.add_partitions_to_txn(RequestId(4), old, 1),
        vec![respond(
            4,
            Response::AddPartitionsToTxn(ErrorCode::InvalidProducerEpoch)
        )]
    );
    assert_eq!(
        c.add_partitions_to_txn(RequestId(5), add("t", 7, 1, &[("t", 0)]), 1),
        vec![respond(
            5,
            Response::AddPartitionsToTxn(ErrorCode::InvalidProducerIdMapping)
        )]
    );
}

#[test]
fn add_partitions_while_completing_waits_for_the_markers_then_starts_the_next_transaction() {
    let mut c = coordinator();
    ongoing(&mut c);
    let e = c.end_txn(RequestId(3), end("t", 0, 0, true), 200);
    durable(&mut c, e, 200);
    // The next transaction's first add arrives while the markers are written: it waits.
    assert_eq!(
        c.add_partitions_to_txn(RequestId(4), add("t", 0, 0, &[("t", 1)]), 201),
        vec![]
    );
    // A stale epoch is still refused at once.
    assert_eq!(
        c.add_partitions_to_txn(RequestId(5), add("t", 0, 7, &[("t", 1)]), 201),
        vec![respond(
            5,
            Response::AddPartitionsToTxn(ErrorCode::ProducerFenced)
        )]
    );
    let e = c.markers_written("t", 0, 0, 210);
    assert!(matches!(e[..], [Effect::Persist { .. }]), "{e:?}");
    // CompleteCommit is durable: the parked add runs and starts the new transaction.
    assert_eq!(
        c.complete_persist(PersistId(3), Ok(()), 211),
        vec![persist(
            4,
            "t",
            Value {
                producer_id: 0,
                epoch: 0,
                state: TransactionState::Ongoing,
                partitions: Some(vec![("t", vec![1])]),
                last_update_ms: 211,
                start_ms: 211,
            }
        )]
    );
    let answered = c.complete_persist(PersistId(4), Ok(()), 212);
    assert_eq!(
        answered[0],
        respond(4, Response::AddPartitionsToTxn(ErrorCode::None))
    );
}

#[test]
fn parked_adds_are_bounded() {
    let mut c = coordinator();
    ongoing(&mut c);
    let e = c.end_txn(RequestId(3), end("t", 0, 0, true), 200);
    durable(&mut c, e, 200);
    for i in 0..16 {
        assert_eq!(
            c.add_partitions_to_txn(RequestId(10 + i), add("t", 0, 0, &[("t", 1)]), 201),
            vec![]
        );
    }
    assert_eq!(
        c.add_partitions_to_txn(RequestId(99), add("t", 0, 0, &[("t", 1)]), 201),
        vec![respond(
            99,
            Response::AddPartitionsToTxn(ErrorCode::ConcurrentTransactions)
        )]
    );
}

#[test]
fn add_known_partition_answers_without_persisting() {
    let mut c = coordinator();
    ongoing(&mut c);
    assert_eq!(
        c.add_partitions_to_txn(RequestId(3), add("t", 0, 0, &[("t", 0)]), 150),
        vec![respond(3, Response::AddPartitionsToTxn(ErrorCode::None))]
    );
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut c = coordinator();
    ongoing(&mut c);
    let request = AddOffsetsToTxnRequest {
        version: 3,
        transactional_id: "t".into(),
        producer_id: 0,
        producer_epoch: 0,
        group_id: "abc".into(),
    };
    let effects = c.add_offsets_to_txn(RequestId(3), request, 150);
    // "abc".hashCode = 96354; 96354 % 50 = 4.
    assert_eq!(
        effects,
        vec![persist(
            2,
            "t",
            Value {
                producer_id: 0,
                epoch: 0,
                state: TransactionState::Ongoing,
                partitions: Some(vec![("__consumer_offsets", vec![4]), ("t", vec![0])]),
                last_update_ms: 150,
                start_ms: 100,
            }
        )]
    );
    assert_eq!(
        c.complete_persist(PersistId(2), Ok(()), 150),
        vec![respond(3, Response::AddOffsetsToTxn(ErrorCode::None))]
    );
}

#[test]
fn first_add_persists_ongoing_and_arms_the_timeout() {
    let mut c = coordinator();
    let e = c.init_producer_id(RequestId(1), init("t"), 0);
    durable(&mut c, e, 0);
    let effects = c.add_partitions_to_txn(RequestId(2), add("t", 0, 0, &[("t", 1), ("t", 0)]), 100);
    assert_eq!(
        effects,
        vec![persist(
            1,
            "t",
            Value {
                producer_id: 0,
                epoch: 0,
                state: TransactionState::Ongoing,
                partitions: Some(vec![("t", vec![0, 1])]),
                last_update_ms: 100,
                start_ms: 100,
            }
        )]
    );
    assert_eq!(
        c.complete_persist(PersistId(1), Ok(()), 100),
        vec![
            respond(2, Response::AddPartitionsToTxn(ErrorCode::None)),
            Effect::ScheduleTimeout {
                at_ms: 100 + 60_000 + 1
            },
        ]
    );
}

#[test]
fn commit_writes_markers_then_completes() {
    let mut c = coordinator();
    ongoing(&mut c);
    let effects = c.end_txn(RequestId(3), end("t", 0, 0, true), 200);
    assert_eq!(
        effects,
        vec![persist(
            2,
            "t",
            Value {
                producer_id: 0,
                epoch: 0,
                state: TransactionState::PrepareCommit,
                partitions: Some(vec![("t", vec![0])]),
                last_update_ms: 200,
                start_ms: 100,
            }
        )]
    );
    assert_eq!(
        c.complete_persist(PersistId(2), Ok(()), 200),
        vec![
            respond(3, Response::EndTxn(ErrorCode::None)),
            Effect::WriteMarkers {
                coordinator_epoch: 0,
                transactional_id: "t".into(),
                producer_id: 0,
                epoch: 0,
                commit: true,
                partitions: vec![TopicPartition::new("t", 0)],
            },
        ]
    );
    // A retried EndTxn while markers are written must wait.
    assert_eq!(
        c.end_txn(RequestId(4), end("t", 0, 0, true), 201),
        vec![respond(
            4,
            Response::EndTxn(ErrorCode::ConcurrentTransactions)
        )]
    );
    assert_eq!(
        c.markers_written("t", 0, 0, 210),
        vec![persist(
            3,
            "t",
            Value {
                producer_id: 0,
                epoch: 0,
                state: TransactionState::CompleteCommit,
                partitions: Some(vec![]),
                last_update_ms: 210,
                start_ms: 100,
            }
        )]
    );
    assert_eq!(c.complete_persist(PersistId(3), Ok(()), 210), vec![]);
    assert_eq!(
        c.transaction("t").unwrap().state,
        TransactionState::CompleteCommit
    );
    // Retrying the same EndTxn now succeeds; the opposite one is invalid.
    assert_eq!(
        c.end_txn(RequestId(5), end("t", 0, 0, true), 211),
        vec![respond(5, Response::EndTxn(ErrorCode::None))]
    );
    assert_eq!(
        c.end_txn(RequestId(6), end("t", 0, 0, false), 211),
        vec![respond(6, Response::EndTxn(ErrorCode::InvalidTxnState))]
    );
}

#[test]
fn end_txn_without_transaction_is_invalid_state() {
    let mut c = coordinator();
    let e = c.init_producer_id(RequestId(1), init("t"), 0);
    durable(&mut c, e, 0);
    assert_eq!(
        c.end_txn(RequestId(2), end("t", 0, 0, true), 1),
        vec![respond(2, Response::EndTxn(ErrorCode::InvalidTxnState))]
    );
}

#[test]
fn failed_append_answers_translated_error_and_keeps_state() {
    let mut c = coordinator();
    ongoing(&mut c);
    c.end_txn(RequestId(3), end("t", 0, 0, true), 200);
    // NOT_LEADER_OR_FOLLOWER becomes NOT_COORDINATOR.
    assert_eq!(
        c.complete_persist(PersistId(2), Err(6), 200),
        vec![respond(3, Response::EndTxn(ErrorCode::NotCoordinator))]
    );
    assert_eq!(c.transaction("t").unwrap().state, TransactionState::Ongoing);
}

#[test]
fn timeout_aborts_ongoing_transaction() {
    let mut c = coordinator();
    ongoing(&mut c);
    let deadline = 100 + i64::from(TIMEOUT_MS) + 1;
    assert_eq!(c.tick(deadline - 1), vec![]);
    let effects = c.tick(deadline);
    assert_eq!(
        effects,
        vec![persist(
            2,
            "t",
            Value {
                producer_id: 0,
                epoch: 1,
                state: TransactionState::PrepareAbort,
                partitions: Some(vec![("t", vec![0])]),
                last_update_ms: deadline,
                start_ms: 100,
            }
        )]
    );
    assert_eq!(
        c.complete_persist(PersistId(2), Ok(()), deadline),
        vec![Effect::WriteMarkers {
            coordinator_epoch: 0,
            transactional_id: "t".into(),
            producer_id: 0,
            epoch: 1,
            commit: false,
            partitions: vec![TopicPartition::new("t", 0)],
        }]
    );
    // The stuck producer is fenced.
    assert_eq!(
        c.end_txn(RequestId(3), end("t", 0, 0, true), deadline + 1),
        vec![respond(3, Response::EndTxn(ErrorCode::ProducerFenced))]
    );
}

#[test]
fn failed_fence_does_not_bump_the_epoch_twice() {
    let mut c = coordinator();
    ongoing(&mut c);
    let deadline = 100 + i64::from(TIMEOUT_MS) + 1;
    c.tick(deadline);
    // The abort append fails: the timeout is re-armed (already due), the epoch stays at 1.
    assert_eq!(
        c.complete_persist(PersistId(2), Err(7), deadline),
        vec![Effect::ScheduleTimeout { at_ms: deadline }]
    );
    let effects = c.tick(deadline + 1);
    let [Effect::Persist { record, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(record.value.as_ref().unwrap().producer_epoch, 1);
}

#[test]
fn load_rebuilds_state() {
    let value = |status, partitions: Option<Vec<TopicPartitions>>| TransactionLogValue {
        producer_id: 7,
        producer_epoch: 3,
        transaction_timeout_ms: TIMEOUT_MS,
        status,
        partitions,
        last_update_timestamp_ms: 50,
        start_timestamp_ms: 40,
    };
    let t0 = vec![TopicPartitions {
        topic: "t".into(),
        partition_ids: vec![0],
    }];
    let record = |id: &str, v: Option<TransactionLogValue>| {
        let r = TransactionLogRecord {
            transactional_id: id.into(),
            value: v,
        };
        (r.encode_key(), r.encode_value())
    };
    let records = vec![
        record(
            "a",
            Some(value(TransactionState::Ongoing, Some(t0.clone()))),
        ),
        record(
            "b",
            Some(value(TransactionState::PrepareCommit, Some(t0.clone()))),
        ),
        record("c", Some(value(TransactionState::Empty, None))),
        record("c", None),
        record(
            "d",
            Some(value(TransactionState::Ongoing, Some(t0.clone()))),
        ),
        record(
            "d",
            Some(value(TransactionState::CompleteAbort, Some(vec![]))),
        ),
    ];
    let mut c = coordinator();
    let effects = c.load(records, 1_000).unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::WriteMarkers {
                coordinator_epoch: 0,
                transactional_id: "b".into(),
                producer_id: 7,
                epoch: 3,
                commit: true,
                partitions: vec![TopicPartition::new("t", 0)],
            },
            Effect::ScheduleTimeout {
                at_ms: 40 + 60_000 + 1
            },
        ]
    );
    let listed = c.list_transactions(&[], &[]);
    let names: Vec<_> = listed
        .iter()
        .map(|l| (l.transactional_id.as_str(), l.state))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a", "Ongoing"),
            ("b", "PrepareCommit"),
            ("d", "CompleteAbort")
        ]
    );
    // The loaded epoch is enforced.
    assert_eq!(
        c.add_partitions_to_txn(RequestId(1), add("a", 7, 3, &[("t", 0)]), 1_000),
        vec![respond(1, Response::AddPartitionsToTxn(ErrorCode::None))]
    );
}

#[test]
fn describe_reports_state_and_unknown_ids() {
    let mut c = coordinator();
    ongoing(&mut c);
    let described = c.describe_transactions(&["t".into(), "x".into()]);
    assert_eq!(described[0].state, "Ongoing");
    assert_eq!(described[0].transaction_start_time_ms, 100);
    assert_eq!(described[0].partitions, vec![TopicPartition::new("t", 0)]);
    assert_eq!(described[1].error, ErrorCode::TransactionalIdNotFound);
    assert_eq!(
        c.list_transactions(&["Empty".into()], &[]),
        Vec::<ListedTransaction>::new()
    );
    assert_eq!(c.list_transactions(&[], &[0]).len(), 1);
}

#[test]
fn idle_ids_expire_with_a_tombstone_and_open_transactions_are_kept() {
    let mut c = coordinator();
    ongoing(&mut c);
    let e = c.init_producer_id(RequestId(3), init("idle"), 0);
    durable(&mut c, e, 0);
    // Only "idle" qualifies: "t" has a transaction open.
    let effects = c.expire_transactional_ids(10_000, 5_000);
    assert_eq!(
        effects,
        vec![Effect::Persist {
            persist_id: PersistId(3),
            transactional_id: "idle".into(),
            record: TransactionLogRecord {
                transactional_id: "idle".into(),
                value: None,
            },
        }]
    );
    // While the tombstone is in flight the id is busy; once durable it is gone.
    assert!(c.transaction("idle").is_some());
    assert_eq!(c.complete_persist(PersistId(3), Ok(()), 10_000), vec![]);
    assert!(c.transaction("idle").is_none());
    assert!(c.transaction("t").is_some());
    // Not idle long enough: nothing happens.
    assert_eq!(c.expire_transactional_ids(10_000, 1_000_000), vec![]);
    // A new producer with the expired id starts afresh with a new producer id.
    let e = c.init_producer_id(RequestId(4), init("idle"), 20_000);
    assert_eq!(durable(&mut c, e, 20_000), vec![init_ok(4, 2, 0)]);
}

#[test]
fn a_failed_tombstone_keeps_the_id() {
    let mut c = coordinator();
    let e = c.init_producer_id(RequestId(1), init("idle"), 0);
    durable(&mut c, e, 0);
    c.expire_transactional_ids(10_000, 5_000);
    c.complete_persist(PersistId(1), Err(7), 10_000);
    assert!(c.transaction("idle").is_some());
}

#[path = "ownership_test.rs"]
mod ownership;
