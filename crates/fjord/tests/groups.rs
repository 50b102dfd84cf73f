//! Consumer groups through librdkafka: work is split exactly once across
//! members, rebalances spread partitions, dead members are evicted after the
//! session timeout, committed offsets resume consumption (also across broker
//! restarts), cooperative rebalances revoke only moving partitions, static
//! members rejoin without a rebalance, and simple (assign-only) consumers
//! commit and fetch offsets.

mod common;
#[path = "common/groups.rs"]
mod group_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use group_support::*;
use rdkafka::consumer::{CommitMode, Consumer, RebalanceProtocol};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);

/// Entry point of the child-process group member used by the eviction test
/// (see `ChildMember`). Does nothing unless run with its environment.
#[test]
#[ignore = "run as a child process by the session-timeout test"]
fn child_group_member() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child_member(&spec);
    }
}

fn assignments(members: &[&GroupMember]) -> Vec<BTreeSet<i32>> {
    members.iter().map(|m| m.assignment()).collect()
}

fn sizes(assignments: &[BTreeSet<i32>]) -> Vec<usize> {
    let mut sizes: Vec<usize> = assignments.iter().map(BTreeSet::len).collect();
    sizes.sort_unstable();
    sizes
}

fn total_received(members: &[&GroupMember]) -> usize {
    members.iter().map(|m| m.state.record_count()).sum()
}

/// Waits until `members` together received at least `count` records, then
/// polls on for `linger` so duplicates would show up too.
fn wait_received(members: &[&GroupMember], count: usize, linger: Duration) {
    wait_for(CONSUME_TIMEOUT, &format!("{count} records"), || {
        let total = total_received(members);
        if total >= count {
            Ok(())
        } else {
            Err(format!(
                "{total} received; per member {:?}, assignments {:?}",
                members
                    .iter()
                    .map(|m| (m.name.clone(), m.state.record_count()))
                    .collect::<Vec<_>>(),
                assignments(members)
            ))
        }
    });
    std::thread::sleep(linger);
}

fn received(members: &[&GroupMember]) -> Vec<(String, Vec<(i32, i64)>)> {
    members
        .iter()
        .map(|m| (m.name.clone(), m.state.records()))
        .collect()
}

fn assert_no_member_errors(members: &[&GroupMember]) {
    for member in members {
        assert_eq!(
            member.state.errors(),
            Vec::<String>::new(),
            "errors of member {}",
            member.name
        );
    }
}

/// Asserts that each member received every record of `positions` that lies
/// in one of its partitions (per `owned`, one assignment per member).
fn assert_owners_received(
    members: &[&GroupMember],
    owned: &[BTreeSet<i32>],
    positions: &[(i32, i64)],
) {
    for (member, partitions) in members.iter().zip(owned) {
        let got: BTreeSet<(i32, i64)> = member.state.records().into_iter().collect();
        let missing = positions
            .iter()
            .filter(|p| partitions.contains(&p.0) && !got.contains(p))
            .count();
        assert_eq!(
            missing, 0,
            "member {} owns {partitions:?} but missed {missing} of their records",
            member.name
        );
    }
}

#[test]
fn given_three_members_when_consuming_60k_records_should_deliver_each_exactly_once() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "orders";
    let group = "three-members";
    create_topic(&bootstrap, topic, PARTITIONS);
    // Half the records exist before the group forms: members consume while
    // the group rebalances around them (hand-overs commit on revoke).
    let mut positions = fill_topic(&bootstrap, topic, PARTITIONS, 30_000, 1);

    let members: Vec<GroupMember> = (0..3)
        .map(|i| GroupMember::start(&bootstrap, group, topic, &format!("m{i}"), &[], true))
        .collect();
    let refs: Vec<&GroupMember> = members.iter().collect();
    let stable = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(1),
        PARTITIONS,
        "three members to share six partitions",
        || assignments(&refs),
    );
    assert_eq!(
        sizes(&stable),
        vec![2, 2, 2],
        "range assignment of 6 over 3"
    );

    // DescribeGroups (through ListGroups) shows the stable group.
    let groups = consumer(&bootstrap)
        .fetch_group_list(Some(group), CALL_TIMEOUT)
        .expect("describe group");
    let info = groups
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .expect("group described");
    assert_eq!(
        (info.state(), info.protocol_type(), info.members().len()),
        ("Stable", "consumer", 3),
        "described group"
    );

    // The other half arrives while the group is stable: each member gets
    // exactly the records of its own partitions.
    let second = fill_topic(&bootstrap, topic, PARTITIONS, 30_000, 2);
    positions.extend_from_slice(&second);
    wait_received(&refs, 60_000, Duration::from_secs(2));

    assert_eq!(assignments(&refs), stable, "no rebalance while stable");
    assert_exactly_once(&positions, &received(&refs));
    assert_owners_received(&refs, &stable, &second);
    assert_no_member_errors(&refs);
    for member in members {
        member.close(CLOSE_TIMEOUT);
    }
}

