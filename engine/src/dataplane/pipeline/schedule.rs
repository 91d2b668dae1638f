//! A new connection: pick its server (persistence template, scheduler or
//! sorry server), make the record and count it on the server; and the
//! reverse when a connection ends (template hold and counts given back).

use super::*;

/// Connection flag: holds a persistence template (released when it ends).
pub(super) const PERSISTENT: u8 = conn::flags::USER1;

/// The flow a new connection is opened for: all the pick, the client's
/// MAC learning and the new record read of the segment. The full path
/// takes it from its summary ([`Opening::of`]); the new-flow path reads
/// these five fields at the fast shape's offsets and makes no whole
/// [`Parsed`] unless it hands the frame to the full path's forwarding.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opening {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub src_port: u16,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
}

impl Opening {
    /// The flow of summary `p`.
    #[inline(always)]
    pub(super) fn of(p: &Parsed) -> Opening {
        Opening {
            protocol: p.protocol,
            src: p.src,
            src_port: p.src_port,
            dst: p.dst,
            dst_port: p.dst_port,
        }
    }
}

impl Pipeline {
    /// A new NAT client on an attached subnet (DR/TUN replies bypass us):
    /// its first packet says where it is, so the reply need not wait for
    /// ARP (a fresh entry, ARP-learned or not, is never overwritten here:
    /// the check and the learning are one probe of the table).
    #[inline(always)]
    pub(super) fn learn_client<F: Frame>(
        &self,
        snap: &Snapshot,
        f: &F,
        p: &Opening,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) {
        let port = &snap.ports[in_port];
        if matches!(srv.method, Method::Nat | Method::Fnat) && port.on_link(p.src) {
            let mac = MacAddr::from_bytes(&f.data()[6..12]);
            if !mac.is_multicast() && !snap.ports.iter().any(|pi| mac_eq(&pi.mac.0, &mac.0)) {
                self.neigh().learn_unless_fresh(p.src, mac, now_ms);
            }
        }
    }

