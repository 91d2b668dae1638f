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
//! `reta.owner` of the 32-bit fold of the address ([`fold6`]). No port's
//! RSS hashes IPv6 that way yet, so a frame on another queue takes the
//! hand-off ring.
//!
//! Not in this cut: fragments (counted `fragment`), ICMPv6 errors quoting
//! a flow (to the kernel as before), ICMPv6 time-exceeded/packet-too-big
//! (a hop limit of 1 and an oversized packet are counted drops), HA sync
//! of IPv6 connections, persistence, sorry servers, one-packet scheduling
//! and DR/TUN over IPv6 (such services stay unforwarded, `rvs check` warns).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{rewrite_drop, uncount, Frame, Pipeline, Verdict};
use crate::conn::addr6::Addr6Table;
use crate::conn::{self, Conn, ConnId, ConnTable, Dir, FlowKey, NewConn, TcpState};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{fold6, LiveDests, Server, Snapshot};
use crate::forward;
use crate::packet::ethernet::MacAddr;
use crate::packet::ipv6::{self, next_header};
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::sched::SchedInput;

/// Address ids beyond the connection capacity: the VIPs and servers
/// every connection shares.
const SHARED_IDS: usize = 4096;

/// One worker's IPv6 connections.
pub(in crate::dataplane) struct Conns6 {
    pub(in crate::dataplane) conns: ConnTable,
    pub(in crate::dataplane) addrs: Addr6Table,
}

impl Conns6 {
    /// Bytes allocated for the IPv6 connections (table + address ids).
    pub fn memory_bytes(&self) -> usize {
        self.conns.memory_bytes() + self.addrs.memory_bytes()
    }
}

/// Gives back the three address ids a connection holds.
fn release_ids(addrs: &mut Addr6Table, c: &Conn) {
    addrs.release(u32::from(c.client()));
    addrs.release(u32::from(c.vip()));
    addrs.release(u32::from(c.server()));
}

impl Pipeline {
    /// Cold: allocates the IPv6 tables the first time a configuration
    /// forwards IPv6, and applies `[timeouts]` to them.
    pub(super) fn prepare_v6(&mut self, snap: &Snapshot) {
        if snap.services6.is_empty() && self.v6.is_none() {
            return;
        }
        let cap = self.conns.capacity();
        let v6 = self.v6.get_or_insert_with(|| {
            Box::new(Conns6 {
                conns: ConnTable::with_capacity(cap),
                addrs: Addr6Table::with_capacity(cap + SHARED_IDS),
            })
        });
        v6.conns.set_timeouts(snap.timeouts);
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
        let (worker, stats) = (self.worker, &self.stats);
        let Conns6 { conns, addrs } = v6;
        conns.expire_some(now_ms, budget, |c| {
            stats.conns_expired.inc();
            release_ids(addrs, c);
            uncount6(snap, worker, c);
        });
    }

