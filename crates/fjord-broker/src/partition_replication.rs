//! The replication side of a [`Partition`]: becoming leader or follower, serving followers'
//! fetches and moving the high watermark as leader, appending the leader's batches and
//! truncating a diverged tail as follower, and waiting for the ISR for acks=all.
//!
//! Lock order as in the rest of the partition: log, then producers or role; the role lock is
//! never held while taking the log lock.

use fjord_storage::{AppendInfo, Log, ReadPlan, StorageError};

use super::{rebuild_producer_states, replay_batches, Partition, PartitionError, PartitionOffsets};
use crate::replica_state::{IsrProposal, LeaderState, Role};

/// A follower's fetch as the leader answers it.
#[derive(Debug)]
pub struct ReplicaRead {
    /// Whole batches from the fetch offset up to the leader's log end.
    pub plan: ReadPlan,
    /// The leader's offsets (its high watermark included) after recording the fetch.
    pub offsets: PartitionOffsets,
    /// An ISR expansion the fetch made due: the follower caught up.
    pub expansion: Option<IsrProposal>,
}

impl Partition {
    /// Raises the leader's high watermark to what the ISR has (called with the log locked,
    /// after anything that moves the log end or a follower).
    pub(super) fn after_leader_append(&self, log: &Log) {
        let role = self.role();
        if let Role::Leader(leader) = &*role {
            self.raise_high_watermark(leader.high_watermark_bound(log.log_end_offset()));
        }
    }

    fn raise_high_watermark(&self, bound: i64) {
        self.high_watermark.send_if_modified(|hw| {
            let raise = bound > *hw;
            if raise {
                *hw = bound;
            }
            raise
        });
    }

    /// Wakes everything waiting on the high watermark, so it re-checks the role.
    fn wake_replication_waiters(&self) {
        self.high_watermark.send_modify(|_| {});
    }

    fn is_follower(&self) -> bool {
        matches!(&*self.role(), Role::Follower { .. })
    }

    /// This replica's current role.
    pub fn replica_role(&self) -> Role {
        self.role().clone()
    }

    /// The leader epoch this replica leads in (0 on a single node), `None` when it does not.
    pub fn leading_epoch_now(&self) -> Option<i32> {
        self.role().leading_epoch()
    }

    /// Makes this replica the leader at `leader_epoch` (or, already leading at that epoch,
    /// adopts the newer partition state). The epoch starts at the log end in the
    /// leader-epoch cache, and the high watermark waits for the ISR's fetches.
    #[allow(clippy::too_many_arguments)]
    pub fn become_leader(
        &self,
        node_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        {
            let mut role = self.role();
            if let Role::Leader(leader) = &mut *role {
                if leader.leader_epoch == leader_epoch {
                    leader.adopt(partition_epoch, replicas, isr, now_ms);
                    let bound = leader.high_watermark_bound(log.log_end_offset());
                    drop(role);
                    self.raise_high_watermark(bound);
                    return Ok(());
                }
            }
        }
        log.assign_leader_epoch(leader_epoch)?;
        let end = log.log_end_offset();
        let leader = LeaderState::new(
            node_id,
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
            end,
            now_ms,
        );
        let bound = leader.high_watermark_bound(end);
        *self.role() = Role::Leader(leader);
        drop(guard);
        self.raise_high_watermark(bound);
        self.wake_replication_waiters();
        tracing::info!(partition = %self.name, leader_epoch, log_end = end, "leading");
        Ok(())
    }

    /// Makes this replica a follower of `leader` at `leader_epoch`. Returns whether that is
    /// a change (a new leadership to copy from, which starts with a truncation check).
    pub fn become_follower(&self, leader: i32, leader_epoch: i32) -> bool {
        let mut role = self.role();
        if matches!(&*role, Role::Follower { leader: l, leader_epoch: e } if *l == leader && *e == leader_epoch)
        {
            return false;
        }
        *role = Role::Follower {
            leader,
            leader_epoch,
        };
        drop(role);
        self.wake_replication_waiters();
        tracing::info!(partition = %self.name, leader, leader_epoch, "following");
        true
    }

