//! A loopback TCP proxy standing for one network link, which a test can cut
//! and restore.
//!
//! ```text
//!   client ──> 127.0.0.1:<proxy> ══ pump ══> target
//!                     │   <══ pump ══
//!                cut(): shut down every open pair; accept new
//!                       connections and close them at once
//! ```
//!
//! While cut, a new connection is accepted and closed immediately rather than
//! held open without forwarding. Both choices stop every byte, which is what
//! a partition test needs; closing is chosen because the peer learns of the
//! failure at once and goes through its reconnect path, so a test waits for
//! the system's own failure detection (elections, session timeouts) instead
//! of for client connection-setup timeouts (Kafka's
//! `socket.connection.setup.timeout.ms` grows to 30 s), and because held
//! sockets would pile up for as long as the cut lasts. What it does not model
//! is a silent link where a sender's writes vanish with no error.
//!
//! The listening socket stays bound while cut, so the proxy keeps its port
//! and nothing else can take it in the meantime.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long forwarding waits for the target to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Upper bound on connections handled at once; more are closed on accept.
const CONNECTIONS_MAX: usize = 256;

/// Size of the copy buffer of each direction.
const PUMP_BUFFER_BYTES: usize = 16 * 1024;

/// How long drop waits for the accept thread to finish.
const ACCEPTOR_JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP proxy on 127.0.0.1 forwarding every connection to one target.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::{TcpListener, TcpStream};
/// use fjord_testkit::LinkProxy;
///
/// let target = TcpListener::bind("127.0.0.1:0").unwrap();
/// let proxy = LinkProxy::start(target.local_addr().unwrap()).unwrap();
/// let mut client = TcpStream::connect(proxy.address()).unwrap();
/// let (mut server, _) = target.accept().unwrap();
/// client.write_all(b"ping").unwrap();
/// let mut ping = [0; 4];
/// server.read_exact(&mut ping).unwrap();
/// assert_eq!(&ping, b"ping");
///
/// proxy.cut();
/// let mut rest = Vec::new();
/// // The open connection is closed at both ends.
/// assert_eq!(server.read_to_end(&mut rest).unwrap(), 0);
/// proxy.restore();
/// ```
#[derive(Debug)]
pub struct LinkProxy {
    address: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    state: Mutex<LinkState>,
    closing: AtomicBool,
    connections_seen: AtomicU64,
    /// Connections accepted and not yet finished, counted against
    /// [`CONNECTIONS_MAX`].
    handlers: AtomicUsize,
}

#[derive(Debug, Default)]
struct LinkState {
    cut: bool,
    next_id: u64,
    /// Forwarded pairs: the client side and the target side.
    open: HashMap<u64, (TcpStream, TcpStream)>,
}

impl LinkProxy {
    /// Binds a proxy on an ephemeral 127.0.0.1 port that forwards to `target`.
    pub fn start(target: SocketAddr) -> Result<LinkProxy> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind the link proxy")?;
        let address = listener.local_addr().context("link proxy address")?;
        let shared = Arc::new(Shared {
            target,
            state: Mutex::new(LinkState::default()),
            closing: AtomicBool::new(false),
            connections_seen: AtomicU64::new(0),
            handlers: AtomicUsize::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("link-proxy-{}", address.port()))
                .spawn(move || accept_loop(&listener, &shared))
                .context("spawn the link proxy thread")?
        };
        Ok(LinkProxy {
            address,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where clients connect: `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where connections are forwarded.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Cuts the link: every open connection is shut down at both ends, and
    /// until [`LinkProxy::restore`] new connections are accepted and closed
    /// at once, with no byte forwarded in either direction.
    pub fn cut(&self) {
        let mut state = self.shared.lock();
        state.cut = true;
        for (_, (client, upstream)) in state.open.drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }

    /// Restores the link: new connections are forwarded again. Connections
    /// closed by the cut stay closed; peers reconnect on their own.
    pub fn restore(&self) {
        self.shared.lock().cut = false;
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.lock().cut
    }

    /// Connections accepted since the start, including those closed because
    /// the link was cut or the target refused.
    pub fn connections_seen(&self) -> u64 {
        self.shared.connections_seen.load(Ordering::SeqCst)
    }

    /// Connections currently forwarded.
    pub fn connections_open(&self) -> usize {
        self.shared.lock().open.len()
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.cut();
        // The accept thread is blocked in accept(); a connection wakes it to
        // see the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let deadline = Instant::now() + ACCEPTOR_JOIN_TIMEOUT;
            while !acceptor.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            if acceptor.is_finished() {
                let _ = acceptor.join();
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        // Every update is a single field assignment or map operation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        shared.connections_seen.fetch_add(1, Ordering::SeqCst);
        if shared.lock().cut {
            drop(client);
            continue;
        }
        if shared.handlers.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            shared.handlers.fetch_sub(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let handler_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("link-proxy-conn".into())
            .spawn(move || {
                forward(client, &handler_shared);
                handler_shared.handlers.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.handlers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Connects to the target and copies both directions until both end. The
/// connect happens off the accept thread, so a target that is slow to accept
/// (a paused process with a full backlog) does not stall other connections.
fn forward(client: TcpStream, shared: &Shared) {
    let Ok(upstream) = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT) else {
        // The target is down: the client sees its connection closed, as it
        // would see a refused connection to the target itself.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_handle), Ok(upstream_handle)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let id = {
        let mut state = shared.lock();
        // Registered under the same lock that cut() takes, so a connection
        // is either shut down by the cut or sees the cut here.
        if state.cut || shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, (client_handle, upstream_handle));
        id
    };
    let reverse = match (client.try_clone(), upstream.try_clone()) {
        (Ok(client), Ok(upstream)) => thread::Builder::new()
            .name("link-proxy-pump".into())
            .spawn(move || pump(upstream, client))
            .ok(),
        _ => None,
    };
    if reverse.is_none() {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }
    pump(client, upstream);
    if let Some(reverse) = reverse {
        let _ = reverse.join();
    }
    shared.lock().open.remove(&id);
}

/// Copies `from` to `to`. End of file is passed on as a half close; an error
/// on either side closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; PUMP_BUFFER_BYTES];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
#[path = "link_proxy_test.rs"]
mod tests;
