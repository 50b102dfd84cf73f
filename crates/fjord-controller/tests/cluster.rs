//! Three controllers on 127.0.0.1, driven through the public API: election, broker
//! registration and liveness, topic creation, failover, AlterPartition checks, restart from
//! the metadata dir, catch-up from a snapshot, and a non-voter following the committed image
//! across a failover. Every wait is bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fjord_controller::api::{
    AlterConfigsRequest, AlterConfigsResource, AlterPartitionData, AlterPartitionRequest,
    AlterPartitionTopic, AlterableConfig, BrokerHeartbeatRequest, ControllerRequest,
    ControllerResponse, CreateTopicsRequest, NewTopic, RegisterBrokerRequest,
};
use fjord_controller::record::{ConfigResource, Listener};
use fjord_controller::{
    parse_voters, Controller, ControllerClient, ControllerConfig, ControllerError,
    ControllerHandle, ErrorCode, MetadataImage, RemoteController, RemoteControllerConfig, Voter,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Upper bound for any one wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

struct Cluster {
    dirs: BTreeMap<i32, tempfile::TempDir>,
    addrs: BTreeMap<i32, SocketAddr>,
    voters: Vec<Voter>,
    nodes: BTreeMap<i32, ControllerHandle>,
    snapshot_threshold_entries: u64,
}

fn config(
    id: i32,
    voters: &[Voter],
    addr: SocketAddr,
    dir: &std::path::Path,
    snapshot_threshold_entries: u64,
) -> ControllerConfig {
    let mut config = ControllerConfig::new(id, voters.to_vec(), addr, dir);
    config.election_timeout_ms = 400;
    config.quorum_heartbeat_interval_ms = 100;
    config.request_timeout_ms = 2000;
    config.broker_session_timeout_ms = 1500;
    config.broker_heartbeat_interval_ms = 100;
    config.snapshot_threshold_entries = snapshot_threshold_entries;
    config
}

impl Cluster {
    /// Binds three listeners first, then builds `controller.quorum.voters` from their ports.
    async fn start(snapshot_threshold_entries: u64) -> Self {
        let mut listeners = BTreeMap::new();
        for id in 1..=3 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listeners.insert(id, listener);
        }
        let addrs: BTreeMap<i32, SocketAddr> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap()))
            .collect();
        let voters = parse_voters(
            &addrs
                .iter()
                .map(|(id, a)| format!("{id}@{a}"))
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap();
        let mut cluster = Cluster {
            dirs: (1..=3)
                .map(|id| (id, tempfile::tempdir().unwrap()))
                .collect(),
            addrs,
            voters,
            nodes: BTreeMap::new(),
            snapshot_threshold_entries,
        };
        for (id, listener) in listeners {
            let config = cluster.config(id);
            let handle = Controller::start_on(config, listener).await.unwrap();
            cluster.nodes.insert(id, handle);
        }
        cluster
    }

    fn config(&self, id: i32) -> ControllerConfig {
        config(
            id,
            &self.voters,
            self.addrs[&id],
            self.dirs[&id].path(),
            self.snapshot_threshold_entries,
        )
    }

    /// Restarts node `id` from its metadata dir on its old port.
    async fn restart(&mut self, id: i32) {
        let listener = TcpListener::bind(self.addrs[&id]).await.unwrap();
        let handle = Controller::start_on(self.config(id), listener)
            .await
            .unwrap();
        self.nodes.insert(id, handle);
    }

    async fn stop(&mut self, id: i32) {
        let handle = self.nodes.remove(&id).unwrap();
        handle.shutdown().await.unwrap();
    }

    fn node(&self, id: i32) -> &ControllerHandle {
        &self.nodes[&id]
    }

    /// The leader every running node agrees on.
    async fn leader(&self) -> i32 {
        wait_until("the running controllers agree on a leader", || {
            let leaders: Vec<Option<i32>> =
                self.nodes.values().map(|n| n.active_controller()).collect();
            match leaders.first() {
                Some(Some(l))
                    if leaders.iter().all(|x| *x == Some(*l)) && self.nodes.contains_key(l) =>
                {
                    Some(*l)
                }
                _ => None,
            }
        })
        .await
    }

    fn follower(&self, leader: i32) -> i32 {
        *self.nodes.keys().find(|id| **id != leader).unwrap()
    }

    fn client(&self) -> ControllerClient {
        ControllerClient::new(self.voters.clone(), Duration::from_secs(2))
    }

    /// Waits until every running node has the same image, and returns it.
    async fn converged(&self) -> Arc<MetadataImage> {
        wait_until("all images are equal", || {
            let images: Vec<Arc<MetadataImage>> = self
                .nodes
                .values()
                .map(|n| n.image().borrow().clone())
                .collect();
            images
                .iter()
                .all(|i| **i == *images[0])
                .then(|| images[0].clone())
        })
        .await
    }
}

