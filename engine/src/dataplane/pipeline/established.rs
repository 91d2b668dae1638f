//! The established fast path: a packet of a tracked flow whose state it does not change, forwarded with what this worker already knows.
//!
//! Most packets a director forwards belong to a connection in its steady
//! state: untagged IPv4 without options, TCP with ACK and no SYN/FIN/RST on
//! an ESTABLISHED connection, or UDP. For them the full path's decisions
//! (own address, master, fragment, ICMP error, service, scheduling, state
//! transition, active/inactive accounting, route, ARP) all come out as they
//! did for the flow's previous packet. This path checks, in a few word
//! compares, that nothing they depend on has changed, and forwards:
//!
//! * the frame has the shape `parse_fast` accepts (IP at 14, L4 at 34, not a
//!   fragment: `Pipeline::inspect` checked it and kept no summary, so the
//!   fields are read here at those offsets) and a TTL to decrement;
//! * the connection is found, is NAT, DR or TUN (not full-NAT, not a
//!   persistence template, not opened by the synproxy), and its server is
//!   still in the snapshot and usable: one load of this worker's entry for
//!   the server (`dest_fast.rs`, indexed by the record's server id and
//!   rebuilt whenever the snapshot changes: a reload, a server removed,
//!   weight 0), not the snapshot's id -> service -> server walk;
//! * the destination is none of the director's own addresses (inbound:
//!   the VIP, which the server's entry knows is not one);
//! * the next hop is valid: inbound, the one remembered with the server,
//!   else this worker's next-hop cache (same snapshot, generation and
//!   address); either way the neighbour entry unchanged (a MAC change
//!   shows on the very next packet) and checked with the neighbour table
//!   less than 100 ms ago (refresh and expiry stay the table's decisions).
//!   The hop carries the egress port's MAC, address and MTU, so nothing
//!   else of the snapshot or the neighbour table is read;
//! * the packet fits the egress MTU;
//! * the segment leaves the TCP state as it is (its flags, tested before
//!   the lookup, and `ConnTable::is_steady` on the record the lookup
//!   returned; then `rearm_steady`). A segment that moves it is looked up
//!   all the same: the transition path (`transition.rs`) takes the hit,
//!   the new-flow path the miss, without a lookup of their own.
//!
//! Anything else returns `None` before anything is written, and the full
//! path decides exactly as before (its next packet refills the cache). The
//! per-server packet and byte counts add up in the server's entry and
//! reach its counters once a millisecond (`Pipeline::end_burst`). The NAT
//! checksum deltas are computed from the record, already in cache after
//! the lookup, in the frame's byte order (an address is one 32-bit addend:
//! a handful of adds), rather than kept per connection: a side array would
//! cost a second cache line per packet to save them. The TUN outer header
//! is the server's (`TunTemplate`, made with its next hop in
//! `dest_fast.rs`): a copy and the packet's fields.
//!
//! The lookup is two word compares against the record's key words
//! (`conn::WireKey`), starting from the entry the burst's prefetch pass
//! found (`Inspected::hint`, verified: `ConnTable::lookup_hinted`); the
//! record and the next hop are read field by field, never copied whole.
//!
//! Off with `[ha] sync` (each packet may report the connection to the peer):
//! those directors take the full path.

use std::net::Ipv4Addr;

use super::{rewrite_drop, synproxy, Frame, Hop, Pipeline, Verdict};
use crate::conn::{self, tcp_flags, ConnId, ConnTable, Dir, Hint, KeyHash, Method, WireKey};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::forward;

/// The L4 offset of the shape the fast path takes (untagged Ethernet, IPv4
/// without options).
const L4_OFF: usize = 34;

/// What the fast path reads of a frame of that shape.
#[derive(Clone, Copy)]
pub(super) struct Head {
    /// The flow key as the table compares it: two big-endian loads.
    pub(super) key: WireKey,
    pub(super) ttl: u8,
    /// TCP flags; for UDP, ACK alone (`STEADY_FLAGS`: a datagram moves
    /// no state), so that the established path's flag test needs no
    /// protocol test.
    pub(super) flags: u8,
    /// IPv4 total length.
    pub(super) total: u16,
}

impl Head {
    /// The fields at the fixed offsets, and the destination MAC (`None`
    /// for a frame too short to hold them, which `inspect` never marks
    /// fast).
    #[inline(always)]
    pub(super) fn read(frame: &[u8]) -> Option<(Head, [u8; 6])> {
        let h = frame.first_chunk::<{ L4_OFF + 8 }>()?;
        let protocol = h[23];
        let flags = if protocol == conn::PROTO_TCP {
            *frame.get(L4_OFF + 13)?
        } else {
            STEADY_FLAGS
        };
        let head = Head {
            key: key_at(h),
            ttl: h[22],
            flags,
            total: u16::from_be_bytes([h[16], h[17]]),
        };
        Some((head, [h[0], h[1], h[2], h[3], h[4], h[5]]))
    }

