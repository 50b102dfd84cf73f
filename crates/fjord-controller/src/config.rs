//! Settings of one controller, named after Kafka's keys where Kafka has one.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::decision::Policy;

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `controller.quorum.voters` does not parse.
    #[error("controller.quorum.voters: {entry:?} is not id@host:port ({reason})")]
    BadVoter {
        /// The offending entry.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two voters share an id.
    #[error("controller.quorum.voters names node {id} twice")]
    DuplicateVoter {
        /// The id.
        id: i32,
    },
    /// This node is not among the voters.
    #[error("node.id {node_id} is not in controller.quorum.voters")]
    NotAVoter {
        /// `node.id`.
        node_id: i32,
    },
    /// The key must be positive.
    #[error("{key} must be positive, got {value}")]
    NotPositive {
        /// Kafka's name for the setting.
        key: &'static str,
        /// The rejected value.
        value: i64,
    },
    /// Two settings contradict each other.
    #[error("{key} ({value}) must be below {other_key} ({other_value})")]
    NotBelow {
        /// The smaller setting.
        key: &'static str,
        /// Its value.
        value: u64,
        /// The larger setting.
        other_key: &'static str,
        /// Its value.
        other_value: u64,
    },
}

/// One member of the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// `node.id` of the controller.
    pub id: i32,
    /// Host of its CONTROLLER listener.
    pub host: String,
    /// Port of its CONTROLLER listener.
    pub port: u16,
}

