//! Topic and config changes in cluster mode: checked here first (what this broker knows
//! better than the controller: topic config keys, reserved names, what the cluster can
//! serve), then decided by the active controller, then waited for in the applied image so
//! that the client's next request to this broker sees the change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fjord_controller::api::{
    AlterConfigsRequest, AlterConfigsResource, AlterableConfig, ControllerRequest,
    ControllerResponse, CreatePartitionsRequest, CreatePartitionsTopic, CreateTopicsRequest,
    DeleteTopicsRequest, NewTopic, ReplicaAssignment, TopicRef,
};
use fjord_controller::record::ConfigResource;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::ClusterNode;
use crate::config::BrokerConfig;
use crate::error::{controller_code, controller_error};
use crate::log_manager::validate_topic_name;
use crate::topic_config::TopicConfig;

/// How long a handler waits for its change to reach this broker's applied image.
pub(super) const APPLY_WAIT: Duration = Duration::from_secs(10);

/// A refused item: Kafka's error and a message for the client.
pub type Refusal = (ResponseError, String);

/// A topic to create, as the client asked for it.
#[derive(Debug, Clone)]
pub struct TopicToCreate {
    /// Name.
    pub name: String,
    /// Partitions, or -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor, or -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replicas per partition (partition index, broker ids).
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// A topic the controller created (or, with validate_only, would create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// The new id (nil for validate_only).
    pub topic_id: Uuid,
    /// Partitions.
    pub num_partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i16,
    /// The overrides it was created with.
    pub config: TopicConfig,
}

/// Checks what the controller cannot: names reserved for internal topics (unless
/// `internal`), names that collide once `.` and `_` are treated alike, topic config keys and
/// values, and the replication factor this cluster can serve. Resolves -1 defaults from this
/// broker's configuration. Returns the controller's form of the topic.
fn check_new_topic(
    config: &BrokerConfig,
    existing: &BTreeSet<String>,
    topic: &TopicToCreate,
    internal: bool,
) -> Result<(NewTopic, TopicConfig), Refusal> {
    let invalid_name = |m: String| (ResponseError::InvalidTopicException, m);
    validate_topic_name(&topic.name).map_err(|e| invalid_name(e.to_string()))?;
    if !internal && topic.name.starts_with("__") {
        return Err(invalid_name(format!(
            "invalid topic name `{}`: names starting with `__` are reserved for internal topics",
            topic.name
        )));
    }
    if !existing.contains(&topic.name) {
        let normalized = topic.name.replace('.', "_");
        if let Some(other) = existing.iter().find(|e| e.replace('.', "_") == normalized) {
            return Err(invalid_name(format!(
                "topic `{}` collides with existing topic `{other}` ('.' and '_' are \
                 interchangeable in metric names)",
                topic.name
            )));
        }
    }
    let validated = TopicConfig::validate(topic.configs.clone())
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    if !topic.assignments.is_empty() {
        let new = NewTopic {
            name: topic.name.clone(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|(partition, replicas)| ReplicaAssignment {
                    partition: *partition,
                    replicas: replicas.clone(),
                })
                .collect(),
            configs: topic.configs.clone(),
        };
        return Ok((new, validated));
    }
    let num_partitions = match topic.num_partitions {
        -1 => config.num_partitions,
        n if n >= 1 => n,
        n => {
            return Err((
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at least 1, got {n}"),
            ))
        }
    };
    let replication_factor = match topic.replication_factor {
        -1 => config.default_replication_factor,
        rf => rf,
    };
    if replication_factor < 1 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!("replication factor must be at least 1, got {replication_factor}"),
        ));
    }
    let new = NewTopic {
        name: topic.name.clone(),
        num_partitions,
        replication_factor,
        assignments: Vec::new(),
        configs: topic.configs.clone(),
    };
    Ok((new, validated))
}

