//! Fetch responses written as a list of chunks, so record bytes read from the log go to the
//! socket as they are instead of being copied once more into one response buffer.
//!
//! The codec encodes every partition's fixed fields (records left null); this module strips the
//! null marker and places the real length and the record bytes after it. The concatenated
//! chunks are byte-identical to the codec's own encoding (tested for every served version).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, ResponseHeader, TopicName};
use kafka_protocol::protocol::Encodable;

use crate::frame::EncodeError;

/// First Fetch version with flexible (compact) encoding.
const FLEXIBLE_SINCE: i16 = 12;

/// The chunks of one response frame, to be written in order.
#[derive(Debug, Default, Clone)]
pub struct ResponseChunks {
    /// The frame's pieces; the first starts with the size prefix.
    pub chunks: Vec<Bytes>,
}

impl ResponseChunks {
    /// Total bytes in the frame.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether the frame is empty (never true for an encoded response).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One partition of a fetch response: its fields (with `records` left `None`) and its records.
#[derive(Debug, Clone)]
pub struct FetchedPartition {
    /// Every field but the records.
    pub data: PartitionData,
    /// Record batches as stored.
    pub records: Bytes,
}

/// The top-level fields of a fetch response and its topics.
#[derive(Debug, Clone, Default)]
pub struct FetchResponseParts {
    /// Top-level error (v7+).
    pub error_code: i16,
    /// Fetch session id (v7+); 0 means no session.
    pub session_id: i32,
    /// Topics in request order, each with its partitions.
    pub topics: Vec<(TopicName, Vec<FetchedPartition>)>,
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_array_len(out: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_unsigned_varint(out, len as u64 + 1);
    } else {
        out.put_i32(len as i32);
    }
}

fn put_string(out: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_unsigned_varint(out, s.len() as u64 + 1);
    } else {
        out.put_i16(s.len() as i16);
    }
    out.put_slice(s.as_bytes());
}

/// Encodes a Fetch response (v4 to v12) as chunks: headers in small buffers, record bytes as
/// given.
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    parts: &FetchResponseParts,
) -> Result<ResponseChunks, EncodeError> {
    let err = |message: String| EncodeError {
        api_key: ApiKey::Fetch,
        api_version: version,
        message,
    };
    if !(4..=FLEXIBLE_SINCE).contains(&version) {
        return Err(err(format!("chunked encoding covers v4-v{FLEXIBLE_SINCE}")));
    }
    let flexible = version >= FLEXIBLE_SINCE;
    let mut chunks = Vec::new();
    let mut head = BytesMut::with_capacity(256);
    head.put_i32(0); // size, patched below
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut head, ApiKey::Fetch.response_header_version(version))
        .map_err(|e| err(e.to_string()))?;
    head.put_i32(0); // throttle_time_ms
    if version >= 7 {
        head.put_i16(parts.error_code);
        head.put_i32(parts.session_id);
    }
    put_array_len(&mut head, parts.topics.len(), flexible);
    for (topic, partitions) in &parts.topics {
        put_string(&mut head, topic.as_str(), flexible);
        put_array_len(&mut head, partitions.len(), flexible);
        for p in partitions {
            let mut fields = p.data.clone();
            fields.records = None;
            let mut encoded = BytesMut::new();
            fields
                .encode(&mut encoded, version)
                .map_err(|e| err(e.to_string()))?;
            // Records are the last regular field: drop its null marker (and, when flexible,
            // the tagged-field section after it, which we re-append).
            let (marker_len, tags) = if flexible {
                // null compact bytes (0x00) then the partition's tagged fields.
                let tags = tagged_section_len(&fields, version).map_err(err)?;
                (1, tags)
            } else {
                (4, 0)
            };
            let cut = encoded.len() - tags - marker_len;
            let tag_bytes = encoded.split_off(cut + marker_len).freeze();
            encoded.truncate(cut);
            head.put_slice(&encoded);
            if flexible {
                put_unsigned_varint(&mut head, p.records.len() as u64 + 1);
            } else {
                head.put_i32(p.records.len() as i32);
            }
            if !p.records.is_empty() {
                chunks.push(head.split().freeze());
                chunks.push(p.records.clone());
            }
            head.put_slice(&tag_bytes);
        }
        if flexible {
            head.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        head.put_u8(0); // response tagged fields
    }
    chunks.push(head.freeze());
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let mut first = BytesMut::from(&chunks[0][..]);
    first[..4].copy_from_slice(&((total - 4) as i32).to_be_bytes());
    chunks[0] = first.freeze();
    Ok(ResponseChunks { chunks })
}

