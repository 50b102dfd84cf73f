//! Free loopback ports for processes that must know their ports before they
//! start (a cluster's nodes name each other in `controller.quorum.voters`).
//!
//! A port is found by binding `127.0.0.1:0` and releasing it, so another
//! process may take it before the node binds it; callers retry with fresh
//! ports when that happens. Within this process the race is avoided: ports
//! handed out recently are not handed out again.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

use anyhow::{bail, ensure, Context, Result};

/// How many handed-out ports are remembered. Linux's ephemeral range holds
/// about 28 000 ports, so this excludes a small share of it.
const RECENT_PORTS_MAX: usize = 4096;

/// How many ports one call may ask for.
const PORTS_PER_CALL_MAX: usize = 256;

/// Ports handed out recently by this process, oldest first.
static RECENT: Mutex<VecDeque<u16>> = Mutex::new(VecDeque::new());

/// One free port on 127.0.0.1. See [`free_ports`].
pub fn free_port() -> Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `count` distinct free ports on 127.0.0.1, none of them handed out by an
/// earlier call in this process (among the last 4096).
///
/// All `count` sockets are held until every port is known, which is what
/// makes them distinct; they are released before returning, so the ports
/// are free but not reserved.
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    ensure!(
        (1..=PORTS_PER_CALL_MAX).contains(&count),
        "asked for {count} ports; between 1 and {PORTS_PER_CALL_MAX} can be allocated at once"
    );
    let mut recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    let mut ports = Vec::with_capacity(count);
    // Every socket stays bound until the end: the held ones keep the ports
    // distinct, the skipped ones make the kernel offer another port.
    let mut bound = Vec::new();
    let attempts_max = count * 4 + 16;
    for _ in 0..attempts_max {
        if ports.len() == count {
            break;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let port = listener.local_addr().context("local address")?.port();
        if !recent.contains(&port) {
            ports.push(port);
        }
        bound.push(listener);
    }
    if ports.len() < count {
        bail!(
            "found only {} of {count} free ports in {attempts_max} attempts",
            ports.len()
        );
    }
    for &port in &ports {
        if recent.len() == RECENT_PORTS_MAX {
            recent.pop_front();
        }
        recent.push_back(port);
    }
    drop(bound);
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ports_are_distinct_within_and_across_calls() {
        let first = free_ports(40).expect("ports");
        let second = free_ports(40).expect("ports");
        let single = free_port().expect("port");
        let all: HashSet<u16> = first
            .iter()
            .chain(&second)
            .chain([&single])
            .copied()
            .collect();
        assert_eq!(all.len(), 81, "{first:?} {second:?} {single}");
        assert!(!all.contains(&0));
    }

    #[test]
    fn ports_are_released() {
        for port in free_ports(8).expect("ports") {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .unwrap_or_else(|err| panic!("port {port} is free again: {err}"));
        }
    }

    #[test]
    fn counts_are_bounded() {
        assert!(free_ports(0).is_err());
        assert!(free_ports(PORTS_PER_CALL_MAX + 1).is_err());
    }
}