#[test]
fn given_three_members_when_a_fourth_joins_should_spread_partitions_to_all_four() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "events";
    let group = "grows-to-four";
    create_topic(&bootstrap, topic, PARTITIONS);
    let mut positions = fill_topic(&bootstrap, topic, PARTITIONS, 6_000, 3);

    let mut members: Vec<GroupMember> = (0..3)
        .map(|i| GroupMember::start(&bootstrap, group, topic, &format!("m{i}"), &[], true))
        .collect();
    {
        let refs: Vec<&GroupMember> = members.iter().collect();
        wait_for_stable_cover(
            JOIN_TIMEOUT,
            Duration::from_secs(1),
            PARTITIONS,
            "three members to share six partitions",
            || assignments(&refs),
        );
        wait_received(&refs, 6_000, Duration::from_millis(500));
    }

    members.push(GroupMember::start(
        &bootstrap,
        group,
        topic,
        "m3",
        &[],
        true,
    ));
    let refs: Vec<&GroupMember> = members.iter().collect();
    let stable = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(1),
        PARTITIONS,
        "four members to share six partitions",
        || assignments(&refs),
    );
    assert_eq!(
        sizes(&stable),
        vec![1, 1, 2, 2],
        "range assignment of 6 over 4"
    );

    let second = fill_topic(&bootstrap, topic, PARTITIONS, 6_000, 4);
    positions.extend_from_slice(&second);
    wait_received(&refs, 12_000, Duration::from_secs(2));
    assert_eq!(assignments(&refs), stable, "no rebalance while stable");
    assert_exactly_once(&positions, &received(&refs));
    assert_owners_received(&refs, &stable, &second);
    assert!(
        refs.iter()
            .all(|m| m.state.records().iter().any(|p| second.contains(p))),
        "every member consumed new records"
    );
    assert_no_member_errors(&refs);
    for member in members {
        member.close(CLOSE_TIMEOUT);
    }
}

#[test]
fn given_a_member_killed_without_leaving_when_session_times_out_should_move_its_partitions() {
    const SESSION_MS: u64 = 3_000;
    const MARGIN: Duration = Duration::from_secs(5);
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "evict";
    let group = "loses-a-member";
    create_topic(&bootstrap, topic, PARTITIONS);
    let session = SESSION_MS.to_string();
    let settings = [
        ("session.timeout.ms", session.as_str()),
        ("heartbeat.interval.ms", "300"),
    ];

    let a = GroupMember::start(&bootstrap, group, topic, "a", &settings, true);
    let b = GroupMember::start(&bootstrap, group, topic, "b", &settings, true);
    let mut child = ChildMember::spawn(&bootstrap, group, topic, SESSION_MS);
    let stable = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(1),
        PARTITIONS,
        "two members and a child process to share six partitions",
        || vec![a.assignment(), b.assignment(), child.assignment()],
    );
    assert_eq!(
        sizes(&stable),
        vec![2, 2, 2],
        "child output:\n{}",
        child.output()
    );
    let child_partitions = stable[2].clone();

    // SIGKILL: no LeaveGroup, the coordinator only notices when the
    // session expires; then the survivors rebalance.
    let killed_at = Instant::now();
    child.kill();
    let survivors = wait_for_stable_cover(
        Duration::from_millis(SESSION_MS) + MARGIN + Duration::from_secs(20),
        Duration::ZERO,
        PARTITIONS,
        "the survivors to take over the killed member's partitions",
        || vec![a.assignment(), b.assignment()],
    );
    let took = killed_at.elapsed();
    assert!(
        took <= Duration::from_millis(SESSION_MS) + MARGIN,
        "partitions moved {took:?} after the kill; session timeout is {SESSION_MS} ms"
    );
    assert_eq!(sizes(&survivors), vec![3, 3]);
    eprintln!("partitions of the killed member moved {took:?} after SIGKILL");
    // Like Kafka, the coordinator does not evict on a closed connection: the
    // member's last heartbeat was at most one heartbeat interval before the kill.
    assert!(
        took >= Duration::from_millis(SESSION_MS - 1_000),
        "partitions moved {took:?} after the kill, before the {SESSION_MS} ms session could expire"
    );
    for partition in &child_partitions {
        assert!(
            survivors.iter().any(|a| a.contains(partition)),
            "partition {partition} of the killed member is owned again: {survivors:?}"
        );
    }

    // Records in every partition, including the dead member's, are consumed.
    let refs = [&a, &b];
    let survivors = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(1),
        PARTITIONS,
        "the survivors to settle",
        || assignments(&refs),
    );
    let positions = fill_topic(&bootstrap, topic, PARTITIONS, 600, 5);
    wait_received(&refs, 600, Duration::from_secs(1));
    assert_exactly_once(&positions, &received(&refs));
    assert_owners_received(&refs, &survivors, &positions);
    assert_no_member_errors(&refs);
    a.close(CLOSE_TIMEOUT);
    b.close(CLOSE_TIMEOUT);
}

/// (partition, offset, metadata) of each element; consumes the list, so that
/// a list returned by librdkafka is freed at once (while it lives, it keeps
/// the consumer's close from finishing).
fn offsets_of(list: TopicPartitionList) -> Vec<(i32, Offset, String)> {
    list.elements()
        .iter()
        .map(|e| (e.partition(), e.offset(), e.metadata().to_string()))
        .collect()
}

/// Per partition: the offset after the last record in `records`.
fn next_offsets(records: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for (partition, offset) in records {
        let entry = next.entry(*partition).or_insert(0);
        *entry = (*entry).max(offset + 1);
    }
    next
}

