//! The transition path: a TCP segment of a tracked flow that changes only
//! the connection's state (the handshake's ACK, a FIN, an RST, a repeated
//! SYN), forwarded with the lookup the established path already made and
//! the next-hop cache, without the full path's re-parse and re-resolve.
//!
//! The established fast path (`established.rs`) declines such a segment:
//! it moves the TCP state, and with it the server's active/inactive count.
//! The full path would then build the packet summary, make `ipv4`'s
//! decisions again (own address, master, fragment, ICMP error, ownership,
//! lookup) and forward through `existing` -> `inbound`/`reply` (route,
//! neighbour, Parsed-based rewrite). For a frame of the fast shape those
//! decisions are known in a few compares, so this path makes exactly
//! `existing`'s moves for it:
//!
//! * the frame has the fast shape, a TTL to decrement, is TCP and not to
//!   one of the director's own addresses; this director is the master;
//! * this worker owns the flow (or it was handed over);
//! * the connection is found (the established path's `Looked::Hit`: it
//!   looks up every segment of the fast shape, whatever its flags, so the
//!   dispatch hands its hit straight to `Pipeline::moves` and its miss,
//!   after `ipv4`'s checks, to the new-flow path; else, when it made no
//!   lookup (`[ha] sync`), one lookup here with the first pass's hash and
//!   the prefetch pass's hint, kept in `looked` for the full path), is NAT (both directions) or DR, not full-NAT, not opened by the
//!   synproxy, not a persistence template, and is not a SYN that
//!   reschedules a connection in TIME_WAIT/CLOSE;
//! * its server is in the snapshot and usable (the established path's
//!   per-server entry, `dest_fast.rs`);
//! * the next hop is valid (inbound: the one remembered with the server,
//!   else the next-hop cache's; replies: the cache's), and the packet fits
//!   the egress MTU.
//!
//! Then, as `existing` does: `on_packet` (state, expiry, NO_OUTPUT), the
//! `[ha] sync` report, the active/inactive move and the overload flag; and
//! as `inbound`/`reply` do: the rewrite (the fixed-offset NAT/DR of
//! `forward::fast`, the same bytes) and the per-server packet and byte
//! counts, added up in the server's entry and flushed once per burst as
//! the established path's (exact once the burst is done). Anything else returns `None` before anything is written, and the
//! full path decides as before. TUN connections take the full path (the
//! encapsulation is the established path's and the full path's).
//!
//! UDP moves no state: a datagram of a tracked flow is the established
//! path's (or the full path's); one no connection holds goes to the
//! new-flow path, as a TCP segment's miss does, which opens the flow when
//! it is to a UDP service (`first_datagram`).

use std::net::Ipv4Addr;

use super::established::Head;
use super::{rewrite_drop, synproxy, Frame, Inspected, Looked, Pipeline, Verdict};
use crate::conn::{self, tcp_flags, ConnId, Dir, Method, WireKey};
use crate::dataplane::snapshot::Snapshot;
use crate::forward;

/// Connection flags that send a segment to the full path: the synproxy's
/// sequence shifts, persistence templates.
const SLOW_FLAGS: u8 = synproxy::SYNPROXY | conn::flags::TEMPLATE;

/// The flags `ConnTable::wants_reschedule` asks for: SYN without ACK.
const RESCHEDULE_MASK: u8 = tcp_flags::SYN | tcp_flags::ACK;

/// What [`Pipeline::moves`] reads of a TCP frame of the fast shape:
/// Ethernet, IPv4 without options and the TCP header up to its flags byte
/// (47).
const HEAD: usize = 48;

/// What the transition path made of a frame.
pub(super) enum Next {
    /// Forwarded (or dropped, counted) as the full path would.
    Done(Verdict),
    /// Declined, nothing written: the full path decides.
    Full,
    /// No connection holds the flow and the frame is not to one of the
    /// director's own addresses: the new-flow path's (`new_flow.rs`),
    /// called by the dispatch, so that this path neither takes nor keeps
    /// the arrival port for it.
    NewFlow,
}

