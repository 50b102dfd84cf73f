//! The transaction coordinator's APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! ListTransactions and DescribeTransactions. Each decodes into `fjord_txn`'s request types and
//! asks the coordinator task (`txn_runtime`), which answers once the state change is durable.

use std::collections::BTreeMap;

use fjord_txn::api::{
    AddOffsetsToTxnRequest as AddOffsets, AddPartitionsToTxnRequest as AddPartitions,
    EndTxnRequest as End, Response,
};
use fjord_txn::TopicPartition;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::ResponseError;

use super::groups::owned;
use super::str_bytes;
use crate::authorizer::{Operation, Resource};
use crate::dispatch::RequestContext;
use crate::txn_runtime::TxnRequest;
use crate::Broker;

/// Kafka's state names, for reporting filters nobody can match (ListTransactions).
const STATE_NAMES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// Asks the coordinator; `None` when it is not running (shutdown). A transactional id this
/// broker does not coordinate (cluster mode) is answered here with NOT_COORDINATOR.
pub(crate) async fn ask(broker: &Broker, request: TxnRequest) -> Option<Response> {
    let transactional_id = match &request {
        TxnRequest::InitProducerId(r) => r.transactional_id.as_deref().unwrap_or_default(),
        TxnRequest::AddPartitions(r) => &r.transactional_id,
        TxnRequest::AddOffsets(r) => &r.transactional_id,
        TxnRequest::EndTxn(r) => &r.transactional_id,
    };
    if let Err(refused) = broker.coordinates_transaction(transactional_id) {
        let error = txn_error(refused);
        return Some(match request {
            TxnRequest::InitProducerId(_) => {
                Response::InitProducerId(fjord_txn::api::InitProducerIdResponse::error(error))
            }
            TxnRequest::AddPartitions(_) => Response::AddPartitionsToTxn(error),
            TxnRequest::AddOffsets(_) => Response::AddOffsetsToTxn(error),
            TxnRequest::EndTxn(_) => Response::EndTxn(error),
        });
    }
    broker.transactions.request(request).await.ok()
}

/// The coordinator's error code for a refusal of [`Broker::coordinates_transaction`].
fn txn_error(refused: ResponseError) -> fjord_txn::ErrorCode {
    match refused {
        ResponseError::NotCoordinator => fjord_txn::ErrorCode::NotCoordinator,
        ResponseError::CoordinatorNotAvailable => fjord_txn::ErrorCode::CoordinatorNotAvailable,
        ResponseError::CoordinatorLoadInProgress => fjord_txn::ErrorCode::CoordinatorLoadInProgress,
        other => fjord_txn::ErrorCode::Other(other.code()),
    }
}

fn unavailable() -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

