//! One server's check thread.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use super::probe::CheckSpec;
use super::{CheckResult, Key};

/// One server's check thread: a probe every interval (at once when the
/// last one took longer), each result sent to the controller, until told
/// to stop (or the controller is gone).
pub(super) fn check_loop(
    spec: CheckSpec,
    key: Key,
    epoch: u64,
    label: String,
    tx: SyncSender<CheckResult>,
    stop: Receiver<()>,
) {
    loop {
        let start = Instant::now();
        let mut outcome = spec.probe();
        // keepalived's retry: a failed probe is tried again, the round
        // fails (one towards `fall`) only when every try failed
        let mut tries = 0;
        while tries < spec.retry {
            let Err(why) = &outcome.result else { break };
            tries += 1;
            tracing::debug!(
                "health check of {label} failed, retry {tries}/{} in {} ms: {why}",
                spec.retry,
                spec.delay_before_retry.as_millis()
            );
            match stop.recv_timeout(spec.delay_before_retry) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            outcome = spec.probe();
        }
        if tries > 0 {
            let note = format!(" (try {} of {})", tries + 1, spec.retry + 1);
            match &mut outcome.result {
                Ok(t) | Err(t) => t.push_str(&note),
            }
        }
        let weight = outcome.weight;
        let (ok, text) = match outcome.result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        // "health check of 198.19.0.11:8080 (tcp:198.18.0.100:80) passed: ..."
        tracing::debug!(
            "health check of {label} {}: {text}",
            if ok { "passed" } else { "failed" }
        );
        let msg = CheckResult {
            key,
            epoch,
            ok,
            text,
            weight,
            at: SystemTime::now(),
        };
        if tx.send(msg).is_err() {
            return;
        }
        let next = start + spec.interval;
        let wait = next.saturating_duration_since(Instant::now());
        match stop.recv_timeout(wait.max(Duration::from_millis(1))) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
