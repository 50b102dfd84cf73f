//! Topic ids for `fjord topics --describe`, which Kafka prints as
//! `TopicId: ...`. librdkafka knows them but the `rdkafka` crate does not
//! expose them, so this file sends one Metadata v12 request over a plain TCP
//! connection and reads only the topic names and ids from the answer.
//!
//! Best effort by design: it is used only when the client speaks PLAINTEXT
//! (no TLS or SASL here), every socket operation has a timeout, and any
//! failure simply leaves the ids out, as Kafka's tool does for topics without
//! an id.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, ensure, Context};

const API_KEY_METADATA: i16 = 3;
const METADATA_VERSION: i16 = 12;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Topic name -> id (UUID text) from the first reachable bootstrap server.
pub(super) fn fetch(bootstrap: &str) -> BTreeMap<String, String> {
    for server in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match fetch_from(server) {
            Ok(ids) => return ids,
            Err(e) => tracing::debug!("topic ids from {server}: {e:#}"),
        }
    }
    BTreeMap::new()
}

fn fetch_from(server: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let addr = server
        .to_socket_addrs()?
        .next()
        .context("no address for the bootstrap server")?;
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(&encode_request(7))?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    ensure!(
        size > 0 && (size as usize) <= RESPONSE_BYTES_MAX,
        "response size {size}"
    );
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body)?;
    decode_response(&body, 7)
}

/// A Metadata v12 request for all topics, framed with its size.
fn encode_request(correlation_id: i32) -> Vec<u8> {
    let client_id = b"fjord-topics";
    let mut body = Vec::new();
    body.extend_from_slice(&API_KEY_METADATA.to_be_bytes());
    body.extend_from_slice(&METADATA_VERSION.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.push(0); // header tagged fields
    body.push(0); // topics: null compact array = all topics
    body.push(0); // allow_auto_topic_creation = false
    body.push(0); // include_topic_authorized_operations = false
    body.push(0); // tagged fields
    let mut framed = (body.len() as i32).to_be_bytes().to_vec();
    framed.extend(body);
    framed
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        ensure!(self.pos + n <= self.buf.len(), "truncated response");
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn skip(&mut self, n: usize) -> anyhow::Result<()> {
        self.take(n).map(|_| ())
    }

    fn i32(&mut self) -> anyhow::Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> anyhow::Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("varint too long")
    }

    /// Length of a compact array or string; `None` for null.
    fn compact_len(&mut self) -> anyhow::Result<Option<usize>> {
        Ok(match self.uvarint()? {
            0 => None,
            n => Some(usize::try_from(n - 1)?),
        })
    }

    fn compact_string(&mut self) -> anyhow::Result<Option<String>> {
        match self.compact_len()? {
            None => Ok(None),
            Some(n) => Ok(Some(String::from_utf8_lossy(self.take(n)?).into_owned())),
        }
    }

    fn tagged_fields(&mut self) -> anyhow::Result<()> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?)?;
            self.skip(size)?;
        }
        Ok(())
    }

    fn skip_i32_array(&mut self) -> anyhow::Result<()> {
        let n = self.compact_len()?.unwrap_or(0);
        self.skip(n * 4)
    }
}

fn decode_response(body: &[u8], correlation_id: i32) -> anyhow::Result<BTreeMap<String, String>> {
    let mut r = Reader { buf: body, pos: 0 };
    ensure!(r.i32()? == correlation_id, "correlation id mismatch");
    r.tagged_fields()?; // response header v1
    r.skip(4)?; // throttle_time_ms
    for _ in 0..r.compact_len()?.unwrap_or(0) {
        r.skip(4)?; // node_id
        r.compact_string()?; // host
        r.skip(4)?; // port
        r.compact_string()?; // rack
        r.tagged_fields()?;
    }
    r.compact_string()?; // cluster_id
    r.skip(4)?; // controller_id
    let mut out = BTreeMap::new();
    for _ in 0..r.compact_len()?.unwrap_or(0) {
        r.skip(2)?; // error_code
        let name = r.compact_string()?;
        let id = r.take(16)?;
        r.skip(1)?; // is_internal
        for _ in 0..r.compact_len()?.unwrap_or(0) {
            r.skip(2 + 4 + 4 + 4)?; // error, index, leader, leader epoch
            r.skip_i32_array()?; // replicas
            r.skip_i32_array()?; // isr
            r.skip_i32_array()?; // offline replicas
            r.tagged_fields()?;
        }
        r.skip(4)?; // topic_authorized_operations
        r.tagged_fields()?;
        if let Some(name) = name {
            if id.iter().any(|b| *b != 0) {
                out.insert(name, base64_url(id));
            }
        }
    }
    Ok(out)
}

/// Kafka prints topic ids as URL-safe base64 without padding (`Uuid.toString`).
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_like_kafka_uuid_to_string() {
        // Uuid(0, 1) in Kafka prints as AAAAAAAAAAAAAAAAAAAAAQ.
        let mut id = [0u8; 16];
        id[15] = 1;
        assert_eq!(base64_url(&id), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn request_is_framed() {
        let r = encode_request(7);
        assert_eq!(
            i32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize,
            r.len() - 4
        );
        assert_eq!(&r[4..6], &3i16.to_be_bytes());
        assert_eq!(&r[6..8], &12i16.to_be_bytes());
    }

    #[test]
    fn decodes_names_and_ids() {
        let mut b = Vec::new();
        b.extend_from_slice(&7i32.to_be_bytes());
        b.push(0); // header tags
        b.extend_from_slice(&0i32.to_be_bytes()); // throttle
        b.push(2); // one broker
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(10);
        b.extend_from_slice(b"127.0.0.1");
        b.extend_from_slice(&9092i32.to_be_bytes());
        b.push(0); // rack null
        b.push(0); // tags
        b.push(0); // cluster id null
        b.extend_from_slice(&1i32.to_be_bytes()); // controller
        b.push(2); // one topic
        b.extend_from_slice(&0i16.to_be_bytes());
        b.push(2);
        b.push(b't');
        let mut id = [0u8; 16];
        id[15] = 1;
        b.extend_from_slice(&id);
        b.push(0); // internal
        b.push(2); // one partition
        b.extend_from_slice(&[0; 2 + 4]);
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&1i32.to_be_bytes());
        b.push(1);
        b.push(0); // partition tags
        b.extend_from_slice(&0i32.to_be_bytes()); // authorized ops
        b.push(0); // topic tags
        b.push(0); // response tags
        let ids = decode_response(&b, 7).unwrap();
        assert_eq!(
            ids.get("t").map(String::as_str),
            Some("AAAAAAAAAAAAAAAAAAAAAQ")
        );
        assert!(decode_response(&b[..b.len() - 10], 7).is_err());
    }
}
