//! Persistence for NAT64 services (issue 13): `persistence_timeout` with
//! `persistence_prefix`, as IPv6 services have it (`persist6.rs`), the
//! template's server being one of the service's IPv4 servers.
//!
//! The templates are the same: the shared [`PersistTable`], keyed by the
//! service id and the 32-bit fold of the client's prefix
//! ([`client_net6`]), held by the connections made with them (marked
//! `PERSISTENT`) and given back when they end: `forget6`, which every
//! NAT64 connection's removal goes through, calls `release_template6`,
//! which needs only the record (service id, client id, server id).
//!
//! HA sync: a template the scheduler makes goes as IPv6 templates do
//! ([`Template6Record`], type 5), its IPv4 server written as the
//! IPv4-mapped address `::ffff:a.b.c.d`; a backup whose IPv6 services have
//! no such VIP installs it for the NAT64 service under the same key.
//!
//! [`PersistTable`]: crate::sched::persist::PersistTable

use std::net::{Ipv4Addr, Ipv6Addr};

use super::persist6::{client_net6, prefix6, Persistence};
use super::Pipeline;
use crate::dataplane::snapshot::{Server, Service64, Snapshot};
use crate::ha::sync::{Record, Template6Record};
use crate::packet::parse_ipv6::Ipv6Parsed;

impl Pipeline {
    /// Picks the IPv4 server of a new NAT64 connection: the live template's
    /// for the client's prefix, else the scheduler's (stored as the
    /// prefix's template), as `pick6` among real servers. With the server
    /// comes the template key when persistence chose it: the connection
    /// takes a hold on it (`hold6`).
    pub(super) fn pick64<'s>(
        &self,
        snap: &Snapshot,
        svc: &'s Service64,
        p: &Ipv6Parsed,
        now_ms: u64,
    ) -> Option<(&'s Server, Option<Ipv4Addr>)> {
        let on = Persistence {
            service: svc.id,
            sched: &svc.sched,
            ms: svc.persistence_ms,
            prefix: svc.persistence_prefix,
        };
        self.pick_persistent6(snap, on, &svc.servers, p, now_ms, |id| {
            if self.sync {
                self.report_template64(svc, p.src, id);
            }
        })
    }

    /// Reports a template the scheduler just made for `client`'s prefix.
    #[inline(never)]
    fn report_template64(&self, svc: &Service64, client: Ipv6Addr, server_id: u32) {
        let Some(srv) = svc.servers.iter().find(|s| s.shared.id == server_id) else {
            return;
        };
        let rec = Template6Record {
            proto: svc.proto,
            vip: svc.vip,
            vport: svc.port,
            prefix_len: svc.persistence_prefix,
            client_net: prefix6(client, svc.persistence_prefix),
            server: srv.addr.to_ipv6_mapped(),
            sport: srv.port,
            timeout_ms: svc.persistence_ms.min(u32::MAX as u64) as u32,
        };
        self.push_out(Record::Template6(rec));
    }

    /// Puts a peer's template for a NAT64 service into the shared template
    /// table (`install_template6` asks when no IPv6 service matches). The
    /// same checks: an unknown server, a service without persistence or
    /// with another prefix length is counted `sync_unknown`.
    pub(super) fn install_template64(&mut self, snap: &Snapshot, t: &Template6Record, now_ms: u64) {
        let server = t.server.to_ipv4_mapped();
        let found = snap.service64_for(t.proto, t.vip, t.vport).and_then(|svc| {
            svc.servers
                .iter()
                .find(|s| Some(s.addr) == server && s.port == t.sport)
                .map(|s| (svc, s))
        });
        let Some((svc, srv)) = found else {
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
}
