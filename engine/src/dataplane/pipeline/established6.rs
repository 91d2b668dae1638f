//! The IPv6 established fast path: a steady packet of a tracked IPv6 NAT or DR flow, forwarded with what this worker already knows (the twin of `established.rs`).
//!
//! The first pass over a burst ([`Pipeline::inspect6`]) recognises the
//! common IPv6 shape (`packet::parse_fast6`: untagged, TCP/UDP as the first
//! next header), resolves the two addresses to their ids in the IPv6
//! table (`conn::addr6`) and hashes the flow key, so the burst's next
//! passes prefetch the table's bucket and record as they do for IPv4.
//! Then, for each frame, this path checks in a few compares that the full
//! path (`v6.rs`, `nat6.rs`) would decide what it decided for the flow's
//! previous packet, and forwards:
//!
//! * the frame is unicast to the arrival port, with a hop limit to
//!   decrement; the director is the `[ha]` master and `[ha] sync` is off
//!   (each packet may report the connection to the peer);
//! * the ids the first pass resolved still name the same addresses (no id
//!   was freed since: [`Addr6Table::epoch`](crate::conn::addr6::Addr6Table::epoch));
//! * a TCP segment is steady (ACK, no SYN/FIN/RST), or it is UDP;
//! * the connection is found, is NAT or DR (not NAT64, whose records are
//!   full-NAT ones, not TUN, not a template), and its server is still in
//!   the snapshot and usable;
//! * it is what the full path forwards: a client's packet to its service's
//!   VIP, or a reply from the connection's server to a client that is none
//!   of the director's addresses (a VIP, a NAT64 VIP, a port's address:
//!   one lookup in the snapshot's set, `snapshot::Own6`, kept by
//!   `dest_fast6.rs`) and not
//!   link-local (those stay the kernel's, as `forward6` decides);
//! * this worker owns the flow (or it was handed over);
//! * the next hop is in this worker's IPv6 next-hop cache and still valid
//!   (the same snapshot, the neighbour entry unchanged, checked with the
//!   neighbour table less than 100 ms ago, as IPv4's `nexthop.rs`), and
//!   the packet fits its port's MTU;
//! * the segment leaves the TCP state as it is (its flags, tested before
//!   the lookup, and `ConnTable::is_steady` on the record it returned). A
//!   segment that moves it is looked up all the same: the transition
//!   path's commit (`transition6.rs`, `moves6`) takes the hit, the
//!   new-flow path the miss, without a lookup of their own (as IPv4's
//!   `established.rs`). A frame whose ids the first pass did not find,
//!   or found in an older epoch, and every frame under `[ha] sync` go to
//!   `transition6`, which resolves and looks up itself.
//!
//! Anything else returns `None` before anything is written, and the full
//! path decides exactly as before. The rewrite is `forward::nat6_sum` or
//! `forward::dr6_pair`: fixed offsets, the same incremental checksum with
//! its address part precomputed per server and direction
//! (`dest_fast6::Edge6`), the MACs one 12-byte copy.

use std::net::Ipv6Addr;

use super::dest_fast6::from_raw;
use super::nat6::Conns6;
use super::nexthop::HOP_CACHE_MS;
use super::{rewrite_drop, synproxy, Frame, Inspected, Pipeline, Verdict};
use crate::conn::{
    self, addr6, tcp_flags, Conn, ConnId, ConnTable, Dir, Hint, KeyHash, Method, WireKey,
};
use crate::dataplane::neigh::{NeighTable6, Stamp};
use crate::dataplane::snapshot::{fold6, Snapshot};
use crate::forward::{self, NatSide};
use crate::packet::ethernet::MacAddr;
use crate::packet::ipv6;
use crate::packet::parse_fast6::{is_fast_shape6, L4_OFF6};

/// What the burst's passes keep of a frame of the common IPv6 shape.
///
/// The first pass ([`Pipeline::inspect6`]) reads the frame's addresses,
/// ports and protocol, and prefetches the id table's buckets of the two
/// addresses (`home_src`, `home_dst`); the second
/// ([`resolve6`]) reads those buckets for the addresses' ids,
/// hashes the flow key and prefetches its bucket in the connection table,
/// then reads that bucket and prefetches the record (`Inspected::hint`).
/// Each of the three dependent reads (id bucket, table bucket, record) so
/// has a pass's work to arrive: the first pass used to resolve the ids
/// itself and stalled on a client's bucket before it could even prefetch
/// the table's. No hash after the second pass: an address has no id, so
/// no connection can match.
#[derive(Clone, Copy, Debug)]
pub struct Flow6 {
    pub(super) hash: Option<KeyHash>,
    /// The flow key in the IPv6 table: ports and protocol from the first
    /// pass, the addresses' ids (`addrs`) from the second; the established
    /// path looks it up as it is.
    pub(super) key: WireKey,
    /// The id table's epoch the ids were read in.
    pub(super) epoch: u32,
    home_src: u32,
    home_dst: u32,
    /// The addresses, in the frame's byte order (`u128::from_ne_bytes`).
    pub(super) src_addr: u128,
    pub(super) dst_addr: u128,
}

