use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::*;

/// An echo server on 127.0.0.1 that counts the connections it accepted. It
/// lives until the test process exits.
fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo server");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                let Ok(mut reader) = stream.try_clone() else {
                    return;
                };
                let _ = std::io::copy(&mut reader, &mut stream);
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    (address, accepted)
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect to proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
}

fn round_trip(stream: &mut TcpStream, payload: &[u8]) {
    stream.write_all(payload).expect("write");
    let mut echoed = vec![0; payload.len()];
    stream.read_exact(&mut echoed).expect("read the echo");
    assert_eq!(echoed, payload);
}

/// The peer closed the connection: end of file or a reset, not a timeout
/// and not data.
fn assert_closed(stream: &mut TcpStream) {
    let mut buffer = [0; 64];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Ok(n) => panic!("expected a closed connection, read {:?}", &buffer[..n]),
        Err(err) => assert!(
            matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ),
            "expected a closed connection, got {err} ({:?})",
            err.kind()
        ),
    }
}

#[test]
fn forwards_both_directions_and_half_closes() {
    let (echo, _) = echo_server();
    let proxy = LinkProxy::start(echo).expect("proxy");
    assert_eq!(proxy.target(), echo);
    assert_eq!(proxy.address().ip().to_string(), "127.0.0.1");
    let mut stream = connect(proxy.address());
    round_trip(&mut stream, b"hello");
    round_trip(&mut stream, &vec![7u8; 3 * PUMP_BUFFER_BYTES + 5]);
    stream.write_all(b"last").expect("write");
    stream.shutdown(Shutdown::Write).expect("half close");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("read to the end");
    assert_eq!(rest, b"last", "the echo arrives after our half close");
    assert_eq!(proxy.connections_seen(), 1);
}

#[test]
fn cut_closes_open_connections_and_new_ones_carry_nothing_until_restored() {
    let (echo, echo_accepted) = echo_server();
    let proxy = LinkProxy::start(echo).expect("proxy");
    let mut before = connect(proxy.address());
    round_trip(&mut before, b"before the cut");
    assert_eq!(proxy.connections_open(), 1);
    assert!(!proxy.is_cut());

    proxy.cut();
    assert!(proxy.is_cut());
    assert_eq!(proxy.connections_open(), 0);
    assert_closed(&mut before);

    let mut during = connect(proxy.address());
    // The write may succeed into the socket buffer; nothing comes back.
    let _ = during.write_all(b"during the cut");
    assert_closed(&mut during);
    assert_eq!(proxy.connections_seen(), 2, "the proxy saw the connection");
    assert_eq!(
        echo_accepted.load(Ordering::SeqCst),
        1,
        "a connection during the cut never reaches the target"
    );

    proxy.restore();
    assert!(!proxy.is_cut());
    let mut after = connect(proxy.address());
    round_trip(&mut after, b"after the restore");
    assert_eq!(proxy.connections_seen(), 3);
    assert_eq!(echo_accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn a_dead_target_closes_the_client_connection() {
    let target = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let proxy = LinkProxy::start(target).expect("proxy");
    let mut stream = connect(proxy.address());
    assert_closed(&mut stream);
    assert_eq!(proxy.connections_seen(), 1);
    assert_eq!(proxy.connections_open(), 0);
}

#[test]
fn drop_closes_connections_and_the_port() {
    let (echo, _) = echo_server();
    let proxy = LinkProxy::start(echo).expect("proxy");
    let address = proxy.address();
    let mut stream = connect(address);
    round_trip(&mut stream, b"x");
    drop(proxy);
    assert_closed(&mut stream);
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err(),
        "nothing listens on the proxy port after drop"
    );
}
