//! The stateless least-connection family: lc, wlc, sed, nq
//! (`ip_vs_lc.c`, `ip_vs_wlc.c`, `ip_vs_sed.c`, `ip_vs_nq.c`).
//!
//! All of them scan the servers in order and keep the first strictly better
//! one, so ties go to the earlier server.

use super::{heavier, is_candidate, overhead_of, Dests, Pick, SchedInput, SchedKind};

/// lc: lowest `active * 256 + inactive` among candidates.
pub(super) struct Lc;
/// wlc: lowest load / weight.
pub(super) struct Wlc;
/// sed: lowest (active + 1) / weight.
pub(super) struct Sed;
/// nq: the first candidate with no active connection, else as sed.
pub(super) struct Nq;

/// wlc's pick, shared with lblc and lblcr (`__ip_vs_lblc_schedule` is the
/// same loop).
pub(super) fn wlc_pick<D: Dests + ?Sized>(d: &D) -> Option<usize> {
    weighted_least(d, overhead_of)
}

/// The first candidate, then every later candidate whose
/// `cost / weight` is strictly lower.
#[inline]
fn weighted_least<D: Dests + ?Sized>(d: &D, cost: impl Fn(&D, usize) -> u64) -> Option<usize> {
    let n = d.len();
    let mut least: Option<(usize, u64, u32)> = None;
    for i in 0..n {
        if !is_candidate(d, i) {
            continue;
        }
        let (doh, dw) = (cost(d, i), d.weight(i));
        match least {
            Some((_, loh, lw)) if !heavier(loh, lw, doh, dw) => {}
            _ => least = Some((i, doh, dw)),
        }
    }
    least.map(|(i, _, _)| i)
}

#[inline]
fn sed_cost<D: Dests + ?Sized>(d: &D, i: usize) -> u64 {
    d.active(i) as u64 + 1
}

impl Pick for Lc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lc
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for i in 0..d.len() {
            if !is_candidate(d, i) {
                continue;
            }
            let doh = overhead_of(d, i);
            match least {
                Some((_, loh)) if doh >= loh => {}
                _ => least = Some((i, doh)),
            }
        }
        least.map(|(i, _)| i)
    }
}

impl Pick for Wlc {
    fn kind(&self) -> SchedKind {
        SchedKind::Wlc
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, _input: &SchedInput) -> Option<usize> {
        wlc_pick(d)
    }
}

impl Pick for Sed {
    fn kind(&self) -> SchedKind {
        SchedKind::Sed
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, _input: &SchedInput) -> Option<usize> {
        weighted_least(d, sed_cost)
    }
}

impl Pick for Nq {
    fn kind(&self) -> SchedKind {
        SchedKind::Nq
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64, u32)> = None;
        for i in 0..d.len() {
            if !is_candidate(d, i) {
                continue;
            }
            // An idle server is taken at once, whatever its weight.
            if d.active(i) == 0 {
                return Some(i);
            }
            let (doh, dw) = (sed_cost(d, i), d.weight(i));
            match least {
                Some((_, loh, lw)) if !heavier(loh, lw, doh, dw) => {}
                _ => least = Some((i, doh, dw)),
            }
        }
        least.map(|(i, _, _)| i)
    }
}
