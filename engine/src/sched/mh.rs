//! mh: Maglev hashing (`ip_vs_mh.c`), built exactly as the kernel builds
//! it, so that an rvs director and a kernel IPVS director with the same
//! servers (same order, addresses, ports, weights) and the same table size
//! compute the same table.
//!
//! - Hash: the kernel's `hsiphash` of the 32-bit value
//!   `offset + port + addr` (host order), which on 64-bit kernels is
//!   SipHash-1-3 with the 64-bit key words `(2654435761, 2654435761)` for
//!   hash1 and `(2654446892, 2654446892)` for hash2, truncated to 32 bits.
//! - Permutation of server `i` (address and port of the real server):
//!   `offset = hash1 % M`, `skip = hash2 % (M - 1) + 1`
//!   ([`mh_permutation`]).
//! - Weights: `gcd` of the positive weights, `rshift` = bits of
//!   `max / gcd` beyond `tab_bits` (`tab_bits` = half the bit length of `M`,
//!   8 for 65521, 6 for 4093), `turns = (weight / gcd) >> rshift`, at least 1 for a
//!   positive weight; a weight-0 server takes no slot.
//! - Population: servers in order, each taking `turns` consecutive
//!   preferred free slots per round, rounds until the table is full.
//! - Lookup: slot `hash1(src_ip + src_port if mh-port) % M`; its server if a
//!   candidate, else nothing, or with mh-fallback the kernel's walk
//!   (`roffset = (offset + ihash) % M`, slot `hash1(roffset + ...) % M`).
//!
//! The table is built from the servers usable at build time. (The kernel
//! uses `last_weight`, a server's last non-zero weight, so that setting a
//! weight to 0 keeps its slots; in rvs a live weight of 0 through `Dests`
//! keeps the slots the same way, until the next snapshot.)

use super::{
    gcd_positive, is_candidate, is_prime, next_prime, DestInfo, Dests, Pick, SchedInput, SchedKind,
};

