//! DescribeCluster: the cluster id, the controller and the brokers: this one on a single
//! node; in cluster mode the active controller and every unfenced broker of the applied
//! image at its endpoint for the request's listener.

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
    if let Some(cluster) = &broker.cluster {
        let image = cluster.image();
        response.controller_id = BrokerId(cluster.controller_id_for_clients(ctx.listener));
        response.brokers = image
            .unfenced_brokers()
            .filter_map(|registration| {
                let endpoint = registration
                    .listeners
                    .iter()
                    .find(|l| l.name == ctx.listener)?;
                let mut b = DescribeClusterBroker::default();
                b.broker_id = BrokerId(registration.broker_id);
                b.host = str_bytes(endpoint.host.clone());
                b.port = i32::from(endpoint.port);
                b.rack = registration.rack.clone().map(str_bytes);
                Some(b)
            })
            .collect();
        return response;
    }
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
