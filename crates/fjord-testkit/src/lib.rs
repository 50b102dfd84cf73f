//! Test support: start real `fjord server` processes on loopback ports with
//! temporary data directories, and drive them from integration tests, alone
//! or as a cluster with crash, pause and network faults.
//!
//! ```text
//!   BrokerProcess ─┐                       Cluster ── LinkProxy per ordered
//!                  │                          │       pair of controllers
//!                  ▼                          ▼
//!          ManagedProcess (one child at a time, SIGKILL/TERM/STOP/CONT,
//!                  │      reaped and killed on drop)
//!                  │ stderr/stdout
//!                  ▼
//!           drain threads ──> log buffer ──> logs(), listening-line waits,
//!                                            printed when a test panics
//! ```
//!
//! - [`BrokerProcess`]: one broker on `127.0.0.1:0`; the kit learns the port
//!   from the `listening on PLAINTEXT://…` line.
//! - [`Cluster`]: nodes configured with Kafka's KRaft keys
//!   (`process.roles=broker,controller`, or per node `broker` or
//!   `controller` alone, `controller.quorum.voters`, …) on
//!   ports picked with [`free_ports`] before they start, with
//!   [`Cluster::kill`], [`Cluster::stop`], [`Cluster::restart`],
//!   [`Cluster::pause`], [`Cluster::resume`], and with controller-link faults
//!   through [`LinkProxy`].
//! - [`ManagedProcess`]: the process handling both are built on, usable for
//!   any other child a test needs.
//! - [`wait_until`]: bounded polling for conditions only a client can see.
//!
//! Output is drained continuously, so a pipe never fills up and blocks the
//! broker. Dropping a handle kills its processes, so none outlives its test,
//! and a test that panics prints the tail of every log it owned.
//!
//! ```no_run
//! use fjord_testkit::BrokerProcess;
//!
//! let broker = BrokerProcess::builder("target/release/fjord")
//!     .override_config("num.partitions", "3")
//!     .start()
//!     .expect("broker starts");
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT"
//! # drop(bootstrap);
//! ```

mod broker;
mod cluster;
mod link_proxy;
mod log;
mod ports;
mod process;
mod wait;

pub use broker::{BrokerBuilder, BrokerProcess};
pub use cluster::{Cluster, ClusterBuilder, NodeInfo, NodeRoles};
pub use link_proxy::LinkProxy;
pub use ports::{free_port, free_ports};
pub use process::{process_state, ManagedProcess};
pub use wait::wait_until;
