//! Connection sync of NAT64 connections (issue 13): the master reports a
//! NAT64 connection (new, state changes, every `SYNC_PERIOD`th packet,
//! bulk copies: [`report_conn6`](Pipeline::report_conn6) hands it here) as
//! a [`Conn64Record`] (sync record type 4) with its IPv4 server and local
//! tuple, and a backup installs it in its IPv6 table with that local
//! tuple, the port reserved in the one full-NAT pool of the worker (the
//! IPv4 table's, lent as `nat64.rs` lends it), so after a takeover both
//! directions are translated as on the master and no new connection of
//! either kind takes that port.
//!
//! The HA thread hands the record to the owner of the client's flow
//! (`owner_worker` of `fold6(client)` and port), the worker whose pool the
//! master took the port from; with the same worker count and `snat_*`
//! settings the port is free in that worker's pool here. A record this
//! director cannot hold (no such NAT64 service or server, not full-NAT,
//! no pool, the port another worker's or held already) is counted
//! `sync_unknown`; a full table is a counted `table_full` drop.

use std::net::Ipv4Addr;

use super::ha::refresh_synced;
use super::nat6::{forget6, Conns6};
use super::Pipeline;
use crate::conn::{self, flags, ConnId, Dir, Method, NewConn, TcpState};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::ha::sync::{Conn64Record, Record};

impl Pipeline {
    /// Reports NAT64 connection `id` of the IPv6 table (with its local
    /// tuple; one without is not reported, as for IPv4 full-NAT).
    #[inline(never)]
    pub(super) fn report_conn64(&self, id: ConnId, now_ms: u64) {
        let Some(v6) = self.v6.as_deref() else {
            return;
        };
        let Some(local) = v6.conns.local(id) else {
            return;
        };
        let c = v6.conns.get(id);
        let rec = Conn64Record {
            proto: c.proto(),
            state: c.state() as u8,
            method: c.method() as u8,
            flags: 0,
            client: v6.addrs.addr(u32::from(c.client())),
            cport: c.cport(),
            vip: v6.addrs.addr(u32::from(c.vip())),
            vport: c.vport(),
            server: c.server(),
            sport: c.sport(),
            timeout_ms: v6.conns.time_left_ms(id, now_ms),
            local,
        };
        self.push_out(Record::Conn64(rec));
    }

    /// Puts a NAT64 connection the peer synced into this worker's IPv6
    /// table with its local tuple (or updates the one there).
    pub fn install64(&mut self, snap: &Snapshot, r: &Conn64Record, now_ms: u64) {
        let found = snap.service64_for(r.proto, r.vip, r.vport).and_then(|svc| {
            let srv = svc
                .servers
                .iter()
                .find(|s| s.addr == r.server && (s.port == r.sport || s.port == 0))?;
            Some((svc, srv))
        });
        let Some((svc, srv)) = found else {
            self.stats.sync_unknown.inc();
            return;
        };
        let Some(v6) = self.v6.as_deref_mut() else {
            self.stats.sync_unknown.inc();
            return;
        };
        if Method::from_u8(r.method) != Some(Method::Fnat)
            || !(self.conns.has_local_tuples() && v6.conns.has_local_tuples())
        {
            self.stats.sync_unknown.inc();
            return;
        }
        let state = TcpState::from_u8(r.state).unwrap_or(TcpState::None);
        let existing = v6.lookup_tuple(r.proto, (r.client, r.cport), (r.vip, r.vport), now_ms);
        if let Some((id, Dir::Inbound)) = existing {
            if v6.conns.get(id).dest() == srv.shared.id && v6.conns.local(id) == Some(r.local) {
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
            // The peer moved the client to another server or local tuple:
            // take its word (the old local port goes back to the pool).
            self.release6(snap, id, now_ms);
        }
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let ids = [r.client, r.vip].map(|a| v6.addrs.acquire(a));
        let [Some(client), Some(vip)] = ids else {
            for id in ids.into_iter().flatten() {
                v6.addrs.release(id);
            }
            self.stats.count_drop(Drop::TableFull);
            return;
        };
        let new = NewConn {
            proto: r.proto,
            client: Ipv4Addr::from(client),
            cport: r.cport,
            vip: Ipv4Addr::from(vip),
            vport: r.vport,
            server: r.server,
            sport: r.sport,
            method: Method::Fnat,
            flags: flags::SYNCED,
            service: svc.id,
            dest: srv.shared.id,
            state,
        };
        let (laddr, lport) = r.local;
        let (stats, worker, persist) = (&self.stats, self.worker, &self.shared.persist);
        let Conns6 { conns, addrs, .. } = &mut *v6;
        // The port is reserved in the one pool (the IPv4 table's, lent);
        // whatever is evicted gives back all it holds, as `insert6` does.
        let made = conns.with_lent_pools(&mut self.conns, |conns| {
            conns.insert_or_evict_fnat_at(new, laddr, lport, now_ms, |c, why| {
                match why {
                    conn::Reclaim::Expired => stats.conns_expired.inc(),
                    conn::Reclaim::Evicted => stats.conns_evicted.inc(),
                }
                forget6(snap, persist, worker, addrs, c, now_ms);
            })
        });
        let id = match made {
            Ok(id) => id,
            Err(e) => {
                addrs.release(client);
                addrs.release(vip);
                match e {
                    conn::FnatError::TableFull => self.stats.count_drop(Drop::TableFull),
                    // Not a free port of this worker here.
                    _ => self.stats.sync_unknown.inc(),
                }
                return;
            }
        };
        conns.set_timeout(id, now_ms, r.timeout_ms);
        let k = &srv.shared.per_worker[self.worker];
        if conns.get(id).is_active() {
            k.active.inc();
        } else {
            k.inactive.inc();
        }
        srv.update_overload();
        self.stats.sync_installed.inc();
    }
}
