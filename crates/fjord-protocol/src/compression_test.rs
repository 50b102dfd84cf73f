use super::*;
use crate::batch::{build_batch, RecordHeader};
use proptest::prelude::*;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn sample_payload(len: usize) -> Vec<u8> {
    // Mildly compressible: repeating text with a counter, like real JSON records.
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{{\"id\":{i},\"name\":\"user-{}\"}}", i % 97).as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn every_codec_round_trips_payloads_of_many_sizes() {
    for codec in CODECS {
        for len in [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 200_000] {
            let input = sample_payload(len);
            let packed = compress(codec, &input).unwrap();
            let unpacked = decompress(codec, &packed, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
            assert_eq!(unpacked, input, "{codec:?} len {len}");
        }
    }
}

#[test]
fn encoders_write_the_framing_kafka_clients_expect() {
    let input = sample_payload(1000);
    assert_eq!(
        &compress(Compression::Gzip, &input).unwrap()[..2],
        &[0x1f, 0x8b]
    );
    let snappy = compress(Compression::Snappy, &input).unwrap();
    assert_eq!(&snappy[..8], b"\x82SNAPPY\x00");
    assert_eq!(&snappy[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
    // LZ4 frame magic 0x184D2204, little endian.
    assert_eq!(
        &compress(Compression::Lz4, &input).unwrap()[..4],
        &[0x04, 0x22, 0x4d, 0x18]
    );
    // zstd frame magic 0xFD2FB528, little endian.
    assert_eq!(
        &compress(Compression::Zstd, &input).unwrap()[..4],
        &[0x28, 0xb5, 0x2f, 0xfd]
    );
}

#[test]
fn snappy_decodes_raw_and_multi_block_xerial() {
    let input = sample_payload(100_000);
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    assert_eq!(
        decompress(Compression::Snappy, &raw, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap(),
        input
    );

    // A hand-framed xerial stream with uneven blocks, as another writer might split it.
    let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for chunk in input.chunks(7_000) {
        let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
        framed.extend_from_slice(&(block.len() as i32).to_be_bytes());
        framed.extend_from_slice(&block);
    }
    assert_eq!(
        decompress(Compression::Snappy, &framed, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap(),
        input
    );

    // A block length running past the end is corruption, not a panic.
    framed.truncate(framed.len() - 3);
    assert!(matches!(
        decompress(Compression::Snappy, &framed, DEFAULT_MAX_DECOMPRESSED_BYTES),
        Err(CompressionError::Corrupt { .. })
    ));
}

#[test]
fn decompression_bombs_are_refused_at_the_limit() {
    let zeros = vec![0u8; 8 << 20];
    for codec in CODECS {
        let packed = compress(codec, &zeros).unwrap();
        let limit = 1 << 20;
        match decompress(codec, &packed, limit) {
            Err(CompressionError::TooLarge { codec: c, limit: l }) => {
                assert_eq!((c, l), (codec, limit))
            }
            other => panic!("{codec:?}: expected TooLarge, got {other:?}"),
        }
        // Exactly at the limit is fine.
        let ok = decompress(codec, &packed, zeros.len()).unwrap();
        assert_eq!(ok.len(), zeros.len());
    }
}

#[test]
fn garbage_is_reported_as_corrupt() {
    let garbage = b"definitely not compressed data, not even close".to_vec();
    for codec in [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        assert!(
            matches!(
                decompress(codec, &garbage, 1 << 20),
                Err(CompressionError::Corrupt { .. })
            ),
            "{codec:?}"
        );
    }
}

fn specs(n: usize) -> Vec<RecordSpec> {
    (0..n)
        .map(|i| RecordSpec {
            timestamp: 1_000 + i as i64 * 3,
            key: (i % 5 != 0).then(|| format!("key-{i}").into_bytes()),
            value: (i % 7 != 0).then(|| sample_payload(10 + i * 13)),
            headers: if i % 3 == 0 {
                vec![RecordHeader {
                    key: "trace".into(),
                    value: Some(vec![i as u8]),
                }]
            } else {
                vec![]
            },
        })
        .collect()
}

#[test]
fn compressed_batches_round_trip_through_decode_records_any() {
    let spec = BatchSpec {
        base_offset: 500,
        partition_leader_epoch: 4,
        producer_id: 77,
        producer_epoch: 2,
        base_sequence: 10,
        ..BatchSpec::default()
    };
    let input = specs(40);
    for codec in CODECS {
        let batch = build_compressed_batch(&spec, codec, &input).unwrap();
        let header = validate_batch(&batch).unwrap();
        assert_eq!(header.compression(), Ok(codec));
        assert_eq!(
            (
                header.base_offset,
                header.last_offset_delta,
                header.records_count
            ),
            (500, 39, 40)
        );
        assert_eq!((header.producer_id, header.base_sequence), (77, 10));
        let records = decode_records_any(&batch, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
        assert_eq!(records.len(), 40);
        for (i, (r, s)) in records.iter().zip(&input).enumerate() {
            assert_eq!(r.offset, 500 + i as i64);
            assert_eq!(r.timestamp, s.timestamp);
            assert_eq!(
                (&r.key, &r.value, &r.headers),
                (&s.key, &s.value, &s.headers)
            );
        }
        if codec != Compression::None {
            assert!(matches!(
                crate::batch::decode_records(&batch),
                Err(BatchError::CompressedRecords(c)) if c == codec
            ));
            // The limit applies to the records section.
            assert!(matches!(
                decode_records_any(&batch, 100),
                Err(CompressionError::TooLarge { .. })
            ));
        }
    }
}

#[test]
fn uncompressed_builder_matches_build_batch_byte_for_byte() {
    let input = specs(25);
    let spec = BatchSpec {
        base_offset: 9,
        ..BatchSpec::default()
    };
    assert_eq!(
        build_compressed_batch(&spec, Compression::None, &input).unwrap(),
        build_batch(&spec, &input)
    );
}

#[test]
fn offsets_gaps_and_last_offset_delta_survive_a_rebuild() {
    let original = build_batch(
        &BatchSpec {
            base_offset: 100,
            ..BatchSpec::default()
        },
        &specs(10),
    );
    let all = crate::batch::decode_records(&original).unwrap();
    // Keep records 2, 5 and 6 (offsets 102, 105, 106); the batch keeps covering 100..=109.
    let kept: Vec<Record> = [2, 5, 6].iter().map(|&i| all[i].clone()).collect();
    for codec in CODECS {
        let rebuilt = build_batch_at_offsets(
            &OffsetBatchSpec {
                batch: BatchSpec {
                    base_offset: 100,
                    ..BatchSpec::default()
                },
                compression: codec,
                last_offset_delta: Some(9),
                log_append_time: None,
            },
            &kept,
        )
        .unwrap();
        let header = validate_batch(&rebuilt).unwrap();
        assert_eq!(
            (
                header.base_offset,
                header.last_offset(),
                header.records_count
            ),
            (100, 109, 3)
        );
        assert_eq!(header.base_timestamp, kept[0].timestamp);
        assert_eq!(header.max_timestamp, kept[2].timestamp);
        let decoded = decode_records_any(&rebuilt, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
        let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![102, 105, 106]);
        for (d, k) in decoded.iter().zip(&kept) {
            assert_eq!(
                (d.timestamp, &d.key, &d.value, &d.headers),
                (k.timestamp, &k.key, &k.value, &k.headers)
            );
        }
    }
}

#[test]
fn builder_rejects_unordered_or_out_of_range_offsets() {
    let rec = |offset| Record {
        offset,
        timestamp: 0,
        attributes: 0,
        offset_delta: 0,
        timestamp_delta: 0,
        key: None,
        value: None,
        headers: vec![],
    };
    let spec = OffsetBatchSpec {
        batch: BatchSpec {
            base_offset: 10,
            ..BatchSpec::default()
        },
        ..OffsetBatchSpec::default()
    };
    for bad in [
        vec![rec(12), rec(11)],
        vec![rec(9)],
        vec![rec(10 + (1 << 31))],
    ] {
        assert!(matches!(
            build_batch_at_offsets(&spec, &bad),
            Err(CompressionError::InvalidRecords(_))
        ));
    }
    let short = OffsetBatchSpec {
        last_offset_delta: Some(1),
        ..spec
    };
    assert!(build_batch_at_offsets(&short, &[rec(15)]).is_err());
}

#[test]
fn log_append_time_keeps_the_append_time() {
    let records = specs(3);
    let base = crate::batch::decode_records(&build_batch(&BatchSpec::default(), &records)).unwrap();
    let batch = build_batch_at_offsets(
        &OffsetBatchSpec {
            batch: BatchSpec {
                timestamp_type: TimestampType::LogAppendTime,
                ..BatchSpec::default()
            },
            compression: Compression::Lz4,
            last_offset_delta: None,
            log_append_time: Some(42_000),
        },
        &base,
    )
    .unwrap();
    let decoded = decode_records_any(&batch, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
    assert!(decoded.iter().all(|r| r.timestamp == 42_000));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_bytes_round_trip_with_any_codec(
        data in proptest::collection::vec(any::<u8>(), 0..4096),
        codec in 0i16..5,
    ) {
        let codec = Compression::from_id(codec).unwrap();
        let packed = compress(codec, &data).unwrap();
        prop_assert_eq!(decompress(codec, &packed, 4096).unwrap(), data);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_input(
        data in proptest::collection::vec(any::<u8>(), 0..512),
        codec in 1i16..5,
    ) {
        let codec = Compression::from_id(codec).unwrap();
        let _ = decompress(codec, &data, 1 << 16);
    }
}

/// Record batches built by an independent Kafka client (kafka-python 3.0.12's
/// `DefaultRecordBatchBuilder`, with python-snappy, lz4 and zstandard): records
/// `key-0..2` -> `value-N-` x 8 (timestamps 1700000000000 + N, header `h=x` on record 1),
/// then a tombstone for `key-0`. Snappy is xerial-framed, lz4 a frame with content size.
const KAFKA_PYTHON_BATCHES: &[(Compression, &[&str])] = &[
    (
        Compression::Gzip,
        &[
        "0000000000000000000000880000000002e0f568d20001000000030000018bcfe568000000018bcfe56803ff",
        "ffffffffffffffffffffffffff000000041f8b080034c6046b02ff9bc1c8c0c0c0959d5aa96bd0c058969853",
        "9aaa6ba04b2ecdb080918189096c9a21cc34435d726926a60ca68a198c0c2c2c60138d60261ae9924b338831",
        "b0b1413ccbc8000082fb230ffa000000",
        ],
    ),
    (
        Compression::Snappy,
        &[
        "00000000000000000000009c000000000211137a200002000000030000018bcfe568000000018bcfe56803ff",
        "ffffffffffffffffffffffffff0000000482534e4150505900000000010000000100000057fa015098010000",
        "000a6b65792d30800176616c75652d302dde08001400a001000202054e0031114e00310d4ec6080024020268",
        "02789801000404055208328001099800320d52c608003000160006060a6b65792d300100",
        ],
    ),
    (
        Compression::Lz4,
        &[
        "00000000000000000000009e00000000029496b77f0003000000030000018bcfe568000000018bcfe56803ff",
        "ffffffffffffffffffffffffff0000000404224d186840fa00000000000000aa56000000ff0698010000000a",
        "6b65792d30800176616c75652d302d0800256100a0010002024e0014314e0013314e000f08001fa102026802",
        "789801000404520014325200133252000f08001fd000160006060a6b65792d30010000000000",
        ],
    ),
    (
        Compression::Zstd,
        &[
        "00000000000000000000008800000000028133b8590004000000030000018bcfe568000000018bcfe56803ff",
        "ffffffffffffffffffffffffff0000000428b52ffd20fa750200640398010000000a6b65792d30800176616c",
        "75652d302d00a001000202313102026802789801000404323200160006060a6b65792d30010009008308201f",
        "10abc2d58318201f108bc2057767b903",
        ],
    ),
];

#[test]
fn decodes_batches_written_by_kafka_python() {
    for (codec, hex) in KAFKA_PYTHON_BATCHES {
        let hex: String = hex.concat();
        let batch: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let header = validate_batch(&batch).unwrap();
        assert_eq!(header.compression(), Ok(*codec));
        let records = decode_records_any(&batch, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
        assert_eq!(records.len(), 4, "{codec:?}");
        for (i, r) in records.iter().take(3).enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("key-{i}").as_bytes()));
            assert_eq!(
                r.value.as_deref(),
                Some(format!("value-{i}-").repeat(8).as_bytes())
            );
        }
        assert_eq!(
            records[1].headers,
            vec![RecordHeader {
                key: "h".into(),
                value: Some(b"x".to_vec())
            }]
        );
        assert_eq!(
            (records[3].key.as_deref(), records[3].value.as_deref()),
            (Some(&b"key-0"[..]), None)
        );

        // Rebuilt by us (the tombstone dropped, offsets kept), it still validates and decodes.
        let spec = OffsetBatchSpec {
            compression: *codec,
            last_offset_delta: Some(header.last_offset_delta),
            ..OffsetBatchSpec::default()
        };
        let rebuilt = build_batch_at_offsets(&spec, &records[1..3]).unwrap();
        let again = decode_records_any(&rebuilt, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
        let fields = |r: &Record| {
            (
                r.offset,
                r.timestamp,
                r.key.clone(),
                r.value.clone(),
                r.headers.clone(),
            )
        };
        assert_eq!(
            again.iter().map(fields).collect::<Vec<_>>(),
            records[1..3].iter().map(fields).collect::<Vec<_>>()
        );
        assert_eq!(validate_batch(&rebuilt).unwrap().last_offset(), 3);
    }
}

/// Writes our encodings to `$FJORD_DUMP_BATCHES` for checking them with another client
/// (kafka-python's `DefaultRecordBatch`); a no-op otherwise.
#[test]
fn dump_batches_for_cross_client_checks() {
    let Ok(path) = std::env::var("FJORD_DUMP_BATCHES") else {
        return;
    };
    let mut out = String::new();
    for codec in CODECS {
        let batch = build_compressed_batch(&BatchSpec::default(), codec, &specs(20)).unwrap();
        let hex: String = batch.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{} {hex}\n", codec.id()));
    }
    std::fs::write(path, out).unwrap();
}
