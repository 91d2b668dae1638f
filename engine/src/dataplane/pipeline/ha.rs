//! The worker's side of failover and connection sync (SPEC §7): report
//! connections to the HA thread, install what the peer director sent, walk
//! the table for a bulk copy, and send gratuitous ARP on takeover (for the
//! owned addresses and the extra full-NAT source addresses).
//!
//! All of it runs between bursts (`ha_poll`) or on a connection's first
//! packet and state changes (`report_conn`), never per established packet.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::{Acquire, Release};

use super::Pipeline;
use crate::conn::{flags, ConnId, ConnTable, Dir, FlowKey, Method, NewConn, TcpState};
use crate::dataplane::snapshot::{DestCounters, Server, Service, Snapshot};
use crate::ha::sync::{ConnRecord, Record, TemplateRecord};

/// Synced records a worker installs per loop at most.
const INSTALL_BUDGET: usize = 512;
/// Table slots a bulk walk looks at per loop.
const BULK_BUDGET: usize = 1024;
/// Gratuitous ARP rounds per takeover request (keepalived's
/// `garp_master_repeat`: 5).
pub const GARP_ROUNDS: u32 = 5;

/// Besides every state change, a connection is reported again on every
/// `SYNC_PERIOD`th packet this worker forwards for established connections
/// (IPVS: `sync_threshold` 3 of `sync_period` 50), so a long-lived
/// connection's expiry stays fresh on the backup.
pub const SYNC_PERIOD: u32 = 50;

/// Per-worker HA state.
#[derive(Default)]
pub struct WorkerHa {
    /// Packets since the last periodic report.
    pub(super) since_report: u32,
    /// The bulk copy being walked (or last walked).
    bulk_seen: u64,
    /// Next slot: the IPv4 table's, then the IPv6 table's (`ha6.rs`).
    pub(super) bulk_cursor: usize,
    /// Next slot of the template table (worker 0, `ha_templates.rs`).
    pub(super) bulk_tpl: usize,
    bulk_active: bool,
    garp_seen: u64,
    garp_rounds: u32,
    garp_idx: usize,
}

impl Pipeline {
    /// Reports connection `id` (new, or its state changed) to the HA thread.
    #[inline(never)]
    pub(super) fn report_conn(&self, id: ConnId, now_ms: u64) {
        let c = self.conns.get(id);
        if c.flags() & super::synproxy::SYNPROXY != 0 {
            // Not synced in this cut: the record has no room for the
            // sequence shift a backup would need (README, synproxy).
            return;
        }
        // Full-NAT: the local tuple goes too (the backup holds its port).
        let local = self.conns.local(id);
        if c.method() == Method::Fnat && local.is_none() {
            return;
        }
        let rec = ConnRecord {
            proto: c.proto(),
            state: c.state() as u8,
            method: c.method() as u8,
            flags: 0,
            client: c.client(),
            cport: c.cport(),
            vip: c.vip(),
            vport: c.vport(),
            server: c.server(),
            sport: c.sport(),
            timeout_ms: self.conns.time_left_ms(id, now_ms),
            local,
        };
        self.push_out(Record::Conn(rec));
    }

    /// After a packet of connection `id`: report it when its state changed,
    /// and every `SYNC_PERIOD`th packet anyway.
    #[inline]
    pub(super) fn sync_after_packet(&mut self, id: ConnId, changed: bool, now_ms: u64) {
        self.ha.since_report += 1;
        if changed || self.ha.since_report >= SYNC_PERIOD {
            self.ha.since_report = 0;
            self.report_conn(id, now_ms);
        }
    }

    /// Reports a persistence template the scheduler just made.
    #[inline(never)]
    pub(super) fn report_template(&self, svc: &Service, client_net: Ipv4Addr, server_id: u32) {
        let Some(srv) = svc.servers.iter().find(|s| s.shared.id == server_id) else {
            return;
        };
        let rec = TemplateRecord {
            proto: svc.proto,
            vip: svc.vip,
            vport: svc.port,
            client_net,
            server: srv.addr,
            sport: srv.port,
            timeout_ms: svc.persistence_ms.min(u32::MAX as u64) as u32,
        };
        self.push_out(Record::Template(rec));
    }

    pub(super) fn push_out(&self, r: Record) -> bool {
        match self.shared.ha.out[self.worker].push(r) {
            Ok(()) => {
                self.stats.sync_reported.inc();
                true
            }
            Err(_) => {
                self.stats.sync_lost.inc();
                false
            }
        }
    }

    /// Between bursts: take in the role and sync switches, install what the
    /// peer sent, advance a bulk walk, start gratuitous ARP after a
    /// takeover (worker 0). Inline, every loop: without `[ha]`, three
    /// loads; the rest is `ha_work`.
    #[inline]
    pub fn ha_poll(&mut self, snap: &Snapshot, now_ms: u64) {
        let link = &self.shared.ha;
        self.master = link.master.load(Acquire);
        self.sync = link.sync.load(Acquire);
        self.fast_on = self.master && !self.sync;
        if link.enabled.load(Acquire) {
            self.ha_work(snap, now_ms);
        }
    }