impl Pipeline {
    /// The transition path for a segment the established path made no
    /// lookup for (`[ha] sync` on, or a TTL at its end): the checks that
    /// path made before its lookup, the lookup (kept in `looked` for the
    /// full path), then [`moves`](Self::moves). When the lookup misses,
    /// `Next::NewFlow` sends the frame to the new-flow path, which may
    /// open the connection (`new_flow.rs`; the dispatch calls it).
    /// `Next::Full` leaves the frame, the connection and every counter
    /// untouched.
    ///
    /// The established path's own lookups (`Looked::Hit`, `Looked::Miss`)
    /// do not come here: the dispatch hands them to `moves` and (after
    /// [`decides`](Self::decides)) `new_flow` directly, without this call,
    /// its second reading of the header and, for a SYN, a call only to
    /// miss.
    #[inline(never)]
    pub(super) fn transition<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        now_ms: u64,
        owned: bool,
        looked: &mut Looked,
    ) -> Next {
        let Some((p, _)) = Head::read(f.data()) else {
            return Next::Full;
        };
        if p.key.proto != conn::PROTO_TCP {
            return self.first_datagram(snap, &p, i, now_ms, owned);
        }
        if p.ttl <= 1 || !self.master || !self.owns(snap, &p.key, owned) {
            return Next::Full;
        }
        let Some(hash) = i.hash else {
            return Next::Full;
        };
        let Some((id, dir, _)) = self.conns.lookup_hinted(&p.key, hash, i.hint, now_ms) else {
            *looked = Looked::Miss;
            // To one of the director's own addresses: asked after the
            // lookup, where an inbound segment's server entry knows its
            // VIP is none.
            if snap.is_own(p.dst()) {
                return Next::Full;
            }
            // No connection: perhaps the SYN that opens one (new_flow.rs).
            return Next::NewFlow;
        };
        *looked = Looked::Hit(id, dir);
        match self.moves(snap, f, id, dir, now_ms) {
            Some(v) => Next::Done(v),
            None => Next::Full,
        }
    }

    /// Forwards `f`, a fast-shape state-changing TCP segment of connection
    /// `id`, found in direction `dir`, when that is a NAT or DR connection
    /// (module docs), as the full path would. The caller found it with a
    /// TTL to decrement on the master and owns the flow (the established
    /// path's decline, `Looked::Hit`, or
    /// [`transition`](Self::transition)'s own lookup). `None` leaves the
    /// frame, the connection and every counter untouched: a synproxied
    /// connection, a template, full-NAT or TUN, a SYN that reschedules, a
    /// server gone, a cold next hop, too big (a steady segment the
    /// established path declined ends here, for the same reasons).
    ///
    /// The three fields it needs (flags, length, destination) are read
    /// again at their fixed offsets, one bounds check for the three:
    /// handed over from the caller's `Head`, they would keep that in
    /// memory on the established path (measured: +8 Ir per steady packet).
    ///
    /// The server's entry of the established path (`dest_fast.rs`: usable
    /// in this snapshot, its remembered next hop, the per-burst packet and
    /// byte counts, its counters' block) stands for the snapshot's
    /// id -> service -> server walk and the per-packet counter updates.
    ///
    /// Not inlined: inlined into `process_inspected` it costs the
    /// established path's steady packets in register allocation (session
    /// 23: 13-28 Ir per packet for the whole transition path).
    #[inline(never)]
    pub(super) fn moves<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        id: ConnId,
        dir: Dir,
        now_ms: u64,
    ) -> Option<Verdict> {
        let h = f.data().first_chunk::<HEAD>()?;
        let (flags, total) = (h[47], u16::from_be_bytes([h[16], h[17]]));
        let dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
        let c = self.conns.get(id);
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0 || !matches!(method, Method::Nat | Method::Dr) {
            return None;
        }
        let dest = c.dest();
        let to = c.next_hop_addr(dir);
        // Only a SYN without ACK may reschedule: the table is asked for
        // that one alone.
        if dir == Dir::Inbound
            && flags & RESCHEDULE_MASK == tcp_flags::SYN
            && self.conns.wants_reschedule(id, flags)
        {
            return None;
        }
        // The server in this snapshot and usable (pipeline/dest_fast.rs).
        let di = self.dests.usable(snap, dest)?;
        let dst_known = dir == Dir::Inbound && self.dests.vip_not_own(di, dst);
        if !dst_known && snap.is_own(Ipv4Addr::from(dst)) {
            return None;
        }
        // The next hop: inbound, the one remembered with the server (else
        // the next-hop cache's, then remembered), as the established path
        // takes it; replies, the next-hop cache's.
        let remembered = match dir {
            Dir::Inbound => self.dests.hop(di, to, now_ms, &self.shared.neigh),
            Dir::Reply => None,
        };
        // The MACs go into the frame as soon as the hop is known and the
        // size fits (nothing after that leaves the frame to the full path:
        // a rewrite error drops it), straight from the hop, rather than a
        // copy of them held across the state move.
        let port = match remembered {
            Some(h) => {
                if total > h.port_mtu {
                    return None;
                }
                write_macs(f.data_mut(), &h.macs);
                h.port
            }
            None => {
                let &h = self.hop_hit(snap, Ipv4Addr::from(to), now_ms)?;
                if dir == Dir::Inbound {
                    self.dests.set_hop(di, h);
                }
                if total > h.port_mtu {
                    return None;
                }
                write_macs(f.data_mut(), &h.macs);
                h.port
            }
        };
        // Committed: `existing`'s moves, in its order.
        // The rewrite's target read with the state move, from the record it
        // just wrote (in cache): one index into the slab for both.
        let (tr, (nat_addr, nat_port)) = self.conns.on_packet_target(id, dir, flags, now_ms);
        if self.sync {
            self.sync_after_packet(id, tr.state != tr.old_state, now_ms);
        }
        if tr.old_active != tr.new_active {
            // Usable in this snapshot (above): its entry (dest_fast.rs).
            self.dests
                .count_activity(snap, di, tr.old_active, tr.new_active);
        }
        let side = match (dir, method) {
            (Dir::Inbound, Method::Dr) => None,
            (Dir::Inbound, _) => Some(forward::NatSide::Dst),
            (Dir::Reply, _) => Some(forward::NatSide::Src),
        };
        let frame = f.data_mut();
        let done = match side {
            None => forward::decrement_ttl_fixed(frame),
            Some(side) => forward::nat_fixed_l3(frame, side, Ipv4Addr::from(nat_addr), nat_port),
        };
        if let Err(e) = done {
            return Some(self.drop(rewrite_drop(e)));
        }
        // IP bytes, as IPVS counts (no Ethernet header or padding), added
        // up per burst as the established path's.
        self.dests
            .count(snap, di, dir == Dir::Reply, u64::from(total));
        self.transition_hits += 1;
        Some(Verdict::Tx(port as usize))
    }

    /// `ipv4`'s checks before its lookup that the fixed offsets leave to
    /// make, for a TTL to decrement on the master: not to one of the
    /// director's own addresses, and this worker owns the flow.
    #[inline(always)]
    pub(super) fn decides(&self, snap: &Snapshot, key: &WireKey, owned: bool) -> bool {
        !snap.is_own(Ipv4Addr::from(key.addrs as u32)) && self.owns(snap, key, owned)
    }

    /// This worker owns the flow of `key` (or it was handed over): `ipv4`'s
    /// hand-off check.
    #[inline(always)]
    pub(super) fn owns(&self, snap: &Snapshot, key: &WireKey, owned: bool) -> bool {
        let dst = Ipv4Addr::from(key.addrs as u32);
        if !owned && self.workers > 1 {
            // `ipv4`'s hand-off check, in its terms.
            let (src, sport) = ((key.addrs >> 32) as u32, (key.ports >> 16) as u16);
            let (cip, cport) = if snap.is_vip(dst) {
                (src, sport)
            } else {
                (key.addrs as u32, key.ports as u16)
            };
            if self.handoff(owned, Ipv4Addr::from(cip), cport).is_some() {
                return false;
            }
        }
        true
    }

    /// A UDP datagram of the fast shape the established path made no
    /// lookup for (`[ha] sync` on, or a TTL at its end): when no
    /// connection holds it, the first of its flow, opened by the new-flow
    /// path when it is to a UDP service (`new_flow.rs`). A datagram of a
    /// tracked flow moves no state: the full path's. Out of line: the TCP
    /// segments' path stays as it was.
    #[inline(never)]
    fn first_datagram(
        &mut self,
        snap: &Snapshot,
        p: &Head,
        i: &Inspected,
        now_ms: u64,
        owned: bool,
    ) -> Next {
        if p.key.proto != conn::PROTO_UDP || p.ttl <= 1 || !self.master {
            return Next::Full;
        }
        if !self.decides(snap, &p.key, owned) {
            return Next::Full;
        }
        let Some(hash) = i.hash else {
            return Next::Full;
        };
        if self
            .conns
            .lookup_hinted(&p.key, hash, i.hint, now_ms)
            .is_some()
        {
            return Next::Full;
        }
        Next::NewFlow
    }
}

/// The next hop's MACs (destination, source) as the frame's first 12
/// bytes (`moves`).
#[inline(always)]
fn write_macs(frame: &mut [u8], macs: &[u8; 12]) {
    if let Some(m) = frame.first_chunk_mut::<12>() {
        *m = *macs;
    }
}
