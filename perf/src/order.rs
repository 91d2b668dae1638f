//! In which order a data phase visits the flows (`--order`), for
//! `rvs-perf pipeline` and `rvs-perf gen` alike.
//!
//! Flows are opened in order 0, 1, 2, ..., so a director's records of them
//! lie in that order in its slab. `seq` sends data in the same order: each
//! packet's record is the one after the last, which the CPU's hardware
//! prefetcher fetches ahead, and only the index bucket is a random miss.
//! `scatter` visits a fixed permutation of the flows (consecutive packets
//! belong to flows opened far apart), as real traffic does: the record is a
//! random miss too.

use anyhow::{bail, Result};

/// The data phase's order over the flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Flow 0, 1, 2, ...: the order they were opened in.
    #[default]
    Seq,
    /// A fixed permutation of the flows (multiplication by a prime).
    Scatter,
}

/// The prime of the `scatter` permutation (a permutation of `0..flows`
/// unless it divides `flows`).
const SCATTER_MUL: u64 = 2_654_435_761;

impl Order {
    /// Refuses a flow count the permutation does not permute.
    pub fn check(self, flows: u32) -> Result<()> {
        if self == Order::Scatter && (flows == 0 || u64::from(flows).is_multiple_of(SCATTER_MUL)) {
            bail!("--order scatter: --flows 0 or a multiple of {SCATTER_MUL}");
        }
        Ok(())
    }

    /// The flow the `i`-th step (`i < flows`) of a round visits.
    #[inline(always)]
    pub fn flow(self, i: u32, flows: u32) -> u32 {
        match self {
            Order::Seq => i,
            Order::Scatter => ((u64::from(i) * SCATTER_MUL) % u64::from(flows)) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_is_a_permutation_and_scatters() {
        for flows in [1u32, 7, 1000, 65_536, 100_003] {
            let mut seen = vec![false; flows as usize];
            for i in 0..flows {
                let f = Order::Scatter.flow(i, flows) as usize;
                assert!(!seen[f], "flow {f} twice at {flows} flows");
                seen[f] = true;
            }
        }
        // neighbours in the round are far apart in the slab
        let d = Order::Scatter
            .flow(1, 1_000_000)
            .abs_diff(Order::Scatter.flow(0, 1_000_000));
        assert!(d > 1000, "{d}");
        assert_eq!(Order::Seq.flow(5, 10), 5);
        assert!(Order::Scatter.check(0).is_err());
    }
}