/// Polls `check` every 20 ms until it yields a value; panics after [`WAIT`].
async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the helpers submit through: a voter, or a node following the voters from outside.
trait Submit {
    async fn send(&self, request: ControllerRequest)
        -> Result<ControllerResponse, ControllerError>;
}

impl Submit for ControllerHandle {
    async fn send(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        self.submit(request).await
    }
}

impl Submit for RemoteController {
    async fn send(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        self.submit(request).await
    }
}

/// Submits through `handle`, retrying while there is no active controller.
async fn submit(handle: &impl Submit, request: ControllerRequest) -> ControllerResponse {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match handle.send(request.clone()).await {
            Ok(response) => return response,
            Err(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{request:?} failed: {e}"),
        }
    }
}

async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(90), test)
        .await
        .expect("test took too long")
}

async fn register(handle: &impl Submit, broker_id: i32, rack: Option<&str>) -> i64 {
    let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + broker_id as u16,
        }],
        rack: rack.map(String::from),
    });
    match submit(handle, request).await {
        ControllerResponse::RegisterBroker(r) if r.error == ErrorCode::None => r.broker_epoch,
        other => panic!("registration of {broker_id} failed: {other:?}"),
    }
}

/// A broker's heartbeat loop: through a quorum client, reporting the offset of `image`.
fn heartbeat(
    client: Arc<ControllerClient>,
    image: watch::Receiver<Arc<MetadataImage>>,
    broker_id: i32,
    broker_epoch: i64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
                broker_id,
                broker_epoch,
                current_metadata_offset: image.borrow().offset(),
                want_fence: false,
                want_shut_down: false,
            });
            let _ = client.submit(&request).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Registers brokers 1..=3 and keeps them heartbeating; returns once all are unfenced.
async fn start_brokers(cluster: &Cluster, image_from: i32) -> BTreeMap<i32, (i64, JoinHandle<()>)> {
    let client = Arc::new(cluster.client());
    let mut brokers = BTreeMap::new();
    for broker_id in 1..=3 {
        // Registered through different controllers, so most requests are forwarded.
        let via = cluster.node(
            *cluster
                .nodes
                .keys()
                .nth((broker_id - 1) as usize % cluster.nodes.len())
                .unwrap(),
        );
        let epoch = register(via, broker_id, None).await;
        let task = heartbeat(
            client.clone(),
            cluster.node(image_from).image(),
            broker_id,
            epoch,
        );
        brokers.insert(broker_id, (epoch, task));
    }
    let image = cluster.node(image_from).image();
    wait_until("brokers 1, 2, 3 are unfenced", || {
        (image.borrow().unfenced_brokers().count() == 3).then_some(())
    })
    .await;
    brokers
}

fn new_topic(name: &str, num_partitions: i32, replication_factor: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions,
        replication_factor,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    }
}