#[test]
fn given_committed_offsets_when_the_group_restarts_should_continue_exactly_at_them() {
    const TOTAL: usize = 9_000;
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "ledger";
    let group = "resumes";
    create_topic(&bootstrap, topic, 3);
    let positions = fill_topic(&bootstrap, topic, 3, TOTAL, 6);

    let first = group_consumer(&bootstrap, group, "first", &[], false);
    first.subscribe(&[topic]).expect("subscribe");
    let committed_part = poll_exactly(&first, 4_000, CONSUME_TIMEOUT);
    first
        .commit_consumer_state(CommitMode::Sync)
        .expect("synchronous commit");
    let expected = next_offsets(&committed_part);
    // Owned lists only: a list librdkafka returned holds references that
    // keep rd_kafka_destroy (the consumer's close) waiting while it lives.
    let committed: BTreeMap<i32, i64> =
        offsets_of(first.committed(CALL_TIMEOUT).expect("committed offsets"))
            .into_iter()
            .filter_map(|(partition, offset, _)| match offset {
                Offset::Offset(o) => Some((partition, o)),
                _ => None,
            })
            .collect();
    assert_eq!(
        committed, expected,
        "committed offsets as the broker returns them"
    );
    // Read on without committing: these must be delivered again.
    let uncommitted = poll_exactly(&first, 1_000, CONSUME_TIMEOUT);
    assert_eq!(first.context().state.errors(), Vec::<String>::new());
    close_within(first, CLOSE_TIMEOUT, "the first consumer");

    let second = group_consumer(&bootstrap, group, "second", &[], false);
    second.subscribe(&[topic]).expect("subscribe");
    let rest = poll_exactly(&second, TOTAL - committed_part.len(), CONSUME_TIMEOUT);
    let extra = poll_for(&second, Duration::from_secs(1));
    assert_eq!(extra, vec![], "nothing beyond the uncommitted remainder");
    for (partition, (first_offset, _)) in per_partition(&rest) {
        assert_eq!(
            first_offset,
            expected.get(&partition).copied().unwrap_or(0),
            "partition {partition} resumed at its committed offset"
        );
    }
    let rest_set: BTreeSet<(i32, i64)> = rest.iter().copied().collect();
    assert!(
        uncommitted.iter().all(|p| rest_set.contains(p)),
        "uncommitted records are delivered again"
    );
    assert_exactly_once(
        &positions,
        &[
            ("first (committed)".into(), committed_part),
            ("second".into(), rest),
        ],
    );
    assert_eq!(second.context().state.errors(), Vec::<String>::new());
    close_within(second, CLOSE_TIMEOUT, "the second consumer");
}

#[test]
fn given_cooperative_sticky_when_a_member_joins_should_revoke_only_moving_partitions() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "cooperative";
    let group = "incremental";
    create_topic(&bootstrap, topic, PARTITIONS);
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let mut positions = fill_topic(&bootstrap, topic, PARTITIONS, 6_000, 7);

    let a = GroupMember::start(&bootstrap, group, topic, "a", &cooperative, true);
    let b = GroupMember::start(&bootstrap, group, topic, "b", &cooperative, true);
    let before = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(1),
        PARTITIONS,
        "two members to share six partitions",
        || vec![a.assignment(), b.assignment()],
    );
    assert_eq!(sizes(&before), vec![3, 3]);
    assert!(
        a.with_consumer(CALL_TIMEOUT, |c| {
            matches!(c.rebalance_protocol(), RebalanceProtocol::Cooperative)
        }),
        "librdkafka negotiated the cooperative protocol"
    );
    wait_received(&[&a, &b], 6_000, Duration::from_millis(500));
    let marks = (a.state.event_count(), b.state.event_count());

    let c = GroupMember::start(&bootstrap, group, topic, "c", &cooperative, true);
    let refs = [&a, &b, &c];
    let after = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(2),
        PARTITIONS,
        "three members to share six partitions",
        || assignments(&refs),
    );
    assert_eq!(sizes(&after), vec![2, 2, 2]);

    let mut moved = BTreeSet::new();
    for (index, (member, mark)) in [(&a, marks.0), (&b, marks.1)].into_iter().enumerate() {
        let (old, new) = (&before[index], &after[index]);
        assert!(
            new.is_subset(old),
            "{} kept a subset (sticky): {old:?} -> {new:?}",
            member.name
        );
        let leaving: BTreeSet<i32> = old.difference(new).copied().collect();
        let events = member.state.events()[mark..].to_vec();
        let mut revoked = BTreeSet::new();
        for event in &events {
            match event {
                RebalanceEvent::Revoke(partitions) => {
                    assert!(
                        partitions.is_subset(&leaving),
                        "{} was asked to revoke {partitions:?} but only {leaving:?} move; events {events:?}",
                        member.name
                    );
                    revoked.extend(partitions.iter().copied());
                }
                RebalanceEvent::Assign(partitions) => assert!(
                    partitions.is_empty(),
                    "{} was assigned {partitions:?} though it only loses partitions; events {events:?}",
                    member.name
                ),
                RebalanceEvent::Error(err) => panic!("{} rebalance error {err}", member.name),
            }
        }
        assert_eq!(
            revoked, leaving,
            "{} revoked exactly the moving partitions",
            member.name
        );
        moved.extend(leaving);
    }
    assert_eq!(
        after[2], moved,
        "the new member got exactly the moved partitions"
    );
    let c_events = c.state.events();
    assert!(
        c_events
            .iter()
            .all(|e| !matches!(e, RebalanceEvent::Revoke(p) if !p.is_empty())),
        "the new member never had to revoke: {c_events:?}"
    );

    let second = fill_topic(&bootstrap, topic, PARTITIONS, 6_000, 8);
    positions.extend_from_slice(&second);
    wait_received(&refs, 12_000, Duration::from_secs(1));
    assert_exactly_once(&positions, &received(&refs));
    assert_owners_received(&refs, &after, &second);
    assert_no_member_errors(&refs);
    for member in [a, b, c] {
        member.close(CLOSE_TIMEOUT);
    }
}

