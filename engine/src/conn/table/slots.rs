//! Records in and out of the slab: inserts (with their index entries),
//! removal, eviction when the table is full or under pressure, and the
//! expiry hand's sweep.

use std::net::Ipv4Addr;

use super::fnat::Local;
use super::index::entry;
use super::{expired, ConnTable, KeyHash, NIL};
use crate::conn::state::{next_state, Table};
use crate::conn::{
    flags, is_active, Conn, ConnId, Dir, Method, NewConn, Reclaim, TableFull, TcpState, Transition,
    WireKey, EVICT_WINDOW, PRESSURE_SYN_RECV_S, PROTO_TCP,
};

/// May a live record be evicted to make room under pressure? TCP only in
/// NONE or SYN_RECV (a handshake nobody has completed), any other protocol
/// (UDP), or one a rescue opened (`flags::RESCUED`); never a persistence
/// template.
#[inline]
pub(super) fn evictable(c: &Conn) -> bool {
    c.flags & flags::TEMPLATE == 0
        && (c.proto != PROTO_TCP
            || c.flags & flags::RESCUED != 0
            || c.state == TcpState::None as u8
            || c.state == TcpState::SynRecv as u8)
}

impl ConnTable {
    /// Create a connection in a free slot; [`TableFull`] when there is
    /// none. The caller looks up first: inserting a key that a live
    /// connection already holds leaves the older one in front.
    ///
    /// The data plane uses [`insert_or_evict`](Self::insert_or_evict),
    /// which also makes room in a full table; this one never touches
    /// another connection.
    pub fn insert(&mut self, c: NewConn, now_ms: u64) -> Result<ConnId, TableFull> {
        self.insert_with(c, None, None, None, now_ms)
            .map(|(id, _)| id)
    }

    /// [`insert`](Self::insert) with the local tuple of a full-NAT
    /// connection (`None` for the other methods: a `Method::Fnat` record
    /// without one gets no reply key), and the hash of the inbound key
    /// when the caller has it (`None`: hashed here). Inlined: the caller's
    /// [`NewConn`] is written into the slot's record, not copied through
    /// the stack on the way.
    ///
    /// `first`: the TCP flags of the inbound segment that opens the
    /// connection, when the caller accounts it at once: the record is
    /// written with the state and expiry [`on_packet`](Self::on_packet)
    /// would give it (one write of the record instead of a write, a read
    /// back and a second write), and the transition is what `on_packet`
    /// would return. `None`: the record as `c` says, and the transition
    /// from and to that state.
    #[inline(always)]
    pub(super) fn insert_with(
        &mut self,
        c: NewConn,
        local: Option<Local>,
        inbound: Option<KeyHash>,
        first: Option<u8>,
        now_ms: u64,
    ) -> Result<(ConnId, Transition), TableFull> {
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
        // `on_packet`'s move for the first segment (inbound, so the flags
        // stay as they are; non-TCP keeps NONE).
        let old = state;
        let state = match first {
            Some(tcp) if c.proto == PROTO_TCP => {
                let no_output = fl & flags::NO_OUTPUT != 0;
                next_state(Table::pick(Dir::Inbound, no_output), old, tcp)
            }
            _ => old,
        };
        // The table's count, and with it the pressure that shortens the
        // SYN_RECV timeout, move before the record's timer is set: a
        // record inserted as it is keeps the timeout of before the insert;
        // the first segment's, as `on_packet` after the insert, that of
        // after it.
        let before = self.timeouts_ms.of(c.proto, state);
        self.len += 1;
        if !self.pressure && self.len >= self.pressure_on {
            self.apply_pressure(true);
        }
        let timeout = match first {
            Some(_) => self.timeouts_ms.of(c.proto, state),
            None => before,
        };
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
        let tr = Transition {
            old_active: is_active(c.proto, old),
            new_active: is_active(c.proto, state),
            old_state: old,
            state,
        };
        Ok((ConnId(slot), tr))
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

    /// [`insert_or_evict_hashed`](Self::insert_or_evict_hashed) and the
    /// first inbound segment's [`on_packet`](Self::on_packet) (TCP flags
    /// `tcp_flags`) in one write of the new record: the same record, the
    /// same transition, as the two calls one after the other.
    #[inline(always)]
    pub fn insert_or_evict_opened(
        &mut self,
        c: NewConn,
        inbound: Option<KeyHash>,
        tcp_flags: u8,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<(ConnId, Transition), TableFull> {
        self.make_room(now_ms, on_reclaim)?;
        self.insert_with(c, None, inbound, Some(tcp_flags), now_ms)
    }

    /// A full table: one record removed (expired, else evicted) to make
    /// room for an insert, or [`TableFull`] (module docs, "Pressure").
    #[inline(always)]
    fn make_room(
        &mut self,
        now_ms: u64,
        on_reclaim: impl FnOnce(&Conn, Reclaim),
    ) -> Result<(), TableFull> {
        if self.free_head == NIL {
            let (slot, why) = self.find_victim(now_ms).ok_or(TableFull)?;
            let old = self
                .remove(ConnId(slot))
                .expect("eviction victim is in use");
            on_reclaim(&old, why);
        }
        Ok(())
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
        self.make_room(now_ms, on_reclaim)?;
        self.insert_with(c, None, inbound, None, now_ms)
            .map(|(id, _)| id)
    }

    /// Pick the record `insert_or_evict` reclaims, and move the eviction
    /// hand past it (past the whole window when there is none).
    #[cold]
    #[inline(never)]
    pub(super) fn find_victim(&mut self, now_ms: u64) -> Option<(u32, Reclaim)> {
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
    pub(super) fn idle_ms(&self, c: &Conn, now: u32) -> u32 {
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
    pub(super) fn apply_pressure(&mut self, on: bool) {
        self.pressure = on;
        let i = TcpState::SynRecv as usize;
        let base = self.base_ms.tcp[i];
        self.timeouts_ms.tcp[i] = if on {
            base.min(PRESSURE_SYN_RECV_S * 1000)
        } else {
            base
        };
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
}