impl ClusterNode {
    /// CreateTopics through the controller, one outcome per topic in request order; names
    /// given twice are the caller's to refuse. `internal` allows the `__` names of the
    /// coordinators' topics.
    pub async fn create_topics(
        &self,
        config: &BrokerConfig,
        topics: Vec<TopicToCreate>,
        validate_only: bool,
        internal: bool,
    ) -> Vec<Result<CreatedTopic, Refusal>> {
        let image = self.image();
        let existing: BTreeSet<String> = image.topic_ids().keys().cloned().collect();
        let checked: Vec<Result<(NewTopic, TopicConfig), Refusal>> = topics
            .iter()
            .map(|t| check_new_topic(config, &existing, t, internal))
            .collect();
        let to_submit: Vec<NewTopic> = checked
            .iter()
            .filter_map(|c| c.as_ref().ok().map(|(n, _)| n.clone()))
            .collect();
        let mut answers = Vec::new();
        if !to_submit.is_empty() {
            let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
                topics: to_submit,
                validate_only,
            });
            match self.submit(request).await {
                Ok(ControllerResponse::CreateTopics(r)) => answers = r.topics,
                Ok(other) => {
                    let refusal = unexpected(&other);
                    return checked
                        .into_iter()
                        .map(|c| c.and(Err(refusal.clone())))
                        .collect();
                }
                Err(e) => {
                    let refusal = (controller_error(&e), e.to_string());
                    return checked
                        .into_iter()
                        .map(|c| c.and(Err(refusal.clone())))
                        .collect();
                }
            }
        }
        let mut answers = answers.into_iter();
        let mut outcomes = Vec::with_capacity(checked.len());
        for c in checked {
            let outcome = c.and_then(|(_, topic_config)| {
                let answer = answers.next().ok_or_else(|| {
                    (
                        ResponseError::UnknownServerError,
                        "the controller answered fewer topics than were sent".to_string(),
                    )
                })?;
                if answer.error != fjord_controller::ErrorCode::None {
                    return Err((
                        controller_code(answer.error),
                        answer.error_message.unwrap_or_default(),
                    ));
                }
                Ok(CreatedTopic {
                    topic_id: answer.topic_id,
                    num_partitions: answer.num_partitions,
                    replication_factor: answer.replication_factor,
                    config: topic_config,
                })
            });
            outcomes.push(outcome);
        }
        if !validate_only {
            let ids: Vec<Uuid> = outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok().map(|c| c.topic_id))
                .collect();
            self.wait_applied(APPLY_WAIT, |image| {
                ids.iter().all(|id| image.topic_by_id(*id).is_some())
            })
            .await;
        }
        outcomes
    }

    /// Creates an internal topic with `replication_factor` replicas per partition unless it
    /// exists, and waits until the applied image has it. Too few brokers for that factor is
    /// refused by the controller (INVALID_REPLICATION_FACTOR), as in Kafka, and clients
    /// retry.
    pub async fn ensure_internal_topic(
        &self,
        config: &BrokerConfig,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<(), Refusal> {
        if self.image().topic(name).is_some() {
            return Ok(());
        }
        let topic = TopicToCreate {
            name: name.to_string(),
            num_partitions: partitions,
            replication_factor,
            assignments: Vec::new(),
            configs,
        };
        let outcome = self
            .create_topics(config, vec![topic], false, true)
            .await
            .pop()
            .unwrap_or_else(|| Err((ResponseError::UnknownServerError, "no answer".into())));
        match outcome {
            Ok(_) => Ok(()),
            // Another broker created it first.
            Err((ResponseError::TopicAlreadyExists, _)) => {
                let name = name.to_string();
                if self
                    .wait_applied(APPLY_WAIT, |image| image.topic(&name).is_some())
                    .await
                {
                    Ok(())
                } else {
                    Err((
                        ResponseError::CoordinatorNotAvailable,
                        format!("{name} is not in this broker's metadata yet"),
                    ))
                }
            }
            Err(refusal) => Err(refusal),
        }
    }

    /// DeleteTopics through the controller, by name or id; outcomes in request order, each
    /// with the deleted topic's name and id.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<(String, Uuid), Refusal>> {
        let image = self.image();
        let resolved: Vec<Option<(String, Uuid)>> = topics
            .iter()
            .map(|t| match t {
                TopicRef::Name(name) => image.topic(name).map(|t| (t.name.clone(), t.topic_id)),
                TopicRef::Id(id) => image.topic_by_id(*id).map(|t| (t.name.clone(), t.topic_id)),
            })
            .collect();
        let request = ControllerRequest::DeleteTopics(DeleteTopicsRequest { topics });
        let answers = match self.submit(request).await {
            Ok(ControllerResponse::DeleteTopics(r)) => r.topics,
            Ok(other) => return resolved.iter().map(|_| Err(unexpected(&other))).collect(),
            Err(e) => {
                return resolved
                    .iter()
                    .map(|_| Err((controller_error(&e), e.to_string())))
                    .collect()
            }
        };
        let outcomes: Vec<Result<(String, Uuid), Refusal>> = answers
            .into_iter()
            .zip(resolved)
            .map(|(answer, resolved)| match (answer.error, resolved) {
                (fjord_controller::ErrorCode::None, Some(found)) => Ok(found),
                (fjord_controller::ErrorCode::None, None) => Err((
                    ResponseError::UnknownTopicOrPartition,
                    "the topic was not in this broker's metadata".into(),
                )),
                (code, _) => Err((controller_code(code), format!("{code:?}"))),
            })
            .collect();
        let ids: Vec<Uuid> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().map(|(_, id)| *id))
            .collect();
        self.wait_applied(APPLY_WAIT, |image| {
            ids.iter().all(|id| image.topic_by_id(*id).is_none())
        })
        .await;
        outcomes
    }

    /// CreatePartitions through the controller: grow `name` to `count` partitions, with
    /// explicit replicas for the new ones if given.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let request = ControllerRequest::CreatePartitions(CreatePartitionsRequest {
            topics: vec![CreatePartitionsTopic {
                name: name.to_string(),
                count,
                assignments,
            }],
            validate_only,
        });
        let answer = match self.submit(request).await {
            Ok(ControllerResponse::CreatePartitions(r)) => r.topics.into_iter().next(),
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => return Err((controller_error(&e), e.to_string())),
        };
        only_outcome(answer.map(|a| (a.error, a.error_message)), "topic")?;
        if !validate_only {
            let name = name.to_string();
            self.wait_applied(APPLY_WAIT, |image| {
                image
                    .topic(&name)
                    .is_some_and(|t| t.partitions.len() as i32 >= count)
            })
            .await;
        }
        Ok(())
    }

    /// Replaces the config overrides of `resource` with `overrides` through the controller
    /// (as the keys that changed: set or removed).
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), Refusal> {
        let current = self.image().configs(&resource);
        let mut changes: Vec<AlterableConfig> = overrides
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(v))
            .map(|(k, v)| AlterableConfig {
                name: k.clone(),
                value: Some(v.clone()),
            })
            .collect();
        changes.extend(
            current
                .keys()
                .filter(|k| !overrides.contains_key(*k))
                .map(|k| AlterableConfig {
                    name: k.clone(),
                    value: None,
                }),
        );
        let request = ControllerRequest::AlterConfigs(AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource: resource.clone(),
                configs: changes,
            }],
            validate_only,
        });
        let answer = match self.submit(request).await {
            Ok(ControllerResponse::AlterConfigs(r)) => r.results.into_iter().next(),
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => return Err((controller_error(&e), e.to_string())),
        };
        only_outcome(answer.map(|a| (a.error, a.error_message)), "resource")?;
        if !validate_only {
            self.wait_applied(APPLY_WAIT, |image| image.configs(&resource) == overrides)
                .await;
        }
        Ok(())
    }
}

