//! From a request frame to a response frame: header, version check, decode, handler, encode.
//!
//! Anything a client can send is answered or refused here without panicking: unknown api keys
//! and unserved versions get UNSUPPORTED_VERSION (ApiVersions gets Kafka's full v0 answer so
//! clients can downgrade), and a body that does not decode closes that one connection, as Kafka
//! does.

use bytes::Bytes;
use fjord_protocol::api_versions;
use fjord_protocol::fetch_frame::{encode_fetch_response, ResponseChunks};
use fjord_protocol::frame::{
    decode_request_header, encode_response, encode_unsupported_version, peek_preamble,
};
use fjord_protocol::request_shape::check_request_shape;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::authorizer::Session;
use crate::handlers;
use crate::Broker;

/// What the connection should do after a request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Write this frame.
    Respond(ResponseChunks),
    /// acks=0 produce: Kafka sends nothing back.
    NoResponse,
    /// The request was unreadable; close the connection with this reason.
    Close(String),
}

/// The parts of a request header a handler may need.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext<'a> {
    /// The requested version of the API.
    pub(crate) api_version: i16,
    /// The client id from the header, for logs.
    #[allow(dead_code)]
    pub(crate) client_id: Option<String>,
    /// Listener and principal of the connection.
    pub(crate) session: &'a Session,
    /// Which broker listener the request arrived on.
    pub(crate) listener: &'a str,
}

/// Handles one request frame.
pub(crate) async fn handle_frame(broker: &Broker, session: &Session, mut frame: Bytes) -> Outcome {
    let pre = match peek_preamble(&frame) {
        Ok(p) => p,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let Ok(api_key) = ApiKey::try_from(pre.api_key) else {
        tracing::warn!(api_key = pre.api_key, "request with an unknown api key");
        return unsupported(pre.correlation_id);
    };
    if !api_versions::is_supported(pre.api_key, pre.api_version) {
        if api_key == ApiKey::ApiVersions {
            return respond(
                ApiKey::ApiVersions,
                0,
                pre.correlation_id,
                &handlers::api_versions::unsupported_version_response(),
            );
        }
        tracing::warn!(
            ?api_key,
            version = pre.api_version,
            "request for an unsupported version"
        );
        return unsupported(pre.correlation_id);
    }
    let header = match decode_request_header(&mut frame, api_key, pre.api_version) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(e.to_string()),
    };
    let ctx = RequestContext {
        api_version: api_versions::codec_version(api_key, pre.api_version),
        client_id: header.client_id.as_ref().map(|s| s.to_string()),
        session,
        listener: &session.listener,
    };
    // The header's strings share the frame buffer; dropping it lets a produce take its records
    // without copying them.
    drop(header);
    let started = std::time::Instant::now();
    let outcome = dispatch(broker, &ctx, pre.correlation_id, api_key, frame).await;
    broker.metrics.record_request(api_key, started.elapsed());
    outcome
}

fn unsupported(correlation_id: i32) -> Outcome {
    Outcome::Respond(ResponseChunks {
        chunks: vec![encode_unsupported_version(correlation_id)],
    })
}

fn decode<T: Decodable>(api_key: ApiKey, body: &mut Bytes, version: i16) -> Result<T, Outcome> {
    check_request_shape(api_key, version, body)
        .map_err(|e| Outcome::Close(format!("malformed {api_key:?} v{version} request: {e}")))?;
    T::decode(body, version)
        .map_err(|e| Outcome::Close(format!("cannot decode {api_key:?} v{version} request: {e}")))
}

fn respond<T: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Outcome {
    match encode_response(api_key, version, correlation_id, body) {
        Ok(bytes) => Outcome::Respond(ResponseChunks {
            chunks: vec![bytes],
        }),
        Err(e) => {
            tracing::error!(error = %e, "response encoding failed");
            Outcome::Close(e.to_string())
        }
    }
}