#[test]
fn given_static_membership_when_a_member_restarts_within_session_should_not_rebalance_others() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "static";
    let group = "static-members";
    create_topic(&bootstrap, topic, PARTITIONS);
    let settings = |id: &'static str| {
        [
            ("group.instance.id", id),
            ("session.timeout.ms", "15000"),
            ("heartbeat.interval.ms", "300"),
        ]
    };
    let mut positions = fill_topic(&bootstrap, topic, PARTITIONS, 600, 9);

    let a = GroupMember::start(&bootstrap, group, topic, "a", &settings("static-a"), true);
    let b = GroupMember::start(&bootstrap, group, topic, "b", &settings("static-b"), true);
    let stable = wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::from_secs(1),
        PARTITIONS,
        "two static members to share six partitions",
        || vec![a.assignment(), b.assignment()],
    );
    assert_eq!(sizes(&stable), vec![3, 3]);
    wait_received(&[&a, &b], 600, Duration::from_millis(500));
    let a_mark = a.state.event_count();

    // Restart b: commit, close (a static member sends no LeaveGroup), and
    // come back with the same group.instance.id well within the session.
    // (NoOffset: b read nothing itself, its partitions were handed over
    // fully consumed and committed during the join.)
    let committed = b.with_consumer(CALL_TIMEOUT, |c| c.commit_consumer_state(CommitMode::Sync));
    assert!(
        matches!(
            committed,
            Ok(())
                | Err(rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset
                ))
        ),
        "commit before restart: {committed:?}"
    );
    let b_records = b.state.records();
    b.close(CLOSE_TIMEOUT);
    let b2 = GroupMember::start(
        &bootstrap,
        group,
        topic,
        "b-again",
        &settings("static-b"),
        true,
    );
    wait_for(
        JOIN_TIMEOUT,
        "the restarted static member's assignment",
        || {
            let got = b2.assignment();
            if got == stable[1] {
                Ok(())
            } else {
                Err(format!("{got:?}, events {:?}", b2.state.events()))
            }
        },
    );
    // Several heartbeat intervals: a rebalance would reach a by now.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        a.state.events()[a_mark..].to_vec(),
        vec![],
        "the other member saw no rebalance"
    );
    assert_eq!(a.assignment(), stable[0], "the other member's assignment");
    assert_eq!(
        b2.state.events(),
        vec![RebalanceEvent::Assign(stable[1].clone())],
        "the restarted member got its old partitions back in one assignment"
    );

    let second = fill_topic(&bootstrap, topic, PARTITIONS, 600, 10);
    positions.extend_from_slice(&second);
    let refs = [&a, &b2];
    wait_received(&refs, 600 + 600 - b_records.len(), Duration::from_secs(1));
    let mut all = received(&refs);
    all.push(("b (before restart)".into(), b_records));
    assert_exactly_once(&positions, &all);
    assert_owners_received(&refs, &stable, &second);
    assert_no_member_errors(&refs);
    a.close(CLOSE_TIMEOUT);
    b2.close(CLOSE_TIMEOUT);
}

/// Commits after consuming half the topic, restarts the broker (gracefully
/// or with SIGKILL), and checks that the offsets, the group and the
/// position of a new member survived.
fn committed_offsets_survive_restart(kill: bool) {
    const TOTAL: usize = 3_000;
    let mut broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "durable-offsets";
    let group = "survives-restart";
    create_topic(&bootstrap, topic, 3);
    let positions = fill_topic(&bootstrap, topic, 3, TOTAL, 11);

    let first = group_consumer(&bootstrap, group, "first", &[], false);
    first.subscribe(&[topic]).expect("subscribe");
    let consumed = poll_exactly(&first, 1_500, CONSUME_TIMEOUT);
    first
        .commit_consumer_state(CommitMode::Sync)
        .expect("synchronous commit");
    let expected: BTreeMap<i32, Option<i64>> = (0..3)
        .map(|p| (p, next_offsets(&consumed).get(&p).copied()))
        .collect();
    assert_eq!(
        committed_with(&first, topic, 3, CALL_TIMEOUT).expect("committed offsets"),
        expected
    );
    close_within(first, CLOSE_TIMEOUT, "the first consumer");

    if kill {
        broker.kill().expect("kill -9 the broker");
    }
    restart(&mut broker);

    let second = group_consumer(&bootstrap, group, "second", &[], false);
    // The coordinator may still be loading __consumer_offsets: retry.
    wait_for(
        Duration::from_secs(30),
        "committed offsets after the restart",
        || match committed_with(&second, topic, 3, CALL_TIMEOUT) {
            Ok(got) if got == expected => Ok(()),
            Ok(got) => Err(format!("got {got:?}, expected {expected:?}")),
            Err(err) => Err(err.to_string()),
        },
    );
    let groups = consumer(&bootstrap)
        .fetch_group_list(Some(group), CALL_TIMEOUT)
        .expect("describe group");
    let info = groups
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .expect("group described after the restart");
    assert_eq!(
        (info.state(), info.protocol_type(), info.members().len()),
        ("Empty", "consumer", 0),
        "the group after the restart"
    );

    second.subscribe(&[topic]).expect("subscribe");
    let rest = poll_exactly(&second, TOTAL - consumed.len(), CONSUME_TIMEOUT);
    assert_eq!(
        poll_for(&second, Duration::from_secs(1)),
        vec![],
        "no extra records"
    );
    for (partition, (first_offset, _)) in per_partition(&rest) {
        assert_eq!(
            Some(first_offset),
            Some(expected[&partition].unwrap_or(0)),
            "partition {partition} resumed at its committed offset"
        );
    }
    assert_exactly_once(
        &positions,
        &[
            ("before restart".into(), consumed),
            ("after restart".into(), rest),
        ],
    );
    assert_eq!(second.context().state.errors(), Vec::<String>::new());
    close_within(second, CLOSE_TIMEOUT, "the second consumer");
}

#[test]
fn given_committed_offsets_when_broker_restarts_gracefully_should_resume_at_them() {
    committed_offsets_survive_restart(false);
}

#[test]
fn given_committed_offsets_when_broker_is_killed_and_restarted_should_resume_at_them() {
    committed_offsets_survive_restart(true);
}

