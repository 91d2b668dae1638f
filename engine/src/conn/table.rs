//! [`ConnTable`]: slab + open-addressing index + expiry hand.

use std::net::Ipv4Addr;

use super::hash::Seed;
use super::snat::{SnatPools, SnatSpec};
use super::state::{next_state, Table, TimeoutsMs};
use super::{
    flags, is_active, tcp_flags, Conn, ConnId, Dir, FlowKey, FnatError, Method, NewConn, Reclaim,
    TableFull, TcpState, Timeouts, Transition, WireKey, EVICT_WINDOW, MAX_TIMEOUT_S,
    PRESSURE_OFF_PERCENT, PRESSURE_ON_PERCENT, PRESSURE_SYN_RECV_S, PROTO_TCP,
};
use crate::dataplane::region::{Region, TableMemory, TableSpans};

/// Largest capacity a table accepts (slot numbers must fit in 31 bits of an
/// index entry, and the index in 2^32 buckets).
pub const MAX_CAPACITY: usize = 1 << 30;

/// End of the free list.
const NIL: u32 = u32::MAX;

/// Index entry: `hash32 << 32 | dir << 31 | (slot + 1)`; 0 = empty bucket.
const DIR_BIT: u64 = 1 << 31;
const SLOT_MASK: u64 = DIR_BIT - 1;

/// Largest load factor of the index, as a fraction (`LOAD_NUM / LOAD_DEN`),
/// counting two keys per connection.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 10;

/// A full-NAT connection's local (director-side) address and port: the
/// source its packets to the server carry and the destination of the
/// server's replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Local {
    addr: u32,
    port: u16,
}

/// Full-NAT state of a table: the local tuple of every slot, and this
/// worker's local ports.
///
/// The 32-byte [`Conn`] record has no room for a fifth address and port,
/// and growing it would cost every NAT/DR/TUN connection 32 more bytes and
/// a cache line per lookup. So the local tuple lives in a side array
/// indexed by slot (8 bytes a slot), allocated only once a service uses
/// `fnat`, and read only for FNAT records: by the reply-key match, the
/// reply-key hash on insert and remove, and the rewrite. Other methods
/// pay one byte compare (the record's method) on a reply-key match.
struct Fnat {
    locals: Box<[Local]>,
    pools: SnatPools,
}

/// A flow key's hash, computed once and reused ([`ConnTable::key_hash`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyHash(u32);

/// A worker's connection table. See the [module documentation](super).
pub struct ConnTable {
    slots: Region<Conn>,
    index: Region<u64>,
    /// `index.len() - 1`.
    mask: u32,
    free_head: u32,
    len: u32,
    /// Next slot `expire_some` looks at.
    hand: u32,
    /// Next slot `insert_or_evict` looks at when the table is full (a hand
    /// of its own: the sweep must not shorten the lap an embryonic entry
    /// survives).
    evict_hand: u32,
    /// Under pressure (see the module docs): entered when `len` reaches
    /// `pressure_on`, left when it falls to `pressure_off`.
    pressure: bool,
    pressure_on: u32,
    pressure_off: u32,
    seed: Seed,
    timeouts: Timeouts,
    /// The configured timeouts in ms.
    base_ms: TimeoutsMs,
    /// What records are armed with: `base_ms`, with SYN_RECV shortened
    /// while under pressure.
    timeouts_ms: TimeoutsMs,
    /// Full-NAT local tuples and ports; `None` until a service uses fnat.
    fnat: Option<Box<Fnat>>,
    /// Tests only: keep this many low bits of the hash, to force collisions.
    #[cfg(test)]
    hash_bits: u32,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.slots.len())
            .field("buckets", &self.index.len())
            .field("pressure", &self.pressure)
            .finish()
    }
}

/// An index entry a burst's prefetch pass found for a key's hash
/// ([`ConnTable::prefetch_conn_entry`]), for its lookup to try first
/// ([`ConnTable::lookup_hinted`]). `Hint::NONE`: nothing found or not
/// looked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hint(u64);

impl Hint {
    pub const NONE: Hint = Hint(0);
}

/// Is an expiry stamp (low 32 bits of ms) reached at `now` (same)?
#[inline(always)]
fn expired(expires: u32, now: u32) -> bool {
    now.wrapping_sub(expires) as i32 >= 0
}

/// Prefetch the cache line at `p` into all cache levels (a no-op off
/// x86_64).
#[inline(always)]
fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it never faults, and `p` points into
        // memory this table owns anyway.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
fn entry(h: u32, slot: u32, dir: Dir) -> u64 {
    (h as u64) << 32 | (dir as u64) << 31 | (slot as u64 + 1)
}

#[inline(always)]
fn entry_hash(e: u64) -> u32 {
    (e >> 32) as u32
}

#[inline(always)]
fn entry_slot(e: u64) -> usize {
    ((e & SLOT_MASK) - 1) as usize
}

#[inline(always)]
fn entry_dir(e: u64) -> Dir {
    if e & DIR_BIT != 0 {
        Dir::Reply
    } else {
        Dir::Inbound
    }
}

/// Buckets for `capacity` connections: two keys each, load <= 0.7.
fn buckets_for(capacity: usize) -> usize {
    let keys = 2 * capacity;
    let want = (keys * LOAD_DEN).div_ceil(LOAD_NUM);
    want.next_power_of_two().max(8)
}

/// Lengths at which a table of `capacity` enters pressure (at least
/// [`PRESSURE_ON_PERCENT`] % full, rounded up, at least 1) and leaves it (at
/// most [`PRESSURE_OFF_PERCENT`] %, rounded down).
fn pressure_thresholds(capacity: usize) -> (u32, u32) {
    let on = (capacity * PRESSURE_ON_PERCENT as usize)
        .div_ceil(100)
        .max(1);
    let off = capacity * PRESSURE_OFF_PERCENT as usize / 100;
    (on as u32, off.min(on - 1) as u32)
}