/// AddPartitionsToTxn v0-3: every partition must exist before the coordinator records any, as
/// in Kafka (unknown ones get UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED).
pub(crate) async fn add_partitions(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let transactional_id = owned(&request.v3_and_below_transactional_id);
    let mut refused: BTreeMap<(String, i32), i16> = BTreeMap::new();
    let mut partitions = Vec::new();
    let txn_allowed = broker.authorizer.authorize(
        ctx.session,
        Operation::Write,
        Resource::TransactionalId(&transactional_id),
    );
    for topic in &request.v3_and_below_topics {
        let name = owned(&topic.name);
        let allowed =
            broker
                .authorizer
                .authorize(ctx.session, Operation::Write, Resource::Topic(&name));
        for &p in &topic.partitions {
            let code = if !txn_allowed {
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !allowed {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if !broker.partition_exists(&name, p) {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
                None
            };
            match code {
                Some(code) => {
                    refused.insert((name.clone(), p), code.code());
                }
                None => partitions.push(TopicPartition::new(name.clone(), p)),
            }
        }
    }
    let outcome = if refused.is_empty() {
        let ask_for = AddPartitions {
            version: ctx.api_version,
            transactional_id,
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: request.v3_and_below_producer_epoch,
            partitions,
        };
        match ask(broker, TxnRequest::AddPartitions(ask_for)).await {
            Some(Response::AddPartitionsToTxn(e)) => e.code(),
            _ => unavailable(),
        }
    } else {
        ResponseError::OperationNotAttempted.code()
    };
    let mut response = AddPartitionsToTxnResponse::default();
    for topic in &request.v3_and_below_topics {
        let mut result = AddPartitionsToTxnTopicResult::default();
        result.name = topic.name.clone();
        let name = owned(&topic.name);
        for &p in &topic.partitions {
            let mut r = AddPartitionsToTxnPartitionResult::default();
            r.partition_index = p;
            r.partition_error_code = refused.get(&(name.clone(), p)).copied().unwrap_or(outcome);
            result.results_by_partition.push(r);
        }
        response.results_by_topic_v3_and_below.push(result);
    }
    response
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the transaction.
pub(crate) async fn add_offsets(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let transactional_id = owned(&request.transactional_id);
    let group_id = owned(&request.group_id);
    let mut response = AddOffsetsToTxnResponse::default();
    if !broker.authorizer.authorize(
        ctx.session,
        Operation::Write,
        Resource::TransactionalId(&transactional_id),
    ) {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    if !broker
        .authorizer
        .authorize(ctx.session, Operation::Read, Resource::Group(&group_id))
    {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    let ask_for = AddOffsets {
        version: ctx.api_version,
        transactional_id,
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        group_id,
    };
    response.error_code = match ask(broker, TxnRequest::AddOffsets(ask_for)).await {
        Some(Response::AddOffsetsToTxn(e)) => e.code(),
        _ => unavailable(),
    };
    response
}

/// EndTxn: commit or abort; answered once the decision is durable (markers follow).
pub(crate) async fn end_txn(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: EndTxnRequest,
) -> EndTxnResponse {
    let transactional_id = owned(&request.transactional_id);
    let mut response = EndTxnResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if !broker.authorizer.authorize(
        ctx.session,
        Operation::Write,
        Resource::TransactionalId(&transactional_id),
    ) {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    let ask_for = End {
        version: ctx.api_version,
        transactional_id,
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
    };
    response.error_code = match ask(broker, TxnRequest::EndTxn(ask_for)).await {
        Some(Response::EndTxn(e)) => e.code(),
        _ => unavailable(),
    };
    response
}

/// ListTransactions v0-1 (state and producer-id filters; v1's duration filter).
pub(crate) async fn list(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let states: Vec<String> = request.state_filters.iter().map(owned).collect();
    response.unknown_state_filters = request
        .state_filters
        .iter()
        .filter(|s| !STATE_NAMES.contains(&s.as_str()))
        .cloned()
        .collect();
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let Ok(listed) = broker.transactions.list(states, producer_ids).await else {
        response.error_code = unavailable();
        return response;
    };
    let min_duration =
        (ctx.api_version >= 1 && request.duration_filter >= 0).then_some(request.duration_filter);
    let described = match min_duration {
        Some(_) => {
            let ids = listed.iter().map(|l| l.transactional_id.clone()).collect();
            broker.transactions.describe(ids).await.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let now = crate::log_manager::now_ms();
    for l in listed {
        if !broker.authorizer.authorize(
            ctx.session,
            Operation::Describe,
            Resource::TransactionalId(&l.transactional_id),
        ) {
            continue;
        }
        if let Some(min) = min_duration {
            // Kafka's duration filter: transactions running for at least `min` ms.
            let started = described
                .iter()
                .find(|d| d.transactional_id == l.transactional_id)
                .map_or(-1, |d| d.transaction_start_time_ms);
            if started < 0 || now - started < min {
                continue;
            }
        }
        let mut state = ListedState::default();
        state.transactional_id = TransactionalId(str_bytes(l.transactional_id));
        state.producer_id = ProducerId(l.producer_id);
        state.transaction_state = str_bytes(l.state);
        response.transaction_states.push(state);
    }
    response
}

/// DescribeTransactions v0.
pub(crate) async fn describe(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    let ids: Vec<String> = request
        .transactional_ids
        .iter()
        .map(|id| owned(id))
        .collect();
    let allowed: Vec<bool> = ids
        .iter()
        .map(|id| {
            broker.authorizer.authorize(
                ctx.session,
                Operation::Describe,
                Resource::TransactionalId(id),
            )
        })
        .collect();
    let refused: Vec<Option<ResponseError>> = ids
        .iter()
        .map(|id| broker.coordinates_transaction(id).err())
        .collect();
    let described = broker
        .transactions
        .describe(ids.clone())
        .await
        .unwrap_or_default();
    for (i, id) in ids.into_iter().enumerate() {
        let mut state = DescribedState::default();
        state.transactional_id = TransactionalId(str_bytes(id.clone()));
        state.transaction_start_time_ms = -1;
        state.producer_id = ProducerId(-1);
        state.producer_epoch = -1;
        match described.get(i) {
            _ if !allowed[i] => {
                state.error_code = ResponseError::TransactionalIdAuthorizationFailed.code()
            }
            _ if refused[i].is_some() => {
                state.error_code = refused[i].map_or(0, |r| r.code());
            }
            None => state.error_code = unavailable(),
            Some(d) => {
                state.error_code = d.error.code();
                state.transaction_state = str_bytes(d.state);
                state.transaction_timeout_ms = d.transaction_timeout_ms;
                state.transaction_start_time_ms = d.transaction_start_time_ms;
                state.producer_id = ProducerId(d.producer_id);
                state.producer_epoch = d.producer_epoch;
                let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for tp in &d.partitions {
                    by_topic.entry(&tp.topic).or_default().push(tp.partition);
                }
                for (topic, partitions) in by_topic {
                    let mut t = TopicData::default();
                    t.topic = TopicName(str_bytes(topic));
                    t.partitions = partitions;
                    state.topics.push(t);
                }
            }
        }
        response.transaction_states.push(state);
    }
    response
}
