//! ApiVersions: tells clients exactly which APIs and versions this broker serves.

use fjord_protocol::api_versions::SUPPORTED_APIS;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use crate::dispatch::RequestContext;
use crate::Broker;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|r| {
            let mut v = ApiVersion::default();
            v.api_key = r.api_key as i16;
            v.min_version = r.min_version;
            v.max_version = r.max_version;
            v
        })
        .collect()
}

/// Answers a supported ApiVersions request.
pub(crate) fn handle(
    _broker: &Broker,
    _ctx: &RequestContext<'_>,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = api_keys();
    response
}

/// Kafka's answer to an ApiVersions request newer than the broker knows: encoded at v0, with
/// UNSUPPORTED_VERSION and the full table, so the client retries with a version listed there.
pub(crate) fn unsupported_version_response() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = api_keys();
    response
}
