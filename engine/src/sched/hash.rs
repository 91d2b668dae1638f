//! dh and sh: static hash tables of 256 buckets (`ip_vs_dh.c`,
//! `ip_vs_sh.c`).
//!
//! Both tables are filled at build time from the servers that are usable
//! then (the kernel's destination list), in order, wrapping until the 256
//! buckets are full:
//! - dh: one bucket per server in turn (weights are ignored);
//! - sh: `weight` consecutive buckets per server, and one bucket for a
//!   weight-0 server (the kernel's `++d_count >= weight` moves on after one
//!   bucket when the weight is 0). Servers whose turn comes after bucket 255
//!   get none, as in the kernel (total weight > 256).
//!
//! The hashes are the kernel's, on the host-order address:
//! - dh: `bucket = (dst_ip * 2654435761) mod 256`;
//! - sh: `bucket = (offset + (port + src_ip) * 2654435761) mod 256`, with
//!   `port` the source port when sh-port is set, else 0, and `offset` 0
//!   except in the fallback walk. (Newer kernels hash sh with
//!   `hash_32`; SPEC §6 fixes the classic multiplicative hash used here.)
//!
//! A bucket's server is returned when it is a candidate (usable, weight > 0,
//! not overloaded), else nothing; with sh-fallback the kernel's walk is
//! reproduced: for `offset` in 0..256, `roffset = (offset + ihash) mod 256`
//! and the bucket `hash(roffset)` is tried, so the walk starts at bucket
//! `2 * ihash mod 256` and visits every bucket once.

use super::{
    is_candidate, DestInfo, Dests, Pick, SchedInput, SchedKind, DH_TAB_SIZE, HASH_MUL, SH_TAB_SIZE,
};

const NONE: u32 = u32::MAX;

/// dh's bucket for a destination address.
#[inline]
pub fn dh_bucket(dst_ip: std::net::Ipv4Addr) -> usize {
    (u32::from(dst_ip).wrapping_mul(HASH_MUL) as usize) & (DH_TAB_SIZE - 1)
}

/// sh's bucket for a source address and port (pass port 0 without sh-port),
/// at `offset` 0.
#[inline]
pub fn sh_bucket(src_ip: std::net::Ipv4Addr, port: u16) -> usize {
    sh_hash(u32::from(src_ip), port, 0)
}

#[inline]
fn sh_hash(addr: u32, port: u16, offset: u32) -> usize {
    (offset.wrapping_add((port as u32).wrapping_add(addr).wrapping_mul(HASH_MUL)) as usize)
        & (SH_TAB_SIZE - 1)
}

/// dh's bucket table: server index per bucket, `None` when no server was
/// usable at build time.
pub fn dh_buckets(dests: &[DestInfo]) -> [Option<usize>; DH_TAB_SIZE] {
    let list: Vec<usize> = (0..dests.len()).filter(|&i| dests[i].usable).collect();
    let mut t = [None; DH_TAB_SIZE];
    if !list.is_empty() {
        for (b, slot) in t.iter_mut().enumerate() {
            *slot = Some(list[b % list.len()]);
        }
    }
    t
}

/// sh's bucket table (see the module documentation).
pub fn sh_buckets(dests: &[DestInfo]) -> [Option<usize>; SH_TAB_SIZE] {
    let list: Vec<usize> = (0..dests.len()).filter(|&i| dests[i].usable).collect();
    let mut t = [None; SH_TAB_SIZE];
    if list.is_empty() {
        return t;
    }
    let (mut p, mut count) = (0usize, 0u32);
    for slot in t.iter_mut() {
        let i = list[p];
        *slot = Some(i);
        count += 1;
        if count >= dests[i].weight {
            p = (p + 1) % list.len();
            count = 0;
        }
    }
    t
}

fn compact<const N: usize>(t: [Option<usize>; N]) -> [u32; N] {
    t.map(|s| s.map_or(NONE, |i| i as u32))
}

pub(super) struct Dh {
    table: [u32; DH_TAB_SIZE],
}

impl Dh {
    pub(super) fn new(dests: &[DestInfo]) -> Dh {
        Dh {
            table: compact(dh_buckets(dests)),
        }
    }
}

impl Pick for Dh {
    fn kind(&self) -> SchedKind {
        SchedKind::Dh
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize> {
        let s = self.table[dh_bucket(input.dst_ip)];
        (s != NONE && is_candidate(d, s as usize)).then_some(s as usize)
    }
}

pub(super) struct Sh {
    table: [u32; SH_TAB_SIZE],
    port: bool,
    fallback: bool,
}

impl Sh {
    pub(super) fn new(dests: &[DestInfo], port: bool, fallback: bool) -> Sh {
        Sh {
            table: compact(sh_buckets(dests)),
            port,
            fallback,
        }
    }
}

impl Pick for Sh {
    fn kind(&self) -> SchedKind {
        SchedKind::Sh
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize> {
        let addr = u32::from(input.src_ip);
        let port = if self.port { input.src_port } else { 0 };
        let ihash = sh_hash(addr, port, 0);
        let s = self.table[ihash];
        if s == NONE {
            return None;
        }
        if is_candidate(d, s as usize) {
            return Some(s as usize);
        }
        if !self.fallback {
            return None;
        }
        for offset in 0..SH_TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % SH_TAB_SIZE as u32;
            let s = self.table[sh_hash(addr, port, roffset)];
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
