//! Cluster-mode keys: what the testkit's KRaft settings parse to, and every refusal naming
//! the key to change.

use std::collections::BTreeMap;

use super::*;

/// The keys `fjord_testkit::Cluster` passes to node 2 of three.
fn kraft(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut props: BTreeMap<String, String> = [
        ("process.roles", "broker,controller"),
        ("node.id", "2"),
        (
            "controller.quorum.voters",
            "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103",
        ),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9102",
        ),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:9092"),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ),
        ("log.dirs", "/data/a,/data/b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    props
}

fn refused_key(props: &BTreeMap<String, String>) -> String {
    match BrokerConfig::from_properties(props) {
        Err(ConfigError::Inconsistent { key, .. }) => key,
        Err(ConfigError::InvalidValue { key, .. }) => key,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_kraft_keys_of_a_combined_node_parse_without_warnings() {
    let (config, warn) = BrokerConfig::from_properties(&kraft(&[])).unwrap();
    assert!(warn.is_empty(), "{warn:?}");
    let cluster = config.cluster.as_ref().unwrap();
    assert_eq!(
        cluster.roles,
        ProcessRoles {
            broker: true,
            controller: true
        }
    );
    assert_eq!(cluster.voters.len(), 3);
    assert_eq!(cluster.voters[1].port, 9102);
    let controller = cluster.controller_listener(&config.listeners).unwrap();
    assert_eq!(controller.address.to_string(), "127.0.0.1:9102");
    assert!(cluster.is_controller_listener("CONTROLLER"));
    assert!(!cluster.is_controller_listener("PLAINTEXT"));
    assert_eq!(cluster.inter_broker_listener_name, "PLAINTEXT");
    // Kafka's defaults.
    assert_eq!(cluster.broker_session_timeout_ms, 9000);
    assert_eq!(cluster.broker_heartbeat_interval_ms, 2000);
    // metadata.log.dir defaults to the first log dir.
    assert_eq!(cluster.metadata_log_dir, PathBuf::from("/data/a"));
    assert_eq!(
        metadata_dir(&cluster.metadata_log_dir),
        PathBuf::from("/data/a/__cluster_metadata-0")
    );
}

#[test]
fn cluster_keys_are_acted_on() {
    let (config, _) = BrokerConfig::from_properties(&kraft(&[
        ("broker.session.timeout.ms", "3000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("metadata.log.dir", "/meta"),
        ("unclean.leader.election.enable", "true"),
        ("broker.rack", "rack-b"),
        ("controller.quorum.election.timeout.ms", "700"),
    ]))
    .unwrap();
    let cluster = config.cluster.unwrap();
    assert_eq!(cluster.broker_session_timeout_ms, 3000);
    assert_eq!(cluster.broker_heartbeat_interval_ms, 500);
    assert_eq!(cluster.election_timeout_ms, 700);
    assert_eq!(cluster.metadata_log_dir, PathBuf::from("/meta"));
    assert!(config.unclean_leader_election_enable);
    assert_eq!(config.broker_rack.as_deref(), Some("rack-b"));
}

/// The keys of node 4, a broker-only node of the same cluster.
fn broker_only(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut props = kraft(&[
        ("process.roles", "broker"),
        ("node.id", "4"),
        ("listeners", "PLAINTEXT://127.0.0.1:9094"),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:9094"),
    ]);
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    props
}

#[test]
fn a_broker_only_node_binds_no_controller_listener() {
    let (config, warn) = BrokerConfig::from_properties(&broker_only(&[])).unwrap();
    assert!(warn.is_empty(), "{warn:?}");
    let cluster = config.cluster.as_ref().unwrap();
    assert_eq!(
        cluster.roles,
        ProcessRoles {
            broker: true,
            controller: false
        }
    );
    assert_eq!(cluster.roles.to_string(), "broker");
    assert_eq!(cluster.voters.len(), 3);
    assert_eq!(cluster.controller_listener(&config.listeners), None);
    // Still names the listener the voters are reached on, never served to clients.
    assert!(cluster.is_controller_listener("CONTROLLER"));
    assert_eq!(config.listeners.len(), 1);
    // Every node derives the same cluster id from the voters, broker-only ones too.
    let (combined, _) = BrokerConfig::from_properties(&kraft(&[])).unwrap();
    assert_eq!(config.cluster_id(), combined.cluster_id());
}

#[test]
fn a_broker_only_node_follows_kafkas_rules() {
    // Not a voter.
    let err = BrokerConfig::from_properties(&broker_only(&[("node.id", "2")])).unwrap_err();
    assert!(
        err.to_string().contains("must not be one of the voters"),
        "{err}"
    );
    assert_eq!(
        refused_key(&broker_only(&[("node.id", "2")])),
        "controller.quorum.voters"
    );
    // No controller listener of its own.
    let with_controller = broker_only(&[(
        "listeners",
        "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9104",
    )]);
    let err = BrokerConfig::from_properties(&with_controller).unwrap_err();
    assert!(
        err.to_string()
            .contains("must not contain a value appearing in listeners"),
        "{err}"
    );
    assert_eq!(refused_key(&with_controller), "controller.listener.names");
    // But controller.listener.names is still required, with a PLAINTEXT protocol.
    assert_eq!(
        refused_key(&broker_only(&[("controller.listener.names", "")])),
        "controller.listener.names"
    );
    assert_eq!(
        refused_key(&broker_only(&[(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT"
        )])),
        "listener.security.protocol.map"
    );
    let ssl = broker_only(&[(
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
    )]);
    let err = BrokerConfig::from_properties(&ssl).unwrap_err();
    assert!(err.to_string().contains("only PLAINTEXT"), "{err}");
    // Clients are never told about a controller listener.
    assert_eq!(
        refused_key(&broker_only(&[(
            "advertised.listeners",
            "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9104"
        )])),
        "advertised.listeners"
    );
}

#[test]
fn a_controller_must_be_a_voter_and_have_a_controller_listener() {
    assert_eq!(
        refused_key(&kraft(&[("node.id", "4")])),
        "controller.quorum.voters"
    );
    assert_eq!(
        refused_key(&kraft(&[("listeners", "PLAINTEXT://127.0.0.1:9092")])),
        "listeners"
    );
    assert_eq!(
        refused_key(&kraft(&[("controller.listener.names", "")])),
        "controller.listener.names"
    );
}

#[test]
fn controller_listeners_are_never_advertised_and_inter_broker_is_a_broker_listener() {
    assert_eq!(
        refused_key(&kraft(&[(
            "advertised.listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9102"
        )])),
        "advertised.listeners"
    );
    assert_eq!(
        refused_key(&kraft(&[("inter.broker.listener.name", "CONTROLLER")])),
        "inter.broker.listener.name"
    );
}

#[test]
fn a_controller_only_node_lists_only_controller_listeners() {
    let props = kraft(&[
        ("process.roles", "controller"),
        ("listeners", "CONTROLLER://127.0.0.1:9102"),
        ("advertised.listeners", ""),
    ]);
    let (config, _) = BrokerConfig::from_properties(&props).unwrap();
    assert!(!config.cluster.unwrap().roles.broker);
    assert_eq!(
        refused_key(&kraft(&[("process.roles", "controller")])),
        "listeners"
    );
}

#[test]
fn heartbeats_must_come_more_often_than_the_session_lasts() {
    assert_eq!(
        refused_key(&kraft(&[
            ("broker.session.timeout.ms", "1000"),
            ("broker.heartbeat.interval.ms", "1000"),
        ])),
        "broker.heartbeat.interval.ms"
    );
}

#[test]
fn malformed_roles_and_voters_are_named() {
    for roles in ["", "broker,broker", "zookeeper"] {
        assert_eq!(
            refused_key(&kraft(&[("process.roles", roles)])),
            "process.roles"
        );
    }
    assert_eq!(
        refused_key(&kraft(&[("controller.quorum.voters", "1@nohost")])),
        "controller.quorum.voters"
    );
    let mut no_id = kraft(&[]);
    no_id.remove("node.id");
    assert_eq!(refused_key(&no_id), "node.id");
}

#[test]
fn cluster_keys_without_process_roles_are_refused() {
    for key in [
        "controller.quorum.voters",
        "controller.listener.names",
        "broker.heartbeat.interval.ms",
        "metadata.log.dir",
    ] {
        let props = BTreeMap::from([(key.to_string(), "1@127.0.0.1:1".to_string())]);
        assert_eq!(refused_key(&props), key);
    }
}

#[test]
fn every_listener_needs_a_plaintext_protocol() {
    let props = BTreeMap::from([(
        "listeners".to_string(),
        "INTERNAL://127.0.0.1:0".to_string(),
    )]);
    assert_eq!(refused_key(&props), "listener.security.protocol.map");
    let mut props = props;
    props.insert(
        "listener.security.protocol.map".into(),
        "INTERNAL:PLAINTEXT".into(),
    );
    let (config, _) = BrokerConfig::from_properties(&props).unwrap();
    assert_eq!(config.listeners[0].name, "INTERNAL");
    props.insert(
        "listener.security.protocol.map".into(),
        "INTERNAL:SSL".into(),
    );
    let err = BrokerConfig::from_properties(&props).unwrap_err();
    assert!(err.to_string().contains("only PLAINTEXT"), "{err}");
}

#[test]
fn every_node_of_a_cluster_derives_the_same_cluster_id() {
    let (a, _) = BrokerConfig::from_properties(&kraft(&[])).unwrap();
    let (b, _) = BrokerConfig::from_properties(&kraft(&[
        ("node.id", "3"),
        (
            "controller.quorum.voters",
            "3@127.0.0.1:7003,1@127.0.0.1:7001,2@127.0.0.1:7002",
        ),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:7003",
        ),
        ("advertised.listeners", "PLAINTEXT://127.0.0.1:9093"),
    ]))
    .unwrap();
    let id = a.cluster_id().unwrap();
    assert_eq!(b.cluster_id().unwrap(), id);
    assert_eq!(id.len(), 22, "{id}");
    let (other, _) = BrokerConfig::from_properties(&kraft(&[(
        "controller.quorum.voters",
        "1@127.0.0.1:9101,2@127.0.0.1:9102,4@127.0.0.1:9104",
    )]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(other.cluster_id().unwrap(), id);
    let (named, _) =
        BrokerConfig::from_properties(&kraft(&[("cluster.id", "MkU3OEVBNTcwNTJENDM2Qk")])).unwrap();
    assert_eq!(named.cluster_id().unwrap(), "MkU3OEVBNTcwNTJENDM2Qk");
    assert_eq!(BrokerConfig::default().cluster_id(), None);
}

#[test]
fn describe_lists_the_cluster_keys_in_cluster_mode_only() {
    let (config, _) = BrokerConfig::from_properties(&kraft(&[("broker.rack", "r1")])).unwrap();
    let described: BTreeMap<&str, String> = config.describe().into_iter().collect();
    assert_eq!(described["process.roles"], "broker,controller");
    assert_eq!(
        described["controller.quorum.voters"],
        "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    );
    assert_eq!(described["broker.rack"], "r1");
    assert_eq!(described["metadata.log.dir"], "/data/a");
    let single: BTreeMap<&str, String> = BrokerConfig::default().describe().into_iter().collect();
    assert!(!single.contains_key("process.roles"));
}
