//! Broker registration, heartbeats and producer-id blocks.
//!
//! A broker registers and gets a new epoch; it stays fenced (no leaderships, no ISR
//! membership) until a heartbeat shows it has applied the metadata log up to its own
//! registration. Heartbeats themselves are not logged: only the fence and unfence they cause
//! are. Session expiry is the runtime's job ([`crate::liveness`]); it ends in
//! [`crate::election::fence_broker`].

use crate::api::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, BrokerHeartbeatRequest,
    BrokerHeartbeatResponse, RegisterBrokerRequest, RegisterBrokerResponse,
};
use crate::decision::{Decision, Policy};
use crate::election::{fence_broker, unfence_broker};
use crate::error_code::ErrorCode;
use crate::image::MetadataImage;
use crate::record::{
    MetadataRecord, ProducerIdsRecord, RegisterBrokerRecord, PRODUCER_ID_BLOCK_SIZE,
};

/// BrokerRegistration. A live (unfenced) registration of another incarnation keeps the id;
/// re-registering an unfenced broker fences it first, moving its leaderships away, because the
/// new process has not loaded the metadata yet.
pub fn register_broker(
    image: &MetadataImage,
    request: &RegisterBrokerRequest,
    policy: &Policy,
) -> Decision<RegisterBrokerResponse> {
    let refuse = |error| {
        Decision::answer(RegisterBrokerResponse {
            error,
            broker_epoch: -1,
        })
    };
    if request.broker_id < 0 {
        return refuse(ErrorCode::InvalidRequest);
    }
    let mut records = Vec::new();
    if let Some(current) = image.broker(request.broker_id) {
        if !current.fenced && current.incarnation_id != request.incarnation_id {
            return refuse(ErrorCode::DuplicateBrokerRegistration);
        }
        // Same process again: fence the old registration through the usual path so its
        // leaderships move, then register anew.
        records = fence_broker(image, request.broker_id, policy);
    }
    let broker_epoch = image.next_broker_epoch();
    records.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: request.broker_id,
        broker_epoch,
        incarnation_id: request.incarnation_id,
        listeners: request.listeners.clone(),
        rack: request.rack.clone(),
    }));
    Decision {
        records,
        response: RegisterBrokerResponse {
            error: ErrorCode::None,
            broker_epoch,
        },
    }
}

/// BrokerHeartbeat: unfences a fenced broker once it is caught up (and does not ask to stay
/// fenced), fences an unfenced one that asks to be fenced or to shut down.
pub fn broker_heartbeat(
    image: &MetadataImage,
    request: &BrokerHeartbeatRequest,
    policy: &Policy,
) -> Decision<BrokerHeartbeatResponse> {
    let refuse = |error| {
        Decision::answer(BrokerHeartbeatResponse {
            error,
            is_caught_up: false,
            is_fenced: true,
            should_shut_down: false,
        })
    };
    let Some(broker) = image.broker(request.broker_id) else {
        return refuse(ErrorCode::BrokerIdNotRegistered);
    };
    if broker.broker_epoch != request.broker_epoch {
        return refuse(ErrorCode::StaleBrokerEpoch);
    }
    let is_caught_up = request.current_metadata_offset >= broker.registered_offset;
    let wants_out = request.want_fence || request.want_shut_down;
    let records = if broker.fenced && is_caught_up && !wants_out {
        unfence_broker(image, request.broker_id, policy)
    } else if !broker.fenced && wants_out {
        fence_broker(image, request.broker_id, policy)
    } else {
        Vec::new()
    };
    let is_fenced = if records.is_empty() {
        broker.fenced
    } else {
        !broker.fenced
    };
    Decision {
        records,
        response: BrokerHeartbeatResponse {
            error: ErrorCode::None,
            is_caught_up,
            is_fenced,
            should_shut_down: request.want_shut_down && is_fenced,
        },
    }
}

