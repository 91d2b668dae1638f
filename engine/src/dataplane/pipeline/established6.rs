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
//!   of the director's addresses (a VIP, a port's address, link-local:
//!   those stay the kernel's, as `forward6` decides);
//! * this worker owns the flow (or it was handed over);
//! * the next hop is in this worker's IPv6 next-hop cache and still valid
//!   (the same snapshot, the neighbour entry unchanged, checked with the
//!   neighbour table less than 100 ms ago, as IPv4's `nexthop.rs`), and
//!   the packet fits its port's MTU;
//! * the segment leaves the TCP state as it is (`ConnTable::touch_steady`).
//!
//! Anything else returns `None` before anything is written, and the full
//! path decides exactly as before. The rewrite is `forward::nat6_fixed` or
//! `forward::dr6_fixed`: fixed offsets, the same incremental checksum.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::nexthop::HOP_CACHE_MS;
use super::{rewrite_drop, synproxy, Frame, Inspected, Pipeline, Verdict};
use crate::conn::{self, tcp_flags, Dir, FlowKey, KeyHash, Method};
use crate::dataplane::neigh::{NeighTable6, Stamp};
use crate::dataplane::snapshot::{fold6, Snapshot};
use crate::forward::{self, NatSide};
use crate::packet::ethernet::MacAddr;
use crate::packet::ipv6;
use crate::packet::parse_fast6::{is_fast_shape6, L4_OFF6};

/// What the first pass keeps of a frame of the common IPv6 shape: its
/// addresses' ids and its flow key's hash in the IPv6 table, and the id
/// table's epoch they were read in. No hash: an address has no id, so no
/// connection can match.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flow6 {
    hash: Option<KeyHash>,
    src: u32,
    dst: u32,
    epoch: u32,
}

impl Flow6 {
    pub const NONE: Flow6 = Flow6 {
        hash: None,
        src: 0,
        dst: 0,
        epoch: 0,
    };
}

/// What the fast path reads of a frame of that shape.
#[derive(Clone, Copy)]
struct Head6 {
    protocol: u8,
    hop: u8,
    /// TCP flags (0 for UDP).
    flags: u8,
    src: u128,
    dst: u128,
    sport: u16,
    dport: u16,
    /// The IPv6 payload length.
    payload: u16,
}

impl Head6 {
    #[inline(always)]
    fn read(frame: &[u8]) -> Option<Head6> {
        let h = frame.first_chunk::<{ L4_OFF6 + 8 }>()?;
        let protocol = h[20];
        let flags = if protocol == conn::PROTO_TCP {
            *frame.get(L4_OFF6 + 13)?
        } else {
            0
        };
        let addr = |at: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[at..at + 16]);
            u128::from_be_bytes(a)
        };
        Some(Head6 {
            protocol,
            hop: h[21],
            flags,
            src: addr(22),
            dst: addr(38),
            sport: u16::from_be_bytes([h[L4_OFF6], h[L4_OFF6 + 1]]),
            dport: u16::from_be_bytes([h[L4_OFF6 + 2], h[L4_OFF6 + 3]]),
            payload: u16::from_be_bytes([h[18], h[19]]),
        })
    }

    /// The flow key in the IPv6 table, of the ids of the addresses.
    #[inline(always)]
    fn key(&self, src: u32, dst: u32) -> FlowKey {
        FlowKey::new(
            self.protocol,
            Ipv4Addr::from(src),
            self.sport,
            Ipv4Addr::from(dst),
            self.dport,
        )
    }
}

/// The TCP flags whose value decides a transition: a steady segment has
/// ACK and none of the others.
const STEADY_MASK: u8 = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST | tcp_flags::ACK;

/// Connection flags that send a packet to the full path.
const SLOW_FLAGS: u8 = synproxy::SYNPROXY | conn::flags::TEMPLATE;

/// IPv6 next hops one worker remembers (direct-mapped by address).
pub(super) const HOP6_CACHE: usize = 16;

/// A resolved IPv6 next hop, valid for one snapshot while the neighbour
/// entry it came from is unchanged, until `until_ms` (`nexthop::Hop`'s
/// rules), with what the fast path needs of its egress port.
#[derive(Clone, Copy)]
pub(super) struct Hop6 {
    ip: u128,
    port: u32,
    mac: MacAddr,
    port_mac: MacAddr,
    port_mtu: u16,
    until_ms: u64,
    generation: u64,
    snapshot: usize,
    entry: usize,
    version: u64,
}

impl Hop6 {
    pub(super) const EMPTY: Hop6 = Hop6 {
        ip: 0,
        port: 0,
        mac: MacAddr([0; 6]),
        port_mac: MacAddr([0; 6]),
        port_mtu: 0,
        until_ms: 0,
        generation: 0,
        snapshot: 0,
        entry: 0,
        version: 0,
    };
}

/// The cache slot of address `a`.
#[inline(always)]
fn hop6_slot(a: u128) -> usize {
    let x = (a as u64) ^ ((a >> 64) as u64);
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % HOP6_CACHE
}

