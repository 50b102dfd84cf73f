//! One module per Kafka API. Each takes the decoded request and returns the response to encode;
//! the version range each serves is listed in `fjord_protocol::api_versions`.

pub(crate) mod api_versions;
pub(crate) mod create_topics;
pub(crate) mod delete_topics;
pub(crate) mod describe_configs;
pub(crate) mod fetch;
pub(crate) mod find_coordinator;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod produce;

use kafka_protocol::protocol::StrBytes;

/// Owned string to the codec's string type.
pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
