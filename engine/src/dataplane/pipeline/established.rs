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
//! * the segment leaves the TCP state as it is (`ConnTable::is_steady`, on
//!   the record the lookup returned; then `rearm_steady`).
//!
//! Anything else returns `None` before anything is written, and the full
//! path decides exactly as before (its next packet refills the cache). The
//! per-server packet and byte counts add up in the server's entry and
//! reach its counters once per burst (`Pipeline::end_burst`). The
//! checksum deltas of NAT and the TUN outer header are computed from the
//! connection record, already in cache after the lookup, rather than kept
//! per connection: a side array would cost a second cache line per packet
//! to save a few additions.
//!
//! Off with `[ha] sync` (each packet may report the connection to the peer):
//! those directors take the full path.

use std::net::Ipv4Addr;

use super::{rewrite_drop, synproxy, Frame, Hop, Pipeline, Verdict};
use crate::conn::{self, tcp_flags, ConnId, ConnTable, Dir, FlowKey, KeyHash, Method};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::forward;

/// The L4 offset of the shape the fast path takes (untagged Ethernet, IPv4
/// without options).
const L4_OFF: usize = 34;

/// What the fast path reads of a frame of that shape.
#[derive(Clone, Copy)]
struct Head {
    protocol: u8,
    ttl: u8,
    /// TCP flags (0 for UDP).
    flags: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    /// IPv4 total length.
    total: u16,
}

impl Head {
    /// The fields at the fixed offsets (`None` for a frame too short to
    /// hold them, which `inspect` never marks fast).
    #[inline(always)]
    fn read(frame: &[u8]) -> Option<Head> {
        let h = frame.first_chunk::<{ L4_OFF + 8 }>()?;
        let protocol = h[23];
        let flags = if protocol == conn::PROTO_TCP {
            *frame.get(L4_OFF + 13)?
        } else {
            0
        };
        Some(Head {
            protocol,
            ttl: h[22],
            flags,
            src: Ipv4Addr::new(h[26], h[27], h[28], h[29]),
            dst: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
            sport: u16::from_be_bytes([h[L4_OFF], h[L4_OFF + 1]]),
            dport: u16::from_be_bytes([h[L4_OFF + 2], h[L4_OFF + 3]]),
            total: u16::from_be_bytes([h[16], h[17]]),
        })
    }

    #[inline(always)]
    fn key(&self) -> FlowKey {
        FlowKey::new(self.protocol, self.src, self.sport, self.dst, self.dport)
    }
}

/// The flow key of a frame of the fast shape (`inspect` hashes it).
#[inline(always)]
pub(super) fn fast_key(frame: &[u8]) -> FlowKey {
    match Head::read(frame) {
        Some(h) => h.key(),
        None => FlowKey::new(0, Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0),
    }
}

/// The TCP flags whose value decides a transition: a steady segment has
/// ACK and none of the others.
const STEADY_MASK: u8 = tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST | tcp_flags::ACK;

