//! Cluster mode: the partition logs this broker hosts follow the controller's metadata image.
//!
//! ```text
//!   metadata image ──► HostedTopic per topic (replicas include this node?) ──► sync_topics
//!                                                                               │
//!     topic gone or recreated (new id) ──► delete its local logs                │
//!     partition newly hosted ──► <dir>/partition.metadata, then Log::open ◄─────┘
//!     partition no longer hosted ──► delete its log
//!     topic configs changed ──► every hosted log takes the new settings
//! ```
//!
//! Each partition directory carries Kafka's `partition.metadata` (the topic id), written
//! before the log is opened, so a directory left by an earlier topic of the same name (deleted
//! and recreated while this broker was down) is recognised and removed instead of served.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use fjord_storage::{IoVerb, Log, StorageError};
use uuid::Uuid;

use super::{
    active_segment_base, base64_url, io_err, now_ms, write_atomically, LogManager, Topic,
    TopicError,
};
use crate::partition::Partition;
use crate::topic_config::TopicConfig;

/// Kafka's per-partition file naming the topic id the directory belongs to.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// What the metadata image says about one topic, as far as this broker is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedTopic {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Partitions of the whole topic.
    pub partition_count: i32,
    /// The partitions whose replicas include this broker.
    pub hosted: BTreeSet<i32>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// Per-partition failures of one [`LogManager::sync_topics`]; the rest was applied.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Partitions that could not be opened or deleted, with why.
    pub failures: Vec<(String, i32, TopicError)>,
}

fn partition_metadata(id: Uuid) -> String {
    format!("version: 0\ntopic_id: {}\n", base64_url(id.as_bytes()))
}

/// The topic id recorded in a partition directory, if the file is there and readable.
fn recorded_topic_id(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "topic_id")
        .map(|(_, v)| v.trim().to_string())
}

impl LogManager {
    /// Makes the hosted logs match `wanted`, which lists every topic of the image. Topics not
    /// in it (deleted) or known here under another id (deleted and recreated) lose their local
    /// logs; hosted partitions are opened or created; partitions no longer hosted are deleted;
    /// config overrides are applied to the logs at once. A partition that fails is reported
    /// and left out, so one bad directory does not stop the rest.
    pub fn sync_topics(&self, wanted: &[HostedTopic]) -> SyncReport {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = SyncReport::default();
        let by_name: BTreeMap<&str, &HostedTopic> =
            wanted.iter().map(|t| (t.name.as_str(), t)).collect();
        let gone: Vec<Arc<Topic>> = self
            .topics()
            .into_iter()
            .filter(|t| by_name.get(t.name.as_str()).is_none_or(|w| w.id != t.id))
            .collect();
        for topic in gone {
            self.write_topics().remove(&topic.name);
            for p in topic.hosted() {
                if let Err(e) = p.delete() {
                    tracing::warn!(partition = %p.name, error = %e, "could not remove the log of a deleted topic");
                }
            }
            tracing::info!(topic = %topic.name, id = %topic.id, "deleted topic");
        }
        for want in wanted {
            self.sync_topic(want, &mut report);
        }
        report
    }

