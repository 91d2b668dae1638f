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
//! * the connection is found (the established path's `Looked::Hit`, else
//!   one lookup with the first pass's hash, kept in `looked` for the full
//!   path), is NAT (both directions) or DR, not full-NAT, not opened by the
//!   synproxy, not a persistence template, and is not a SYN that
//!   reschedules a connection in TIME_WAIT/CLOSE;
//! * its server is in the snapshot and usable;
//! * the next hop is in the next-hop cache and still valid, and the packet
//!   fits the egress MTU.
//!
//! Then, as `existing` does: `on_packet` (state, expiry, NO_OUTPUT), the
//! `[ha] sync` report, the active/inactive move and the overload flag; and
//! as `inbound`/`reply` do: the rewrite (the fixed-offset NAT/DR of
//! `forward::fast`, the same bytes) and the per-server packet and byte
//! counts. Anything else returns `None` before anything is written, and the
//! full path decides as before. TUN connections take the full path (the
//! encapsulation is the established path's and the full path's).

use super::{rewrite_drop, synproxy, Frame, Looked, Pipeline, Verdict};
use crate::conn::{self, Dir, FlowKey, KeyHash, Method};
use crate::dataplane::snapshot::Snapshot;
use crate::forward;
use crate::packet::parse_fast::fast_parsed;

/// Connection flags that send a segment to the full path: the synproxy's
/// sequence shifts, persistence templates.
const SLOW_FLAGS: u8 = synproxy::SYNPROXY | conn::flags::TEMPLATE;

impl Pipeline {
    /// Forwards `f` when it is a state-changing TCP segment of a tracked NAT
    /// or DR connection (module docs), as the full path would; when its
    /// lookup misses, the new-flow path may open the connection
    /// (`new_flow.rs`). `None` leaves the frame, the connection and every
    /// counter untouched, with what a lookup found in `looked`.
    ///
    /// Not inlined: inlined into `process_inspected` it saves nothing per
    /// connection (4,158 against 4,160 Ir) and costs the established path
    /// 13-28 Ir per packet (register allocation of the bigger function).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn transition<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        hash: KeyHash,
        in_port: usize,
        now_ms: u64,
        owned: bool,
        looked: &mut Looked,
    ) -> Option<Verdict> {
        // Only the fields read below are computed (the summary is a local).
        let p = fast_parsed(f.data());
        if p.protocol != conn::PROTO_TCP || p.ttl <= 1 || !self.master {
            return None;
        }
        if *looked == Looked::Miss || snap.is_own(p.dst) {
            return None;
        }
        if !owned && self.workers > 1 {
            // `ipv4`'s hand-off check, in its terms.
            let (cip, cport) = if snap.is_vip(p.dst) {
                (p.src, p.src_port)
            } else {
                (p.dst, p.dst_port)
            };
            if self.handoff(owned, cip, cport).is_some() {
                return None;
            }
        }
        let flags = p.tcp_flags.bits();
        let (id, dir) = match *looked {
            Looked::Hit(id, dir) => (id, dir),
            _ => {
                let key = FlowKey::new(p.protocol, p.src, p.src_port, p.dst, p.dst_port);
                let found = self.conns.lookup_hashed(&key, hash, now_ms);
                *looked = found.map_or(Looked::Miss, |(id, dir)| Looked::Hit(id, dir));
                match found {
                    Some(x) => x,
                    // No connection: perhaps the SYN that opens one (new_flow.rs).
                    None => return self.new_flow(snap, f, hash, in_port, now_ms),
                }
            }
        };
        let c = *self.conns.get(id);
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0 || !matches!(method, Method::Nat | Method::Dr) {
            return None;
        }
        if dir == Dir::Inbound && self.conns.wants_reschedule(id, flags) {
            return None;
        }
        let (_, srv) = snap.dest(c.dest())?;
        if !srv.usable {
            return None;
        }
        let to = match dir {
            Dir::Inbound => c.server(),
            Dir::Reply => c.client(),
        };
        let h = *self.hop_hit(snap, to, now_ms)?;
        if p.ip_total_len() > h.port_mtu {
            return None;
        }
        // Committed: `existing`'s moves, in its order.
        let tr = self.conns.on_packet(id, dir, flags, now_ms);
        if self.sync {
            self.sync_after_packet(id, tr.state != tr.old_state, now_ms);
        }
        srv.count_activity(self.worker, tr.old_active, tr.new_active);
        let k = &srv.shared.per_worker[self.worker];
        let frame = f.data_mut();
        let done = match (dir, method) {
            (Dir::Inbound, Method::Dr) => forward::dr_fixed(frame, h.mac, h.port_mac),
            (Dir::Inbound, _) => {
                let side = forward::NatSide::Dst;
                forward::nat_fixed(frame, side, to, c.sport(), h.mac, h.port_mac)
            }
            (Dir::Reply, _) => {
                let (side, vip, vport) = (forward::NatSide::Src, c.vip(), c.vport());
                forward::nat_fixed(frame, side, vip, vport, h.mac, h.port_mac)
            }
        };
        if let Err(e) = done {
            return Some(self.drop(rewrite_drop(e)));
        }
        // IP bytes, as IPVS counts (no Ethernet header or padding).
        let len = u64::from(p.ip_total_len());
        if dir == Dir::Inbound {
            k.in_packets.inc();
            k.in_bytes.add(len);
        } else {
            k.out_packets.inc();
            k.out_bytes.add(len);
        }
        self.transition_hits += 1;
        Some(Verdict::Tx(h.port as usize))
    }
}