    /// Creates the connection of `p` to `srv` (picked, with the client net
    /// of the persistence template that chose it), as if its first segment
    /// had TCP flags `tcp_flags`, with connection flags `extra` (besides the
    /// persistence hold). `hash`: the hash of `p`'s flow key in this
    /// worker's table when the caller has it (the first pass's), reused
    /// for the insert. Counts it; the caller forwards.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn open_conn(
        &mut self,
        snap: &Snapshot,
        svc: &Service,
        p: &Opening,
        srv: &Server,
        template: Option<Ipv4Addr>,
        tcp_flags: u8,
        extra: u8,
        hash: Option<KeyHash>,
        now_ms: u64,
    ) -> Result<(Dest, ConnId), Drop> {
        let new = NewConn {
            proto: p.protocol,
            client: p.src,
            cport: p.src_port,
            vip: p.dst,
            vport: p.dst_port,
            server: srv.addr,
            // DR/TUN keep the VIP port; so does NAT to a server of a
            // port-0 ("all ports") service without a port of its own, as
            // IPVS keeps the client's destination port.
            sport: if matches!(srv.method, Method::Nat | Method::Fnat) && srv.port != 0 {
                srv.port
            } else {
                p.dst_port
            },
            method: srv.method,
            // The connection holds the template that sent it to `srv` (the
            // sorry server has none), and is marked so only when the hold
            // succeeded; the hold goes back if the record cannot be made.
            flags: extra
                | if template.is_some_and(|net| {
                    self.persist()
                        .hold(u32::from(svc.id), net, srv.shared.id, now_ms)
                }) {
                    PERSISTENT
                } else {
                    0
                },
            service: svc.id,
            dest: srv.shared.id,
            state: TcpState::None,
        };
        // Full-NAT inserts, then accounts the segment; the others write
        // the record once with the state and timer the segment gives it
        // (`ConnTable::insert_or_evict_opened`).
        let made = if srv.method == Method::Fnat {
            self.insert_fnat(snap, new, now_ms).map(|id| {
                let tr = self.conns.on_packet(id, Dir::Inbound, tcp_flags, now_ms);
                (id, tr)
            })
        } else {
            self.insert_conn_opened(snap, new, hash, tcp_flags, now_ms)
                .map_err(|_| Drop::TableFull)
        };
        let (id, tr) = match made {
            Ok(x) => x,
            Err(d) => {
                // No connection: give its hold back.
                if let Some(net) = template.filter(|_| new.flags & PERSISTENT != 0) {
                    self.persist()
                        .release(u32::from(svc.id), net, srv.shared.id, now_ms);
                }
                return Err(d);
            }
        };
        self.stats.conns_created.inc();
        if self.sync {
            self.report_conn(id, now_ms);
        }
        let c = &srv.shared.per_worker[self.worker];
        c.conns.inc();
        if tr.new_active {
            c.active.inc();
        } else {
            c.inactive.inc();
        }
        srv.update_overload();
        let to = Dest {
            method: srv.method,
            addr: new.server,
            port: new.sport,
        };
        Ok((to, id))
    }

    /// One-packet scheduling (`ops`): the datagram goes to the server just
    /// picked and no connection entry is made, so the next one is scheduled
    /// afresh (a template, with persistence, still sends a client net to
    /// one server). It counts as a connection of the server, as in IPVS;
    /// a NAT server's reply is matched by its source (`Snapshot::ops_reply`).
    pub(super) fn one_packet<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        srv.shared.per_worker[self.worker].conns.inc();
        let to = Dest {
            method: srv.method,
            addr: srv.addr,
            port: if srv.method == Method::Nat && srv.port != 0 {
                srv.port
            } else {
                p.dst_port
            },
        };
        self.inbound(snap, f, p, to, srv, in_port, now_ms)
    }

    /// Creates a connection. A full table reclaims an expired record or
    /// evicts an embryonic TCP / idle UDP one (conn module docs,
    /// "Pressure"); the record removed gives back its counts as an expiry
    /// does.
    pub(super) fn insert_conn(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        now_ms: u64,
    ) -> Result<ConnId, conn::TableFull> {
        self.insert_conn_hashed(snap, new, None, now_ms)
    }

    /// [`insert_conn`](Self::insert_conn) with the hash of the new
    /// connection's inbound key, if the caller has it.
    #[inline]
    pub(super) fn insert_conn_hashed(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        hash: Option<KeyHash>,
        now_ms: u64,
    ) -> Result<ConnId, conn::TableFull> {
        let reclaim = reclaimer(snap, &self.stats, &self.shared.persist, self.worker, now_ms);
        self.conns
            .insert_or_evict_hashed(new, hash, now_ms, reclaim)
    }

    /// [`insert_conn_hashed`](Self::insert_conn_hashed) and the first
    /// inbound segment's `on_packet` (TCP flags `tcp_flags`) in one write
    /// of the record; its transition with it.
    #[inline(always)]
    fn insert_conn_opened(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        hash: Option<KeyHash>,
        tcp_flags: u8,
        now_ms: u64,
    ) -> Result<(ConnId, conn::Transition), conn::TableFull> {
        let reclaim = reclaimer(snap, &self.stats, &self.shared.persist, self.worker, now_ms);
        self.conns
            .insert_or_evict_opened(new, hash, tcp_flags, now_ms, reclaim)
    }

    /// Picks a server for a new connection: the persistence template's, the
    /// scheduler's, or the sorry server. With the server comes the client
    /// net of the persistence template that chose it, if one did (never for
    /// the sorry server): the new connection holds that template.
    #[inline(always)]
    pub(super) fn pick<'s>(
        &self,
        snap: &'s Snapshot,
        svc: &'s Service,
        p: &Opening,
        now_ms: u64,
    ) -> Option<(&'s Server, Option<Ipv4Addr>)> {
        let sorry = || svc.sorry.as_ref().map(|s| (s, None));
        if svc.sorry_only {
            // quorum lost: the sorry server takes every new connection
            return sorry();
        }
        let input = SchedInput {
            src_ip: p.src,
            src_port: p.src_port,
            dst_ip: p.dst,
            dst_port: p.dst_port,
            now_ms,
        };
        if svc.persistence_ms > 0 {
            // IPVS persistence: a template (service, client net) -> server.
            let net = crate::sched::mask(p.src, svc.persistence_mask);
            let sid = u32::from(svc.id);
            // With `expire_quiescent_template`, a drained server's (weight
            // 0) template is dropped here too, so the client is scheduled
            // afresh.
            let quiescent = snap.expire_quiescent_template;
            let usable = |id: u32| {
                svc.servers
                    .iter()
                    .any(|s| s.shared.id == id && s.usable && !(quiescent && s.weight == 0))
            };
            let id = match self
                .persist()
                .lookup_valid(sid, net, now_ms, svc.persistence_ms, usable)
            {
                Some(id) => Some(id),
                None => svc
                    .sched
                    .schedule(&LiveDests(&svc.servers), &input)
                    .map(|i| svc.servers[i].shared.id)
                    .map(|id| {
                        let id = self
                            .persist()
                            .insert(sid, net, id, now_ms, svc.persistence_ms);
                        if self.sync {
                            self.report_template(svc, net, id);
                        }
                        id
                    }),
            };
            return match id.and_then(|id| svc.servers.iter().find(|s| s.shared.id == id)) {
                Some(s) => Some((s, Some(net))),
                None => sorry(),
            };
        }
        svc.sched
            .schedule(&LiveDests(&svc.servers), &input)
            .map(|i| (&svc.servers[i], None))
            .or_else(sorry)
    }

    /// Forgets a connection, giving back its count.
    pub(super) fn release(&mut self, snap: &Snapshot, id: ConnId, now_ms: u64) {
        if let Some(c) = self.conns.remove(id) {
            release_template(snap, &self.shared.persist, &c, now_ms);
            uncount(snap, self.worker, &c);
        }
    }
}

