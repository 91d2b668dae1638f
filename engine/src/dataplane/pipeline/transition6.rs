//! The IPv6 transition and new-flow paths: the twin of `transition.rs` and
//! `new_flow.rs` for a frame of the common IPv6 shape the established
//! path (`established6.rs`) declined.
//!
//! The full path would parse the frame twice (`parse_frame_full`, then
//! `parse_ipv6` in `ipv6`), make `forward6`'s decisions again, look the
//! flow up by its addresses (two id-table probes and a hash) and forward
//! through `existing6` -> `inbound6`/`reply6` (`next_hop6`: route, the
//! neighbour table, `remember_hop6`; the Parsed-based rewrite). For the
//! common shape those decisions are the established path's few compares,
//! so this path makes exactly `forward6`'s moves:
//!
//! * the frame is unicast to the arrival port, with a hop limit to
//!   decrement, and this director is the master;
//! * the connection is looked up once per segment: by the established
//!   path when the first pass resolved the flow's ids in the current
//!   epoch and `[ha] sync` is off (a hit that is not steady comes to
//!   `moves6`, a miss to the new-flow path, with nothing read again),
//!   else by `transition6` here;
//! * the flow's address ids as they are now: the first pass resolved them
//!   before this burst's earlier frames ran, so a flow opened in the same
//!   burst (the SYN before its ACK, data and FIN, as `rvs-perf pipeline
//!   --conns` sends them; a UDP flow's first datagrams) had none then.
//!   They are resolved again: from the flow the new-flow path opened last
//!   when it is this one (`Conns6::opened`: its ids and its insert's
//!   hash), else from the id table; the connection is looked up once, and
//!   a steady segment on its record takes the established path's way
//!   (`forward_steady6`);
//! * the connection is found: a TCP segment of a NAT or DR connection
//!   (not NAT64's full-NAT, not opened by the synproxy, not a template),
//!   not a SYN that reschedules one in TIME_WAIT/CLOSE, whose server,
//!   addresses, owner, next hop and MTU pass the established path's
//!   checks (`route6_fast`). Then `existing6`'s moves: `on_packet`, the
//!   `[ha] sync` report, the active/inactive move; and the established
//!   path's rewrite and per-burst counts (`forward6_fast`);
//! * no connection (the lookup missed, or an address has no id): a TCP
//!   SYN without ACK or a UDP datagram to a service of that protocol and
//!   port, not one-packet, that this worker owns, is opened by
//!   `new_flow6`'s own code from its service on (`open6`: draining, the
//!   pick, the record, the counts) and forwarded by the fixed-offset
//!   rewrite when its server's next hop is known (else `inbound6`).
//!
//! Anything else returns `None` before anything is written, and the full
//! path decides as before: TUN, NAT64, extension headers and fragments
//! (not the common shape), ICMPv6, persistence templates, the synproxy,
//! a UDP datagram of a tracked flow the established path declined.

use super::established6::{resolve_again6, Flow6, Steady6, Tail6, SLOW_FLAGS, STEADY_MASK};
use super::{Frame, Inspected, Pipeline, Verdict};
use crate::conn::{self, tcp_flags, ConnId, Dir, Hint, KeyHash, Method, WireKey};
use crate::dataplane::snapshot::{fold6, Snapshot};
use crate::packet::parse_ipv6::parse_fast_ipv6;

/// The flags `ConnTable::wants_reschedule` asks for: SYN without ACK.
const RESCHEDULE_MASK: u8 = tcp_flags::SYN | tcp_flags::ACK;

