//! Just enough of the "consumer" embedded protocol to know which topics a group consumes.
//!
//! OffsetDelete must refuse to drop offsets of a topic the group still reads
//! (GROUP_SUBSCRIBED_TO_TOPIC), and offset expiry spares those topics. Like Kafka, only the
//! version-0 prefix (version, topics, user data) is read, so future subscription versions
//! still decode.

use crate::records::{Reader, RecordError};

/// The protocol type whose member metadata is a `ConsumerProtocolSubscription`.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics listed in a consumer's JoinGroup metadata for the selected protocol.
pub fn subscription_topics(metadata: &[u8]) -> Result<Vec<String>, RecordError> {
    let mut r = Reader::new(metadata, "consumer subscription");
    let version = r.i16("version")?;
    if version < 0 {
        return Err(RecordError::UnsupportedValueVersion {
            record: "consumer subscription",
            version,
        });
    }
    let count = r.array_len("topics")?;
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        topics.push(r.string("topic")?);
    }
    r.nullable_bytes("user_data")?;
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::subscription_topics;

    /// A v1 subscription as the Java client writes it: topics, user data, owned partitions.
    #[test]
    fn topics_are_read_from_a_v1_subscription() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null user data
        bytes.extend_from_slice(&[0, 0, 0, 0]); // owned partitions: none
        assert_eq!(
            subscription_topics(&bytes).unwrap(),
            vec!["a".to_owned(), "bc".to_owned()]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(subscription_topics(&[0, 0, 0, 0, 0, 5]).is_err());
        assert!(subscription_topics(&[0xff, 0xff]).is_err());
    }
}
