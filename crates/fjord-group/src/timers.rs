//! Deadlines the coordinator is waiting on, ordered so the next one is cheap to find.
//!
//! Kafka keeps these in purgatories (delayed joins, heartbeats, syncs). Here each is a key with
//! one deadline; setting a key again replaces its deadline, which is how a heartbeat "completes
//! and reschedules" its expectation.

use std::collections::{BTreeSet, HashMap};

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// The group's pending JoinGroup phase (initial delay or rebalance timeout).
    Join(String),
    /// A pending SyncGroup round: members that do not sync in time are removed.
    PendingSync(String),
    /// A member's session (or, while new, its join) deadline.
    Heartbeat(String, String),
    /// A KIP-394 member id handed out but not yet used to rejoin.
    PendingMember(String, String),
}

impl TimerKey {
    /// The group the deadline belongs to.
    pub(crate) fn group_id(&self) -> &str {
        match self {
            Self::Join(g) | Self::PendingSync(g) => g,
            Self::Heartbeat(g, _) | Self::PendingMember(g, _) => g,
        }
    }
}

/// The set of armed deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_deadline: BTreeSet<(i64, TimerKey)>,
    by_key: HashMap<TimerKey, i64>,
}

impl Timers {
    /// Arms `key` at `at_ms`, replacing any earlier deadline for it.
    pub(crate) fn set(&mut self, key: TimerKey, at_ms: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), at_ms) {
            self.by_deadline.remove(&(old, key.clone()));
        }
        self.by_deadline.insert((at_ms, key));
    }

    /// Disarms `key` if armed.
    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some(at) = self.by_key.remove(key) {
            self.by_deadline.remove(&(at, key.clone()));
        }
    }

    /// Disarms every key `keep` rejects (the groups of a partition this broker resigned).
    pub(crate) fn retain(&mut self, keep: impl Fn(&TimerKey) -> bool) {
        self.by_key.retain(|key, _| keep(key));
        self.by_deadline.retain(|(_, key)| keep(key));
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Keys due at `now_ms`, earliest first. Snapshotted so timers armed while handling these
    /// wait for the next tick, which bounds the work of one tick.
    pub(crate) fn due(&self, now_ms: i64) -> Vec<TimerKey> {
        self.by_deadline
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Disarms `key` and reports whether it was still armed and due.
    pub(crate) fn take_if_due(&mut self, key: &TimerKey, now_ms: i64) -> bool {
        match self.by_key.get(key) {
            Some(at) if *at <= now_ms => {
                self.cancel(key);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TimerKey, Timers};

    #[test]
    fn setting_a_key_again_replaces_its_deadline() {
        let mut timers = Timers::default();
        timers.set(TimerKey::Join("g".into()), 10);
        timers.set(TimerKey::Join("g".into()), 30);
        timers.set(TimerKey::PendingSync("g".into()), 20);
        assert_eq!(timers.next_deadline(), Some(20));
        assert_eq!(timers.due(25), vec![TimerKey::PendingSync("g".into())]);
        timers.cancel(&TimerKey::PendingSync("g".into()));
        assert_eq!(timers.next_deadline(), Some(30));
        assert!(!timers.take_if_due(&TimerKey::Join("g".into()), 29));
        assert!(timers.take_if_due(&TimerKey::Join("g".into()), 30));
        assert_eq!(timers.next_deadline(), None);
    }
}
