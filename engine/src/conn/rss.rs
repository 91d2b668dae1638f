//! The flow-ownership hash (SPEC §2) is the NIC's own: the Toeplitz hash of
//! Receive Side Scaling over the client's address and port, with one
//! symmetric key, followed by one redirection table (RETA).
//!
//! Why the NIC's function: a port configured to hash only the client's
//! address and port (`L3_SRC_ONLY | L4_SRC_ONLY` where clients send,
//! `L3_DST_ONLY | L4_DST_ONLY` where the real servers answer) delivers both
//! directions of a flow to the queue of the worker that owns it, so no
//! frame crosses a hand-off ring. The software owner check in the pipeline
//! then only catches what the NIC cannot steer (fragments, ICMP errors,
//! devices without that RSS support).
//!
//! Why a key that repeats 0x6d5a every 16 bits: the 32-bit key window
//! a Toeplitz input bit selects then depends only on the bit's position
//! modulo 16. Every field of the IPv4 RSS input (source address,
//! destination address, source port, destination port) starts on a 16-bit
//! boundary, so each 16-bit word contributes the same function `T` of its
//! value wherever it sits, and an absent (zeroed) field contributes
//! nothing. The hash of the client's (address, port) is therefore the same
//! whether the NIC hashes it as the source or as the destination, and
//! whether it drops the unselected fields or zeroes them in place — and,
//! `T` being linear, it is `T(addr_hi ^ addr_lo ^ port)`: two table
//! reads per frame.
//!
//! The RETA: the owner is entry `hash % RETA_SIZE` of a table whose entry
//! `i` is `i % workers`. A device RETA of any power-of-two size `R >=
//! RETA_SIZE` is programmed with entry `j = (j % RETA_SIZE) % workers`; the
//! NIC indexes it with the hash's low bits (`hash % R`), and `(hash % R) %
//! RETA_SIZE == hash % RETA_SIZE`, so every port (whatever its RETA size)
//! and the software agree. memif has no RSS: the peer (the generator,
//! `perf/src/gen.rs`) places each flow on a queue with DPDK's
//! `rte_softrss` over [`KEY`] and this same RETA, as a NIC would.
//!
//! FNAT: a full-NAT reply is addressed to the director's local address and
//! port, not the client's. The local port a connection gets must be chosen
//! so that [`owner_worker`]`(local addr, local port)` is the worker that
//! owns the connection, or the replies land on another queue.
//!
//! The hash is fixed (not seeded): anyone can compute which worker a
//! flow lands on, as with any NIC's RSS. That costs balance under attack,
//! not correctness; the connection table's own hash stays keyed.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes of the Toeplitz key the director programs (the usual 40; devices
/// with longer keys get [`key`] of their length, same pattern).
pub const KEY_LEN: usize = 40;

/// The symmetric RSS key: 0x6d5a repeated (see the module documentation).
pub const KEY: [u8; KEY_LEN] = {
    let mut k = [0u8; KEY_LEN];
    let mut i = 0;
    while i < KEY_LEN {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The key for a device whose key is `len` bytes (the pattern of [`KEY`]).
pub fn key(len: usize) -> Vec<u8> {
    (0..len).map(|i| KEY[i % 2]).collect()
}

/// Entries of the redirection table the owner function reads; a device
/// RETA must be a power-of-two multiple of it. 128 is the common size of
/// physical NICs' tables, and small enough a remainder: with 3 workers the
/// entries split 43/43/42 (devices with smaller tables fall back to the
/// hand-off rings).
pub const RETA_SIZE: usize = 128;

/// Entry `index` of the redirection table of a director with `workers`
/// workers (of a device RETA of any power-of-two size >= [`RETA_SIZE`]).
pub fn reta_entry(index: usize, workers: usize) -> u16 {
    ((index % RETA_SIZE) % workers.max(1)) as u16
}

/// The Toeplitz hash of `input` under `key`, bit by bit, as the Microsoft
/// RSS specification defines it: for every set input bit (most
/// significant first), the 32 key bits starting at that bit's position are
/// XORed into the result. Key bits past the end of `key` count as 0. The
/// reference for the tables below and for tests; not for the fast path.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |n: usize| -> u32 {
        key.get(n / 8)
            .map_or(0, |b| u32::from(b >> (7 - n % 8)) & 1)
    };
    let mut window: u32 = (0..32).fold(0, |w, n| w << 1 | key_bit(n));
    let mut h = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                h ^= window;
            }
            window = window << 1 | key_bit(32 + i * 8 + bit);
        }
    }
    h
}

