//! Checksummed frames and atomic file replacement, shared by the log, the quorum state and the
//! snapshot.
//!
//! A frame is `length: u32 BE | crc32c(payload): u32 BE | payload`. A torn write at the end of
//! the log (power loss, kill -9 mid-append) leaves a frame that is short or fails its CRC;
//! recovery keeps everything before it. Whole-file state is written to `<name>.tmp`, fsynced,
//! renamed over `<name>`, and the directory fsynced, so a reader sees the old or the new file,
//! never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Largest frame accepted, so a corrupt length cannot make recovery allocate gigabytes.
pub(crate) const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Bytes before each payload: length and CRC.
pub(crate) const HEADER_BYTES: usize = 8;

/// A storage failure, naming the file and what was being done to it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call failed.
    #[error("{verb} {path}: {source}")]
    Io {
        /// What was being done (`append to`, `fsync`, ...).
        verb: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file that must be whole is not (a torn log tail is repaired instead).
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A writer panicked while holding the file; its state is unknown.
    #[error("{path} was left in an unknown state by a panic")]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

impl StoreError {
    pub(crate) fn io<'a>(
        verb: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self::Io {
            verb,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Appends the frame of `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The frames at the start of `bytes`, as (start position, payload), up to the first frame
/// that is incomplete, oversized or fails its CRC; and the length of that valid prefix.
pub(crate) fn decode_frames(bytes: &[u8]) -> (Vec<(usize, &[u8])>, usize) {
    let mut frames = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= HEADER_BYTES {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().unwrap_or_default());
        let end = pos + HEADER_BYTES + len;
        if len > MAX_FRAME_BYTES || end > bytes.len() {
            break;
        }
        let payload = &bytes[pos + HEADER_BYTES..end];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        frames.push((pos, payload));
        pos = end;
    }
    (frames, pos)
}

/// Replaces `dir/name` with one frame holding `payload`, durably and atomically.
pub(crate) fn write_atomically(dir: &Path, name: &str, payload: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut framed = Vec::with_capacity(payload.len() + HEADER_BYTES);
    encode_frame(payload, &mut framed);
    let mut file = File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    file.write_all(&framed)
        .map_err(StoreError::io("write", &tmp))?;
    file.sync_all().map_err(StoreError::io("fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(StoreError::io("rename into", &path))?;
    sync_dir(dir)
}

/// The payload of the single frame in `dir/name`, or `None` if there is no such file.
pub(crate) fn read_whole(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", &path)(e)),
    };
    let (frames, valid) = decode_frames(&bytes);
    match frames.as_slice() {
        [(_, payload)] if valid == bytes.len() => Ok(Some(payload.to_vec())),
        _ => Err(StoreError::Corrupt {
            path,
            reason: format!("expected one checksummed frame in {} bytes", bytes.len()),
        }),
    }
}

/// Makes a rename or file creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

/// Opens `path` for appending, creating it if needed.
pub(crate) fn open_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(StoreError::io("open", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_stop_at_a_torn_or_corrupt_tail() {
        let mut bytes = Vec::new();
        encode_frame(b"one", &mut bytes);
        encode_frame(b"two", &mut bytes);
        let whole = bytes.len();
        let (frames, valid) = decode_frames(&bytes);
        assert_eq!(frames, vec![(0, &b"one"[..]), (11, &b"two"[..])]);
        assert_eq!(valid, whole);
        // A torn third frame is ignored.
        encode_frame(b"three", &mut bytes);
        bytes.truncate(bytes.len() - 2);
        assert_eq!(decode_frames(&bytes).1, whole);
        // A flipped bit in the second frame ends the valid prefix after the first.
        bytes[whole - 1] ^= 1;
        let (frames, valid) = decode_frames(&bytes);
        assert_eq!((frames.len(), valid), (1, 11));
    }

    #[test]
    fn whole_files_are_replaced_atomically_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_whole(dir.path(), "state").unwrap(), None);
        write_atomically(dir.path(), "state", b"v1").unwrap();
        write_atomically(dir.path(), "state", b"v2").unwrap();
        assert_eq!(
            read_whole(dir.path(), "state").unwrap(),
            Some(b"v2".to_vec())
        );
        assert!(!dir.path().join("state.tmp").exists());
        let path = dir.path().join("state");
        let mut bytes = fs::read(&path).unwrap();
        bytes[9] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read_whole(dir.path(), "state"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