impl Flow6 {
    pub const NONE: Flow6 = Flow6 {
        hash: None,
        key: WireKey {
            addrs: 0,
            ports: 0,
            proto: 0,
        },
        epoch: 0,
        home_src: 0,
        home_dst: 0,
        src_addr: 0,
        dst_addr: 0,
    };
}

impl Flow6 {
    /// The id table's homes of the source and destination addresses (the
    /// first pass's: `Addr6Table::acquire_at` does not hash them again).
    #[inline(always)]
    pub(super) fn homes(&self) -> (usize, usize) {
        (self.home_src as usize, self.home_dst as usize)
    }

    /// The flow's key in the IPv6 table once its source and destination
    /// have ids `src` and `dst`.
    #[inline(always)]
    pub(super) fn key_with(&self, src: u32, dst: u32) -> WireKey {
        WireKey {
            addrs: u64::from(src) << 32 | u64::from(dst),
            ..self.key
        }
    }

    /// This flow as the new-flow path opened it (`open6`): its key `key`
    /// ([`key_with`](Self::key_with) the ids the connection holds) hashes
    /// to `hash`, in the id table's epoch `epoch`.
    #[inline(always)]
    pub(super) fn opened(&self, key: WireKey, hash: KeyHash, epoch: u32) -> Flow6 {
        Flow6 {
            hash: Some(hash),
            key,
            epoch,
            ..*self
        }
    }
}

/// Offsets of the addresses in a frame of that shape.
const SRC6: usize = 22;
const DST6: usize = 38;

/// The address at `at` as the id table holds it ([`addr6::raw`]).
#[inline(always)]
fn addr_ne(h: &[u8; L4_OFF6 + 8], at: usize) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&h[at..at + 16]);
    u128::from_ne_bytes(a)
}

/// What the established path reads of the frame besides its flow (which
/// the first pass kept in [`Flow6`]).
#[derive(Clone, Copy)]
pub(super) struct Tail6 {
    pub(super) dst_mac: [u8; 6],
    pub(super) hop: u8,
    /// TCP flags (0 for UDP).
    pub(super) flags: u8,
    /// The IPv6 payload length.
    pub(super) payload: u16,
}

impl Tail6 {
    #[inline(always)]
    pub(super) fn read(frame: &[u8], protocol: u8) -> Option<Tail6> {
        let h = frame.first_chunk::<{ L4_OFF6 + 8 }>()?;
        let flags = if protocol == conn::PROTO_TCP {
            *frame.get(L4_OFF6 + 13)?
        } else {
            0
        };
        Some(Tail6 {
            dst_mac: [h[0], h[1], h[2], h[3], h[4], h[5]],
            hop: h[21],
            flags,
            payload: u16::from_be_bytes([h[18], h[19]]),
        })
    }
}

/// The TCP flags whose value decides a transition: a steady segment has
/// ACK and none of the others.
pub(super) const STEADY_MASK: u8 =
    tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST | tcp_flags::ACK;

/// Connection flags that send a packet to the full path.
pub(super) const SLOW_FLAGS: u8 = synproxy::SYNPROXY | conn::flags::TEMPLATE;

/// IPv6 next hops one worker remembers (direct-mapped by address).
pub(super) const HOP6_CACHE: usize = 16;

/// A resolved IPv6 next hop, valid for one snapshot while the neighbour
/// entry it came from is unchanged, until `until_ms` (`nexthop::Hop`'s
/// rules), with what the fast path needs of its egress port.
#[derive(Clone, Copy)]
pub(super) struct Hop6 {
    /// The address, as `addr6::raw` (the frame's byte order).
    pub(super) ip: u128,
    pub(super) port: u32,
    /// The next hop's MAC then the egress port's: the frame's first 12
    /// bytes, one copy.
    pub(super) macs: [u8; 12],
    pub(super) port_mtu: u16,
    pub(super) until_ms: u64,
    pub(super) generation: u64,
    pub(super) snapshot: usize,
    pub(super) entry: usize,
    pub(super) version: u64,
}