    /// The destination address.
    #[inline(always)]
    pub(super) fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.key.addrs as u32)
    }
}

/// The flow key at the fixed offsets: addresses at 26..34, ports at 34..38.
#[inline(always)]
fn key_at(h: &[u8; L4_OFF + 8]) -> WireKey {
    let (mut addrs, mut ports) = ([0u8; 8], [0u8; 4]);
    addrs.copy_from_slice(&h[26..34]);
    ports.copy_from_slice(&h[L4_OFF..L4_OFF + 4]);
    WireKey::from_headers(h[23], addrs, ports)
}

/// The flow key of a frame of the fast shape (`inspect` hashes it).
#[inline(always)]
pub(super) fn fast_key(frame: &[u8]) -> WireKey {
    match frame.first_chunk::<{ L4_OFF + 8 }>() {
        Some(h) => key_at(h),
        None => WireKey {
            addrs: 0,
            ports: 0,
            proto: 0,
        },
    }
}

/// What the rewrite needs of the next hop: the egress port, its MTU, the
/// frame's two MACs (a few words, where the cache's [`Hop`] carries
/// its validity stamps too).
#[derive(Clone, Copy)]
struct Out {
    port: u32,
    mtu: u16,
    macs: [u8; 12],
}

impl Out {
    #[inline(always)]
    fn of(h: &Hop) -> Out {
        Out {
            port: h.port,
            mtu: h.port_mtu,
            macs: h.macs,
        }
    }
}

/// Connection flags that send a packet to the full path: the synproxy's
/// sequence shifts, persistence templates.
const SLOW_FLAGS: u8 = synproxy::SYNPROXY | conn::flags::TEMPLATE;

/// The TCP flags whose value decides a transition: a steady segment has
/// ACK and none of the others.
const STEADY_MASK: u8 = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST | tcp_flags::ACK;

/// The flags of a steady segment, of the four in `STEADY_MASK`.
const STEADY_FLAGS: u8 = tcp_flags::ACK;

/// What the fast path found of the frame's connection before it declined
/// (the handshake's ACK, a FIN, a cold next hop): the full path uses it
/// rather than looking the flow up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Looked {
    /// Declined before the lookup: the full path looks up itself.
    NotYet,
    Hit(ConnId, Dir),
    Miss,
}

