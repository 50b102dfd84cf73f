//! DescribeCluster: the cluster id, the controller and the brokers (one, on a single node).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::Broker;

/// Kafka's "not requested" value for authorized operations.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Answers from this broker's own identity.
pub(crate) fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let node_id = broker.config.node_id;
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = str_bytes(broker.logs.cluster_id());
    response.controller_id = BrokerId(node_id);
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        super::metadata::cluster_authorized_operations(broker, ctx)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    response.brokers = broker
        .advertised
        .iter()
        .filter(|l| l.name == ctx.listener)
        .map(|l| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(node_id);
            b.host = str_bytes(l.host.clone());
            b.port = i32::from(l.port);
            b
        })
        .collect();
    response
}