impl Hop6 {
    pub(super) const EMPTY: Hop6 = Hop6 {
        ip: 0,
        port: 0,
        macs: [0; 12],
        port_mtu: 0,
        until_ms: 0,
        generation: 0,
        snapshot: 0,
        entry: 0,
        version: 0,
    };
}

/// What the rewrite needs of a next hop ([`Hop6`] without its validity
/// stamps): the egress port, its MTU, the frame's two MACs.
#[derive(Clone, Copy)]
struct Out6 {
    port: u32,
    mtu: u16,
    macs: [u8; 12],
}

impl Out6 {
    #[inline(always)]
    fn of(h: &Hop6) -> Out6 {
        Out6 {
            port: h.port,
            mtu: h.port_mtu,
            macs: h.macs,
        }
    }
}

/// Where the fast paths send a packet of a tracked IPv6 flow
/// ([`Pipeline::route6_fast`]): the server's entry (`dest_fast6.rs`,
/// whose NAT edge has the address the rewrite writes) and the next hop.
/// A few words: the NAT edge is read again where it is written, not
/// carried (a 16-byte address in it cost a copy through the stack).
pub(super) struct Route6 {
    di: usize,
    h: Out6,
}

impl Route6 {
    /// The server's index in the IPv6 server table (`DestTable6`).
    #[inline(always)]
    pub(super) fn di(&self) -> usize {
        self.di
    }
}

/// Whether `a` (as `addr6::raw`) is link-local (`fe80::/10`).
#[inline(always)]
fn is_link_local(a: u128) -> bool {
    let b = a.to_ne_bytes();
    b[0] == 0xfe && b[1] & 0xc0 == 0x80
}

/// [`Pipeline::prefetch_conns6`]'s first step for one frame: true when
/// both addresses have ids (then `fl` has its key and hash, and the
/// hash's bucket is prefetched).
#[inline(always)]
fn resolve6(v6: &Conns6, fl: &mut Flow6) -> bool {
    // The source first: a new client's frames (no id yet) stop there.
    let Some(src) = v6.addrs.get_at(fl.home_src as usize, fl.src_addr) else {
        return false;
    };
    let Some(dst) = v6.addrs.get_at(fl.home_dst as usize, fl.dst_addr) else {
        return false;
    };
    fl.key.addrs = u64::from(src) << 32 | u64::from(dst);
    let h = v6.conns.key_hash_wire(&fl.key);
    v6.conns.prefetch_hashed(h);
    fl.hash = Some(h);
    fl.epoch = v6.addrs.epoch();
    true
}

/// [`resolve6`] for a frame whose first pass ran before its flow had ids
/// (the SYN before its ACK, data and FIN in one burst; a UDP flow's first
/// datagrams): the key and hash of `fl` with its ids as they are now, from
/// the flow the new-flow path opened last (`Conns6::opened`) when it is
/// this one, in the same epoch (its ids still name its addresses, and its
/// hash is the insert's), else from the id table. `None`: an address has
/// no id, so no connection. Nothing is written (the caller looks the key
/// up at once: no prefetch).
#[inline(always)]
pub(super) fn resolve_again6(v6: &Conns6, fl: &Flow6) -> Option<(WireKey, KeyHash)> {
    let o = &v6.opened;
    if let Some(h) = o.hash {
        if o.epoch == v6.addrs.epoch()
            && o.src_addr == fl.src_addr
            && o.dst_addr == fl.dst_addr
            && o.key.ports == fl.key.ports
            && o.key.proto == fl.key.proto
        {
            return Some((o.key, h));
        }
    }
    let src = v6.addrs.get_at(fl.home_src as usize, fl.src_addr)?;
    let dst = v6.addrs.get_at(fl.home_dst as usize, fl.dst_addr)?;
    let key = fl.key_with(src, dst);
    Some((key, v6.conns.key_hash_wire(&key)))
}

/// What the established path reads of the record its lookup found, when
/// the record is one it forwards: NAT or DR, not the synproxy's or a
/// template, and a steady segment (`flags` ACK alone of the four that
/// matter, or UDP) leaves it as it is.
#[derive(Clone, Copy)]
pub(super) struct Steady6 {
    id: ConnId,
    dir: Dir,
    method: Method,
    dest: u32,
    proto: u8,
    /// The port the rewrite writes: the server's inbound, the VIP's in
    /// replies.
    port: u16,
}

