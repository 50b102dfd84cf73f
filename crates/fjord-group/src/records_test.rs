use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn offset_key(group: &str, topic: &str, partition: i32) -> OffsetsKey {
    OffsetsKey::OffsetCommit(OffsetCommitKey {
        group: group.into(),
        topic: topic.into(),
        partition,
    })
}

#[test]
fn offset_commit_key_golden_bytes() {
    let bytes = offset_key("g", "t", 3).encode();
    let expected: &[u8] = &[
        0x00, 0x01, // key version 1
        0x00, 0x01, b'g', // group
        0x00, 0x01, b't', // topic
        0x00, 0x00, 0x00, 0x03, // partition
    ];
    assert_eq!(bytes.as_ref(), expected);
    assert_eq!(
        OffsetsKey::decode(expected).unwrap(),
        offset_key("g", "t", 3)
    );
}

#[test]
fn offset_commit_key_version_0_decodes_like_version_1() {
    let v0: &[u8] = &[0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3];
    assert_eq!(OffsetsKey::decode(v0).unwrap(), offset_key("g", "t", 3));
}

#[test]
fn group_metadata_key_golden_bytes() {
    let key = OffsetsKey::GroupMetadata(GroupMetadataKey {
        group: "grp".into(),
    });
    let expected: &[u8] = &[0x00, 0x02, 0x00, 0x03, b'g', b'r', b'p'];
    assert_eq!(key.encode().as_ref(), expected);
    assert_eq!(OffsetsKey::decode(expected).unwrap(), key);
}

#[test]
fn offset_commit_value_v3_golden_bytes() {
    let value = OffsetCommitValue {
        offset: 100,
        leader_epoch: 5,
        metadata: "m".into(),
        commit_timestamp: 1_000,
        expire_timestamp: -1,
    };
    let expected: &[u8] = &[
        0x00, 0x03, // value version 3
        0, 0, 0, 0, 0, 0, 0, 100, // offset
        0, 0, 0, 5, // leader epoch
        0, 1, b'm', // metadata
        0, 0, 0, 0, 0, 0, 0x03, 0xe8, // commit timestamp
    ];
    assert_eq!(value.encode().as_ref(), expected);
    assert_eq!(OffsetCommitValue::decode(expected).unwrap(), value);
}

#[test]
fn offset_commit_value_with_expiry_is_written_as_v1() {
    let value = OffsetCommitValue {
        offset: 7,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 1,
        expire_timestamp: 2,
    };
    let expected: &[u8] = &[
        0x00, 0x01, // value version 1
        0, 0, 0, 0, 0, 0, 0, 7, // offset
        0, 0, // metadata ""
        0, 0, 0, 0, 0, 0, 0, 1, // commit timestamp
        0, 0, 0, 0, 0, 0, 0, 2, // expire timestamp
    ];
    assert_eq!(value.encode().as_ref(), expected);
    assert_eq!(OffsetCommitValue::decode(expected).unwrap(), value);
}

#[test]
fn offset_commit_value_v0_and_v2_decode_without_epoch() {
    let body: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 9, 0, 1, b'x', 0, 0, 0, 0, 0, 0, 0, 4];
    for version in [0u8, 2] {
        let mut bytes = vec![0, version];
        bytes.extend_from_slice(body);
        let value = OffsetCommitValue::decode(&bytes).unwrap();
        assert_eq!(
            value,
            OffsetCommitValue {
                offset: 9,
                leader_epoch: -1,
                metadata: "x".into(),
                commit_timestamp: 4,
                expire_timestamp: -1
            }
        );
    }
}

#[test]
fn offset_commit_value_v4_flexible_decodes_and_skips_tags() {
    let bytes: &[u8] = &[
        0, 4, // version 4
        0, 0, 0, 0, 0, 0, 0, 9, // offset
        0xff, 0xff, 0xff, 0xff, // leader epoch -1
        2, b'x', // compact string "x"
        0, 0, 0, 0, 0, 0, 0, 4, // commit timestamp
        1, 0, 2, 0xaa, 0xbb, // one tagged field (tag 0, two bytes)
    ];
    let value = OffsetCommitValue::decode(bytes).unwrap();
    assert_eq!(value.offset, 9);
    assert_eq!(value.metadata, "x");
    assert_eq!(value.commit_timestamp, 4);
}

fn sample_group_value() -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 3,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp: 42,
        members: vec![MemberMetadataValue {
            member_id: "m1".into(),
            group_instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: 60_000,
            session_timeout: 10_000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        }],
    }
}