async fn create_topic(
    handle: &impl Submit,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
) -> Uuid {
    let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
        topics: vec![new_topic(name, num_partitions, replication_factor)],
        validate_only: false,
    });
    match submit(handle, request).await {
        ControllerResponse::CreateTopics(r) if r.topics[0].error == ErrorCode::None => {
            r.topics[0].topic_id
        }
        other => panic!("creating {name} failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_a_leader_register_brokers_and_place_a_balanced_topic() {
    bounded(async {
        let cluster = Cluster::start(1000).await;
        let leader = cluster.leader().await;
        assert!((1..=3).contains(&leader));
        let follower = cluster.follower(leader);
        let _brokers = start_brokers(&cluster, follower).await;

        // Created through a follower: forwarded to the active controller.
        let topic_id = create_topic(cluster.node(follower), "orders", 6, 3).await;
        let image = cluster.converged().await;
        let topic = image.topic_by_id(topic_id).expect("topic in the image");
        assert_eq!(topic.name, "orders");
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for partition in topic.partitions.values() {
            assert_eq!(partition.replicas.len(), 3);
            assert_eq!(partition.isr.len(), 3);
            assert_eq!(partition.leader, partition.replicas[0]);
            *leaders.entry(partition.leader).or_default() += 1;
        }
        assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
        // Every node holds the same image, the topic included.
        for node in cluster.nodes.values() {
            assert_eq!(*node.image().borrow(), image);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_active_controller_lets_another_take_over_with_two_of_three() {
    bounded(async {
        let mut cluster = Cluster::start(1000).await;
        let old_leader = cluster.leader().await;
        let survivor = cluster.follower(old_leader);
        let _brokers = start_brokers(&cluster, survivor).await;
        create_topic(cluster.node(survivor), "before", 3, 3).await;

        drop(cluster.nodes.remove(&old_leader));
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, old_leader);

        let topic_id = create_topic(cluster.node(survivor), "after", 3, 3).await;
        let image = cluster.converged().await;
        assert!(image.topic("before").is_some());
        assert_eq!(image.topic("after").unwrap().topic_id, topic_id);
        // The new active controller gave the brokers fresh sessions: none was fenced.
        assert_eq!(image.unfenced_brokers().count(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_heartbeating_is_fenced_and_leadership_moves_off_it() {
    bounded(async {
        let cluster = Cluster::start(1000).await;
        let leader = cluster.leader().await;
        let mut brokers = start_brokers(&cluster, leader).await;
        let topic_id = create_topic(cluster.node(leader), "events", 3, 3).await;
        let before = cluster.converged().await;
        let led_by_2: Vec<i32> = before
            .topic_by_id(topic_id)
            .unwrap()
            .partitions
            .iter()
            .filter(|(_, p)| p.leader == 2)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(led_by_2.len(), 1);

        let (epoch, task) = brokers.remove(&2).unwrap();
        task.abort();
        let image = cluster.node(leader).image();
        wait_until("broker 2 is fenced", || {
            image
                .borrow()
                .broker(2)
                .is_some_and(|b| b.fenced)
                .then_some(())
        })
        .await;
        let after = cluster.converged().await;
        for (index, partition) in &after.topic_by_id(topic_id).unwrap().partitions {
            assert_ne!(partition.leader, 2, "partition {index}");
            assert!(
                !partition.isr.contains(&2),
                "partition {index}: {:?}",
                partition.isr
            );
            let old = &before.topic_by_id(topic_id).unwrap().partitions[index];
            if led_by_2.contains(index) {
                assert_eq!(partition.leader_epoch, old.leader_epoch + 1);
                assert_eq!(partition.leader, old.replicas[1]);
            }
        }

        // Heartbeating again (same registration) unfences it.
        let client = Arc::new(cluster.client());
        let _task = heartbeat(client, cluster.node(leader).image(), 2, epoch);
        wait_until("broker 2 is unfenced again", || {
            cluster
                .node(leader)
                .image()
                .borrow()
                .is_unfenced(2)
                .then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_partition_with_stale_epochs_is_refused() {
    bounded(async {
        let cluster = Cluster::start(1000).await;
        let leader = cluster.leader().await;
        let brokers = start_brokers(&cluster, leader).await;
        let topic_id = create_topic(cluster.node(leader), "isr", 1, 3).await;
        let image = cluster.converged().await;
        let partition = image.partition(topic_id, 0).unwrap().clone();
        let partition_leader = partition.leader;
        let follower = partition.replicas[1];
        let alter = |broker: i32, leader_epoch: i32, partition_epoch: i32, new_isr: Vec<i32>| {
            ControllerRequest::AlterPartition(AlterPartitionRequest {
                broker_id: broker,
                broker_epoch: brokers[&broker].0,
                topics: vec![AlterPartitionTopic {
                    topic_id,
                    partitions: vec![AlterPartitionData {
                        partition: 0,
                        leader_epoch,
                        new_isr,
                        partition_epoch,
                    }],
                }],
            })
        };
        let outcome = |response: ControllerResponse| match response {
            ControllerResponse::AlterPartition(r) => r.topics[0].partitions[0].clone(),
            other => panic!("unexpected {other:?}"),
        };
        let shrunk: Vec<i32> = partition
            .isr
            .iter()
            .copied()
            .filter(|b| *b != follower)
            .collect();
        let node = cluster.node(cluster.follower(leader));

        let ok = outcome(submit(node, alter(partition_leader, 0, 0, shrunk.clone())).await);
        assert_eq!(ok.error, ErrorCode::None);
        assert_eq!((ok.isr.clone(), ok.partition_epoch), (shrunk.clone(), 1));

        let stale_version =
            outcome(submit(node, alter(partition_leader, 0, 0, partition.isr.clone())).await);
        assert_eq!(stale_version.error, ErrorCode::InvalidUpdateVersion);
        assert_eq!(stale_version.isr, shrunk);
        let stale_leader_epoch =
            outcome(submit(node, alter(partition_leader, -1, 1, partition.isr.clone())).await);
        assert_eq!(stale_leader_epoch.error, ErrorCode::FencedLeaderEpoch);
        let not_leader = outcome(submit(node, alter(follower, 0, 1, partition.isr.clone())).await);
        assert_eq!(not_leader.error, ErrorCode::NotLeaderOrFollower);

        let image = cluster.converged().await;
        assert_eq!(image.partition(topic_id, 0).unwrap().isr, shrunk);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_restores_its_image_from_the_metadata_dir() {
    bounded(async {
        let mut cluster = Cluster::start(1000).await;
        let leader = cluster.leader().await;
        let brokers = start_brokers(&cluster, leader).await;
        create_topic(cluster.node(leader), "durable", 4, 3).await;
        for (_, task) in brokers.values() {
            task.abort();
        }
        let image = cluster.converged().await;

        for id in 1..=3 {
            cluster.stop(id).await;
        }
        // Alone, without a quorum: the image comes from its own log and commit point.
        cluster.restart(2).await;
        let restored = cluster.node(2).image();
        wait_until("node 2 has re-applied its log", || {
            (**restored.borrow() == *image).then_some(())
        })
        .await;
        // It cannot have learned anything new: alone, it cannot commit.
        assert_ne!(cluster.node(2).active_controller(), Some(2));

        cluster.restart(1).await;
        cluster.restart(3).await;
        let leader = cluster.leader().await;
        let request = ControllerRequest::AlterConfigs(AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource: ConfigResource::Cluster,
                configs: vec![AlterableConfig {
                    name: "log.retention.ms".into(),
                    value: Some("1000".into()),
                }],
            }],
            validate_only: false,
        });
        submit(cluster.node(leader), request).await;
        let image = cluster.converged().await;
        assert!(image.topic("durable").is_some());
        assert_eq!(
            image
                .configs(&ConfigResource::Cluster)
                .get("log.retention.ms")
                .map(String::as_str),
            Some("1000")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_controller_catches_up_from_a_snapshot() {
    bounded(async {
        let mut cluster = Cluster::start(10).await;
        let leader = cluster.leader().await;
        let lagging = cluster.follower(leader);
        cluster.stop(lagging).await;
        let leader = cluster.leader().await;

        for i in 0..30 {
            let request = ControllerRequest::AlterConfigs(AlterConfigsRequest {
                resources: vec![AlterConfigsResource {
                    resource: ConfigResource::Cluster,
                    configs: vec![AlterableConfig {
                        name: format!("key.{i}"),
                        value: Some(i.to_string()),
                    }],
                }],
                validate_only: false,
            });
            submit(cluster.node(leader), request).await;
        }
        let status = wait_until("the leader snapshotted and purged its log", || {
            let s = cluster.node(leader).quorum_status();
            (s.purged_index.unwrap_or(0) >= 20).then_some(s)
        })
        .await;
        assert!(status.snapshot_index >= status.purged_index);

        cluster.restart(lagging).await;
        let image = cluster.converged().await;
        assert_eq!(image.configs(&ConfigResource::Cluster).len(), 30);
        let caught_up = cluster.node(lagging).quorum_status();
        assert!(caught_up.snapshot_index.is_some(), "{caught_up:?}");
        assert!(cluster.dirs[&lagging]
            .path()
            .join("metadata.checkpoint")
            .exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_voter_follows_the_committed_image_across_a_failover() {
    bounded(async {
        let mut cluster = Cluster::start(1000).await;
        let leader = cluster.leader().await;
        let mut config = RemoteControllerConfig::new(7, cluster.voters.clone());
        config.fetch_max_wait = Duration::from_millis(200);
        let remote = RemoteController::start(config);
        wait_until("the non-voter knows the active controller", || {
            (remote.active_controller() == Some(leader)).then_some(())
        })
        .await;

        // Every image it publishes is newer than the one before.
        let mut images = remote.image();
        let offsets = tokio::spawn(async move {
            let mut offsets = vec![images.borrow_and_update().offset()];
            while images.changed().await.is_ok() {
                offsets.push(images.borrow_and_update().offset());
            }
            offsets
        });

        // Registered through the non-voter, as a broker-only node registers: the registration
        // comes back in its image.
        let epoch = register(&remote, 7, None).await;
        wait_until("the registration is in the non-voter's image", || {
            let image = remote.image().borrow().clone();
            image
                .broker(7)
                .is_some_and(|b| b.broker_epoch == epoch)
                .then_some(())
        })
        .await;

        // The active controller stops; the voters elect another, which the non-voter follows
        // and submits to.
        cluster.stop(leader).await;
        let new_leader = cluster.leader().await;
        assert_ne!(new_leader, leader);
        wait_until("the non-voter names the new active controller", || {
            (remote.active_controller() == Some(new_leader)).then_some(())
        })
        .await;
        let request = ControllerRequest::AlterConfigs(AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource: ConfigResource::Cluster,
                configs: vec![AlterableConfig {
                    name: "after.failover".into(),
                    value: Some("yes".into()),
                }],
            }],
            validate_only: false,
        });
        submit(&remote, request).await;
        let image = cluster.converged().await;
        assert!(image
            .configs(&ConfigResource::Cluster)
            .contains_key("after.failover"));
        let followed = wait_until("the non-voter has the voters' image", || {
            let followed = remote.image().borrow().clone();
            (followed.offset() >= image.offset()).then_some(followed)
        })
        .await;
        assert_eq!(*followed, *cluster.converged().await);

        remote.shutdown().await.unwrap();
        let offsets = offsets.await.unwrap();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    })
    .await;
}
