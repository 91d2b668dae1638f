//! Full-NAT in the worker (SPEC §5 "FNAT"): opening a connection with a
//! local address and port of this worker, catching the servers' replies
//! addressed to the director's own port address, and forwarding both
//! directions with both ends rewritten (`forward::fnat_rewrite`).
//!
//! The local port is chosen so that `owner_worker(laddr, lport)` is this
//! worker (`conn::snat`): the reply, which the data plane assigns to a
//! worker by its destination, lands here without a hand-off. The port goes
//! back to the pool when the connection is removed, whatever removes it
//! (the table does it in `remove`).
//!
//! ICMP errors quoting a full-NAT packet are translated for the other
//! side ([`fnat_icmp`](Pipeline::fnat_icmp)); fragments follow their first
//! fragment as for NAT (`frag.rs`, [`FragFwd::Fnat`]); `[ha]` sync carries
//! the local tuple, and the backup installs the connection holding the
//! same port (`ha.rs`, [`insert_fnat_synced`](Pipeline::insert_fnat_synced)).
//!
//! What reaches the port's own address (`laddr` when it is the port's
//! address, the default) is looked at here first: the replies of full-NAT
//! connections, their later fragments and ICMP errors quoting them;
//! anything else there stays the kernel's.

use std::net::Ipv4Addr;

use super::frag::{FragFwd, FragKey};
use super::{rewrite_drop, Frame, Pipeline, Verdict};
use crate::conn::{self, Conn, ConnId, Dir, FnatError, KeyHash, Method, NewConn};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Server, Snapshot};
use crate::forward::{self, IcmpFnat};
use crate::packet::{quoted_flow, Parsed};

impl Pipeline {
    /// Inserts a new full-NAT connection: a local tuple on the port that
    /// reaches its server, or a counted refusal (`snat_exhausted`, no free
    /// local port of this worker; `table_full`).
    pub(super) fn insert_fnat(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        now_ms: u64,
    ) -> Result<ConnId, Drop> {
        let Some((port, _)) = snap.route(new.server) else {
            return Err(Drop::NoRoute);
        };
        let (stats, persist, worker) = (&self.stats, &self.shared.persist, self.worker);
        self.conns
            .insert_or_evict_fnat(new, port, now_ms, |c, why| {
                match why {
                    conn::Reclaim::Expired => stats.conns_expired.inc(),
                    conn::Reclaim::Evicted => stats.conns_evicted.inc(),
                }
                super::release_template(snap, persist, c, now_ms);
                super::uncount(snap, worker, c);
            })
            .map_err(fnat_drop)
    }

    /// Installs a full-NAT connection the peer director synced, with the
    /// local tuple it has there: the port is reserved in this worker's
    /// pool, so it is never handed to another connection while this one
    /// lives. Refused (`SnatExhausted` standing for "not a free local port
    /// of this worker": held, or another worker's when the directors'
    /// worker counts or `snat_*` settings differ) or `TableFull`.
    pub(super) fn insert_fnat_synced(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        laddr: Ipv4Addr,
        lport: u16,
        now_ms: u64,
    ) -> Result<ConnId, Drop> {
        let (stats, persist, worker) = (&self.stats, &self.shared.persist, self.worker);
        self.conns
            .insert_or_evict_fnat_at(new, laddr, lport, now_ms, |c, why| {
                match why {
                    conn::Reclaim::Expired => stats.conns_expired.inc(),
                    conn::Reclaim::Evicted => stats.conns_evicted.inc(),
                }
                super::release_template(snap, persist, c, now_ms);
                super::uncount(snap, worker, c);
            })
            .map_err(fnat_drop)
    }