impl Pipeline {
    /// The transition and new-flow paths for a common-shape IPv6 frame the
    /// established path made no lookup for (module docs): its ids resolved
    /// in an older epoch, or `[ha] sync` on. `t` is what the established
    /// path read of the frame (unicast to the arrival port, a hop limit to
    /// decrement: checked). The flow is resolved again when it needs to
    /// be and looked up here; a hit goes to [`moves6`](Self::moves6) (a
    /// steady segment of a flow resolved again first to the established
    /// path's forwarding), a miss to the new-flow path. `None` leaves the
    /// frame, the tables and every counter untouched for the full path.
    ///
    /// Out of line, as the other IPv6 entry points (`established6.rs`).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn transition6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        t: Tail6,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        if !self.master {
            return None;
        }
        let v6 = self.v6.as_deref()?;
        let fl = &i.flow6;
        match fl.hash {
            Some(h) if fl.epoch == v6.addrs.epoch() => {
                let hint = i.hint;
                self.looked_up6(
                    snap, f, fl, &fl.key, h, hint, false, t, in_port, now_ms, owned,
                )
            }
            // Ids resolved in an older epoch (or none): again.
            _ => self.resolved_again6(snap, f, fl, t, in_port, now_ms, owned),
        }
    }

    /// The dispatch's call for a frame the first pass found no ids for
    /// (the established path has nothing to look up): a new client's SYN,
    /// or a segment of a flow opened earlier in the same burst (the SYN
    /// before its ACK, data and FIN; a UDP flow's first datagrams). After
    /// the established path's checks of the frame (unicast to the arrival
    /// port, a hop limit to decrement) and on the master, its ids are
    /// resolved again here ([`resolved_again6`](Self::resolved_again6)):
    /// none (a new client's address), straight to the new-flow path, with
    /// no second call, no lookup and no second reading of the header.
    #[inline(never)]
    pub(super) fn unresolved6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let port = snap.ports.get(in_port)?;
        let t = Tail6::read(f.data(), i.flow6.key.proto)?;
        if t.dst_mac != port.mac.0 || t.hop <= 1 || !self.master {
            return None;
        }
        self.resolved_again6(snap, f, &i.flow6, t, in_port, now_ms, owned)
    }

    /// Flow `fl`'s ids as they are now (`resolve_again6`: the flow the
    /// new-flow path opened last, else the id table): an address without
    /// one has no connection, so the frame goes to the new-flow path;
    /// else its key is looked up ([`looked_up6`](Self::looked_up6), with
    /// the established path's forwarding for a steady segment).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn resolved_again6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        fl: &Flow6,
        t: Tail6,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let v6 = self.v6.as_deref()?;
        let Some((key, h)) = resolve_again6(v6, fl) else {
            return self.first_flow6(snap, f, fl, t.flags, in_port, now_ms, owned);
        };
        self.looked_up6(
            snap,
            f,
            fl,
            &key,
            h,
            Hint::NONE,
            true,
            t,
            in_port,
            now_ms,
            owned,
        )
    }

    /// The lookup of flow `fl` under `key` (hashed to `hash`, its record
    /// perhaps at `hint`): a miss goes to the new-flow path, a hit to
    /// [`moves6`](Self::moves6); when the ids were resolved `again` (the
    /// first pass could not look the flow up), a steady segment or
    /// datagram on that record first to the established path's
    /// forwarding.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn looked_up6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        fl: &Flow6,
        key: &WireKey,
        hash: KeyHash,
        hint: Hint,
        again: bool,
        t: Tail6,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let v6 = self.v6.as_deref_mut()?;
        let Some((id, dir, c)) = v6.conns.lookup_hinted(key, hash, hint, now_ms) else {
            return self.first_flow6(snap, f, fl, t.flags, in_port, now_ms, owned);
        };
        if again
            && self.fast_on
            && (t.flags & STEADY_MASK == tcp_flags::ACK || fl.key.proto != conn::PROTO_TCP)
        {
            // A steady segment (or datagram) of a flow opened in this
            // burst: the established path's, on this lookup's record (the
            // first pass could not look it up).
            if let Some(s) = Steady6::of(id, dir, c) {
                if let Some(v) = self.forward_steady6(snap, f, fl, &s, t.payload, now_ms, owned) {
                    return Some(v);
                }
            }
        }
        self.moves6(snap, f, fl, id, dir, t, now_ms, owned)
    }

    /// Forwards `f`, a common-shape segment of flow `fl` (what the
    /// established path read of it: `t`) whose connection `id` was found
    /// in direction `dir`, when it is a TCP segment of a NAT or DR
    /// connection (not NAT64's full-NAT, not opened by the synproxy, not a
    /// template), not a SYN that reschedules one in TIME_WAIT/CLOSE, whose
    /// server, addresses, owner, next hop and MTU pass the established
    /// path's checks (`route6_fast`): `existing6`'s moves (`on_packet`,
    /// the `[ha] sync` report, the active/inactive move) and the
    /// established path's rewrite and per-burst counts. The caller found it
    /// unicast to the arrival port with a hop limit to decrement, on the
    /// master. `None` leaves the frame, the connection and every counter
    /// untouched for the full path (a steady segment the established path
    /// declined ends here, for the same reasons).
    ///
    /// Not inlined: the established path's steady packets keep their
    /// register allocation (as IPv4's `moves`).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn moves6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        fl: &Flow6,
        id: ConnId,
        dir: Dir,
        t: Tail6,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        if fl.key.proto != conn::PROTO_TCP {
            return None;
        }
        let v6 = self.v6.as_deref_mut()?;
        let c = v6.conns.get(id);
        let method = c.method();
        if c.flags() & SLOW_FLAGS != 0 || !matches!(method, Method::Nat | Method::Dr) {
            return None;
        }
        let dest = c.dest();
        // Only a SYN without ACK may reschedule: the table is asked for
        // that one alone.
        if dir == Dir::Inbound
            && t.flags & RESCHEDULE_MASK == tcp_flags::SYN
            && v6.conns.wants_reschedule(id, t.flags)
        {
            return None;
        }
        let r = self.route6_fast(snap, fl, dest, dir, owned, t.payload, now_ms)?;
        // Committed: `existing6`'s moves, in its order.
        let v6 = self.v6.as_deref_mut()?;
        let tr = v6.conns.on_packet(id, dir, t.flags, now_ms);
        if self.sync {
            self.sync_after_packet6(id, tr.state != tr.old_state, now_ms);
        }
        let v6 = self.v6.as_deref_mut()?;
        if tr.old_active != tr.new_active {
            // Usable in this snapshot (`route6_fast`): its entry
            // (dest_fast6.rs).
            v6.dests
                .count_activity(snap, r.di(), tr.old_active, tr.new_active);
        }
        // The rewrite's port read from the record the state move just
        // wrote (in cache), not kept across the checks above.
        let c = v6.conns.get(id);
        let port = match dir {
            Dir::Inbound => c.sport(),
            Dir::Reply => c.vport(),
        };
        let v = self.forward6_fast(snap, f, &r, dir, method, port, t.payload);
        self.transition_hits += u64::from(matches!(v, Verdict::Tx(_)));
        Some(v)
    }

    /// The new-flow path for a frame no connection holds
    /// ([`first_packet6`](Self::first_packet6)), counted when it decides.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn first_flow6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        fl: &Flow6,
        flags: u8,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let v = self.first_packet6(snap, f, fl, flags, in_port, now_ms, owned)?;
        self.new_flow_hits += 1;
        Some(v)
    }

    /// The first packet of a flow no connection holds: opened by `open6`
    /// when it is a TCP SYN without ACK (`flags`) or a UDP datagram to a
    /// service of this table that is not one-packet, and this worker owns
    /// the flow (`forward6`'s hand-off, by the client); `None` otherwise.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn first_packet6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        fl: &Flow6,
        flags: u8,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let tcp = fl.key.proto == conn::PROTO_TCP;
        if tcp && flags & RESCHEDULE_MASK != tcp_flags::SYN {
            return None;
        }
        // The common shape (the first pass's): its summary at fixed offsets.
        let p = parse_fast_ipv6(f.data())?;
        let svc = snap.service6_for(p.protocol, p.dst, p.dst_port)?;
        if svc.ops || self.handoff(owned, fold6(p.src), p.src_port).is_some() {
            return None;
        }
        Some(self.open6(snap, f, &p, svc, in_port, now_ms, Some(fl)))
    }
}