    /// A TCP/UDP frame to a forwarded IPv6 VIP, or from an IPv6 server:
    /// `None` for anything else (the caller goes on as before).
    pub(super) fn forward6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        if self.v6.is_none()
            || !p.has_l4
            || !(p.protocol == next_header::TCP || p.protocol == next_header::UDP)
        {
            return None;
        }
        let to_vip = snap.is_fwd_vip6(p.dst);
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
        if p.fragment.is_some() {
            return Some(self.drop(Drop::Fragment));
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
                return Some(self.existing6(snap, f, p, id, dir, now_ms));
            }
            // A new SYN on a connection in TIME_WAIT/CLOSE: schedule afresh.
            self.release6(snap, id);
        }
        if !to_vip {
            // A server's packet of no connection (as IPv4 counts it).
            return Some(self.drop(Drop::NoService));
        }
        Some(self.new_flow6(snap, f, p, now_ms))
    }

    #[inline]
    fn lookup6(&self, p: &Ipv6Parsed, now_ms: u64) -> Option<(ConnId, Dir)> {
        let v6 = self.v6.as_deref()?;
        let src = v6.addrs.get(p.src)?;
        let dst = v6.addrs.get(p.dst)?;
        let key = FlowKey::new(
            p.protocol,
            Ipv4Addr::from(src),
            p.src_port,
            Ipv4Addr::from(dst),
            p.dst_port,
        );
        v6.conns.lookup(&key, now_ms)
    }

    /// The first packet of a flow to an IPv6 VIP.
    fn new_flow6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        now_ms: u64,
    ) -> Verdict {
        let Some(svc) = snap.service6_for(p.protocol, p.dst, p.dst_port) else {
            return self.drop(Drop::NoService);
        };
        let tcp = p.protocol == next_header::TCP;
        if tcp && (!p.tcp_flags.syn() || p.tcp_flags.ack()) {
            return self.drop(Drop::NoConnection);
        }
        if self.shared.is_draining() {
            return self.drop(Drop::Draining);
        }
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        let input = SchedInput {
            src_ip: fold6(p.src),
            src_port: p.src_port,
            dst_ip: fold6(p.dst),
            dst_port: p.dst_port,
            now_ms,
        };
        let Some(i) = svc.sched.schedule(&LiveDests(&svc.servers), &input) else {
            return self.drop(Drop::NoServer);
        };
        let srv = &svc.servers[i];
        self.learn_client6(snap, f, p, now_ms);
        let sport = if srv.port != 0 { srv.port } else { p.dst_port };
        let Some(v6) = self.v6.as_deref_mut() else {
            return self.drop(Drop::TableFull);
        };
        let ids = [p.src, p.dst, srv.addr].map(|a| v6.addrs.acquire(a));
        let [Some(client), Some(vip), Some(server)] = ids else {
            for id in ids.into_iter().flatten() {
                v6.addrs.release(id);
            }
            return self.drop(Drop::TableFull);
        };
        let new = NewConn {
            proto: p.protocol,
            client: Ipv4Addr::from(client),
            cport: p.src_port,
            vip: Ipv4Addr::from(vip),
            vport: p.dst_port,
            server: Ipv4Addr::from(server),
            sport,
            method: conn::Method::Nat,
            flags: 0,
            service: svc.id,
            dest: srv.shared.id,
            state: TcpState::None,
        };
        let (stats, worker) = (&self.stats, self.worker);
        let Conns6 { conns, addrs } = &mut *v6;
        let made = conns.insert_or_evict(new, now_ms, |c, why| {
            match why {
                conn::Reclaim::Expired => stats.conns_expired.inc(),
                conn::Reclaim::Evicted => stats.conns_evicted.inc(),
            }
            release_ids(addrs, c);
            uncount6(snap, worker, c);
        });
        let Ok(id) = made else {
            for id in [client, vip, server] {
                v6.addrs.release(id);
            }
            return self.drop(Drop::TableFull);
        };
        self.stats.conns_created.inc();
        let tr = v6
            .conns
            .on_packet(id, Dir::Inbound, p.tcp_flags.bits(), now_ms);
        let k = &srv.shared.per_worker[self.worker];
        k.conns.inc();
        if tr.new_active {
            k.active.inc();
        } else {
            k.inactive.inc();
        }
        srv.update_overload();
        self.inbound6(snap, f, p, srv, srv.addr, sport, now_ms)
    }

    /// A new client on an attached IPv6 subnet: its first packet says
    /// where it is, so the reply need not wait for a solicitation (an
    /// entry already known is never overwritten here).
    fn learn_client6<F: Frame>(&self, snap: &Snapshot, f: &F, p: &Ipv6Parsed, now_ms: u64) {
        let Some(port) = snap.nd6.route(p.src).map(|(port, _)| port) else {
            return;
        };
        if snap.nd6.on_link(port, p.src) && self.neigh6().peek(p.src, now_ms).is_none() {
            let mac = MacAddr::from_bytes(&f.data()[6..12]);
            if !mac.is_multicast() && !snap.ports.iter().any(|pi| pi.mac == mac) {
                self.neigh6().learn(p.src, mac, now_ms);
            }
        }
    }

    /// A packet of a tracked IPv6 connection.
    fn existing6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        id: ConnId,
        dir: Dir,
        now_ms: u64,
    ) -> Verdict {
        let Some(v6) = self.v6.as_deref_mut() else {
            return self.drop(Drop::ServerGone);
        };
        let c = *v6.conns.get(id);
        let srv = match snap.dest6(c.dest()) {
            Some((_, srv)) if srv.usable => srv,
            _ => {
                // Deleted or down: the connection ends with it.
                self.release6(snap, id);
                return self.drop(Drop::ServerGone);
            }
        };
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        let tr = v6.conns.on_packet(id, dir, p.tcp_flags.bits(), now_ms);
        let (client, vip, server) = (
            v6.addrs.addr(u32::from(c.client())),
            v6.addrs.addr(u32::from(c.vip())),
            v6.addrs.addr(u32::from(c.server())),
        );
        if tr.old_active != tr.new_active {
            let k = &srv.shared.per_worker[self.worker];
            if tr.new_active {
                k.inactive.dec();
                k.active.inc();
            } else {
                k.active.dec();
                k.inactive.inc();
            }
            srv.update_overload();
        }
        match dir {
            Dir::Inbound => self.inbound6(snap, f, p, srv, server, c.sport(), now_ms),
            Dir::Reply => self.reply6(snap, f, p, srv, vip, c.vport(), client, now_ms),
        }
    }

    /// Client -> real server.
    #[allow(clippy::too_many_arguments)]
    fn inbound6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server<Ipv6Addr>,
        rs: Ipv6Addr,
        rs_port: u16,
        now_ms: u64,
    ) -> Verdict {
        let out = match self.route6(snap, f, p, rs, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if let Err(d) = forward::nat6_inbound(f.data_mut(), p, rs, rs_port)
            .and_then(|()| forward::set_macs(f.data_mut(), out.1, snap.ports[out.0].mac))
            .map_err(rewrite_drop)
        {
            return self.drop(d);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.in_packets.inc();
        k.in_bytes.add(ip_len(p));
        Verdict::Tx(out.0)
    }

    /// Real server -> client: the source becomes the VIP again.
    #[allow(clippy::too_many_arguments)]
    fn reply6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server<Ipv6Addr>,
        vip: Ipv6Addr,
        vport: u16,
        client: Ipv6Addr,
        now_ms: u64,
    ) -> Verdict {
        let out = match self.route6(snap, f, p, client, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if let Err(d) = forward::nat6_outbound(f.data_mut(), p, vip, vport)
            .and_then(|()| forward::set_macs(f.data_mut(), out.1, snap.ports[out.0].mac))
            .map_err(rewrite_drop)
        {
            return self.drop(d);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.out_packets.inc();
        k.out_bytes.add(ip_len(p));
        Verdict::Tx(out.0)
    }

    /// The port and next-hop MAC towards `to`, the frame cut to its IPv6
    /// packet (Ethernet padding off) and checked against the port's MTU
    /// (no packet-too-big yet: a counted drop).
    fn route6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        to: Ipv6Addr,
        now_ms: u64,
    ) -> Result<(usize, MacAddr), Drop> {
        let (out, mac) = self.next_hop6(snap, to, now_ms)?;
        if ip_len(p) > u64::from(snap.ports[out].mtu) {
            return Err(Drop::TooBig);
        }
        f.truncate(p.l3_end());
        Ok((out, mac))
    }

    /// Forgets an IPv6 connection, giving back its ids and count.
    fn release6(&mut self, snap: &Snapshot, id: ConnId) {
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        if let Some(c) = v6.conns.remove(id) {
            release_ids(&mut v6.addrs, &c);
            uncount6(snap, self.worker, &c);
        }
    }
}

/// IP bytes of the packet, as IPVS counts (no Ethernet header or padding).
#[inline]
fn ip_len(p: &Ipv6Parsed) -> u64 {
    (ipv6::HEADER_LEN + usize::from(p.payload_len)) as u64
}

/// Gives back a finished IPv6 connection's count on its server.
fn uncount6(snap: &Snapshot, worker: usize, c: &Conn) {
    uncount(snap, worker, c);
    if let Some((_, srv)) = snap.dest6(c.dest()) {
        srv.update_overload();
    }
}