/// Connection flags that send a packet to the full path: the synproxy's
/// sequence shifts, persistence templates.
const SLOW_FLAGS: u8 = synproxy::SYNPROXY | conn::flags::TEMPLATE;

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
    /// Forwards `f` when it is a steady packet of an established NAT, DR or
    /// TUN connection whose next hop is cached (module docs); `None` leaves
    /// the frame, the connection and every counter untouched for the full
    /// path, with what the lookup found in `looked` if it got that far.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn established<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        hash: KeyHash,
        now_ms: u64,
        owned: bool,
        looked: &mut Looked,
    ) -> Option<Verdict> {
        let p = Head::read(f.data())?;
        if p.ttl <= 1 || !self.master || self.sync {
            return None;
        }
        // SYN, FIN, RST or no ACK: a transition (`touch_steady` would say
        // so after the lookup, which the full path then repeats).
        if p.protocol == conn::PROTO_TCP && p.flags & STEADY_MASK != tcp_flags::ACK {
            return None;
        }
        let found = self.conns.lookup_record(&p.key(), hash, now_ms);
        let (id, dir, c) = match found {
            Some((id, dir, c)) => {
                *looked = Looked::Hit(id, dir);
                (id, dir, *c)
            }
            None => {
                *looked = Looked::Miss;
                return None;
            }
        };
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0 || method == Method::Fnat {
            return None;
        }
        // The segment's flags are ACK alone of the four that matter
        // (checked above), so the constant. Tested on the record just
        // read, before anything else is looked at: the handshake's ACK
        // (SYN_RECV) declines here, in a few compares, to transition.rs.
        if !ConnTable::is_steady(&c, dir, tcp_flags::ACK) {
            return None;
        }
        if !owned && self.workers > 1 {
            // The full path's ownership check, in its terms.
            let (cip, cport) = if snap.is_vip(p.dst) {
                (p.src, p.sport)
            } else {
                (p.dst, p.dport)
            };
            if self.reta.owner(cip, cport) != self.worker {
                return None;
            }
        }
        // The server still in this snapshot and usable, its next hop
        // (inbound) remembered with it: pipeline/dest_fast.rs.
        let di = self.dests.usable(snap, c.dest())?;
        // The full path's first test: a packet to one of our own addresses
        // (inbound: to the VIP, known not to be one when it is the
        // server's service's).
        let dst_known = dir == Dir::Inbound && self.dests.vip_not_own(di, u32::from(c.vip()));
        if !dst_known && snap.is_own(p.dst) {
            return None;
        }
        let h = match dir {
            Dir::Inbound => self.server_hop(snap, di, c.server(), now_ms)?,
            Dir::Reply => *self.hop_hit(snap, c.client(), now_ms)?,
        };
        let to = Ipv4Addr::from(h.ip);
        let tun = dir == Dir::Inbound && method == Method::Tun;
        let overhead = if tun { forward::TUN_OVERHEAD as u16 } else { 0 };
        if p.total.saturating_add(overhead) > h.port_mtu {
            return None;
        }
        self.conns.rearm_steady(id, &c, now_ms);
        // Committed: from here on the full path would have forwarded too.
        let len = u64::from(p.total);
        let done = match (dir, method) {
            (Dir::Inbound, Method::Nat) => {
                let (side, port) = (forward::NatSide::Dst, c.sport());
                forward::nat_fixed(f.data_mut(), side, to, port, h.mac, h.port_mac)
                    .map_err(rewrite_drop)
            }
            (Dir::Inbound, Method::Dr) => {
                forward::dr_fixed(f.data_mut(), h.mac, h.port_mac).map_err(rewrite_drop)
            }
            (Dir::Inbound, _) => self.tun_fixed(f, p.total, &h, to),
            (Dir::Reply, _) => {
                let (side, vip, vport) = (forward::NatSide::Src, c.vip(), c.vport());
                forward::nat_fixed(f.data_mut(), side, vip, vport, h.mac, h.port_mac)
                    .map_err(rewrite_drop)
            }
        };
        if let Err(d) = done {
            return Some(self.drop(d));
        }
        self.dests.count(snap, di, dir == Dir::Reply, len);
        self.established_hits += 1;
        Some(Verdict::Tx(h.port as usize))
    }

    /// The next hop to server address `to` of server `di`: the one
    /// remembered with the server, else the next-hop cache's (then
    /// remembered); `None` when neither is valid.
    #[inline(always)]
    fn server_hop(&mut self, snap: &Snapshot, di: usize, to: Ipv4Addr, now_ms: u64) -> Option<Hop> {
        if let Some(h) = self
            .dests
            .hop(di, u32::from(to), now_ms, &self.shared.neigh)
        {
            return Some(*h);
        }
        let h = *self.hop_hit(snap, to, now_ms)?;
        self.dests.set_hop(di, h);
        Some(h)
    }

    /// IPIP for the fast path, as `Pipeline::tun` does it (the same drops),
    /// with the egress port's address and MAC from the next-hop cache.
    #[inline(always)]
    fn tun_fixed<F: Frame>(
        &mut self,
        f: &mut F,
        total: u16,
        h: &Hop,
        server: Ipv4Addr,
    ) -> Result<(), Drop> {
        forward::decrement_ttl_fixed(f.data_mut()).map_err(rewrite_drop)?;
        // Drop Ethernet padding so the outer length is the inner one + 20.
        f.truncate(14 + usize::from(total));
        if !f.prepend(forward::TUN_OVERHEAD) {
            return Err(Drop::NoHeadroom);
        }
        let ident = self.next_tun_ident();
        forward::tun_fixed(f.data_mut(), h.port_addr, server, ident, h.mac, h.port_mac)
            .map_err(|_| Drop::NoHeadroom)
    }
}
