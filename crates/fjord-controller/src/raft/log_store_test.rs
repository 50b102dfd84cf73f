//! Durability of the log and vote: reopen after writes, a torn tail, truncation and purge.

use std::fs::OpenOptions;

use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::raft::MetadataBatch;
use crate::record::MetadataRecord;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> LogEntry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataBatch {
            records: vec![MetadataRecord::DeleteTopic {
                topic_id: uuid::Uuid::from_u128(index as u128),
            }],
        }),
    }
}

/// Appends through the same path [`LogStore::append`] uses, minus openraft's callback.
fn append(disk: &mut Disk, entries: &[LogEntry]) {
    let mut frames = Vec::new();
    let mut sizes = Vec::new();
    for e in entries {
        let before = frames.len();
        encode_frame(&serde_json::to_vec(e).unwrap(), &mut frames);
        sizes.push((frames.len() - before) as u64);
    }
    disk.append(entries[0].log_id.index, frames, sizes).unwrap();
}

fn indexes(entries: &[LogEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

#[test]
fn entries_vote_and_commit_point_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, entries) = recover(dir.path()).unwrap();
    assert!(entries.is_empty());
    append(&mut disk, &[entry(1, 0), entry(1, 1)]);
    append(&mut disk, &[entry(2, 2)]);
    disk.state.vote = Some(Vote::new_committed(2, 1));
    disk.state.committed = Some(log_id(2, 2));
    disk.save_state().unwrap();
    drop(disk);
    let (disk, entries) = recover(dir.path()).unwrap();
    assert_eq!(entries, vec![entry(1, 0), entry(1, 1), entry(2, 2)]);
    assert_eq!(disk.state.vote, Some(Vote::new_committed(2, 1)));
    assert_eq!(disk.state.committed, Some(log_id(2, 2)));
    let store = LogStore::open(dir.path()).unwrap();
    assert!(!store.is_fresh().unwrap());
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _) = recover(dir.path()).unwrap();
    append(&mut disk, &[entry(1, 0), entry(1, 1)]);
    let good_len = disk.len;
    drop(disk);
    // Half a frame, as kill -9 during a write leaves it.
    let path = dir.path().join(LOG_FILE);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0, 0, 0, 40, 1, 2, 3]).unwrap();
    drop(file);
    let (mut disk, entries) = recover(dir.path()).unwrap();
    assert_eq!(indexes(&entries), vec![0, 1]);
    assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
    append(&mut disk, &[entry(1, 2)]);
    drop(disk);
    assert_eq!(indexes(&recover(dir.path()).unwrap().1), vec![0, 1, 2]);
}

#[test]
fn a_corrupt_entry_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _) = recover(dir.path()).unwrap();
    append(&mut disk, &[entry(1, 0), entry(1, 1), entry(1, 2)]);
    let second = disk.positions[&1];
    drop(disk);
    let path = dir.path().join(LOG_FILE);
    let mut bytes = fs::read(&path).unwrap();
    bytes[second as usize + 12] ^= 0x20;
    fs::write(&path, bytes).unwrap();
    assert_eq!(indexes(&recover(dir.path()).unwrap().1), vec![0]);
}

#[test]
fn truncation_removes_the_conflicting_suffix_durably() {
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _) = recover(dir.path()).unwrap();
    append(
        &mut disk,
        &[entry(1, 0), entry(1, 1), entry(1, 2), entry(1, 3)],
    );
    disk.truncate(2).unwrap();
    append(&mut disk, &[entry(3, 2)]);
    drop(disk);
    let (_, entries) = recover(dir.path()).unwrap();
    assert_eq!(entries, vec![entry(1, 0), entry(1, 1), entry(3, 2)]);
}

#[test]
fn purge_drops_the_prefix_and_remembers_where() {
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _) = recover(dir.path()).unwrap();
    append(
        &mut disk,
        &[entry(1, 0), entry(1, 1), entry(1, 2), entry(1, 3)],
    );
    disk.purge(log_id(1, 1)).unwrap();
    append(&mut disk, &[entry(1, 4)]);
    disk.truncate(4).unwrap();
    append(&mut disk, &[entry(2, 4)]);
    drop(disk);
    let (disk, entries) = recover(dir.path()).unwrap();
    assert_eq!(disk.state.last_purged, Some(log_id(1, 1)));
    assert_eq!(entries, vec![entry(1, 2), entry(1, 3), entry(2, 4)]);
}

#[test]
fn a_purge_interrupted_before_the_rewrite_is_finished_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (mut disk, _) = recover(dir.path()).unwrap();
    append(&mut disk, &[entry(1, 0), entry(1, 1), entry(1, 2)]);
    // The purge point is saved first; pretend the rewrite never happened.
    disk.state.last_purged = Some(log_id(1, 1));
    disk.save_state().unwrap();
    drop(disk);
    let (_, entries) = recover(dir.path()).unwrap();
    assert_eq!(indexes(&entries), vec![2]);
}

#[tokio::test]
async fn the_store_reports_log_state_and_serves_reads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut disk, _) = recover(dir.path()).unwrap();
        append(&mut disk, &[entry(1, 0), entry(1, 1), entry(1, 2)]);
        disk.purge(log_id(1, 0)).unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 0)));
    assert_eq!(state.last_log_id, Some(log_id(1, 2)));
    let mut reader = store.get_log_reader().await;
    let read = reader.try_get_log_entries(1..3).await.unwrap();
    assert_eq!(indexes(&read), vec![1, 2]);
    store.save_vote(&Vote::new(4, 2)).await.unwrap();
    store.truncate(log_id(1, 2)).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(4, 2)));
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 1))
    );
}
