//! Exercises the process handling of `BrokerProcess` against a stand-in
//! broker (a small Python script that binds the listener, logs the listening
//! line like `fjord server` does, and exits 0 on SIGTERM).

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fjord_testkit::BrokerProcess;

const FAKE_BROKER: &str = r#"#!/usr/bin/env python3
import signal, socket, sys, time
args = sys.argv[1:]
assert args[0] == "server", args
overrides = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--override")
host, port = overrides["listeners"].split("//", 1)[1].rsplit(":", 1)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, int(port)))
listener.listen()
print("noise before the listening line", flush=True)
print("\x1b[32m INFO\x1b[0m fjord: listening on PLAINTEXT://%s:%d data in %s"
      % (host, listener.getsockname()[1], overrides["log.dirs"]), file=sys.stderr, flush=True)
print("overrides: %s" % sorted(overrides.items()), file=sys.stderr, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"#;

fn fake_broker() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fake-fjord");
    std::fs::write(&path, FAKE_BROKER).expect("write fake broker");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (dir, path)
}

fn python_available() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn start_stop_restart_kill_and_drop() {
    if !python_available() {
        eprintln!("python3 not available; skipping");
        return;
    }
    let (_dir, binary) = fake_broker();
    let mut broker = BrokerProcess::builder(&binary)
        .override_config("num.partitions", "3")
        .override_config("listeners", "ignored")
        .start()
        .expect("start");
    let address = broker.address();
    assert_eq!(address.ip().to_string(), "127.0.0.1");
    assert_ne!(address.port(), 0);
    assert_eq!(broker.bootstrap(), format!("127.0.0.1:{}", address.port()));
    TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    // Lines after the listening line arrive asynchronously through the drains.
    let deadline = Instant::now() + Duration::from_secs(5);
    let complete = |logs: &str| logs.contains("overrides:") && logs.contains("noise before");
    while !complete(&broker.logs()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let logs = broker.logs();
    assert!(
        logs.contains("listening on PLAINTEXT://127.0.0.1:"),
        "{logs}"
    );
    assert!(logs.contains("('num.partitions', '3')"), "{logs}");
    assert!(
        logs.contains(&broker.data_dir().display().to_string()),
        "{logs}"
    );
    assert!(
        logs.contains("noise before"),
        "stdout is drained too: {logs}"
    );
    assert!(!logs.contains('\u{1b}'), "colors are stripped");

    let status = broker.stop().expect("stop");
    assert_eq!(status.code(), Some(0));
    assert!(!broker.is_running());

    broker.restart().expect("restart");
    assert_eq!(broker.address(), address, "same port after restart");
    TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect after restart");

    broker.kill().expect("kill");
    assert!(!broker.is_running());
    broker.restart().expect("restart after kill");
    assert_eq!(broker.address(), address);
    let pid = broker.pid().expect("running");
    let data_dir = broker.data_dir().to_path_buf();
    assert!(data_dir.is_dir());
    drop(broker);
    assert!(!data_dir.exists(), "data dir removed on drop");
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "process gone after drop"
    );
}

#[test]
fn a_broker_that_exits_early_fails_start_with_its_log() {
    let err = BrokerProcess::start("/bin/false").expect_err("must fail");
    assert!(
        format!("{err:#}").contains("exited before listening"),
        "{err:#}"
    );
}

#[test]
fn a_missing_binary_fails_start() {
    assert!(BrokerProcess::start("/nonexistent/fjord").is_err());
}
