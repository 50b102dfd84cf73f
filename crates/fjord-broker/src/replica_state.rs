//! What a partition replica knows about replication, as pure state: its role, and as leader
//! each follower's progress, from which the high watermark and ISR changes follow (Kafka's
//! `Partition` / `Replica` bookkeeping).
//!
//! ```text
//!  follower fetch(offset) ──► record_fetch: follower log end = offset, caught-up time
//!                                 │
//!        high watermark = min log end over the maximal ISR (committed ISR ∪ proposed)
//!        expand: a follower not in the ISR reached the high watermark and this epoch's start
//!        shrink: an ISR follower not caught up for replica.lag.time.max.ms
//! ```
//!
//! ISR changes are only proposed here; the controller commits them (AlterPartition) and the
//! leader adopts its answer. While a proposal is in flight no other is made, and the high
//! watermark counts the larger of the two sets, so it never moves on a promise.

use std::collections::BTreeMap;

/// A replica's part in replicating its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A single-node broker: the only copy, whose high watermark is its log end.
    Solo,
    /// This broker leads the partition.
    Leader(LeaderState),
    /// This broker copies the partition from `leader`.
    Follower {
        /// The leader's node id.
        leader: i32,
        /// The epoch of that leadership.
        leader_epoch: i32,
    },
    /// Hosted in a cluster but leaderless (or not yet told its role): serves nobody.
    Offline {
        /// The last leader epoch known.
        leader_epoch: i32,
    },
}

impl Role {
    /// The leader epoch this replica acts in, if it leads (0 for a single node).
    pub fn leading_epoch(&self) -> Option<i32> {
        match self {
            Role::Solo => Some(0),
            Role::Leader(l) => Some(l.leader_epoch),
            _ => None,
        }
    }
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset, from its last fetch; -1 before it fetched in this epoch.
    pub log_end_offset: i64,
    /// When the follower was last known to have everything the leader had.
    pub last_caught_up_ms: i64,
    /// When it last fetched.
    pub last_fetch_ms: i64,
    /// The leader's log end at that fetch.
    pub last_fetch_leader_end: i64,
}

/// An ISR change to propose to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The leader epoch the proposal is made in.
    pub leader_epoch: i32,
    /// The partition epoch it builds on.
    pub partition_epoch: i32,
    /// The proposed ISR.
    pub new_isr: Vec<i32>,
}

/// A leader's replication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// This broker.
    pub node_id: i32,
    /// The epoch of this leadership.
    pub leader_epoch: i32,
    /// The partition epoch of the ISR below.
    pub partition_epoch: i32,
    /// Every replica, this one included.
    pub replicas: Vec<i32>,
    /// The committed in-sync replicas.
    pub isr: Vec<i32>,
    /// An ISR change sent to the controller and not answered yet.
    pub pending_isr: Option<Vec<i32>>,
    /// The log end when this leadership began: a follower joins the ISR only once it has it.
    pub epoch_start_offset: i64,
    /// Progress of every other replica.
    pub followers: BTreeMap<i32, FollowerProgress>,
}

impl LeaderState {
    /// A new leadership; ISR followers count as caught up now (as in Kafka), so they get a
    /// full lag period to fetch before they can be dropped.
    pub fn new(
        node_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        epoch_start_offset: i64,
        now_ms: i64,
    ) -> LeaderState {
        let mut state = LeaderState {
            node_id,
            leader_epoch,
            partition_epoch,
            replicas: Vec::new(),
            isr,
            pending_isr: None,
            epoch_start_offset,
            followers: BTreeMap::new(),
        };
        state.set_replicas(replicas, now_ms);
        state
    }

    fn set_replicas(&mut self, replicas: Vec<i32>, now_ms: i64) {
        let node_id = self.node_id;
        self.followers.retain(|id, _| replicas.contains(id));
        for &id in replicas.iter().filter(|&&id| id != node_id) {
            let in_isr = self.isr.contains(&id);
            self.followers.entry(id).or_insert(FollowerProgress {
                log_end_offset: -1,
                last_caught_up_ms: if in_isr { now_ms } else { 0 },
                last_fetch_ms: 0,
                last_fetch_leader_end: -1,
            });
        }
        self.replicas = replicas;
    }

