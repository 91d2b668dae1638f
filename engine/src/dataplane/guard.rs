//! What a worker panic does. A panic must not unwind across the EAL's
//! `extern "C"` lcore entry (undefined behaviour; Rust aborts there), and
//! an abort with nothing in the log leaves the operator guessing. So:
//!
//! - [`install_panic_hook`] logs every panic through `tracing` with its
//!   thread and source location before the default hook runs. Release
//!   builds use `panic = "abort"`: the process then dies of SIGABRT
//!   (non-zero) right after that log line.
//! - [`run_guarded`] runs a worker under `catch_unwind` (unwinding builds:
//!   tests, debug): a panic is logged, marks the run failed and stops the
//!   other workers; the control thread then shuts down and exits non-zero.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the logging panic hook once (the previous hook still runs
/// after it, so stderr keeps Rust's usual message and backtrace hint).
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "unknown".to_string());
            tracing::error!(
                thread = thread.name().unwrap_or("<unnamed>"),
                %location,
                "panic: {}",
                message(info.payload())
            );
            prev(info);
        }));
    });
}

/// The text of a panic payload (`panic!` with a literal or a format).
pub fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-text panic payload)"
    }
}

/// Runs worker `id`'s loop; returns 0, or -1 after a panic, which also
/// sets `failed` and `stop` (the other workers end their loops).
pub fn run_guarded(id: usize, failed: &AtomicBool, stop: &AtomicBool, f: impl FnOnce()) -> i32 {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => 0,
        Err(p) => {
            tracing::error!(worker = id, "worker stopped by a panic: {}", message(&*p));
            failed.store(true, Ordering::Release);
            stop.store(true, Ordering::Release);
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_worker_fails_the_run_and_stops_the_rest() {
        install_panic_hook();
        let (failed, stop) = (AtomicBool::new(false), AtomicBool::new(false));
        assert_eq!(run_guarded(0, &failed, &stop, || {}), 0);
        assert!(!failed.load(Ordering::Acquire) && !stop.load(Ordering::Acquire));
        let n = 7;
        let rc = run_guarded(1, &failed, &stop, || panic!("bad frame {n}"));
        assert_eq!(rc, -1);
        assert!(failed.load(Ordering::Acquire));
        assert!(stop.load(Ordering::Acquire));
    }

    #[test]
    fn payload_text() {
        let p = panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(message(&*p), "plain");
        let p = panic::catch_unwind(|| panic!("{}", 42)).unwrap_err();
        assert_eq!(message(&*p), "42");
        let p = panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(message(&*p), "(non-text panic payload)");
    }
}