    /// Marks the partition leaderless here: no reads, no writes.
    pub fn become_offline(&self, leader_epoch: i32) {
        let mut role = self.role();
        if matches!(&*role, Role::Offline { leader_epoch: e } if *e == leader_epoch) {
            return;
        }
        *role = Role::Offline { leader_epoch };
        drop(role);
        self.wake_replication_waiters();
    }

    /// Refuses acks=all before the append when the ISR is below `min_insync` (Kafka's
    /// NOT_ENOUGH_REPLICAS: nothing is written).
    pub fn check_min_insync(&self, min_insync: usize) -> Result<(), PartitionError> {
        match &*self.role() {
            Role::Leader(l) if l.isr.len() < min_insync => Err(PartitionError::NotEnoughReplicas {
                partition: self.name.clone(),
                isr: l.isr.len(),
                min: min_insync,
            }),
            _ => Ok(()),
        }
    }

    /// Waits until every in-sync replica has the records below `end_offset` (the high
    /// watermark passed it) while this replica still leads at `leader_epoch`. Unbounded:
    /// the caller sets the deadline.
    pub async fn wait_replicated(
        &self,
        end_offset: i64,
        min_insync: usize,
        leader_epoch: i32,
    ) -> Result<(), PartitionError> {
        let mut hw = self.high_watermark.subscribe();
        loop {
            let high_watermark = *hw.borrow_and_update();
            if let Some(outcome) =
                self.replicated(end_offset, min_insync, leader_epoch, high_watermark)
            {
                return outcome;
            }
            if hw.changed().await.is_err() {
                return Err(PartitionError::Closed(self.name.clone()));
            }
        }
    }

    /// The outcome of an acks=all wait at `high_watermark`, or `None` to keep waiting.
    fn replicated(
        &self,
        end_offset: i64,
        min_insync: usize,
        leader_epoch: i32,
        high_watermark: i64,
    ) -> Option<Result<(), PartitionError>> {
        if !self.is_open() {
            return Some(Err(PartitionError::Closed(self.name.clone())));
        }
        match &*self.role() {
            Role::Solo => Some(Ok(())),
            Role::Leader(l) if l.leader_epoch == leader_epoch => {
                if high_watermark < end_offset {
                    None
                } else if l.isr.len() < min_insync {
                    Some(Err(PartitionError::NotEnoughReplicasAfterAppend {
                        partition: self.name.clone(),
                    }))
                } else {
                    Some(Ok(()))
                }
            }
            _ => Some(Err(PartitionError::NotLeader(self.name.clone()))),
        }
    }

