//! Bounded polling for conditions the kit cannot observe directly, such as a
//! cluster answering a metadata request through a client.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Pause between two checks of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` until it returns `true` or `timeout` has passed. It is
/// checked at least once and once more at the deadline, so a condition that
/// holds by then is never reported as a timeout.
///
/// ```
/// use std::time::Duration;
/// use fjord_testkit::wait_until;
///
/// let mut checks = 0;
/// wait_until(Duration::from_secs(5), || {
///     checks += 1;
///     checks == 3
/// })
/// .expect("holds on the third check");
/// ```
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut checks: u64 = 0;
    loop {
        checks += 1;
        if condition() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("condition did not hold within {timeout:?} ({checks} checks)");
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let mut checks = 0;
        wait_until(Duration::from_secs(10), || {
            checks += 1;
            checks == 4
        })
        .expect("holds");
        assert_eq!(checks, 4);
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let started = Instant::now();
        let mut checks = 0;
        let err = wait_until(Duration::from_millis(200), || {
            checks += 1;
            false
        })
        .expect_err("never holds");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert!(checks >= 2, "checked again at the deadline: {checks}");
        assert!(
            err.to_string().contains("did not hold within 200ms"),
            "{err}"
        );
    }
}
