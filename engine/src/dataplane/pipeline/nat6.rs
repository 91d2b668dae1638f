//! NAT over IPv6 (issue 13, stage 3): a client's TCP/UDP flow to an IPv6
//! VIP is scheduled over the service's IPv6 servers, rewritten with
//! [`forward::nat6_inbound`], and the server's reply found by its reply key
//! and rewritten back with [`forward::nat6_outbound`].
//!
//! # The IPv6 connection table
//!
//! A separate [`ConnTable`] of the IPv4 design, whose records and keys hold
//! 32-bit ids of the addresses ([`Addr6Table`]) where IPv4's hold the
//! addresses: the 32-byte record, the 16-byte key, the index, the TCP state
//! tracking, the timeouts and the expiry sweep are IPv4's, and the IPv4
//! table and its per-packet path are untouched. It is allocated (with the
//! id table) on the first configuration that has a forwarded IPv6 service,
//! with the IPv4 table's capacity: 64 bytes per connection as IPv4
//! (record + index) plus 32 per address id, about one id per client (VIPs
//! and servers are shared), so ~96 bytes per IPv6 connection.
//!
//! # Ownership
//!
//! The client's address and port own the flow, as for IPv4: the worker is
//! `reta.owner` of the 32-bit fold of the address ([`fold6`]). With the
//! symmetric RSS key that is the Toeplitz hash of the IPv6 address and
//! port, which ports whose device hashes IPv6 TCP/UDP by one side's
//! fields compute too (`dataplane::rss`): both directions arrive on the
//! owner's queue; elsewhere a frame on another queue takes the hand-off
//! ring.
//!
//! DR/TUN servers share this path (the connection's method picks the
//! rewrite in `inbound6`; `routed6.rs` has TUN, the ICMPv6 errors the
//! director sends and the ones quoting a tracked flow).
//!
//! Fragments: the first is NAT-ed as its flow, the later ones follow it by
//! (source, destination, identification) (`frag6.rs`).
//!
//! A sorry server's connections are NAT ones of this table (`pick6` in
//! `persist6.rs` picks it); one-packet scheduling makes none (`ops6.rs`).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::dest_fast6::DestTable6;
use super::established6::{Flow6, Hop6, HOP6_CACHE};
use super::frag6::{Frag6Fwd, FragTable6};
use super::persist6::release_template6;
use super::{rewrite_drop, uncount, Frame, Pipeline, Verdict};
use crate::conn::addr6::{self, Addr6Table};
use crate::conn::{
    self, Conn, ConnId, ConnTable, Dir, FlowKey, KeyHash, Method, NewConn, TcpState,
};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{fold6, Server, Service6, Snapshot};
use crate::forward;
use crate::packet::ethernet::MacAddr;
use crate::packet::icmpv6::msg_type;
use crate::packet::ipv6::next_header;
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::sched::persist::PersistTable;

/// Address ids beyond the connection capacity: the VIPs and servers
/// every connection shares.
const SHARED_IDS: usize = 4096;

/// One worker's IPv6 connections.
pub(in crate::dataplane) struct Conns6 {
    pub(in crate::dataplane) conns: ConnTable,
    pub(in crate::dataplane) addrs: Addr6Table,
    /// The identification of the next NAT64 UDP datagram sent with DF
    /// clear (`nat64.rs`).
    pub(in crate::dataplane) ident: u16,
    /// Fragmented datagrams in flight (`frag6.rs`).
    pub(in crate::dataplane) frags: FragTable6,
    /// Resolved next hops, for the established fast path (`established6.rs`).
    pub(super) hops: [Hop6; HOP6_CACHE],
    /// The established path's per-server entries (`dest_fast6.rs`).
    pub(super) dests: DestTable6,
    /// The flow the new-flow path opened last, with its ids and hash
    /// (`Flow6::opened`): the same burst's later frames of that flow,
    /// whose first pass found no ids, take them from here
    /// (`established6::resolve_again6`).
    pub(super) opened: Flow6,
    /// The address id each server (by id, direct-mapped) was last given
    /// by the new-flow path (`open6`): a new connection holds its
    /// server's address through it (`Addr6Table::hold_known`: no hash,
    /// no probe run) while it still names that address.
    server_ids: [u32; SERVER_IDS],
}

/// Servers whose address id `Conns6` remembers.
const SERVER_IDS: usize = 64;

