//! Partition ownership: groups follow the leadership of their `__consumer_offsets` partition
//! (load on election, drop on resignation), as Kafka's `onElection`/`onResignation`.

use super::*;

/// A coordinator that owns only the offsets partition of "g", replayed from `log`.
fn owning_g(log: Log, now_ms: i64) -> GroupCoordinator {
    let mut c =
        GroupCoordinator::without_partitions(config(0), Box::new(SequentialMemberIds::default()));
    let p = offsets_partition("g");
    assert_eq!(c.begin_load_partition(p, now_ms), vec![]);
    c.load_partition(p, log, now_ms).unwrap();
    c
}

fn leave_request(member_id: &str) -> LeaveGroupRequest {
    LeaveGroupRequest {
        group_id: "g".into(),
        members: vec![MemberIdentity {
            member_id: member_id.into(),
            group_instance_id: None,
        }],
    }
}

#[test]
fn a_coordinator_without_partitions_serves_no_group() {
    let mut c =
        GroupCoordinator::without_partitions(config(0), Box::new(SequentialMemberIds::default()));
    assert_eq!(
        c.join_group(RequestId(1), join_request(""), 0),
        vec![join_error(1, "", ErrorCode::NotCoordinator)]
    );
    assert_eq!(
        c.fetch_offsets(&OffsetFetchRequest {
            group_id: "g".into(),
            topics: None,
            require_stable: false,
        })
        .error,
        ErrorCode::NotCoordinator
    );
    assert_eq!(c.group_state("g"), None);
}

#[test]
fn a_loading_partition_answers_load_in_progress_until_replayed() {
    let mut c =
        GroupCoordinator::without_partitions(config(0), Box::new(SequentialMemberIds::default()));
    let p = offsets_partition("g");
    c.begin_load_partition(p, 0);
    assert_eq!(
        c.heartbeat(RequestId(1), heartbeat_request("m", 1), 0),
        vec![heartbeat_result(1, ErrorCode::CoordinatorLoadInProgress)]
    );
    assert_eq!(
        c.commit_offsets(
            RequestId(2),
            commit_request(-1, "", &[("t", 0, 1, None)]),
            0
        ),
        vec![commit_result(
            2,
            &[("t", 0, ErrorCode::CoordinatorLoadInProgress)]
        )]
    );
    assert_eq!(
        c.describe_groups(&["g".to_owned()])[0].error,
        ErrorCode::CoordinatorLoadInProgress
    );
    // A group of a partition not taken over is someone else's.
    let elsewhere = group_in_partition_of_g(false);
    assert_eq!(
        c.describe_groups(std::slice::from_ref(&elsewhere))[0].error,
        ErrorCode::NotCoordinator
    );
    c.load_partition(p, Log::new(), 0).unwrap();
    assert_eq!(
        c.describe_groups(&["g".to_owned()])[0].error,
        ErrorCode::None
    );
}

#[test]
fn a_reload_after_a_resign_gives_the_same_committed_offsets() {
    let mut log = Log::new();
    let mut c = owning_g(Log::new(), 0);
    for (request_id, offset) in [(1, 10), (2, 11)] {
        let effects = c.commit_offsets(
            RequestId(request_id),
            commit_request(
                -1,
                "",
                &[("t", 0, offset, None), ("t", 1, offset * 2, None)],
            ),
            0,
        );
        append(&mut log, &effects);
        c.complete_persist(persist_id(&effects), Ok(()), 0);
    }
    // A plain commit appended after a transactional one keeps precedence once the
    // transaction commits, across the reload too.
    append(&mut log, &txn_commit_appended(&mut c, "g", PRODUCER, 5, 0));
    let effects = c.commit_offsets(
        RequestId(3),
        commit_request(-1, "", &[("t", 0, 12, None)]),
        0,
    );
    append(&mut log, &effects);
    c.complete_persist(persist_id(&effects), Ok(()), 0);
    let p = offsets_partition("g");
    log.push(marker(PRODUCER, true, p));
    c.complete_transaction(PRODUCER.producer_id, p, true, 0);
    let before = fetch_all(&c);
    assert_eq!(before, vec![("t".into(), 0, 12), ("t".into(), 1, 22)]);

    assert_eq!(c.unload_partition(p, 10), vec![]);
    assert_eq!(c.group_state("g"), None);
    c.begin_load_partition(p, 20);
    c.load_partition(p, log.clone(), 20).unwrap();
    assert_eq!(fetch_all(&c), before);
    // A fresh coordinator taking the partition over sees the same.
    assert_eq!(fetch_all(&owning_g(log, 30)), before);
}

#[test]
fn pending_transactional_offsets_survive_a_reload_until_their_marker() {
    let mut log = Log::new();
    let mut c = owning_g(Log::new(), 0);
    append(&mut log, &plain_commit_appended(&mut c, 3, 0));
    append(&mut log, &txn_commit_appended(&mut c, "g", PRODUCER, 7, 0));
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    let p = offsets_partition("g");
    c.unload_partition(p, 10);
    // The producer's marker lands while the partition is not owned here: nothing to apply.
    assert_eq!(
        c.complete_transaction(PRODUCER.producer_id, p, true, 15),
        vec![]
    );
    c.begin_load_partition(p, 20);
    c.load_partition(p, log.clone(), 20).unwrap();
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    assert_eq!(fetch_t0(&c, "g", false), (3, ErrorCode::None));
    // A marker of another partition leaves them pending; the producer's commit marker in
    // this partition applies them.
    c.complete_transaction(PRODUCER.producer_id, p + 1, true, 25);
    assert_eq!(
        fetch_t0(&c, "g", true),
        (-1, ErrorCode::UnstableOffsetCommit)
    );
    c.complete_transaction(PRODUCER.producer_id, p, true, 30);
    assert_eq!(fetch_t0(&c, "g", true), (7, ErrorCode::None));

    // Replayed with the marker in the log, the offsets are committed at once; with an abort
    // marker they are dropped.
    let mut committed = log.clone();
    committed.push(marker(PRODUCER, true, p));
    assert_eq!(
        fetch_t0(&owning_g(committed, 40), "g", true),
        (7, ErrorCode::None)
    );
    let mut aborted = log;
    aborted.push(marker(PRODUCER, false, p));
    assert_eq!(
        fetch_t0(&owning_g(aborted, 40), "g", true),
        (3, ErrorCode::None)
    );
}