impl Steady6 {
    #[inline(always)]
    pub(super) fn of(id: ConnId, dir: Dir, c: &Conn) -> Option<Steady6> {
        // The segment's flags are ACK alone of the four that matter
        // (checked by the caller), so the constant.
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0
            || !matches!(method, Method::Nat | Method::Dr)
            || !ConnTable::is_steady(c, dir, tcp_flags::ACK)
        {
            return None;
        }
        let port = match dir {
            Dir::Inbound => c.sport(),
            Dir::Reply => c.vport(),
        };
        Some(Steady6 {
            id,
            dir,
            method,
            dest: c.dest(),
            proto: c.proto(),
            port,
        })
    }
}

/// The cache slot of address `a`.
#[inline(always)]
fn hop6_slot(a: u128) -> usize {
    let x = (a as u64) ^ ((a >> 64) as u64);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % HOP6_CACHE
}

/// The remembered next hop of `ip` (as `addr6::raw`) while it is valid (`Pipeline::hop_hit`'s
/// rules).
#[inline(always)]
fn hop_hit6<'a>(
    hops: &'a [Hop6; HOP6_CACHE],
    neigh: &NeighTable6,
    snap: &Snapshot,
    ip: u128,
    now_ms: u64,
) -> Option<&'a Hop6> {
    let h = &hops[hop6_slot(ip)];
    let at = snap as *const Snapshot as usize;
    (h.ip == ip
        && now_ms < h.until_ms
        && h.generation == snap.generation
        && h.snapshot == at
        && neigh.version(h.entry) == h.version)
        .then_some(h)
}

impl Pipeline {
    /// The first pass for a frame of the common IPv6 shape: true when it is
    /// one and this worker has an IPv6 table (then `out` says so, with the
    /// flow's fields and the id table's buckets of its addresses, which
    /// this prefetches); false leaves `out` to the full parser. No memory
    /// but the frame is read here ([`Flow6`]).
    ///
    /// This and the other entry points here are not inlined into the
    /// worker's passes and `process_inspected`: inlined, they moved the
    /// IPv4 figures by +5 to +13 instructions per packet (register
    /// allocation of the IPv4 path around them); out of line, +2 to +3,
    /// for some 30 more on IPv6.
    #[inline(never)]
    pub(super) fn inspect6(&self, frame: &[u8], out: &mut Inspected) -> bool {
        let Some(v6) = self.v6.as_deref() else {
            return false;
        };
        if !is_fast_shape6(frame) {
            return false;
        }
        let Some(h) = frame.first_chunk::<{ L4_OFF6 + 8 }>() else {
            return false;
        };
        let (src, dst) = (addr_ne(h, SRC6), addr_ne(h, DST6));
        let (home_src, home_dst) = (v6.addrs.home(src), v6.addrs.home(dst));
        v6.addrs.prefetch(home_src);
        v6.addrs.prefetch(home_dst);
        out.hash = None;
        out.fast = false;
        out.fast6 = true;
        out.hint = Hint::NONE;
        let ports = [h[L4_OFF6], h[L4_OFF6 + 1], h[L4_OFF6 + 2], h[L4_OFF6 + 3]];
        out.flow6 = Flow6 {
            hash: None,
            key: WireKey {
                addrs: 0,
                ports: u32::from_be_bytes(ports),
                proto: h[20],
            },
            epoch: 0,
            home_src: home_src as u32,
            home_dst: home_dst as u32,
            src_addr: src,
            dst_addr: dst,
        };
        true
    }

    /// The second pass for a burst's first-pass IPv6 frames (the caller
    /// saw at least one), in two loops over the burst, one call: first,
    /// per frame, the ids of its addresses (their buckets prefetched by
    /// the first pass), its flow key's hash, and the prefetch of that
    /// bucket; then each (prefetched) bucket read and the record it points
    /// at prefetched, keeping which (`Inspected::hint`, for the established
    /// path's `lookup_hinted`). A frame one of whose addresses has no id
    /// keeps no hash: no connection can match. (One call per burst: a call
    /// per frame cost a dozen instructions of it.)
    #[inline(never)]
    pub(super) fn prefetch_conns6(&self, insp: &mut [Inspected]) {
        let Some(v6) = self.v6.as_deref() else {
            return;
        };
        let mut any = false;
        for i in insp.iter_mut() {
            if i.fast6 {
                any |= resolve6(v6, &mut i.flow6);
            }
        }
        if !any {
            return;
        }
        let t = v6.conns.entry_prefetch();
        for i in insp {
            if let (true, Some(h)) = (i.fast6, i.flow6.hash) {
                i.hint = t.entry(h);
            }
        }
    }

