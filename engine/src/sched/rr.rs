//! rr: round robin (`ip_vs_rr.c`).
//!
//! IPVS keeps a pointer to the last picked server (initially the list head)
//! and, under a spin lock, scans forward from the server after it, wrapping
//! once, for the first server with weight > 0 that is not overloaded. On
//! failure the pointer does not move.
//!
//! Here the pointer is an `AtomicUsize` (`HEAD` = the list head). A worker
//! computes its pick from the cursor it loaded and publishes it with a
//! compare-and-swap; if another worker moved the cursor meanwhile, it
//! retries from the new one. The picks of all workers together are therefore
//! exactly the sequence one IPVS instance would produce (linearizable), with
//! no lock.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{is_candidate, Dests, Pick, SchedInput, SchedKind};

const HEAD: usize = usize::MAX;

pub(super) struct Rr {
    cursor: AtomicUsize,
}

impl Rr {
    pub(super) fn new() -> Rr {
        Rr {
            cursor: AtomicUsize::new(HEAD),
        }
    }
}

/// The first candidate after `last` (wrapping once), or none.
fn scan<D: Dests + ?Sized>(d: &D, last: usize) -> Option<usize> {
    let n = d.len();
    if last >= n {
        // At the head: one pass over the whole list.
        return (0..n).find(|&i| is_candidate(d, i));
    }
    (last + 1..n).chain(0..=last).find(|&i| is_candidate(d, i))
}

impl Pick for Rr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, _input: &SchedInput) -> Option<usize> {
        let mut cur = self.cursor.load(Ordering::Relaxed);
        loop {
            let pick = scan(d, cur)?;
            match self
                .cursor
                .compare_exchange_weak(cur, pick, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(pick),
                Err(now) => cur = now,
            }
        }
    }
}
