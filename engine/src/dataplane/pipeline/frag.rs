//! IPv4 fragments (SPEC §5 "Fragments"): forwarded as they are, never
//! reassembled.
//!
//! The first fragment (offset 0) carries the TCP/UDP header, so it goes
//! through the pipeline like any packet: it finds or creates its connection
//! and is rewritten (the L4 checksum covers the whole datagram, and the
//! incremental update stays correct because only header words change). As
//! it leaves, the worker remembers how it was forwarded under the key
//! (source, destination, protocol, IP id) in a [`FragTable`]. The later
//! fragments carry no ports: they are found by that key and forwarded the
//! same way, with only their IP header (NAT, full-NAT), MACs (DR) or the
//! outer header (TUN) changed.
//!
//! Memory is bounded and preallocated: the table is a fixed set-associative
//! array (an entry lives [`FRAG_LIFETIME_MS`]; a full set evicts its oldest,
//! counted), and later fragments that arrive before their first fragment are
//! held in a fixed [`FragHold`] of [`HOLD_SLOTS`] frames for at most
//! [`HOLD_MS`], then forwarded or dropped (counted).
//!
//! With several workers the first fragment is handled by the flow's owner
//! (ownership hashes the client port, which later fragments lack). The
//! owner also publishes "this key is mine" in the shared [`FragDirectory`]
//! (one relaxed atomic word per slot, last writer wins); another worker that
//! receives a later fragment it does not know hands it to that owner. A
//! stale or colliding slot costs one hand-off and a counted drop, never a
//! wrong rewrite: the receiving worker only forwards by its own table.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{Dest, Frame, Pipeline, Verdict};
use crate::conn::Method;
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{fold6, Snapshot};
use crate::forward;
use crate::packet::Parsed;

/// Sets of the per-worker table, each of [`WAYS`] entries.
const SETS: usize = 256;
const WAYS: usize = 4;
/// Entries one worker remembers: datagrams in flight at once.
pub const FRAG_ENTRIES: usize = SETS * WAYS;
/// How long a first fragment's forwarding is remembered (the kernel's
/// `ipfrag_time` is 30 s for reassembly; fragments of one datagram travel
/// back to back, so a much shorter life keeps the table fresh).
pub const FRAG_LIFETIME_MS: u64 = 2000;
/// Later fragments one worker holds while their first fragment is late.
pub const HOLD_SLOTS: usize = 64;
/// How long a held fragment waits for its first fragment.
pub const HOLD_MS: u64 = 100;
/// Slots of the shared directory of fragment owners.
const DIRECTORY_SLOTS: usize = 4096;

/// What identifies the fragments of one datagram (RFC 791).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey {
    src: u32,
    dst: u32,
    id: u16,
    proto: u8,
}

impl FragKey {
    /// The directory key of an IPv6 datagram (`frag6.rs`): the addresses
    /// folded to 32 bits and the identification to 16, so IPv6 shares the
    /// directory and its keyed hash; only hashed, never compared as the
    /// datagram's identity (the IPv6 table keeps whole addresses).
    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, id: u32, proto: u8) -> FragKey {
        FragKey {
            src: u32::from(fold6(src)),
            dst: u32::from(fold6(dst)),
            id: (id ^ id >> 16) as u16,
            proto,
        }
    }

    /// The key of the IPv4 packet `p` describes in `frame`.
    #[inline]
    pub fn of(frame: &[u8], p: &Parsed) -> Option<FragKey> {
        let id = p.ipv4(frame)?.ip().ident();
        Some(FragKey {
            src: u32::from(p.src),
            dst: u32::from(p.dst),
            id,
            proto: p.protocol,
        })
    }
}

/// How the first fragment of a datagram was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragFwd {
    /// Client -> real server by `method` (NAT: the destination becomes
    /// `server`).
    Inbound {
        method: Method,
        server: Ipv4Addr,
        dest: u32,
    },
    /// NAT real server -> client: the source becomes `vip`.
    Reply {
        vip: Ipv4Addr,
        client: Ipv4Addr,
        dest: u32,
    },
    /// Full-NAT, either way (`inbound`: client -> server): both addresses
    /// change, to `src -> dst`.
    Fnat {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dest: u32,
        inbound: bool,
    },
    /// NAT64 IPv4 server -> IPv6 client: translated to IPv6 from `vip`
    /// (`nat64_frag.rs`).
    Nat64 {
        vip: Ipv6Addr,
        client: Ipv6Addr,
        dest: u32,
    },
}