    /// Adopts a newer committed state of the same leadership (from the image or an
    /// AlterPartition answer); an older or equal partition epoch is ignored. A proposal the
    /// new state settles is dropped.
    pub fn adopt(&mut self, partition_epoch: i32, replicas: Vec<i32>, isr: Vec<i32>, now_ms: i64) {
        if partition_epoch <= self.partition_epoch {
            return;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        self.pending_isr = None;
        self.set_replicas(replicas, now_ms);
    }

    /// The replicas the high watermark waits for: the committed ISR plus any proposed
    /// addition.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        for &id in self.pending_isr.iter().flatten() {
            if !all.contains(&id) {
                all.push(id);
            }
        }
        all
    }

    /// The smallest log end over the maximal ISR (the leader's is `leader_end`); a follower
    /// that has not fetched in this epoch holds it at -1.
    pub fn high_watermark_bound(&self, leader_end: i64) -> i64 {
        self.maximal_isr()
            .iter()
            .map(|id| match self.followers.get(id) {
                Some(f) => f.log_end_offset,
                None if *id == self.node_id => leader_end,
                None => -1,
            })
            .min()
            .unwrap_or(leader_end)
            .min(leader_end)
    }

    /// Records a fetch by `replica` at `fetch_offset` (everything below it is on the
    /// follower). Kafka's rule for "caught up": the fetch asked for the leader's log end, or
    /// at least for what was the leader's log end at the previous fetch. Returns false when
    /// `replica` is not a replica of this partition.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if f.last_fetch_leader_end >= 0 && fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
        true
    }

    /// The ISR with `replica` added, when it has caught up with `high_watermark` and this
    /// epoch's start, is not in the ISR and no other change is in flight. Marks the proposal
    /// pending.
    pub fn propose_expansion(&mut self, replica: i32, high_watermark: i64) -> Option<IsrProposal> {
        let f = self.followers.get(&replica)?;
        if self.pending_isr.is_some()
            || self.isr.contains(&replica)
            || f.log_end_offset < high_watermark
            || f.log_end_offset < self.epoch_start_offset
        {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.push(replica);
        self.propose(new_isr)
    }

    /// The ISR without the followers not caught up for more than `lag_max_ms`, when any and
    /// no other change is in flight. The leader always stays. Marks the proposal pending.
    pub fn propose_shrink(&mut self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        if self.pending_isr.is_some() {
            return None;
        }
        let lagging: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| {
                *id != self.node_id
                    && self
                        .followers
                        .get(id)
                        .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
            })
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let new_isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| !lagging.contains(id))
            .collect();
        self.propose(new_isr)
    }

    fn propose(&mut self, new_isr: Vec<i32>) -> Option<IsrProposal> {
        self.pending_isr = Some(new_isr.clone());
        Some(IsrProposal {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> LeaderState {
        LeaderState::new(1, 5, 10, vec![1, 2, 3], vec![1, 2, 3], 100, 1_000)
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member_to_fetch() {
        let mut l = leader();
        assert_eq!(l.high_watermark_bound(120), -1, "nobody fetched yet");
        l.record_fetch(2, 120, 120, 1_001);
        assert_eq!(l.high_watermark_bound(120), -1);
        l.record_fetch(3, 110, 120, 1_001);
        assert_eq!(l.high_watermark_bound(120), 110);
        l.record_fetch(3, 120, 120, 1_002);
        assert_eq!(l.high_watermark_bound(125), 120);
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_the_proposal_counts_until_settled() {
        let mut l = leader();
        l.record_fetch(2, 100, 100, 1_500);
        l.record_fetch(3, 100, 100, 1_500);
        // 3 keeps fetching but never reaches the leader's end.
        l.record_fetch(2, 150, 150, 40_000);
        l.record_fetch(3, 120, 150, 40_000);
        let p = l.propose_shrink(40_000, 30_000).expect("3 lags");
        assert_eq!(p.new_isr, vec![1, 2]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (5, 10));
        assert!(l.propose_shrink(40_001, 30_000).is_none(), "one at a time");
        // Until the controller answers, 3 still holds the high watermark back.
        assert_eq!(l.high_watermark_bound(150), 120);
        l.adopt(11, vec![1, 2, 3], vec![1, 2], 40_002);
        assert_eq!(l.high_watermark_bound(150), 150);
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        let mut l = LeaderState::new(1, 5, 10, vec![1, 2, 3], vec![1, 2], 100, 1_000);
        l.record_fetch(3, 90, 130, 1_001);
        assert!(
            l.propose_expansion(3, 95).is_none(),
            "below the epoch start"
        );
        l.record_fetch(3, 120, 130, 1_002);
        assert!(
            l.propose_expansion(3, 125).is_none(),
            "below the high watermark"
        );
        let p = l.propose_expansion(3, 120).expect("caught up");
        assert_eq!(p.new_isr, vec![1, 2, 3]);
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        assert!(l.propose_expansion(3, 120).is_none(), "already proposed");
    }

    #[test]
    fn caught_up_means_reaching_the_end_seen_at_the_previous_fetch() {
        let mut l = leader();
        l.record_fetch(2, 100, 110, 2_000); // behind
        assert_eq!(l.followers[&2].last_caught_up_ms, 1_000);
        l.record_fetch(2, 110, 130, 3_000); // has what the leader had at 2_000
        assert_eq!(l.followers[&2].last_caught_up_ms, 2_000);
        l.record_fetch(2, 130, 130, 4_000);
        assert_eq!(l.followers[&2].last_caught_up_ms, 4_000);
        assert!(!l.record_fetch(9, 0, 130, 4_000), "not a replica");
    }

    #[test]
    fn older_states_are_not_adopted_and_new_replicas_are_tracked() {
        let mut l = leader();
        l.adopt(9, vec![1], vec![1], 5);
        assert_eq!(l.isr, vec![1, 2, 3]);
        l.adopt(12, vec![1, 2, 3, 4], vec![1, 2, 3], 5);
        assert!(l.followers.contains_key(&4));
        assert_eq!(l.followers[&4].last_caught_up_ms, 0);
    }
}