    /// `ha_poll`'s work with `[ha]` on.
    #[inline(never)]
    fn ha_work(&mut self, snap: &Snapshot, now_ms: u64) {
        for _ in 0..INSTALL_BUDGET {
            let Some(rec) = self.shared.ha.install[self.worker].pop() else {
                break;
            };
            match rec {
                Record::Conn(c) => self.install(snap, &c, now_ms),
                Record::Template(t) => self.install_template(snap, &t, now_ms),
                Record::Conn6(c) => self.install6(snap, &c, now_ms),
                Record::Conn64(c) => self.install64(snap, &c, now_ms),
                Record::Template6(t) => self.install_template6(snap, &t, now_ms),
            }
        }
        self.bulk_step(snap, now_ms);
        if self.worker == 0 {
            let g = self.shared.ha.garp_request.load(Acquire);
            if g != self.ha.garp_seen {
                self.ha.garp_seen = g;
                self.ha.garp_rounds = GARP_ROUNDS;
                self.ha.garp_idx = 0;
            }
        }
    }

    /// Puts a connection the peer director synced into this worker's table
    /// (or updates the one there), on the server with the same address and
    /// port in this director's configuration.
    pub fn install(&mut self, snap: &Snapshot, r: &ConnRecord, now_ms: u64) {
        let Some((svc, srv)) = synced_dest(snap, r) else {
            self.stats.sync_unknown.inc();
            return;
        };
        let state = TcpState::from_u8(r.state).unwrap_or(TcpState::None);
        let method = Method::from_u8(r.method).unwrap_or(srv.method);
        // Only a full-NAT connection has a local tuple (a later version may
        // send zeros there for the others).
        let local = r.local.filter(|_| method == Method::Fnat);
        if (method == Method::Fnat) != (srv.method == Method::Fnat)
            || (method == Method::Fnat && local.is_none())
        {
            // Full-NAT here and not there (or the other way round), or a
            // full-NAT record without its local tuple (an older peer's):
            // an entry without one could never match a reply.
            self.stats.sync_unknown.inc();
            return;
        }
        let key = FlowKey::new(r.proto, r.client, r.cport, r.vip, r.vport);
        if let Some((id, Dir::Inbound)) = self.conns.lookup(&key, now_ms) {
            let c = *self.conns.get(id);
            if c.dest() == srv.shared.id && self.conns.local(id) == local {
                refresh_synced(
                    &mut self.conns,
                    id,
                    state,
                    r.timeout_ms,
                    now_ms,
                    &srv.shared.per_worker[self.worker],
                );
                self.stats.sync_installed.inc();
                return;
            }
            // The peer moved the client to another server (or local
            // tuple): take its word.
            self.release(snap, id, now_ms);
        }
        let new = NewConn {
            proto: r.proto,
            client: r.client,
            cport: r.cport,
            vip: r.vip,
            vport: r.vport,
            server: r.server,
            sport: r.sport,
            method,
            flags: flags::SYNCED,
            service: svc.id,
            dest: srv.shared.id,
            state,
        };
        // A full table makes room as for a new client; a synced record
        // never evicts an established one.
        let made = match local {
            Some((laddr, lport)) => self.insert_fnat_synced(snap, new, laddr, lport, now_ms),
            _ => self
                .insert_conn(snap, new, now_ms)
                .map_err(|_| super::Drop::TableFull),
        };
        let id = match made {
            Ok(id) => id,
            Err(super::Drop::TableFull) => {
                self.stats.count_drop(super::Drop::TableFull);
                return;
            }
            Err(_) => {
                // Its local port is not a free one of this worker here.
                self.stats.sync_unknown.inc();
                return;
            }
        };
        self.conns.set_timeout(id, now_ms, r.timeout_ms);
        let k = &srv.shared.per_worker[self.worker];
        if self.conns.get(id).is_active() {
            k.active.inc();
        } else {
            k.inactive.inc();
        }
        srv.update_overload();
        self.stats.sync_installed.inc();
    }

    /// Puts a persistence template the peer made into the shared template
    /// table, so a client keeps its server across a takeover.
    pub fn install_template(&mut self, snap: &Snapshot, t: &TemplateRecord, now_ms: u64) {
        let found = snap.service_for(t.proto, t.vip, t.vport).and_then(|svc| {
            svc.servers
                .iter()
                .find(|s| s.addr == t.server && s.port == t.sport)
                .map(|s| (svc, s))
        });
        let Some((svc, srv)) = found else {
            self.stats.sync_unknown.inc();
            return;
        };
        let timeout = u64::from(t.timeout_ms).min(svc.persistence_ms.max(1));
        self.persist().insert(
            u32::from(svc.id),
            t.client_net,
            srv.shared.id,
            now_ms,
            timeout,
        );
        self.stats.sync_installed.inc();
    }

