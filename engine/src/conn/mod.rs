//! The per-worker connection table: connection records, their index by flow
//! key, IPVS TCP state tracking, timeouts and expiry.
//!
//! # Ownership
//!
//! One [`ConnTable`] per worker thread; only that worker touches it, so there
//! are no atomics and no locks. A connection belongs to the worker
//! [`owner_worker`]`(client ip, client port, workers)` (SPEC §2): the
//! queue the NIC's RSS delivers the flow to, both directions ([`rss`]).
//!
//! # Memory
//!
//! Everything is allocated by [`ConnTable::with_capacity`] (or
//! [`ConnTable::with_capacity_in`]: DPDK's hugepages, or anonymous memory
//! hinted for huge or 4 KiB pages, see `dataplane::region`) and never again:
//!
//! * the slab: `capacity` records of [`Conn`], 32 bytes each, aligned to 32
//!   so that one record never straddles a cache line. Unused slots form an
//!   intrusive singly linked free list (the `dest` word of a free slot holds
//!   the next free slot).
//! * the index: open addressing, linear probing, backward-shift deletion (no
//!   tombstones), `2^k` buckets of 8 bytes (`hash:32 | dir:1 | slot+1:31`,
//!   0 = empty). Every connection may need two keys (NAT: inbound and
//!   reply), so the index is sized for `2 * capacity` keys at a load factor of
//!   at most 0.7: `buckets = next_pow2(ceil(2 * capacity / 0.7))`, hence
//!   between 22.9 and 45.7 bytes of index per connection (32 exactly when
//!   `capacity` is a power of two).
//!
//! Total: 64 bytes per connection at power-of-two capacities (1 Mi
//! connections: 64 MiB), at most 78 bytes otherwise. [`ConnTable::memory_bytes`]
//! reports the exact figure.
//!
//! # Keys and lookups
//!
//! A [`FlowKey`] is the packet's own 5-tuple as seen on the wire. A NAT
//! connection is indexed twice: by its inbound key (client, cport, vip,
//! vport) and by its reply key (server, sport, client, cport); DR and TUN
//! connections, and persistence templates, only by the inbound key.
//! [`ConnTable::lookup`] says which of the two matched ([`Dir`]).
//!
//! The index hash is a keyed mix (two 64x64->128 folded multiplies) with a
//! per-table random seed, so an attacker cannot aim SYNs at one probe run;
//! [`ConnTable::prefetch`] hashes a key and prefetches its bucket so the data
//! plane can overlap the cache misses of a burst. The full pipeline for a
//! burst is three passes: [`ConnTable::key_hash`] +
//! [`ConnTable::prefetch_hashed`] for every packet, then
//! [`ConnTable::prefetch_conn_hashed`] (prefetches the record), then
//! [`ConnTable::lookup_hashed`]. Measured on the shared 2-core test VM with
//! 1 Mi NAT connections (64 MiB, THP hinted): 143 ns for a lone lookup (two
//! dependent cache misses), 67 ns per lookup with bucket prefetch, 42 ns
//! with both prefetch passes; ~215 ns per insert, ~370 ns for
//! lookup+remove+insert at full load.
//!
//! The slab and the index are allocated (and first touched) by the
//! constructor: build the table on the worker's own thread so the pages
//! come from its NUMA node.
//!
//! # Expiry clock
//!
//! Time is the caller's monotonic `now_ms: u64`. A record stores its expiry
//! as the low 32 bits of `now_ms + timeout` and compares with wrapping
//! (serial number) arithmetic: a record is expired when
//! `(now as u32).wrapping_sub(expires) as i32 >= 0`, that is when
//! `now_ms >= expiry` exactly. This holds with no limit on uptime provided
//!
//! * timeouts stay below 2^31 ms (24.8 days): they are clamped to
//!   [`MAX_TIMEOUT_S`] = 10^6 s (11.6 days), and
//! * an expired record is reaped within 2^31 ms minus its timeout (more than
//!   13 days) of expiring — the [`ConnTable::expire_some`] sweep visits every
//!   slot every `capacity / budget` calls, i.e. within milliseconds to
//!   seconds (see below), so this is a very wide margin.
//!
//! # Expiry sweep
//!
//! Nothing per packet: [`ConnTable::expire_some`] moves a clock hand over
//! the slab, `budget` slots per call, wrapping, and removes expired records
//! (calling `on_expire` first so the data plane can fix its per-server
//! counters). A full sweep takes `capacity / budget` calls. Example: 1 Mi
//! connections per worker, `budget = 64` per burst, and a worker that polls
//! 300 000 times per second (busy at ~10 Mpps in bursts of 32, or idle):
//! 16 384 calls = **55 ms** per sweep; at a mere 10 000 bursts/s it is 1.6 s.
//! The CPU cost is about 4 ns per slot looked at (~250 ns per call at
//! budget 64, 4 ms per sweep of 1 Mi slots in total) plus ~200 ns per
//! connection actually removed.
//! An expired record is therefore reaped at most one sweep after its expiry;
//! in between, [`ConnTable::lookup`] already treats it as a miss (and skips
//! it, so a new connection with the same key is found). Each call touches at
//! most `budget * 32` bytes of slab (2 KiB at 64) plus the index entries of
//! what it removes.
//!
//! # Pressure
//!
//! A SYN flood from spoofed sources, or spoofed UDP (300 s per record),
//! fills any table; it must neither lock legitimate clients out nor cost an
//! established connection (SPEC §5, §10). The rules below add no work to
//! [`ConnTable::lookup`] or [`ConnTable::on_packet`]:
//!
//! * **Reuse and evict on insert.** The data plane inserts with
//!   [`ConnTable::insert_or_evict`]. While the free list has a slot, that
//!   is all. When it is empty, the table looks at the [`EVICT_WINDOW`] = 64
//!   slots ahead of an *eviction hand* (its own, not the expiry hand's) and
//!   reclaims (1) the first record there that has expired but was not swept
//!   yet, whatever it is ([`Reclaim::Expired`]), else (2) of the
//!   *evictable* records there, the one idle longest ([`Reclaim::Evicted`];
//!   ties go to slot order). Evictable: TCP in NONE or SYN_RECV (nobody
//!   completed the handshake), UDP, and records a rescue opened
//!   ([`flags::RESCUED`]: a spoofed ACK can open one, so it must not be
//!   able to take a slot for good). Never evicted otherwise: TCP in ESTABLISHED or
//!   any later state (FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, and
//!   SYN_SENT, SYNACK, LISTEN) and persistence templates. The hand moves
//!   just past the record taken. A window without a candidate refuses that
//!   one insert ([`TableFull`], counted by the data plane) and the hand
//!   moves a window on: a table full of established connections refuses
//!   every new one and loses none. The callback gets the record removed,
//!   so the data plane gives back its server's counts as for an expiry.
//! * **Embryonic TCP and UDP are one class, ordered by idle time** (the
//!   timeout of the record's state minus the time it has left: the time
//!   since its last packet). A fixed order would let a flood of one
//!   protocol starve the other: with "SYN_RECV before UDP", spoofed
//!   datagrams evict every open handshake before a single UDP record goes;
//!   with "UDP first", a SYN flood evicts every UDP flow. By idle time, a
//!   one-shot spoofed SYN or datagram ages until the hand comes round and
//!   goes, while a UDP flow that keeps sending stays young and is passed
//!   over.
//! * **Each handshake gets one lap of the hand.** A new record takes the
//!   victim's slot, just behind the hand, so it is looked at again only
//!   once the hand has been round the table, about as many evictions later
//!   as there are evictable records (`capacity` minus established and
//!   templates). Oldest first gives every new record the longest sure life
//!   (random eviction would lose 40 % of them within half a lap). A client
//!   gets in when its ACK arrives before that many more new records: 10 000
//!   entries under a flood of 10 spoofed SYNs/µs give it about 1 ms, 1 Mi
//!   entries at 1 Mpps about a second. Simulated
//!   (`conn_pressure_syn_flood_simulation`): 200 000 spoofed SYNs into 10 000 entries holding 2 000 established
//!   connections, a client every 100 SYNs with its ACK 5 000 SYNs later:
//!   99.7 % of them get in (the others were refused while the hand crossed
//!   the block of established records), none of the established is lost;
//!   with the ACK 9 000 SYNs later, past the bound, 4 %.
//! * **Short SYN_RECV under pressure.** From [`PRESSURE_ON_PERCENT`] = 90 %
//!   full (rounded up) until it is back at [`PRESSURE_OFF_PERCENT`] = 80 %
//!   (rounded down), the table arms SYN_RECV with [`PRESSURE_SYN_RECV_S`] =
//!   3 s instead of the configured timeout (default 60 s; the configured
//!   one if it is shorter): time for a client's ACK after a lost SYN-ACK
//!   and a retransmission. Records armed before keep their expiry until
//!   their next segment. The insert or remove that crosses a threshold
//!   rewrites one entry of the timeout table; nothing is checked per
//!   packet. A flood below `capacity / 3 s` (350 k SYN/s for 1 Mi entries;
//!   it used to be `capacity / 60 s`, 17.5 k/s) no longer fills the table:
//!   it stays between about 80 and 90 %.
//!
//! Cost: nothing while a slot is free. A full table reads up to 64 records
//! in slot order (2 KiB, as one [`ConnTable::expire_some`] call of budget
//! 64) per insert, plus the removal of the record it takes.
//!
//! # TCP states
//!
//! See [`state`]: the IPVS input / output / input-only tables, flag priority
//! RST > SYN > FIN > ACK, and every segment re-arms the expiry to the
//! timeout of the new state. UDP: every datagram re-arms `udp`.