    /// The common IPv6 shape's way through the worker (the dispatch's one
    /// call for it): a steady packet of an established NAT or DR
    /// connection whose next hop is cached is forwarded here (module
    /// docs). Every segment with resolved ids is looked up, whatever its
    /// flags (the flag test made before the lookup, its result kept): a
    /// hit that is not steady goes to the transition path's commit
    /// ([`moves6`](Self::moves6): no second reading of the header, no
    /// second lookup), a miss to the new-flow path (`first_flow6`). A
    /// frame the first pass found no ids for, ids of an older epoch, or
    /// `[ha] sync` (no lookup here: each packet may report the
    /// connection) go to [`transition6`](Self::transition6), which
    /// resolves and looks up itself. `None` leaves the frame, the
    /// connection and every counter untouched for the full path.
    #[inline(never)]
    pub(super) fn established6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let fl = &i.flow6;
        let port = snap.ports.get(in_port)?;
        let p = Tail6::read(f.data(), fl.key.proto)?;
        if p.dst_mac != port.mac.0 || p.hop <= 1 {
            return None;
        }
        let Some(hash) = fl.hash.filter(|_| self.fast_on) else {
            return self.transition6(snap, f, i, p, in_port, now_ms, owned);
        };
        // The segment moves the TCP state whatever its record's: tested
        // before the lookup, in registers.
        let moving = fl.key.proto == conn::PROTO_TCP && p.flags & STEADY_MASK != tcp_flags::ACK;
        let v6 = self.v6.as_deref_mut()?;
        if v6.addrs.epoch() != fl.epoch {
            return self.transition6(snap, f, i, p, in_port, now_ms, owned);
        }
        let Some((id, dir, c)) = v6.conns.lookup_hinted(&fl.key, hash, i.hint, now_ms) else {
            return self.first_flow6(snap, f, fl, p.flags, in_port, now_ms, owned);
        };
        // What the rest needs of the record, read once here (no copy of
        // it).
        if !moving {
            if let Some(s) = Steady6::of(id, dir, c) {
                return self.forward_steady6(snap, f, fl, &s, p.payload, now_ms, owned);
            }
        }
        // The handshake's ACK, a FIN, an RST, a repeated SYN (or a record
        // the commit declines: TUN, full-NAT, a template, UDP's).
        self.moves6(snap, f, fl, id, dir, p, now_ms, owned)
    }

    /// The established path from its record on (`s`, of flow `fl`,
    /// `payload` bytes after the IPv6 header): where it goes (usable
    /// server, addresses, owner, next hop, MTU), the expiry re-armed, the
    /// rewrite. `None` writes nothing but a remembered next hop. Shared
    /// with the transition path's frames whose ids it resolved again.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_steady6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        fl: &Flow6,
        s: &Steady6,
        payload: u16,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let r = self.route6_fast(snap, fl, s.dest, s.dir, owned, payload, now_ms)?;
        let v6 = self.v6.as_deref_mut()?;
        v6.conns.rearm_steady_proto(s.id, s.proto, now_ms);
        // Committed: from here on the full path would have forwarded too.
        let v = self.forward6_fast(snap, f, &r, s.dir, s.method, s.port, payload);
        self.established_hits += u64::from(matches!(v, Verdict::Tx(_)));
        Some(v)
    }

    /// Where a packet of a tracked IPv6 NAT or DR connection (server `dest`,
    /// direction `dir`, flow `fl`, `payload` bytes after the IPv6 header)
    /// goes, when the fast paths may forward it (module docs): its server
    /// usable in this snapshot, what `forward6` makes of the addresses,
    /// this worker the owner, a valid next hop and a packet that fits its
    /// MTU. `None` writes nothing but a remembered next hop.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route6_fast(
        &mut self,
        snap: &Snapshot,
        fl: &Flow6,
        dest: u32,
        dir: Dir,
        owned: bool,
        payload: u16,
        now_ms: u64,
    ) -> Option<Route6> {
        let v6 = self.v6.as_deref_mut()?;
        // The server's entry (dest_fast6.rs): usable in this snapshot, the
        // addresses of its NAT in this direction, its remembered next hop.
        let di = v6.dests.usable(snap, dest)?;
        let e = v6.dests.edge(di, dir);
        // What `forward6` makes of the addresses: a packet to the VIP, or
        // a server's reply to a client that is none of the director's
        // addresses (`snapshot::Own6`) and not link-local.
        let fits = match dir {
            Dir::Inbound => e.from == fl.dst_addr,
            Dir::Reply => {
                e.from == fl.src_addr
                    && !is_link_local(fl.dst_addr)
                    && !v6.dests.is_own(fl.dst_addr)
            }
        };
        if !fits {
            return None;
        }
        if !owned && self.workers > 1 {
            // The client's side (computed only here: a single worker, or a
            // flow RSS gave this one, needs none of it).
            let (cip, cport) = match dir {
                Dir::Inbound => (fl.src_addr, (fl.key.ports >> 16) as u16),
                Dir::Reply => (fl.dst_addr, fl.key.ports as u16),
            };
            if self.reta.owner(fold6(from_raw(cip)), cport) != self.worker {
                return None;
            }
        }
        // The next hop: a server's remembered with its entry, a client's
        // from the next-hop cache.
        let neigh = &self.shared.neigh6;
        let h = match (dir, v6.dests.hop(di, now_ms, neigh)) {
            (Dir::Inbound, Some(h)) => Out6::of(h),
            _ => {
                let to = match dir {
                    Dir::Inbound => v6.dests.edge(di, dir).to,
                    Dir::Reply => fl.dst_addr,
                };
                let h = hop_hit6(&v6.hops, neigh, snap, to, now_ms)?;
                let out = Out6::of(h);
                if dir == Dir::Inbound {
                    let h = *h;
                    v6.dests.set_hop(di, h);
                }
                out
            }
        };
        if u32::from(payload) + ipv6::HEADER_LEN as u32 > u32::from(h.mtu) {
            return None;
        }
        Some(Route6 { di, h })
    }

    /// Forwards `f` (of the fast shape, `payload` bytes after the IPv6
    /// header) on the way [`route6_fast`](Self::route6_fast) found: the
    /// frame cut to its IPv6 packet, the fixed-offset NAT (the server's
    /// `port` inbound, the VIP's port in replies) or DR rewrite, and the
    /// packet and its IP bytes added to the server's pending counts. The
    /// caller has committed (the connection's state moved).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward6_fast<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        r: &Route6,
        dir: Dir,
        method: Method,
        port: u16,
        payload: u16,
    ) -> Verdict {
        let Some(v6) = self.v6.as_deref_mut() else {
            return Verdict::Drop;
        };
        let (h, e) = (&r.h, v6.dests.edge(r.di, dir));
        f.truncate(L4_OFF6 + usize::from(payload));
        let done = match (dir, method) {
            (Dir::Inbound, Method::Dr) => forward::dr6_pair(f.data_mut(), &h.macs),
            (Dir::Inbound, _) => {
                forward::nat6_sum(f.data_mut(), NatSide::Dst, e.to, e.sum, port, &h.macs)
            }
            (Dir::Reply, _) => {
                forward::nat6_sum(f.data_mut(), NatSide::Src, e.to, e.sum, port, &h.macs)
            }
        };
        if let Err(e) = done {
            return self.drop(rewrite_drop(e));
        }
        let len = ipv6::HEADER_LEN as u16 + payload;
        v6.dests
            .count(snap, r.di, dir == Dir::Reply, u64::from(len));
        Verdict::Tx(h.port as usize)
    }

    /// Remembers the next hop `next_hop6` resolved for `ip` (port `port`,
    /// MAC `mac` from the neighbour entry `stamp`), for the fast path.
    pub(super) fn remember_hop6(
        &mut self,
        snap: &Snapshot,
        ip: Ipv6Addr,
        port: usize,
        mac: MacAddr,
        stamp: Stamp,
        now_ms: u64,
    ) {
        let (Some(v6), Some(pi)) = (self.v6.as_deref_mut(), snap.ports.get(port)) else {
            return;
        };
        let a = addr6::raw(ip);
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&mac.0);
        macs[6..].copy_from_slice(&pi.mac.0);
        v6.hops[hop6_slot(a)] = Hop6 {
            ip: a,
            port: port as u32,
            macs,
            port_mtu: pi.mtu,
            until_ms: now_ms + HOP_CACHE_MS,
            generation: snap.generation,
            snapshot: snap as *const Snapshot as usize,
            entry: stamp.entry,
            version: stamp.version,
        };
    }
}