/// AllocateProducerIds: the next block of [`PRODUCER_ID_BLOCK_SIZE`] ids.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    request: &AllocateProducerIdsRequest,
) -> Decision<AllocateProducerIdsResponse> {
    let refuse = |error| {
        Decision::answer(AllocateProducerIdsResponse {
            error,
            producer_id_start: -1,
            producer_id_len: 0,
        })
    };
    match image.broker(request.broker_id) {
        None => return refuse(ErrorCode::BrokerIdNotRegistered),
        Some(b) if b.broker_epoch != request.broker_epoch => {
            return refuse(ErrorCode::StaleBrokerEpoch)
        }
        Some(_) => {}
    }
    let start = image.next_producer_id();
    let Some(next) = start.checked_add(PRODUCER_ID_BLOCK_SIZE) else {
        return refuse(ErrorCode::UnknownServerError);
    };
    Decision {
        records: vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: request.broker_id,
            broker_epoch: request.broker_epoch,
            next_producer_id: next,
        })],
        response: AllocateProducerIdsResponse {
            error: ErrorCode::None,
            producer_id_start: start,
            producer_id_len: PRODUCER_ID_BLOCK_SIZE as i32,
        },
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::record::PartitionChangeRecord;
    use crate::testing::{add_broker, add_topic, apply_all, cluster};

    fn registration(broker_id: i32, incarnation: u128) -> RegisterBrokerRequest {
        RegisterBrokerRequest {
            broker_id,
            incarnation_id: Uuid::from_u128(incarnation),
            listeners: Vec::new(),
            rack: None,
        }
    }

    fn heartbeat(broker_id: i32, broker_epoch: i64, offset: u64) -> BrokerHeartbeatRequest {
        BrokerHeartbeatRequest {
            broker_id,
            broker_epoch,
            current_metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }
    }

    #[test]
    fn a_new_broker_gets_the_next_epoch_and_starts_fenced() {
        let mut image = cluster(&[1]);
        let decision = register_broker(&image, &registration(2, 7), &Policy::default());
        assert_eq!(
            decision.records,
            vec![MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 2,
                broker_epoch: 11,
                incarnation_id: Uuid::from_u128(7),
                listeners: Vec::new(),
                rack: None,
            })]
        );
        assert_eq!(decision.response.broker_epoch, 11);
        apply_all(&mut image, &decision.records);
        assert!(!image.is_unfenced(2));
    }

    #[test]
    fn another_incarnation_of_a_live_broker_is_refused() {
        let image = cluster(&[1]);
        let decision = register_broker(&image, &registration(1, 99), &Policy::default());
        assert!(decision.records.is_empty());
        assert_eq!(
            decision.response.error,
            ErrorCode::DuplicateBrokerRegistration
        );
    }

    #[test]
    fn re_registering_a_live_broker_fences_it_and_moves_its_leadership_first() {
        let mut image = cluster(&[1, 2]);
        let t = add_topic(&mut image, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
        // cluster() gives broker 1 incarnation 1.
        let decision = register_broker(&image, &registration(1, 1), &Policy::default());
        assert_eq!(
            decision.records[..2],
            [
                MetadataRecord::FenceBroker {
                    broker_id: 1,
                    broker_epoch: 10
                },
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id: t,
                    partition: 0,
                    replicas: vec![1, 2],
                    isr: vec![2],
                    leader: 2,
                    leader_epoch: 1,
                    partition_epoch: 1,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                }),
            ]
        );
        assert!(matches!(
            decision.records[2],
            MetadataRecord::RegisterBroker(_)
        ));
        apply_all(&mut image, &decision.records);
        assert_eq!(
            image.broker(1).unwrap().broker_epoch,
            decision.response.broker_epoch
        );
    }

    #[test]
    fn a_fenced_broker_is_unfenced_once_caught_up() {
        let mut image = cluster(&[1]);
        image.advance_to(40);
        add_broker(&mut image, 2, None, true);
        let behind = broker_heartbeat(&image, &heartbeat(2, 20, 39), &Policy::default());
        assert!(behind.records.is_empty());
        assert_eq!(
            behind.response,
            BrokerHeartbeatResponse {
                error: ErrorCode::None,
                is_caught_up: false,
                is_fenced: true,
                should_shut_down: false,
            }
        );
        let caught_up = broker_heartbeat(&image, &heartbeat(2, 20, 40), &Policy::default());
        assert_eq!(
            caught_up.records,
            vec![MetadataRecord::UnfenceBroker {
                broker_id: 2,
                broker_epoch: 20
            }]
        );
        assert!(!caught_up.response.is_fenced && caught_up.response.is_caught_up);
        let mut staying = heartbeat(2, 20, 40);
        staying.want_fence = true;
        let decision = broker_heartbeat(&image, &staying, &Policy::default());
        assert!(decision.records.is_empty() && decision.response.is_fenced);
    }

    #[test]
    fn a_broker_shutting_down_is_fenced_before_it_may_stop() {
        let image = cluster(&[1]);
        let mut request = heartbeat(1, 10, 0);
        request.want_shut_down = true;
        let decision = broker_heartbeat(&image, &request, &Policy::default());
        assert_eq!(
            decision.records,
            vec![MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 10
            }]
        );
        assert!(decision.response.should_shut_down && decision.response.is_fenced);
    }

    #[test]
    fn heartbeats_from_strangers_and_old_registrations_are_refused() {
        let image = cluster(&[1]);
        let unknown = broker_heartbeat(&image, &heartbeat(5, 0, 0), &Policy::default());
        assert_eq!(unknown.response.error, ErrorCode::BrokerIdNotRegistered);
        let stale = broker_heartbeat(&image, &heartbeat(1, 9, 0), &Policy::default());
        assert_eq!(stale.response.error, ErrorCode::StaleBrokerEpoch);
        assert!(unknown.records.is_empty() && stale.records.is_empty());
    }

    #[test]
    fn producer_id_blocks_follow_each_other() {
        let mut image = cluster(&[1]);
        let request = AllocateProducerIdsRequest {
            broker_id: 1,
            broker_epoch: 10,
        };
        let first = allocate_producer_ids(&image, &request);
        assert_eq!(
            first.response,
            AllocateProducerIdsResponse {
                error: ErrorCode::None,
                producer_id_start: 0,
                producer_id_len: 1000,
            }
        );
        apply_all(&mut image, &first.records);
        let second = allocate_producer_ids(&image, &request);
        assert_eq!(second.response.producer_id_start, 1000);
        assert_eq!(
            second.records,
            vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: 10,
                next_producer_id: 2000,
            })]
        );
        let stale = AllocateProducerIdsRequest {
            broker_id: 1,
            broker_epoch: 3,
        };
        assert_eq!(
            allocate_producer_ids(&image, &stale).response.error,
            ErrorCode::StaleBrokerEpoch
        );
    }
}
