//! WriteTxnMarkers: writes commit/abort markers for producers on this broker's partitions.
//!
//! Transaction coordinators send it to partition leaders; operators send it through
//! `kafka-transactions.sh abort` (or `fjord transactions abort`) to end a transaction whose
//! coordinator state is gone, so the partition's last stable offset can move again. Each marker
//! is answered once durable.

use fjord_txn::TopicPartition;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;

use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::error::partition_error;
use crate::txn_runtime::{write_marker, MarkerError, MarkerSpec};
use crate::Broker;

/// Writes every requested marker, in request order.
pub(crate) async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed =
        broker
            .authorizer
            .authorize(ctx.session, Operation::ClusterAction, Resource::Cluster);
    let mut response = WriteTxnMarkersResponse::default();
    for marker in request.markers {
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = marker.producer_id;
        for topic in marker.topics {
            let mut topic_result = WritableTxnMarkerTopicResult::default();
            for &index in &topic.partition_indexes {
                let mut p = WritableTxnMarkerPartitionResult::default();
                p.partition_index = index;
                let tp = TopicPartition::new(topic.name.as_str(), index);
                // In a cluster only the partition's leader writes markers; the coordinator
                // retries elsewhere on NOT_LEADER_OR_FOLLOWER.
                let not_leader = match &broker.cluster {
                    Some(cluster) => cluster.refuse_unless_leader(topic.name.as_str(), index, -1),
                    None => None,
                };
                let outcome = if let (true, Some(refused)) = (allowed, not_leader) {
                    Err(refused)
                } else if allowed {
                    let spec = MarkerSpec {
                        producer_id: marker.producer_id.0,
                        producer_epoch: marker.producer_epoch,
                        commit: marker.transaction_result,
                        coordinator_epoch: marker.coordinator_epoch,
                    };
                    write_marker(&broker.logs, &broker.groups, &tp, spec)
                        .await
                        .map_err(|e| match e {
                            MarkerError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
                            MarkerError::Partition(e) => partition_error(&e),
                            MarkerError::NotDurable(_) => ResponseError::RequestTimedOut,
                            MarkerError::Groups => ResponseError::CoordinatorNotAvailable,
                        })
                } else {
                    Err(ResponseError::ClusterAuthorizationFailed)
                };
                if let Err(code) = outcome {
                    p.error_code = code.code();
                }
                topic_result.partitions.push(p);
            }
            topic_result.name = topic.name;
            result.topics.push(topic_result);
        }
        response.markers.push(result);
    }
    response
}