pub mod addr6;
mod hash;
pub mod rss;
pub mod snat;
pub mod state;
mod table;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

pub use rss::owner_worker;
pub use snat::SnatSpec;
pub use state::{is_active, tcp_flags, TcpState, Timeouts, MAX_TIMEOUT_S, NONE_TIMEOUT_S};
pub(crate) use table::prefetch_ptr;
pub use table::{ConnTable, EntryPrefetch, Hint, Iter, KeyHash, MAX_CAPACITY};

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A packet's 5-tuple as seen on the wire: source and destination address
/// and port, and the IP protocol. Ports in host byte order. 16 bytes.
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

impl FlowKey {
    #[inline]
    pub fn new(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
        }
    }

    /// The same key as the table compares and hashes it.
    #[inline(always)]
    pub fn wire(&self) -> WireKey {
        WireKey {
            addrs: u64::from(u32::from(self.src)) << 32 | u64::from(u32::from(self.dst)),
            ports: u32::from(self.sport) << 16 | u32::from(self.dport),
            proto: self.proto,
        }
    }
}

/// A [`FlowKey`] as two machine words and the protocol: what the table's
/// hash and compare work on. Read straight off a frame, it is the
/// big-endian load of the 8 address bytes and of the 4 port bytes
/// (`WireKey::from_headers`); a [`Conn`] holds each of its two keys as
/// the same two words at fixed offsets, so a record matches a key in two
/// word compares and a byte compare ([`Conn::matches_wire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireKey {
    /// Source address << 32 | destination address (host order).
    pub addrs: u64,
    /// Source port << 16 | destination port.
    pub ports: u32,
    pub proto: u8,
}

