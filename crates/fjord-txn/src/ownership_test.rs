//! Partition ownership: transactional ids follow the leadership of their
//! `__transaction_state` partition (load on election, drop on resignation).

use bytes::Bytes;

use super::*;

type Log = Vec<(Bytes, Option<Bytes>)>;

/// The state partition of `id` under the default configuration.
fn state_partition(id: &str) -> i32 {
    partition_for_transactional_id(id, TxnConfig::default().transaction_state_num_partitions)
}

/// An id whose state partition is not that of "t".
fn id_elsewhere() -> String {
    (0..)
        .map(|i| format!("other-{i}"))
        .find(|id| state_partition(id) != state_partition("t"))
        .expect("some id maps elsewhere")
}

/// Appends every Persist of `effects` to `log`, as the runtime writes them.
fn append(log: &mut Log, effects: &[Effect]) {
    for effect in effects {
        if let Effect::Persist { record, .. } = effect {
            log.push((record.encode_key(), record.encode_value()));
        }
    }
}

/// Like `durable`, recording the append in `log`.
fn logged(
    c: &mut TransactionCoordinator,
    log: &mut Log,
    effects: Vec<Effect>,
    now_ms: i64,
) -> Vec<Effect> {
    append(log, &effects);
    let after = durable(c, effects, now_ms);
    append(log, &after);
    after
}

fn unowned() -> TransactionCoordinator {
    TransactionCoordinator::without_partitions(
        TxnConfig::default(),
        Box::new(SequentialProducerIds::default()),
    )
}

#[test]
fn ids_of_partitions_not_owned_or_loading_are_refused() {
    let mut c = unowned();
    assert_eq!(
        c.init_producer_id(RequestId(1), init("t"), 0),
        vec![respond(
            1,
            Response::InitProducerId(InitProducerIdResponse::error(ErrorCode::NotCoordinator))
        )]
    );
    // Idempotent producers need no partition.
    assert!(matches!(
        c.init_producer_id(
            RequestId(2),
            InitProducerIdRequest {
                transactional_id: None,
                ..init("")
            },
            0
        )[..],
        [Effect::Respond { .. }]
    ));
    c.begin_load_partition(state_partition("t"));
    assert_eq!(
        c.end_txn(RequestId(3), end("t", 0, 0, true), 0),
        vec![respond(
            3,
            Response::EndTxn(ErrorCode::CoordinatorLoadInProgress)
        )]
    );
    assert_eq!(
        c.add_partitions_to_txn(RequestId(4), add("t", 0, 0, &[("t", 0)]), 0),
        vec![respond(
            4,
            Response::AddPartitionsToTxn(ErrorCode::CoordinatorLoadInProgress)
        )]
    );
    let other = id_elsewhere();
    let described = c.describe_transactions(&["t".into(), other]);
    assert_eq!(described[0].error, ErrorCode::CoordinatorLoadInProgress);
    assert_eq!(described[1].error, ErrorCode::NotCoordinator);
    c.load_partition(state_partition("t"), 3, Log::new(), 0)
        .unwrap();
    let e = c.init_producer_id(RequestId(5), init("t"), 0);
    assert_eq!(durable(&mut c, e, 0), vec![init_ok(5, 1, 0)]);
}

