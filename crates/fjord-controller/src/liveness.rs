//! Broker sessions, kept by the active controller in memory only.
//!
//! Heartbeats are frequent and carry no state worth replicating, so, as in KRaft, they are not
//! logged: the active controller remembers when each broker last heartbeated and writes a
//! FenceBroker once a broker has been silent for `broker.session.timeout.ms`. A newly active
//! controller knows nothing of past heartbeats, so it gives every broker a fresh session
//! rather than fencing the whole cluster at once. Time is passed in, so this is pure.

use std::collections::BTreeMap;

use crate::image::MetadataImage;

/// Session deadlines of the registered brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSessions {
    session_timeout_ms: u64,
    deadlines_ms: BTreeMap<i32, u64>,
}

impl BrokerSessions {
    /// No sessions yet; each lasts `session_timeout_ms` after its last heartbeat.
    pub fn new(session_timeout_ms: u64) -> Self {
        Self {
            session_timeout_ms,
            deadlines_ms: BTreeMap::new(),
        }
    }

    /// Gives every registered broker a session ending `session_timeout_ms` after `now_ms`:
    /// what a controller does when it becomes active.
    pub fn reset(&mut self, image: &MetadataImage, now_ms: u64) {
        self.deadlines_ms = image
            .brokers()
            .keys()
            .map(|&id| (id, now_ms + self.session_timeout_ms))
            .collect();
    }

    /// Records a heartbeat (or registration) of `broker_id`.
    pub fn touch(&mut self, broker_id: i32, now_ms: u64) {
        self.deadlines_ms
            .insert(broker_id, now_ms + self.session_timeout_ms);
    }

    /// The unfenced brokers whose session ended before `now_ms`, in id order. Brokers the
    /// image learned about without a heartbeat here (registered through another controller)
    /// get a fresh session instead; brokers gone from the image are forgotten.
    pub fn expired(&mut self, image: &MetadataImage, now_ms: u64) -> Vec<i32> {
        self.deadlines_ms
            .retain(|id, _| image.broker(*id).is_some());
        let mut expired = Vec::new();
        for broker in image.brokers().values() {
            let deadline = *self
                .deadlines_ms
                .entry(broker.broker_id)
                .or_insert(now_ms + self.session_timeout_ms);
            if !broker.fenced && deadline < now_ms {
                expired.push(broker.broker_id);
            }
        }
        expired
    }

    /// The session deadline of `broker_id`, if it has one.
    pub fn deadline_ms(&self, broker_id: i32) -> Option<u64> {
        self.deadlines_ms.get(&broker_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::record::{MetadataRecord, RegisterBrokerRecord};

    fn image(brokers: &[(i32, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (epoch, &(broker_id, fenced)) in brokers.iter().enumerate() {
            image
                .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id,
                    broker_epoch: epoch as i64,
                    incarnation_id: Uuid::nil(),
                    listeners: Vec::new(),
                    rack: None,
                }))
                .unwrap();
            if !fenced {
                image
                    .apply(&MetadataRecord::UnfenceBroker {
                        broker_id,
                        broker_epoch: epoch as i64,
                    })
                    .unwrap();
            }
        }
        image
    }

    #[test]
    fn a_silent_unfenced_broker_expires_after_the_session_timeout() {
        let image = image(&[(1, false), (2, false)]);
        let mut sessions = BrokerSessions::new(9000);
        sessions.reset(&image, 0);
        sessions.touch(2, 5000);
        assert_eq!(sessions.expired(&image, 9000), Vec::<i32>::new());
        assert_eq!(sessions.expired(&image, 9001), vec![1]);
        assert_eq!(sessions.expired(&image, 14_001), vec![1, 2]);
    }

    #[test]
    fn fenced_brokers_never_expire() {
        let image = image(&[(1, true)]);
        let mut sessions = BrokerSessions::new(100);
        sessions.reset(&image, 0);
        assert!(sessions.expired(&image, 1_000).is_empty());
    }

    #[test]
    fn a_new_active_controller_grants_fresh_sessions() {
        let image = image(&[(1, false)]);
        let mut sessions = BrokerSessions::new(100);
        sessions.touch(1, 0);
        assert_eq!(sessions.expired(&image, 500), vec![1]);
        sessions.reset(&image, 500);
        assert!(sessions.expired(&image, 600).is_empty());
        assert_eq!(sessions.expired(&image, 601), vec![1]);
    }

    #[test]
    fn brokers_unknown_to_the_sessions_start_one_and_removed_ones_are_forgotten() {
        let image_one = image(&[(1, false)]);
        let mut sessions = BrokerSessions::new(100);
        assert!(sessions.expired(&image_one, 50).is_empty());
        assert_eq!(sessions.deadline_ms(1), Some(150));
        sessions.touch(9, 50);
        sessions.expired(&image_one, 60);
        assert_eq!(sessions.deadline_ms(9), None);
    }
}
