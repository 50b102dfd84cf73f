//! Following the quorum from outside it: what a broker-only node (`process.roles=broker`)
//! uses instead of a controller of its own.
//!
//! ```text
//!   RemoteController ──FetchImage{known_offset, max_wait_ms}──► a voter (the active
//!        ▲                                                       controller when known)
//!        └──── {leader, image if newer than known_offset} ◄─────┘ long poll, bounded
//!   image(): watch of the newest committed image seen, never going back
//!   submit(): ControllerClient, to the active controller named by the last answer
//! ```
//!
//! Any voter may answer: every image it serves is committed, so images at the same offset are
//! equal everywhere. The follower keeps asking the voter it asked last, moves to the active
//! controller when an answer names another one, and to the next voter when the one it asks
//! fails, knows no leader (it may be cut off from the quorum), or has had nothing new for a
//! while (it may be a deposed leader that does not know it yet).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{ControllerRequest, ControllerResponse};
use crate::client::ControllerClient;
use crate::config::Voter;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::wire::{Connection, FetchImageAnswer, FetchImageRequest, WireRequest, WireResponse};

/// Pause after every voter failed in a row, so an unreachable quorum is not hammered.
const ALL_FAILED_BACKOFF: Duration = Duration::from_millis(200);

/// How long a voter that failed is not returned to on another voter's hint alone, so a dead
/// active controller that the others still name is not retried in a loop.
const FAILED_VOTER_AVOID: Duration = Duration::from_secs(1);

/// After this many answers in a row without a newer image, the next fetch goes to another
/// voter: a voter that still believes it leads, cut off from the others, answers but never
/// has anything new, and another voter names the real active controller (or has the newer
/// image). On a quiet cluster this costs one extra fetch every few seconds.
const QUIET_ANSWERS_BEFORE_PROBE: usize = 10;

/// Settings of a [`RemoteController`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteControllerConfig {
    /// `node.id` of this (non-voter) node.
    pub node_id: i32,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// `controller.quorum.request.timeout.ms`: connect limit, and how much longer than the
    /// long poll an answer may take.
    pub request_timeout: Duration,
    /// How long a voter may hold a fetch when nothing changes. Changes arrive at once either
    /// way; this bounds how soon a silent voter is noticed and the leader refreshed.
    pub fetch_max_wait: Duration,
}

impl RemoteControllerConfig {
    /// Defaults for node `node_id` following `voters`: Kafka's 2 s request timeout and
    /// 500 ms fetch wait (its Raft fetch wait).
    pub fn new(node_id: i32, voters: Vec<Voter>) -> Self {
        Self {
            node_id,
            voters,
            request_timeout: Duration::from_millis(2000),
            fetch_max_wait: Duration::from_millis(500),
        }
    }
}

