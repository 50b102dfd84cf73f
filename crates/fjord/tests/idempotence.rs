//! Idempotent producer with a real client: librdkafka (`enable.idempotence=true`) through a
//! proxy that cuts connections mid-stream, so in-flight produce requests are retried; every
//! record must land exactly once and in order.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use fjord_testkit::BrokerProcess;
use rdkafka::topic_partition_list::Offset;

/// A loopback TCP proxy that closes each connection after a pseudo-random number of bytes
/// from the client, up to `max_cuts` times in total.
struct CuttingProxy {
    address: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(max_cuts: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("proxy address");
        let upstream = Arc::new(Mutex::new(None::<SocketAddr>));
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let seed = Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15));
        let (up, c, s) = (upstream.clone(), cuts.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let Some(target) = *up.lock().unwrap() else {
                    continue;
                };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                // xorshift: a different budget for every connection, 50 KB to 550 KB.
                let mut x = seed.fetch_add(0x2545_f491_4f6c_dd1d, Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let cut_after = if c.load(Ordering::Relaxed) < max_cuts {
                    Some(50_000 + (x % 500_000) as usize)
                } else {
                    None
                };
                pump(client, server, cut_after, c.clone(), max_cuts);
            }
        });
        CuttingProxy {
            address,
            upstream,
            cuts,
            stop,
        }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(
    client: TcpStream,
    server: TcpStream,
    cut_after: Option<usize>,
    cuts: Arc<AtomicUsize>,
    max_cuts: usize,
) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server, client);
    let (c_close, s_close) = (c_write.try_clone().unwrap(), s_write.try_clone().unwrap());
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut forwarded = 0usize;
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if s_write.write_all(&buf[..n]).is_err() {
                break;
            }
            forwarded += n;
            if cut_after.is_some_and(|limit| forwarded >= limit)
                && cuts.fetch_add(1, Ordering::Relaxed) < max_cuts
            {
                // Let the broker take the request, then lose the response.
                thread::sleep(Duration::from_millis(20));
                break;
            }
        }
        let _ = c_close.shutdown(Shutdown::Both);
        let _ = s_close.shutdown(Shutdown::Both);
    });
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if c_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = s_read.shutdown(Shutdown::Both);
    });
}

fn records_with_sequence(count: usize, partitions: i32) -> Vec<TestRecord> {
    let now = now_ms();
    (0..count)
        .map(|i| TestRecord {
            partition: Some((i as i32) % partitions),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value-{i:08}-{}", "x".repeat(200)).into_bytes()),
            headers: Vec::new(),
            timestamp_ms: now,
        })
        .collect()
}

/// Every record exactly once per partition, in production order.
fn assert_exactly_once_in_order(
    bootstrap: &str,
    topic: &str,
    sent: &[TestRecord],
    partitions: i32,
) {
    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    let got = consume(
        bootstrap,
        topic,
        &starts,
        sent.len(),
        Duration::from_secs(60),
    );
    for p in 0..partitions {
        let expected: Vec<&Vec<u8>> = sent
            .iter()
            .filter(|r| r.partition == Some(p))
            .map(|r| r.value.as_ref().expect("value"))
            .collect();
        let mut seen: Vec<(i64, &Vec<u8>)> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| (r.offset, r.value.as_ref().expect("value")))
            .collect();
        seen.sort_by_key(|(o, _)| *o);
        let values: Vec<&Vec<u8>> = seen.iter().map(|(_, v)| *v).collect();
        assert_eq!(
            values.len(),
            expected.len(),
            "partition {p}: {} records stored, {} sent",
            values.len(),
            expected.len()
        );
        assert!(
            values == expected,
            "partition {p}: records duplicated, lost or reordered"
        );
    }
}

#[test]
fn given_idempotent_producer_when_connections_are_cut_should_write_no_duplicates_or_gaps() {
    let proxy = CuttingProxy::start(10);
    let advertised = format!("PLAINTEXT://{}", proxy.address);
    let broker = BrokerProcess::builder(fjord_bin())
        .override_config("advertised.listeners", &advertised)
        .start()
        .expect("broker starts");
    *proxy.upstream.lock().unwrap() = Some(broker.address());
    let via_proxy = proxy.address.to_string();
    create_topic(&broker.bootstrap(), "idem", 3);

    let sent = records_with_sequence(30_000, 3);
    produce_ok(
        &via_proxy,
        "idem",
        &sent,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("batch.size", "65536"),
            ("max.in.flight.requests.per.connection", "5"),
            ("retry.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "500"),
            ("message.timeout.ms", "120000"),
        ],
        Duration::from_secs(120),
    );
    assert!(
        proxy.cuts.load(Ordering::Relaxed) > 0,
        "the proxy must have cut at least one connection"
    );
    assert_exactly_once_in_order(&broker.bootstrap(), "idem", &sent, 3);
}

#[test]
fn given_idempotent_producer_when_broker_restarts_should_continue_its_sequence() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let mut broker = start_broker(&[]);
    create_topic(&broker.bootstrap(), "idem-restart", 1);
    let producer: BaseProducer = producer_config(
        &broker.bootstrap(),
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "2"),
        ],
    )
    .create()
    .expect("producer");
    let sent = records_with_sequence(6_000, 1);
    let send = |records: &[TestRecord]| {
        for r in records {
            let value = r.value.as_ref().expect("value");
            let key = r.key.as_ref().expect("key");
            let mut record = BaseRecord::to("idem-restart")
                .key(key)
                .payload(value)
                .partition(0);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("every record acknowledged");
    };
    send(&sent[..3_000]);
    broker.kill().expect("kill -9");
    restart(&mut broker);
    // The same producer (same id, continuing sequence numbers) carries on after the restart:
    // the broker rebuilt its state from the log and accepts the next sequence.
    send(&sent[3_000..]);
    assert_exactly_once_in_order(&broker.bootstrap(), "idem-restart", &sent, 1);
}