/// What an insert into a full table does with the record it reclaims:
/// counts the expiry or eviction, gives back its template hold and its
/// count on its server.
#[inline(always)]
fn reclaimer<'a>(
    snap: &'a Snapshot,
    stats: &'a WorkerStats,
    persist: &'a PersistTable,
    worker: usize,
    now_ms: u64,
) -> impl FnOnce(&conn::Conn, conn::Reclaim) + 'a {
    move |c, why| {
        match why {
            conn::Reclaim::Expired => stats.conns_expired.inc(),
            conn::Reclaim::Evicted => stats.conns_evicted.inc(),
        }
        release_template(snap, persist, c, now_ms);
        uncount(snap, worker, c);
    }
}

/// Gives back a finished connection's active/inactive count on its server,
/// also when the server has been deleted since (its counters outlive it).
pub(super) fn uncount(snap: &Snapshot, worker: usize, c: &conn::Conn) {
    let Some(d) = snap.counters(c.dest()) else {
        return;
    };
    let k = &d.per_worker[worker];
    if c.is_active() {
        k.active.dec();
    } else {
        k.inactive.dec();
    }
    if let Some((_, srv)) = snap.dest(c.dest()) {
        srv.update_overload();
    }
}

/// A connection that held a persistence template ended: give back its hold
/// on exactly that template, (service, client net, server), found from the
/// record alone, also when the service has been deleted or its netmask
/// changed since (the snapshot knows every netmask a service id has used;
/// the current one is tried first).
pub(super) fn release_template(
    snap: &Snapshot,
    persist: &PersistTable,
    c: &conn::Conn,
    now_ms: u64,
) {
    if c.flags() & PERSISTENT == 0 {
        return;
    }
    let svc = c.service();
    for &m in snap.persist_masks(svc) {
        let net = crate::sched::mask(c.client(), m);
        if persist.release(u32::from(svc), net, c.dest(), now_ms) {
            return;
        }
    }
}
