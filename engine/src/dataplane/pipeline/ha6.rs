//! Connection sync of IPv6 connections (issue 13): the master reports its
//! IPv6 connections (new, state changes, every `SYNC_PERIOD`th packet, bulk
//! copies) as IPv6 records ([`Conn6Record`], sync record type 3), and a
//! backup installs them in its IPv6 table (address ids), on the server
//! with the same address and port, so that after a takeover an
//! established IPv6 connection goes on where it was.
//!
//! The HA thread hands a record to the worker that owns the client's flow
//! (`owner_worker` of the client's `fold6` and port, as the pipeline's
//! hand-off decides for IPv6). Only NAT is forwarded over IPv6 here; a
//! record of another method, or for a service or server this director
//! does not have, is counted `sync_unknown`. NAT64 connections (the IPv6
//! table's full-NAT ones) go as their own records (`ha64.rs`).
//!
//! Persistence templates of IPv6 services go as [`Template6Record`]s
//! (type 5) when the scheduler makes one (`persist6.rs`), as IPv4's do:
//! the client prefix and its length, from which the backup derives the
//! template key (the fold of the prefix) and stores it in its shared
//! template table (worker 0), so a client of that prefix keeps its server
//! after a takeover.

use std::net::Ipv4Addr;

use super::ha::{refresh_synced, SYNC_PERIOD};
use super::Pipeline;
use std::net::Ipv6Addr;

use super::persist6::{client_net6, prefix6};
use crate::conn::{flags, ConnId, Dir, Method, NewConn, TcpState};
use crate::dataplane::snapshot::{Service6, Snapshot};
use crate::ha::sync::{Conn6Record, Record, Template6Record};

impl Pipeline {
    /// Reports IPv6 connection `id` (new, or its state changed).
    #[inline(never)]
    pub(super) fn report_conn6(&self, id: ConnId, now_ms: u64) {
        let Some(v6) = self.v6.as_deref() else {
            return;
        };
        let c = v6.conns.get(id);
        if c.method() == Method::Fnat {
            // NAT64: an IPv4 server and a local tuple.
            return self.report_conn64(id, now_ms);
        }
        let rec = Conn6Record {
            proto: c.proto(),
            state: c.state() as u8,
            method: c.method() as u8,
            flags: 0,
            client: v6.addrs.addr(u32::from(c.client())),
            cport: c.cport(),
            vip: v6.addrs.addr(u32::from(c.vip())),
            vport: c.vport(),
            server: v6.addrs.addr(u32::from(c.server())),
            sport: c.sport(),
            timeout_ms: v6.conns.time_left_ms(id, now_ms),
        };
        self.push_out(Record::Conn6(rec));
    }

    /// After a packet of IPv6 connection `id`: report it when its state
    /// changed, and every `SYNC_PERIOD`th packet anyway (shared count with
    /// IPv4).
    #[inline]
    pub(super) fn sync_after_packet6(&mut self, id: ConnId, changed: bool, now_ms: u64) {
        self.ha.since_report += 1;
        if changed || self.ha.since_report >= SYNC_PERIOD {
            self.ha.since_report = 0;
            self.report_conn6(id, now_ms);
        }
    }

    /// Puts an IPv6 connection the peer synced into this worker's IPv6
    /// table (or updates the one there).
    pub fn install6(&mut self, snap: &Snapshot, r: &Conn6Record, now_ms: u64) {
        let found = snap.service6_for(r.proto, r.vip, r.vport).and_then(|svc| {
            let srv = svc
                .servers
                .iter()
                .chain(svc.sorry.as_ref())
                .find(|s| s.addr == r.server && (s.port == r.sport || s.port == 0))?;
            Some((svc, srv))
        });
        let Some((svc, srv)) = found else {
            self.stats.sync_unknown.inc();
            return;
        };
        if Method::from_u8(r.method) != Some(Method::Nat) {
            self.stats.sync_unknown.inc();
            return;
        }
        let state = TcpState::from_u8(r.state).unwrap_or(TcpState::None);
        let Some(v6) = self.v6.as_deref_mut() else {
            self.stats.sync_unknown.inc();
            return;
        };
        let existing = v6.lookup_tuple(r.proto, (r.client, r.cport), (r.vip, r.vport), now_ms);
        if let Some((id, Dir::Inbound)) = existing {
            if v6.conns.get(id).dest() == srv.shared.id {
                refresh_synced(
                    &mut v6.conns,
                    id,
                    state,
                    r.timeout_ms,
                    now_ms,
                    &srv.shared.per_worker[self.worker],
                );
                self.stats.sync_installed.inc();
                return;
            }
            // The peer moved the client to another server: take its word.
            self.release6(snap, id, now_ms);
        }
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let ids = [r.client, r.vip, srv.addr].map(|a| v6.addrs.acquire(a));
        let [Some(client), Some(vip), Some(server)] = ids else {
            for id in ids.into_iter().flatten() {
                v6.addrs.release(id);
            }
            self.stats.count_drop(super::Drop::TableFull);
            return;
        };
        let new = NewConn {
            proto: r.proto,
            client: Ipv4Addr::from(client),
            cport: r.cport,
            vip: Ipv4Addr::from(vip),
            vport: r.vport,
            server: Ipv4Addr::from(server),
            sport: r.sport,
            method: Method::Nat,
            flags: flags::SYNCED,
            service: svc.id,
            dest: srv.shared.id,
            state,
        };
        let made = self.insert6(snap, new, None, now_ms);
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let Ok(id) = made else {
            for id in [client, vip, server] {
                v6.addrs.release(id);
            }
            self.stats.count_drop(super::Drop::TableFull);
            return;
        };
        v6.conns.set_timeout(id, now_ms, r.timeout_ms);
        let k = &srv.shared.per_worker[self.worker];
        if v6.conns.get(id).is_active() {
            k.active.inc();
        } else {
            k.inactive.inc();
        }
        srv.update_overload();
        self.stats.sync_installed.inc();
    }

