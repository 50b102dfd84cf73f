use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use super::*;
use crate::wait_until;

fn sleeper() -> Command {
    let mut command = Command::new("sleep");
    command.arg("600");
    command
}

fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

fn proc_exists(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[test]
fn pause_resume_kill_restart_and_drop() {
    let process = ManagedProcess::new("sleeper");
    let pid = process.spawn(sleeper()).expect("spawn");
    assert!(process.is_running());
    assert_eq!(process.pid(), Some(pid));
    assert!(!process.is_paused());

    process.pause().expect("pause");
    assert!(process.is_paused());
    assert!(process.is_running(), "a paused process is alive");
    assert_eq!(process_state(pid), Some('T'));

    process.resume().expect("resume");
    assert!(!process.is_paused());
    let state = process_state(pid).expect("alive");
    assert!(matches!(state, 'S' | 'R'), "state {state:?}");

    let status = process.kill().expect("kill");
    assert_eq!(status.signal(), Some(9));
    assert_eq!(process.last_exit_status(), Some(status));
    assert!(!process.is_running());
    assert_eq!(process.pid(), None);
    assert!(!proc_exists(pid), "killed and reaped");
    assert!(process.kill().is_err(), "nothing left to kill");
    assert!(process.pause().is_err(), "nothing left to pause");
    assert!(process.resume().is_err(), "nothing left to resume");

    let restarted = process.spawn(sleeper()).expect("spawn again");
    assert!(process.is_running());
    assert_eq!(process.starts(), 2);
    assert!(
        process.spawn(sleeper()).is_err(),
        "one run at a time: a second spawn while alive is refused"
    );
    let logs = process.logs();
    assert!(
        logs.contains("[testkit] sleeper: start #1: sleep"),
        "{logs}"
    );
    assert!(
        logs.contains("[testkit] sleeper: paused with SIGSTOP"),
        "{logs}"
    );
    assert!(
        logs.contains("[testkit] sleeper: killed with SIGKILL"),
        "{logs}"
    );
    assert!(
        logs.contains("[testkit] sleeper: start #2: sleep"),
        "{logs}"
    );

    process.pause().expect("pause the second run");
    drop(process);
    assert!(!proc_exists(restarted), "drop ends a paused process");
}

#[test]
fn stop_sends_sigterm_and_continues_a_paused_process() {
    let process = ManagedProcess::new("sleeper");
    let pid = process.spawn(sleeper()).expect("spawn");
    process.pause().expect("pause");
    let status = process.stop(Duration::from_secs(10)).expect("stop");
    assert_eq!(status.signal(), Some(15), "ended by SIGTERM, not SIGKILL");
    assert!(!proc_exists(pid));
    assert!(
        process.stop(Duration::from_secs(1)).is_err(),
        "already stopped"
    );
}

#[test]
fn stop_kills_a_process_that_ignores_sigterm() {
    let process = ManagedProcess::new("stubborn");
    // An ignored signal stays ignored across exec.
    let pid = process
        .spawn(shell("trap '' TERM; echo ready; exec sleep 600"))
        .expect("spawn");
    process
        .wait_for_line(Duration::from_secs(10), |line| {
            (line == "ready").then_some(())
        })
        .expect("ready");
    let started = Instant::now();
    let err = process
        .stop(Duration::from_millis(300))
        .expect_err("SIGTERM is ignored");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(format!("{err:#}").contains("did not exit"), "{err:#}");
    assert_eq!(process.last_exit_status().and_then(|s| s.signal()), Some(9));
    assert!(!proc_exists(pid));
}

#[test]
fn wait_for_line_reads_both_streams() {
    let process = ManagedProcess::new("talker");
    process
        .spawn(shell("echo to-stdout; echo to-stderr >&2; exec sleep 600"))
        .expect("spawn");
    for wanted in ["to-stdout", "to-stderr"] {
        let line = process
            .wait_for_line(Duration::from_secs(10), |line| {
                (line == wanted).then(|| line.to_string())
            })
            .expect(wanted);
        assert_eq!(line, wanted);
    }
    let err = process
        .wait_for_line(Duration::from_millis(200), |line| {
            (line == "never").then_some(())
        })
        .expect_err("times out");
    assert!(format!("{err:#}").contains("did not log"), "{err:#}");
    assert!(
        process.is_running(),
        "a timed-out wait leaves the process alone"
    );
}

#[test]
fn wait_for_line_finds_last_words_and_reports_an_exit() {
    let process = ManagedProcess::new("brief");
    process
        .spawn(shell("echo last-words; exit 3"))
        .expect("spawn");
    process
        .wait_for_line(Duration::from_secs(10), |line| {
            (line == "last-words").then_some(())
        })
        .expect("a line written just before the exit is still seen");
    wait_until(Duration::from_secs(10), || !process.is_running()).expect("exits");
    assert_eq!(process.last_exit_status().and_then(|s| s.code()), Some(3));

    process
        .spawn(shell("echo something-else; exit 4"))
        .expect("spawn again after the exit");
    let err = process
        .wait_for_line(Duration::from_secs(10), |line| {
            (line == "last-words").then_some(())
        })
        .expect_err("only the current run counts, and it exits");
    let err = format!("{err:#}");
    assert!(err.contains("exited"), "{err}");
    assert!(
        err.contains("something-else"),
        "the error carries the log: {err}"
    );
    assert_eq!(process.last_exit_status().and_then(|s| s.code()), Some(4));
}

#[test]
fn an_exit_on_its_own_is_noticed_and_kept() {
    let process = ManagedProcess::new("quitter");
    process.spawn(shell("exit 3")).expect("spawn");
    wait_until(Duration::from_secs(10), || !process.is_running()).expect("exits");
    assert_eq!(process.last_exit_status().and_then(|s| s.code()), Some(3));
    assert!(
        process
            .logs()
            .contains("[testkit] quitter: exited on its own"),
        "{}",
        process.logs()
    );
    assert!(process.stop(Duration::from_secs(1)).is_err());
}

#[test]
fn a_missing_program_fails_to_spawn() {
    let process = ManagedProcess::new("ghost");
    let err = process
        .spawn(Command::new("/nonexistent/program"))
        .expect_err("no such file");
    assert!(
        format!("{err:#}").contains("spawn /nonexistent/program"),
        "{err:#}"
    );
    assert!(!process.is_running());
}

#[test]
fn process_state_reads_proc() {
    assert!(matches!(process_state(std::process::id()), Some('R' | 'S')));
    assert_eq!(process_state(u32::MAX), None);
}