impl Voter {
    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Parses `controller.quorum.voters`: `id@host:port` entries separated by commas (IPv6 hosts
/// in brackets, `1@[::1]:9093`).
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut voters: Vec<Voter> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |reason| ConfigError::BadVoter {
            entry: entry.to_string(),
            reason,
        };
        let (id, address) = entry.split_once('@').ok_or_else(|| bad("missing @"))?;
        let id: i32 = id.parse().map_err(|_| bad("id is not an integer"))?;
        if id < 0 {
            return Err(bad("id is negative"));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("missing :port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("host is empty"));
        }
        let port: u16 = port.parse().map_err(|_| bad("port is not a number"))?;
        if voters.iter().any(|v| v.id == id) {
            return Err(ConfigError::DuplicateVoter { id });
        }
        voters.push(Voter {
            id,
            host: host.to_string(),
            port,
        });
    }
    if voters.is_empty() {
        return Err(ConfigError::BadVoter {
            entry: value.to_string(),
            reason: "no voters",
        });
    }
    Ok(voters)
}

/// Settings of one controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// `controller.quorum.voters`, every member including this one; see [`parse_voters`].
    pub voters: Vec<Voter>,
    /// Address of the CONTROLLER listener to bind. Peers and brokers reach this node at its
    /// entry in `voters`, which may differ (e.g. bind 0.0.0.0).
    pub listen_address: SocketAddr,
    /// `metadata.log.dir`: where the metadata log, vote and snapshot live.
    pub metadata_dir: PathBuf,
    /// `controller.quorum.election.timeout.ms`: a follower that hears no leader for a random
    /// time between this and twice this starts an election.
    pub election_timeout_ms: u64,
    /// How often the leader sends heartbeats (empty appends) to the other voters; well below
    /// the election timeout so a healthy leader is never replaced.
    pub quorum_heartbeat_interval_ms: u64,
    /// `controller.quorum.request.timeout.ms`: connect, read and write limit of one RPC.
    pub request_timeout_ms: u64,
    /// Log entries applied since the last snapshot that trigger the next one; the log before
    /// a snapshot is then deleted, so the log stays bounded.
    pub snapshot_threshold_entries: u64,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`: how often brokers are expected to heartbeat; the
    /// controller checks sessions twice per interval.
    pub broker_heartbeat_interval_ms: u64,
    /// `num.partitions`, `default.replication.factor` and `unclean.leader.election.enable`.
    pub policy: Policy,
}

impl ControllerConfig {
    /// Kafka's defaults for node `node_id` of `voters`, listening on `listen_address`.
    pub fn new(
        node_id: i32,
        voters: Vec<Voter>,
        listen_address: SocketAddr,
        metadata_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            node_id,
            voters,
            listen_address,
            metadata_dir: metadata_dir.into(),
            election_timeout_ms: 1000,
            quorum_heartbeat_interval_ms: 200,
            request_timeout_ms: 2000,
            snapshot_threshold_entries: 1000,
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            policy: Policy::default(),
        }
    }

    /// Checks that the settings can work together.
    pub fn validate(self) -> Result<Self, ConfigError> {
        if !self.voters.iter().any(|v| v.id == self.node_id) {
            return Err(ConfigError::NotAVoter {
                node_id: self.node_id,
            });
        }
        let mut ids: Vec<i32> = self.voters.iter().map(|v| v.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateVoter { id: w[0] });
        }
        for (key, value) in [
            (
                "controller.quorum.election.timeout.ms",
                self.election_timeout_ms,
            ),
            (
                "quorum.heartbeat.interval.ms",
                self.quorum_heartbeat_interval_ms,
            ),
            (
                "controller.quorum.request.timeout.ms",
                self.request_timeout_ms,
            ),
            (
                "snapshot.threshold.entries",
                self.snapshot_threshold_entries,
            ),
            ("broker.session.timeout.ms", self.broker_session_timeout_ms),
            (
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive { key, value: 0 });
            }
        }
        for (key, value) in [
            ("num.partitions", i64::from(self.policy.num_partitions)),
            (
                "default.replication.factor",
                i64::from(self.policy.default_replication_factor),
            ),
        ] {
            if value <= 0 {
                return Err(ConfigError::NotPositive { key, value });
            }
        }
        let below = |key, value, other_key, other_value| {
            if value < other_value {
                Ok(())
            } else {
                Err(ConfigError::NotBelow {
                    key,
                    value,
                    other_key,
                    other_value,
                })
            }
        };
        below(
            "quorum.heartbeat.interval.ms",
            self.quorum_heartbeat_interval_ms,
            "controller.quorum.election.timeout.ms",
            self.election_timeout_ms,
        )?;
        below(
            "broker.heartbeat.interval.ms",
            self.broker_heartbeat_interval_ms,
            "broker.session.timeout.ms",
            self.broker_session_timeout_ms,
        )?;
        Ok(self)
    }

    /// This node's entry in the voters.
    pub fn local_voter(&self) -> Option<&Voter> {
        self.voters.iter().find(|v| v.id == self.node_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn voters_parse_kafkas_format() {
        let voters = parse_voters("1@127.0.0.1:9093, 2@host-b:19093,3@[::1]:9095").unwrap();
        assert_eq!(
            voters,
            vec![
                Voter {
                    id: 1,
                    host: "127.0.0.1".into(),
                    port: 9093
                },
                Voter {
                    id: 2,
                    host: "host-b".into(),
                    port: 19093
                },
                Voter {
                    id: 3,
                    host: "::1".into(),
                    port: 9095
                },
            ]
        );
        assert_eq!(voters[1].address(), "host-b:19093");
    }

    #[test]
    fn malformed_voters_are_named() {
        for (value, reason) in [
            ("1127.0.0.1:9093", "missing @"),
            ("x@h:1", "id is not an integer"),
            ("-1@h:1", "id is negative"),
            ("1@h", "missing :port"),
            ("1@h:99999", "port is not a number"),
            ("1@:5", "host is empty"),
            ("", "no voters"),
        ] {
            match parse_voters(value) {
                Err(ConfigError::BadVoter { reason: r, .. }) => assert_eq!(r, reason, "{value}"),
                other => panic!("{value}: {other:?}"),
            }
        }
        assert_eq!(
            parse_voters("1@a:1,1@b:2"),
            Err(ConfigError::DuplicateVoter { id: 1 })
        );
    }

    #[test]
    fn defaults_are_kafkas_and_valid() {
        let config = ControllerConfig::new(1, parse_voters("1@h:1").unwrap(), addr(), "/tmp/x")
            .validate()
            .unwrap();
        assert_eq!(config.broker_session_timeout_ms, 9000);
        assert_eq!(config.broker_heartbeat_interval_ms, 2000);
    }

    #[test]
    fn contradictions_are_refused_with_the_keys_named() {
        let voters = parse_voters("1@h:1").unwrap();
        let config = ControllerConfig::new(2, voters.clone(), addr(), "/tmp/x");
        assert_eq!(
            config.validate(),
            Err(ConfigError::NotAVoter { node_id: 2 })
        );
        let mut config = ControllerConfig::new(1, voters.clone(), addr(), "/tmp/x");
        config.broker_heartbeat_interval_ms = 9000;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NotBelow {
                key: "broker.heartbeat.interval.ms",
                ..
            })
        ));
        let mut config = ControllerConfig::new(1, voters, addr(), "/tmp/x");
        config.request_timeout_ms = 0;
        assert_eq!(
            config.validate(),
            Err(ConfigError::NotPositive {
                key: "controller.quorum.request.timeout.ms",
                value: 0
            })
        );
    }
}
