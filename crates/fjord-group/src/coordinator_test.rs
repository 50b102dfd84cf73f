//! State-machine tests: each drives the coordinator through one behaviour of Kafka's
//! GroupCoordinator and asserts the exact effects emitted.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::api::*;
use crate::records::{GroupMetadataValue, MemberMetadataValue};

const SESSION_MS: i64 = 10_000;
const REBALANCE_MS: i64 = 30_000;

/// A v0 consumer subscription for `topics` (what the Java client sends, minus newer fields).
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    buf.put_i32(topics.len() as i32);
    for topic in topics {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
    }
    buf.put_i32(-1);
    buf.freeze()
}

fn range(topics: &[&str]) -> Vec<GroupProtocol> {
    vec![GroupProtocol {
        name: "range".into(),
        metadata: subscription(topics),
    }]
}

/// The id `SequentialMemberIds` hands out the `n`th time, behind `prefix`.
fn id(prefix: &str, n: u64) -> String {
    format!("{prefix}-00000000-0000-0000-0000-{n:012x}")
}

fn join_request(member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        version: 3,
        group_id: "g".into(),
        session_timeout_ms: SESSION_MS as i32,
        rebalance_timeout_ms: REBALANCE_MS as i32,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: range(&["t"]),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
    }
}

fn static_join_request(member_id: &str, instance_id: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        version: 5,
        group_instance_id: Some(instance_id.into()),
        ..join_request(member_id)
    }
}

fn respond(request_id: u64, response: Response) -> Effect {
    Effect::Respond {
        request_id: RequestId(request_id),
        response,
    }
}

fn timeout(at_ms: i64) -> Effect {
    Effect::ScheduleTimeout { at_ms }
}

fn join_error(request_id: u64, member_id: &str, error: ErrorCode) -> Effect {
    respond(
        request_id,
        Response::JoinGroup(JoinGroupResponse::error(member_id, error)),
    )
}

fn sync_error(request_id: u64, error: ErrorCode) -> Effect {
    respond(
        request_id,
        Response::SyncGroup(SyncGroupResponse::error(error)),
    )
}

fn heartbeat_result(request_id: u64, error: ErrorCode) -> Effect {
    respond(request_id, Response::Heartbeat(HeartbeatResponse { error }))
}

fn meta(member_id: &str, topics: &[&str]) -> JoinGroupMember {
    JoinGroupMember {
        member_id: member_id.into(),
        group_instance_id: None,
        metadata: subscription(topics),
    }
}

fn joined(
    request_id: u64,
    member_id: &str,
    generation_id: i32,
    leader: &str,
    members: Vec<JoinGroupMember>,
) -> Effect {
    respond(
        request_id,
        Response::JoinGroup(JoinGroupResponse {
            error: ErrorCode::None,
            generation_id,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: leader.into(),
            skip_assignment: false,
            member_id: member_id.into(),
            members,
        }),
    )
}

fn synced(request_id: u64, assignment: &'static [u8]) -> Effect {
    respond(
        request_id,
        Response::SyncGroup(SyncGroupResponse {
            error: ErrorCode::None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Bytes::from_static(assignment),
        }),
    )
}

fn config(initial_delay_ms: i64) -> GroupConfig {
    GroupConfig {
        group_initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupConfig::default()
    }
}

fn coordinator(initial_delay_ms: i64) -> GroupCoordinator {
    GroupCoordinator::new(
        config(initial_delay_ms),
        Box::new(SequentialMemberIds::default()),
    )
}

fn sync_request(
    member_id: &str,
    generation_id: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    SyncGroupRequest {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(m, a)| SyncGroupAssignment {
                member_id: (*m).into(),
                assignment: Bytes::from_static(a),
            })
            .collect(),
    }
}

fn heartbeat_request(member_id: &str, generation_id: i32) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
    }
}

fn persist_id(effects: &[Effect]) -> PersistId {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Persist { persist_id, .. } => Some(*persist_id),
            _ => None,
        })
        .expect("a Persist effect")
}

fn persisted_group(effects: &[Effect]) -> GroupMetadataValue {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Persist { records, .. } => records.iter().find_map(|r| match &r.value {
                Some(OffsetsValue::GroupMetadata(v)) => Some(v.clone()),
                _ => None,
            }),
            _ => None,
        })
        .expect("a group metadata record")
}

fn commit_request(
    generation_id: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64, Option<&str>)],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitTopic> = Vec::new();
    for (topic, partition, offset, metadata) in offsets {
        let p = OffsetCommitPartition {
            partition_index: *partition,
            committed_offset: *offset,
            committed_leader_epoch: -1,
            commit_timestamp_ms: -1,
            committed_metadata: metadata.map(str::to_owned),
        };
        match topics.last_mut() {
            Some(t) if t.name == *topic => t.partitions.push(p),
            _ => topics.push(OffsetCommitTopic {
                name: (*topic).into(),
                partitions: vec![p],
            }),
        }
    }
    OffsetCommitRequest {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics,
    }
}

fn commit_result(request_id: u64, results: &[(&str, i32, ErrorCode)]) -> Effect {
    let mut topics: Vec<TopicPartitionErrors> = Vec::new();
    for (topic, partition, error) in results {
        let p = PartitionError {
            partition_index: *partition,
            error: *error,
        };
        match topics.last_mut() {
            Some(t) if t.name == *topic => t.partitions.push(p),
            _ => topics.push(TopicPartitionErrors {
                name: (*topic).into(),
                partitions: vec![p],
            }),
        }
    }
    respond(
        request_id,
        Response::OffsetCommit(OffsetCommitResponse { topics }),
    )
}

fn offset_record(
    topic: &str,
    partition: i32,
    offset: i64,
    metadata: &str,
    commit_timestamp: i64,
) -> OffsetsRecord {
    OffsetsRecord {
        key: OffsetsKey::OffsetCommit(OffsetCommitKey {
            group: "g".into(),
            topic: topic.into(),
            partition,
        }),
        value: Some(OffsetsValue::OffsetCommit(OffsetCommitValue {
            offset,
            leader_epoch: -1,
            metadata: metadata.into(),
            commit_timestamp,
            expire_timestamp: -1,
        })),
    }
}

fn offset_tombstone(topic: &str, partition: i32) -> OffsetsRecord {
    OffsetsRecord {
        key: OffsetsKey::OffsetCommit(OffsetCommitKey {
            group: "g".into(),
            topic: topic.into(),
            partition,
        }),
        value: None,
    }
}

fn group_tombstone() -> OffsetsRecord {
    OffsetsRecord {
        key: OffsetsKey::GroupMetadata(GroupMetadataKey { group: "g".into() }),
        value: None,
    }
}

/// The `__consumer_offsets` partition of `group_id` under the default configuration.
fn offsets_partition(group_id: &str) -> i32 {
    partition_for_group(
        group_id,
        GroupConfig::default().offsets_topic_num_partitions,
    )
}

fn fetch_all(c: &GroupCoordinator) -> Vec<(String, i32, i64)> {
    let response = c.fetch_offsets(&OffsetFetchRequest {
        group_id: "g".into(),
        topics: None,
        require_stable: false,
    });
    response
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .map(move |p| (t.name.clone(), p.partition_index, p.committed_offset))
        })
        .collect()
}

/// Two dynamic members in a Stable generation 1 at t=0: leader `m1` owns "a1", follower `m2`
/// owns "a2"; request ids 1..=4 are used.
fn stable_pair() -> (GroupCoordinator, String, String) {
    let mut c = coordinator(0);
    let (m1, m2) = (id("client", 1), id("client", 2));
    c.join_group(RequestId(1), join_request(""), 0);
    c.join_group(RequestId(2), join_request(""), 0);
    // The second member re-arms the initial delay (0 ms): one more tick completes the join.
    assert_eq!(c.tick(0), vec![timeout(0)]);
    c.tick(0);
    c.sync_group(RequestId(3), sync_request(&m2, 1, &[]), 0);
    let effects = c.sync_group(
        RequestId(4),
        sync_request(&m1, 1, &[(&m1, b"a1"), (&m2, b"a2")]),
        0,
    );
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    (c, m1, m2)
}

// ------------------------------------------------------------------ JoinGroup

