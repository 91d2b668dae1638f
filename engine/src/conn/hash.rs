//! The keyed flow hash of the table index (the flow ownership hash of
//! SPEC §2 is the NIC's RSS hash: see `rss`).

use super::WireKey;
use std::hash::{BuildHasher, Hasher};

/// Multiply two 64-bit words to 128 bits and fold the halves together.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Per-table secret: three random words mixed into every flow hash, so that
/// an outsider cannot choose 5-tuples that pile up in one probe run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seed([u64; 3]);

impl Seed {
    /// A fresh unpredictable seed. std's `RandomState` carries per-process
    /// keys drawn from the OS; SipHash runs here, at construction, only.
    pub(crate) fn random() -> Seed {
        let rs = std::collections::hash_map::RandomState::new();
        let mut w = [0u64; 3];
        for (i, word) in w.iter_mut().enumerate() {
            let mut h = rs.build_hasher();
            h.write_usize(i);
            h.write_usize(word as *const u64 as usize);
            *word = h.finish();
        }
        Seed(w)
    }

    /// A seed derived from `s` (tests, benchmarks, reproducible runs).
    pub(crate) fn from_u64(s: u64) -> Seed {
        let mut x = s;
        let mut w = [0u64; 3];
        for word in &mut w {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *word = fmix64(x);
        }
        Seed(w)
    }

    /// The keyed hash of a flow key: two folded multiplies. The 5-tuple is
    /// two words ([`WireKey`]), each masked with a secret word, multiplied
    /// together (every output bit depends on every input bit and the
    /// secret), then folded once more with the third secret word.
    #[inline(always)]
    pub(crate) fn hash(&self, k: &WireKey) -> u64 {
        // source << 32 | destination; ports << 32 | protocol << 8
        let a = k.addrs;
        let b = u64::from(k.ports) << 32 | u64::from(k.proto) << 8;
        let x = fold_mul(a ^ self.0[0], b ^ self.0[1]);
        fold_mul(x ^ self.0[2], 0xa076_1d64_78bd_642f)
    }
}

/// MurmurHash3's 64-bit finaliser: a fixed bijective mix with full
/// avalanche.
#[inline(always)]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}
