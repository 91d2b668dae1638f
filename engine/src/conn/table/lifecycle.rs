//! A record's TCP state and expiry timer, moved along with its packets
//! (IPVS's state table, SPEC §5) or set by the peer director (sync).

use super::{expired, ConnTable};
use crate::conn::state::{next_state, tcp_active, Table, TimeoutsMs};
use crate::conn::{
    flags, is_active, tcp_flags, Conn, ConnId, Dir, TcpState, Transition, MAX_TIMEOUT_S, PROTO_TCP,
};

impl ConnTable {
    /// Account one packet of connection `id` seen in `dir` with TCP flags
    /// `tcp_flags` (the header's flag byte; ignored for non-TCP): move the
    /// TCP state along the IPVS table for `dir` and re-arm the expiry to the
    /// new state's timeout (UDP and others: the `udp` timeout).
    #[inline(always)]
    pub fn on_packet(&mut self, id: ConnId, dir: Dir, tcp_flags: u8, now_ms: u64) -> Transition {
        let c = &mut self.slots[id.index()];
        debug_assert!(c.in_use(), "on_packet of a free slot {id:?}");
        move_state(c, &self.timeouts_ms, dir, tcp_flags, now_ms)
    }

    /// [`on_packet`](Self::on_packet), then the rewrite's target for `dir`
    /// ([`Conn::nat_target`]) read from the record just written: one index
    /// into the slab where the two calls made two bounds checks (the
    /// transition path's commit takes this twice per connection).
    #[inline(always)]
    pub fn on_packet_target(
        &mut self,
        id: ConnId,
        dir: Dir,
        tcp_flags: u8,
        now_ms: u64,
    ) -> (Transition, (u32, u16)) {
        let c = &mut self.slots[id.index()];
        debug_assert!(c.in_use(), "on_packet_target of a free slot {id:?}");
        let tr = move_state(c, &self.timeouts_ms, dir, tcp_flags, now_ms);
        (tr, c.nat_target(dir))
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
}

/// A packet's move of record `c` (its TCP state and expiry; `on_packet`'s
/// body, shared with `on_packet_target`).
#[inline(always)]
fn move_state(c: &mut Conn, t: &TimeoutsMs, dir: Dir, tcp_flags: u8, now_ms: u64) -> Transition {
    let old = c.state();
    if c.proto != PROTO_TCP {
        // No state: the one timeout, never active.
        c.expires = (now_ms as u32).wrapping_add(t.udp);
        return Transition {
            old_active: false,
            new_active: false,
            old_state: old,
            state: old,
        };
    }
    // TCP from here: the protocol is not asked again (the timeout and
    // the two activity bits are TCP's).
    let no_output = c.flags & flags::NO_OUTPUT != 0;
    if dir == Dir::Reply && no_output {
        // A reply through us after all: use input/output from now on.
        c.flags &= !flags::NO_OUTPUT;
    }
    let new = next_state(Table::pick(dir, no_output), old, tcp_flags);
    c.state = new as u8;
    c.expires = (now_ms as u32).wrapping_add(t.tcp[new as usize]);
    Transition {
        old_active: tcp_active(old),
        new_active: tcp_active(new),
        old_state: old,
        state: new,
    }
}
