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
//! Not in this cut: fragments of full-NAT connections (counted
//! `fragment`), ICMP errors quoting them (counted `icmp_unknown_flow`),
//! and `[ha]` sync of full-NAT connections (not reported, so a failover
//! loses them).

use super::{rewrite_drop, Frame, Pipeline, Verdict};
use crate::conn::{self, Conn, ConnId, Dir, FnatError, KeyHash, NewConn};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Server, Snapshot};
use crate::forward;
use crate::packet::Parsed;

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
            .map_err(|e| match e {
                FnatError::TableFull => Drop::TableFull,
                FnatError::SnatExhausted => Drop::SnatExhausted,
            })
    }

    /// A TCP/UDP packet to one of the director's own port addresses: the
    /// reply of a full-NAT connection when it is addressed to a local
    /// tuple and matches one; `None` (the kernel's, as before) otherwise.
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
        if !self.master
            || !(p.is_tcp() || p.is_udp())
            || !p.has_l4
            || !snap.is_snat(p.dst, p.dst_port)
        {
            return None;
        }
        // The local tuple names the connection's worker.
        if let Some(v) = self.handoff(owned, p.dst, p.dst_port) {
            return Some(v);
        }
        let key = conn::FlowKey::new(p.protocol, p.src, p.src_port, p.dst, p.dst_port);
        let hash = hash.unwrap_or_else(|| self.conns.key_hash(&key));
        match self.conns.lookup_hashed(&key, hash, now_ms) {
            Some((id, Dir::Reply)) if self.conns.get(id).method() == conn::Method::Fnat => {
                Some(self.existing(snap, f, p, id, Dir::Reply, in_port, now_ms))
            }
            _ => None,
        }
    }

    /// Forwards a packet of full-NAT connection `id` (record `c`) seen in
    /// `dir`: inbound to the server from the local tuple, replies to the
    /// client from the VIP. TTL and MTU as for NAT.
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
        if p.fragment {
            return self.drop(Drop::Fragment);
        }
        let Some((laddr, lport)) = self.conns.local(id) else {
            return self.drop(Drop::RewriteFailed);
        };
        let (src, sport, dst, dport) = match dir {
            Dir::Inbound => (laddr, lport, c.server(), c.sport()),
            Dir::Reply => (c.vip(), c.vport(), c.client(), c.cport()),
        };
        let (out, mac) = match self.next_hop(snap, dst, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if let Some(v) = self.egress_mtu(snap, f, p, in_port, out, 0, now_ms) {
            return v;
        }
        // IP bytes, as IPVS counts.
        let len = u64::from(p.ip_total_len);
        if let Err(e) = forward::fnat_rewrite(f.data_mut(), p, src, sport, dst, dport)
            .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac))
        {
            return self.drop(rewrite_drop(e));
        }
        let k = &srv.shared.per_worker[self.worker];
        match dir {
            Dir::Inbound => {
                k.in_packets.inc();
                k.in_bytes.add(len);
            }
            Dir::Reply => {
                k.out_packets.inc();
                k.out_bytes.add(len);
            }
        }
        Verdict::Tx(out)
    }
}
