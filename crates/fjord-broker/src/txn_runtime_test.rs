//! A cluster-mode transaction coordinator following a fake applied image over a real log.

use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
use fjord_txn::api::{AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest};
use tokio::sync::watch;

use super::*;
use crate::group_runtime::tests::{image, open_logs, until};
use crate::group_runtime::GroupRuntimeConfig;

const NODE: i32 = 1;
const OTHER: i32 = 2;
const PARTITIONS: i32 = 4;

fn runtime_config() -> TxnRuntimeConfig {
    TxnRuntimeConfig {
        coordinator: TxnConfig {
            transaction_state_num_partitions: PARTITIONS,
            ..TxnConfig::default()
        },
        transactional_id_expiration_ms: 7 * 24 * 3_600_000,
        cleanup_interval_ms: 3_600_000,
    }
}

fn groups(logs: &Arc<LogManager>) -> GroupCoordinatorHandle {
    crate::group_runtime::start(
        Arc::downgrade(logs),
        GroupRuntimeConfig {
            group: fjord_group::GroupConfig::default(),
            offsets_topic_num_partitions: 1,
        },
        None,
    )
    .unwrap()
}

/// "t" is initialised and has data-0 in a transaction, written by a single-broker
/// coordinator; with `commit`, its EndTxn(commit) is durable too but the markers cannot be
/// written (data-0 knows the producer at a newer epoch). Returns the producer id.
async fn write_transaction(logs: &Arc<LogManager>, dir: &std::path::Path, commit: bool) -> i64 {
    ensure_transaction_state_topic(logs, PARTITIONS).unwrap();
    let data = logs
        .create_internal_topic("data", 1, BTreeMap::new())
        .unwrap();
    let producer_ids = Arc::new(ProducerIdManager::open(dir).unwrap());
    let writer = start(
        Arc::downgrade(logs),
        runtime_config(),
        producer_ids,
        groups(logs),
        None,
        None,
    )
    .unwrap();
    let Response::InitProducerId(init) = writer
        .request(TxnRequest::InitProducerId(InitProducerIdRequest {
            version: 4,
            transactional_id: Some("t".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    let producer_id = init.producer_id;
    let added = writer
        .request(TxnRequest::AddPartitions(AddPartitionsToTxnRequest {
            version: 3,
            transactional_id: "t".into(),
            producer_id,
            producer_epoch: 0,
            partitions: vec![TopicPartition::new("data", 0)],
        }))
        .await
        .unwrap();
    assert_eq!(added, Response::AddPartitionsToTxn(ErrorCode::None));
    if commit {
        // data-0 has seen the producer at epoch 5: markers of epoch 0 are refused.
        let spec = BatchSpec {
            producer_id,
            producer_epoch: 5,
            base_sequence: 0,
            ..BatchSpec::default()
        };
        let record = RecordSpec {
            timestamp: 1,
            key: None,
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
        };
        let mut batch = build_batch(&spec, &[record]);
        data.partition(0).unwrap().append(&mut batch, 1).unwrap();
        let ended = writer
            .request(TxnRequest::EndTxn(EndTxnRequest {
                version: 3,
                transactional_id: "t".into(),
                producer_id,
                producer_epoch: 0,
                commit: true,
            }))
            .await
            .unwrap();
        assert_eq!(ended, Response::EndTxn(ErrorCode::None));
    }
    producer_id
}

#[tokio::test]
async fn transactional_ids_follow_the_leadership_of_their_state_partition() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open_logs(dir.path());
    write_transaction(&logs, dir.path(), false).await;
    let p = partition_for_transactional_id("t", PARTITIONS);
    let led = |here: bool, epoch: i32| {
        image(TRANSACTION_STATE_TOPIC, move |q| {
            (if q == p && here { NODE } else { OTHER }, epoch)
        })
    };
    let (applied, rx) = watch::channel(led(false, 0));
    let feed = LeadershipFeed {
        node_id: NODE,
        applied: rx,
    };
    let producer_ids = Arc::new(ProducerIdManager::open(dir.path()).unwrap());
    let handle = start(
        Arc::downgrade(&logs),
        runtime_config(),
        producer_ids,
        groups(&logs),
        None,
        Some(feed),
    )
    .unwrap();
    let described = handle.describe(vec!["t".into()]).await.unwrap();
    assert_eq!(described[0].error, ErrorCode::NotCoordinator);

    applied.send_replace(led(true, 4));
    until("the partition to load", || {
        handle.loaded().get(p) == Some(PartitionLoad::Loaded { leader_epoch: 4 })
    })
    .await;
    let described = handle.describe(vec!["t".into()]).await.unwrap();
    assert_eq!(
        (described[0].error, described[0].state),
        (ErrorCode::None, "Ongoing")
    );

    applied.send_replace(led(false, 5));
    until("the partition to unload", || {
        handle.loaded().get(p).is_none()
    })
    .await;
    let ended = handle
        .request(TxnRequest::EndTxn(EndTxnRequest {
            version: 3,
            transactional_id: "t".into(),
            producer_id: described[0].producer_id,
            producer_epoch: 0,
            commit: true,
        }))
        .await
        .unwrap();
    assert_eq!(ended, Response::EndTxn(ErrorCode::NotCoordinator));
    assert!(handle.list(vec![], vec![]).await.unwrap().is_empty());
}

#[tokio::test]
async fn markers_are_resent_on_election_and_stop_on_resignation() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open_logs(dir.path());
    let producer_id = write_transaction(&logs, dir.path(), true).await;
    let p = partition_for_transactional_id("t", PARTITIONS);
    let (inbox, mut rx) = mpsc::channel(16);
    let config = runtime_config();
    let producer_ids = Arc::new(ProducerIdManager::open(dir.path()).unwrap());
    let mut runtime = Runtime {
        coordinator: TransactionCoordinator::without_partitions(
            config.coordinator.clone(),
            Box::new(BrokerProducerIds(producer_ids)),
        ),
        logs: Arc::downgrade(&logs),
        config: config.coordinator.clone(),
        expiration: config,
        groups: groups(&logs),
        cluster: None,
        inbox: inbox.downgrade(),
        pending: HashMap::new(),
        next_request: 0,
        timer: None,
        loaded: LoadedPartitions::default(),
        marker_tasks: HashMap::new(),
    };
    runtime.follow(&BTreeMap::from([(p, 4)]));
    let loaded = rx.recv().await.unwrap();
    runtime.handle(loaded);
    assert_eq!(
        runtime.coordinator.transaction("t").map(|m| m.state),
        Some(fjord_txn::TransactionState::PrepareCommit)
    );
    let task = runtime.marker_tasks.get("t").expect("markers re-sent");
    assert_eq!((task.producer_id, task.epoch), (producer_id, 0));
    let abort = task.task.clone();
    assert!(!abort.is_finished());

    runtime.follow(&BTreeMap::new());
    assert!(runtime.marker_tasks.is_empty());
    until("the marker task to stop", || abort.is_finished()).await;
    assert!(runtime.coordinator.transaction("t").is_none());
    assert_eq!(runtime.loaded.get(p), None);
}
