//! The KRaft-style metadata quorum of a Fjord cluster.
//!
//! pure part (no I/O) — added with the runtime below.

pub mod api;
pub mod brokers;
pub mod configs;
pub mod decision;
pub mod election;
pub mod error_code;
pub mod image;
pub mod liveness;
pub mod placement;
pub mod reassignment;
pub mod record;
#[cfg(test)]
mod testing;
pub mod topics;

pub use decision::{decide, Decision, Policy, RandomTopicIds, TopicIdSource};
pub use error_code::ErrorCode;
pub use image::{BrokerRegistration, ImageError, MetadataImage, PartitionImage, TopicImage};
pub use record::MetadataRecord;