#[test]
fn group_metadata_value_v3_golden_bytes() {
    let bytes = sample_group_value().encode();
    let mut expected = vec![0u8, 3];
    expected.extend_from_slice(&[0, 8]);
    expected.extend_from_slice(b"consumer");
    expected.extend_from_slice(&[0, 0, 0, 3]);
    expected.extend_from_slice(&[0, 5]);
    expected.extend_from_slice(b"range");
    expected.extend_from_slice(&[0, 2]);
    expected.extend_from_slice(b"m1");
    expected.extend_from_slice(&42i64.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 0, 1]);
    expected.extend_from_slice(&[0, 2]);
    expected.extend_from_slice(b"m1");
    expected.extend_from_slice(&[0, 2]);
    expected.extend_from_slice(b"i1");
    expected.extend_from_slice(&[0, 1, b'c']);
    expected.extend_from_slice(&[0, 10]);
    expected.extend_from_slice(b"/127.0.0.1");
    expected.extend_from_slice(&60_000i32.to_be_bytes());
    expected.extend_from_slice(&10_000i32.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 0, 3]);
    expected.extend_from_slice(b"sub");
    expected.extend_from_slice(&[0, 0, 0, 3]);
    expected.extend_from_slice(b"asg");
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(
        GroupMetadataValue::decode(&expected).unwrap(),
        sample_group_value()
    );
}

#[test]
fn empty_group_metadata_value_has_null_protocol_and_leader() {
    let value = GroupMetadataValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: None,
        leader: None,
        current_state_timestamp: 5,
        members: vec![],
    };
    let bytes = value.encode();
    let mut expected = vec![0u8, 3, 0, 8];
    expected.extend_from_slice(b"consumer");
    expected.extend_from_slice(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
    expected.extend_from_slice(&5i64.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(bytes.as_ref(), expected.as_slice());
    assert_eq!(GroupMetadataValue::decode(&bytes).unwrap(), value);
}

#[test]
fn group_metadata_value_v0_uses_session_timeout_as_rebalance_timeout() {
    let mut bytes = vec![
        0u8, 0, 0, 1, b'c', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1,
    ];
    bytes.extend_from_slice(&[0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
    bytes.extend_from_slice(&7_000i32.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    let value = GroupMetadataValue::decode(&bytes).unwrap();
    assert_eq!(value.current_state_timestamp, -1);
    assert_eq!(value.members[0].rebalance_timeout, 7_000);
    assert_eq!(value.members[0].group_instance_id, None);
}

#[test]
fn tombstone_record_has_no_value_bytes() {
    let record = OffsetsRecord {
        key: offset_key("g", "t", 0),
        value: None,
    };
    assert_eq!(record.encode_value(), None);
    let decoded = OffsetsRecord::decode(&record.encode_key(), None).unwrap();
    assert_eq!(decoded, record);
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let cases: &[(&[u8], RecordError)] = &[
        (
            &[0x00],
            RecordError::Truncated {
                record: "key",
                field: "version",
            },
        ),
        (&[0x00, 0x07], RecordError::UnknownKeyVersion(7)),
        (
            &[0x00, 0x02, 0x00, 0x05, b'a'],
            RecordError::Truncated {
                record: "key",
                field: "group",
            },
        ),
        (
            &[0x00, 0x02, 0xff, 0xfe],
            RecordError::Malformed {
                record: "key",
                field: "group",
            },
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(OffsetsKey::decode(bytes).unwrap_err(), *error, "{bytes:?}");
    }
    assert_eq!(
        OffsetCommitValue::decode(&[0, 9]).unwrap_err(),
        RecordError::UnsupportedValueVersion {
            record: "offset commit",
            version: 9
        }
    );
}

proptest! {
    #[test]
    fn offset_records_round_trip(
        group in ".{0,20}", topic in "[a-z._-]{1,20}", partition in any::<i32>(),
        offset in any::<i64>(), epoch in any::<i32>(), metadata in ".{0,30}",
        commit in any::<i64>(), expire in prop_oneof![Just(-1i64), any::<i64>()],
    ) {
        let record = OffsetsRecord {
            key: offset_key(&group, &topic, partition),
            value: Some(OffsetsValue::OffsetCommit(OffsetCommitValue {
                offset,
                // v1 cannot carry an epoch, so it reads back as -1.
                leader_epoch: if expire == -1 { epoch } else { -1 },
                metadata,
                commit_timestamp: commit,
                expire_timestamp: expire,
            })),
        };
        let value = record.encode_value().unwrap();
        prop_assert_eq!(OffsetsRecord::decode(&record.encode_key(), Some(&value)).unwrap(), record);
    }

    #[test]
    fn group_records_round_trip(
        generation in any::<i32>(), ts in any::<i64>(),
        members in proptest::collection::vec((".{0,10}", proptest::option::of(".{0,10}"), any::<i32>(), proptest::collection::vec(any::<u8>(), 0..16)), 0..5),
    ) {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation,
            protocol: Some("range".into()),
            leader: members.first().map(|m| m.0.clone()),
            current_state_timestamp: ts,
            members: members.into_iter().map(|(id, instance, timeout, data)| MemberMetadataValue {
                member_id: id,
                group_instance_id: instance,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout: timeout,
                session_timeout: timeout,
                subscription: Bytes::from(data.clone()),
                assignment: Bytes::from(data),
            }).collect(),
        };
        prop_assert_eq!(GroupMetadataValue::decode(&value.encode()).unwrap(), value);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = OffsetsKey::decode(&bytes);
        let _ = OffsetCommitValue::decode(&bytes);
        let _ = GroupMetadataValue::decode(&bytes);
    }
}
