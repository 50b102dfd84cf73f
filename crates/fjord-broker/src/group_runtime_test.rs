//! A cluster-mode group coordinator following a fake applied image over a real log.

use std::path::Path;
use std::sync::Arc;

use fjord_controller::record::{MetadataRecord, PartitionRecord, TopicRecord};
use fjord_controller::MetadataImage;
use fjord_group::api::{
    HeartbeatRequest, OffsetCommitPartition, OffsetCommitTopic, TopicPartitions,
};
use fjord_group::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

use super::*;
use crate::config::BrokerConfig;
use crate::flusher::Flusher;

const NODE: i32 = 1;
const OTHER: i32 = 2;
const PARTITIONS: i32 = 4;

pub(crate) fn open_logs(dir: &Path) -> Arc<LogManager> {
    let config = BrokerConfig {
        log_dir: dir.to_path_buf(),
        ..BrokerConfig::default()
    };
    Arc::new(LogManager::open(Arc::new(config), Flusher::start()).unwrap())
}

fn runtime_config() -> GroupRuntimeConfig {
    GroupRuntimeConfig {
        group: GroupConfig {
            offsets_topic_num_partitions: PARTITIONS,
            group_initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
        offsets_topic_num_partitions: PARTITIONS,
    }
}

/// An image holding `topic` with `PARTITIONS` partitions whose (leader, leader epoch) come
/// from `leader_of`.
pub(crate) fn image(topic: &str, leader_of: impl Fn(i32) -> (i32, i32)) -> Arc<MetadataImage> {
    let mut image = MetadataImage::default();
    let partitions = (0..PARTITIONS)
        .map(|p| {
            let (leader, leader_epoch) = leader_of(p);
            PartitionRecord {
                partition: p,
                replicas: vec![NODE, OTHER],
                isr: vec![NODE, OTHER],
                leader,
                leader_epoch,
                partition_epoch: leader_epoch,
            }
        })
        .collect();
    image
        .apply(&MetadataRecord::CreateTopic(TopicRecord {
            name: topic.into(),
            topic_id: Uuid::from_u128(7),
            partitions,
            configs: BTreeMap::new(),
        }))
        .unwrap();
    Arc::new(image)
}

/// Polls `ready` until it holds (bounded).
pub(crate) async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn commit(group_id: &str, offset: i64) -> GroupRequest {
    GroupRequest::Commit(OffsetCommitRequest {
        group_id: group_id.into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![OffsetCommitTopic {
            name: "t".into(),
            partitions: vec![OffsetCommitPartition {
                partition_index: 0,
                committed_offset: offset,
                committed_leader_epoch: -1,
                commit_timestamp_ms: -1,
                committed_metadata: None,
            }],
        }],
    })
}

fn txn_commit(group_id: &str, offset: i64) -> GroupRequest {
    let GroupRequest::Commit(plain) = commit(group_id, offset) else {
        unreachable!()
    };
    GroupRequest::TxnCommit(TxnOffsetCommitRequest {
        version: 3,
        transactional_id: "tx".into(),
        group_id: group_id.into(),
        producer_id: 1_000,
        producer_epoch: 0,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: plain.topics,
    })
}

async fn committed(handle: &GroupCoordinatorHandle, request: GroupRequest) {
    let response = handle.request(request).await.unwrap();
    let (Response::OffsetCommit(r) | Response::TxnOffsetCommit(r)) = &response else {
        panic!("{response:?}")
    };
    assert_eq!(r.topics[0].partitions[0].error, ErrorCode::None);
}

/// (error, committed offset of t-0) of `group_id`.
async fn fetch(
    handle: &GroupCoordinatorHandle,
    group_id: &str,
    require_stable: bool,
) -> (ErrorCode, Option<(i64, ErrorCode)>) {
    let response = handle
        .fetch_offsets(OffsetFetchRequest {
            group_id: group_id.into(),
            topics: Some(vec![TopicPartitions {
                name: "t".into(),
                partition_indexes: vec![0],
            }]),
            require_stable,
        })
        .await
        .unwrap();
    let offset = response
        .topics
        .first()
        .map(|t| (t.partitions[0].committed_offset, t.partitions[0].error));
    (response.error, offset)
}

#[tokio::test]
async fn groups_follow_the_leadership_of_their_offsets_partition() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open_logs(dir.path());
    ensure_offsets_topic(&logs, PARTITIONS).unwrap();
    let p = partition_for_group("g", PARTITIONS);
    // Offsets written while another coordinator led the partition: a plain commit and a
    // transaction's commit with no marker yet.
    let writer = start(Arc::downgrade(&logs), runtime_config(), None).unwrap();
    committed(&writer, commit("g", 42)).await;
    committed(&writer, txn_commit("g", 50)).await;
    drop(writer);

    let led = |here: bool, epoch: i32| {
        image(OFFSETS_TOPIC, move |q| {
            (if q == p && here { NODE } else { OTHER }, epoch)
        })
    };
    let (applied, rx) = watch::channel(led(false, 0));
    let feed = LeadershipFeed {
        node_id: NODE,
        applied: rx,
    };
    let handle = start(Arc::downgrade(&logs), runtime_config(), Some(feed)).unwrap();
    // Nothing is loaded while another broker leads every partition.
    assert_eq!(
        fetch(&handle, "g", false).await,
        (ErrorCode::NotCoordinator, None)
    );
    assert!(handle.loaded().snapshot().is_empty());

    // Elected: the partition is replayed from the local log.
    applied.send_replace(led(true, 1));
    until("the partition to load", || {
        handle.loaded().get(p) == Some(PartitionLoad::Loaded { leader_epoch: 1 })
    })
    .await;
    assert_eq!(handle.loaded().snapshot().len(), 1);
    assert_eq!(
        fetch(&handle, "g", false).await,
        (ErrorCode::None, Some((42, ErrorCode::None)))
    );
    assert_eq!(
        fetch(&handle, "g", true).await,
        (ErrorCode::None, Some((-1, ErrorCode::UnstableOffsetCommit)))
    );
    committed(&handle, commit("g", 43)).await;

    // Resigned: the groups are forgotten.
    applied.send_replace(led(false, 2));
    until("the partition to unload", || {
        handle.loaded().get(p).is_none()
    })
    .await;
    assert_eq!(
        fetch(&handle, "g", false).await,
        (ErrorCode::NotCoordinator, None)
    );
    let response = handle
        .request(GroupRequest::Heartbeat(HeartbeatRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: "m".into(),
            group_instance_id: None,
        }))
        .await
        .unwrap();
    assert_eq!(
        response,
        Response::Heartbeat(fjord_group::api::HeartbeatResponse {
            error: ErrorCode::NotCoordinator
        })
    );

    // Elected again: the same committed offsets, the transaction still pending until its
    // marker (written after the replay) arrives.
    applied.send_replace(led(true, 3));
    until("the partition to load again", || {
        handle.loaded().get(p) == Some(PartitionLoad::Loaded { leader_epoch: 3 })
    })
    .await;
    assert_eq!(
        fetch(&handle, "g", true).await,
        (ErrorCode::None, Some((-1, ErrorCode::UnstableOffsetCommit)))
    );
    assert_eq!(
        fetch(&handle, "g", false).await,
        (ErrorCode::None, Some((43, ErrorCode::None)))
    );
    handle
        .complete_transaction(1_000, p, false, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        fetch(&handle, "g", true).await,
        (ErrorCode::None, Some((43, ErrorCode::None)))
    );
}

