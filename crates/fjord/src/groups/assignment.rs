//! Decoding of the consumer protocol's member assignment, the opaque bytes a
//! group leader sends in SyncGroup and DescribeGroups returns per member.
//!
//! ```text
//! ConsumerProtocolAssignment (versions 0..=3, all non-flexible):
//!   version          int16
//!   assigned         int32 count, then per topic:
//!     topic            string (int16 length, UTF-8)
//!     partitions       int32 count, then int32 each
//!   user_data        bytes (int32 length, -1 = null)
//! ```
//!
//! Version 0 clients may omit `user_data` entirely; that is accepted. Newer
//! versions may append fields, which are ignored (Kafka's forward
//! compatibility rule for this struct).

use std::fmt;

/// The decoded assignment of one group member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub(crate) version: i16,
    /// (topic, partitions) in the order the leader wrote them.
    pub(crate) topics: Vec<(String, Vec<i32>)>,
    pub(crate) user_data: Option<Vec<u8>>,
}

impl Assignment {
    /// Every assigned (topic, partition), in encoding order.
    pub(crate) fn partitions(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
    }
}

/// Why assignment bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed consumer assignment: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "{what} needs {n} bytes at offset {}, only {} left",
                    self.pos,
                    self.buf.len() - self.pos
                ))
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An array count; negative means null, treated as empty.
    fn count(&mut self, what: &str) -> Result<usize, DecodeError> {
        let n = self.i32(what)?;
        let n = usize::try_from(n).unwrap_or(0);
        // Each element takes at least 2 bytes; reject absurd counts early.
        if n > self.buf.len() {
            return Err(DecodeError(format!("{what} count {n} exceeds the data")));
        }
        Ok(n)
    }

    fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = self.i16(what)?;
        let Ok(len) = usize::try_from(len) else {
            return Err(DecodeError(format!("{what} is null")));
        };
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| DecodeError(format!("{what} is not valid UTF-8")))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Decodes a member assignment. Empty input (a member that has not been
/// assigned anything yet, e.g. during a rebalance) is an empty assignment.
pub(crate) fn decode_assignment(bytes: &[u8]) -> Result<Assignment, DecodeError> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.i16("version")?;
    if version < 0 {
        return Err(DecodeError(format!("negative version {version}")));
    }
    let topic_count = r.count("topic array")?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let topic = r.string("topic name")?;
        let n = r.count("partition array")?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(r.i32("partition")?);
        }
        topics.push((topic, partitions));
    }
    let user_data = if r.remaining() == 0 {
        None
    } else {
        let len = r.i32("user data length")?;
        match usize::try_from(len) {
            Ok(len) => Some(r.take(len, "user data")?.to_vec()),
            Err(_) => None,
        }
    };
    Ok(Assignment {
        version,
        topics,
        user_data,
    })
}

/// Encodes an assignment (version 0 layout with the given version number);
/// the inverse of [`decode_assignment`], used by tests.
#[cfg(test)]
pub(crate) fn encode_assignment(a: &Assignment) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&a.version.to_be_bytes());
    out.extend_from_slice(&(a.topics.len() as i32).to_be_bytes());
    for (topic, partitions) in &a.topics {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for p in partitions {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    match &a.user_data {
        Some(d) => {
            out.extend_from_slice(&(d.len() as i32).to_be_bytes());
            out.extend_from_slice(d);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_librdkafka_assignment() {
        // As librdkafka's range assignor sends it: v0, one topic "orders"
        // with partitions 0 and 2, null user data.
        let bytes: Vec<u8> = [
            &[0, 0][..],
            &[0, 0, 0, 1],
            &[0, 6],
            b"orders",
            &[0, 0, 0, 2],
            &[0, 0, 0, 0],
            &[0, 0, 0, 2],
            &[0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        let a = decode_assignment(&bytes).unwrap();
        assert_eq!(a.version, 0);
        assert_eq!(a.topics, vec![("orders".to_string(), vec![0, 2])]);
        assert_eq!(a.user_data, None);
        assert_eq!(
            a.partitions().collect::<Vec<_>>(),
            vec![("orders", 0), ("orders", 2)]
        );
    }

    #[test]
    fn round_trips_and_accepts_missing_or_extra_tail() {
        let a = Assignment {
            version: 3,
            topics: vec![
                ("a".into(), vec![1, 0]),
                ("bb".into(), vec![]),
                ("c".into(), vec![7]),
            ],
            user_data: Some(vec![1, 2, 3]),
        };
        let bytes = encode_assignment(&a);
        assert_eq!(decode_assignment(&bytes).unwrap(), a);
        // Future versions may append fields.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[9, 9, 9]);
        assert_eq!(decode_assignment(&longer).unwrap(), a);
        // Old clients may omit user data altogether.
        let no_user_data = Assignment {
            user_data: None,
            ..a.clone()
        };
        let mut bytes = encode_assignment(&no_user_data);
        bytes.truncate(bytes.len() - 4);
        assert_eq!(decode_assignment(&bytes).unwrap(), no_user_data);
    }

    #[test]
    fn empty_bytes_mean_no_assignment() {
        assert_eq!(decode_assignment(&[]).unwrap(), Assignment::default());
    }

    #[test]
    fn rejects_truncated_or_absurd_input() {
        let a = Assignment {
            version: 0,
            topics: vec![("topic".into(), vec![0, 1, 2])],
            user_data: Some(vec![5; 10]),
        };
        let bytes = encode_assignment(&a);
        for cut in 1..bytes.len() - 14 {
            assert!(
                decode_assignment(&bytes[..cut]).is_err(),
                "truncated at {cut} should fail"
            );
        }
        assert!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_assignment(&[0xff, 0xff, 0, 0, 0, 0]).is_err());
        // Invalid UTF-8 topic name.
        assert!(decode_assignment(&[0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0, 0, 0, 0]).is_err());
    }
}
