//! wrr: weighted round robin (`ip_vs_wrr.c`).
//!
//! - `di` (step) = gcd of the positive weights (1 when none);
//! - `mw` (ceiling) = max weight - (di - 1), so that the last pass of a
//!   cycle asks for weight >= 1;
//! - `cw` (current weight) starts at `mw`; `cl` (position) starts at the
//!   list head.
//!
//! Each pick scans forward from the server after `cl` for one that is not
//! overloaded with weight >= `cw`. When the scan reaches the end of the list,
//! `cw` drops by `di`; at or below 0 it returns to `mw`. The kernel's
//! termination rule (give up after every server was checked once for
//! weight >= 1) is reproduced exactly: `last_pass`, `restarted` and `stop`
//! below are the kernel's variables.
//!
//! `cl` and `cw` are packed into one `AtomicU64` (position in the high half,
//! `u32::MAX` = head; current weight in the low half). A worker computes the
//! next state from the state it loaded and publishes it with a
//! compare-and-swap, retrying on a race, so all workers together produce
//! exactly the kernel's sequence.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{gcd_positive, DestInfo, Dests, Pick, SchedInput, SchedKind};

const HEAD: u32 = u32::MAX;

pub(super) struct Wrr {
    state: AtomicU64,
    /// Ceiling (`mark->mw`); 0 when no server has weight > 0.
    mw: i64,
    /// Step (`mark->di`).
    di: i64,
}

#[inline]
fn pack(pos: u32, cw: u32) -> u64 {
    ((pos as u64) << 32) | cw as u64
}

#[inline]
fn unpack(s: u64) -> (u32, u32) {
    ((s >> 32) as u32, s as u32)
}

impl Wrr {
    pub(super) fn new(dests: &[DestInfo]) -> Wrr {
        let g = gcd_positive(dests);
        let di = if g == 0 { 1 } else { g } as i64;
        let max = dests
            .iter()
            .filter(|d| d.usable)
            .map(|d| d.weight)
            .max()
            .unwrap_or(0) as i64;
        let mw = (max - (di - 1)).max(0);
        Wrr {
            state: AtomicU64::new(pack(HEAD, mw as u32)),
            mw,
            di,
        }
    }

    /// One kernel `ip_vs_wrr_schedule` call: from state `(cl, cw)` to the
    /// new state and the pick.
    fn step<D: Dests + ?Sized>(&self, d: &D, cl: u32, cw: u32) -> (u32, u32, Option<usize>) {
        if self.mw == 0 {
            return (cl, cw, None);
        }
        let n = d.len();
        let fits = |i: usize, cw: i64| d.usable(i) && !d.overloaded(i) && d.weight(i) as i64 >= cw;
        let last: Option<usize> = if (cl as usize) < n && cl != HEAD {
            Some(cl as usize)
        } else {
            None
        };
        let mut cw = cw as i64;
        let mut dest = last;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let start = dest.map_or(0, |p| p + 1);
            for i in start..n {
                if fits(i, cw) {
                    return (i as u32, cw as u32, Some(i));
                }
                if stop == Some(i) {
                    return (i as u32, cw as u32, None);
                }
            }
            dest = None;
            cw -= self.di;
            if cw <= 0 {
                cw = self.mw;
                if last_pass || last.is_none() {
                    return (HEAD, cw as u32, None);
                }
                restarted = true;
            }
            last_pass = cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

impl Pick for Wrr {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, _input: &SchedInput) -> Option<usize> {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let (cl, cw) = unpack(cur);
            let (ncl, ncw, pick) = self.step(d, cl, cw);
            let next = pack(ncl, ncw);
            if next == cur {
                return pick;
            }
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return pick,
                Err(now) => cur = now,
            }
        }
    }
}
