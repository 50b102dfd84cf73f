//! The openraft binding: type configuration, durable log and vote storage, the state machine
//! over [`crate::MetadataImage`], and the TCP transport between controllers.

// openraft's storage and network traits return its (large) error types by value; helpers
// here return the same types so `?` works without conversions.
#![allow(clippy::result_large_err)]

pub(crate) mod file;
pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::record::MetadataRecord;

/// One entry of the metadata log as openraft carries it: the records of one decision, which
/// commit (and apply) together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    /// The records, in order.
    pub records: Vec<MetadataRecord>,
}

openraft::declare_raft_types!(
    /// openraft's types for the metadata quorum: node ids are Kafka node ids (as u64),
    /// nodes are `host:port` of the CONTROLLER listener.
    pub(crate) TypeConfig:
        D = MetadataBatch,
        R = (),
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft node of one controller.
pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// Kafka node ids are i32; openraft's are u64. Voter ids are checked non-negative at config.
pub(crate) fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or_default()
}

/// The Kafka node id of an openraft node id.
pub(crate) fn node_id(raft_id: u64) -> i32 {
    i32::try_from(raft_id).unwrap_or(-1)
}