impl Conns6 {
    /// Bytes allocated for the IPv6 connections (table + address ids).
    pub fn memory_bytes(&self) -> usize {
        self.conns.memory_bytes() + self.addrs.memory_bytes()
    }

    /// The connection and direction of the tuple `src -> dst` (none when
    /// an address has no id: no connection can have it).
    #[inline]
    pub(super) fn lookup_tuple(
        &self,
        proto: u8,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        now_ms: u64,
    ) -> Option<(ConnId, Dir)> {
        let s = self.addrs.get(src.0)?;
        let d = self.addrs.get(dst.0)?;
        let key = FlowKey::new(proto, Ipv4Addr::from(s), src.1, Ipv4Addr::from(d), dst.1);
        self.conns.lookup(&key, now_ms)
    }

    /// Holds server `dest`'s address `addr` once more (`Addr6Table::acquire`),
    /// through the id it was last given here when that still names it.
    #[inline(always)]
    fn acquire_server(&mut self, dest: u32, addr: Ipv6Addr) -> Option<u32> {
        let a = addr6::raw(addr);
        let memo = &mut self.server_ids[dest as usize % SERVER_IDS];
        if let Some(id) = self.addrs.hold_known(*memo, a) {
            return Some(id);
        }
        let id = self.addrs.acquire(addr)?;
        *memo = id;
        Some(id)
    }
}

/// A connection ends: its template hold (persistence), then the address
/// ids it holds, then its count on its server.
pub(super) fn forget6(
    snap: &Snapshot,
    persist: &PersistTable,
    worker: usize,
    addrs: &mut Addr6Table,
    c: &Conn,
    now_ms: u64,
) {
    release_template6(snap, persist, addrs, c, now_ms);
    release_ids(addrs, c);
    uncount6(snap, worker, c);
}

/// Gives back the address ids a connection holds: three, or two for a
/// NAT64 one (full-NAT), whose server is a plain IPv4 address.
fn release_ids(addrs: &mut Addr6Table, c: &Conn) {
    addrs.release(u32::from(c.client()));
    addrs.release(u32::from(c.vip()));
    if c.method() != conn::Method::Fnat {
        addrs.release(u32::from(c.server()));
    }
}

impl Pipeline {
    /// Makes the IPv6 connection and address tables anew with fixed hash
    /// seeds, so that `rvs-perf pipeline`'s callgrind counts repeat
    /// exactly. For that and tests only, before any IPv6 connection (the
    /// tables' contents are dropped); nothing when they were not made.
    pub fn seed_v6_tables(&mut self, seed: u64) {
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let cap = v6.conns.capacity();
        let mut conns = ConnTable::with_capacity_and_seed(cap, seed);
        conns.set_timeouts(*v6.conns.timeouts());
        v6.conns = conns;
        v6.addrs = Addr6Table::with_capacity_and_seed(cap + SHARED_IDS, seed);
    }

    /// Cold: allocates the IPv6 tables the first time a configuration
    /// forwards IPv6, and applies `[timeouts]` to them.
    pub(super) fn prepare_v6(&mut self, snap: &Snapshot) {
        if snap.services6.is_empty() && snap.services64.is_empty() && self.v6.is_none() {
            return;
        }
        let (cap, worker) = (self.conns.capacity(), self.worker);
        let v6 = self.v6.get_or_insert_with(|| {
            Box::new(Conns6 {
                conns: ConnTable::with_capacity(cap),
                addrs: Addr6Table::with_capacity(cap + SHARED_IDS),
                ident: 0,
                frags: FragTable6::new(),
                hops: [Hop6::EMPTY; HOP6_CACHE],
                dests: DestTable6::new(worker),
                opened: Flow6::NONE,
                server_ids: [0; SERVER_IDS],
            })
        });
        v6.conns.set_timeouts(snap.timeouts);
        self.prepare_nat64(snap);
    }

    /// IPv6 connections held by this worker.
    pub fn conns6_len(&self) -> usize {
        self.v6.as_ref().map_or(0, |v| v.conns.len())
    }

    /// Bytes of this worker's IPv6 connection table and address ids (0
    /// before any IPv6 service).
    pub fn conns6_memory_bytes(&self) -> usize {
        self.v6.as_ref().map_or(0, |v| v.memory_bytes())
    }

