//! Test support: start real `fjord server` processes on loopback ports with
//! temporary data directories, and drive them from integration tests.
//!
//! ```text
//!   BrokerProcess ──> ManagedProcess (one child at a time, SIGKILL/TERM/
//!                          │          STOP/CONT, killed on drop)
//!                          │ stderr/stdout
//!                          ▼
//!                   drain threads ──> log buffer ──> logs(), listening-line
//!                                                    waits, printed when a
//!                                                    test panics
//! ```
//!
//! - [`BrokerProcess`]: one broker on `127.0.0.1:0`; the kit learns the port
//!   from the `listening on PLAINTEXT://…` line.
//! - [`ManagedProcess`]: the process handling it is built on, usable for any
//!   other child a test needs.
//! - [`free_ports`]: loopback ports for processes that must know their
//!   ports before they start.
//! - [`LinkProxy`]: a loopback TCP proxy standing for one network link,
//!   which a test can cut and restore.
//! - [`wait_until`]: bounded polling for conditions only a client can see.
//!
//! Output is drained continuously, so a pipe never fills up and blocks the
//! broker. Dropping a handle kills its process, so none outlives its test,
//! and a test that panics prints the tail of the broker's log.
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
mod link_proxy;
mod log;
mod ports;
mod process;
mod wait;

pub use broker::{BrokerBuilder, BrokerProcess};
pub use link_proxy::LinkProxy;
pub use ports::{free_port, free_ports};
pub use process::{process_state, ManagedProcess};
pub use wait::wait_until;