/// Size of a partition's tagged-field section (flexible versions): the codec writes tagged
/// fields (current leader, diverging epoch, snapshot id) only when they differ from their
/// defaults, at the end of the partition, so the section is what the fields add to the
/// encoding without them plus the one count byte that encoding ends with.
fn tagged_section_len(fields: &PartitionData, version: i16) -> Result<usize, String> {
    let untouched = PartitionData::default();
    let mut untagged = fields.clone();
    untagged.diverging_epoch = untouched.diverging_epoch;
    untagged.current_leader = untouched.current_leader;
    untagged.snapshot_id = untouched.snapshot_id;
    untagged.unknown_tagged_fields.clear();
    let with = fields.compute_size(version).map_err(|e| e.to_string())?;
    let without = untagged.compute_size(version).map_err(|e| e.to_string())?;
    Ok(with - without + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_response;
    use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse};
    use kafka_protocol::messages::{FetchResponse, ProducerId};
    use kafka_protocol::protocol::StrBytes;

    fn partition(index: i32, records: &'static [u8], version: i16) -> FetchedPartition {
        let mut data = PartitionData::default();
        data.partition_index = index;
        data.high_watermark = 42;
        data.last_stable_offset = 42;
        if version >= 5 {
            data.log_start_offset = 3;
        }
        if index == 1 {
            let mut aborted = AbortedTransaction::default();
            aborted.producer_id = ProducerId(7);
            aborted.first_offset = 9;
            data.aborted_transactions = Some(vec![aborted]);
        }
        FetchedPartition {
            data,
            records: Bytes::from_static(records),
        }
    }

    #[test]
    fn chunks_equal_the_codec_encoding_for_every_served_version() {
        for version in 4..=12 {
            let parts = FetchResponseParts {
                error_code: 0,
                session_id: 0,
                topics: vec![
                    (
                        TopicName(StrBytes::from_static_str("orders")),
                        vec![
                            partition(0, b"batch-bytes", version),
                            partition(1, b"", version),
                        ],
                    ),
                    (
                        TopicName(StrBytes::from_static_str("t2")),
                        vec![partition(5, b"xyz", version)],
                    ),
                ],
            };
            let chunks = encode_fetch_response(version, 99, &parts).unwrap();
            let joined: Vec<u8> = chunks.chunks.iter().flat_map(|c| c.to_vec()).collect();

            let mut expected = FetchResponse::default();
            for (name, ps) in &parts.topics {
                let mut t = FetchableTopicResponse::default();
                t.topic = name.clone();
                for p in ps {
                    let mut d = p.data.clone();
                    d.records = Some(p.records.clone());
                    t.partitions.push(d);
                }
                expected.responses.push(t);
            }
            let expected = encode_response(ApiKey::Fetch, version, 99, &expected).unwrap();
            assert_eq!(joined, expected.to_vec(), "v{version}");
            assert_eq!(chunks.len(), expected.len());
        }
    }

    #[test]
    fn leader_hints_are_encoded_as_the_codec_does() {
        for version in 4..=12 {
            let mut hinted = partition(3, b"", version);
            hinted.data.error_code = 6;
            hinted.data.current_leader.leader_id = kafka_protocol::messages::BrokerId(2);
            hinted.data.current_leader.leader_epoch = 7;
            let parts = FetchResponseParts {
                error_code: 0,
                session_id: 0,
                topics: vec![(
                    TopicName(StrBytes::from_static_str("orders")),
                    vec![hinted.clone(), partition(0, b"batch", version)],
                )],
            };
            let chunks = encode_fetch_response(version, 5, &parts).unwrap();
            let joined: Vec<u8> = chunks.chunks.iter().flat_map(|c| c.to_vec()).collect();
            let mut expected = FetchResponse::default();
            let mut t = FetchableTopicResponse::default();
            t.topic = TopicName(StrBytes::from_static_str("orders"));
            for p in &parts.topics[0].1 {
                let mut d = p.data.clone();
                d.records = Some(p.records.clone());
                t.partitions.push(d);
            }
            expected.responses.push(t);
            let expected = encode_response(ApiKey::Fetch, version, 5, &expected).unwrap();
            assert_eq!(joined, expected.to_vec(), "v{version}");
            if version >= 12 {
                let decoded = <FetchResponse as kafka_protocol::protocol::Decodable>::decode(
                    &mut expected.slice(4 + 5..),
                    version,
                )
                .unwrap();
                let leader = &decoded.responses[0].partitions[0].current_leader;
                assert_eq!((leader.leader_id.0, leader.leader_epoch), (2, 7));
            }
        }
    }
}
