//! `fjord server`: load Kafka-style configuration and run the broker until a signal arrives.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use fjord_broker::config::BrokerConfig;

use crate::properties;

/// Flags of `fjord server`.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// A Kafka `server.properties` file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a configuration key, overriding the file (repeatable): `--override key=value`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Shorthand for `--override log.dirs=DIR`.
    #[arg(long, value_name = "DIR")]
    log_dirs: Option<String>,
    /// Shorthand for `--override listeners=...`, e.g. `PLAINTEXT://127.0.0.1:9092`.
    #[arg(long, value_name = "LISTENERS")]
    listeners: Option<String>,
    /// Shorthand for `--override node.id=ID`.
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
}

impl ServerArgs {
    /// File first, then `--override`, then the shorthand flags.
    fn properties(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut props = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                properties::parse(&text)
            }
            None => BTreeMap::new(),
        };
        for item in &self.overrides {
            let Some((k, v)) = item.split_once('=') else {
                bail!("--override expects KEY=VALUE, got `{item}`");
            };
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        if let Some(v) = &self.log_dirs {
            props.insert("log.dirs".into(), v.clone());
        }
        if let Some(v) = &self.listeners {
            props.insert("listeners".into(), v.clone());
        }
        if let Some(v) = self.node_id {
            props.insert("node.id".into(), v.to_string());
        }
        Ok(props)
    }
}

/// Runs the node until SIGINT or SIGTERM, then shuts down cleanly. Without `process.roles`
/// it is a single-node cluster; with it a broker of a cluster (which starts serving once the
/// controller has unfenced it) that is also a controller or follows the controllers from
/// outside, or a controller only.
pub(crate) async fn run(args: ServerArgs) -> anyhow::Result<()> {
    // Registered before anything starts, so a signal during start-up still stops cleanly.
    let mut signals = Signals::register()?;
    let props = args.properties()?;
    let (config, not_acted_on) =
        BrokerConfig::from_properties(&props).context("invalid configuration")?;
    for key in not_acted_on {
        tracing::warn!(%key, "configuration key is valid in Kafka but not acted on by fjord yet");
    }
    if let Some(cluster) = config.cluster.as_ref().filter(|c| !c.roles.broker) {
        tracing::info!(
            node_id = config.node_id,
            voters = cluster.voters.len(),
            "starting a controller-only node"
        );
        let running = fjord_broker::start_controller(&config).await?;
        tracing::info!(
            "fjord controller listening on CONTROLLER://{}, metadata in {}",
            running.local_addr(),
            cluster.metadata_log_dir.display()
        );
        signals.wait().await;
        tracing::info!("shutting down");
        running.shutdown().await?;
        tracing::info!("stopped cleanly");
        return Ok(());
    }
    if let Some(cluster) = &config.cluster {
        tracing::info!(
            node_id = config.node_id,
            roles = %cluster.roles,
            voters = cluster.voters.len(),
            "starting in cluster mode; clients are served once the controller unfences this broker"
        );
    }
    let data_dir = config.log_dir.clone();
    // A cluster node may wait long for a quorum; a signal meanwhile stops the start.
    let running = tokio::select! {
        running = fjord_broker::start(config) => running?,
        () = signals.wait() => {
            tracing::info!("stopped while starting");
            return Ok(());
        }
    };
    for (name, addr) in running.listeners() {
        tracing::info!(
            "fjord listening on {name}://{addr}, data in {}",
            data_dir.display()
        );
    }
    signals.wait().await;
    tracing::info!("shutting down");
    running.shutdown().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// SIGTERM and SIGINT, the signals that ask for a clean stop.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
