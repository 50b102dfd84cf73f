use super::*;
use proptest::prelude::*;

fn rec(ts: i64, key: &[u8], value: &[u8]) -> RecordSpec {
    RecordSpec {
        timestamp: ts,
        key: Some(key.to_vec()),
        value: Some(value.to_vec()),
        headers: vec![],
    }
}

fn sample() -> Vec<u8> {
    build_batch(
        &BatchSpec::default(),
        &[rec(1000, b"k1", b"v1"), rec(1005, b"k2", b"value-two")],
    )
}

#[test]
fn header_layout_matches_kafka() {
    let spec = BatchSpec {
        base_offset: 0x0102_0304_0506_0708,
        partition_leader_epoch: 7,
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 9,
        is_transactional: true,
        is_control: false,
        timestamp_type: TimestampType::CreateTime,
    };
    let b = build_batch(&spec, &[rec(1000, b"a", b"b"), rec(900, b"c", b"d")]);
    assert_eq!(&b[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(b[16], 2);
    assert_eq!(&b[43..51], &42i64.to_be_bytes());
    assert_eq!(&b[51..53], &3i16.to_be_bytes());
    assert_eq!(&b[53..57], &9i32.to_be_bytes());
    assert_eq!(&b[57..61], &2i32.to_be_bytes());
    let h = validate_batch(&b).unwrap();
    assert_eq!(h.base_offset, 0x0102_0304_0506_0708);
    assert_eq!(h.batch_length as usize, b.len() - LOG_OVERHEAD);
    assert_eq!(h.total_size(), b.len());
    assert_eq!(h.partition_leader_epoch, 7);
    assert_eq!(h.last_offset_delta, 1);
    assert_eq!(h.last_offset(), 0x0102_0304_0506_0709);
    assert_eq!(h.base_timestamp, 1000);
    assert_eq!(h.max_timestamp, 1000);
    assert!(h.is_transactional());
    assert!(!h.is_control());
    assert_eq!(h.compression(), Ok(Compression::None));
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(h.records_count, 2);
}

/// A batch captured from the Kafka Java client would be ideal; lacking one, pin our own
/// encoding of a known record so format changes are noticed.
#[test]
fn golden_single_record() {
    let b = build_batch(&BatchSpec::default(), &[rec(0, b"k", b"v")]);
    // length=8 (zigzag 16), attrs 0, tsDelta 0, offDelta 0, keyLen 1 (2) 'k', valLen 1 (2)
    // 'v', headers 0.
    assert_eq!(&b[61..], &[16, 0, 0, 0, 2, b'k', 2, b'v', 0]);
    assert_eq!(b.len(), 70);
}

#[test]
fn empty_batch_is_valid() {
    let b = build_batch(&BatchSpec::default(), &[]);
    assert_eq!(b.len(), BATCH_HEADER_LEN);
    let h = validate_batch(&b).unwrap();
    assert_eq!(h.records_count, 0);
    assert_eq!(decode_records(&b).unwrap(), vec![]);
}

#[test]
fn rejects_bad_magic_length_and_codec() {
    let mut b = sample();
    b[16] = 1;
    assert_eq!(validate_batch(&b), Err(BatchError::UnsupportedMagic(1)));

    let mut b = sample();
    b[8..12].copy_from_slice(&48i32.to_be_bytes());
    assert_eq!(validate_batch(&b), Err(BatchError::InvalidLength(48)));
    b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(validate_batch(&b), Err(BatchError::InvalidLength(-5)));

    let mut b = sample();
    b[22] |= 0x07; // codec 7 is reserved
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(validate_batch(&b), Err(BatchError::UnknownCompression(7)));

    let mut b = sample();
    b.push(0);
    assert!(matches!(
        validate_batch(&b),
        Err(BatchError::LengthMismatch { .. })
    ));

    assert_eq!(
        validate_batch(&[0u8; 10]),
        Err(BatchError::Incomplete { needed: 61 })
    );
}

#[test]
fn rejects_negative_counts() {
    let mut b = sample();
    b[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(validate_batch(&b), Err(BatchError::InvalidRecordCount(-1)));

    let mut b = sample();
    b[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        validate_batch(&b),
        Err(BatchError::InvalidLastOffsetDelta(-1))
    );
}

#[test]
fn mutators_keep_batch_valid() {
    let mut b = sample();
    set_base_offset(&mut b, 1234).unwrap();
    set_partition_leader_epoch(&mut b, 5).unwrap();
    let h = validate_batch(&b).unwrap();
    assert_eq!(h.base_offset, 1234);
    assert_eq!(h.partition_leader_epoch, 5);
    assert_eq!(h.last_offset(), 1235);

    set_log_append_time(&mut b, 99_999).unwrap();
    let h = validate_batch(&b).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, 99_999);
    let records = decode_records(&b).unwrap();
    assert!(records.iter().all(|r| r.timestamp == 99_999));
    assert_eq!(records[1].offset, 1235);

    assert_eq!(
        set_base_offset(&mut [0u8; 3], 1),
        Err(BatchError::Incomplete { needed: 61 })
    );
}

#[test]
fn decode_refuses_compressed() {
    let mut b = sample();
    b[22] |= 0x04; // zstd
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        decode_records(&b),
        Err(BatchError::CompressedRecords(Compression::Zstd))
    );
}

#[test]
fn iter_distinguishes_incomplete_and_corrupt() {
    let one = sample();
    let mut buf = one.clone();
    buf.extend_from_slice(&one);
    let mut torn = buf.clone();
    torn.extend_from_slice(&one[..30]);

    let mut it = BatchIter::new(&torn);
    assert_eq!(it.by_ref().filter(Result::is_ok).count(), 2);
    assert_eq!(it.consumed(), buf.len());
    assert_eq!(it.end(), BatchIterEnd::Incomplete { needed: one.len() });

    // Only 5 bytes of a trailing batch: size not readable yet.
    let mut short = one.clone();
    short.extend_from_slice(&one[..5]);
    let mut it = BatchIter::new(&short);
    assert_eq!(it.by_ref().count(), 1);
    assert_eq!(it.end(), BatchIterEnd::Incomplete { needed: 61 });

    let mut bad = buf.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let mut it = BatchIter::new(&bad);
    assert!(it.next().unwrap().is_ok());
    assert!(matches!(
        it.next(),
        Some(Err(BatchError::CorruptCrc { .. }))
    ));
    assert!(it.next().is_none());
    assert_eq!(it.end(), BatchIterEnd::Corrupt);
    assert_eq!(it.consumed(), one.len());

    // headers_only does not look at the CRC.
    let it = BatchIter::headers_only(&bad);
    assert_eq!(it.filter(Result::is_ok).count(), 2);

    // Garbage length in a partial prefix is corrupt, not incomplete.
    let mut garbage = one.clone();
    garbage.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    let mut it = BatchIter::new(&garbage);
    assert_eq!(it.by_ref().filter(Result::is_err).count(), 1);
    assert_eq!(it.end(), BatchIterEnd::Corrupt);
}

#[test]
fn decode_rejects_lying_record_count() {
    let mut b = sample();
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        decode_records(&b),
        Err(BatchError::MalformedRecord { index: 2, .. })
    ));
}

fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
}

fn arb_record() -> impl Strategy<Value = RecordSpec> {
    (
        -1_000_000i64..1_000_000_000_000,
        arb_bytes(),
        arb_bytes(),
        proptest::collection::vec(("[a-z]{0,8}", arb_bytes()), 0..3),
    )
        .prop_map(|(timestamp, key, value, headers)| RecordSpec {
            timestamp,
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(key, value)| RecordHeader { key, value })
                .collect(),
        })
}

fn arb_batch() -> impl Strategy<Value = (i64, Vec<RecordSpec>)> {
    (0i64..1 << 40, proptest::collection::vec(arb_record(), 0..8))
}

proptest! {
    #[test]
    fn build_validate_iterate_decode_round_trip(batches in proptest::collection::vec(arb_batch(), 1..5)) {
        let mut buf = Vec::new();
        let mut built = Vec::new();
        for (base, records) in &batches {
            let spec = BatchSpec { base_offset: *base, ..BatchSpec::default() };
            let b = build_batch(&spec, records);
            let h = validate_batch(&b).unwrap();
            prop_assert_eq!(h.base_offset, *base);
            prop_assert_eq!(h.records_count as usize, records.len());
            if let Some(max) = records.iter().map(|r| r.timestamp).max() {
                prop_assert_eq!(h.max_timestamp, max);
            }
            buf.extend_from_slice(&b);
            built.push(b);
        }
        let mut it = BatchIter::new(&buf);
        let mut seen = 0;
        for (item, ((base, records), b)) in it.by_ref().zip(batches.iter().zip(&built)) {
            let (h, bytes) = item.unwrap();
            prop_assert_eq!(bytes, &b[..]);
            prop_assert_eq!(h.base_offset, *base);
            let decoded = decode_records(bytes).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (d, r)) in decoded.iter().zip(records).enumerate() {
                prop_assert_eq!(d.offset, base + i as i64);
                prop_assert_eq!(d.timestamp, r.timestamp);
                prop_assert_eq!(&d.key, &r.key);
                prop_assert_eq!(&d.value, &r.value);
                prop_assert_eq!(&d.headers, &r.headers);
            }
            seen += 1;
        }
        prop_assert_eq!(seen, batches.len());
        prop_assert!(it.next().is_none());
        prop_assert_eq!(it.consumed(), buf.len());
        prop_assert_eq!(it.end(), BatchIterEnd::Clean);
    }

    #[test]
    fn any_flipped_byte_after_attributes_start_fails_crc(
        (_, records) in arb_batch(),
        pos_seed in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let mut b = build_batch(&BatchSpec::default(), &records);
        let pos = ATTRIBUTES_POS + pos_seed % (b.len() - ATTRIBUTES_POS);
        b[pos] ^= mask;
        let is_crc_error = matches!(validate_batch(&b), Err(BatchError::CorruptCrc { .. }));
        prop_assert!(is_crc_error);
    }

    #[test]
    fn flipped_crc_field_fails_crc((_, records) in arb_batch(), pos in CRC_POS..ATTRIBUTES_POS, mask in 1u8..=255) {
        let mut b = build_batch(&BatchSpec::default(), &records);
        b[pos] ^= mask;
        let is_crc_error = matches!(validate_batch(&b), Err(BatchError::CorruptCrc { .. }));
        prop_assert!(is_crc_error);
    }

    #[test]
    fn truncation_is_incomplete((_, records) in arb_batch(), cut_seed in any::<usize>()) {
        let b = build_batch(&BatchSpec::default(), &records);
        let cut = cut_seed % b.len();
        let r = validate_batch(&b[..cut]);
        let is_incomplete = matches!(r, Err(BatchError::Incomplete { .. }));
        prop_assert!(is_incomplete, "cut {} gave {:?}", cut, r);
        let mut it = BatchIter::new(&b[..cut]);
        prop_assert!(it.next().is_none());
        let tail_incomplete = cut == 0 || matches!(it.end(), BatchIterEnd::Incomplete { .. });
        prop_assert!(tail_incomplete);
        prop_assert_eq!(it.consumed(), 0);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = validate_batch(&bytes);
        let _ = decode_records(&bytes);
        for item in BatchIter::headers_only(&bytes) {
            let _ = item;
        }
    }
}