const NONE: u32 = u32::MAX;
const HASH1: [u64; 2] = [2_654_435_761, 2_654_435_761];
const HASH2: [u64; 2] = [2_654_446_892, 2_654_446_892];

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-c-d of a message shorter than 8 bytes (given as its
/// little-endian value `m` and its length), 64-bit result.
#[inline]
pub(super) fn siphash_short(m: u64, len: u8, key: [u64; 2], c: u32, dr: u32) -> u64 {
    debug_assert!(len < 8);
    let mut v = [
        0x736f_6d65_7073_6575 ^ key[0],
        0x646f_7261_6e64_6f6d ^ key[1],
        0x6c79_6765_6e65_7261 ^ key[0],
        0x7465_6462_7974_6573 ^ key[1],
    ];
    let b = ((len as u64) << 56) | m;
    v[3] ^= b;
    for _ in 0..c {
        sipround(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..dr {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The kernel's `hsiphash(&v, 4, key)` on a 64-bit machine.
#[inline]
pub(super) fn hsiphash_u32(v: u32, key: [u64; 2]) -> u32 {
    siphash_short(v as u64, 4, key, 1, 3) as u32
}

/// `ip_vs_mh_hashkey`.
#[inline]
fn hashkey(addr: u32, port: u16, key: [u64; 2], offset: u32) -> u32 {
    hsiphash_u32(offset.wrapping_add(port as u32).wrapping_add(addr), key)
}

/// The table bits the kernel ties to its table size (`CONFIG_IP_VS_MH_TAB_INDEX
/// / 2`): half the bit length of `size`.
pub fn mh_table_bits(size: u32) -> u32 {
    (32 - size.leading_zeros()) / 2
}

/// The table size a scheduler built with `requested` for `servers` servers
/// uses: `requested` if it is a prime larger than `servers`, else the next
/// such prime.
fn effective_size(requested: u32, servers: usize) -> u32 {
    let floor = (servers as u32).saturating_add(1).max(3);
    if requested >= floor && is_prime(requested) {
        requested
    } else {
        next_prime(requested.max(floor))
    }
}

/// The Maglev lookup table: server index per slot (`None` when no usable
/// server has weight > 0). `size` is corrected as [`super::build`] does.
pub fn mh_table(size: u32, dests: &[DestInfo]) -> Vec<Option<usize>> {
    build_table(effective_size(size, dests.len()), dests)
        .into_iter()
        .map(|s| (s != NONE).then_some(s as usize))
        .collect()
}

/// A server's Maglev permutation in a table of `size` slots: its preferred
/// slot (`offset`) and its stride (`skip`). Two servers with the same skip
/// walk the same cycle and compete for the same slots: when that happens
/// (probability about pairs / size), removing a third server can move up to
/// about a tenth of the survivors' keys instead of a few per cent.
pub fn mh_permutation(size: u32, addr: std::net::Ipv4Addr, port: u16) -> (u32, u32) {
    let a = u32::from(addr);
    (
        hashkey(a, port, HASH1, 0) % size,
        hashkey(a, port, HASH2, 0) % (size - 1) + 1,
    )
}

/// The slot a client falls in (first try, before any fallback).
pub fn mh_lookup_slot(size: u32, src_ip: std::net::Ipv4Addr, port: u16) -> usize {
    (hashkey(u32::from(src_ip), port, HASH1, 0) % size) as usize
}

fn build_table(m: u32, dests: &[DestInfo]) -> Vec<u32> {
    let mut table = vec![NONE; m as usize];
    let list: Vec<usize> = (0..dests.len()).filter(|&i| dests[i].usable).collect();
    let g = gcd_positive(dests);
    if g == 0 || list.is_empty() {
        return table;
    }
    let max = list.iter().map(|&i| dests[i].weight).max().unwrap_or(0);
    let fls = 32 - (max / g).leading_zeros();
    let rshift = fls.saturating_sub(mh_table_bits(m));

    struct Setup {
        idx: usize,
        perm: u32,
        skip: u32,
        turns: u32,
    }
    let mut setup: Vec<Setup> = list
        .iter()
        .map(|&i| {
            let d = &dests[i];
            let addr = u32::from(d.addr);
            let offset = hashkey(addr, d.port, HASH1, 0) % m;
            let skip = hashkey(addr, d.port, HASH2, 0) % (m - 1) + 1;
            let t = (d.weight / g) >> rshift;
            let turns = if t > 0 { t } else { u32::from(d.weight != 0) };
            Setup {
                idx: i,
                perm: offset,
                skip,
                turns,
            }
        })
        .collect();

    let mut filled = vec![false; m as usize];
    let mut n = 0u32;
    loop {
        for ds in setup.iter_mut() {
            for _ in 0..ds.turns {
                let mut c = ds.perm;
                while filled[c as usize] {
                    ds.perm += ds.skip;
                    if ds.perm >= m {
                        ds.perm -= m;
                    }
                    c = ds.perm;
                }
                filled[c as usize] = true;
                table[c as usize] = ds.idx as u32;
                n += 1;
                if n == m {
                    return table;
                }
            }
        }
    }
}

pub(super) struct Mh {
    table: Box<[u32]>,
    size: u32,
    port: bool,
    fallback: bool,
}

impl Mh {
    pub(super) fn new(dests: &[DestInfo], size: u32, port: bool, fallback: bool) -> Mh {
        let size = effective_size(size, dests.len());
        Mh {
            table: build_table(size, dests).into_boxed_slice(),
            size,
            port,
            fallback,
        }
    }
}

impl Pick for Mh {
    fn kind(&self) -> SchedKind {
        SchedKind::Mh
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize> {
        let addr = u32::from(input.src_ip);
        let port = if self.port { input.src_port } else { 0 };
        let m = self.size;
        let ihash = hashkey(addr, port, HASH1, 0) % m;
        let s = self.table[ihash as usize];
        if s == NONE {
            return None;
        }
        if is_candidate(d, s as usize) {
            return Some(s as usize);
        }
        // The walk can cost up to M hashes; when no server at all is a
        // candidate it can only end in nothing, so skip it (same result).
        if !self.fallback || !(0..d.len()).any(|i| is_candidate(d, i)) {
            return None;
        }
        for offset in 0..m {
            let roffset = ((offset as u64 + ihash as u64) % m as u64) as u32;
            let s = self.table[(hashkey(addr, port, HASH1, roffset) % m) as usize];
            if s == NONE {
                break;
            }
            if is_candidate(d, s as usize) {
                return Some(s as usize);
            }
        }
        None
    }
}