    /// One slice of a bulk copy: report the live connections of the next
    /// `BULK_BUDGET` slots, then (worker 0) the persistence templates
    /// (`ha_templates.rs`); pause while the out queue is full.
    fn bulk_step(&mut self, snap: &Snapshot, now_ms: u64) {
        let link = &self.shared.ha;
        let req = link.bulk_request.load(Acquire);
        if req != self.ha.bulk_seen {
            self.ha.bulk_seen = req;
            self.ha.bulk_cursor = 0;
            self.ha.bulk_tpl = 0;
            self.ha.bulk_active = true;
        }
        if !self.ha.bulk_active {
            return;
        }
        let cap = self.conns.capacity();
        let end = (self.ha.bulk_cursor + BULK_BUDGET).min(cap);
        while self.ha.bulk_cursor < end {
            let i = self.ha.bulk_cursor;
            let id = ConnId(i as u32);
            if self.conns.contains(id) && !self.conns.is_expired(id, now_ms) {
                let c = self.conns.get(id);
                if !c.is_template() {
                    if self.shared.ha.out[self.worker].is_full() {
                        return; // paced by the HA thread: resume next loop
                    }
                    self.report_conn(id, now_ms);
                }
            }
            self.ha.bulk_cursor += 1;
        }
        if self.ha.bulk_cursor >= cap {
            if !self.bulk_step6(now_ms, BULK_BUDGET) {
                return;
            }
            if !self.bulk_templates(snap, now_ms, BULK_BUDGET) {
                return;
            }
            self.ha.bulk_active = false;
            self.shared.ha.bulk_done[self.worker].store(self.ha.bulk_seen, Release);
        }
    }

    /// The next gratuitous ARP to send: (port, address). One round (every
    /// owned address once, then every extra full-NAT source address) per
    /// loop, `GARP_ROUNDS` rounds per takeover.
    pub fn take_garp(&mut self, snap: &Snapshot) -> Option<(usize, Ipv4Addr)> {
        if self.ha.garp_rounds == 0 || !self.master {
            return None;
        }
        let i = self.ha.garp_idx;
        let next = match snap.owned.get(i) {
            Some(&o) => Some(o),
            None => snat_extra(snap, i - snap.owned.len()),
        };
        if let Some(o) = next {
            self.ha.garp_idx += 1;
            return Some(o);
        }
        self.ha.garp_rounds -= 1;
        self.ha.garp_idx = 0;
        None
    }

    /// Writes a gratuitous ARP (a request for `ip` from `ip`, with the
    /// port's MAC, to broadcast) into `buf` (`ARP_FRAME_LEN` bytes).
    pub fn build_garp(&self, snap: &Snapshot, port: usize, ip: Ipv4Addr, buf: &mut [u8]) -> bool {
        let Some(pi) = snap.ports.get(port) else {
            return false;
        };
        let ok = super::write_arp_request(pi.mac, ip, ip, buf);
        if ok {
            self.stats.garp_sent.inc();
        }
        ok
    }
}

/// The `n`th extra full-NAT source address (a port's `snat_addresses`
/// entry that is not its own address; the master answers ARP for them, so
/// a takeover moves them as it moves the VIPs), with its port. Walks the
/// ports each time: a takeover's few dozen calls, never per packet.
fn snat_extra(snap: &Snapshot, n: usize) -> Option<(usize, Ipv4Addr)> {
    if !snap.has_fnat {
        return None;
    }
    snap.ports
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.snat_addrs.iter().map(move |&a| (i, p.addr, a)))
        .filter(|&(_, own, a)| a != own && !snap.owned.iter().any(|&(_, o)| o == a))
        .map(|(i, _, a)| (i, a))
        .nth(n)
}

/// The service and server of a synced connection in this configuration.
fn synced_dest<'s>(snap: &'s Snapshot, r: &ConnRecord) -> Option<(&'s Service, &'s Server)> {
    let svc = snap.service_for(r.proto, r.vip, r.vport)?;
    let srv = svc
        .servers
        .iter()
        .chain(svc.sorry.as_ref())
        .find(|s| s.addr == r.server && (s.port == r.sport || s.port == 0))?;
    Some((svc, srv))
}

/// A synced record of a connection this director already has, to the same
/// server: the connection takes the peer's state and timeout, and the
/// server's active/inactive counts (`k`, this worker's) follow the state.
pub(super) fn refresh_synced(
    conns: &mut ConnTable,
    id: ConnId,
    state: TcpState,
    timeout_ms: u32,
    now_ms: u64,
    k: &DestCounters,
) {
    let tr = conns.set_state(id, state);
    conns.set_timeout(id, now_ms, timeout_ms);
    k.shift(tr.old_active, tr.new_active);
}