/// May a live record be evicted to make room under pressure? TCP only in
/// NONE or SYN_RECV (a handshake nobody has completed), any other protocol
/// (UDP), or one a rescue opened (`flags::RESCUED`); never a persistence
/// template.
#[inline]
fn evictable(c: &Conn) -> bool {
    c.flags & flags::TEMPLATE == 0
        && (c.proto != PROTO_TCP
            || c.flags & flags::RESCUED != 0
            || c.state == TcpState::None as u8
            || c.state == TcpState::SynRecv as u8)
}

impl ConnTable {
    /// A table for `capacity` connections with the IPVS default timeouts and
    /// a random hash seed. Allocates (and touches) all its memory now.
    ///
    /// # Panics
    /// If `capacity > MAX_CAPACITY`.
    pub fn with_capacity(capacity: usize) -> ConnTable {
        Self::build(capacity, Seed::random(), TableMemory::default())
    }

    /// As [`with_capacity`](Self::with_capacity) with a fixed hash seed
    /// (reproducible tests and benchmarks; not for production).
    pub fn with_capacity_and_seed(capacity: usize, seed: u64) -> ConnTable {
        Self::build(capacity, Seed::from_u64(seed), TableMemory::default())
    }

    /// As [`with_capacity`](Self::with_capacity), with the slab and index
    /// in memory of the kind `mem` asks for (DPDK's hugepages, or anonymous
    /// memory hinted for huge or small pages; see [`TableMemory`]), and a
    /// fixed hash seed when `seed` is given. The table behaves the same
    /// whatever its memory; [`memory_spans`](Self::memory_spans) says
    /// where it ended up.
    pub fn with_capacity_in(capacity: usize, mem: TableMemory, seed: Option<u64>) -> ConnTable {
        let seed = seed.map_or_else(Seed::random, Seed::from_u64);
        Self::build(capacity, seed, mem)
    }

    fn build(capacity: usize, seed: Seed, mem: TableMemory) -> ConnTable {
        assert!(
            capacity <= MAX_CAPACITY,
            "connection table capacity {capacity} > {MAX_CAPACITY}"
        );
        let buckets = buckets_for(capacity);
        // Free list: 0 -> 1 -> ... -> capacity-1 -> NIL.
        let slots = Region::new(capacity, mem, |i| Conn {
            dest: if i + 1 < capacity { i as u32 + 1 } else { NIL },
            ..Conn::EMPTY
        });
        let index = Region::new(buckets, mem, |_| 0u64);
        let timeouts = Timeouts::default();
        let (pressure_on, pressure_off) = pressure_thresholds(capacity);
        ConnTable {
            slots,
            index,
            mask: (buckets - 1) as u32,
            free_head: if capacity > 0 { 0 } else { NIL },
            len: 0,
            hand: 0,
            evict_hand: 0,
            pressure: false,
            pressure_on,
            pressure_off,
            seed,
            timeouts,
            base_ms: timeouts.to_ms(),
            timeouts_ms: timeouts.to_ms(),
            fnat: None,
            #[cfg(test)]
            hash_bits: 32,
        }
    }

    /// Tests: a table whose hash keeps only `bits` bits (long probe runs,
    /// equal hash tags, wrap-around at the end of the index).
    #[cfg(test)]
    pub(crate) fn with_weak_hash(capacity: usize, bits: u32) -> ConnTable {
        let mut t = Self::build(capacity, Seed::from_u64(1), TableMemory::default());
        t.hash_bits = bits;
        t
    }