#[test]
fn join_into_empty_group_with_delay_completes_after_delay() {
    let mut c = coordinator(3_000);
    let m1 = id("client", 1);
    assert_eq!(
        c.join_group(RequestId(1), join_request(""), 0),
        vec![timeout(3_000)]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(c.tick(2_999), vec![]);
    assert_eq!(
        c.tick(3_000),
        vec![
            joined(1, &m1, 1, &m1, vec![meta(&m1, &["t"])]),
            timeout(3_000 + SESSION_MS)
        ]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn initial_delay_is_extended_while_new_members_keep_arriving() {
    let mut c = coordinator(3_000);
    let (m1, m2) = (id("client", 1), id("client", 2));
    assert_eq!(
        c.join_group(RequestId(1), join_request(""), 0),
        vec![timeout(3_000)]
    );
    assert_eq!(c.join_group(RequestId(2), join_request(""), 1_000), vec![]);
    // Kafka's InitialDelayedJoin re-arms once per burst of new members.
    assert_eq!(c.tick(3_000), vec![timeout(6_000)]);
    assert_eq!(
        c.tick(6_000),
        vec![
            joined(1, &m1, 1, &m1, vec![meta(&m1, &["t"]), meta(&m2, &["t"])]),
            joined(2, &m2, 1, &m1, vec![]),
            timeout(6_000 + SESSION_MS),
        ]
    );
}

#[test]
fn new_member_v4_must_rejoin_with_the_generated_member_id() {
    let mut c = coordinator(0);
    let m1 = id("client", 1);
    let first = JoinGroupRequest {
        version: 4,
        ..join_request("")
    };
    assert_eq!(
        c.join_group(RequestId(1), first, 0),
        vec![
            join_error(1, &m1, ErrorCode::MemberIdRequired),
            timeout(SESSION_MS)
        ]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    let again = JoinGroupRequest {
        version: 4,
        ..join_request(&m1)
    };
    assert_eq!(c.join_group(RequestId(2), again, 5), vec![timeout(5)]);
    assert_eq!(
        c.tick(5),
        vec![
            joined(2, &m1, 1, &m1, vec![meta(&m1, &["t"])]),
            timeout(5 + SESSION_MS)
        ]
    );
}

#[test]
fn pending_member_that_never_rejoins_is_forgotten_after_session_timeout() {
    let mut c = coordinator(0);
    let m1 = id("client", 1);
    c.join_group(
        RequestId(1),
        JoinGroupRequest {
            version: 4,
            ..join_request("")
        },
        0,
    );
    assert_eq!(c.tick(SESSION_MS), vec![]);
    assert_eq!(
        c.join_group(
            RequestId(2),
            JoinGroupRequest {
                version: 4,
                ..join_request(&m1)
            },
            SESSION_MS
        ),
        vec![join_error(2, &m1, ErrorCode::UnknownMemberId)]
    );
}

#[test]
fn join_validation_errors() {
    let cases: Vec<(&str, JoinGroupRequest, ErrorCode)> = vec![
        (
            "empty group id",
            JoinGroupRequest {
                group_id: String::new(),
                ..join_request("")
            },
            ErrorCode::InvalidGroupId,
        ),
        (
            "session too short",
            JoinGroupRequest {
                session_timeout_ms: 5_999,
                ..join_request("")
            },
            ErrorCode::InvalidSessionTimeout,
        ),
        (
            "session too long",
            JoinGroupRequest {
                session_timeout_ms: 1_800_001,
                ..join_request("")
            },
            ErrorCode::InvalidSessionTimeout,
        ),
        (
            "known member id, unknown group",
            join_request("ghost"),
            ErrorCode::UnknownMemberId,
        ),
        (
            "no protocol type",
            JoinGroupRequest {
                protocol_type: String::new(),
                ..join_request("")
            },
            ErrorCode::InconsistentGroupProtocol,
        ),
        (
            "no protocols",
            JoinGroupRequest {
                protocols: vec![],
                ..join_request("")
            },
            ErrorCode::InconsistentGroupProtocol,
        ),
    ];
    for (name, request, error) in cases {
        let mut c = coordinator(0);
        let member_id = request.member_id.clone();
        assert_eq!(
            c.join_group(RequestId(1), request, 0),
            vec![join_error(1, &member_id, error)],
            "{name}"
        );
    }
}

#[test]
fn join_with_other_protocol_type_or_no_common_protocol_is_inconsistent() {
    let cases = [
        (
            "other type",
            JoinGroupRequest {
                protocol_type: "connect".into(),
                ..join_request("")
            },
        ),
        (
            "no common protocol",
            JoinGroupRequest {
                protocols: vec![GroupProtocol {
                    name: "roundrobin".into(),
                    metadata: Bytes::new(),
                }],
                ..join_request("")
            },
        ),
    ];
    for (name, request) in cases {
        let (mut c, _, _) = stable_pair();
        assert_eq!(
            c.join_group(RequestId(9), request, 0),
            vec![join_error(9, "", ErrorCode::InconsistentGroupProtocol)],
            "{name}"
        );
    }
}

#[test]
fn group_max_size_reached_rejects_an_extra_member() {
    let mut c = GroupCoordinator::new(
        GroupConfig {
            group_max_size: 1,
            ..config(0)
        },
        Box::new(SequentialMemberIds::default()),
    );
    c.join_group(RequestId(1), join_request(""), 0);
    c.tick(0);
    assert_eq!(
        c.join_group(RequestId(2), join_request(""), 1),
        vec![join_error(2, "", ErrorCode::GroupMaxSizeReached)]
    );
}

#[test]
fn protocol_selection_follows_member_votes() {
    let mut c = coordinator(0);
    let p = |names: &[&str]| -> Vec<GroupProtocol> {
        names
            .iter()
            .map(|n| GroupProtocol {
                name: (*n).into(),
                metadata: Bytes::new(),
            })
            .collect()
    };
    // Everyone supports both; two of three prefer "roundrobin".
    c.join_group(
        RequestId(1),
        JoinGroupRequest {
            protocols: p(&["range", "roundrobin"]),
            ..join_request("")
        },
        0,
    );
    c.join_group(
        RequestId(2),
        JoinGroupRequest {
            protocols: p(&["roundrobin", "range"]),
            ..join_request("")
        },
        0,
    );
    c.join_group(
        RequestId(3),
        JoinGroupRequest {
            protocols: p(&["roundrobin", "range", "sticky"]),
            ..join_request("")
        },
        0,
    );
    c.tick(0);
    let effects = c.tick(0);
    let Effect::Respond {
        response: Response::JoinGroup(leader),
        ..
    } = &effects[0]
    else {
        panic!("{effects:?}")
    };
    assert_eq!(leader.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn follower_rejoin_with_same_metadata_in_stable_returns_current_generation() {
    let (mut c, m1, m2) = stable_pair();
    assert_eq!(
        c.join_group(RequestId(9), join_request(&m2), 1),
        vec![joined(9, &m2, 1, &m1, vec![])]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn leader_rejoin_in_stable_forces_a_rebalance() {
    let (mut c, m1, m2) = stable_pair();
    // The next deadline is still the members' sessions (10s), so nothing new is announced.
    assert_eq!(c.join_group(RequestId(9), join_request(&m1), 1), vec![]);
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    // The follower learns of the rebalance from its heartbeat and rejoins; the join then
    // completes at once because everyone is back.
    assert_eq!(
        c.heartbeat(RequestId(10), heartbeat_request(&m2, 1), 2),
        vec![heartbeat_result(10, ErrorCode::RebalanceInProgress)]
    );
    assert_eq!(
        c.join_group(RequestId(11), join_request(&m2), 3),
        vec![
            joined(9, &m1, 2, &m1, vec![meta(&m1, &["t"]), meta(&m2, &["t"])]),
            joined(11, &m2, 2, &m1, vec![]),
            timeout(3 + SESSION_MS),
        ]
    );
}

#[test]
fn rebalance_removes_dynamic_members_that_did_not_rejoin_in_time() {
    let (mut c, m1, m2) = stable_pair();
    c.join_group(RequestId(9), join_request(&m1), 1_000);
    // m2 keeps heartbeating but never rejoins.
    c.heartbeat(RequestId(10), heartbeat_request(&m2, 1), 5_000);
    assert_eq!(
        c.tick(1_000 + REBALANCE_MS),
        vec![
            joined(9, &m1, 2, &m1, vec![meta(&m1, &["t"])]),
            timeout(1_000 + REBALANCE_MS + SESSION_MS)
        ]
    );
    assert_eq!(
        c.heartbeat(RequestId(11), heartbeat_request(&m2, 1), 31_001),
        vec![heartbeat_result(11, ErrorCode::UnknownMemberId)]
    );
}

// ------------------------------------------------------------------ SyncGroup

#[test]
fn leader_sync_completes_followers() {
    let mut c = coordinator(0);
    let (m1, m2) = (id("client", 1), id("client", 2));
    c.join_group(RequestId(1), join_request(""), 0);
    c.join_group(RequestId(2), join_request(""), 0);
    // The second member re-arms the initial delay (0 ms): one more tick completes the join.
    assert_eq!(c.tick(0), vec![timeout(0)]);
    c.tick(0);
    // The follower parks until the leader's assignment is written.
    assert_eq!(
        c.sync_group(RequestId(3), sync_request(&m2, 1, &[]), 10),
        vec![]
    );
    let effects = c.sync_group(
        RequestId(4),
        sync_request(&m1, 1, &[(&m1, b"a1"), (&m2, b"a2")]),
        20,
    );
    let member = |member_id: &str, assignment: &'static [u8]| MemberMetadataValue {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout: REBALANCE_MS as i32,
        session_timeout: SESSION_MS as i32,
        subscription: subscription(&["t"]),
        assignment: Bytes::from_static(assignment),
    };
    assert_eq!(
        effects,
        vec![Effect::Persist {
            persist_id: PersistId(1),
            group_id: "g".into(),
            transaction: None,
            records: vec![OffsetsRecord {
                key: OffsetsKey::GroupMetadata(GroupMetadataKey { group: "g".into() }),
                value: Some(OffsetsValue::GroupMetadata(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation: 1,
                    protocol: Some("range".into()),
                    leader: Some(m1.clone()),
                    current_state_timestamp: 0,
                    members: vec![member(&m1, b"a1"), member(&m2, b"a2")],
                })),
            }],
        }]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        c.complete_persist(PersistId(1), Ok(()), 30),
        vec![synced(4, b"a1"), synced(3, b"a2"), timeout(30 + SESSION_MS)]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn sync_errors_where_kafka_returns_them() {
    let cases: Vec<(&str, SyncGroupRequest, ErrorCode)> = vec![
        (
            "unknown group",
            SyncGroupRequest {
                group_id: "other".into(),
                ..sync_request("x", 1, &[])
            },
            ErrorCode::UnknownMemberId,
        ),
        (
            "empty group id",
            SyncGroupRequest {
                group_id: String::new(),
                ..sync_request("x", 1, &[])
            },
            ErrorCode::InvalidGroupId,
        ),
        (
            "unknown member",
            sync_request("x", 1, &[]),
            ErrorCode::UnknownMemberId,
        ),
        (
            "stale generation",
            sync_request(&id("client", 2), 0, &[]),
            ErrorCode::IllegalGeneration,
        ),
        (
            "other protocol",
            SyncGroupRequest {
                protocol_name: Some("roundrobin".into()),
                ..sync_request(&id("client", 2), 1, &[])
            },
            ErrorCode::InconsistentGroupProtocol,
        ),
    ];
    for (name, request, error) in cases {
        let (mut c, _, _) = stable_pair();
        assert_eq!(
            c.sync_group(RequestId(9), request, 1),
            vec![sync_error(9, error)],
            "{name}"
        );
    }
}

#[test]
fn sync_during_preparing_rebalance_is_rebalance_in_progress() {
    let (mut c, m1, m2) = stable_pair();
    c.join_group(RequestId(9), join_request(&m1), 1);
    assert_eq!(
        c.sync_group(RequestId(10), sync_request(&m2, 1, &[]), 2),
        vec![sync_error(10, ErrorCode::RebalanceInProgress)]
    );
}

#[test]
fn follower_sync_in_stable_returns_its_assignment() {
    let (mut c, _, m2) = stable_pair();
    assert_eq!(
        c.sync_group(RequestId(9), sync_request(&m2, 1, &[]), 5),
        vec![synced(9, b"a2")]
    );
}

#[test]
fn failed_assignment_write_fails_parked_syncs_and_rebalances() {
    let mut c = coordinator(0);
    let (m1, m2) = (id("client", 1), id("client", 2));
    c.join_group(RequestId(1), join_request(""), 0);
    c.join_group(RequestId(2), join_request(""), 0);
    // The second member re-arms the initial delay (0 ms): one more tick completes the join.
    assert_eq!(c.tick(0), vec![timeout(0)]);
    c.tick(0);
    c.sync_group(RequestId(3), sync_request(&m2, 1, &[]), 0);
    let effects = c.sync_group(RequestId(4), sync_request(&m1, 1, &[(&m1, b"a1")]), 0);
    // NOT_LEADER_OR_FOLLOWER (6) becomes NOT_COORDINATOR for the clients.
    assert_eq!(
        c.complete_persist(persist_id(&effects), Err(6), 5),
        vec![
            sync_error(4, ErrorCode::NotCoordinator),
            sync_error(3, ErrorCode::NotCoordinator),
            timeout(5 + SESSION_MS)
        ]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn member_that_never_syncs_is_removed_after_rebalance_timeout() {
    let mut c = coordinator(0);
    let (m1, m2) = (id("client", 1), id("client", 2));
    c.join_group(RequestId(1), join_request(""), 0);
    c.join_group(RequestId(2), join_request(""), 0);
    // The second member re-arms the initial delay (0 ms): one more tick completes the join.
    assert_eq!(c.tick(0), vec![timeout(0)]);
    c.tick(0);
    let effects = c.sync_group(RequestId(3), sync_request(&m1, 1, &[(&m1, b"a1")]), 0);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    // m1 heartbeats; m2 never sends SyncGroup. Its session (10s) is shorter than the sync
    // deadline (30s) but it heartbeats too, so only the pending-sync deadline catches it.
    for t in [8_000, 16_000, 24_000] {
        c.heartbeat(RequestId(10), heartbeat_request(&m1, 1), t);
        c.heartbeat(RequestId(11), heartbeat_request(&m2, 1), t);
    }
    c.tick(REBALANCE_MS);
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat(RequestId(12), heartbeat_request(&m2, 1), REBALANCE_MS),
        vec![heartbeat_result(12, ErrorCode::UnknownMemberId)]
    );
}

// ------------------------------------------------------------------ Heartbeat and sessions

#[test]
fn heartbeat_errors_where_kafka_returns_them() {
    let cases: Vec<(&str, HeartbeatRequest, ErrorCode)> = vec![
        (
            "ok",
            heartbeat_request(&id("client", 2), 1),
            ErrorCode::None,
        ),
        (
            "unknown group",
            HeartbeatRequest {
                group_id: "other".into(),
                ..heartbeat_request("x", 1)
            },
            ErrorCode::UnknownMemberId,
        ),
        (
            "empty group id",
            HeartbeatRequest {
                group_id: String::new(),
                ..heartbeat_request("x", 1)
            },
            ErrorCode::InvalidGroupId,
        ),
        (
            "unknown member",
            heartbeat_request("x", 1),
            ErrorCode::UnknownMemberId,
        ),
        (
            "stale generation",
            heartbeat_request(&id("client", 2), 0),
            ErrorCode::IllegalGeneration,
        ),
    ];
    for (name, request, error) in cases {
        let (mut c, _, _) = stable_pair();
        let effects = c.heartbeat(RequestId(9), request, 1);
        assert_eq!(effects[0], heartbeat_result(9, error), "{name}");
    }
}

#[test]
fn heartbeat_resets_the_session_deadline() {
    let (mut c, m1, m2) = stable_pair();
    assert_eq!(c.next_deadline_ms(), Some(SESSION_MS));
    assert_eq!(
        c.heartbeat(RequestId(9), heartbeat_request(&m1, 1), 4_000),
        vec![heartbeat_result(9, ErrorCode::None)]
    );
    assert_eq!(
        c.heartbeat(RequestId(10), heartbeat_request(&m2, 1), 5_000),
        vec![heartbeat_result(10, ErrorCode::None), timeout(14_000)]
    );
}

#[test]
fn member_missing_heartbeats_is_evicted_after_session_timeout() {
    let (mut c, m1, m2) = stable_pair();
    c.heartbeat(RequestId(9), heartbeat_request(&m1, 1), 9_000);
    // m2's session ends at 10s: it is removed and the group rebalances (join deadline 40s);
    // the next deadline is m1's session.
    assert_eq!(c.tick(SESSION_MS), vec![timeout(19_000)]);
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.heartbeat(RequestId(10), heartbeat_request(&m1, 1), 11_000),
        vec![
            heartbeat_result(10, ErrorCode::RebalanceInProgress),
            timeout(21_000)
        ]
    );
    assert_eq!(
        c.join_group(RequestId(11), join_request(&m1), 12_000),
        vec![
            joined(11, &m1, 2, &m1, vec![meta(&m1, &["t"])]),
            timeout(22_000)
        ]
    );
    assert_eq!(
        c.heartbeat(RequestId(12), heartbeat_request(&m2, 1), 12_000),
        vec![heartbeat_result(12, ErrorCode::UnknownMemberId)]
    );
}

#[test]
fn last_member_expiring_makes_the_group_empty() {
    let mut c = coordinator(0);
    let m1 = id("client", 1);
    c.join_group(RequestId(1), join_request(""), 0);
    c.tick(0);
    let effects = c.sync_group(RequestId(2), sync_request(&m1, 1, &[(&m1, b"a1")]), 0);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    // Expiry starts a rebalance that completes at once (no members left) into Empty, whose
    // metadata (generation 2, no protocol, no leader) is written.
    let effects = c.tick(SESSION_MS);
    assert_eq!(
        effects,
        vec![Effect::Persist {
            persist_id: PersistId(2),
            group_id: "g".into(),
            transaction: None,
            records: vec![OffsetsRecord {
                key: OffsetsKey::GroupMetadata(GroupMetadataKey { group: "g".into() }),
                value: Some(OffsetsValue::GroupMetadata(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation: 2,
                    protocol: None,
                    leader: None,
                    current_state_timestamp: SESSION_MS,
                    members: vec![],
                })),
            }],
        }]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(c.next_deadline_ms(), None);
}

#[test]
fn new_member_joining_a_rebalance_is_in_the_next_generation() {
    let (mut c, m1, m2) = stable_pair();
    // m1 (leader) rejoins, a new member joins; m2 stays in the group without rejoining, so
    // the join phase waits for the rebalance timeout; the new member's own deadline is 5 min.
    c.heartbeat(RequestId(8), heartbeat_request(&m2, 1), 0);
    c.join_group(RequestId(9), join_request(&m1), 0);
    c.join_group(RequestId(10), join_request(""), 0);
    let m3 = id("client", 3);
    let effects = c.tick(REBALANCE_MS);
    assert_eq!(
        effects,
        vec![
            joined(9, &m1, 2, &m1, vec![meta(&m1, &["t"]), meta(&m3, &["t"])]),
            joined(10, &m3, 2, &m1, vec![]),
            timeout(REBALANCE_MS + SESSION_MS),
        ]
    );
    assert_eq!(NEW_MEMBER_JOIN_TIMEOUT_MS, 300_000);
}

// ------------------------------------------------------------------ LeaveGroup

#[test]
fn leave_group_batches_members_and_triggers_rebalance() {
    let (mut c, m1, m2) = stable_pair();
    let request = LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![
            MemberIdentity {
                member_id: m2.clone(),
                group_instance_id: None,
            },
            MemberIdentity {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
        ],
    };
    assert_eq!(
        c.leave_group(RequestId(9), request, 1),
        vec![respond(
            9,
            Response::LeaveGroup(LeaveGroupResponse {
                error: ErrorCode::None,
                members: vec![
                    LeaveGroupMemberResponse {
                        member_id: m2.clone(),
                        group_instance_id: None,
                        error: ErrorCode::None
                    },
                    LeaveGroupMemberResponse {
                        member_id: "ghost".into(),
                        group_instance_id: None,
                        error: ErrorCode::UnknownMemberId
                    },
                ],
            })
        ),]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        c.join_group(RequestId(10), join_request(&m1), 2),
        vec![
            joined(10, &m1, 2, &m1, vec![meta(&m1, &["t"])]),
            timeout(2 + SESSION_MS)
        ]
    );
}

#[test]
fn leave_from_unknown_group_reports_unknown_member_per_member() {
    let mut c = coordinator(0);
    let request = LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![MemberIdentity {
            member_id: "m".into(),
            group_instance_id: None,
        }],
    };
    let effects = c.leave_group(RequestId(1), request, 0);
    let Effect::Respond {
        response: Response::LeaveGroup(response),
        ..
    } = &effects[0]
    else {
        panic!()
    };
    assert_eq!(response.members[0].error, ErrorCode::UnknownMemberId);
}

// ------------------------------------------------------------------ Static membership

/// Static members "i1" (leader) and "i2" Stable at generation 1; ids "i1-…1" and "i2-…2".
fn stable_static_pair() -> (GroupCoordinator, String, String) {
    let mut c = coordinator(0);
    let (s1, s2) = (id("i1", 1), id("i2", 2));
    c.join_group(RequestId(1), static_join_request("", "i1"), 0);
    c.join_group(RequestId(2), static_join_request("", "i2"), 0);
    assert_eq!(c.tick(0), vec![timeout(0)]);
    c.tick(0);
    c.sync_group(
        RequestId(3),
        SyncGroupRequest {
            group_instance_id: Some("i2".into()),
            ..sync_request(&s2, 1, &[])
        },
        0,
    );
    let effects = c.sync_group(
        RequestId(4),
        sync_request(&s1, 1, &[(&s1, b"a1"), (&s2, b"a2")]),
        0,
    );
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    (c, s1, s2)
}

#[test]
fn static_member_rejoin_in_stable_does_not_rebalance() {
    let (mut c, s1, s2) = stable_static_pair();
    let s2_new = id("i2", 3);
    // A restarted "i2" joins without a member id: it takes over the old member's place.
    let effects = c.join_group(RequestId(9), static_join_request("", "i2"), 100);
    let record = persisted_group(&effects);
    assert_eq!(record.generation, 1);
    assert_eq!(
        record
            .members
            .iter()
            .map(|m| (m.member_id.as_str(), m.assignment.as_ref()))
            .collect::<Vec<_>>(),
        vec![
            (s1.as_str(), b"a1".as_ref()),
            (s2_new.as_str(), b"a2".as_ref())
        ]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Stable));
    assert_eq!(
        c.complete_persist(persist_id(&effects), Ok(()), 110),
        vec![joined(9, &s2_new, 1, &s1, vec![])]
    );
    // The follower then syncs and gets its old assignment without the leader reassigning.
    let sync = SyncGroupRequest {
        group_instance_id: Some("i2".into()),
        ..sync_request(&s2_new, 1, &[])
    };
    assert_eq!(
        c.sync_group(RequestId(10), sync, 120),
        vec![synced(10, b"a2")]
    );
    // The old member id is fenced.
    let zombie = HeartbeatRequest {
        group_instance_id: Some("i2".into()),
        ..heartbeat_request(&s2, 1)
    };
    assert_eq!(
        c.heartbeat(RequestId(11), zombie, 130),
        vec![heartbeat_result(11, ErrorCode::FencedInstanceId)]
    );
}

#[test]
fn old_member_id_of_replaced_static_member_is_fenced_everywhere() {
    let (mut c, _, s2) = stable_static_pair();
    let effects = c.join_group(RequestId(9), static_join_request("", "i2"), 100);
    c.complete_persist(persist_id(&effects), Ok(()), 100);
    let instance = Some("i2".to_owned());
    assert_eq!(
        c.join_group(RequestId(10), static_join_request(&s2, "i2"), 101),
        vec![join_error(10, &s2, ErrorCode::FencedInstanceId)]
    );
    assert_eq!(
        c.sync_group(
            RequestId(11),
            SyncGroupRequest {
                group_instance_id: instance.clone(),
                ..sync_request(&s2, 1, &[])
            },
            101
        ),
        vec![sync_error(11, ErrorCode::FencedInstanceId)]
    );
    let commit = OffsetCommitRequest {
        group_instance_id: instance,
        ..commit_request(1, &s2, &[("t", 0, 1, None)])
    };
    assert_eq!(
        c.commit_offsets(RequestId(12), commit, 101),
        vec![commit_result(12, &[("t", 0, ErrorCode::FencedInstanceId)])]
    );
}

#[test]
fn static_leader_rejoin_v9_skips_assignment_and_pre_v9_sees_old_leader() {
    let cases = [(9, true), (5, false)];
    for (version, skip) in cases {
        let (mut c, s1, s2) = stable_static_pair();
        let s1_new = id("i1", 3);
        let effects = c.join_group(
            RequestId(9),
            JoinGroupRequest {
                version,
                ..static_join_request("", "i1")
            },
            100,
        );
        let expected = JoinGroupResponse {
            error: ErrorCode::None,
            generation_id: 1,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader: if skip { s1_new.clone() } else { s1.clone() },
            skip_assignment: skip,
            member_id: s1_new.clone(),
            members: if skip {
                vec![
                    JoinGroupMember {
                        group_instance_id: Some("i1".into()),
                        ..meta(&s1_new, &["t"])
                    },
                    JoinGroupMember {
                        group_instance_id: Some("i2".into()),
                        ..meta(&s2, &["t"])
                    },
                ]
            } else {
                vec![]
            },
        };
        assert_eq!(
            c.complete_persist(persist_id(&effects), Ok(()), 100),
            vec![respond(9, Response::JoinGroup(expected))],
            "v{version}"
        );
    }
}

#[test]
fn failed_static_member_write_reverts_to_the_old_member_id() {
    let (mut c, s1, s2) = stable_static_pair();
    let effects = c.join_group(RequestId(9), static_join_request("", "i2"), 100);
    let mut expected = JoinGroupResponse::error("", ErrorCode::CoordinatorNotAvailable);
    expected.generation_id = 1;
    expected.protocol_type = Some("consumer".into());
    expected.protocol_name = Some("range".into());
    expected.leader = s1;
    // NOT_ENOUGH_REPLICAS (19) becomes COORDINATOR_NOT_AVAILABLE.
    assert_eq!(
        c.complete_persist(persist_id(&effects), Err(19), 100),
        vec![respond(9, Response::JoinGroup(expected))]
    );
    let hb = HeartbeatRequest {
        group_instance_id: Some("i2".into()),
        ..heartbeat_request(&s2, 1)
    };
    assert_eq!(
        c.heartbeat(RequestId(10), hb, 101)[0],
        heartbeat_result(10, ErrorCode::None)
    );
}

#[test]
fn static_member_in_rebalance_keeps_its_place_without_rejoining() {
    let (mut c, s1, s2) = stable_static_pair();
    // s1 (leader) rejoins; static s2 does not. At the rebalance timeout s2 is kept (static
    // members are not dropped for not rejoining) and is part of generation 2.
    c.join_group(RequestId(9), static_join_request(&s1, "i1"), 0);
    for t in [8_000, 16_000, 24_000] {
        let hb = HeartbeatRequest {
            group_instance_id: Some("i2".into()),
            ..heartbeat_request(&s2, 1)
        };
        assert_eq!(
            c.heartbeat(RequestId(8), hb, t)[0],
            heartbeat_result(8, ErrorCode::RebalanceInProgress)
        );
    }
    let effects = c.tick(REBALANCE_MS);
    let Effect::Respond {
        response: Response::JoinGroup(leader),
        ..
    } = &effects[0]
    else {
        panic!("{effects:?}")
    };
    assert_eq!(leader.generation_id, 2);
    assert_eq!(leader.members.len(), 2);
}

#[test]
fn static_member_can_be_removed_by_instance_id() {
    let (mut c, _, s2) = stable_static_pair();
    let request = LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![MemberIdentity {
            member_id: String::new(),
            group_instance_id: Some("i2".into()),
        }],
    };
    let effects = c.leave_group(RequestId(9), request, 1);
    let Effect::Respond {
        response: Response::LeaveGroup(response),
        ..
    } = &effects[0]
    else {
        panic!()
    };
    assert_eq!(response.members[0].error, ErrorCode::None);
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    let hb = HeartbeatRequest {
        group_instance_id: Some("i2".into()),
        ..heartbeat_request(&s2, 1)
    };
    assert_eq!(
        c.heartbeat(RequestId(10), hb, 2)[0],
        heartbeat_result(10, ErrorCode::UnknownMemberId)
    );
}

// ------------------------------------------------------------------ Offsets

#[test]
fn simple_consumer_commit_to_unknown_group_is_allowed() {
    let mut c = coordinator(0);
    let effects = c.commit_offsets(
        RequestId(1),
        commit_request(-1, "", &[("t", 0, 42, Some("m")), ("t", 1, 7, None)]),
        1_000,
    );
    assert_eq!(
        effects,
        vec![Effect::Persist {
            persist_id: PersistId(1),
            group_id: "g".into(),
            transaction: None,
            records: vec![
                offset_record("t", 0, 42, "m", 1_000),
                offset_record("t", 1, 7, "", 1_000)
            ],
        }]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    // Until the append completes the offsets are not visible (and "unstable" if asked).
    assert_eq!(fetch_all(&c), vec![]);
    assert_eq!(
        c.complete_persist(PersistId(1), Ok(()), 1_001),
        vec![commit_result(
            1,
            &[("t", 0, ErrorCode::None), ("t", 1, ErrorCode::None)]
        )]
    );
    assert_eq!(fetch_all(&c), vec![("t".into(), 0, 42), ("t".into(), 1, 7)]);
}

#[test]
fn commit_validation_errors() {
    let (m1, m2) = (id("client", 1), id("client", 2));
    let cases: Vec<(&str, OffsetCommitRequest, ErrorCode)> = vec![
        (
            "stale generation",
            commit_request(0, &m1, &[("t", 0, 1, None)]),
            ErrorCode::IllegalGeneration,
        ),
        (
            "future generation",
            commit_request(2, &m2, &[("t", 0, 1, None)]),
            ErrorCode::IllegalGeneration,
        ),
        (
            "unknown member",
            commit_request(1, "ghost", &[("t", 0, 1, None)]),
            ErrorCode::UnknownMemberId,
        ),
        (
            "simple commit to a live group",
            commit_request(-1, "", &[("t", 0, 1, None)]),
            ErrorCode::UnknownMemberId,
        ),
    ];
    for (name, request, error) in cases {
        let (mut c, _, _) = stable_pair();
        assert_eq!(
            c.commit_offsets(RequestId(9), request, 1),
            vec![commit_result(9, &[("t", 0, error)])],
            "{name}"
        );
    }
}

#[test]
fn commit_with_stale_generation_is_illegal_generation() {
    let (mut c, m1, _) = stable_pair();
    assert_eq!(
        c.commit_offsets(
            RequestId(9),
            commit_request(0, &m1, &[("t", 0, 5, None), ("u", 3, 6, None)]),
            1
        ),
        vec![commit_result(
            9,
            &[
                ("t", 0, ErrorCode::IllegalGeneration),
                ("u", 3, ErrorCode::IllegalGeneration)
            ]
        )]
    );
}

#[test]
fn group_commit_to_unknown_group_is_illegal_generation() {
    let mut c = coordinator(0);
    assert_eq!(
        c.commit_offsets(
            RequestId(1),
            commit_request(3, "m", &[("t", 0, 5, None)]),
            0
        ),
        vec![commit_result(1, &[("t", 0, ErrorCode::IllegalGeneration)])]
    );
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn member_commit_in_stable_group_is_stored_and_resets_its_session() {
    let (mut c, m1, _) = stable_pair();
    let effects = c.commit_offsets(
        RequestId(9),
        commit_request(1, &m1, &[("t", 0, 5, None)]),
        4_000,
    );
    assert_eq!(
        effects,
        vec![Effect::Persist {
            persist_id: PersistId(2),
            group_id: "g".into(),
            transaction: None,
            records: vec![offset_record("t", 0, 5, "", 4_000)]
        }]
    );
    assert_eq!(
        c.complete_persist(PersistId(2), Ok(()), 4_001),
        vec![commit_result(9, &[("t", 0, ErrorCode::None)])]
    );
}

#[test]
fn commit_during_completing_rebalance_is_rebalance_in_progress() {
    let mut c = coordinator(0);
    let m1 = id("client", 1);
    c.join_group(RequestId(1), join_request(""), 0);
    c.tick(0);
    assert_eq!(
        c.commit_offsets(
            RequestId(2),
            commit_request(1, &m1, &[("t", 0, 5, None)]),
            1
        ),
        vec![commit_result(
            2,
            &[("t", 0, ErrorCode::RebalanceInProgress)]
        )]
    );
}

#[test]
fn oversized_metadata_is_offset_metadata_too_large_per_partition() {
    let mut c = GroupCoordinator::new(
        GroupConfig {
            offset_metadata_max_bytes: 3,
            ..config(0)
        },
        Box::new(SequentialMemberIds::default()),
    );
    // "ééé" is 6 UTF-8 bytes but 3 UTF-16 units: Java's String.length() accepts it.
    let effects = c.commit_offsets(
        RequestId(1),
        commit_request(
            -1,
            "",
            &[("t", 0, 1, Some("ééé")), ("t", 1, 2, Some("abcd"))],
        ),
        0,
    );
    assert_eq!(
        effects,
        vec![Effect::Persist {
            persist_id: PersistId(1),
            group_id: "g".into(),
            transaction: None,
            records: vec![offset_record("t", 0, 1, "ééé", 0)]
        }]
    );
    assert_eq!(
        c.complete_persist(PersistId(1), Ok(()), 0),
        vec![commit_result(
            1,
            &[
                ("t", 0, ErrorCode::None),
                ("t", 1, ErrorCode::OffsetMetadataTooLarge)
            ]
        )]
    );
    assert_eq!(
        c.commit_offsets(
            RequestId(2),
            commit_request(-1, "", &[("t", 1, 2, Some("abcd"))]),
            0
        ),
        vec![commit_result(
            2,
            &[("t", 1, ErrorCode::OffsetMetadataTooLarge)]
        )]
    );
}

#[test]
fn failed_offset_append_maps_errors_and_keeps_old_offsets() {
    let cases = [
        (6, ErrorCode::NotCoordinator),
        (19, ErrorCode::CoordinatorNotAvailable),
        (10, ErrorCode::InvalidCommitOffsetSize),
    ];
    for (append_error, error) in cases {
        let mut c = coordinator(0);
        let effects = c.commit_offsets(
            RequestId(1),
            commit_request(-1, "", &[("t", 0, 1, None)]),
            0,
        );
        c.complete_persist(persist_id(&effects), Ok(()), 0);
        let effects = c.commit_offsets(
            RequestId(2),
            commit_request(-1, "", &[("t", 0, 9, None)]),
            0,
        );
        assert_eq!(
            c.complete_persist(persist_id(&effects), Err(append_error), 0),
            vec![commit_result(2, &[("t", 0, error)])]
        );
        assert_eq!(fetch_all(&c), vec![("t".into(), 0, 1)]);
    }
}

#[test]
fn fetch_reports_missing_partitions_as_minus_one_and_pending_as_unstable() {
    let mut c = coordinator(0);
    let effects = c.commit_offsets(
        RequestId(1),
        commit_request(-1, "", &[("t", 0, 5, Some("x"))]),
        0,
    );
    let request = |require_stable| OffsetFetchRequest {
        group_id: "g".into(),
        topics: Some(vec![TopicPartitions {
            name: "t".into(),
            partition_indexes: vec![0, 1],
        }]),
        require_stable,
    };
    let partition =
        |partition_index, committed_offset, metadata: &str, error| OffsetFetchPartition {
            partition_index,
            committed_offset,
            committed_leader_epoch: -1,
            metadata: metadata.into(),
            error,
        };
    assert_eq!(
        c.fetch_offsets(&request(true)).topics[0].partitions,
        vec![
            partition(0, -1, "", ErrorCode::UnstableOffsetCommit),
            partition(1, -1, "", ErrorCode::None)
        ]
    );
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    assert_eq!(
        c.fetch_offsets(&request(true)).topics[0].partitions,
        vec![
            partition(0, 5, "x", ErrorCode::None),
            partition(1, -1, "", ErrorCode::None)
        ]
    );
    let unknown = OffsetFetchRequest {
        group_id: "nope".into(),
        ..request(false)
    };
    assert_eq!(
        c.fetch_offsets(&unknown).topics[0].partitions[0],
        partition(0, -1, "", ErrorCode::None)
    );
}

#[test]
fn leader_epoch_and_v1_commit_timestamp_are_kept() {
    let mut c = coordinator(0);
    let mut request = commit_request(-1, "", &[("t", 0, 5, None)]);
    request.topics[0].partitions[0].committed_leader_epoch = 7;
    request.topics[0].partitions[0].commit_timestamp_ms = 123;
    let effects = c.commit_offsets(RequestId(1), request, 1_000);
    let Effect::Persist { records, .. } = &effects[0] else {
        panic!()
    };
    assert_eq!(
        records[0].value,
        Some(OffsetsValue::OffsetCommit(OffsetCommitValue {
            offset: 5,
            leader_epoch: 7,
            metadata: String::new(),
            commit_timestamp: 123,
            expire_timestamp: -1
        }))
    );
    c.complete_persist(persist_id(&effects), Ok(()), 1_000);
    let fetched = c.fetch_offsets(&OffsetFetchRequest {
        group_id: "g".into(),
        topics: None,
        require_stable: false,
    });
    assert_eq!(fetched.topics[0].partitions[0].committed_leader_epoch, 7);
}

// ------------------------------------------------------------------ Deletion and expiry

#[test]
fn delete_groups_only_deletes_empty_groups() {
    let (mut c, _, _) = stable_pair();
    let effects = c.commit_offsets(
        RequestId(9),
        commit_request(-1, "", &[("t", 0, 1, None)]),
        0,
    );
    assert_eq!(
        effects,
        vec![commit_result(9, &[("t", 0, ErrorCode::UnknownMemberId)])]
    );
    let mut empty = coordinator(0);
    let effects = empty.commit_offsets(
        RequestId(1),
        commit_request(-1, "", &[("t", 0, 1, None)]),
        0,
    );
    empty.complete_persist(persist_id(&effects), Ok(()), 0);
    let groups = ["g".to_owned(), "missing".to_owned()];
    assert_eq!(
        c.delete_groups(RequestId(10), &groups, 1),
        vec![respond(
            10,
            Response::DeleteGroups(DeleteGroupsResponse {
                results: vec![
                    DeletedGroup {
                        group_id: "g".into(),
                        error: ErrorCode::NonEmptyGroup
                    },
                    DeletedGroup {
                        group_id: "missing".into(),
                        error: ErrorCode::GroupIdNotFound
                    },
                ]
            })
        )]
    );
    // Generation 0 (offsets only): offset tombstones but no group tombstone, tombstones first.
    assert_eq!(
        empty.delete_groups(RequestId(2), &groups[..1], 1),
        vec![
            Effect::Persist {
                persist_id: PersistId(2),
                group_id: "g".into(),
                transaction: None,
                records: vec![offset_tombstone("t", 0)]
            },
            respond(
                2,
                Response::DeleteGroups(DeleteGroupsResponse {
                    results: vec![DeletedGroup {
                        group_id: "g".into(),
                        error: ErrorCode::None
                    }]
                })
            ),
        ]
    );
    assert_eq!(empty.group_state("g"), None);
}

#[test]
fn deleting_a_group_that_rebalanced_writes_a_group_tombstone() {
    let mut c = coordinator(0);
    let m1 = id("client", 1);
    c.join_group(RequestId(1), join_request(""), 0);
    c.tick(0);
    c.leave_group(
        RequestId(2),
        LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![MemberIdentity {
                member_id: m1,
                group_instance_id: None,
            }],
        },
        1,
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        c.delete_groups(RequestId(3), &["g".to_owned()], 2),
        vec![
            Effect::Persist {
                persist_id: PersistId(2),
                group_id: "g".into(),
                transaction: None,
                records: vec![group_tombstone()]
            },
            respond(
                3,
                Response::DeleteGroups(DeleteGroupsResponse {
                    results: vec![DeletedGroup {
                        group_id: "g".into(),
                        error: ErrorCode::None
                    }]
                })
            ),
        ]
    );
}

#[test]
fn offset_delete_refuses_topics_the_group_consumes() {
    let mut c = coordinator(0);
    let m1 = id("client", 1);
    c.join_group(RequestId(1), join_request(""), 0);
    c.tick(0);
    let effects = c.sync_group(RequestId(2), sync_request(&m1, 1, &[(&m1, b"a")]), 0);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    let effects = c.commit_offsets(
        RequestId(3),
        commit_request(1, &m1, &[("t", 0, 1, None), ("old", 0, 2, None)]),
        0,
    );
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    let request = OffsetDeleteRequest {
        group_id: "g".into(),
        topics: vec![
            TopicPartitions {
                name: "t".into(),
                partition_indexes: vec![0],
            },
            TopicPartitions {
                name: "old".into(),
                partition_indexes: vec![0],
            },
        ],
    };
    assert_eq!(
        c.delete_offsets(RequestId(4), request, 1),
        vec![
            Effect::Persist {
                persist_id: PersistId(3),
                group_id: "g".into(),
                transaction: None,
                records: vec![offset_tombstone("old", 0)]
            },
            respond(
                4,
                Response::OffsetDelete(OffsetDeleteResponse {
                    error: ErrorCode::None,
                    topics: vec![
                        TopicPartitionErrors {
                            name: "t".into(),
                            partitions: vec![PartitionError {
                                partition_index: 0,
                                error: ErrorCode::GroupSubscribedToTopic
                            }]
                        },
                        TopicPartitionErrors {
                            name: "old".into(),
                            partitions: vec![PartitionError {
                                partition_index: 0,
                                error: ErrorCode::None
                            }]
                        },
                    ],
                })
            ),
        ]
    );
    assert_eq!(fetch_all(&c), vec![("t".into(), 0, 1)]);
    let missing = OffsetDeleteRequest {
        group_id: "nope".into(),
        topics: vec![],
    };
    let effects = c.delete_offsets(RequestId(5), missing, 1);
    assert_eq!(
        effects,
        vec![respond(
            5,
            Response::OffsetDelete(OffsetDeleteResponse {
                error: ErrorCode::GroupIdNotFound,
                topics: vec![]
            })
        )]
    );
}

#[test]
fn offsets_of_a_simple_consumer_expire_after_retention_and_the_group_dies() {
    let mut c = coordinator(0);
    let retention = GroupConfig::default().offsets_retention_ms;
    let effects = c.commit_offsets(
        RequestId(1),
        commit_request(-1, "", &[("t", 0, 1, None)]),
        0,
    );
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    let effects = c.commit_offsets(
        RequestId(2),
        commit_request(-1, "", &[("t", 1, 1, None)]),
        1_000,
    );
    c.complete_persist(persist_id(&effects), Ok(()), 1_000);
    assert_eq!(c.cleanup_expired_offsets(retention - 1), vec![]);
    assert_eq!(
        c.cleanup_expired_offsets(retention),
        vec![Effect::Persist {
            persist_id: PersistId(3),
            group_id: "g".into(),
            transaction: None,
            records: vec![offset_tombstone("t", 0)]
        }]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        c.cleanup_expired_offsets(retention + 1_000),
        vec![Effect::Persist {
            persist_id: PersistId(4),
            group_id: "g".into(),
            transaction: None,
            records: vec![offset_tombstone("t", 1)]
        }]
    );
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn offsets_of_an_empty_consumer_group_expire_from_when_it_became_empty() {
    let mut c = coordinator(0);
    let retention = GroupConfig::default().offsets_retention_ms;
    let m1 = id("client", 1);
    c.join_group(RequestId(1), join_request(""), 0);
    c.tick(0);
    let effects = c.commit_offsets(
        RequestId(2),
        commit_request(1, &m1, &[("t", 0, 1, None)]),
        0,
    );
    // Committing in CompletingRebalance is refused; sync first.
    assert_eq!(
        effects,
        vec![commit_result(
            2,
            &[("t", 0, ErrorCode::RebalanceInProgress)]
        )]
    );
    let effects = c.sync_group(RequestId(3), sync_request(&m1, 1, &[]), 0);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    let effects = c.commit_offsets(
        RequestId(4),
        commit_request(1, &m1, &[("t", 0, 1, None)]),
        0,
    );
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    // While Stable and subscribed to "t", nothing expires.
    c.heartbeat(RequestId(5), heartbeat_request(&m1, 1), 0);
    assert_eq!(c.cleanup_expired_offsets(retention), vec![]);
    // The member leaves at `left`; expiry counts from then, not from the commit.
    let left = retention;
    c.leave_group(
        RequestId(6),
        LeaveGroupRequest {
            group_id: "g".into(),
            members: vec![MemberIdentity {
                member_id: m1,
                group_instance_id: None,
            }],
        },
        left,
    );
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(c.cleanup_expired_offsets(left + retention - 1), vec![]);
    let effects = c.cleanup_expired_offsets(left + retention);
    let Effect::Persist { records, .. } = &effects[0] else {
        panic!("{effects:?}")
    };
    assert_eq!(records, &vec![offset_tombstone("t", 0), group_tombstone()]);
    assert_eq!(c.group_state("g"), None);
}

// ------------------------------------------------------------------ Listing and describing

#[test]
fn list_groups_filters_by_state() {
    let (mut c, _, _) = stable_pair();
    c.commit_offsets(
        RequestId(9),
        OffsetCommitRequest {
            group_id: "simple".into(),
            ..commit_request(-1, "", &[("t", 0, 1, None)])
        },
        0,
    );
    let listed = |c: &GroupCoordinator, filter: &[&str]| -> Vec<(String, String, GroupState)> {
        let filter: Vec<String> = filter.iter().map(|s| (*s).to_owned()).collect();
        c.list_groups(&filter)
            .into_iter()
            .map(|g| (g.group_id, g.protocol_type, g.group_state))
            .collect()
    };
    assert_eq!(
        listed(&c, &[]),
        vec![
            ("g".into(), "consumer".into(), GroupState::Stable),
            ("simple".into(), String::new(), GroupState::Empty)
        ]
    );
    assert_eq!(
        listed(&c, &["Empty"]),
        vec![("simple".into(), String::new(), GroupState::Empty)]
    );
    assert_eq!(listed(&c, &["PreparingRebalance"]), vec![]);
}

#[test]
fn describe_groups_shows_members_and_reports_unknown_groups_dead() {
    let (c, m1, m2) = stable_pair();
    let described = c.describe_groups(&["g".to_owned(), "nope".to_owned()]);
    assert_eq!(described[0].group_state, GroupState::Stable);
    assert_eq!(described[0].protocol_data, "range");
    assert_eq!(
        described[0]
            .members
            .iter()
            .map(|m| (m.member_id.clone(), m.member_assignment.clone()))
            .collect::<Vec<_>>(),
        vec![
            (m1, Bytes::from_static(b"a1")),
            (m2, Bytes::from_static(b"a2"))
        ]
    );
    assert_eq!(
        described[0].members[0].member_metadata,
        subscription(&["t"])
    );
    assert_eq!(
        described[1],
        DescribedGroup {
            error: ErrorCode::None,
            group_id: "nope".into(),
            group_state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_data: String::new(),
            members: vec![],
        }
    );
}

// ------------------------------------------------------------------ Loading

type Log = Vec<LoadEntry<Bytes, Bytes>>;

/// Feeds every Persist of `effects` into `log` as the runtime would append it: to the group's
/// offsets partition, transactional batches naming their producer.
fn append(log: &mut Log, effects: &[Effect]) {
    for effect in effects {
        if let Effect::Persist {
            group_id,
            records,
            transaction,
            ..
        } = effect
        {
            let partition = offsets_partition(group_id);
            log.extend(records.iter().map(|r| LoadEntry::Record {
                key: r.encode_key(),
                value: r.encode_value(),
                producer_id: transaction.map(|t| t.producer_id),
                partition,
            }));
        }
    }
}

/// A record of a plain batch in the offsets partition of "g".
fn plain(key: Bytes, value: Option<Bytes>) -> LoadEntry<Bytes, Bytes> {
    LoadEntry::Record {
        key,
        value,
        producer_id: None,
        partition: offsets_partition("g"),
    }
}

#[test]
fn load_rebuilds_offsets_and_groups() {
    let mut log = Vec::new();
    let mut c = coordinator(0);
    let (m1, m2) = (id("client", 1), id("client", 2));
    c.join_group(RequestId(1), join_request(""), 0);
    c.join_group(RequestId(2), join_request(""), 0);
    // The second member re-arms the initial delay (0 ms): one more tick completes the join.
    assert_eq!(c.tick(0), vec![timeout(0)]);
    c.tick(0);
    c.sync_group(RequestId(3), sync_request(&m2, 1, &[]), 0);
    let effects = c.sync_group(
        RequestId(4),
        sync_request(&m1, 1, &[(&m1, b"a1"), (&m2, b"a2")]),
        0,
    );
    append(&mut log, &effects);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    for (request_id, offset) in [(5, 10), (6, 11)] {
        let effects = c.commit_offsets(
            RequestId(request_id),
            commit_request(1, &m1, &[("t", 0, offset, None), ("t", 1, 3, None)]),
            0,
        );
        append(&mut log, &effects);
        c.complete_persist(persist_id(&effects), Ok(()), 0);
    }
    // A deleted offsets-only group must not come back; an unknown key version is skipped.
    let effects = c.commit_offsets(
        RequestId(7),
        OffsetCommitRequest {
            group_id: "gone".into(),
            ..commit_request(-1, "", &[("t", 0, 1, None)])
        },
        0,
    );
    append(&mut log, &effects);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    append(
        &mut log,
        &c.delete_groups(RequestId(8), &["gone".to_owned()], 0),
    );
    log.push(plain(Bytes::from_static(&[0, 9, 0, 0]), None));

    let mut loaded = coordinator(0);
    let effects = loaded.load(log, 50).unwrap();
    assert_eq!(effects, vec![timeout(50 + SESSION_MS)]);
    assert_eq!(loaded.group_state("g"), Some(GroupState::Stable));
    assert_eq!(loaded.group_state("gone"), None);
    assert_eq!(
        fetch_all(&loaded),
        vec![("t".into(), 0, 11), ("t".into(), 1, 3)]
    );
    assert_eq!(
        loaded.describe_groups(&["g".to_owned()]),
        c.describe_groups(&["g".to_owned()])
    );
    // Members carry on: the follower's SyncGroup returns its stored assignment, heartbeats work,
    // and a member that stays silent is evicted after its session.
    assert_eq!(
        loaded.sync_group(RequestId(9), sync_request(&m2, 1, &[]), 60),
        vec![synced(9, b"a2")]
    );
    assert_eq!(
        loaded.heartbeat(RequestId(10), heartbeat_request(&m1, 1), 5_000),
        vec![
            heartbeat_result(10, ErrorCode::None),
            timeout(60 + SESSION_MS)
        ]
    );
    assert_eq!(
        loaded.tick(60 + SESSION_MS),
        vec![timeout(5_000 + SESSION_MS)]
    );
    assert_eq!(
        loaded.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
}

#[test]
fn load_fails_on_a_corrupt_value() {
    let key = OffsetsKey::GroupMetadata(GroupMetadataKey { group: "g".into() }).encode();
    let mut c = coordinator(0);
    let error = c
        .load(vec![plain(key, Some(Bytes::from_static(&[0, 3, 0])))], 0)
        .unwrap_err();
    assert!(
        matches!(
            error,
            RecordError::Truncated {
                record: "group metadata",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_second_join_from_a_parked_member_answers_the_first() {
    let (mut c, m1, _) = stable_pair();
    assert_eq!(c.join_group(RequestId(9), join_request(&m1), 1), vec![]);
    assert_eq!(
        c.join_group(RequestId(10), join_request(&m1), 2),
        vec![join_error(9, &m1, ErrorCode::RebalanceInProgress)]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn static_member_rejoin_during_completing_rebalance_restarts_the_rebalance() {
    let mut c = coordinator(0);
    let (s1, s2_new) = (id("i1", 1), id("i2", 3));
    c.join_group(RequestId(1), static_join_request("", "i1"), 0);
    c.join_group(RequestId(2), static_join_request("", "i2"), 0);
    c.tick(0);
    c.tick(0);
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    // The leader may be assigning for the old member id, so Kafka starts over.
    assert_eq!(
        c.join_group(RequestId(3), static_join_request("", "i2"), 5),
        vec![]
    );
    assert_eq!(c.group_state("g"), Some(GroupState::PreparingRebalance));
    let with_instance = |member_id: &str, instance: &str| JoinGroupMember {
        group_instance_id: Some(instance.into()),
        ..meta(member_id, &["t"])
    };
    assert_eq!(
        c.join_group(RequestId(4), static_join_request(&s1, "i1"), 6),
        vec![
            joined(
                4,
                &s1,
                2,
                &s1,
                vec![with_instance(&s1, "i1"), with_instance(&s2_new, "i2")]
            ),
            joined(3, &s2_new, 2, &s1, vec![]),
            timeout(6 + SESSION_MS),
        ]
    );
}

#[test]
fn leave_of_a_pending_member_lets_the_rebalance_complete() {
    let (mut c, m1, m2) = stable_pair();
    // A v4 member gets an id but has not rejoined; m2 leaves; m1 rejoins. The rebalance then
    // waits only for the pending member, whose leave completes it.
    let pending = id("client", 3);
    c.join_group(
        RequestId(9),
        JoinGroupRequest {
            version: 4,
            ..join_request("")
        },
        1,
    );
    c.join_group(RequestId(10), join_request(&m1), 1);
    let leave = |member_id: &str| LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![MemberIdentity {
            member_id: member_id.into(),
            group_instance_id: None,
        }],
    };
    let effects = c.leave_group(RequestId(11), leave(&m2), 2);
    assert_eq!(effects.len(), 1, "{effects:?}");
    let effects = c.leave_group(RequestId(12), leave(&pending), 3);
    assert_eq!(effects[0], joined(10, &m1, 2, &m1, vec![meta(&m1, &["t"])]));
}

// ------------------------------------------------------------------ Transactional offsets

const PRODUCER: TxnProducer = TxnProducer {
    producer_id: 1_000,
    producer_epoch: 5,
};
const OTHER_PRODUCER: TxnProducer = TxnProducer {
    producer_id: 2_000,
    producer_epoch: 0,
};

/// A v3 TxnOffsetCommit of `PRODUCER` for group "g".
fn txn_request(
    generation_id: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64, Option<&str>)],
) -> TxnOffsetCommitRequest {
    let commit = commit_request(generation_id, member_id, offsets);
    TxnOffsetCommitRequest {
        version: 3,
        transactional_id: "tx".into(),
        group_id: commit.group_id,
        producer_id: PRODUCER.producer_id,
        producer_epoch: PRODUCER.producer_epoch,
        generation_id,
        member_id: commit.member_id,
        group_instance_id: None,
        topics: commit.topics,
    }
}

fn txn_result(request_id: u64, results: &[(&str, i32, ErrorCode)]) -> Effect {
    let Effect::Respond {
        response: Response::OffsetCommit(response),
        ..
    } = commit_result(request_id, results)
    else {
        unreachable!()
    };
    respond(request_id, Response::TxnOffsetCommit(response))
}

fn txn_persist(persist_id: u64, producer: TxnProducer, records: Vec<OffsetsRecord>) -> Effect {
    Effect::Persist {
        persist_id: PersistId(persist_id),
        group_id: "g".into(),
        records,
        transaction: Some(producer),
    }
}

/// `producer` commits `offset` for t-0 of `group_id` (no member fields) and the append
/// succeeds; returns the effects of the request.
fn txn_commit_appended(
    c: &mut GroupCoordinator,
    group_id: &str,
    producer: TxnProducer,
    offset: i64,
    now_ms: i64,
) -> Vec<Effect> {
    let request = TxnOffsetCommitRequest {
        group_id: group_id.into(),
        producer_id: producer.producer_id,
        producer_epoch: producer.producer_epoch,
        ..txn_request(-1, "", &[("t", 0, offset, None)])
    };
    let effects = c.txn_offset_commit(RequestId(100), request, now_ms);
    assert_eq!(
        c.complete_persist(persist_id(&effects), Ok(()), now_ms),
        vec![txn_result(100, &[("t", 0, ErrorCode::None)])]
    );
    effects
}

/// A plain commit of `offset` for t-0 of "g" whose append succeeds.
fn plain_commit_appended(c: &mut GroupCoordinator, offset: i64, now_ms: i64) -> Vec<Effect> {
    let effects = c.commit_offsets(
        RequestId(200),
        commit_request(-1, "", &[("t", 0, offset, None)]),
        now_ms,
    );
    c.complete_persist(persist_id(&effects), Ok(()), now_ms);
    effects
}

/// OffsetFetch of t-0 in `group_id`: (offset, error).
fn fetch_t0(c: &GroupCoordinator, group_id: &str, require_stable: bool) -> (i64, ErrorCode) {
    let response = c.fetch_offsets(&OffsetFetchRequest {
        group_id: group_id.into(),
        topics: Some(vec![TopicPartitions {
            name: "t".into(),
            partition_indexes: vec![0],
        }]),
        require_stable,
    });
    let partition = &response.topics[0].partitions[0];
    (partition.committed_offset, partition.error)
}

/// A group id other than "g" whose offsets partition is (`same`) or is not that of "g".
fn group_in_partition_of_g(same: bool) -> String {
    (0..)
        .map(|i| format!("group-{i}"))
        .find(|g| (offsets_partition(g) == offsets_partition("g")) == same)
        .expect("some group id maps there")
}

#[test]
fn txn_commit_is_a_transactional_append_answered_once_written() {
    let mut c = coordinator(0);
    let effects = c.txn_offset_commit(
        RequestId(1),
        txn_request(-1, "", &[("t", 0, 5, Some("m")), ("t", 1, 6, None)]),
        1_000,
    );
    assert_eq!(
        effects,
        vec![txn_persist(
            1,
            PRODUCER,
            vec![
                offset_record("t", 0, 5, "m", 1_000),
                offset_record("t", 1, 6, "", 1_000)
            ]
        )]
    );
    // Like a simple consumer's commit, it creates the group.
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        c.complete_persist(PersistId(1), Ok(()), 1_001),
        vec![txn_result(
            1,
            &[("t", 0, ErrorCode::None), ("t", 1, ErrorCode::None)]
        )]
    );
    assert_eq!(fetch_all(&c), vec![]);
}

#[test]
fn txn_commit_validation_errors() {
    let (m1, m2) = (id("client", 1), id("client", 2));
    let cases: Vec<(&str, TxnOffsetCommitRequest, ErrorCode)> = vec![
        (
            "stale generation",
            txn_request(0, &m1, &[("t", 0, 1, None)]),
            ErrorCode::IllegalGeneration,
        ),
        (
            "future generation",
            txn_request(2, &m2, &[("t", 0, 1, None)]),
            ErrorCode::IllegalGeneration,
        ),
        (
            "unknown member",
            txn_request(1, "ghost", &[("t", 0, 1, None)]),
            ErrorCode::UnknownMemberId,
        ),
        (
            "unknown static instance",
            TxnOffsetCommitRequest {
                group_instance_id: Some("i9".into()),
                ..txn_request(1, &m1, &[("t", 0, 1, None)])
            },
            ErrorCode::UnknownMemberId,
        ),
        (
            "empty group id",
            TxnOffsetCommitRequest {
                group_id: String::new(),
                ..txn_request(1, &m1, &[("t", 0, 1, None)])
            },
            ErrorCode::InvalidGroupId,
        ),
    ];
    for (name, request, error) in cases {
        let (mut c, _, _) = stable_pair();
        assert_eq!(
            c.txn_offset_commit(RequestId(9), request, 1),
            vec![txn_result(9, &[("t", 0, error)])],
            "{name}"
        );
    }
}

#[test]
fn txn_commit_of_a_replaced_static_member_is_fenced() {
    let (mut c, _, s2) = stable_static_pair();
    let effects = c.join_group(RequestId(9), static_join_request("", "i2"), 100);
    c.complete_persist(persist_id(&effects), Ok(()), 100);
    let request = TxnOffsetCommitRequest {
        group_instance_id: Some("i2".into()),
        ..txn_request(1, &s2, &[("t", 0, 1, None)])
    };
    assert_eq!(
        c.txn_offset_commit(RequestId(10), request, 101),
        vec![txn_result(10, &[("t", 0, ErrorCode::FencedInstanceId)])]
    );
}

#[test]
fn txn_commit_with_a_generation_to_an_unknown_group_is_illegal_generation() {
    let mut c = coordinator(0);
    assert_eq!(
        c.txn_offset_commit(RequestId(1), txn_request(1, "m", &[("t", 0, 1, None)]), 0),
        vec![txn_result(1, &[("t", 0, ErrorCode::IllegalGeneration)])]
    );
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn txn_commit_is_accepted_where_a_plain_commit_is_not() {
    // No member fields on a Stable group: a plain commit gets UNKNOWN_MEMBER_ID, but
    // TxnOffsetCommit v0-2 could never send them.
    let (mut c, m1, _) = stable_pair();
    assert_eq!(
        c.txn_offset_commit(RequestId(9), txn_request(-1, "", &[("t", 0, 1, None)]), 1),
        vec![txn_persist(
            2,
            PRODUCER,
            vec![offset_record("t", 0, 1, "", 1)]
        )]
    );
    // Below v3 the member fields are ignored, whatever the handler filled in.
    let old = TxnOffsetCommitRequest {
        version: 2,
        ..txn_request(0, "ghost", &[("t", 0, 2, None)])
    };
    assert_eq!(
        c.txn_offset_commit(RequestId(10), old, 2),
        vec![txn_persist(
            3,
            PRODUCER,
            vec![offset_record("t", 0, 2, "", 2)]
        )]
    );
    // A valid member while the group completes a rebalance: the state is not enforced.
    c.join_group(RequestId(11), join_request(&m1), 3);
    c.join_group(RequestId(12), join_request(&id("client", 2)), 3);
    assert_eq!(c.group_state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        c.txn_offset_commit(RequestId(13), txn_request(2, &m1, &[("t", 0, 3, None)]), 4),
        vec![txn_persist(
            4,
            PRODUCER,
            vec![offset_record("t", 0, 3, "", 4)]
        )]
    );
}

#[test]
fn txn_commit_with_oversized_metadata_is_offset_metadata_too_large_per_partition() {
    let mut c = GroupCoordinator::new(
        GroupConfig {
            offset_metadata_max_bytes: 3,
            ..config(0)
        },
        Box::new(SequentialMemberIds::default()),
    );
    let request = txn_request(
        -1,
        "",
        &[("t", 0, 1, Some("abc")), ("t", 1, 2, Some("abcd"))],
    );
    assert_eq!(
        c.txn_offset_commit(RequestId(1), request, 0),
        vec![txn_persist(
            1,
            PRODUCER,
            vec![offset_record("t", 0, 1, "abc", 0)]
        )]
    );
    assert_eq!(
        c.complete_persist(PersistId(1), Ok(()), 0),
        vec![txn_result(
            1,
            &[
                ("t", 0, ErrorCode::None),
                ("t", 1, ErrorCode::OffsetMetadataTooLarge)
            ]
        )]
    );
    assert_eq!(
        c.txn_offset_commit(
            RequestId(2),
            txn_request(-1, "", &[("t", 1, 2, Some("abcd"))]),
            0
        ),
        vec![txn_result(
            2,
            &[("t", 1, ErrorCode::OffsetMetadataTooLarge)]
        )]
    );
}

#[test]
fn pending_txn_offsets_are_invisible_and_unstable_until_the_transaction_commits() {
    let mut c = coordinator(0);
    plain_commit_appended(&mut c, 3, 0);
    let effects = c.txn_offset_commit(RequestId(1), txn_request(-1, "", &[("t", 0, 7, None)]), 10);
    // While written and afterwards: the old offset, or UNSTABLE_OFFSET_COMMIT if asked.
    assert_eq!(fetch_t0(&c, "g", false), (3, ErrorCode::None));
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    c.complete_persist(persist_id(&effects), Ok(()), 10);
    assert_eq!(fetch_t0(&c, "g", false), (3, ErrorCode::None));
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(fetch_all(&c), vec![("t".into(), 0, 3)]);
    // Another producer's marker, or this producer's in another partition, changes nothing.
    let partition = offsets_partition("g");
    assert_eq!(
        c.complete_transaction(OTHER_PRODUCER.producer_id, partition, true, 20),
        vec![]
    );
    assert_eq!(
        c.complete_transaction(PRODUCER.producer_id, partition + 1, true, 20),
        vec![]
    );
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(
        c.complete_transaction(PRODUCER.producer_id, partition, true, 20),
        vec![]
    );
    assert_eq!(fetch_t0(&c, "g", true), (7, ErrorCode::None));
    // The transaction is over: a second marker has nothing left to apply.
    plain_commit_appended(&mut c, 8, 30);
    c.complete_transaction(PRODUCER.producer_id, partition, true, 40);
    assert_eq!(fetch_t0(&c, "g", true), (8, ErrorCode::None));
}

#[test]
fn aborted_txn_offsets_are_dropped() {
    let mut c = coordinator(0);
    plain_commit_appended(&mut c, 3, 0);
    txn_commit_appended(&mut c, "g", PRODUCER, 7, 10);
    assert_eq!(
        c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), false, 20),
        vec![]
    );
    assert_eq!(fetch_t0(&c, "g", true), (3, ErrorCode::None));
}

#[test]
fn a_later_plain_commit_wins_over_an_earlier_transactional_one() {
    let mut c = coordinator(0);
    txn_commit_appended(&mut c, "g", PRODUCER, 7, 0);
    plain_commit_appended(&mut c, 9, 10);
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 20);
    assert_eq!(fetch_t0(&c, "g", true), (9, ErrorCode::None));
    // The other way round the transaction's offset is the later one and wins.
    plain_commit_appended(&mut c, 10, 30);
    txn_commit_appended(&mut c, "g", PRODUCER, 11, 40);
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 50);
    assert_eq!(fetch_t0(&c, "g", true), (11, ErrorCode::None));
}

#[test]
fn completion_only_touches_groups_of_that_offsets_partition_and_producer() {
    let mut c = coordinator(0);
    let (neighbour, elsewhere) = (
        group_in_partition_of_g(true),
        group_in_partition_of_g(false),
    );
    txn_commit_appended(&mut c, "g", PRODUCER, 7, 0);
    txn_commit_appended(&mut c, &neighbour, OTHER_PRODUCER, 8, 0);
    txn_commit_appended(&mut c, &elsewhere, PRODUCER, 9, 0);
    assert_eq!(
        c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 10),
        vec![]
    );
    assert_eq!(fetch_t0(&c, "g", true), (7, ErrorCode::None));
    assert_eq!(
        fetch_t0(&c, &neighbour, true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(
        fetch_t0(&c, &elsewhere, true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    c.complete_transaction(
        PRODUCER.producer_id,
        offsets_partition(&elsewhere),
        false,
        20,
    );
    assert_eq!(fetch_t0(&c, &elsewhere, true), (-1, ErrorCode::None));
    assert_eq!(
        fetch_t0(&c, &neighbour, true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    c.complete_transaction(OTHER_PRODUCER.producer_id, offsets_partition("g"), true, 30);
    assert_eq!(fetch_t0(&c, &neighbour, true), (8, ErrorCode::None));
}

#[test]
fn failed_txn_append_answers_the_error_and_leaves_nothing_pending() {
    let mut c = coordinator(0);
    let effects = c.txn_offset_commit(RequestId(1), txn_request(-1, "", &[("t", 0, 7, None)]), 0);
    assert_eq!(
        c.complete_persist(persist_id(&effects), Err(6), 0),
        vec![txn_result(1, &[("t", 0, ErrorCode::NotCoordinator)])]
    );
    assert_eq!(fetch_t0(&c, "g", true), (-1, ErrorCode::None));
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 10);
    assert_eq!(fetch_t0(&c, "g", true), (-1, ErrorCode::None));
}

#[test]
fn a_failed_retry_keeps_the_transactions_earlier_offset() {
    let mut c = coordinator(0);
    txn_commit_appended(&mut c, "g", PRODUCER, 7, 0);
    let effects = c.txn_offset_commit(RequestId(1), txn_request(-1, "", &[("t", 0, 8, None)]), 10);
    assert_eq!(
        c.complete_persist(persist_id(&effects), Err(19), 10),
        vec![txn_result(
            1,
            &[("t", 0, ErrorCode::CoordinatorNotAvailable)]
        )]
    );
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 20);
    assert_eq!(fetch_t0(&c, "g", true), (7, ErrorCode::None));
}

#[test]
fn pending_txn_offsets_keep_their_group_and_offset_through_expiry() {
    let mut c = coordinator(0);
    let retention = GroupConfig::default().offsets_retention_ms;
    // Only a pending offset: the Empty group does not die.
    txn_commit_appended(&mut c, "g", PRODUCER, 7, 0);
    assert_eq!(c.cleanup_expired_offsets(retention * 2), vec![]);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    // An expired committed offset with a transaction pending over it is kept too.
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 10);
    txn_commit_appended(&mut c, "g", PRODUCER, 8, 20);
    assert_eq!(c.cleanup_expired_offsets(retention * 3), vec![]);
    assert_eq!(fetch_t0(&c, "g", false), (7, ErrorCode::None));
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), false, 30);
    assert_eq!(
        c.cleanup_expired_offsets(retention * 3),
        vec![Effect::Persist {
            persist_id: PersistId(3),
            group_id: "g".into(),
            records: vec![offset_tombstone("t", 0)],
            transaction: None,
        }]
    );
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn offset_delete_and_delete_groups_tombstone_pending_txn_offsets() {
    let mut c = coordinator(0);
    plain_commit_appended(&mut c, 3, 0);
    txn_commit_appended(&mut c, "g", PRODUCER, 7, 0);
    let delete = OffsetDeleteRequest {
        group_id: "g".into(),
        topics: vec![TopicPartitions {
            name: "t".into(),
            partition_indexes: vec![0],
        }],
    };
    assert_eq!(
        c.delete_offsets(RequestId(1), delete, 10),
        vec![
            Effect::Persist {
                persist_id: PersistId(3),
                group_id: "g".into(),
                records: vec![offset_tombstone("t", 0)],
                transaction: None,
            },
            respond(
                1,
                Response::OffsetDelete(OffsetDeleteResponse {
                    error: ErrorCode::None,
                    topics: vec![TopicPartitionErrors {
                        name: "t".into(),
                        partitions: vec![PartitionError {
                            partition_index: 0,
                            error: ErrorCode::None
                        }]
                    }]
                })
            )
        ]
    );
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 20);
    assert_eq!(fetch_t0(&c, "g", true), (-1, ErrorCode::None));
    // A group holding only a pending offset is deleted with a tombstone for it.
    txn_commit_appended(&mut c, "g", PRODUCER, 8, 30);
    assert_eq!(
        c.delete_groups(RequestId(2), &["g".to_owned()], 40),
        vec![
            Effect::Persist {
                persist_id: PersistId(5),
                group_id: "g".into(),
                records: vec![offset_tombstone("t", 0)],
                transaction: None,
            },
            respond(
                2,
                Response::DeleteGroups(DeleteGroupsResponse {
                    results: vec![DeletedGroup {
                        group_id: "g".into(),
                        error: ErrorCode::None
                    }]
                })
            )
        ]
    );
    c.complete_transaction(PRODUCER.producer_id, offsets_partition("g"), true, 50);
    assert_eq!(c.group_state("g"), None);
}

// ------------------------------------------------------------------ Loading transactions

fn txn_entry(
    record: OffsetsRecord,
    producer: TxnProducer,
    partition: i32,
) -> LoadEntry<Bytes, Bytes> {
    LoadEntry::Record {
        key: record.encode_key(),
        value: record.encode_value(),
        producer_id: Some(producer.producer_id),
        partition,
    }
}

fn plain_entry(record: OffsetsRecord) -> LoadEntry<Bytes, Bytes> {
    plain(record.encode_key(), record.encode_value())
}

fn marker(producer: TxnProducer, commit: bool, partition: i32) -> LoadEntry<Bytes, Bytes> {
    LoadEntry::Marker {
        producer_id: producer.producer_id,
        commit,
        partition,
    }
}

/// (offset, error) for t-0, t-1 and t-2 of "g", with `require_stable`.
fn fetch_three(c: &GroupCoordinator) -> Vec<(i64, ErrorCode)> {
    let response = c.fetch_offsets(&OffsetFetchRequest {
        group_id: "g".into(),
        topics: Some(vec![TopicPartitions {
            name: "t".into(),
            partition_indexes: vec![0, 1, 2],
        }]),
        require_stable: true,
    });
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.committed_offset, p.error))
        .collect()
}

#[test]
fn load_applies_committed_transactions_drops_aborted_ones_and_keeps_open_ones_pending() {
    let p = offsets_partition("g");
    let log = vec![
        plain_entry(offset_record("t", 0, 1, "", 0)),
        txn_entry(offset_record("t", 0, 5, "", 1), PRODUCER, p),
        txn_entry(offset_record("t", 1, 6, "", 1), OTHER_PRODUCER, p),
        marker(PRODUCER, true, p),
        marker(OTHER_PRODUCER, false, p),
        // A later transaction of the first producer with no marker yet.
        txn_entry(offset_record("t", 2, 9, "", 2), PRODUCER, p),
    ];
    let mut c = coordinator(0);
    assert_eq!(c.load(log, 10).unwrap(), vec![]);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        fetch_three(&c),
        vec![
            (5, ErrorCode::None),
            (-1, ErrorCode::None),
            (-1, ErrorCode::UnstableOffsetCommit)
        ]
    );
    // The open transaction completes live.
    assert_eq!(
        c.complete_transaction(PRODUCER.producer_id, p, true, 20),
        vec![]
    );
    assert_eq!(
        fetch_three(&c),
        vec![
            (5, ErrorCode::None),
            (-1, ErrorCode::None),
            (9, ErrorCode::None)
        ]
    );
}

#[test]
fn load_keeps_a_later_plain_commit_over_a_committed_transaction() {
    let p = offsets_partition("g");
    let log = vec![
        txn_entry(offset_record("t", 0, 5, "", 0), PRODUCER, p),
        plain_entry(offset_record("t", 0, 9, "", 1)),
        marker(PRODUCER, true, p),
    ];
    let mut c = coordinator(0);
    c.load(log, 10).unwrap();
    assert_eq!(fetch_t0(&c, "g", true), (9, ErrorCode::None));
}

#[test]
fn load_marker_ends_its_producers_records_in_its_own_partition_only() {
    let p = offsets_partition("g");
    let log = vec![
        txn_entry(offset_record("t", 0, 5, "", 0), PRODUCER, p),
        marker(PRODUCER, true, p + 1),
    ];
    let mut c = coordinator(0);
    c.load(log, 10).unwrap();
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
}

#[test]
fn load_tombstone_drops_pending_txn_offsets() {
    let p = offsets_partition("g");
    let log = vec![
        txn_entry(offset_record("t", 0, 5, "", 0), PRODUCER, p),
        plain_entry(offset_tombstone("t", 0)),
        marker(PRODUCER, true, p),
    ];
    let mut c = coordinator(0);
    c.load(log, 10).unwrap();
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn a_log_written_with_transactions_replays_to_the_same_offsets() {
    let mut log = Vec::new();
    let mut c = coordinator(0);
    let p = offsets_partition("g");
    append(&mut log, &plain_commit_appended(&mut c, 3, 0));
    // Committed: t-0 = 7. Aborted: t-1 = 8. Open at the end: t-2 = 9.
    let commit =
        |c: &mut GroupCoordinator, request_id, producer: TxnProducer, partition, offset| {
            let request = TxnOffsetCommitRequest {
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                ..txn_request(-1, "", &[("t", partition, offset, None)])
            };
            let effects = c.txn_offset_commit(RequestId(request_id), request, 10);
            c.complete_persist(persist_id(&effects), Ok(()), 10);
            effects
        };
    append(&mut log, &commit(&mut c, 1, PRODUCER, 0, 7));
    append(&mut log, &commit(&mut c, 2, OTHER_PRODUCER, 1, 8));
    c.complete_transaction(PRODUCER.producer_id, p, true, 20);
    log.push(marker(PRODUCER, true, p));
    c.complete_transaction(OTHER_PRODUCER.producer_id, p, false, 20);
    log.push(marker(OTHER_PRODUCER, false, p));
    append(&mut log, &commit(&mut c, 3, PRODUCER, 2, 9));
    assert_eq!(
        fetch_three(&c),
        vec![
            (7, ErrorCode::None),
            (-1, ErrorCode::None),
            (-1, ErrorCode::UnstableOffsetCommit)
        ]
    );

    let mut loaded = coordinator(0);
    loaded.load(log, 30).unwrap();
    assert_eq!(fetch_three(&loaded), fetch_three(&c));
    loaded.complete_transaction(PRODUCER.producer_id, p, true, 40);
    c.complete_transaction(PRODUCER.producer_id, p, true, 40);
    assert_eq!(fetch_three(&loaded), fetch_three(&c));
    assert_eq!(fetch_three(&loaded)[2], (9, ErrorCode::None));
}

#[path = "ownership_test.rs"]
mod ownership;