#[test]
fn a_loaded_partition_resends_markers_with_its_leader_epoch_and_rearms_timeouts() {
    // Written by a coordinator owning every partition: "t" committing, "o" ongoing, and an id
    // of another partition.
    let mut log = Log::new();
    let mut c = coordinator();
    let ongoing_id = (0..)
        .map(|i| format!("ongoing-{i}"))
        .find(|id| state_partition(id) == state_partition("t"))
        .unwrap();
    let other = id_elsewhere();
    for (request_id, id) in [(1, "t"), (2, ongoing_id.as_str()), (3, other.as_str())] {
        let e = c.init_producer_id(RequestId(request_id), init(id), 0);
        logged(&mut c, &mut log, e, 0);
    }
    let e = c.add_partitions_to_txn(RequestId(4), add("t", 0, 0, &[("t", 0)]), 100);
    logged(&mut c, &mut log, e, 100);
    let e = c.add_partitions_to_txn(RequestId(5), add(&ongoing_id, 1, 0, &[("t", 1)]), 150);
    logged(&mut c, &mut log, e, 150);
    let e = c.end_txn(RequestId(6), end("t", 0, 0, true), 200);
    logged(&mut c, &mut log, e, 200);

    let mut loaded = unowned();
    loaded.begin_load_partition(state_partition("t"));
    let effects = loaded
        .load_partition(state_partition("t"), 7, log, 300)
        .unwrap();
    assert_eq!(
        effects,
        vec![
            Effect::WriteMarkers {
                transactional_id: "t".into(),
                producer_id: 0,
                epoch: 0,
                commit: true,
                coordinator_epoch: 7,
                partitions: vec![TopicPartition::new("t", 0)],
            },
            Effect::ScheduleTimeout {
                at_ms: 150 + i64::from(TIMEOUT_MS) + 1
            },
        ]
    );
    assert!(loaded.transaction(&other).is_none());
    // The markers' completion is persisted as usual.
    assert!(matches!(
        loaded.markers_written("t", 0, 0, 310)[..],
        [Effect::Persist { .. }]
    ));
}

#[test]
fn a_resigned_partition_answers_not_coordinator_and_releases_what_waits() {
    let mut c = coordinator();
    ongoing(&mut c);
    let other = id_elsewhere();
    let e = c.init_producer_id(RequestId(3), init(&other), 0);
    durable(&mut c, e, 0);
    // "t" commits; while its markers are written the next add parks.
    let e = c.end_txn(RequestId(4), end("t", 0, 0, true), 200);
    durable(&mut c, e, 200);
    assert_eq!(
        c.add_partitions_to_txn(RequestId(5), add("t", 0, 0, &[("t", 1)]), 201),
        vec![]
    );
    // A second id of the same partition has an InitProducerId append in flight.
    let neighbour = (0..)
        .map(|i| format!("n-{i}"))
        .find(|id| state_partition(id) == state_partition("t"))
        .unwrap();
    let in_flight = c.init_producer_id(RequestId(6), init(&neighbour), 202);
    let Some(Effect::Persist { persist_id, .. }) = in_flight.first() else {
        panic!("{in_flight:?}")
    };

    let effects = c.unload_partition(state_partition("t"));
    assert_eq!(
        effects,
        vec![
            respond(
                6,
                Response::InitProducerId(InitProducerIdResponse::error(ErrorCode::NotCoordinator))
            ),
            respond(5, Response::AddPartitionsToTxn(ErrorCode::NotCoordinator)),
        ]
    );
    assert!(c.transaction("t").is_none());
    assert_eq!(c.next_deadline_ms(), None);
    // Late reports about the resigned ids change nothing.
    assert_eq!(c.complete_persist(*persist_id, Ok(()), 203), vec![]);
    assert_eq!(c.markers_written("t", 0, 0, 204), vec![]);
    assert_eq!(
        c.end_txn(RequestId(7), end("t", 0, 0, true), 205),
        vec![respond(7, Response::EndTxn(ErrorCode::NotCoordinator))]
    );
    // Ids of other partitions carry on.
    assert!(c.transaction(&other).is_some());
    assert_eq!(c.list_transactions(&[], &[]).len(), 1);
}

#[test]
fn a_reload_after_a_resign_gives_the_same_transactions() {
    let mut log = Log::new();
    let mut c = coordinator();
    let e = c.init_producer_id(RequestId(1), init("t"), 0);
    logged(&mut c, &mut log, e, 0);
    let e = c.add_partitions_to_txn(RequestId(2), add("t", 0, 0, &[("t", 0)]), 100);
    logged(&mut c, &mut log, e, 100);
    let before = c.describe_transactions(&["t".into()]);
    let p = state_partition("t");
    c.unload_partition(p);
    c.begin_load_partition(p);
    c.load_partition(p, 1, log, 150).unwrap();
    assert_eq!(c.describe_transactions(&["t".into()]), before);
    // The producer carries on at its epoch.
    assert_eq!(
        c.add_partitions_to_txn(RequestId(3), add("t", 0, 0, &[("t", 0)]), 160),
        vec![respond(3, Response::AddPartitionsToTxn(ErrorCode::None))]
    );
}