async fn dispatch(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    cid: i32,
    api_key: ApiKey,
    mut body: Bytes,
) -> Outcome {
    let v = ctx.api_version;
    macro_rules! serve {
        (async, $handler:expr) => {
            match decode(api_key, &mut body, v) {
                Ok(request) => respond(api_key, v, cid, &$handler(broker, ctx, request).await),
                Err(outcome) => outcome,
            }
        };
        ($handler:expr) => {
            match decode(api_key, &mut body, v) {
                Ok(request) => respond(api_key, v, cid, &$handler(broker, ctx, request)),
                Err(outcome) => outcome,
            }
        };
    }
    match api_key {
        ApiKey::ApiVersions => serve!(handlers::api_versions::handle),
        ApiKey::Metadata => serve!(async, handlers::metadata::handle),
        ApiKey::FindCoordinator => serve!(async, handlers::find_coordinator::handle),
        ApiKey::JoinGroup => serve!(async, handlers::join_group::handle),
        ApiKey::SyncGroup => serve!(async, handlers::sync_group::handle),
        ApiKey::Heartbeat => serve!(async, handlers::heartbeat::handle),
        ApiKey::LeaveGroup => serve!(async, handlers::leave_group::handle),
        ApiKey::OffsetCommit => serve!(async, handlers::offset_commit::handle),
        ApiKey::OffsetFetch => serve!(async, handlers::offset_fetch::handle),
        ApiKey::ListGroups => serve!(async, handlers::list_groups::handle),
        ApiKey::DescribeGroups => serve!(async, handlers::describe_groups::handle),
        ApiKey::DeleteGroups => serve!(async, handlers::delete_groups::handle),
        ApiKey::OffsetDelete => serve!(async, handlers::offset_delete::handle),
        ApiKey::Produce => match decode(api_key, &mut body, v) {
            Ok(request) => {
                drop(body);
                match handlers::produce::handle(broker, ctx, request).await {
                    Some(response) => respond(api_key, v, cid, &response),
                    None => Outcome::NoResponse,
                }
            }
            Err(outcome) => outcome,
        },
        ApiKey::Fetch => match decode(api_key, &mut body, v) {
            Ok(request) => {
                let parts = handlers::fetch::handle(broker, ctx, request).await;
                broker.metrics.record_fetch_response(&parts);
                match encode_fetch_response(v, cid, &parts) {
                    Ok(chunks) => Outcome::Respond(chunks),
                    Err(e) => {
                        tracing::error!(error = %e, "response encoding failed");
                        Outcome::Close(e.to_string())
                    }
                }
            }
            Err(outcome) => outcome,
        },
        ApiKey::ListOffsets => serve!(handlers::list_offsets::handle),
        ApiKey::CreateTopics => serve!(async, handlers::create_topics::handle),
        ApiKey::DeleteTopics => serve!(async, handlers::delete_topics::handle),
        ApiKey::DescribeConfigs => serve!(handlers::describe_configs::handle),
        ApiKey::AlterConfigs => serve!(async, handlers::alter_configs::handle),
        ApiKey::IncrementalAlterConfigs => {
            serve!(async, handlers::alter_configs::handle_incremental)
        }
        ApiKey::CreatePartitions => serve!(async, handlers::create_partitions::handle),
        ApiKey::DeleteRecords => serve!(handlers::delete_records::handle),
        ApiKey::DescribeLogDirs => serve!(handlers::describe_log_dirs::handle),
        ApiKey::DescribeCluster => serve!(handlers::describe_cluster::handle),
        ApiKey::InitProducerId => serve!(async, handlers::init_producer_id::handle),
        ApiKey::AddPartitionsToTxn => serve!(async, handlers::transactions::add_partitions),
        ApiKey::AddOffsetsToTxn => serve!(async, handlers::transactions::add_offsets),
        ApiKey::EndTxn => serve!(async, handlers::transactions::end_txn),
        ApiKey::TxnOffsetCommit => serve!(async, handlers::txn_offset_commit::handle),
        ApiKey::ListTransactions => serve!(async, handlers::transactions::list),
        ApiKey::DescribeProducers => serve!(handlers::describe_producers::handle),
        ApiKey::OffsetForLeaderEpoch => serve!(handlers::offset_for_leader_epoch::handle),
        ApiKey::WriteTxnMarkers => serve!(async, handlers::write_txn_markers::handle),
        ApiKey::DescribeTransactions => serve!(async, handlers::transactions::describe),
        ApiKey::ElectLeaders => serve!(async, handlers::elect_leaders::handle),
        ApiKey::AlterPartitionReassignments => {
            serve!(async, handlers::alter_partition_reassignments::handle)
        }
        ApiKey::ListPartitionReassignments => {
            serve!(handlers::list_partition_reassignments::handle)
        }
        // The version table and this match are kept in step by a test; reaching here means an
        // api was listed without a handler.
        other => {
            tracing::error!(api_key = ?other, "api listed as supported has no handler");
            unsupported(cid)
        }
    }
}