impl WireKey {
    /// The key of an IPv4 packet from its header bytes: `addrs` the 8
    /// bytes at IP offset 12 (source, destination), `ports` the 4 bytes at
    /// the start of the TCP/UDP header.
    #[inline(always)]
    pub fn from_headers(proto: u8, addrs: [u8; 8], ports: [u8; 4]) -> WireKey {
        WireKey {
            addrs: u64::from_be_bytes(addrs),
            ports: u32::from_be_bytes(ports),
            proto,
        }
    }

    /// The [`FlowKey`] of the same flow.
    #[inline]
    pub fn flow(&self) -> FlowKey {
        FlowKey::new(
            self.proto,
            Ipv4Addr::from((self.addrs >> 32) as u32),
            (self.ports >> 16) as u16,
            Ipv4Addr::from(self.addrs as u32),
            self.ports as u16,
        )
    }
}

/// Which key of a connection a packet matched.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client -> VIP (the inbound key).
    Inbound = 0,
    /// Real server -> client (the reply key; NAT only).
    Reply = 1,
}

/// A connection's slot in its table. Valid until the connection is removed
/// (explicitly or by [`ConnTable::expire_some`]); the slot is then reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl ConnId {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Forwarding method of a connection (IPVS: masquerading, direct routing,
/// tunnelling).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Nat = 0,
    Dr = 1,
    Tun = 2,
    /// Full-NAT (DPVS): both ends rewritten; the local tuple lives in the
    /// table's side array ([`ConnTable::local`]).
    Fnat = 3,
}