/// The remembered next hop of `ip` while it is valid (`Pipeline::hop_hit`'s
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
    /// flow's ids and hash); false leaves `out` to the full parser.
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
        let Some(p) = Head6::read(frame) else {
            return false;
        };
        out.hash = None;
        out.fast = false;
        out.fast6 = true;
        let ids = (
            v6.addrs.get(Ipv6Addr::from(p.src)),
            v6.addrs.get(Ipv6Addr::from(p.dst)),
        );
        out.flow6 = match ids {
            (Some(src), Some(dst)) => Flow6 {
                hash: Some(v6.conns.key_hash(&p.key(src, dst))),
                src,
                dst,
                epoch: v6.addrs.epoch(),
            },
            _ => Flow6::NONE,
        };
        // Its bucket, as the IPv4 first pass does (`Pipeline::inspect_into`).
        if let Some(h) = out.flow6.hash {
            v6.conns.prefetch_hashed(h);
        }
        true
    }

    /// The second pass: read the bucket, prefetch the record.
    #[inline(never)]
    pub(super) fn prefetch_conn6(&self, i: &Inspected) {
        if let Some(v6) = self.v6.as_deref() {
            if let Some(h) = i.flow6.hash {
                v6.conns.prefetch_conn_hashed(h);
            }
        }
    }

    /// Forwards `f` when it is a steady packet of an established IPv6 NAT
    /// or DR connection whose next hop is cached (module docs); `None`
    /// leaves the frame, the connection and every counter untouched for
    /// the full path.
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
        let fl = i.flow6;
        let hash = fl.hash?;
        if !self.fast_on {
            return None;
        }
        let port = snap.ports.get(in_port)?;
        let frame = f.data();
        if frame.first_chunk::<6>() != Some(&port.mac.0) {
            return None;
        }
        let p = Head6::read(frame)?;
        if p.hop <= 1 {
            return None;
        }
        if p.protocol == conn::PROTO_TCP && p.flags & STEADY_MASK != tcp_flags::ACK {
            return None;
        }
        let v6 = self.v6.as_deref_mut()?;
        if v6.addrs.epoch() != fl.epoch {
            return None;
        }
        let (id, dir) = v6
            .conns
            .lookup_hashed(&p.key(fl.src, fl.dst), hash, now_ms)?;
        let c = *v6.conns.get(id);
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0 || !matches!(method, Method::Nat | Method::Dr) {
            return None;
        }
        let (svc, srv) = snap.dest6(c.dest())?;
        if !srv.usable {
            return None;
        }
        // What `forward6` makes of the addresses: a packet to the VIP, or
        // a server's reply to a client that is not the director's.
        let (to, cip, cport) = match dir {
            Dir::Inbound => {
                if u128::from(svc.vip) != p.dst {
                    return None;
                }
                (v6.addrs.addr(u32::from(c.server())), p.src, p.sport)
            }
            Dir::Reply => {
                let client = Ipv6Addr::from(p.dst);
                if u128::from(srv.addr) != p.src
                    || client.segments()[0] & 0xffc0 == 0xfe80
                    || snap.is_fwd_vip6(client)
                    || snap.is_vip64(client)
                    || snap.ports.iter().any(|pi| pi.addr6 == Some(client))
                {
                    return None;
                }
                (client, p.dst, p.dport)
            }
        };
        if !owned
            && self.workers > 1
            && self.reta.owner(fold6(Ipv6Addr::from(cip)), cport) != self.worker
        {
            return None;
        }
        let h = *hop_hit6(&v6.hops, &self.shared.neigh6, snap, u128::from(to), now_ms)?;
        let len = ipv6::HEADER_LEN as u16 + p.payload;
        if u32::from(p.payload) + ipv6::HEADER_LEN as u32 > u32::from(h.port_mtu) {
            return None;
        }
        if !v6.conns.touch_steady(id, dir, p.flags, now_ms) {
            return None;
        }
        // Committed: from here on the full path would have forwarded too.
        f.truncate(L4_OFF6 + usize::from(p.payload));
        let done = match (dir, method) {
            (Dir::Inbound, Method::Dr) => forward::dr6_fixed(f.data_mut(), h.mac, h.port_mac),
            (Dir::Inbound, _) => {
                let port = c.sport();
                forward::nat6_fixed(f.data_mut(), NatSide::Dst, to, port, h.mac, h.port_mac)
            }
            (Dir::Reply, _) => {
                let (vip, vport) = (v6.addrs.addr(u32::from(c.vip())), c.vport());
                forward::nat6_fixed(f.data_mut(), NatSide::Src, vip, vport, h.mac, h.port_mac)
            }
        };
        if let Err(e) = done {
            return Some(self.drop(rewrite_drop(e)));
        }
        let k = &srv.shared.per_worker[self.worker];
        if dir == Dir::Inbound {
            k.in_packets.inc();
            k.in_bytes.add(u64::from(len));
        } else {
            k.out_packets.inc();
            k.out_bytes.add(u64::from(len));
        }
        self.established_hits += 1;
        Some(Verdict::Tx(h.port as usize))
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
        let a = u128::from(ip);
        v6.hops[hop6_slot(a)] = Hop6 {
            ip: a,
            port: port as u32,
            mac,
            port_mac: pi.mac,
            port_mtu: pi.mtu,
            until_ms: now_ms + HOP_CACHE_MS,
            generation: snap.generation,
            snapshot: snap as *const Snapshot as usize,
            entry: stamp.entry,
            version: stamp.version,
        };
    }
}
