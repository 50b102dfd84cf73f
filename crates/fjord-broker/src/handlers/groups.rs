//! Shared pieces of the consumer-group handlers: conversions and the coordinator round trip.

use fjord_group::api::Response;
use fjord_group::ErrorCode;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::group_runtime::GroupRequest;
use crate::Broker;

/// Sends a request to the coordinator; `None` when it is not running (shutdown), which
/// handlers answer with COORDINATOR_NOT_AVAILABLE.
pub(crate) async fn ask(broker: &Broker, request: GroupRequest) -> Option<Response> {
    broker.groups.request(request).await.ok()
}

/// The code sent when the coordinator cannot be reached.
pub(crate) fn unavailable() -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

/// Wire code of a coordinator error.
pub(crate) fn code(e: ErrorCode) -> i16 {
    e.code()
}

/// Codec string to owned string.
pub(crate) fn owned(s: &StrBytes) -> String {
    s.as_str().to_string()
}

/// Optional codec string to optional owned string.
pub(crate) fn owned_opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(owned)
}

/// Optional owned string to optional codec string.
pub(crate) fn wire_opt(s: Option<String>) -> Option<StrBytes> {
    s.map(StrBytes::from_string)
}