impl Method {
    #[inline]
    pub fn from_u8(v: u8) -> Option<Method> {
        match v {
            0 => Some(Method::Nat),
            1 => Some(Method::Dr),
            2 => Some(Method::Tun),
            3 => Some(Method::Fnat),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Nat => "nat",
            Method::Dr => "dr",
            Method::Tun => "tun",
            Method::Fnat => "fnat",
        }
    }
}

/// Connection flags the caller may set in [`NewConn::flags`] and read back
/// from [`Conn::flags`].
pub mod flags {
    /// Created from a sync message of the peer director.
    pub const SYNCED: u8 = 0x04;
    /// A persistence template (client net -> server); indexed by its inbound
    /// key only, whatever the method, and its expiry is the caller's
    /// ([`ConnTable::set_timeout`](super::ConnTable::set_timeout)).
    pub const TEMPLATE: u8 = 0x08;
    /// Opened by the "rescue" of a moved flow (a non-SYN segment that
    /// missed the table on an `mh` DR/TUN service): nothing proves a real
    /// client is behind it, so under pressure it is evictable by idle time
    /// like embryonic TCP and UDP (see "Pressure"), whatever its state. A
    /// live flow keeps it young; an evicted one is rescued again, to the
    /// same server, by its next segment.
    pub const RESCUED: u8 = 0x20;
    /// Free for the data plane.
    pub const USER1: u8 = 0x40;
    /// Free for the data plane.
    pub const USER2: u8 = 0x80;
    /// Every flag a caller may set.
    pub const CALLER_MASK: u8 = SYNCED | TEMPLATE | RESCUED | USER1 | USER2;

    // Kept by the table.
    pub(crate) const IN_USE: u8 = 0x01;
    /// IPVS `NOOUTPUT`: no reply seen (yet) on a DR/TUN connection, so client
    /// segments use the input-only table.
    pub const NO_OUTPUT: u8 = 0x02;
    /// Indexed by its reply key too.
    pub(crate) const REPLY_KEY: u8 = 0x10;
}

/// What the data plane knows when it creates a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewConn {
    pub proto: u8,
    pub client: Ipv4Addr,
    pub cport: u16,
    pub vip: Ipv4Addr,
    pub vport: u16,
    pub server: Ipv4Addr,
    pub sport: u16,
    pub method: Method,
    /// Any of [`flags::CALLER_MASK`]; other bits are ignored.
    pub flags: u8,
    /// Opaque service id.
    pub service: u16,
    /// Opaque real-server id.
    pub dest: u32,
    /// Initial state: `TcpState::None` for a fresh connection (the data
    /// plane then feeds the first segment to [`ConnTable::on_packet`]); a
    /// synced connection brings its peer's state. Ignored (NONE) for non-TCP.
    pub state: TcpState,
}