#[derive(Clone, Copy)]
struct Entry {
    key: FragKey,
    /// Zero: empty.
    until_ms: u64,
    fwd: FragFwd,
}

impl Entry {
    const EMPTY: Entry = Entry {
        key: FragKey {
            src: 0,
            dst: 0,
            id: 0,
            proto: 0,
        },
        until_ms: 0,
        fwd: FragFwd::Reply {
            vip: Ipv4Addr::UNSPECIFIED,
            client: Ipv4Addr::UNSPECIFIED,
            dest: 0,
        },
    };
}

/// One worker's datagrams in flight: key -> how to forward the rest.
pub struct FragTable {
    sets: Box<[[Entry; WAYS]]>,
    /// Bumped by every [`learn`](Self::learn): held fragments are retried
    /// when it moves.
    learned: u64,
}

impl Default for FragTable {
    fn default() -> Self {
        Self::new()
    }
}

impl FragTable {
    pub fn new() -> FragTable {
        FragTable {
            sets: vec![[Entry::EMPTY; WAYS]; SETS].into_boxed_slice(),
            learned: 0,
        }
    }

    /// Remembers `key` -> `fwd` until `now_ms + FRAG_LIFETIME_MS`; true when
    /// a live entry of another datagram was evicted to make room.
    pub fn learn(&mut self, hash: u64, key: FragKey, fwd: FragFwd, now_ms: u64) -> bool {
        self.learned = self.learned.wrapping_add(1);
        let set = &mut self.sets[hash as usize % SETS];
        let until_ms = now_ms + FRAG_LIFETIME_MS;
        // The same datagram again (a retransmitted first fragment), else a
        // free or expired way, else the oldest.
        let mut pick = 0;
        let mut evicts = true;
        for (i, e) in set.iter().enumerate() {
            if e.until_ms != 0 && e.key == key {
                pick = i;
                evicts = false;
                break;
            }
            if e.until_ms <= now_ms {
                if evicts {
                    pick = i;
                    evicts = false;
                }
            } else if evicts && e.until_ms < set[pick].until_ms {
                pick = i;
            }
        }
        set[pick] = Entry { key, until_ms, fwd };
        evicts
    }

    /// How the datagram `key` is forwarded, if its first fragment was seen
    /// within the lifetime.
    #[inline]
    pub fn get(&self, hash: u64, key: &FragKey, now_ms: u64) -> Option<FragFwd> {
        self.sets[hash as usize % SETS]
            .iter()
            .find(|e| e.key == *key && e.until_ms > now_ms)
            .map(|e| e.fwd)
    }

    /// Live entries (tests, reports).
    pub fn len(&self, now_ms: u64) -> usize {
        self.sets
            .iter()
            .flatten()
            .filter(|e| e.until_ms > now_ms)
            .count()
    }

    /// Changes whenever something was learnt.
    pub fn learned(&self) -> u64 {
        self.learned
    }
}

/// Which worker handled a datagram's first fragment, shared by all workers:
/// one word per slot, `tag:32 | expiry (ms / 64):24 | worker:8`, written
/// and read with relaxed atomics. Also holds the secret the fragment keys
/// are hashed with, so an outsider cannot pile datagrams into one set.
pub struct FragDirectory {
    seed: [u64; 2],
    slots: Box<[AtomicU64]>,
}

impl Default for FragDirectory {
    fn default() -> Self {
        Self::new()
    }
}

