//! OffsetFetch: committed offsets of one group (v1-v7) or several (v8+).

use fjord_group::api::{
    OffsetFetchRequest as Fetch, OffsetFetchResponse as Fetched, TopicPartitions,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::groups::{code, owned, unavailable};
use crate::dispatch::RequestContext;
use crate::Broker;

async fn fetch(
    broker: &Broker,
    group_id: String,
    topics: Option<Vec<TopicPartitions>>,
    require_stable: bool,
) -> Result<Fetched, i16> {
    broker
        .coordinates_group(&group_id)
        .map_err(|refused| refused.code())?;
    broker
        .groups
        .fetch_offsets(Fetch {
            group_id,
            topics,
            require_stable,
        })
        .await
        .map_err(|_| unavailable())
}

/// Answers from the coordinator's committed offsets.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if ctx.api_version >= 8 {
        for group in &request.groups {
            let topics = group.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| TopicPartitions {
                        name: t.name.to_string(),
                        partition_indexes: t.partition_indexes.clone(),
                    })
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = group.group_id.clone();
            match fetch(
                broker,
                owned(&group.group_id),
                topics,
                request.require_stable,
            )
            .await
            {
                Ok(fetched) => {
                    out.error_code = code(fetched.error);
                    out.topics = fetched
                        .topics
                        .into_iter()
                        .map(|t| {
                            let mut topic = OffsetFetchResponseTopics::default();
                            topic.name = TopicName(StrBytes::from_string(t.name));
                            topic.partitions = t
                                .partitions
                                .into_iter()
                                .map(|p| {
                                    let mut o = OffsetFetchResponsePartitions::default();
                                    o.partition_index = p.partition_index;
                                    o.committed_offset = p.committed_offset;
                                    o.committed_leader_epoch = p.committed_leader_epoch;
                                    o.metadata = Some(StrBytes::from_string(p.metadata));
                                    o.error_code = code(p.error);
                                    o
                                })
                                .collect();
                            topic
                        })
                        .collect();
                }
                Err(e) => out.error_code = e,
            }
            response.groups.push(out);
        }
        return response;
    }
    let topics = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| TopicPartitions {
                name: t.name.to_string(),
                partition_indexes: t.partition_indexes.clone(),
            })
            .collect()
    });
    let group_id: &GroupId = &request.group_id;
    match fetch(broker, owned(group_id), topics, request.require_stable).await {
        Ok(fetched) => {
            if ctx.api_version >= 2 {
                response.error_code = code(fetched.error);
            }
            response.topics = fetched
                .topics
                .into_iter()
                .map(|t| {
                    let mut topic = OffsetFetchResponseTopic::default();
                    topic.name = TopicName(StrBytes::from_string(t.name));
                    topic.partitions = t
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let mut o = OffsetFetchResponsePartition::default();
                            o.partition_index = p.partition_index;
                            o.committed_offset = p.committed_offset;
                            if ctx.api_version >= 5 {
                                o.committed_leader_epoch = p.committed_leader_epoch;
                            }
                            o.metadata = Some(StrBytes::from_string(p.metadata));
                            o.error_code = code(p.error);
                            o
                        })
                        .collect();
                    topic
                })
                .collect();
        }
        Err(e) => {
            if ctx.api_version >= 2 {
                response.error_code = e;
            }
        }
    }
    response
}