    /// The expiry sweep of the IPv6 table, as `housekeeping` does for IPv4.
    pub(super) fn expire_v6(&mut self, snap: &Snapshot, now_ms: u64, budget: usize) {
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let (worker, stats, persist) = (self.worker, &self.stats, &self.shared.persist);
        let Conns6 { conns, addrs, .. } = v6;
        // NAT64 local ports go back to the one pool (`nat64.rs`).
        conns.with_lent_pools(&mut self.conns, |conns| {
            conns.expire_some(now_ms, budget, |c| {
                stats.conns_expired.inc();
                forget6(snap, persist, worker, addrs, c, now_ms);
            })
        });
    }

    /// Inserts `new` into the IPv6 table. A full table reclaims an expired
    /// record or evicts an embryonic/idle one, as IPv4's does; what goes
    /// gives back its template hold, address ids and count, and a NAT64
    /// one its local port (the IPv4 table's pools are lent meanwhile).
    /// `hash`: the new connection's inbound key's hash when the caller
    /// has it (`ConnTable::insert_or_evict_hashed`).
    pub(super) fn insert6(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        hash: Option<KeyHash>,
        now_ms: u64,
    ) -> Result<ConnId, conn::TableFull> {
        let Some(v6) = self.v6.as_deref_mut() else {
            return Err(conn::TableFull);
        };
        let (stats, worker, persist) = (&self.stats, self.worker, &self.shared.persist);
        let Conns6 { conns, addrs, .. } = v6;
        conns.with_lent_pools(&mut self.conns, |conns| {
            conns.insert_or_evict_hashed(new, hash, now_ms, |c, why| {
                match why {
                    conn::Reclaim::Expired => stats.conns_expired.inc(),
                    conn::Reclaim::Evicted => stats.conns_evicted.inc(),
                }
                forget6(snap, persist, worker, addrs, c, now_ms);
            })
        })
    }