impl Pipeline {
    /// Forwards `f` (whose fixed-offset fields are `p`) when it is a steady
    /// packet of an established NAT, DR or TUN connection whose next hop
    /// is cached (module docs). `Err` leaves the frame, the connection and
    /// every counter untouched for the full path, and says what the lookup
    /// found if it got that far (nothing of it is written on the way to
    /// `Ok`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn established<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: Head,
        hash: KeyHash,
        hint: Hint,
        now_ms: u64,
        owned: bool,
    ) -> Result<Verdict, Looked> {
        if p.ttl <= 1 || !self.fast_on {
            return Err(Looked::NotYet);
        }
        // Every segment is looked up, whatever its flags: the state-moving
        // ones (SYN, FIN, RST or no ACK: the handshake's ACK is one by its
        // record's state) go on to the transition path with what was
        // found, and a miss to the new-flow path, each without a lookup
        // of its own. The flags are tested before the lookup, in
        // registers, and the record's side with the constant ACK (a
        // steady segment's flags), as when a moving segment was declined
        // before its lookup.
        let moving = p.flags & STEADY_MASK != STEADY_FLAGS;
        let Some((id, dir, c)) = self.conns.lookup_hinted(&p.key, hash, hint, now_ms) else {
            return Err(Looked::Miss);
        };
        // What the rest needs of the record, read once here (no copy of
        // it kept across the next-hop and rewrite steps).
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0
            || method == Method::Fnat
            || moving
            || !ConnTable::is_steady(c, dir, tcp_flags::ACK)
        {
            // The transition path asks the record's flags and method again
            // (one test here for the steady packets).
            return Err(Looked::Hit(id, dir));
        }
        let hit = Looked::Hit(id, dir);
        let (dest, proto) = (c.dest(), c.proto());
        let to = c.next_hop_addr(dir);
        let (nat_addr, nat_port) = c.nat_target(dir);
        if !owned && self.workers > 1 {
            // The full path's ownership check, in its terms.
            let (src, dst) = ((p.key.addrs >> 32) as u32, p.key.addrs as u32);
            let (sport, dport) = ((p.key.ports >> 16) as u16, p.key.ports as u16);
            let (cip, cport) = if snap.is_vip(Ipv4Addr::from(dst)) {
                (src, sport)
            } else {
                (dst, dport)
            };
            if self.reta.owner(Ipv4Addr::from(cip), cport) != self.worker {
                return Err(hit);
            }
        }
        // The server still in this snapshot and usable, its next hop
        // (inbound) remembered with it: pipeline/dest_fast.rs.
        let di = self.dests.usable(snap, dest).ok_or(hit)?;
        // The full path's first test: a packet to one of our own addresses
        // (inbound: to the VIP, the key's destination, known not to be one
        // when it is the server's service's).
        let dst_known = dir == Dir::Inbound && self.dests.vip_not_own(di, p.key.addrs as u32);
        if !dst_known && snap.is_own(p.dst()) {
            return Err(hit);
        }
        let h = match dir {
            Dir::Inbound => self
                .server_hop(snap, di, Ipv4Addr::from(to), now_ms)
                .ok_or(hit)?,
            Dir::Reply => Out::of(self.hop_hit(snap, Ipv4Addr::from(to), now_ms).ok_or(hit)?),
        };
        // The packet fits the egress MTU (TUN: with the outer header), in
        // u32 where nothing overflows.
        let fits = match (dir, method) {
            (Dir::Inbound, Method::Tun) => {
                u32::from(p.total) + forward::TUN_OVERHEAD as u32 <= u32::from(h.mtu)
            }
            _ => p.total <= h.mtu,
        };
        if !fits {
            return Err(hit);
        }
        self.conns.rearm_steady_proto(id, proto, now_ms);
        // Committed: from here on the full path would have forwarded too.
        let len = u64::from(p.total);
        let done = match (dir, method) {
            (Dir::Inbound, Method::Dr) => {
                forward::dr_fixed_pair(f.data_mut(), &h.macs).map_err(rewrite_drop)
            }
            (Dir::Inbound, Method::Tun) => {
                let ident = self.next_tun_ident();
                tun_fixed(f, p.total, &h.macs, self.dests.tun_template(di), ident)
            }
            // NAT, inbound (the server's address and port as destination)
            // or reply (the VIP's as source).
            _ => {
                let side = match dir {
                    Dir::Inbound => forward::NatSide::Dst,
                    Dir::Reply => forward::NatSide::Src,
                };
                let a = Ipv4Addr::from(nat_addr);
                forward::nat_fixed_pair(f.data_mut(), side, a, nat_port, &h.macs)
                    .map_err(rewrite_drop)
            }
        };
        if let Err(d) = done {
            return Ok(self.drop(d));
        }
        self.dests.count(snap, di, dir == Dir::Reply, len);
        self.established_hits += 1;
        Ok(Verdict::Tx(h.port as usize))
    }

    /// The next hop to server address `to` of server `di`: the one
    /// remembered with the server, else the next-hop cache's (then
    /// remembered); `None` when neither is valid.
    #[inline(always)]
    fn server_hop(&mut self, snap: &Snapshot, di: usize, to: Ipv4Addr, now_ms: u64) -> Option<Out> {
        if let Some(h) = self
            .dests
            .hop(di, u32::from(to), now_ms, &self.shared.neigh)
        {
            return Some(Out::of(h));
        }
        let h = *self.hop_hit(snap, to, now_ms)?;
        self.dests.set_hop(di, h);
        Some(Out::of(&h))
    }
}

/// IPIP for the fast path, as `Pipeline::tun` does it (the same drops),
/// with the MACs from the next hop and the outer header from the server's
/// entry (made with that hop: the egress port's address to the server's).
#[inline(always)]
fn tun_fixed<F: Frame>(
    f: &mut F,
    total: u16,
    macs: &[u8; 12],
    tpl: &forward::TunTemplate,
    ident: u16,
) -> Result<(), Drop> {
    // Drop Ethernet padding so the outer length is the inner one + 20.
    f.truncate(14 + usize::from(total));
    if !f.prepend(forward::TUN_OVERHEAD) {
        return Err(Drop::NoHeadroom);
    }
    // The inner TTL (checked before the commit) and the encapsulation in
    // one pass over the frame.
    forward::tun_fixed(f.data_mut(), tpl, ident, macs).map_err(|e| match e {
        forward::ForwardError::TtlExpired => Drop::TtlExceeded,
        _ => Drop::NoHeadroom,
    })
}