/// The 32-bit window of [`KEY`] at bit `n` (MSB first): its period is 16.
const fn window(n: usize) -> u32 {
    let mut w = 0u32;
    let mut b = 0;
    while b < 32 {
        let bit = n + b;
        let byte = KEY[(bit / 8) % 2];
        w = w << 1 | ((byte >> (7 - bit % 8)) & 1) as u32;
        b += 1;
    }
    w
}

/// `T` over one byte of a 16-bit word: `first` for the high byte (bits 0..8
/// of the word's window), else the low byte.
const fn byte_table(first: bool) -> [u32; 256] {
    let mut t = [0u32; 256];
    let base = if first { 0 } else { 8 };
    let mut v = 0;
    while v < 256 {
        let mut h = 0u32;
        let mut bit = 0;
        while bit < 8 {
            if v & (0x80 >> bit) != 0 {
                h ^= window(base + bit);
            }
            bit += 1;
        }
        t[v] = h;
        v += 1;
    }
    t
}

static T_HI: [u32; 256] = byte_table(true);
static T_LO: [u32; 256] = byte_table(false);

/// The RSS hash of a client's (address, port) under [`KEY`]: what the NIC
/// computes for a frame from it (source-only fields) and for a frame to it
/// (destination-only fields). Equals [`toeplitz`]`(&KEY, addr ++ port)`.
#[inline(always)]
pub fn client_hash(addr: Ipv4Addr, port: u16) -> u32 {
    let a = u32::from(addr);
    let w = (a >> 16) as u16 ^ a as u16 ^ port;
    T_HI[usize::from(w >> 8)] ^ T_LO[usize::from(w & 0xff)]
}

/// The RSS hash of an IPv6 client's (address, port) under [`KEY`]: every
/// field of the IPv6 RSS input starts on a 16-bit boundary too, so it is
/// `T` of the xor of the address's eight 16-bit words and the port. Equals
/// [`toeplitz`]`(&KEY, addr ++ port)` and [`client_hash`] of the address's
/// 32-bit fold (`dataplane::snapshot::fold6`, what IPv6 ownership takes).
#[inline(always)]
pub fn client_hash6(addr: Ipv6Addr, port: u16) -> u32 {
    let w = addr.segments().iter().fold(port, |acc, s| acc ^ s);
    T_HI[usize::from(w >> 8)] ^ T_LO[usize::from(w & 0xff)]
}

/// The owner of `hash` by the default RETA of `workers` workers.
#[inline]
pub fn owner_of_hash(hash: u32, workers: usize) -> usize {
    usize::from(reta_entry(hash as usize % RETA_SIZE, workers))
}

/// Which worker owns the connection of this client address (SPEC §2):
/// the worker the NIC's RSS delivers it to, both directions. `workers` of
/// 0 or 1 gives 0.
#[inline]
pub fn owner_worker(client_ip: Ipv4Addr, client_port: u16, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    owner_of_hash(client_hash(client_ip, client_port), workers)
}

/// The redirection table of one director, precomputed: the per-frame owner
/// check is two table reads, a fold and one more read, no division.
#[derive(Clone, Debug)]
pub struct Reta {
    table: [u16; RETA_SIZE],
}

impl Reta {
    pub fn new(workers: usize) -> Reta {
        let mut table = [0u16; RETA_SIZE];
        for (i, e) in table.iter_mut().enumerate() {
            *e = reta_entry(i, workers);
        }
        Reta { table }
    }

    /// The queue (worker) of `hash`.
    #[inline(always)]
    pub fn queue(&self, hash: u32) -> usize {
        usize::from(self.table[hash as usize % RETA_SIZE])
    }

    /// The worker that owns the client's flow (= [`owner_worker`]).
    #[inline(always)]
    pub fn owner(&self, client_ip: Ipv4Addr, client_port: u16) -> usize {
        self.queue(client_hash(client_ip, client_port))
    }
}