    /// A TCP/UDP frame to a forwarded IPv6 VIP, or from an IPv6 server:
    /// `None` for anything else (the caller goes on as before).
    pub(super) fn forward6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let icmp_err = p.protocol == next_header::ICMPV6
            && (msg_type::DEST_UNREACHABLE..=msg_type::PARAM_PROBLEM).contains(&p.icmp_type);
        // A later fragment has no L4 header, only its Fragment header.
        let later = p.fragment.is_some_and(|fr| fr.offset != 0);
        if self.v6.is_none()
            || !(p.has_l4 || later)
            || !(p.protocol == next_header::TCP || p.protocol == next_header::UDP || icmp_err)
        {
            return None;
        }
        let to_vip = snap.is_fwd_vip6(p.dst) || snap.is_vip64(p.dst);
        if !to_vip
            && (snap.nd6.servers.binary_search(&p.src).is_err()
                || snap.ports.iter().any(|pi| pi.addr6 == Some(p.dst))
                || p.dst.segments()[0] & 0xffc0 == 0xfe80)
        {
            // Not a server's reply: the director's own traffic (a health
            // check's answer, to its own or a link-local address) stays
            // the kernel's, as does anything else.
            return None;
        }
        if !self.master {
            return Some(self.drop(Drop::NotMaster));
        }
        if later {
            return Some(self.later_fragment6(snap, f, p, in_port, now_ms, owned));
        }
        if icmp_err {
            // An error quoting a tracked flow (routed6.rs).
            return Some(self.icmp_error6(snap, f, p, in_port, now_ms, owned));
        }
        let (cip, cport) = if to_vip {
            (p.src, p.src_port)
        } else {
            (p.dst, p.dst_port)
        };
        if let Some(v) = self.handoff(owned, fold6(cip), cport) {
            return Some(v);
        }
        let flags = p.tcp_flags.bits();
        if let Some((id, dir)) = self.lookup6(p, now_ms) {
            let v6 = self.v6.as_deref()?;
            if !(dir == Dir::Inbound && v6.conns.wants_reschedule(id, flags)) {
                return Some(self.existing6(snap, f, p, id, dir, in_port, now_ms));
            }
            // A new SYN on a connection in TIME_WAIT/CLOSE: schedule afresh.
            self.release6(snap, id, now_ms);
        }
        if !to_vip {
            // Perhaps the reply of a one-packet datagram (ops6.rs).
            if let Some(v) = self.ops_reply6_forward(snap, f, p, in_port, now_ms) {
                return Some(v);
            }
            // A server's packet of no connection (as IPv4 counts it).
            return Some(self.drop(Drop::NoService));
        }
        Some(self.new_flow6(snap, f, p, in_port, now_ms))
    }

    #[inline]
    fn lookup6(&self, p: &Ipv6Parsed, now_ms: u64) -> Option<(ConnId, Dir)> {
        self.v6.as_deref()?.lookup_tuple(
            p.protocol,
            (p.src, p.src_port),
            (p.dst, p.dst_port),
            now_ms,
        )
    }

    /// The first packet of a flow to an IPv6 VIP.
    fn new_flow6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some(svc) = snap.service6_for(p.protocol, p.dst, p.dst_port) else {
            return match snap.service64_for(p.protocol, p.dst, p.dst_port) {
                Some(svc) => self.new_flow64(snap, f, p, svc, in_port, now_ms),
                None => self.drop(Drop::NoService),
            };
        };
        let tcp = p.protocol == next_header::TCP;
        if tcp && (!p.tcp_flags.syn() || p.tcp_flags.ack()) {
            return self.drop(Drop::NoConnection);
        }
        self.open6(snap, f, p, svc, in_port, now_ms, None)
    }

    /// [`new_flow6`](Self::new_flow6) from its service on (a packet that may
    /// open a connection of `svc`): draining, the hop limit, the pick, the
    /// connection opened and counted, the packet forwarded. `fast` is the
    /// frame's flow when it has the common shape (the new-flow path,
    /// `transition6.rs`): then a NAT or DR connection's first packet takes
    /// the fast paths' fixed-offset rewrite when its server's next hop is
    /// known (`route6_fast`), else `inbound6` as any other.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn open6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        svc: &Service6,
        in_port: usize,
        now_ms: u64,
        fast: Option<&Flow6>,
    ) -> Verdict {
        if self.shared.is_draining() {
            return self.drop(Drop::Draining);
        }
        if p.hop_limit <= 1 {
            return self.icmp6_reply(snap, f, p, in_port, now_ms, None);
        }
        let Some((srv, template)) = self.pick6(snap, svc, p, now_ms) else {
            return self.drop(Drop::NoServer);
        };
        self.learn_client6(snap, f, p, in_port, now_ms);
        if svc.ops {
            return self.one_packet6(snap, f, p, srv, in_port, now_ms);
        }
        // DR/TUN keep the VIP port, as for IPv4.
        let sport = if srv.method == conn::Method::Nat && srv.port != 0 {
            srv.port
        } else {
            p.dst_port
        };
        // The connection holds the template that sent it to `srv`, marked
        // so only when the hold succeeded; given back if no record is made.
        let flags = self.hold6(svc.id, template, srv.shared.id, now_ms);
        let Some(v6) = self.v6.as_deref_mut() else {
            self.unhold6(svc, template, flags, srv.shared.id, now_ms);
            return self.drop(Drop::TableFull);
        };
        // Client, VIP, server, in that order (the ids handed out): the
        // first two from the first pass's homes on the new-flow path.
        let (client, vip) = match fast {
            Some(fl) => {
                let (home_src, home_dst) = fl.homes();
                (
                    v6.addrs.acquire_at(home_src, fl.src_addr),
                    v6.addrs.acquire_at(home_dst, fl.dst_addr),
                )
            }
            None => (v6.addrs.acquire(p.src), v6.addrs.acquire(p.dst)),
        };
        let server = v6.acquire_server(srv.shared.id, srv.addr);
        let (Some(client), Some(vip), Some(server)) = (client, vip, server) else {
            for id in [client, vip, server].into_iter().flatten() {
                v6.addrs.release(id);
            }
            self.unhold6(svc, template, flags, srv.shared.id, now_ms);
            return self.drop(Drop::TableFull);
        };
        // The new-flow path's flow with its ids: its key hashed once, for
        // the insert and the burst's later frames of the flow.
        let opened = fast.map(|fl| {
            let key = fl.key_with(client, vip);
            (fl, key, v6.conns.key_hash_wire(&key))
        });
        let new = NewConn {
            proto: p.protocol,
            client: Ipv4Addr::from(client),
            cport: p.src_port,
            vip: Ipv4Addr::from(vip),
            vport: p.dst_port,
            server: Ipv4Addr::from(server),
            sport,
            method: srv.method,
            flags,
            service: svc.id,
            dest: srv.shared.id,
            state: TcpState::None,
        };
        let made = self.insert6(snap, new, opened.map(|(_, _, h)| h), now_ms);
        let Some(v6) = self.v6.as_deref_mut() else {
            return self.drop(Drop::TableFull);
        };
        let Ok(id) = made else {
            for id in [client, vip, server] {
                v6.addrs.release(id);
            }
            self.unhold6(svc, template, flags, srv.shared.id, now_ms);
            return self.drop(Drop::TableFull);
        };
        if let Some((fl, key, hash)) = opened {
            // Its ids are held by the connection: valid while the epoch
            // (read after the insert's reclaims) holds.
            v6.opened = fl.opened(key, hash, v6.addrs.epoch());
        }
        self.stats.conns_created.inc();
        let tr = v6
            .conns
            .on_packet(id, Dir::Inbound, p.tcp_flags.bits(), now_ms);
        if self.sync {
            self.report_conn6(id, now_ms);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.conns.inc();
        if tr.new_active {
            k.active.inc();
        } else {
            k.inactive.inc();
        }
        srv.update_overload();
        if let Some(fl) = fast.filter(|_| matches!(srv.method, Method::Nat | Method::Dr)) {
            let (dest, len) = (srv.shared.id, p.layout().payload_len());
            if let Some(r) = self.route6_fast(snap, fl, dest, Dir::Inbound, true, len, now_ms) {
                return self.forward6_fast(snap, f, &r, Dir::Inbound, srv.method, sport, len);
            }
        }
        let to = (srv.method, srv.addr, sport);
        self.inbound6(snap, f, p, srv, to, in_port, now_ms)
    }

    /// A new client on an attached IPv6 subnet (of any port, the arrival
    /// port's tested first): its first packet says where it is, so the
    /// reply need not wait for a solicitation (a fresh entry is never
    /// overwritten here: one walk of the table, `NeighTable6::learn_client`).
    pub(super) fn learn_client6<F: Frame>(
        &self,
        snap: &Snapshot,
        f: &F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
    ) {
        if snap.nd6.is_attached(in_port, p.src) {
            let mac = MacAddr::from_bytes(&f.data()[6..12]);
            if !mac.is_multicast() && !snap.ports.iter().any(|pi| pi.mac == mac) {
                self.neigh6().learn_unless_fresh(p.src, mac, now_ms);
            }
        }
    }

    /// A packet of a tracked IPv6 connection.
    #[allow(clippy::too_many_arguments)]
    fn existing6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        id: ConnId,
        dir: Dir,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some(v6) = self.v6.as_deref_mut() else {
            return self.drop(Drop::ServerGone);
        };
        let c = *v6.conns.get(id);
        if c.method() == conn::Method::Fnat {
            return self.existing64(snap, f, p, id, &c, in_port, now_ms);
        }
        let srv = match snap.dest6(c.dest()) {
            Some((_, srv)) if srv.usable => srv,
            _ => {
                // Deleted or down: the connection ends with it.
                self.release6(snap, id, now_ms);
                return self.drop(Drop::ServerGone);
            }
        };
        if p.hop_limit <= 1 {
            return self.icmp6_reply(snap, f, p, in_port, now_ms, None);
        }
        let tr = v6.conns.on_packet(id, dir, p.tcp_flags.bits(), now_ms);
        if self.sync {
            self.sync_after_packet6(id, tr.state != tr.old_state, now_ms);
        }
        let Some(v6) = self.v6.as_deref() else {
            return self.drop(Drop::ServerGone);
        };
        let (client, vip, server) = (
            v6.addrs.addr(u32::from(c.client())),
            v6.addrs.addr(u32::from(c.vip())),
            v6.addrs.addr(u32::from(c.server())),
        );
        srv.count_activity(self.worker, tr.old_active, tr.new_active);
        match dir {
            Dir::Inbound => {
                let to = (c.method(), server, c.sport());
                self.inbound6(snap, f, p, srv, to, in_port, now_ms)
            }
            Dir::Reply => {
                let back = (vip, c.vport(), client);
                self.reply6(snap, f, p, srv, back, in_port, now_ms)
            }
        }
    }

    /// Client -> real server, by the connection's method: `to` is
    /// (method, server, server port).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn inbound6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server<Ipv6Addr>,
        to: (Method, Ipv6Addr, u16),
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let (method, rs, rs_port) = to;
        let overhead = if method == Method::Tun {
            forward::TUN6_OVERHEAD as u64
        } else {
            0
        };
        let out = match self.route6(snap, f, p, rs, in_port, overhead, now_ms) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let port_mac = snap.ports[out.0].mac;
        let done = match method {
            Method::Dr => forward::ipv6_frame(p, f.data_mut())
                .and_then(|mut fr| forward::dr6(&mut fr, out.1, port_mac))
                .map_err(rewrite_drop),
            Method::Tun => self.tun6(snap, f, p, out, rs),
            _ => forward::ipv6_frame(p, f.data_mut())
                .and_then(|mut fr| {
                    forward::nat6_inbound(&mut fr, rs, rs_port)?;
                    forward::set_macs(fr.bytes_mut(), out.1, port_mac)
                })
                .map_err(rewrite_drop),
        };
        if let Err(d) = done {
            return self.drop(d);
        }
        if first_of_several(p) {
            let fwd = Frag6Fwd::Inbound {
                method,
                server: rs,
                dest: srv.shared.id,
            };
            self.fragment_out6(p, fwd, now_ms);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.in_packets.inc();
        k.in_bytes.add(ip_len(p));
        Verdict::Tx(out.0)
    }

    /// Real server -> client: the source becomes the VIP again; `back` is
    /// (VIP, VIP port, client).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reply6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server<Ipv6Addr>,
        back: (Ipv6Addr, u16, Ipv6Addr),
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let (vip, vport, client) = back;
        let out = match self.route6(snap, f, p, client, in_port, 0, now_ms) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let port_mac = snap.ports[out.0].mac;
        if let Err(d) = forward::ipv6_frame(p, f.data_mut())
            .and_then(|mut fr| {
                forward::nat6_outbound(&mut fr, vip, vport)?;
                forward::set_macs(fr.bytes_mut(), out.1, port_mac)
            })
            .map_err(rewrite_drop)
        {
            return self.drop(d);
        }
        if first_of_several(p) {
            let fwd = Frag6Fwd::Reply {
                vip,
                client,
                dest: srv.shared.id,
            };
            self.fragment_out6(p, fwd, now_ms);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.out_packets.inc();
        k.out_bytes.add(ip_len(p));
        Verdict::Tx(out.0)
    }

    /// The port and next-hop MAC towards `to`, the frame cut to its IPv6
    /// packet (Ethernet padding off) and checked against the port's MTU
    /// with `overhead` bytes of encapsulation: a packet that does not fit
    /// is answered with packet-too-big (routed6.rs). `Err` is the verdict
    /// (counted).
    #[allow(clippy::too_many_arguments)]
    fn route6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        to: Ipv6Addr,
        in_port: usize,
        overhead: u64,
        now_ms: u64,
    ) -> Result<(usize, MacAddr), Verdict> {
        let (out, mac) = self.next_hop6(snap, to, now_ms).map_err(|d| self.drop(d))?;
        let mtu = u64::from(snap.ports[out].mtu);
        if ip_len(p) + overhead > mtu {
            return Err(self.too_big6(snap, f, p, in_port, mtu - overhead.min(mtu), now_ms));
        }
        f.truncate(p.l3_end());
        Ok((out, mac))
    }

    /// Forgets an IPv6 connection, giving back its template hold, ids and
    /// count (and a NAT64 one's local port).
    pub(super) fn release6(&mut self, snap: &Snapshot, id: ConnId, now_ms: u64) {
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let removed = v6.conns.with_lent_pools(&mut self.conns, |t| t.remove(id));
        if let Some(c) = removed {
            forget6(
                snap,
                &self.shared.persist,
                self.worker,
                &mut v6.addrs,
                &c,
                now_ms,
            );
        }
    }
}

/// The first fragment of a datagram that has more (its followers are
/// forwarded by what it leaves in the fragment table).
#[inline]
fn first_of_several(p: &Ipv6Parsed) -> bool {
    p.fragment.is_some_and(|fr| fr.offset == 0 && fr.more)
}

/// IP bytes of the packet, as IPVS counts (no Ethernet header or padding).
#[inline]
pub(super) fn ip_len(p: &Ipv6Parsed) -> u64 {
    p.ip_len() as u64
}

/// Gives back a finished IPv6 connection's count on its server.
fn uncount6(snap: &Snapshot, worker: usize, c: &Conn) {
    uncount(snap, worker, c);
    if let Some((_, srv)) = snap.dest6(c.dest()) {
        srv.update_overload();
    }
    if let Some((_, srv)) = snap.dest64(c.dest()) {
        srv.update_overload();
    }
}