    /// Serves a follower's fetch: records that `replica` has everything below
    /// `fetch_offset` (which may raise the high watermark or make it due to rejoin the ISR)
    /// and plans a read up to the log end.
    pub fn read_for_replica(
        &self,
        replica: i32,
        fetch_offset: i64,
        max_bytes: usize,
        now_ms: i64,
    ) -> Result<ReplicaRead, PartitionError> {
        let guard = self.lock();
        let log = guard
            .as_ref()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        let end = log.log_end_offset();
        if fetch_offset > end || fetch_offset < log.log_start_offset() {
            return Err(StorageError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start: log.log_start_offset(),
                log_end: end,
            }
            .into());
        }
        let expansion = {
            let mut role = self.role();
            let Role::Leader(leader) = &mut *role else {
                return Err(PartitionError::NotLeader(self.name.clone()));
            };
            if !leader.record_fetch(replica, fetch_offset, end, now_ms) {
                return Err(PartitionError::NotFollower(self.name.clone()));
            }
            let bound = leader.high_watermark_bound(end);
            self.raise_high_watermark(bound);
            let hw = *self.high_watermark.borrow();
            leader.propose_expansion(replica, hw)
        };
        let offsets = self.offsets_of(log);
        let plan = log.read(fetch_offset, max_bytes, end)?;
        Ok(ReplicaRead {
            plan,
            offsets,
            expansion,
        })
    }

    /// An ISR shrink due now (followers not caught up for `lag_max_ms`), marked pending.
    pub fn propose_isr_shrink(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        match &mut *self.role() {
            Role::Leader(leader) => leader.propose_shrink(now_ms, lag_max_ms),
            _ => None,
        }
    }

    /// The controller's answer to a proposal made at `leader_epoch`: the committed state
    /// (`Some((partition_epoch, isr))`), or `None` when it was refused and another may be
    /// made later.
    pub fn settle_isr_proposal(
        &self,
        leader_epoch: i32,
        committed: Option<(i32, Vec<i32>)>,
        now_ms: i64,
    ) {
        let guard = self.lock();
        let Some(log) = guard.as_ref() else { return };
        let mut role = self.role();
        let Role::Leader(leader) = &mut *role else {
            return;
        };
        if leader.leader_epoch != leader_epoch {
            return;
        }
        match committed {
            Some((partition_epoch, isr)) => {
                let replicas = leader.replicas.clone();
                leader.adopt(partition_epoch, replicas, isr, now_ms);
            }
            None => leader.pending_isr = None,
        }
        let bound = leader.high_watermark_bound(log.log_end_offset());
        drop(role);
        self.raise_high_watermark(bound);
        // The ISR size decides NOT_ENOUGH_REPLICAS_AFTER_APPEND: let waiters look again.
        self.wake_replication_waiters();
    }

    /// Appends batches copied from the leader, keeping their offsets and epochs, and takes
    /// the leader's high watermark (bounded by what this replica has).
    pub fn append_as_follower(
        &self,
        records: &mut [u8],
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<AppendInfo, PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        if !self.is_follower() {
            return Err(PartitionError::NotFollower(self.name.clone()));
        }
        let info = log.append_as_follower(records, now_ms)?;
        let mut producers = self.producers();
        replay_batches(&mut producers, log, records)?;
        drop(producers);
        let end = log.log_end_offset();
        drop(guard);
        self.log_end_offset.send_replace(end);
        self.set_high_watermark(leader_high_watermark.min(end));
        Ok(info)
    }

    /// A follower raises its log start to the leader's (DeleteRecords or retention there),
    /// as far as its own log reaches; a lower start is left alone.
    pub fn follow_log_start(&self, leader_log_start: i64) -> Result<(), PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        if !self.is_follower() {
            return Ok(());
        }
        let target = leader_log_start.min(log.log_end_offset());
        if target > log.log_start_offset() {
            log.delete_records_before(target)?;
        }
        Ok(())
    }

    /// Sets the high watermark saved before a restart (bounded by the log), before the
    /// replica gets its role.
    pub fn restore_high_watermark(&self, high_watermark: i64) {
        let Some((start, end)) = self
            .lock()
            .as_ref()
            .map(|log| (log.log_start_offset(), log.log_end_offset()))
        else {
            return;
        };
        self.set_high_watermark(high_watermark.clamp(start, end));
    }

    /// A follower takes the leader's high watermark, bounded by its own log end.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let end = *self.log_end_offset.borrow();
        if self.is_follower() {
            self.set_high_watermark(leader_high_watermark.min(end));
        }
    }

    fn set_high_watermark(&self, value: i64) {
        self.high_watermark.send_if_modified(|hw| {
            let changed = *hw != value;
            *hw = value;
            changed
        });
    }

    /// The newest leader epoch in this replica's log, for OffsetForLeaderEpoch.
    pub fn latest_epoch(&self) -> Result<Option<i32>, PartitionError> {
        self.with_log(|log| Ok(log.latest_epoch()))
    }

    /// Where `epoch` ends in this log, as `(epoch found, end offset)`, Kafka's answer to
    /// OffsetForLeaderEpoch; `(-1, -1)` when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), PartitionError> {
        let clustered = self.clustered;
        self.with_log(|log| {
            if !clustered {
                // A single node has led at epoch 0 since its log began.
                return Ok(if epoch == 0 {
                    (0, log.log_end_offset())
                } else {
                    (-1, -1)
                });
            }
            Ok(match log.end_offset_for_epoch(epoch) {
                Some((e, end)) if e >= 0 => (e, end),
                // Below the first entry: Kafka answers the requested epoch with where the
                // oldest known epoch starts, so the follower keeps nothing older.
                _ => match log.epoch_entries().first() {
                    Some(first) if epoch < first.epoch => (epoch, first.start_offset),
                    _ => (-1, -1),
                },
            })
        })
    }

    /// Cuts a follower's log back to `offset` (its records from a leader whose log
    /// diverged), and rebuilds producer state for what is left.
    pub fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        if self.leading_epoch_now().is_some() {
            return Err(PartitionError::NotFollower(self.name.clone()));
        }
        let end = log.log_end_offset();
        let target = offset.clamp(log.log_start_offset(), end);
        if target < end {
            log.truncate_to(target)?;
            let states = rebuild_producer_states(log, &self.name)?;
            *self.producers() = states;
            *self.snapshot_end.lock().unwrap_or_else(|p| p.into_inner()) = -1;
            tracing::warn!(partition = %self.name, from = end, to = target, "truncated a diverged tail");
        }
        drop(guard);
        self.log_end_offset.send_replace(target);
        self.high_watermark.send_if_modified(|hw| {
            let lower = *hw > target;
            if lower {
                *hw = target;
            }
            lower
        });
        Ok(())
    }

    /// Empties a follower's log to continue at `offset` (the leader's log start, when the
    /// follower is behind everything the leader still has).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), PartitionError> {
        let mut guard = self.lock();
        let log = guard
            .as_mut()
            .ok_or_else(|| PartitionError::Closed(self.name.clone()))?;
        if self.leading_epoch_now().is_some() {
            return Err(PartitionError::NotFollower(self.name.clone()));
        }
        log.truncate_fully_and_start_at(offset)?;
        *self.producers() = Default::default();
        *self.snapshot_end.lock().unwrap_or_else(|p| p.into_inner()) = -1;
        drop(guard);
        self.log_end_offset.send_replace(offset);
        self.set_high_watermark(offset);
        tracing::warn!(partition = %self.name, offset, "log emptied to continue at the leader's log start");
        Ok(())
    }

    /// A receiver of the high watermark (cluster mode), for consumers' long-polling fetches.
    pub fn subscribe_high_watermark(&self) -> tokio::sync::watch::Receiver<i64> {
        if self.clustered {
            self.high_watermark.subscribe()
        } else {
            self.log_end_offset.subscribe()
        }
    }

    /// `(in-sync replicas, replicas)` when this replica leads in a cluster, for metrics.
    pub fn isr_counts(&self) -> Option<(usize, usize)> {
        match &*self.role() {
            Role::Leader(l) => Some((l.isr.len(), l.replicas.len())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_protocol::batch::{build_batch, BatchSpec, RecordSpec};
    use fjord_storage::LogConfig;
    use std::sync::Arc;

    fn replica(dir: &std::path::Path) -> Arc<Partition> {
        let log = Log::open(dir, LogConfig::default(), 0, 0).unwrap();
        Partition::new_replica("t", 0, log).unwrap()
    }

    fn records(n: usize) -> Vec<u8> {
        let rs: Vec<RecordSpec> = (0..n)
            .map(|i| RecordSpec {
                timestamp: 1,
                key: None,
                value: Some(vec![i as u8]),
                headers: Vec::new(),
            })
            .collect();
        build_batch(&BatchSpec::default(), &rs)
    }

    fn copy(from: &Partition, offset: i64) -> Vec<u8> {
        let (plan, _) = from
            .with_log(|log| {
                let end = log.log_end_offset();
                Ok((log.read(offset, 1 << 20, end)?, end))
            })
            .unwrap();
        let mut out = Vec::new();
        plan.read_into(&mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn the_high_watermark_follows_the_isr_and_acks_wait_for_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = replica(a.path());
        let follower = replica(b.path());
        assert!(matches!(
            leader.append(&mut records(1), 1),
            Err(PartitionError::NotLeader(_))
        ));
        leader
            .become_leader(1, 3, 0, vec![1, 2], vec![1, 2], 0)
            .unwrap();
        follower.become_follower(1, 3);
        leader.append(&mut records(3), 1).unwrap();
        assert_eq!(leader.offsets().unwrap().high_watermark, 0);
        assert_eq!(
            leader.read(0, 1 << 20).unwrap().0.len(),
            0,
            "nothing is visible yet"
        );

        let waiter = {
            let leader = leader.clone();
            tokio::spawn(async move { leader.wait_replicated(3, 2, 3).await })
        };
        let read = leader.read_for_replica(2, 0, 1 << 20, 1).unwrap();
        let mut bytes = Vec::new();
        read.plan.read_into(&mut bytes).unwrap();
        follower
            .append_as_follower(&mut bytes, read.offsets.high_watermark, 1)
            .unwrap();
        assert_eq!(follower.offsets().unwrap().log_end_offset, 3);
        assert!(!waiter.is_finished());
        // The next fetch tells the leader the follower has everything.
        let read = leader.read_for_replica(2, 3, 1 << 20, 2).unwrap();
        assert_eq!(read.offsets.high_watermark, 3);
        waiter.await.unwrap().unwrap();
        follower.follow_high_watermark(read.offsets.high_watermark);
        assert_eq!(follower.offsets().unwrap().high_watermark, 3);
        // The epoch travelled with the batches.
        assert_eq!(follower.latest_epoch().unwrap(), Some(3));
    }

    #[tokio::test]
    async fn a_diverged_follower_truncates_to_where_the_new_leaders_epoch_ends() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = replica(a.path());
        let new = replica(b.path());
        old.become_leader(1, 1, 0, vec![1, 2], vec![1, 2], 0)
            .unwrap();
        new.become_follower(1, 1);
        old.append(&mut records(2), 1).unwrap();
        new.append_as_follower(&mut copy(&old, 0), 0, 1).unwrap();
        // The old leader writes more that never reaches the follower, then loses leadership.
        old.append(&mut records(2), 1).unwrap();
        new.become_leader(2, 2, 1, vec![1, 2], vec![2], 2).unwrap();
        new.append(&mut records(1), 3).unwrap();
        old.become_follower(2, 2);
        let asked = old.latest_epoch().unwrap().unwrap();
        assert_eq!(asked, 1);
        let (epoch, end) = new.end_offset_for_epoch(asked).unwrap();
        assert_eq!((epoch, end), (1, 2));
        old.truncate_to(end).unwrap();
        assert_eq!(old.offsets().unwrap().log_end_offset, 2);
        old.append_as_follower(&mut copy(&new, 2), 3, 4).unwrap();
        assert_eq!(old.offsets().unwrap().log_end_offset, 3);
        assert_eq!(old.latest_epoch().unwrap(), Some(2));
    }

    #[test]
    fn a_restored_high_watermark_is_bounded_by_the_log_and_shown_to_consumers() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = replica(a.path());
        leader.become_leader(1, 0, 0, vec![1], vec![1], 0).unwrap();
        leader.append(&mut records(5), 1).unwrap();
        let copy_bytes = copy(&leader, 0);
        let follower = replica(b.path());
        follower.become_follower(1, 0);
        follower
            .append_as_follower(&mut copy_bytes.clone(), 0, 1)
            .unwrap();
        drop(follower);
        // Reopened (a restart): the saved high watermark is back before any role.
        let log = Log::open(b.path(), LogConfig::default(), 0, 0).unwrap();
        let reopened = Partition::new_replica("t", 0, log).unwrap();
        reopened.restore_high_watermark(99);
        assert_eq!(
            reopened.offsets().unwrap().high_watermark,
            5,
            "bounded by the log end"
        );
        reopened
            .become_leader(2, 1, 1, vec![2, 1], vec![2, 1], 2)
            .unwrap();
        // As the new leader, consumers see what was committed before, not nothing, although
        // follower 1 has not fetched yet.
        assert_eq!(reopened.offsets().unwrap().high_watermark, 5);
        let (plan, offsets) = reopened.read(0, 1 << 20).unwrap();
        assert!(!plan.is_empty(), "{offsets:?} {plan:?}");
    }

    #[tokio::test]
    async fn acks_fail_when_leadership_moves_or_the_isr_is_too_small() {
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path());
        p.become_leader(1, 1, 0, vec![1, 2, 3], vec![1], 0).unwrap();
        assert!(matches!(
            p.check_min_insync(2),
            Err(PartitionError::NotEnoughReplicas { isr: 1, min: 2, .. })
        ));
        p.append(&mut records(1), 1).unwrap();
        // ISR of one: the leader alone has it, which is not enough for min.insync 2.
        assert!(matches!(
            p.wait_replicated(1, 2, 1).await,
            Err(PartitionError::NotEnoughReplicasAfterAppend { .. })
        ));
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.wait_replicated(5, 1, 1).await })
        };
        tokio::task::yield_now().await;
        p.become_follower(2, 2);
        assert!(matches!(
            waiter.await.unwrap(),
            Err(PartitionError::NotLeader(_))
        ));
    }
}