#[tokio::test]
async fn a_single_broker_owns_every_group_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open_logs(dir.path());
    ensure_offsets_topic(&logs, PARTITIONS).unwrap();
    let writer = start(Arc::downgrade(&logs), runtime_config(), None).unwrap();
    committed(&writer, commit("g", 42)).await;
    drop(writer);
    let handle = start(Arc::downgrade(&logs), runtime_config(), None).unwrap();
    assert_eq!(
        fetch(&handle, "g", false).await,
        (ErrorCode::None, Some((42, ErrorCode::None)))
    );
    assert!(handle.loaded().snapshot().is_empty());
}

/// A runtime driven by hand, its inbox kept by the test to step through a load.
fn manual_runtime(
    logs: &Arc<LogManager>,
) -> (Runtime, mpsc::Receiver<Command>, mpsc::Sender<Command>) {
    let (inbox, rx) = mpsc::channel(16);
    let config = runtime_config();
    let runtime = Runtime {
        coordinator: GroupCoordinator::without_partitions(
            config.group.clone(),
            Box::new(RandomMemberIds),
        ),
        logs: Arc::downgrade(logs),
        config,
        inbox: inbox.downgrade(),
        pending: HashMap::new(),
        next_request: 0,
        timer: None,
        loaded: LoadedPartitions::default(),
        completed_while_loading: BTreeMap::new(),
    };
    (runtime, rx, inbox)
}

#[tokio::test]
async fn a_marker_landing_while_a_partition_is_read_is_applied_after_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let logs = open_logs(dir.path());
    ensure_offsets_topic(&logs, PARTITIONS).unwrap();
    let p = partition_for_group("g", PARTITIONS);
    let writer = start(Arc::downgrade(&logs), runtime_config(), None).unwrap();
    committed(&writer, commit("g", 42)).await;
    committed(&writer, txn_commit("g", 50)).await;
    drop(writer);
    let end = logs
        .topic(OFFSETS_TOPIC)
        .unwrap()
        .partition(p)
        .unwrap()
        .offsets()
        .unwrap()
        .log_end_offset;

    for (marker_offset, expected) in [(end, 50), (end - 1, 42)] {
        let (mut runtime, mut rx, _inbox) = manual_runtime(&logs);
        runtime.follow(&BTreeMap::from([(p, 1)]));
        assert_eq!(
            runtime.loaded.get(p),
            Some(PartitionLoad::Loading { leader_epoch: 1 })
        );
        // The producer's commit marker is reported before the read comes back: at the log
        // end it came after the read; before it, the read saw it (here: as if it had been
        // written, which it was not, so the offsets must stay pending).
        let (done, _) = oneshot::channel();
        runtime.handle(Command::TxnCompleted {
            producer_id: 1_000,
            partition: p,
            commit: true,
            marker_offset,
            done,
        });
        let loaded = rx.recv().await.unwrap();
        assert!(matches!(loaded, Command::Loaded { .. }));
        runtime.handle(loaded);
        assert_eq!(
            runtime.loaded.get(p),
            Some(PartitionLoad::Loaded { leader_epoch: 1 })
        );
        let fetched = runtime.coordinator.fetch_offsets(&OffsetFetchRequest {
            group_id: "g".into(),
            topics: None,
            require_stable: false,
        });
        assert_eq!(
            fetched.topics[0].partitions[0].committed_offset, expected,
            "marker at {marker_offset}, log end {end}"
        );
    }
}