#[test]
fn given_a_simple_consumer_with_group_id_when_committing_should_fetch_and_resume_from_offsets() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "simple";
    let group = "simple-consumer";
    create_topic(&bootstrap, topic, 3);
    let positions = fill_topic(&bootstrap, topic, 3, 300, 12);

    // assign(), never subscribe(): commits go out with generation -1.
    let committer = group_consumer(&bootstrap, group, "committer", &[], false);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("add partition");
    }
    committer.assign(&assignment).expect("assign");
    let mut commit = TopicPartitionList::new();
    for (partition, offset) in [(0, 10), (1, 55), (2, 100)] {
        commit
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("add offset");
        commit
            .find_partition(topic, partition)
            .expect("just added")
            .set_metadata(format!("meta-{partition}"));
    }
    committer
        .commit(&commit, CommitMode::Sync)
        .expect("commit from a simple consumer");

    // A fresh client of the same group fetches offsets and metadata.
    let reader = group_consumer(&bootstrap, group, "reader", &[], false);
    let mut query = TopicPartitionList::new();
    for partition in 0..3 {
        query.add_partition(topic, partition);
    }
    let fetched = offsets_of(
        reader
            .committed_offsets(query, CALL_TIMEOUT)
            .expect("fetch committed offsets"),
    );
    assert_eq!(
        fetched,
        vec![
            (0, Offset::Offset(10), "meta-0".to_string()),
            (1, Offset::Offset(55), "meta-1".to_string()),
            (2, Offset::Offset(100), "meta-2".to_string()),
        ]
    );
    // Another group has no offsets.
    let stranger = group_consumer(&bootstrap, "another-group", "stranger", &[], false);
    let none = committed_with(&stranger, topic, 3, CALL_TIMEOUT).expect("fetch");
    assert_eq!(none, (0..3).map(|p| (p, None)).collect::<BTreeMap<_, _>>());

    // Assigning at the stored offsets resumes exactly there.
    let mut stored = TopicPartitionList::new();
    for partition in 0..3 {
        stored
            .add_partition_offset(topic, partition, Offset::Stored)
            .expect("add partition");
    }
    reader.assign(&stored).expect("assign at stored offsets");
    let rest = poll_exactly(&reader, 90 + 45, CONSUME_TIMEOUT);
    assert_eq!(
        poll_for(&reader, Duration::from_secs(1)),
        vec![],
        "no extra records"
    );
    let expected: Vec<(i32, i64)> = positions
        .iter()
        .copied()
        .filter(|(p, o)| (*p == 0 && *o >= 10) || (*p == 1 && *o >= 55))
        .collect();
    assert_exactly_once(&expected, &[("reader".into(), rest)]);

    // Commits overwrite: move partition 0 forward and read it back.
    let mut again = TopicPartitionList::new();
    again
        .add_partition_offset(topic, 0, Offset::Offset(99))
        .expect("add offset");
    committer
        .commit(&again, CommitMode::Sync)
        .expect("second commit");
    assert_eq!(
        committed_with(&reader, topic, 3, CALL_TIMEOUT).expect("fetch"),
        BTreeMap::from([(0, Some(99)), (1, Some(55)), (2, Some(100))])
    );
    for (consumer, what) in [
        (committer, "committer"),
        (reader, "reader"),
        (stranger, "stranger"),
    ] {
        assert_eq!(
            consumer.context().state.errors(),
            Vec::<String>::new(),
            "{what}"
        );
        close_within(consumer, CLOSE_TIMEOUT, what);
    }
}

#[test]
fn given_empty_and_live_groups_when_deleting_should_forget_only_the_empty_one() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "deletable";
    create_topic(&bootstrap, topic, 2);
    fill_topic(&bootstrap, topic, 2, 200, 13);

    let live = GroupMember::start(&bootstrap, "live", topic, "live", &[], false);
    wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::ZERO,
        2,
        "the live member's assignment",
        || vec![live.assignment()],
    );
    // Offsets of a group without members, committed by a simple consumer.
    let committer = group_consumer(&bootstrap, "idle", "committer", &[], false);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(topic, 0, Offset::Offset(5))
        .expect("add offset");
    commit
        .add_partition_offset(topic, 1, Offset::Offset(7))
        .expect("add offset");
    committer.commit(&commit, CommitMode::Sync).expect("commit");
    drop(commit);
    assert_eq!(
        committed_with(&committer, topic, 2, CALL_TIMEOUT).expect("fetch"),
        BTreeMap::from([(0, Some(5)), (1, Some(7))])
    );

    let admin = admin(&bootstrap);
    let results = futures::executor::block_on(
        admin.delete_groups(&["live", "idle", "never-existed"], &admin_options()),
    )
    .expect("DeleteGroups request");
    assert_eq!(
        results,
        vec![
            Err((
                "live".to_string(),
                rdkafka::types::RDKafkaErrorCode::NonEmptyGroup
            )),
            Ok("idle".to_string()),
            Err((
                "never-existed".to_string(),
                rdkafka::types::RDKafkaErrorCode::GroupIdNotFound
            )),
        ]
    );
    assert_eq!(
        committed_with(&committer, topic, 2, CALL_TIMEOUT).expect("fetch"),
        BTreeMap::from([(0, None), (1, None)]),
        "a deleted group's offsets are gone"
    );
    // The live group kept working.
    assert_eq!(live.assignment(), BTreeSet::from([0, 1]));
    let positions = fill_topic(&bootstrap, topic, 2, 20, 14);
    wait_received(&[&live], 220, Duration::from_millis(500));
    let got: BTreeSet<(i32, i64)> = live.state.records().into_iter().collect();
    assert!(
        positions.iter().all(|p| got.contains(p)),
        "live group still consumes"
    );
    close_within(committer, CLOSE_TIMEOUT, "the committer");
    live.close(CLOSE_TIMEOUT);
}