/// The outcome of a one-item controller request: an answer with no item is the controller's
/// fault, an item's error is refused with its message.
fn only_outcome(
    answer: Option<(fjord_controller::ErrorCode, Option<String>)>,
    item: &str,
) -> Result<(), Refusal> {
    match answer {
        None => Err((
            ResponseError::UnknownServerError,
            format!("the controller answered no {item}"),
        )),
        Some((error, message)) if error != fjord_controller::ErrorCode::None => {
            Err((controller_code(error), message.unwrap_or_default()))
        }
        Some(_) => Ok(()),
    }
}

/// The refusal for an answer of the wrong kind, which only a bug can cause.
pub(super) fn unexpected(answer: &ControllerResponse) -> Refusal {
    (
        ResponseError::UnknownServerError,
        format!("unexpected answer from the controller: {answer:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32, rf: i16) -> TopicToCreate {
        TopicToCreate {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        }
    }

    fn check(t: &TopicToCreate, config: &BrokerConfig) -> Result<NewTopic, Refusal> {
        let existing = BTreeSet::from(["a.b".to_string()]);
        check_new_topic(config, &existing, t, false).map(|(n, _)| n)
    }

    #[test]
    fn replication_factors_pass_to_the_controller_and_zero_is_refused() {
        let config = BrokerConfig::default();
        let new = check(&topic("t", 3, 3), &config).unwrap();
        assert_eq!(new.replication_factor, 3);
        let mut assigned = topic("t", -1, -1);
        assigned.assignments = vec![(0, vec![1, 2])];
        assert_eq!(
            check(&assigned, &config).unwrap().assignments[0].replicas,
            vec![1, 2]
        );
        // default.replication.factor applies to -1.
        let config = BrokerConfig {
            default_replication_factor: 2,
            ..BrokerConfig::default()
        };
        assert_eq!(
            check(&topic("t", 1, -1), &config)
                .unwrap()
                .replication_factor,
            2
        );
        assert_eq!(
            check(&topic("t", 1, 0), &config).unwrap_err().0,
            ResponseError::InvalidReplicationFactor
        );
    }

    #[test]
    fn defaults_come_from_this_broker_and_assignments_pass_through() {
        let config = BrokerConfig {
            num_partitions: 4,
            ..BrokerConfig::default()
        };
        let new = check(&topic("t", -1, -1), &config).unwrap();
        assert_eq!((new.num_partitions, new.replication_factor), (4, 1));
        let mut assigned = topic("t", -1, -1);
        assigned.assignments = vec![(0, vec![2]), (1, vec![3])];
        let new = check(&assigned, &config).unwrap();
        assert_eq!(new.assignments.len(), 2);
        assert_eq!((new.num_partitions, new.replication_factor), (-1, -1));
    }

    #[test]
    fn reserved_colliding_and_misconfigured_topics_are_refused() {
        let config = BrokerConfig::default();
        assert_eq!(
            check(&topic("__mine", 1, 1), &config).unwrap_err().0,
            ResponseError::InvalidTopicException
        );
        assert_eq!(
            check(&topic("a_b", 1, 1), &config).unwrap_err().0,
            ResponseError::InvalidTopicException
        );
        assert_eq!(
            check(&topic("bad name", 1, 1), &config).unwrap_err().0,
            ResponseError::InvalidTopicException
        );
        let mut configured = topic("t", 1, 1);
        configured
            .configs
            .insert("retention.mss".into(), "1".into());
        assert_eq!(
            check(&configured, &config).unwrap_err().0,
            ResponseError::InvalidConfig
        );
        assert_eq!(
            check(&topic("t", 0, 1), &config).unwrap_err().0,
            ResponseError::InvalidPartitions
        );
        let existing = BTreeSet::new();
        assert!(check_new_topic(
            &config,
            &existing,
            &topic("__consumer_offsets", 50, 1),
            true
        )
        .is_ok());
    }
}