/// One connection. 32 bytes, `#[repr(C)]`, aligned to 32:
///
/// | off | field   | bytes | |
/// |----:|---------|------:|---|
/// |  0  | addrs   | 12 | VIP, client, real server: IPv4, host order |
/// | 12  | ports   | 6 | VIP port, client port, real server port |
/// | 18  | service | 2 | opaque service id |
/// | 20  | dest    | 4 | opaque server id; next free slot while free |
/// | 24  | expires | 4 | low 32 bits of the expiry time, ms |
/// | 28  | proto   | 1 | |
/// | 29  | state   | 1 | [`TcpState`] |
/// | 30  | method  | 1 | [`Method`] |
/// | 31  | flags   | 1 | [`flags`] |
///
/// The order of the addresses and ports makes each of the record's keys
/// two adjacent words: the inbound key (client -> VIP) is `addrs[1] << 32
/// | addrs[0]` and `ports[1] << 16 | ports[0]`, the reply key (server ->
/// client) the same one element on ([`Conn::key_words`]): a lookup
/// compares a [`WireKey`] with two word loads at an offset of the
/// direction, no field-by-field select.
///
/// The index needs nothing stored here: a record's keys are recomputed from
/// its addresses when it is removed.
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// VIP, client, server.
    addrs: [u32; 3],
    /// VIP port, client port, server port.
    ports: [u16; 3],
    service: u16,
    dest: u32,
    expires: u32,
    proto: u8,
    state: u8,
    method: u8,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Conn>() == 32);
const _: () = assert!(std::mem::size_of::<FlowKey>() == 16);

/// Indexes of [`Conn::addrs`] and [`Conn::ports`].
const VIP: usize = 0;
const CLIENT: usize = 1;
const SERVER: usize = 2;

impl Conn {
    pub(crate) const EMPTY: Conn = Conn {
        addrs: [0; 3],
        ports: [0; 3],
        service: 0,
        dest: 0,
        expires: 0,
        proto: 0,
        state: 0,
        method: 0,
        flags: 0,
    };

    #[inline]
    pub fn client(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addrs[CLIENT])
    }
    #[inline]
    pub fn cport(&self) -> u16 {
        self.ports[CLIENT]
    }
    #[inline]
    pub fn vip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addrs[VIP])
    }
    #[inline]
    pub fn vport(&self) -> u16 {
        self.ports[VIP]
    }
    #[inline]
    pub fn server(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addrs[SERVER])
    }
    #[inline]
    pub fn sport(&self) -> u16 {
        self.ports[SERVER]
    }
    #[inline]
    pub fn proto(&self) -> u8 {
        self.proto
    }
    #[inline]
    pub fn state(&self) -> TcpState {
        // Only valid states are ever stored.
        TcpState::from_u8(self.state).unwrap_or(TcpState::None)
    }
    #[inline]
    pub fn method(&self) -> Method {
        Method::from_u8(self.method).unwrap_or(Method::Nat)
    }
    /// All flag bits ([`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.flags
    }
    #[inline]
    pub fn is_synced(&self) -> bool {
        self.flags & flags::SYNCED != 0
    }
    #[inline]
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }
    #[inline]
    pub fn service(&self) -> u16 {
        self.service
    }
    #[inline]
    pub fn dest(&self) -> u32 {
        self.dest
    }
    /// Active for the schedulers ([`is_active`] of its protocol and state).
    #[inline]
    pub fn is_active(&self) -> bool {
        is_active(self.proto, self.state())
    }
    /// The key of client -> VIP packets.
    #[inline]
    pub fn inbound_key(&self) -> FlowKey {
        FlowKey::new(
            self.proto,
            self.client(),
            self.cport(),
            self.vip(),
            self.vport(),
        )
    }
    /// The key of server -> client packets, if the connection is indexed by
    /// it (NAT, not a template). Full-NAT replies go to the local tuple,
    /// which the record does not hold: see [`ConnTable::reply_key`].
    #[inline]
    pub fn reply_key(&self) -> Option<FlowKey> {
        if self.flags & flags::REPLY_KEY != 0 && self.method != Method::Fnat as u8 {
            Some(self.reply_key_raw())
        } else {
            None
        }
    }

    #[inline]
    fn reply_key_raw(&self) -> FlowKey {
        FlowKey::new(
            self.proto,
            self.server(),
            self.sport(),
            self.client(),
            self.cport(),
        )
    }

    #[inline]
    pub(crate) fn in_use(&self) -> bool {
        self.flags & flags::IN_USE != 0
    }

    /// Does `k` equal this record's key for `dir`? Two word compares and
    /// a byte compare, folded into one test.
    #[inline(always)]
    pub(crate) fn matches_wire(&self, k: &WireKey, dir: Dir) -> bool {
        let (addrs, ports) = self.key_words(dir);
        (addrs ^ k.addrs) | u64::from(ports ^ k.ports) | u64::from(self.proto ^ k.proto) == 0
    }

    /// The addresses and ports of this record's key for `dir`, as in a
    /// [`WireKey`]: source << 32 | destination. Inbound, client -> VIP
    /// (elements 1 and 0); reply, server -> client (2 and 1).
    #[inline(always)]
    pub fn key_words(&self, dir: Dir) -> (u64, u32) {
        let d = dir as usize & 1;
        let addrs = u64::from(self.addrs[d + 1]) << 32 | u64::from(self.addrs[d]);
        let ports = u32::from(self.ports[d + 1]) << 16 | u32::from(self.ports[d]);
        (addrs, ports)
    }

    /// What NAT writes into a packet of direction `dir`: inbound, the
    /// server's address and port (as destination); reply, the VIP's (as
    /// source). Host order.
    #[inline(always)]
    pub fn nat_target(&self, dir: Dir) -> (u32, u16) {
        let i = (1 - (dir as usize & 1)) * SERVER;
        (self.addrs[i], self.ports[i])
    }

    /// The address a packet of direction `dir` is going to: inbound, the
    /// server (NAT, DR, TUN); reply, the client. Host order.
    #[inline(always)]
    pub fn next_hop_addr(&self, dir: Dir) -> u32 {
        self.addrs[SERVER - (dir as usize & 1)]
    }

    /// Builds the record of `c` (the table fills in the rest).
    #[inline]
    pub(crate) fn with_tuple(c: &NewConn) -> Conn {
        let mut r = Conn::EMPTY;
        r.addrs = [u32::from(c.vip), u32::from(c.client), u32::from(c.server)];
        r.ports = [c.vport, c.cport, c.sport];
        r
    }
}