#[test]
fn given_many_groups_when_broker_is_killed_should_reload_latest_offsets_and_deletions() {
    const GROUPS: usize = 30;
    let mut broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "many-groups";
    create_topic(&bootstrap, topic, 3);
    fill_topic(&bootstrap, topic, 3, 600, 15);

    let commit = |group: &str, offsets: &[(i32, i64)]| {
        let consumer = group_consumer(&bootstrap, group, "committer", &[], false);
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .expect("add offset");
        }
        consumer
            .commit(&list, CommitMode::Sync)
            .unwrap_or_else(|err| panic!("commit for {group}: {err}"));
        drop(list);
        close_within(consumer, CLOSE_TIMEOUT, group);
    };
    let mut expected: BTreeMap<String, BTreeMap<i32, Option<i64>>> = BTreeMap::new();
    for g in 0..GROUPS {
        let group = format!("group-{g}");
        let first: Vec<(i32, i64)> = (0..3).map(|p| (p, (g as i64) + p as i64)).collect();
        commit(&group, &first);
        let mut offsets: BTreeMap<i32, Option<i64>> =
            first.iter().map(|(p, o)| (*p, Some(*o))).collect();
        if g % 2 == 0 {
            // Overwrite one partition: the later commit must win on reload.
            commit(&group, &[(1, 100 + g as i64)]);
            offsets.insert(1, Some(100 + g as i64));
        }
        expected.insert(group, offsets);
    }
    // Deleted groups must stay deleted (tombstones honoured on reload)...
    let deleted: Vec<String> = (0..5).map(|g| format!("group-{g}")).collect();
    let names: Vec<&str> = deleted.iter().map(String::as_str).collect();
    let results =
        futures::executor::block_on(admin(&bootstrap).delete_groups(&names, &admin_options()))
            .expect("DeleteGroups request");
    assert_eq!(
        results,
        deleted.iter().map(|g| Ok(g.clone())).collect::<Vec<_>>()
    );
    for group in &deleted {
        expected.insert(group.clone(), (0..3).map(|p| (p, None)).collect());
    }
    // ...unless offsets are committed again after the deletion.
    commit("group-0", &[(2, 7)]);
    expected.insert(
        "group-0".into(),
        BTreeMap::from([(0, None), (1, None), (2, Some(7))]),
    );

    let check = |when: &str| {
        for (group, offsets) in &expected {
            let consumer = group_consumer(&bootstrap, group, "reader", &[], false);
            wait_for(
                Duration::from_secs(30),
                &format!("offsets of {group} {when}"),
                || match committed_with(&consumer, topic, 3, CALL_TIMEOUT) {
                    Ok(got) if got == *offsets => Ok(()),
                    Ok(got) => Err(format!("got {got:?}, expected {offsets:?}")),
                    Err(err) => Err(err.to_string()),
                },
            );
            close_within(consumer, CLOSE_TIMEOUT, group);
        }
    };
    check("before the restart");
    broker.kill().expect("kill -9 the broker");
    restart(&mut broker);
    check("after kill -9 and restart");
}

#[test]
fn given_a_static_member_when_a_second_instance_uses_its_id_should_fence_the_first() {
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "fencing";
    let group = "fenced";
    create_topic(&bootstrap, topic, PARTITIONS);
    let settings = [
        ("group.instance.id", "the-one"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "300"),
    ];
    let old = GroupMember::start(&bootstrap, group, topic, "old", &settings, false);
    wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::ZERO,
        PARTITIONS,
        "the first instance",
        || vec![old.assignment()],
    );

    let new = GroupMember::start(&bootstrap, group, topic, "new", &settings, false);
    wait_for_stable_cover(
        JOIN_TIMEOUT,
        Duration::ZERO,
        PARTITIONS,
        "the second instance",
        || vec![new.assignment()],
    );
    wait_for(
        Duration::from_secs(15),
        "the first instance to be fenced",
        || {
            let errors = old.state.errors();
            if errors.iter().any(|e| e.to_lowercase().contains("fenced")) {
                Ok(())
            } else {
                Err(format!(
                    "errors {errors:?}, events {:?}",
                    old.state.events()
                ))
            }
        },
    );
    // The new instance keeps the partitions; it saw no error itself.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(new.assignment(), (0..PARTITIONS).collect::<BTreeSet<_>>());
    assert_eq!(new.state.errors(), Vec::<String>::new());
    let positions = fill_topic(&bootstrap, topic, PARTITIONS, 60, 16);
    wait_received(&[&new], 60, Duration::from_millis(500));
    assert_exactly_once(&positions, &[("new".into(), new.state.records())]);
    old.close(CLOSE_TIMEOUT);
    new.close(CLOSE_TIMEOUT);
}

#[test]
fn given_session_timeouts_outside_the_broker_bounds_when_joining_should_be_refused() {
    let broker = start_group_broker(&[("group.max.session.timeout.ms", "20000")]);
    let bootstrap = broker.bootstrap();
    let topic = "bounds";
    create_topic(&bootstrap, topic, 1);
    for (session, heartbeat) in [("500", "100"), ("30000", "1000")] {
        let member = GroupMember::start(
            &bootstrap,
            &format!("bounds-{session}"),
            topic,
            &format!("session-{session}"),
            &[
                ("session.timeout.ms", session),
                ("heartbeat.interval.ms", heartbeat),
            ],
            false,
        );
        wait_for(
            Duration::from_secs(15),
            &format!("session.timeout.ms={session} to be refused"),
            || {
                let errors = member.state.errors();
                if errors
                    .iter()
                    .any(|e| e.to_lowercase().contains("session timeout"))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "errors {errors:?}, assignment {:?}",
                        member.assignment()
                    ))
                }
            },
        );
        assert_eq!(member.assignment(), BTreeSet::new(), "never joined");
        member.close(CLOSE_TIMEOUT);
    }
}

