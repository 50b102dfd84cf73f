//! Size-prefixed framing and request/response headers.
//!
//! Every Kafka message travels as a 4-byte big-endian length followed by that many bytes.
//! Parsing is check-then-parse: [`parse_frame`] returns `Ok(None)` until a whole frame is
//! buffered, so a connection never blocks on a half-read request and never allocates for a
//! frame larger than the configured limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Smallest possible request body: api key, api version and correlation id.
const MIN_REQUEST_LEN: usize = 8;

/// Why a frame or a request header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix is above `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size announced by the prefix.
        size: i64,
        /// The configured limit.
        max: usize,
    },
    /// The size prefix is negative or too small to hold a request header.
    #[error("frame size {0} is too small for a request header")]
    TooSmall(i32),
    /// The header could not be decoded (truncated or malformed fields).
    #[error("malformed request header: {0}")]
    MalformedHeader(String),
}

/// Takes one whole frame off the front of `buf`, or returns `Ok(None)` if more bytes are needed.
pub fn parse_frame(buf: &mut BytesMut, max_size: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < MIN_REQUEST_LEN as i32 {
        return Err(FrameError::TooSmall(size));
    }
    let size = size as usize;
    if size > max_size {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max: max_size,
        });
    }
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// The first fields of every request, readable for any api key and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPreamble {
    /// Raw api key (may be one no Kafka version defines).
    pub api_key: i16,
    /// Requested version of that API.
    pub api_version: i16,
    /// Echoed back in the response so the client can match it.
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id without decoding anything version-dependent, so
/// the broker can answer requests it cannot otherwise parse.
pub fn peek_preamble(frame: &[u8]) -> Result<RequestPreamble, FrameError> {
    if frame.len() < MIN_REQUEST_LEN {
        return Err(FrameError::TooSmall(frame.len() as i32));
    }
    Ok(RequestPreamble {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the full request header of a known api key, leaving `frame` at the request body.
pub fn decode_request_header(
    frame: &mut Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<RequestHeader, FrameError> {
    let header_version = api_key.request_header_version(api_version);
    RequestHeader::decode(frame, header_version)
        .map_err(|e| FrameError::MalformedHeader(e.to_string()))
}

/// Why a response could not be encoded (a bug or an oversized value, never client input).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {message}")]
pub struct EncodeError {
    /// The API whose response failed.
    pub api_key: ApiKey,
    /// The version it was encoded at.
    pub api_version: i16,
    /// What the codec reported.
    pub message: String,
}

/// Encodes a whole response frame: size prefix, response header, body.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let to_error = |e: kafka_protocol_error::Error| EncodeError {
        api_key,
        api_version,
        message: e.to_string(),
    };
    let header_version = api_key.response_header_version(api_version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let header_size = header.compute_size(header_version).map_err(to_error)?;
    let body_size = body.compute_size(api_version).map_err(to_error)?;
    let mut out = BytesMut::with_capacity(4 + header_size + body_size);
    out.put_i32((header_size + body_size) as i32);
    header.encode(&mut out, header_version).map_err(to_error)?;
    body.encode(&mut out, api_version).map_err(to_error)?;
    Ok(out.freeze())
}

/// The minimal error answer for an api key or version the broker does not serve: the response
/// header followed by an UNSUPPORTED_VERSION error code, which is how every Kafka response that
/// starts with an error code reports it.
pub fn encode_unsupported_version(correlation_id: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(10);
    out.put_i32(6);
    out.put_i32(correlation_id);
    out.put_i16(UNSUPPORTED_VERSION);
    out.freeze()
}

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// kafka-protocol reports codec failures as `anyhow::Error`.
mod kafka_protocol_error {
    pub(crate) type Error = anyhow::Error;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_whole_frame() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 10, 1, 2, 3][..]);
        assert_eq!(parse_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[4, 5, 6, 7, 8, 9, 10, 99]);
        let frame = parse_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(&buf[..], &[99]);
    }

    #[test]
    fn refuses_oversized_and_undersized_frames() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            parse_frame(&mut buf, 1024),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(parse_frame(&mut buf, 1024), Err(FrameError::TooSmall(-1)));
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2, 3][..]);
        assert_eq!(parse_frame(&mut buf, 1024), Err(FrameError::TooSmall(3)));
    }

    #[test]
    fn truncated_header_is_an_error_not_a_panic() {
        // ApiVersions v3 uses a flexible header; cut it inside the client id.
        let mut frame = Bytes::from_static(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 20, b'a']);
        let pre = peek_preamble(&frame).unwrap();
        assert_eq!(pre.correlation_id, 1);
        assert!(decode_request_header(&mut frame, ApiKey::ApiVersions, 3).is_err());
    }
}