/// Returned by [`ConnTable::insert`] when every slot is taken, and by
/// [`ConnTable::insert_or_evict`] when moreover nothing near its eviction
/// hand may be evicted: the data plane drops the packet and counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection table full")]
pub struct TableFull;

/// Why [`ConnTable::insert_or_evict_fnat`] refused a full-NAT connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FnatError {
    #[error("connection table full")]
    TableFull,
    /// Every local port this worker owns on the egress port is held.
    #[error("no free full-NAT local port")]
    SnatExhausted,
    /// [`ConnTable::insert_or_evict_fnat_at`]: the local tuple asked for is
    /// not a free port of this worker (held, another worker's, or in no
    /// pool of this configuration).
    #[error("full-NAT local tuple not available here")]
    LocalUnavailable,
}

/// Why [`ConnTable::insert_or_evict`] removed a record to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// It had expired and the sweep had not reaped it yet: what
    /// [`ConnTable::expire_some`] would have done.
    Expired,
    /// A live embryonic TCP (NONE, SYN_RECV) or UDP connection, evicted
    /// because the table was full.
    Evicted,
}

/// How many slots ahead of its eviction hand a full table looks for a
/// record to reclaim ([`ConnTable::insert_or_evict`]).
pub const EVICT_WINDOW: usize = 64;

/// A table this full (percent of its capacity, rounded up) is under
/// pressure: SYN_RECV is armed with [`PRESSURE_SYN_RECV_S`].
pub const PRESSURE_ON_PERCENT: u32 = 90;

/// ... until it is no fuller than this (percent, rounded down).
pub const PRESSURE_OFF_PERCENT: u32 = 80;

/// The SYN_RECV timeout under pressure, seconds (or the configured one if
/// shorter), instead of the IPVS default 60.
pub const PRESSURE_SYN_RECV_S: u32 = 3;

/// What a packet did to its connection ([`ConnTable::on_packet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Was the connection active before the packet?
    pub old_active: bool,
    /// Is it active now? When this differs from `old_active` the data plane
    /// moves one connection between the server's active and inactive counts.
    pub new_active: bool,
    /// State before the packet.
    pub old_state: TcpState,
    /// State now (NONE for non-TCP).
    pub state: TcpState,
}