/// ConsumerProtocolSubscription v0 for one topic, no user data.
fn subscription_v0(topic: &str) -> bytes::Bytes {
    let mut buf = Vec::new();
    buf.extend_from_slice(&0i16.to_be_bytes());
    buf.extend_from_slice(&1i32.to_be_bytes());
    buf.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    bytes::Bytes::from(buf)
}

/// ConsumerProtocolAssignment v0: `partitions` of one topic, no user data.
fn assignment_v0(topic: &str, partitions: &[i32]) -> bytes::Bytes {
    let mut buf = Vec::new();
    buf.extend_from_slice(&0i16.to_be_bytes());
    buf.extend_from_slice(&1i32.to_be_bytes());
    buf.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for partition in partitions {
        buf.extend_from_slice(&partition.to_be_bytes());
    }
    buf.extend_from_slice(&(-1i32).to_be_bytes());
    bytes::Bytes::from(buf)
}

#[test]
fn given_a_member_that_never_rejoins_when_rebalance_times_out_should_complete_without_it() {
    use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
    use kafka_protocol::messages::join_group_request::{
        JoinGroupRequest, JoinGroupRequestProtocol,
    };
    use kafka_protocol::messages::sync_group_request::{
        SyncGroupRequest, SyncGroupRequestAssignment,
    };
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::protocol::StrBytes;

    const MEMBER_ID_REQUIRED: i16 = 79;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const RAW_SESSION_MS: i32 = 20_000;
    const REBALANCE_MS: i32 = 2_000;
    let broker = start_group_broker(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "slow-rejoin";
    let group = "has-a-sleeper";
    create_topic(&bootstrap, topic, PARTITIONS);
    let group_id = GroupId(StrBytes::from_static_str(group));

    // A raw member joins, becomes leader, takes every partition, then
    // never answers the next rebalance.
    let mut raw = common::raw::RawConnection::connect(broker.address());
    let mut join = JoinGroupRequest::default();
    join.group_id = group_id.clone();
    join.session_timeout_ms = RAW_SESSION_MS;
    join.rebalance_timeout_ms = REBALANCE_MS;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = StrBytes::from_static_str("range");
    protocol.metadata = subscription_v0(topic);
    join.protocols = vec![protocol];
    let first = raw.request(&join, 5);
    assert_eq!(
        first.error_code, MEMBER_ID_REQUIRED,
        "JoinGroup v5 without member id"
    );
    join.member_id = first.member_id.clone();
    let joined = raw.request(&join, 5);
    assert_eq!(
        (joined.error_code, joined.generation_id, &joined.leader),
        (0, 1, &first.member_id),
        "the raw member leads generation 1"
    );
    let mut sync = SyncGroupRequest::default();
    sync.group_id = group_id.clone();
    sync.generation_id = 1;
    sync.member_id = first.member_id.clone();
    let mut own = SyncGroupRequestAssignment::default();
    own.member_id = first.member_id.clone();
    own.assignment = assignment_v0(topic, &(0..PARTITIONS).collect::<Vec<_>>());
    sync.assignments = vec![own];
    let synced = raw.request(&sync, 3);
    assert_eq!(synced.error_code, 0, "SyncGroup");
    assert_eq!(
        synced.assignment,
        assignment_v0(topic, &(0..PARTITIONS).collect::<Vec<_>>())
    );
    let mut heartbeat = HeartbeatRequest::default();
    heartbeat.group_id = group_id;
    heartbeat.generation_id = 1;
    heartbeat.member_id = first.member_id.clone();
    assert_eq!(
        raw.request(&heartbeat, 3).error_code,
        0,
        "heartbeat while stable"
    );
    let last_heartbeat = Instant::now();

    // A librdkafka member joins; the raw member never rejoins. The join
    // phase ends after the rebalance timeout (2 s), long before the raw
    // member's 20 s session would expire.
    let member = GroupMember::start(
        &bootstrap,
        group,
        topic,
        "prompt",
        &[
            ("session.timeout.ms", "1500"),
            ("heartbeat.interval.ms", "300"),
            ("max.poll.interval.ms", "2000"),
        ],
        false,
    );
    wait_for_stable_cover(
        Duration::from_secs(30),
        Duration::ZERO,
        PARTITIONS,
        "the new member to get every partition",
        || vec![member.assignment()],
    );
    let took = last_heartbeat.elapsed();
    assert!(
        took < Duration::from_millis(RAW_SESSION_MS as u64 / 2),
        "the rebalance took {took:?}: it waited for the silent member's session, not the {REBALANCE_MS} ms rebalance timeout"
    );
    // The silent member was removed from the group.
    assert_eq!(
        raw.request(&heartbeat, 3).error_code,
        UNKNOWN_MEMBER_ID,
        "heartbeat of the member dropped by the rebalance"
    );
    assert_eq!(member.state.errors(), Vec::<String>::new());
    member.close(CLOSE_TIMEOUT);
}

/// A group member speaking the protocol directly (JoinGroup v5, SyncGroup
/// v3, Heartbeat v3), for timings librdkafka does not let a test control.
struct RawMember {
    conn: common::raw::RawConnection,
    group: String,
    topic: String,
    member_id: String,
    generation: i32,
    session_ms: i32,
    rebalance_ms: i32,
}

impl RawMember {
    fn new(
        broker: &fjord_testkit::BrokerProcess,
        group: &str,
        topic: &str,
        session_ms: i32,
        rebalance_ms: i32,
    ) -> Self {
        RawMember {
            conn: common::raw::RawConnection::connect(broker.address()),
            group: group.into(),
            topic: topic.into(),
            member_id: String::new(),
            generation: -1,
            session_ms,
            rebalance_ms,
        }
    }

    fn group_id(&self) -> kafka_protocol::messages::GroupId {
        kafka_protocol::messages::GroupId(kafka_protocol::protocol::StrBytes::from_string(
            self.group.clone(),
        ))
    }

    /// JoinGroup (with the MEMBER_ID_REQUIRED round trip for a new member);
    /// blocks while the broker parks the request. Returns (error, generation,
    /// leader, member ids in the response).
    fn join(&mut self) -> (i16, i32, String, Vec<String>) {
        use kafka_protocol::messages::join_group_request::{
            JoinGroupRequest, JoinGroupRequestProtocol,
        };
        use kafka_protocol::protocol::StrBytes;
        loop {
            let mut join = JoinGroupRequest::default();
            join.group_id = self.group_id();
            join.session_timeout_ms = self.session_ms;
            join.rebalance_timeout_ms = self.rebalance_ms;
            join.member_id = StrBytes::from_string(self.member_id.clone());
            join.protocol_type = StrBytes::from_static_str("consumer");
            let mut protocol = JoinGroupRequestProtocol::default();
            protocol.name = StrBytes::from_static_str("range");
            protocol.metadata = subscription_v0(&self.topic);
            join.protocols = vec![protocol];
            let response = self.conn.request(&join, 5);
            if response.error_code == 79 && self.member_id.is_empty() {
                self.member_id = response.member_id.to_string();
                continue;
            }
            if response.error_code == 0 {
                self.generation = response.generation_id;
            }
            let members = response
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            return (
                response.error_code,
                response.generation_id,
                response.leader.to_string(),
                members,
            );
        }
    }

    /// SyncGroup; the leader passes every member's assignment.
    fn sync(&mut self, assignments: &[(String, Vec<i32>)]) -> i16 {
        use kafka_protocol::messages::sync_group_request::{
            SyncGroupRequest, SyncGroupRequestAssignment,
        };
        use kafka_protocol::protocol::StrBytes;
        let mut sync = SyncGroupRequest::default();
        sync.group_id = self.group_id();
        sync.generation_id = self.generation;
        sync.member_id = StrBytes::from_string(self.member_id.clone());
        sync.assignments = assignments
            .iter()
            .map(|(member, partitions)| {
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = StrBytes::from_string(member.clone());
                a.assignment = assignment_v0(&self.topic, partitions);
                a
            })
            .collect();
        self.conn.request(&sync, 3).error_code
    }

    fn heartbeat(&mut self) -> i16 {
        use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
        use kafka_protocol::protocol::StrBytes;
        let mut heartbeat = HeartbeatRequest::default();
        heartbeat.group_id = self.group_id();
        heartbeat.generation_id = self.generation;
        heartbeat.member_id = StrBytes::from_string(self.member_id.clone());
        self.conn.request(&heartbeat, 3).error_code
    }
}

#[test]
fn given_a_member_parked_in_join_longer_than_its_session_should_stay_until_the_rebalance_ends() {
    const REBALANCE_IN_PROGRESS: i16 = 27;
    let broker = start_group_broker(&[]);
    let topic = "parked";
    let group = "parked-join";
    create_topic(&broker.bootstrap(), topic, 2);

    // Generation 1: the short-session member alone.
    let mut short = RawMember::new(&broker, group, topic, 1_500, 5_000);
    let (error, generation, leader, _) = short.join();
    assert_eq!((error, generation, leader == short.member_id), (0, 1, true));
    let me = short.member_id.clone();
    assert_eq!(short.sync(&[(me.clone(), vec![0, 1])]), 0);

    // Generation 2: a long-session member joins; both rejoin and sync.
    let mut long = RawMember::new(&broker, group, topic, 20_000, 5_000);
    let joiner = std::thread::spawn(move || {
        let result = long.join();
        (long, result)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while short.heartbeat() != REBALANCE_IN_PROGRESS {
        assert!(
            Instant::now() < deadline,
            "the join of a second member never started a rebalance"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (error, generation, leader, members) = short.join();
    assert_eq!(
        (error, generation, &leader),
        (0, 2, &me),
        "short member rejoins"
    );
    let (mut long, (long_error, long_generation, _, _)) = joiner.join().expect("join thread");
    assert_eq!((long_error, long_generation), (0, 2), "long member joins");
    assert_eq!(members.len(), 2, "the leader sees both members");
    let long_id = long.member_id.clone();
    let syncer = std::thread::spawn(move || {
        let error = long.sync(&[]);
        (long, error)
    });
    assert_eq!(
        short.sync(&[(me.clone(), vec![0]), (long_id.clone(), vec![1])]),
        0
    );
    let (_long, long_sync) = syncer.join().expect("sync thread");
    assert_eq!(long_sync, 0);

    // The long member goes silent. The short member rejoins (the leader's
    // JoinGroup in a stable group starts a rebalance) and is parked,
    // waiting for the long member, for longer than its own 1.5 s session.
    // Like Kafka, a member awaiting its join is kept alive: after the 5 s
    // rebalance timeout the join completes without the silent member.
    let parked_at = Instant::now();
    let (error, generation, leader, members) = short.join();
    let waited = parked_at.elapsed();
    assert_eq!(
        (error, generation, &leader, &members),
        (0, 3, &me, &vec![me.clone()]),
        "the parked member leads generation 3 alone (waited {waited:?})"
    );
    assert!(
        waited >= Duration::from_secs(4),
        "the join completed after {waited:?}, before the 5 s rebalance timeout"
    );
}