    /// Reports a persistence template the scheduler just made for
    /// `client`'s prefix.
    #[inline(never)]
    pub(super) fn report_template6(&self, svc: &Service6, client: Ipv6Addr, server_id: u32) {
        let Some(srv) = svc.servers.iter().find(|s| s.shared.id == server_id) else {
            return;
        };
        let rec = Template6Record {
            proto: svc.proto,
            vip: svc.vip,
            vport: svc.port,
            prefix_len: svc.persistence_prefix,
            client_net: prefix6(client, svc.persistence_prefix),
            server: srv.addr,
            sport: srv.port,
            timeout_ms: svc.persistence_ms.min(u32::MAX as u64) as u32,
        };
        self.push_out(Record::Template6(rec));
    }

    /// Puts a template the peer made for an IPv6 service into the shared
    /// template table, keyed as `pick6` keys it (the fold of the prefix).
    /// A record whose prefix length is not this service's (its key would
    /// name other clients here), or for a service without persistence, is
    /// counted `sync_unknown`.
    pub fn install_template6(&mut self, snap: &Snapshot, t: &Template6Record, now_ms: u64) {
        let found = snap.service6_for(t.proto, t.vip, t.vport).and_then(|svc| {
            svc.servers
                .iter()
                .find(|s| s.addr == t.server && s.port == t.sport)
                .map(|s| (svc, s))
        });
        let Some((svc, srv)) = found else {
            if snap.service6_for(t.proto, t.vip, t.vport).is_none() {
                // a NAT64 service's (`persist64.rs`)
                return self.install_template64(snap, t, now_ms);
            }
            self.stats.sync_unknown.inc();
            return;
        };
        if svc.persistence_ms == 0 || t.prefix_len != svc.persistence_prefix {
            self.stats.sync_unknown.inc();
            return;
        }
        let timeout = u64::from(t.timeout_ms).min(svc.persistence_ms);
        self.persist().insert(
            u32::from(svc.id),
            client_net6(t.client_net, t.prefix_len),
            srv.shared.id,
            now_ms,
            timeout,
        );
        self.stats.sync_installed.inc();
    }

    /// The IPv6 part of a bulk copy, after the IPv4 table: cursor values
    /// from the IPv4 capacity on walk the IPv6 table. `false` while it is
    /// not done (paused on a full out queue, or budget spent).
    pub(super) fn bulk_step6(&mut self, now_ms: u64, budget: usize) -> bool {
        let base = self.conns.capacity();
        let Some(v6) = self.v6.as_deref() else {
            return true;
        };
        let cap = v6.conns.capacity();
        let end = (self.ha.bulk_cursor + budget).min(base + cap);
        while self.ha.bulk_cursor < end {
            let id = ConnId((self.ha.bulk_cursor - base) as u32);
            let Some(v6) = self.v6.as_deref() else {
                return true;
            };
            if v6.conns.contains(id) && !v6.conns.is_expired(id, now_ms) {
                if self.shared.ha.out[self.worker].is_full() {
                    return false; // paced by the HA thread: resume next loop
                }
                self.report_conn6(id, now_ms);
            }
            self.ha.bulk_cursor += 1;
        }
        self.ha.bulk_cursor >= base + cap
    }
}