struct Inner {
    node_id: i32,
    image: watch::Receiver<Arc<MetadataImage>>,
    leader: watch::Receiver<Option<i32>>,
    client: Arc<ControllerClient>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteController")
            .field("node_id", &self.node_id)
            .field("offset", &self.image.borrow().offset())
            .field("leader", &*self.leader.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The metadata quorum as seen from a node that is not one of its voters: the committed
/// image, followed over the voters' CONTROLLER listeners, and requests submitted to the
/// active controller. Clones share it; it stops when the last clone is dropped or at
/// [`RemoteController::shutdown`].
#[derive(Debug, Clone)]
pub struct RemoteController {
    inner: Arc<Inner>,
}

impl RemoteController {
    /// Starts following the voters (in the background; the image is empty until the first
    /// answer). Must be called within a tokio runtime.
    pub fn start(config: RemoteControllerConfig) -> RemoteController {
        let client = Arc::new(ControllerClient::new(
            config.voters.clone(),
            config.request_timeout,
        ));
        let (image_tx, image) = watch::channel(Arc::new(MetadataImage::default()));
        let (leader_tx, leader) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow(
            config.clone(),
            client.clone(),
            image_tx,
            leader_tx,
            stop_rx,
        ));
        RemoteController {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                image,
                leader,
                client,
                stop,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// This node's `node.id`.
    pub fn node_id(&self) -> i32 {
        self.inner.node_id
    }

    /// The newest committed image received; it only moves forward.
    pub fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image.clone()
    }

    /// The active controller, as the last voter that answered named it (`None` while that
    /// voter knew none, or after the named one stopped answering).
    pub fn active_controller(&self) -> Option<i32> {
        *self.inner.leader.borrow()
    }

    /// Sends `request` to the active controller (see [`ControllerClient::submit`]) and answers
    /// once its records are committed.
    pub async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        self.inner.client.submit(&request).await
    }

    /// Stops following and waits for the task.
    pub async fn shutdown(self) -> Result<(), ControllerError> {
        let _ = self.inner.stop.send(true);
        let task = self
            .inner
            .task
            .lock()
            .map_err(|_| ControllerError::Stopped)?
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Which voter to ask next, after the answers and failures so far.
#[derive(Debug)]
struct Target {
    ids: Vec<i32>,
    current: usize,
    /// A voter that failed, and until when hints to it are ignored.
    avoid: Option<(i32, Instant)>,
    /// Failures since the last answer or the last full round of failures.
    failures: usize,
    /// Answers without a newer image since the last one with it or the last probe.
    quiet: usize,
}

impl Target {
    fn new(ids: Vec<i32>) -> Self {
        Self {
            ids,
            current: 0,
            avoid: None,
            failures: 0,
            quiet: 0,
        }
    }

    fn id(&self) -> i32 {
        self.ids[self.current]
    }

    fn next(&mut self) {
        self.current = (self.current + 1) % self.ids.len();
    }

    /// The current voter answered, naming `leader`, with a newer image or not (`news`).
    fn answered(&mut self, leader: Option<i32>, news: bool, now: Instant) {
        self.failures = 0;
        self.quiet = if news { 0 } else { self.quiet + 1 };
        if self.quiet >= QUIET_ANSWERS_BEFORE_PROBE {
            self.quiet = 0;
            self.next();
            return;
        }
        match leader {
            Some(l) if l == self.id() => {}
            Some(l) => {
                let avoided = self.avoid.is_some_and(|(id, until)| id == l && now < until);
                if let Some(index) = self.ids.iter().position(|id| *id == l) {
                    if !avoided {
                        self.current = index;
                    }
                }
            }
            // Cut off from the quorum, or an election is under way: ask another voter.
            None => self.next(),
        }
    }

    /// The current voter failed; whether every voter failed in a row since the last answer.
    fn failed(&mut self, now: Instant) -> bool {
        self.avoid = Some((self.id(), now + FAILED_VOTER_AVOID));
        self.failures += 1;
        self.next();
        let round = self.failures >= self.ids.len();
        if round {
            self.failures = 0;
        }
        round
    }
}

/// Long-polls the voters until `stop`, publishing every newer image and the leader.
async fn follow(
    config: RemoteControllerConfig,
    client: Arc<ControllerClient>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    leader_tx: watch::Sender<Option<i32>>,
    mut stop: watch::Receiver<bool>,
) {
    if config.voters.is_empty() {
        tracing::error!("no controller.quorum.voters to follow");
        return;
    }
    let mut connections: BTreeMap<i32, Connection> = config
        .voters
        .iter()
        .map(|v| (v.id, Connection::new(v.address(), config.request_timeout)))
        .collect();
    let mut target = Target::new(config.voters.iter().map(|v| v.id).collect());
    let mut known: Option<u64> = None;
    let answer_timeout = config.fetch_max_wait + config.request_timeout;
    let max_wait_ms = u64::try_from(config.fetch_max_wait.as_millis()).unwrap_or(u64::MAX);
    loop {
        let asked = target.id();
        let request = WireRequest::FetchImage(FetchImageRequest {
            known_offset: known,
            max_wait_ms,
        });
        let Some(connection) = connections.get_mut(&asked) else {
            return;
        };
        let outcome = tokio::select! {
            biased;
            _ = stop.changed() => return,
            outcome = connection.call(&request, answer_timeout) => outcome,
        };
        match outcome {
            Ok(WireResponse::FetchImage(FetchImageAnswer { leader, image })) => {
                let news = image.is_some_and(|image| {
                    let newer = known.is_none_or(|k| image.offset() > k);
                    if newer {
                        known = Some(image.offset());
                        image_tx.send_replace(image);
                    }
                    newer
                });
                if let Some(l) = leader {
                    client.prefer(l);
                }
                leader_tx.send_if_modified(|current| {
                    let changed = *current != leader;
                    *current = leader;
                    changed
                });
                target.answered(leader, news, Instant::now());
            }
            outcome => {
                match outcome {
                    Ok(other) => {
                        tracing::warn!(voter = asked, answer = ?other, "unexpected answer to a metadata fetch")
                    }
                    Err(error) => {
                        tracing::debug!(voter = asked, %error, "metadata fetch failed")
                    }
                }
                // The active controller as known here is the one that just failed.
                leader_tx.send_if_modified(|current| {
                    let gone = *current == Some(asked);
                    if gone {
                        *current = None;
                    }
                    gone
                });
                if target.failed(Instant::now()) {
                    tracing::debug!("no voter answered a metadata fetch; backing off");
                    tokio::select! {
                        biased;
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(ALL_FAILED_BACKOFF) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_follows_the_leader_and_rotates_on_failure() {
        let now = Instant::now();
        let mut target = Target::new(vec![1, 2, 3]);
        assert_eq!(target.id(), 1);
        // Voter 1 names 3 as the active controller: ask 3 next.
        target.answered(Some(3), true, now);
        assert_eq!(target.id(), 3);
        target.answered(Some(3), true, now);
        assert_eq!(target.id(), 3);
        // 3 dies: on to the next voter, which still names 3 for a while; 3 is not retried
        // until the avoidance ends.
        assert!(!target.failed(now));
        assert_eq!(target.id(), 1);
        target.answered(Some(3), true, now);
        assert_eq!(target.id(), 1);
        // An election: the voter asked knows no leader, so ask another.
        target.answered(None, true, now);
        assert_eq!(target.id(), 2);
        target.answered(Some(2), true, now);
        assert_eq!(target.id(), 2);
        // After the avoidance, a hint to 3 is followed again.
        target.answered(Some(3), true, now + FAILED_VOTER_AVOID * 2);
        assert_eq!(target.id(), 3);
        // Unknown ids in hints are ignored.
        target.answered(Some(9), true, now);
        assert_eq!(target.id(), 3);
    }

    #[test]
    fn a_voter_with_nothing_new_for_long_is_checked_against_another() {
        let now = Instant::now();
        let mut target = Target::new(vec![1, 2, 3]);
        target.answered(Some(1), true, now);
        for _ in 1..QUIET_ANSWERS_BEFORE_PROBE {
            target.answered(Some(1), false, now);
            assert_eq!(target.id(), 1);
        }
        // Voter 1 may be a deposed leader that does not know it: ask voter 2, which names
        // the real one.
        target.answered(Some(1), false, now);
        assert_eq!(target.id(), 2);
        target.answered(Some(3), false, now);
        assert_eq!(target.id(), 3);
        // News resets the count.
        for _ in 0..QUIET_ANSWERS_BEFORE_PROBE * 2 {
            target.answered(Some(3), true, now);
        }
        assert_eq!(target.id(), 3);
    }

    #[test]
    fn every_voter_failing_in_a_row_is_reported_once_per_round() {
        let now = Instant::now();
        let mut target = Target::new(vec![1, 2]);
        assert!(!target.failed(now));
        assert!(target.failed(now));
        assert!(!target.failed(now));
        target.answered(Some(2), true, now);
        assert!(!target.failed(now));
    }
}