    /// Replace the timeouts. Existing connections keep their expiry until
    /// their next packet (as in IPVS).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
        self.base_ms = t.to_ms();
        self.timeouts_ms = self.base_ms;
        if self.pressure {
            self.apply_pressure(true);
        }
    }

    /// The configured timeouts (SYN_RECV as configured, also while under
    /// pressure; see [`syn_recv_timeout_ms`](Self::syn_recv_timeout_ms)).
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Is the table under pressure (at least [`PRESSURE_ON_PERCENT`] % full,
    /// until it falls to [`PRESSURE_OFF_PERCENT`] %)? Then SYN_RECV is armed
    /// with [`PRESSURE_SYN_RECV_S`]. See the module docs, "Pressure".
    #[inline]
    pub fn under_pressure(&self) -> bool {
        self.pressure
    }

    /// The SYN_RECV timeout a segment arms now, ms (shortened under
    /// pressure).
    pub fn syn_recv_timeout_ms(&self) -> u32 {
        self.timeouts_ms.tcp[TcpState::SynRecv as usize]
    }

    /// Connections in the table (expired ones not yet reaped included).
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Connections the table can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Buckets of the index.
    pub fn index_buckets(&self) -> usize {
        self.index.len()
    }

    /// Bytes this table allocated (slab + index + the struct itself, and
    /// the full-NAT side array once a service uses fnat).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
            + std::mem::size_of_val(&*self.index)
            + std::mem::size_of::<Self>()
            + self
                .fnat
                .as_ref()
                .map_or(0, |f| std::mem::size_of_val(&*f.locals))
    }

    /// The allocator and address spans of the slab and the index (which
    /// pages back them: [`TableSpans::describe`]).
    pub fn memory_spans(&self) -> TableSpans {
        TableSpans {
            source: self.slots.source(),
            spans: [self.slots.span(), self.index.span()],
        }
    }

    /// The hash of `key` in this table.
    #[inline(always)]
    pub fn key_hash(&self, key: &FlowKey) -> KeyHash {
        self.key_hash_wire(&key.wire())
    }

    /// [`key_hash`](Self::key_hash) of a key in words.
    #[inline(always)]
    pub fn key_hash_wire(&self, key: &WireKey) -> KeyHash {
        let h = (self.seed.hash(key) >> 32) as u32;
        #[cfg(test)]
        let h = if self.hash_bits >= 32 {
            h
        } else {
            h & ((1u32 << self.hash_bits) - 1)
        };
        KeyHash(h)
    }

    /// Hash `key` and prefetch its index bucket, ahead of a
    /// [`lookup`](Self::lookup) of the same key.
    #[inline(always)]
    pub fn prefetch(&self, key: &FlowKey) {
        self.prefetch_hashed(self.key_hash(key));
    }

    /// Prefetch the bucket of an already computed hash.
    #[inline(always)]
    pub fn prefetch_hashed(&self, h: KeyHash) {
        let pos = (h.0 & self.mask) as usize;
        prefetch_ptr(&self.index[pos] as *const u64 as *const u8);
    }

    /// Second stage of a batched lookup: read the (prefetched) bucket run of
    /// `h` and prefetch the record of the first entry whose hash matches, so
    /// the [`lookup_hashed`](Self::lookup_hashed) that follows finds both in
    /// cache. Pipeline for a burst: `key_hash` + `prefetch_hashed` for every
    /// packet, then `prefetch_conn_hashed` for every packet, then
    /// `lookup_hashed`.
    #[inline(always)]
    pub fn prefetch_conn_hashed(&self, h: KeyHash) {
        self.prefetch_conn_entry(h);
    }

    /// [`prefetch_conn_hashed`](Self::prefetch_conn_hashed), returning the
    /// index entry whose record it prefetched (0: none): a [`Hint`] for
    /// [`lookup_hinted`](Self::lookup_hinted) later in the burst.
    #[inline(always)]
    pub fn prefetch_conn_entry(&self, h: KeyHash) -> Hint {
        let mut pos = h.0 & self.mask;
        loop {
            let e = self.index[pos as usize];
            if e == 0 {
                return Hint(0);
            }
            if entry_hash(e) == h.0 {
                prefetch_ptr(&self.slots[entry_slot(e)] as *const Conn as *const u8);
                return Hint(e);
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// The live connection `key` belongs to, and which of its keys matched.
    /// An entry whose expiry is reached counts as a miss (it stays until
    /// [`expire_some`](Self::expire_some) reaps it, so `on_expire` runs once
    /// for every connection).
    #[inline]
    pub fn lookup(&self, key: &FlowKey, now_ms: u64) -> Option<(ConnId, Dir)> {
        self.lookup_hashed(key, self.key_hash(key), now_ms)
    }

    /// [`lookup`](Self::lookup) with the hash from [`key_hash`](Self::key_hash).
    #[inline(always)]
    pub fn lookup_hashed(&self, key: &FlowKey, h: KeyHash, now_ms: u64) -> Option<(ConnId, Dir)> {
        self.lookup_record(key, h, now_ms)
            .map(|(id, dir, _)| (id, dir))
    }

    /// [`lookup_hashed`](Self::lookup_hashed) with the record it found
    /// (the established fast path reads it without indexing the slab
    /// again).
    #[inline(always)]
    pub fn lookup_record(
        &self,
        key: &FlowKey,
        h: KeyHash,
        now_ms: u64,
    ) -> Option<(ConnId, Dir, &Conn)> {
        self.lookup_wire(&key.wire(), h, now_ms)
    }

    /// [`lookup_record`](Self::lookup_record) of a key in words (the
    /// established fast path reads them off the frame): each candidate
    /// record is compared in two word compares and a byte compare.
    #[inline(always)]
    pub fn lookup_wire(
        &self,
        key: &WireKey,
        h: KeyHash,
        now_ms: u64,
    ) -> Option<(ConnId, Dir, &Conn)> {
        let now = now_ms as u32;
        let mut pos = h.0 & self.mask;
        loop {
            let e = self.index[pos as usize];
            if e == 0 {
                return None;
            }
            if entry_hash(e) == h.0 {
                let slot = entry_slot(e);
                let dir = entry_dir(e);
                let c = &self.slots[slot];
                let hit = if dir == Dir::Reply && c.method == Method::Fnat as u8 {
                    self.matches_local(c, slot, key)
                } else {
                    c.matches_wire(key, dir)
                };
                if hit && !expired(c.expires, now) {
                    return Some((ConnId(slot as u32), dir, c));
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// [`lookup_wire`](Self::lookup_wire) that first tries the record
    /// `hint` names (what the burst's prefetch pass found in the key's
    /// bucket: the first entry with the key's hash, where the walk would
    /// look first): if that record is live, matches `key` in the entry's
    /// direction and has not expired, it is the answer, without reading
    /// the index again. Anything else (no hint, another key with the same
    /// hash, a record the burst's earlier packets removed or replaced)
    /// walks the index as `lookup_wire` does.
    #[inline(always)]
    pub fn lookup_hinted(
        &self,
        key: &WireKey,
        h: KeyHash,
        hint: Hint,
        now_ms: u64,
    ) -> Option<(ConnId, Dir, &Conn)> {
        let e = hint.0;
        if e != 0 {
            let (slot, dir) = (entry_slot(e), entry_dir(e));
            if let Some(c) = self.slots.get(slot) {
                let fnat_reply = dir == Dir::Reply && c.method == Method::Fnat as u8;
                if c.in_use()
                    && !fnat_reply
                    && c.matches_wire(key, dir)
                    && !expired(c.expires, now_ms as u32)
                {
                    return Some((ConnId(slot as u32), dir, c));
                }
            }
        }
        self.lookup_wire(key, h, now_ms)
    }

    /// Create a connection in a free slot; [`TableFull`] when there is
    /// none. The caller looks up first: inserting a key that a live
    /// connection already holds leaves the older one in front.
    ///
    /// The data plane uses [`insert_or_evict`](Self::insert_or_evict),
    /// which also makes room in a full table; this one never touches
    /// another connection.
    pub fn insert(&mut self, c: NewConn, now_ms: u64) -> Result<ConnId, TableFull> {
        self.insert_with(c, None, None, now_ms)
    }

    /// [`insert`](Self::insert) with the local tuple of a full-NAT
    /// connection (`None` for the other methods: a `Method::Fnat` record
    /// without one gets no reply key), and the hash of the inbound key
    /// when the caller has it (`None`: hashed here). Inlined: the caller's
    /// [`NewConn`] is written into the slot's record, not copied through
    /// the stack on the way.
    #[inline(always)]
    fn insert_with(
        &mut self,
        c: NewConn,
        local: Option<Local>,
        inbound: Option<KeyHash>,
        now_ms: u64,
    ) -> Result<ConnId, TableFull> {
        let slot = self.free_head;
        if slot == NIL {
            return Err(TableFull);
        }
        let state = if c.proto == PROTO_TCP {
            c.state
        } else {
            TcpState::None
        };
        let template = c.flags & flags::TEMPLATE != 0;
        let mut fl = (c.flags & flags::CALLER_MASK) | flags::IN_USE;
        let fnat = c.method == Method::Fnat && local.is_some() && self.fnat.is_some();
        if c.method != Method::Nat && !fnat {
            fl |= flags::NO_OUTPUT;
        } else if !template {
            fl |= flags::REPLY_KEY;
        }
        let timeout = self.timeouts_ms.of(c.proto, state);
        let rec = Conn {
            service: c.service,
            dest: c.dest,
            expires: (now_ms as u32).wrapping_add(timeout),
            proto: c.proto,
            state: state as u8,
            method: c.method as u8,
            flags: fl,
            ..Conn::with_tuple(&c)
        };
        let s = &mut self.slots[slot as usize];
        self.free_head = s.dest;
        *s = rec;
        self.len += 1;
        if !self.pressure && self.len >= self.pressure_on {
            self.apply_pressure(true);
        }

        if let (Some(f), Some(l)) = (self.fnat.as_mut(), local) {
            f.locals[slot as usize] = l;
        }
        let h = match inbound {
            Some(h) => {
                debug_assert_eq!(
                    h,
                    self.key_hash(&rec.inbound_key()),
                    "inbound hash of another key"
                );
                h
            }
            None => self.key_hash(&rec.inbound_key()),
        };
        self.index_insert(h, entry(h.0, slot, Dir::Inbound));
        if fl & flags::REPLY_KEY != 0 {
            // NAT: the record's reply key words as they are (no FlowKey
            // built); full-NAT's ends at the local tuple.
            let h = if fnat {
                self.key_hash(&self.reply_key_of(&rec, slot as usize))
            } else {
                let (addrs, ports) = rec.key_words(Dir::Reply);
                let proto = rec.proto;
                self.key_hash_wire(&WireKey {
                    addrs,
                    ports,
                    proto,
                })
            };
            self.index_insert(h, entry(h.0, slot, Dir::Reply));
        }
        Ok(ConnId(slot))
    }

    /// The reply key of a record indexed by one: server -> client for NAT,
    /// server -> local tuple for full-NAT.
    #[inline]
    fn reply_key_of(&self, c: &Conn, slot: usize) -> FlowKey {
        match (&self.fnat, c.method == Method::Fnat as u8) {
            (Some(f), true) => {
                let l = f.locals[slot];
                FlowKey::new(
                    c.proto,
                    c.server(),
                    c.sport(),
                    Ipv4Addr::from(l.addr),
                    l.port,
                )
            }
            _ => c.reply_key_raw(),
        }
    }

    /// Does `k` equal the reply key of the full-NAT record `c` in `slot`?
    #[inline]
    fn matches_local(&self, c: &Conn, slot: usize, k: &WireKey) -> bool {
        let Some(f) = &self.fnat else {
            return false;
        };
        let l = f.locals[slot];
        k.addrs == u64::from(u32::from(c.server())) << 32 | u64::from(l.addr)
            && k.ports == u32::from(c.sport()) << 16 | u32::from(l.port)
            && k.proto == c.proto
    }

    /// The reply key of connection `id` if it has one (NAT and full-NAT,
    /// not templates).
    pub fn reply_key(&self, id: ConnId) -> Option<FlowKey> {
        let c = self.slots.get(id.index())?;
        (c.in_use() && c.flags & flags::REPLY_KEY != 0).then(|| self.reply_key_of(c, id.index()))
    }

    /// The local (director-side) address and port of full-NAT connection
    /// `id`; `None` for the other methods.
    #[inline]
    pub fn local(&self, id: ConnId) -> Option<(Ipv4Addr, u16)> {
        let c = self.slots.get(id.index())?;
        if !c.in_use() || c.method != Method::Fnat as u8 || c.flags & flags::REPLY_KEY == 0 {
            return None;
        }
        let l = self.fnat.as_ref()?.locals[id.index()];
        Some((Ipv4Addr::from(l.addr), l.port))
    }

    /// Installs the full-NAT local addresses and port ranges of every
    /// egress port (indexed like the snapshot's ports) for `worker` of
    /// `workers`: allocates the side array the first time, and rebuilds
    /// the pools only when the configuration changed, marking the local
    /// ports of live connections held again. Cold (a new configuration).
    pub fn set_snat(&mut self, specs: &[SnatSpec], worker: usize, workers: usize) {
        if let Some(f) = &self.fnat {
            if f.pools.same(specs, worker, workers) {
                return;
            }
        }
        let mut pools = SnatPools::new(specs, worker, workers);
        let locals = match self.fnat.take() {
            Some(f) => f.locals,
            None => vec![Local::default(); self.slots.len()].into_boxed_slice(),
        };
        for (i, c) in self.slots.iter().enumerate() {
            if c.in_use() && c.method == Method::Fnat as u8 && c.flags & flags::REPLY_KEY != 0 {
                let l = locals[i];
                pools.reserve(Ipv4Addr::from(l.addr), l.port);
            }
        }
        self.fnat = Some(Box::new(Fnat { locals, pools }));
    }

    /// Swaps the full-NAT local port pools of two tables that both have
    /// local tuples (`set_snat`); `false`, nothing changed, otherwise.
    ///
    /// NAT64 connections live in the IPv6 table (their client side is
    /// IPv6) but their local tuples are IPv4 full-NAT's: one pool per
    /// worker must hand out every local tuple, or an IPv4 full-NAT and a
    /// NAT64 connection could hold the same one. So the IPv6 table keeps
    /// an empty pool and borrows the IPv4 table's around each insert or
    /// remove (a swap of two small structs: no allocation, no copy of the
    /// ports), and a port taken or freed there is taken from or freed to
    /// the one pool.
    pub fn swap_snat_pools(&mut self, other: &mut ConnTable) -> bool {
        match (self.fnat.as_mut(), other.fnat.as_mut()) {
            (Some(a), Some(b)) => {
                std::mem::swap(&mut a.pools, &mut b.pools);
                true
            }
            _ => false,
        }
    }

    /// Runs `f` on this table with `owner`'s full-NAT pools lent to it
    /// ([`swap_snat_pools`](Self::swap_snat_pools)): a local tuple taken
    /// or freed in `f` (an insert, an eviction, an expiry, a removal) is
    /// taken from or freed to `owner`'s pool. Without pools on both sides
    /// `f` runs on the table as it is.
    #[inline]
    pub fn with_lent_pools<R>(
        &mut self,
        owner: &mut ConnTable,
        f: impl FnOnce(&mut ConnTable) -> R,
    ) -> R {
        let lent = owner.swap_snat_pools(self);
        let r = f(self);
        if lent {
            owner.swap_snat_pools(self);
        }
        r
    }

    /// Whether the table keeps full-NAT local tuples (`set_snat` was
    /// called).
    pub fn has_local_tuples(&self) -> bool {
        self.fnat.is_some()
    }

    /// Marks held, in this table's pools, every local tuple a live
    /// full-NAT connection of `other` holds (the NAT64 connections of the
    /// IPv6 table after `set_snat` rebuilt the pools). Cold.
    pub fn reserve_locals_of(&mut self, other: &ConnTable) {
        let (Some(f), Some(o)) = (self.fnat.as_mut(), other.fnat.as_ref()) else {
            return;
        };
        for (i, c) in other.slots.iter().enumerate() {
            if c.in_use() && c.method == Method::Fnat as u8 && c.flags & flags::REPLY_KEY != 0 {
                let l = o.locals[i];
                f.pools.reserve(Ipv4Addr::from(l.addr), l.port);
            }
        }
    }

    /// (free, owned) local ports of this worker on egress port `port`.
    pub fn snat_usage(&self, port: usize) -> (usize, usize) {
        self.fnat.as_ref().map_or((0, 0), |f| f.pools.usage(port))
    }

    /// [`insert_or_evict`](Self::insert_or_evict) for a full-NAT
    /// connection leaving by egress port `port`: takes a local address and
    /// port of this worker's first (none free: [`FnatError::SnatExhausted`],
    /// nothing changed: a live tuple is never reused), gives it back if
    /// the table is full.
    pub fn insert_or_evict_fnat(
        &mut self,
        c: NewConn,
        port: usize,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<ConnId, FnatError> {
        let Some(f) = self.fnat.as_mut() else {
            return Err(FnatError::SnatExhausted);
        };
        let (addr, lport) = f.pools.take(port).ok_or(FnatError::SnatExhausted)?;
        let local = Local {
            addr: u32::from(addr),
            port: lport,
        };
        if self.free_head == NIL {
            let Some((slot, why)) = self.find_victim(now_ms) else {
                if let Some(f) = self.fnat.as_mut() {
                    f.pools.free(addr, lport);
                }
                return Err(FnatError::TableFull);
            };
            let old = self
                .remove(ConnId(slot))
                .expect("eviction victim is in use");
            on_reclaim(&old, why);
        }
        self.insert_with(c, Some(local), None, now_ms)
            .map_err(|_| FnatError::TableFull)
    }

    /// [`insert_or_evict_fnat`](Self::insert_or_evict_fnat) with a given
    /// local tuple (a connection the peer director synced): reserves
    /// `addr:port` in this worker's pools first, so it is never handed out
    /// to another connection while this one lives
    /// ([`FnatError::LocalUnavailable`] when it is not free here, nothing
    /// changed); gives it back if the table is full.
    pub fn insert_or_evict_fnat_at(
        &mut self,
        c: NewConn,
        addr: Ipv4Addr,
        port: u16,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<ConnId, FnatError> {
        let Some(f) = self.fnat.as_mut() else {
            return Err(FnatError::LocalUnavailable);
        };
        if !f.pools.reserve(addr, port) {
            return Err(FnatError::LocalUnavailable);
        }
        let local = Local {
            addr: u32::from(addr),
            port,
        };
        if self.free_head == NIL {
            let Some((slot, why)) = self.find_victim(now_ms) else {
                if let Some(f) = self.fnat.as_mut() {
                    f.pools.free(addr, port);
                }
                return Err(FnatError::TableFull);
            };
            let old = self
                .remove(ConnId(slot))
                .expect("eviction victim is in use");
            on_reclaim(&old, why);
        }
        self.insert_with(c, Some(local), None, now_ms)
            .map_err(|_| FnatError::TableFull)
    }

    /// The connection in slot `id`.
    ///
    /// # Panics
    /// If `id` is beyond the capacity. A freed slot gives its stale record
    /// (debug builds assert).
    #[inline]
    pub fn get(&self, id: ConnId) -> &Conn {
        let c = &self.slots[id.index()];
        debug_assert!(c.in_use(), "get of a free slot {id:?}");
        c
    }

    /// Is `id` a live slot (allocated, expired or not)?
    #[inline]
    pub fn contains(&self, id: ConnId) -> bool {
        self.slots.get(id.index()).is_some_and(|c| c.in_use())
    }

    /// Remove a connection; returns its last record, or `None` if the slot
    /// was free (so a double remove is harmless).
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let c = *self.slots.get(id.index())?;
        if !c.in_use() {
            return None;
        }
        let slot = id.0;
        let h = self.key_hash(&c.inbound_key());
        self.index_remove(h, entry(0, slot, Dir::Inbound));
        if c.flags & flags::REPLY_KEY != 0 {
            let h = self.key_hash(&self.reply_key_of(&c, slot as usize));
            self.index_remove(h, entry(0, slot, Dir::Reply));
            if c.method == Method::Fnat as u8 {
                // Its local port goes back, whatever removed it (expiry,
                // eviction, RST, nodest, flush).
                if let Some(f) = self.fnat.as_mut() {
                    let l = f.locals[slot as usize];
                    f.pools.free(Ipv4Addr::from(l.addr), l.port);
                }
            }
        }
        let s = &mut self.slots[id.index()];
        *s = Conn::EMPTY;
        s.dest = self.free_head;
        self.free_head = slot;
        self.len -= 1;
        if self.pressure && self.len <= self.pressure_off {
            self.apply_pressure(false);
        }
        Some(c)
    }

    /// [`insert`](Self::insert), and when the table is full, make room
    /// first: look at most [`EVICT_WINDOW`] slots ahead of the eviction
    /// hand and take the first expired record there, else the one idle
    /// longest of the evictable ones there (TCP in NONE or SYN_RECV, UDP;
    /// never a template, never TCP in ESTABLISHED or a later state).
    /// `on_reclaim` gets the record removed, and why, so the data plane can
    /// give back its server counts (as for `expire_some`'s `on_expire`).
    /// [`TableFull`] (and nothing removed) when the window holds no such
    /// record; the next call looks at the next window. See the module
    /// docs, "Pressure".
    ///
    /// Costs nothing more than `insert` while a slot is free; when the
    /// table is full, reads up to `EVICT_WINDOW` records (2 KiB, in order).
    pub fn insert_or_evict(
        &mut self,
        c: NewConn,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<ConnId, TableFull> {
        self.insert_or_evict_hashed(c, None, now_ms, on_reclaim)
    }

    /// [`insert_or_evict`](Self::insert_or_evict) given the hash of the
    /// new connection's inbound key, `key_hash(&c`'s inbound key`)`, when
    /// the caller has it: the data plane's first pass hashed the SYN's
    /// flow key, which is that key, for the lookup that missed; it is not
    /// hashed a second time for the insert.
    #[inline(always)]
    pub fn insert_or_evict_hashed(
        &mut self,
        c: NewConn,
        inbound: Option<KeyHash>,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<ConnId, TableFull> {
        if self.free_head == NIL {
            let (slot, why) = self.find_victim(now_ms).ok_or(TableFull)?;
            let old = self
                .remove(ConnId(slot))
                .expect("eviction victim is in use");
            on_reclaim(&old, why);
        }
        self.insert_with(c, None, inbound, now_ms)
    }

    /// Pick the record `insert_or_evict` reclaims, and move the eviction
    /// hand past it (past the whole window when there is none).
    #[cold]
    #[inline(never)]
    fn find_victim(&mut self, now_ms: u64) -> Option<(u32, Reclaim)> {
        let cap = self.slots.len();
        if cap == 0 {
            return None;
        }
        let now = now_ms as u32;
        let next = |i: usize| if i + 1 == cap { 0 } else { i + 1 };
        let mut pos = self.evict_hand as usize;
        // (slot, idle ms) of the idlest evictable record so far; the first
        // one wins a tie, so a window of equals is taken in slot order.
        let mut best: Option<(usize, u32)> = None;
        for _ in 0..EVICT_WINDOW.min(cap) {
            let c = &self.slots[pos];
            if c.in_use() {
                if expired(c.expires, now) {
                    self.evict_hand = next(pos) as u32;
                    return Some((pos as u32, Reclaim::Expired));
                }
                if evictable(c) {
                    let idle = self.idle_ms(c, now);
                    if best.is_none_or(|(_, b)| idle > b) {
                        best = Some((pos, idle));
                    }
                }
            }
            pos = next(pos);
        }
        match best {
            Some((slot, _)) => {
                self.evict_hand = next(slot) as u32;
                Some((slot as u32, Reclaim::Evicted))
            }
            None => {
                self.evict_hand = pos as u32;
                None
            }
        }
    }

    /// About how long ago a live record's last packet armed it, ms: the
    /// timeout of its state minus the time it has left. A record armed
    /// with the configured SYN_RECV timeout before the pressure began has
    /// more left than the shortened one: measured against the configured.
    #[inline]
    fn idle_ms(&self, c: &Conn, now: u32) -> u32 {
        let left = c.expires.wrapping_sub(now);
        let state = c.state();
        let cur = self.timeouts_ms.of(c.proto, state);
        let armed = if left > cur {
            self.base_ms.of(c.proto, state).max(cur)
        } else {
            cur
        };
        armed.saturating_sub(left)
    }

    /// Enter or leave the pressure mode: SYN_RECV armed with
    /// [`PRESSURE_SYN_RECV_S`] (or the configured value if shorter), or as
    /// configured.
    #[cold]
    fn apply_pressure(&mut self, on: bool) {
        self.pressure = on;
        let i = TcpState::SynRecv as usize;
        let base = self.base_ms.tcp[i];
        self.timeouts_ms.tcp[i] = if on {
            base.min(PRESSURE_SYN_RECV_S * 1000)
        } else {
            base
        };
    }

    /// Account one packet of connection `id` seen in `dir` with TCP flags
    /// `tcp_flags` (the header's flag byte; ignored for non-TCP): move the
    /// TCP state along the IPVS table for `dir` and re-arm the expiry to the
    /// new state's timeout (UDP and others: the `udp` timeout).
    #[inline(always)]
    pub fn on_packet(&mut self, id: ConnId, dir: Dir, tcp_flags: u8, now_ms: u64) -> Transition {
        let t = &self.timeouts_ms;
        let c = &mut self.slots[id.index()];
        debug_assert!(c.in_use(), "on_packet of a free slot {id:?}");
        let old = c.state();
        let new = if c.proto == PROTO_TCP {
            let no_output = c.flags & flags::NO_OUTPUT != 0;
            if dir == Dir::Reply && no_output {
                // A reply through us after all: use input/output from now on.
                c.flags &= !flags::NO_OUTPUT;
            }
            let st = next_state(Table::pick(dir, no_output), old, tcp_flags);
            c.state = st as u8;
            st
        } else {
            old
        };
        c.expires = (now_ms as u32).wrapping_add(t.of(c.proto, new));
        Transition {
            old_active: is_active(c.proto, old),
            new_active: is_active(c.proto, new),
            old_state: old,
            state: new,
        }
    }

    /// Sets connection `id`'s TCP state as the peer director reported it
    /// (connection sync); non-TCP connections keep NONE. The caller sets
    /// the expiry ([`set_timeout`](Self::set_timeout)).
    pub fn set_state(&mut self, id: ConnId, state: TcpState) -> Transition {
        let c = &mut self.slots[id.index()];
        let old = c.state();
        let new = if c.proto == PROTO_TCP { state } else { old };
        c.state = new as u8;
        Transition {
            old_active: is_active(c.proto, old),
            new_active: is_active(c.proto, new),
            old_state: old,
            state: new,
        }
    }

    /// Should a segment with `tcp_flags` on connection `id` be scheduled
    /// afresh? True for a SYN without ACK on a TCP connection in TIME_WAIT
    /// or CLOSE (not a template): the data plane removes the connection and
    /// creates a new one (IPVS `conn_reuse_mode` 1, the default).
    #[inline]
    pub fn wants_reschedule(&self, id: ConnId, tcp_flags: u8) -> bool {
        let c = &self.slots[id.index()];
        c.proto == PROTO_TCP
            && tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
            && c.flags & flags::TEMPLATE == 0
            && matches!(c.state(), TcpState::TimeWait | TcpState::Close)
    }

    /// [`on_packet`](Self::on_packet) for the established fast path, when
    /// the segment cannot change the connection's state: any datagram of a
    /// UDP connection, or a TCP segment with ACK and without SYN, FIN or RST
    /// on an ESTABLISHED connection (every IPVS table keeps it there), other
    /// than the first reply of a connection that has seen none
    /// ([`flags::NO_OUTPUT`], which that reply clears). Then it re-arms the
    /// expiry exactly as `on_packet` would and returns true. Otherwise it
    /// changes nothing and returns false: the caller takes the full path,
    /// which calls `on_packet` and accounts the transition.
    #[inline(always)]
    pub fn touch_steady(&mut self, id: ConnId, dir: Dir, tcp_flags: u8, now_ms: u64) -> bool {
        let c = self.slots[id.index()];
        if !Self::is_steady(&c, dir, tcp_flags) {
            return false;
        }
        self.rearm_steady(id, &c, now_ms);
        true
    }

    /// The test of [`touch_steady`](Self::touch_steady) alone, on a record
    /// the caller holds (the one [`lookup_record`](Self::lookup_record)
    /// returned): would this segment leave the connection as it is?
    #[inline(always)]
    pub fn is_steady(c: &Conn, dir: Dir, tcp_flags: u8) -> bool {
        const STEADY: u8 = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST | tcp_flags::ACK;
        c.proto != PROTO_TCP
            || (c.state == TcpState::Established as u8
                && tcp_flags & STEADY == tcp_flags::ACK
                && !(dir == Dir::Reply && c.flags & flags::NO_OUTPUT != 0))
    }

    /// The write of [`touch_steady`](Self::touch_steady) alone, for a
    /// segment [`is_steady`](Self::is_steady) accepted on `c`, the record
    /// of `id`: its expiry re-armed as `on_packet` would (a steady TCP
    /// connection is ESTABLISHED).
    #[inline(always)]
    pub fn rearm_steady(&mut self, id: ConnId, c: &Conn, now_ms: u64) {
        self.rearm_steady_proto(id, c.proto, now_ms);
    }

    /// [`rearm_steady`](Self::rearm_steady) for a caller that kept only
    /// the record's protocol (a steady TCP connection is ESTABLISHED; any
    /// other protocol has the one timeout).
    #[inline(always)]
    pub fn rearm_steady_proto(&mut self, id: ConnId, proto: u8, now_ms: u64) {
        let t = self.timeouts_ms.of(proto, TcpState::Established);
        self.slots[id.index()].expires = (now_ms as u32).wrapping_add(t);
    }

    /// Set connection `id` to expire `timeout_ms` from `now_ms` (clamped to
    /// [`MAX_TIMEOUT_S`]); 0 expires it now, to be reaped (with its
    /// `on_expire`) by the next sweep. For persistence templates, synced
    /// connections, and connections of a server marked down.
    pub fn set_timeout(&mut self, id: ConnId, now_ms: u64, timeout_ms: u32) {
        let c = &mut self.slots[id.index()];
        c.expires = (now_ms as u32).wrapping_add(timeout_ms.min(MAX_TIMEOUT_S * 1000));
    }

    /// Milliseconds until connection `id` expires; 0 once expired.
    pub fn time_left_ms(&self, id: ConnId, now_ms: u64) -> u32 {
        let left = self.slots[id.index()].expires.wrapping_sub(now_ms as u32) as i32;
        left.max(0) as u32
    }

    /// Has connection `id` expired at `now_ms`?
    #[inline]
    pub fn is_expired(&self, id: ConnId, now_ms: u64) -> bool {
        expired(self.slots[id.index()].expires, now_ms as u32)
    }

    /// Advance the expiry hand over at most `budget` slots (wrapping; never
    /// more than one lap per call) and remove every connection found
    /// expired, calling `on_expire` with its record just before. Returns how
    /// many were removed. A full sweep takes `capacity / budget` calls.
    pub fn expire_some(
        &mut self,
        now_ms: u64,
        budget: usize,
        mut on_expire: impl FnMut(&Conn),
    ) -> usize {
        let cap = self.slots.len();
        if cap == 0 {
            return 0;
        }
        let now = now_ms as u32;
        let mut removed = 0;
        for _ in 0..budget.min(cap) {
            let i = self.hand as usize;
            self.hand = if i + 1 == cap { 0 } else { i as u32 + 1 };
            let c = &self.slots[i];
            if c.in_use() && expired(c.expires, now) {
                on_expire(c);
                self.remove(ConnId(i as u32));
                removed += 1;
            }
        }
        removed
    }

    /// Every connection in the table (expired ones not yet reaped included;
    /// see [`is_expired`](Self::is_expired)), in slot order. For listings
    /// and sync; walks the whole slab.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.slots.iter().enumerate(),
        }
    }

    /// Longest probe run currently in the index (diagnostics).
    pub fn max_probe_len(&self) -> usize {
        let mask = self.mask as usize;
        let mut worst = 0;
        for (pos, &e) in self.index.iter().enumerate() {
            if e != 0 {
                let home = (entry_hash(e) & self.mask) as usize;
                worst = worst.max((pos.wrapping_sub(home) & mask) + 1);
            }
        }
        worst
    }

    // ---- index ----

    fn index_insert(&mut self, h: KeyHash, e: u64) {
        let mut pos = h.0 & self.mask;
        // The index always has empty buckets (load <= 0.7), so this ends.
        while self.index[pos as usize] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos as usize] = e;
    }

    /// Remove the entry whose slot/dir part equals that of `e`, then close
    /// the gap by shifting later entries of the run back (no tombstones).
    fn index_remove(&mut self, h: KeyHash, e: u64) {
        let mask = self.mask;
        let low = e & 0xffff_ffff;
        let mut i = h.0 & mask;
        loop {
            let cur = self.index[i as usize];
            assert!(cur != 0, "conn index entry missing");
            if cur & 0xffff_ffff == low {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward shift: walk the run after the hole; an entry may fill the
        // hole if its home is not cyclically within (hole, its position].
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let cur = self.index[j as usize];
            if cur == 0 {
                break;
            }
            let home = entry_hash(cur) & mask;
            // Distance from home to j vs from hole to j, both cyclic.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(i) & mask) {
                self.index[i as usize] = cur;
                i = j;
            }
        }
        self.index[i as usize] = 0;
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mask = self.mask as usize;
        let mut entries = 0;
        for (pos, &e) in self.index.iter().enumerate() {
            if e == 0 {
                continue;
            }
            entries += 1;
            let slot = entry_slot(e);
            let c = &self.slots[slot];
            assert!(c.in_use(), "index points at free slot {slot}");
            let key = match entry_dir(e) {
                Dir::Inbound => c.inbound_key(),
                Dir::Reply => self
                    .reply_key(ConnId(slot as u32))
                    .expect("reply entry without reply key"),
            };
            assert_eq!(entry_hash(e), self.key_hash(&key).0);
            // No empty bucket between home and pos.
            let home = (entry_hash(e) & self.mask) as usize;
            let mut p = home;
            while p != pos {
                assert!(self.index[p] != 0, "gap in probe run");
                p = (p + 1) & mask;
            }
        }
        let live: Vec<_> = self.iter().collect();
        assert_eq!(live.len(), self.len());
        let want: usize = live
            .iter()
            .map(|(_, c)| 1 + (c.flags & flags::REPLY_KEY != 0) as usize)
            .sum();
        assert_eq!(entries, want);
        // Free list covers exactly the free slots.
        let mut free = 0;
        let mut f = self.free_head;
        while f != NIL {
            assert!(!self.slots[f as usize].in_use());
            free += 1;
            f = self.slots[f as usize].dest;
            assert!(free <= self.capacity());
        }
        assert_eq!(free + self.len(), self.capacity());
    }
}

/// Iterator over a table's connections ([`ConnTable::iter`]).
pub struct Iter<'a> {
    inner: std::iter::Enumerate<std::slice::Iter<'a, Conn>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (ConnId, &'a Conn);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        for (i, c) in self.inner.by_ref() {
            if c.in_use() {
                return Some((ConnId(i as u32), c));
            }
        }
        None
    }
}