#[test]
fn a_resigned_partition_answers_not_coordinator_and_parked_requests_are_released() {
    let (mut c, m1, m2) = stable_pair();
    let p = offsets_partition("g");
    let neighbour = group_in_partition_of_g(true);
    let elsewhere = group_in_partition_of_g(false);
    for group_id in [&neighbour, &elsewhere] {
        let effects = c.commit_offsets(
            RequestId(5),
            OffsetCommitRequest {
                group_id: group_id.clone(),
                ..commit_request(-1, "", &[("t", 0, 1, None)])
            },
            0,
        );
        c.complete_persist(persist_id(&effects), Ok(()), 0);
    }
    // The leader rejoins (parked until the follower rejoins); a commit is still being written.
    assert_eq!(c.join_group(RequestId(6), join_request(&m1), 1), vec![]);
    let in_flight = c.commit_offsets(
        RequestId(7),
        OffsetCommitRequest {
            group_id: neighbour.clone(),
            ..commit_request(-1, "", &[("t", 0, 2, None), ("u", 3, 2, None)])
        },
        1,
    );
    // A transactional commit waiting for its marker.
    txn_commit_appended(&mut c, &neighbour, PRODUCER, 9, 1);

    let effects = c.unload_partition(p, 2);
    assert!(effects.contains(&join_error(6, &m1, ErrorCode::NotCoordinator)));
    assert!(effects.contains(&commit_result(
        7,
        &[
            ("t", 0, ErrorCode::NotCoordinator),
            ("u", 3, ErrorCode::NotCoordinator)
        ]
    )));
    assert_eq!(effects.len(), 2, "{effects:?}");
    assert_eq!(c.group_state("g"), None);
    assert_eq!(c.group_state(&neighbour), None);
    assert!(c.txn_groups.is_empty());
    // No deadline of the forgotten members is left.
    assert_eq!(c.next_deadline_ms(), None);
    // The late completion of the commit is ignored.
    assert_eq!(
        c.complete_persist(persist_id(&in_flight), Ok(()), 3),
        vec![]
    );

    assert_eq!(
        c.heartbeat(RequestId(8), heartbeat_request(&m2, 1), 3),
        vec![heartbeat_result(8, ErrorCode::NotCoordinator)]
    );
    assert_eq!(
        c.sync_group(RequestId(9), sync_request(&m2, 1, &[]), 3),
        vec![sync_error(9, ErrorCode::NotCoordinator)]
    );
    assert_eq!(
        c.join_group(RequestId(10), join_request(""), 3),
        vec![join_error(10, "", ErrorCode::NotCoordinator)]
    );
    assert_eq!(
        c.leave_group(RequestId(11), leave_request(&m2), 3),
        vec![respond(
            11,
            Response::LeaveGroup(LeaveGroupResponse {
                error: ErrorCode::NotCoordinator,
                members: vec![],
            })
        )]
    );
    assert_eq!(
        c.txn_offset_commit(RequestId(12), txn_request(-1, "", &[("t", 0, 1, None)]), 3),
        vec![txn_result(12, &[("t", 0, ErrorCode::NotCoordinator)])]
    );
    let deleted = c.delete_groups(RequestId(13), &["g".to_owned(), neighbour.clone()], 3);
    assert_eq!(
        deleted,
        vec![respond(
            13,
            Response::DeleteGroups(DeleteGroupsResponse {
                results: vec![
                    DeletedGroup {
                        group_id: "g".into(),
                        error: ErrorCode::NotCoordinator,
                    },
                    DeletedGroup {
                        group_id: neighbour.clone(),
                        error: ErrorCode::NotCoordinator,
                    },
                ],
            })
        )]
    );
    // Groups of other partitions are untouched.
    assert_eq!(c.group_state(&elsewhere), Some(GroupState::Empty));
    assert_eq!(c.list_groups(&[]).len(), 1);
}

#[test]
fn taking_a_partition_over_again_replays_it_from_the_log_alone() {
    let (mut c, m1, _) = stable_pair();
    let p = offsets_partition("g");
    assert_eq!(c.join_group(RequestId(5), join_request(&m1), 1), vec![]);
    // Leadership came back at a newer epoch: what was held may be stale, so it is dropped.
    assert_eq!(
        c.begin_load_partition(p, 2),
        vec![join_error(5, &m1, ErrorCode::NotCoordinator)]
    );
    let elsewhere = group_in_partition_of_g(false);
    let log = vec![
        plain_entry(offset_record("t", 0, 4, "", 0)),
        // Another partition's entries are not this partition's state.
        LoadEntry::Record {
            key: offset_record("t", 0, 9, "", 0).encode_key(),
            value: offset_record("t", 0, 9, "", 0).encode_value(),
            producer_id: None,
            partition: offsets_partition(&elsewhere),
        },
    ];
    assert_eq!(c.load_partition(p, log, 3).unwrap(), vec![]);
    assert_eq!(c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(fetch_t0(&c, "g", false), (4, ErrorCode::None));
}
