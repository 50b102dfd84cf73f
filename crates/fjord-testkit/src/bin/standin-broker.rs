//! A stand-in for `fjord server`, so the cluster harness can be tested
//! without a clustered broker.
//!
//! It takes the command line the harness builds (`server --override k=v…`),
//! logs every override as `override k=v`, binds every listener named in
//! `listeners`, and logs `listening on PLAINTEXT://…` like `fjord server`
//! (a node without a PLAINTEXT listener, like a controller-only node, logs
//! only `listening on CONTROLLER://…`).
//! Every 100 ms it connects to every other entry of
//! `controller.quorum.voters` and sends `hello from node <id>`; a CONTROLLER
//! listener logs each greeting as `heard from node <id> on CONTROLLER`, so a
//! test can see which controller links carry traffic. Each start counts
//! itself in `<log.dirs>/starts`, so a test can see the directory survive a
//! restart.
//!
//! With `standin.fail.once.file=<path>` it fails the way a node whose port
//! was taken fails (logging "Address already in use" and exiting 1) if
//! `<path>` does not exist yet, creating it, so only the first start fails.
//! SIGTERM ends it through the default action.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::thread;
use std::time::Duration;

const GREETING_INTERVAL: Duration = Duration::from_millis(100);
const GREETING_TIMEOUT: Duration = Duration::from_millis(500);

fn main() {
    let overrides = parse_args();
    let config: BTreeMap<&str, &str> = overrides
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    for (key, value) in &overrides {
        eprintln!("INFO standin: override {key}={value}");
    }
    let required = |key: &str| -> &str {
        config
            .get(key)
            .copied()
            .unwrap_or_else(|| fail(&format!("missing --override {key}=…")))
    };
    let node_id = required("node.id");
    if let Some(marker) = config.get("standin.fail.once.file") {
        if !Path::new(marker).exists() {
            std::fs::write(marker, b"").unwrap_or_else(|err| fail(&format!("{marker}: {err}")));
            fail("bind: Address already in use (os error 98)");
        }
    }

    let data_dir = PathBuf::from(required("log.dirs"));
    let starts = count_start(&data_dir);
    eprintln!(
        "INFO standin: node {node_id} start #{starts} in {}",
        data_dir.display()
    );

    let mut plaintext = None;
    for listener in required("listeners").split(',') {
        let (name, address) = listener
            .split_once("://")
            .unwrap_or_else(|| fail(&format!("listener without a name: {listener}")));
        let socket = TcpListener::bind(address)
            .unwrap_or_else(|err| fail(&format!("bind {name} {address}: {err}")));
        let bound = socket.local_addr().expect("bound address");
        match name {
            "PLAINTEXT" => plaintext = Some(bound),
            "CONTROLLER" => eprintln!("INFO standin: listening on CONTROLLER://{bound}"),
            _ => {}
        }
        let greetings = name == "CONTROLLER";
        thread::spawn(move || serve(&socket, greetings));
    }

    let peers: Vec<SocketAddr> = config
        .get("controller.quorum.voters")
        .map(|voters| {
            voters
                .split(',')
                .filter_map(|voter| voter.split_once('@'))
                .filter(|(id, _)| *id != node_id)
                .map(|(_, address)| {
                    address
                        .parse()
                        .unwrap_or_else(|err| fail(&format!("voter {address}: {err}")))
                })
                .collect()
        })
        .unwrap_or_default();
    let greeting = format!("hello from node {node_id}\n");
    thread::spawn(move || loop {
        for peer in &peers {
            if let Ok(mut stream) = TcpStream::connect_timeout(peer, GREETING_TIMEOUT) {
                let _ = stream.write_all(greeting.as_bytes());
            }
        }
        thread::sleep(GREETING_INTERVAL);
    });

    if let Some(plaintext) = plaintext {
        eprintln!(
            "INFO standin: listening on PLAINTEXT://{plaintext}, data in {}",
            data_dir.display()
        );
    }
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// The `--override key=value` pairs after `server`, in order.
fn parse_args() -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("server") {
        fail("usage: standin-broker server [--override key=value]…");
    }
    let mut overrides = Vec::new();
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        if arg != "--override" {
            fail(&format!("unexpected argument {arg}"));
        }
        let pair = rest
            .next()
            .unwrap_or_else(|| fail("--override needs key=value"));
        let (key, value) = pair
            .split_once('=')
            .unwrap_or_else(|| fail(&format!("--override {pair}: expected key=value")));
        overrides.push((key.to_string(), value.to_string()));
    }
    overrides
}

/// Increments `<data_dir>/starts` and returns the new count.
fn count_start(data_dir: &Path) -> u32 {
    std::fs::create_dir_all(data_dir)
        .unwrap_or_else(|err| fail(&format!("{}: {err}", data_dir.display())));
    let path = data_dir.join("starts");
    let previous: u32 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    std::fs::write(&path, (previous + 1).to_string())
        .unwrap_or_else(|err| fail(&format!("{}: {err}", path.display())));
    previous + 1
}

/// Accepts connections; on a CONTROLLER listener, logs the greeting line
/// each one carries.
fn serve(listener: &TcpListener, greetings: bool) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if !greetings {
            continue;
        }
        thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_ok() {
                if let Some(id) = line.trim_end().strip_prefix("hello from node ") {
                    eprintln!("INFO standin: heard from node {id} on CONTROLLER");
                }
            }
        });
    }
}

fn fail(message: &str) -> ! {
    eprintln!("ERROR standin: {message}");
    exit(1);
}
