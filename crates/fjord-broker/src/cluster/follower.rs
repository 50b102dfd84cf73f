//! The task that applies each committed metadata image to this broker's logs, then publishes
//! it as the *applied* image.

use std::collections::BTreeSet;
use std::sync::Arc;

use fjord_controller::record::ConfigResource;
use fjord_controller::MetadataImage;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ReplicaManager;
use crate::log_manager::cluster::HostedTopic;
use crate::log_manager::LogManager;

/// What every topic of `image` means for broker `node_id`: the whole partition count, the
/// partitions whose replicas include it, and the topic configs.
pub fn hosted_topics(image: &MetadataImage, node_id: i32) -> Vec<HostedTopic> {
    image
        .topics()
        .values()
        .map(|t| HostedTopic {
            name: t.name.clone(),
            id: t.topic_id,
            partition_count: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
            hosted: t
                .partitions
                .iter()
                .filter(|(_, p)| p.replicas.contains(&node_id))
                .map(|(&index, _)| index)
                .collect::<BTreeSet<i32>>(),
            configs: t.configs.clone(),
        })
        .collect()
}

/// The running follower task.
#[derive(Debug)]
pub struct Follower {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Follower {
    /// Starts following `source` (the controller's committed image); the returned receiver
    /// carries every image once its topics and configs are applied to `logs` and every
    /// hosted partition has its role from it (`replicas`).
    pub fn start(
        logs: Arc<LogManager>,
        replicas: Arc<ReplicaManager>,
        source: watch::Receiver<Arc<MetadataImage>>,
        node_id: i32,
    ) -> (Follower, watch::Receiver<Arc<MetadataImage>>) {
        let (applied_tx, applied_rx) = watch::channel(Arc::new(MetadataImage::default()));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(logs, replicas, source, applied_tx, stop_rx, node_id));
        (Follower { stop, task }, applied_rx)
    }

    /// Stops following and waits for the task, so no log is opened after this returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Whether `next` differs from `previous` in anything the logs depend on.
fn logs_affected(previous: &MetadataImage, next: &MetadataImage, node_id: i32) -> bool {
    previous.topics() != next.topics()
        || previous.configs(&ConfigResource::Cluster) != next.configs(&ConfigResource::Cluster)
        || previous.configs(&ConfigResource::Broker(node_id))
            != next.configs(&ConfigResource::Broker(node_id))
}

async fn run(
    logs: Arc<LogManager>,
    replicas: Arc<ReplicaManager>,
    mut source: watch::Receiver<Arc<MetadataImage>>,
    applied: watch::Sender<Arc<MetadataImage>>,
    mut stop: watch::Receiver<bool>,
    node_id: i32,
) {
    let mut previous: Option<Arc<MetadataImage>> = None;
    loop {
        let image = source.borrow_and_update().clone();
        let affected = previous
            .as_ref()
            .is_none_or(|p| logs_affected(p, &image, node_id));
        if affected {
            let wanted = hosted_topics(&image, node_id);
            let default = image.configs(&ConfigResource::Cluster);
            let own = image.configs(&ConfigResource::Broker(node_id));
            let logs = logs.clone();
            let replicas = replicas.clone();
            let for_roles = image.clone();
            let offset = image.offset();
            let applied_ok = tokio::task::spawn_blocking(move || {
                if let Err(e) = logs.apply_dynamic_broker_configs(default, own) {
                    tracing::warn!(error = %e, "dynamic broker configs from the metadata image refused");
                }
                let report = logs.sync_topics(&wanted);
                for (topic, partition, error) in &report.failures {
                    tracing::error!(%topic, partition, %error, offset, "partition not applied from the metadata image");
                }
                replicas.apply_image(&for_roles);
            })
            .await;
            if let Err(e) = applied_ok {
                tracing::error!(error = %e, "applying the metadata image failed");
            }
        }
        previous = Some(image.clone());
        applied.send_replace(image);
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            changed = source.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