    fn sync_topic(&self, want: &HostedTopic, report: &mut SyncReport) {
        let existing = self.topic(&want.name);
        let config = match TopicConfig::validate(want.configs.clone()) {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(topic = %want.name, error = %e, "topic configs from the metadata image refused; keeping the previous ones");
                existing
                    .as_ref()
                    .map(|t| t.config_snapshot())
                    .unwrap_or_default()
            }
        };
        let log_config = config.log_config(&self.broker_config());
        let config_changed = existing
            .as_ref()
            .is_some_and(|t| t.config_snapshot().overrides != config.overrides);
        let mut partitions = existing
            .as_ref()
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        let mut changed = existing
            .as_ref()
            .is_none_or(|t| t.partition_count != want.partition_count);
        let dropped: Vec<i32> = partitions
            .keys()
            .copied()
            .filter(|p| !want.hosted.contains(p))
            .collect();
        for index in dropped {
            if let Some(p) = partitions.remove(&index) {
                changed = true;
                if let Err(e) = p.delete() {
                    report.failures.push((want.name.clone(), index, e.into()));
                }
                tracing::info!(partition = %p.name, "no longer a replica here; deleted the log");
            }
        }
        if config_changed {
            for p in partitions.values() {
                if let Err(e) = p.with_log(|log| log.update_config(log_config.clone())) {
                    tracing::warn!(partition = %p.name, error = %e, "could not apply new config");
                }
            }
        }
        for &index in &want.hosted {
            if partitions.contains_key(&index) {
                continue;
            }
            match self.open_hosted(&want.name, want.id, index, log_config.clone()) {
                Ok(p) => {
                    partitions.insert(index, p);
                    changed = true;
                }
                Err(e) => {
                    tracing::error!(topic = %want.name, partition = index, error = %e, "cannot open a hosted partition");
                    report.failures.push((want.name.clone(), index, e));
                }
            }
        }
        if changed {
            let hosted: Vec<i32> = partitions.keys().copied().collect();
            let topic = Topic::new(
                &want.name,
                want.id,
                want.partition_count,
                partitions,
                config,
            );
            self.write_topics()
                .insert(want.name.clone(), Arc::new(topic));
            if existing.is_none() {
                tracing::info!(topic = %want.name, id = %want.id, partitions = want.partition_count, ?hosted, "following topic");
            }
        } else if config_changed {
            if let Some(topic) = existing {
                *topic.config.write().unwrap_or_else(|p| p.into_inner()) = config;
                tracing::info!(topic = %want.name, "applied topic configuration");
            }
        }
    }

    /// Opens (recovering) or creates the log of one hosted partition. A directory marked with
    /// another topic id, or not marked at all, is not this topic's and is removed first.
    fn open_hosted(
        &self,
        name: &str,
        id: Uuid,
        index: i32,
        log_config: fjord_storage::LogConfig,
    ) -> Result<Arc<Partition>, TopicError> {
        let dir = self.config.log_dir.join(format!("{name}-{index}"));
        let expected = base64_url(id.as_bytes());
        let recorded = recorded_topic_id(&dir);
        if dir.exists() && recorded.as_deref() != Some(expected.as_str()) {
            tracing::warn!(dir = %dir.display(), found = ?recorded, expected = %expected, "removing a partition directory of another topic id");
            fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, IoVerb::Remove, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, IoVerb::Create, e))?;
        if recorded.as_deref() != Some(expected.as_str()) {
            let path = dir.join(PARTITION_METADATA_FILE);
            write_atomically(&path, partition_metadata(id).as_bytes())
                .map_err(|e| io_err(&path, IoVerb::Write, e))?;
        }
        let stored = self
            .unopened_recovery_points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(name.to_string(), index));
        let recovery_point = stored.unwrap_or(0).min(active_segment_base(&dir));
        let log = Log::open(&dir, log_config, recovery_point, now_ms())?;
        let partition = Partition::new_replica(name, index, log)?;
        let high_watermark = self
            .unopened_high_watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(name.to_string(), index));
        if let Some(hw) = high_watermark {
            partition.restore_high_watermark(hw);
        }
        Ok(partition)
    }

    /// Removes partition directories marked by cluster mode whose partition is not hosted
    /// here: topics deleted (or partitions moved away) while this broker was down. Called once
    /// the broker has caught up with the image, so nothing still wanted is taken.
    pub fn remove_stray_logs(&self) -> Result<usize, StorageError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.config.log_dir;
        let mut removed = 0;
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, IoVerb::List, e))? {
            let entry = entry.map_err(|e| io_err(dir, IoVerb::List, e))?;
            let path = entry.path();
            if !path.is_dir() || !path.join(PARTITION_METADATA_FILE).exists() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((topic, index)) = name
                .rsplit_once('-')
                .and_then(|(t, i)| Some((t.to_string(), i.parse::<i32>().ok()?)))
            else {
                continue;
            };
            let hosted = self
                .topic(&topic)
                .is_some_and(|t| t.partition(index).is_some());
            if !hosted {
                tracing::info!(dir = %path.display(), "removing the log of a partition not hosted here");
                fs::remove_dir_all(&path).map_err(|e| io_err(&path, IoVerb::Remove, e))?;
                self.unopened_recovery_points
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(topic.clone(), index));
                self.unopened_high_watermarks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(topic, index));
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Installs the dynamic broker configs of the image (the cluster default and this
    /// broker's own), validated against the static configuration, and applies the new log
    /// defaults to every hosted partition. Returns whether anything changed.
    pub fn apply_dynamic_broker_configs(
        &self,
        default: BTreeMap<String, String>,
        own: BTreeMap<String, String>,
    ) -> Result<bool, TopicError> {
        let _admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let mut dynamic = self.dynamic.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.config.node_id.to_string();
        let current_own = dynamic.brokers.get(&id).cloned().unwrap_or_default();
        if dynamic.default == default && current_own == own {
            return Ok(false);
        }
        let effective = Arc::new(self.config.with_dynamic(&default, &own)?);
        dynamic.default = default;
        dynamic.brokers.insert(id, own);
        *self.effective.write().unwrap_or_else(|p| p.into_inner()) = effective.clone();
        for topic in self.topics() {
            let log_config = topic.config_snapshot().log_config(&effective);
            for p in topic.hosted() {
                if let Err(e) = p.with_log(|log| log.update_config(log_config.clone())) {
                    tracing::warn!(partition = %p.name, error = %e, "could not apply new config");
                }
            }
        }
        tracing::info!("applied dynamic broker configuration from the metadata image");
        Ok(true)
    }
}

#[cfg(test)]
#[path = "cluster_test.rs"]
mod tests;
