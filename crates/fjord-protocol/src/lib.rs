//! Kafka wire protocol pieces that Fjord owns itself: size-prefixed framing, the table of
//! API versions the broker serves, and zero-copy views over v2 record batches.
//!
//! Message bodies are encoded and decoded by the `kafka-protocol` crate; this crate holds what
//! sits around them.

pub mod api_versions;
pub mod batch;
pub mod compression;
pub mod fetch_frame;
pub mod frame;
pub mod request_shape;
