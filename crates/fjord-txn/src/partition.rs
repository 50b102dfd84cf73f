//! Which `__transaction_state` (or `__consumer_offsets`) partition owns an id.
//!
//! Producers find their coordinator with FindCoordinator, and every broker (and Kafka itself)
//! must agree on the answer, so this reproduces Java's `String.hashCode` bit for bit.

// Java's String.hashCode and the offsets-partition mapping are the group coordinator's; the
// transaction coordinator uses the same ones so both always agree on a group's partition.
pub use fjord_group::{java_string_hashcode, partition_for_group};

/// The `__transaction_state` partition for `transactional_id`: Kafka's
/// `Utils.abs(transactionalId.hashCode) % transactionTopicPartitionCount`, where `Utils.abs` is
/// `n & 0x7fffffff` (so `i32::MIN` maps to 0, not to an overflow).
///
/// # Panics
/// If `num_partitions` is not positive; [`crate::TxnConfig::validate`] rules that out.
pub fn partition_for_transactional_id(transactional_id: &str, num_partitions: i32) -> i32 {
    assert!(
        num_partitions > 0,
        "transaction state topic must have partitions"
    );
    (java_string_hashcode(transactional_id) & 0x7fff_ffff) % num_partitions
}

#[cfg(test)]
mod tests {
    use super::{java_string_hashcode, partition_for_group, partition_for_transactional_id};

    #[test]
    fn hashcode_matches_java() {
        let cases = [
            ("", 0),
            ("a", 97),
            ("abc", 96354),
            ("hello", 99162322),
            ("my-group", -1906497762),
            // Non-BMP: one code point, two UTF-16 units (0xD83D, 0xDE00).
            ("😀", 0xD83D * 31 + 0xDE00),
        ];
        for (s, expected) in cases {
            assert_eq!(java_string_hashcode(s), expected, "{s}");
        }
    }

    #[test]
    fn partition_uses_kafka_abs_and_modulo() {
        assert_eq!(
            partition_for_transactional_id("my-group", 50),
            (-1906497762i32 & 0x7fff_ffff) % 50
        );
        assert_eq!(partition_for_transactional_id("abc", 50), 96354 % 50);
        // "polygenelubricants" hashes to i32::MIN in Java; Utils.abs maps it to 0.
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for_transactional_id("polygenelubricants", 7), 0);
        assert_eq!(partition_for_group("abc", 50), 96354 % 50);
    }
}