impl FragDirectory {
    pub fn new() -> FragDirectory {
        use std::hash::{BuildHasher, Hasher};
        let rs = std::collections::hash_map::RandomState::new();
        let mut seed = [0u64; 2];
        for (i, w) in seed.iter_mut().enumerate() {
            let mut h = rs.build_hasher();
            h.write_usize(i);
            *w = h.finish();
        }
        FragDirectory {
            seed,
            slots: (0..DIRECTORY_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The keyed hash of a fragment key (two folded multiplies).
    #[inline]
    pub fn hash(&self, k: &FragKey) -> u64 {
        let a = u64::from(k.src) << 32 | u64::from(k.dst);
        let b = u64::from(k.id) << 8 | u64::from(k.proto);
        let m = u128::from(a ^ self.seed[0]).wrapping_mul(u128::from(b ^ self.seed[1]));
        let x = (m as u64) ^ ((m >> 64) as u64);
        let m = u128::from(x).wrapping_mul(0xa076_1d64_78bd_642f);
        (m as u64) ^ ((m >> 64) as u64)
    }

    fn slot(hash: u64) -> usize {
        (hash >> 16) as usize % DIRECTORY_SLOTS
    }

    /// Records that `worker` forwards the datagram hashed `hash`.
    pub fn publish(&self, hash: u64, worker: usize, now_ms: u64) {
        let until = ((now_ms + FRAG_LIFETIME_MS) >> 6) & 0xFF_FFFF;
        let word = (hash >> 32) << 32 | until << 8 | (worker as u64 & 0xFF);
        self.slots[Self::slot(hash)].store(word, Relaxed);
    }

    /// The worker that published `hash`, if its entry is still live.
    pub fn owner(&self, hash: u64, now_ms: u64) -> Option<usize> {
        let word = self.slots[Self::slot(hash)].load(Relaxed);
        if word == 0 || word >> 32 != hash >> 32 {
            return None;
        }
        let until = (word >> 8) & 0xFF_FFFF;
        let now = (now_ms >> 6) & 0xFF_FFFF;
        // 24-bit wrapping compare: live while `until` is ahead of now.
        let ahead = until.wrapping_sub(now) & 0xFF_FFFF;
        (ahead != 0 && ahead < 0x80_0000).then_some((word & 0xFF) as usize)
    }
}

/// One held fragment.
struct Held<F> {
    frame: F,
    port: usize,
    until_ms: u64,
}

/// Later fragments that arrived before their first fragment, held by the
/// worker loop (which owns frames; the pipeline only says
/// [`Verdict::Hold`]). Fixed size: a full hold refuses, and the caller
/// drops the frame counted. Dropping the hold frees what it holds.
pub struct FragHold<F> {
    slots: [Option<Held<F>>; HOLD_SLOTS],
    len: usize,
    /// Where the current retry pass is.
    cursor: usize,
    /// The table's `learned` and the time at the last retry pass.
    seen: u64,
    seen_ms: u64,
}

impl<F: Frame> Default for FragHold<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Frame> FragHold<F> {
    pub fn new() -> FragHold<F> {
        FragHold {
            slots: [const { None }; HOLD_SLOTS],
            len: 0,
            cursor: HOLD_SLOTS,
            seen: 0,
            seen_ms: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `frame` (arrived on `port`) for at most [`HOLD_MS`], counted
    /// in `frags_held`; when the hold is full the frame is dropped here,
    /// counted as `frag_hold_full`.
    pub fn hold(&mut self, pl: &Pipeline, frame: F, port: usize, now_ms: u64) {
        let Some(slot) = self.slots.iter_mut().find(|s| s.is_none()) else {
            pl.stats.count_drop(Drop::FragHoldFull);
            return;
        };
        *slot = Some(Held {
            frame,
            port,
            until_ms: now_ms + HOLD_MS,
        });
        self.len += 1;
        pl.stats.frags_held.inc();
    }

    /// Starts a retry pass when something may have changed: a first
    /// fragment was learnt here, or time moved on (a hold timed out, or
    /// another worker may have published the datagram). False: nothing to
    /// do, [`next_ready`](Self::next_ready) need not be called.
    #[inline]
    pub fn begin_retry(&mut self, pl: &Pipeline, now_ms: u64) -> bool {
        if self.len == 0 {
            return false;
        }
        let learned = pl.frags.learned();
        if learned == self.seen && now_ms == self.seen_ms {
            return false;
        }
        self.seen = learned;
        self.seen_ms = now_ms;
        self.cursor = 0;
        true
    }

    /// The next held frame that has a verdict now, with its port: its first
    /// fragment arrived (forward or hand off). Frames past their time are
    /// dropped here, counted as `frag_no_first`; the rest stay held.
    pub fn next_ready(
        &mut self,
        pl: &mut Pipeline,
        snap: &Snapshot,
        now_ms: u64,
    ) -> Option<(F, usize, Verdict)> {
        while self.cursor < HOLD_SLOTS {
            let i = self.cursor;
            self.cursor += 1;
            let Some(mut h) = self.slots[i].take() else {
                continue;
            };
            match pl.process(snap, &mut h.frame, h.port, now_ms, false) {
                Verdict::Hold if now_ms < h.until_ms => self.slots[i] = Some(h),
                Verdict::Hold => {
                    self.len -= 1;
                    pl.stats.count_drop(Drop::FragNoFirst);
                }
                v => {
                    self.len -= 1;
                    return Some((h.frame, h.port, v));
                }
            }
        }
        None
    }

    /// Frees everything held (shutdown), counted as `frag_no_first`.
    pub fn clear(&mut self, pl: &Pipeline) {
        for s in &mut self.slots {
            if s.take().is_some() {
                pl.stats.count_drop(Drop::FragNoFirst);
            }
        }
        self.len = 0;
    }
}

impl Pipeline {
    /// A fragment with offset > 0: forwarded as its first fragment was, or
    /// handed to the worker that saw the first, or held until it comes.
    #[cold]
    #[inline(never)]
    pub(super) fn later_fragment<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        if !(p.is_tcp() || p.is_udp()) {
            return self.drop(Drop::Fragment);
        }
        let Some(key) = FragKey::of(f.data(), p) else {
            return self.drop(Drop::RewriteFailed);
        };
        let hash = self.shared.frags.hash(&key);
        let Some(fwd) = self.frags.get(hash, &key, now_ms) else {
            if owned {
                // Handed over as ours, but we do not know it (a stale or
                // colliding directory slot): never hand it on again.
                return self.drop(Drop::FragNoFirst);
            }
            if self.workers > 1 {
                if let Some(w) = self.shared.frags.owner(hash, now_ms) {
                    if w != self.worker && w < self.workers {
                        return Verdict::Handoff(w);
                    }
                }
            }
            // Only what could be ours is worth holding: to a VIP, or from
            // one of the servers (a NAT reply).
            if !snap.is_vip(p.dst) && !is_server(snap, p.src) {
                return self.drop(Drop::NoService);
            }
            return Verdict::Hold;
        };
        if forward::ttl_expired(p) {
            // ICMP time exceeded is only sent for a first fragment (RFC 792).
            return self.drop(Drop::TtlExceeded);
        }
        match fwd {
            FragFwd::Inbound {
                method,
                server,
                dest,
            } => {
                let Some((_, srv)) = snap.dest(dest) else {
                    return self.drop(Drop::ServerGone);
                };
                let to = Dest {
                    method,
                    addr: server,
                    port: 0,
                };
                self.inbound(snap, f, p, to, srv, in_port, now_ms)
            }
            FragFwd::Reply { vip, client, dest } => {
                let Some((_, srv)) = snap.dest(dest) else {
                    return self.drop(Drop::ServerGone);
                };
                self.reply(snap, f, p, vip, 0, client, srv, in_port, now_ms)
            }
            FragFwd::Fnat {
                src,
                dst,
                dest,
                inbound,
            } => {
                let Some((_, srv)) = snap.dest(dest) else {
                    return self.drop(Drop::ServerGone);
                };
                self.fnat_later_fragment(snap, f, p, (src, dst), inbound, srv, in_port, now_ms)
            }
            FragFwd::Nat64 { vip, client, dest } => {
                let Some((_, srv)) = snap.dest64(dest) else {
                    return self.drop(Drop::ServerGone);
                };
                self.nat64_later_out(snap, f, p, (vip, client), srv, in_port, now_ms)
            }
        }
    }

    /// A first fragment is about to be rewritten and sent: remember how the
    /// rest of its datagram are to go (read before the rewrite changes the
    /// addresses the key is made of).
    #[cold]
    #[inline(never)]
    pub(super) fn fragment_out(&mut self, frame: &[u8], p: &Parsed, fwd: FragFwd, now_ms: u64) {
        let Some(key) = FragKey::of(frame, p) else {
            return;
        };
        let hash = self.shared.frags.hash(&key);
        if self.frags.learn(hash, key, fwd, now_ms) {
            self.stats.frags_evicted.inc();
        }
        if self.workers > 1 {
            self.shared.frags.publish(hash, self.worker, now_ms);
        }
    }

    /// Changes whenever this worker learnt a first fragment (the worker
    /// loop retries its held fragments then).
    pub fn frag_learned(&self) -> u64 {
        self.frags.learned()
    }

    /// Live entries of this worker's fragment table.
    pub fn frag_entries(&self, now_ms: u64) -> usize {
        self.frags.len(now_ms)
    }
}

/// `addr` is a configured real server (or sorry server) of some service.
fn is_server(snap: &Snapshot, addr: Ipv4Addr) -> bool {
    snap.services
        .iter()
        .flat_map(|s| s.servers.iter().chain(s.sorry.as_ref()))
        .chain(snap.services64.iter().flat_map(|s| s.servers.iter()))
        .any(|s| s.addr == addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey {
            src: 0xC612_000A,
            dst: 0xC612_0064,
            id,
            proto: 17,
        }
    }

    fn fwd(dest: u32) -> FragFwd {
        FragFwd::Inbound {
            method: Method::Nat,
            server: Ipv4Addr::new(198, 19, 0, 11),
            dest,
        }
    }

    #[test]
    fn learn_get_expire() {
        let mut t = FragTable::new();
        let d = FragDirectory::new();
        let h = d.hash(&key(1));
        assert!(!t.learn(h, key(1), fwd(7), 1000));
        assert_eq!(t.get(h, &key(1), 1000 + FRAG_LIFETIME_MS - 1), Some(fwd(7)));
        assert_eq!(t.get(h, &key(1), 1000 + FRAG_LIFETIME_MS), None);
        assert_eq!(t.get(d.hash(&key(2)), &key(2), 1000), None);
        // Relearning the same key refreshes, not evicts.
        assert!(!t.learn(h, key(1), fwd(8), 1500));
        assert_eq!(t.get(h, &key(1), 1500), Some(fwd(8)));
        assert_eq!(t.len(1500), 1);
    }

    #[test]
    fn a_full_set_evicts_its_oldest() {
        let mut t = FragTable::new();
        // Five keys forced into one set: the first learnt goes.
        for i in 0..WAYS as u16 {
            assert!(!t.learn(7, key(i), fwd(u32::from(i)), 100 + u64::from(i)));
        }
        assert!(t.learn(7, key(99), fwd(99), 200));
        assert_eq!(t.get(7, &key(0), 200), None);
        for i in 1..WAYS as u16 {
            assert_eq!(t.get(7, &key(i), 200), Some(fwd(u32::from(i))));
        }
        assert_eq!(t.get(7, &key(99), 200), Some(fwd(99)));
        // An expired way is reused without eviction.
        assert!(!t.learn(7, key(100), fwd(100), 100 + FRAG_LIFETIME_MS + 1));
    }

    #[test]
    fn directory_owner_and_expiry() {
        let d = FragDirectory::new();
        let h = d.hash(&key(5));
        assert_eq!(d.owner(h, 0), None);
        d.publish(h, 3, 10_000);
        assert_eq!(d.owner(h, 10_000), Some(3));
        assert_eq!(d.owner(h, 10_000 + FRAG_LIFETIME_MS - 100), Some(3));
        assert_eq!(d.owner(h, 10_000 + FRAG_LIFETIME_MS + 100), None);
        // Another key in the same slot with another tag is not it.
        assert_eq!(d.owner(h ^ (1 << 40), 10_000), None);
    }
}