    /// A packet to one of the director's own port addresses: the reply of
    /// a full-NAT connection when it is addressed to a local tuple and
    /// matches one (or a later fragment of such a reply, or an ICMP error
    /// quoting a local tuple's packet); `None` (the kernel's, as before)
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fnat_to_own<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        hash: Option<KeyHash>,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        if !self.master {
            return None;
        }
        if !p.first_fragment {
            return self.fnat_later_fragment_to_own(snap, f, p, in_port, now_ms, owned);
        }
        if p.is_icmp_error() {
            return self.fnat_icmp_to_own(snap, f, p, now_ms, owned);
        }
        if !(p.is_tcp() || p.is_udp()) || !p.has_l4 || !snap.is_snat(p.dst, p.dst_port) {
            return None;
        }
        // The local tuple names the connection's worker.
        if let Some(v) = self.handoff(owned, p.dst, p.dst_port) {
            return Some(v);
        }
        let key = conn::FlowKey::new(p.protocol, p.src, p.src_port, p.dst, p.dst_port);
        let hash = hash.unwrap_or_else(|| self.conns.key_hash(&key));
        match self.conns.lookup_hashed(&key, hash, now_ms) {
            Some((id, Dir::Reply)) if self.conns.get(id).method() == Method::Fnat => {
                Some(self.existing(snap, f, p, id, Dir::Reply, in_port, now_ms))
            }
            // A NAT64 connection's reply (`nat64.rs`), if any.
            None if !snap.services64.is_empty() => {
                self.nat64_reply(snap, f, p, &key, in_port, now_ms)
            }
            _ => None,
        }
    }

    /// An ICMP error sent to the port's own address by a real server or a
    /// router on its side, about a packet a full-NAT connection sent from
    /// its local tuple (which must be one, so the kernel keeps the errors
    /// about its own traffic): relayed to the client. `None` when it quotes
    /// no live full-NAT connection.
    #[cold]
    #[inline(never)]
    fn fnat_icmp_to_own<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        let q = quoted_flow(f.data(), p)?;
        if !(q.protocol == conn::PROTO_TCP || q.protocol == conn::PROTO_UDP)
            || !snap.is_snat(q.src, q.src_port)
        {
            return None;
        }
        if let Some(v) = self.handoff(owned, q.src, q.src_port) {
            return Some(v);
        }
        // The quote travelled the other way: look it up reversed.
        let key = conn::FlowKey::new(q.protocol, q.dst, q.dst_port, q.src, q.src_port);
        let Some((id, dir)) = self.conns.lookup(&key, now_ms) else {
            // A NAT64 connection's packet (`nat64.rs`), if any.
            return self.nat64_icmp(snap, f, p, &key, now_ms);
        };
        let c = *self.conns.get(id);
        if dir != Dir::Reply || c.method() != Method::Fnat {
            return None;
        }
        if snap.dest(c.dest()).is_none() {
            return Some(self.drop(Drop::ServerGone));
        }
        if forward::ttl_expired(p) {
            return Some(self.drop(Drop::TtlExceeded));
        }
        Some(self.fnat_icmp(snap, f, p, id, dir, &c, now_ms))
    }

    /// Relays an ICMP error quoting a packet of full-NAT connection `id`,
    /// found by the quote in `dir` (the quoted packet's own direction is
    /// the other one), to the side that sent the quoted packet:
    ///
    /// * `Reply`: from the server side about `laddr:lport -> server:sport`;
    ///   the client gets it from the VIP about `client:cport -> vip:vport`.
    /// * `Inbound`: from the client side about `vip:vport -> client:cport`;
    ///   the server gets it from the local address about `server:sport ->
    ///   laddr:lport` (from `laddr`, not the client-side router, which the
    ///   server, with no route through the director, may not reach, and a
    ///   reverse-path filter would refuse).
    ///
    /// Counted `icmp_relayed` (as NAT's), or dropped `icmp_unknown_flow`.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fnat_icmp<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        id: ConnId,
        dir: Dir,
        c: &Conn,
        now_ms: u64,
    ) -> Verdict {
        let Some((laddr, lport)) = self.conns.local(id) else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        self.stats.icmp_relayed.inc();
        let (t, to) = match dir {
            Dir::Reply => (
                IcmpFnat {
                    outer_src: c.vip(),
                    outer_dst: c.client(),
                    quoted_src: (c.client(), c.cport()),
                    quoted_dst: (c.vip(), c.vport()),
                },
                c.client(),
            ),
            Dir::Inbound => (
                IcmpFnat {
                    outer_src: laddr,
                    outer_dst: c.server(),
                    quoted_src: (c.server(), c.sport()),
                    quoted_dst: (laddr, lport),
                },
                c.server(),
            ),
        };
        let (out, mac) = match self.next_hop(snap, to, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let done = forward::ipv4_frame(p, f.data_mut())
            .and_then(|mut fr| forward::icmp_error_fnat(&mut fr, &t))
            .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac));
        if done.is_err() {
            return self.drop(Drop::IcmpUnknownFlow);
        }
        Verdict::Tx(out)
    }

    /// Forwards a packet of full-NAT connection `id` (record `c`) seen in
    /// `dir`: inbound to the server from the local tuple, replies to the
    /// client from the VIP. TTL and MTU as for NAT; a first fragment is
    /// remembered so the rest of its datagram follows it (`frag.rs`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn fnat_forward<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        id: ConnId,
        dir: Dir,
        c: &Conn,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some((laddr, lport)) = self.conns.local(id) else {
            return self.drop(Drop::RewriteFailed);
        };
        let (src, sport, dst, dport) = match dir {
            Dir::Inbound => (laddr, lport, c.server(), c.sport()),
            Dir::Reply => (c.vip(), c.vport(), c.client(), c.cport()),
        };
        let to = FnatTo {
            src,
            sport,
            dst,
            dport,
            inbound: dir == Dir::Inbound,
        };
        self.fnat_send(snap, f, p, to, srv, in_port, now_ms)
    }

    /// Rewrites and sends one packet (or fragment) of a full-NAT
    /// connection of server `srv`, counting it in the server's in or out
    /// counters.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fnat_send<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        to: FnatTo,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let (out, mac) = match self.next_hop(snap, to.dst, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if let Some(v) = self.egress_mtu(snap, f, p, in_port, out, 0, now_ms) {
            return v;
        }
        if p.fragment && p.first_fragment {
            let fwd = FragFwd::Fnat {
                src: to.src,
                dst: to.dst,
                dest: srv.shared.id,
                inbound: to.inbound,
            };
            self.fragment_out(f.data(), p, fwd, now_ms);
        }
        // IP bytes, as IPVS counts.
        let len = u64::from(p.ip_total_len());
        if let Err(e) = forward::ipv4_frame(p, f.data_mut())
            .and_then(|mut fr| forward::fnat_rewrite(&mut fr, to.src, to.sport, to.dst, to.dport))
            .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac))
        {
            return self.drop(rewrite_drop(e));
        }
        let k = &srv.shared.per_worker[self.worker];
        if to.inbound {
            k.in_packets.inc();
            k.in_bytes.add(len);
        } else {
            k.out_packets.inc();
            k.out_bytes.add(len);
        }
        if p.fragment {
            self.stats.frags_forwarded.inc();
        }
        Verdict::Tx(out)
    }

    /// A later fragment of a full-NAT datagram whose first fragment was
    /// forwarded as `src -> dst` (`frag.rs` found it): the same addresses,
    /// no ports (it has none).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fnat_later_fragment<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        (src, dst): (Ipv4Addr, Ipv4Addr),
        inbound: bool,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let to = FnatTo {
            src,
            sport: 0,
            dst,
            dport: 0,
            inbound,
        };
        self.fnat_send(snap, f, p, to, srv, in_port, now_ms)
    }

    /// A later fragment sent to the port's own address: a full-NAT reply's
    /// when this worker (or, by the shared directory, another) forwarded
    /// its first fragment, or when it comes from a full-NAT server before
    /// its first fragment (held, as `frag.rs` holds fragments to a VIP);
    /// anything else is the kernel's.
    #[cold]
    #[inline(never)]
    fn fnat_later_fragment_to_own<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Option<Verdict> {
        if !(p.is_tcp() || p.is_udp()) {
            return None;
        }
        let key = FragKey::of(f.data(), p)?;
        let hash = self.shared.frags.hash(&key);
        let known = self.frags.get(hash, &key, now_ms).is_some()
            || (self.workers > 1 && self.shared.frags.owner(hash, now_ms).is_some());
        if !known && (owned || !is_fnat_server(snap, p.src)) {
            return None;
        }
        Some(self.later_fragment(snap, f, p, in_port, now_ms, owned))
    }
}

/// Where one full-NAT packet goes: its new source and destination, and
/// the direction it is counted in.
#[derive(Clone, Copy)]
struct FnatTo {
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    inbound: bool,
}

/// The drop a refused full-NAT insert counts as.
fn fnat_drop(e: FnatError) -> Drop {
    match e {
        FnatError::TableFull => Drop::TableFull,
        FnatError::SnatExhausted | FnatError::LocalUnavailable => Drop::SnatExhausted,
    }
}

/// `addr` is a real server (or sorry server) reached by full-NAT, or a
/// NAT64 server.
fn is_fnat_server(snap: &Snapshot, addr: Ipv4Addr) -> bool {
    snap.services
        .iter()
        .flat_map(|s| s.servers.iter().chain(s.sorry.as_ref()))
        .any(|s| s.addr == addr && s.method == Method::Fnat)
        || snap
            .services64
            .iter()
            .any(|s| s.servers.iter().any(|s| s.addr == addr))
}
