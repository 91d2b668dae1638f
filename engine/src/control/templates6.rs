//! `rvs ctl list --conns`: the persistence templates of IPv6 services, as
//! `ipvsadm -Lnc` lists templates (client network, port 0, state NONE),
//! with `[addr]:port` endpoints.
//!
//! The template table (`sched::persist`, shared with IPv4) keys an IPv6
//! template by the service and the 32-bit fold of the client prefix
//! (`pipeline::client_net6`): the prefix itself is not stored. So the
//! entry says what is known: the service, the server, the prefix length
//! and the fold ([`TemplatePrefix6`]), and as its client the prefix of a
//! listed connection of that service whose client folds to that key (a
//! connection the template sent there, or one of the same prefix), or
//! `::` when none is listed.

use std::net::{IpAddr, Ipv6Addr};

use super::ctl_proto::{ConnInfo, ConnsView, TemplatePrefix6};
use crate::conn::{self, TcpState};
use crate::dataplane::pipeline::{client_net6, prefix6};
use crate::dataplane::snapshot::{Service6, Snapshot};
use crate::sched::persist::TemplateInfo;

/// Appends the live templates of `snap`'s IPv6 services among `templates`
/// to `view` (counted in `total`; past `limit` entries only counted, and
/// the view marked truncated), their prefixes looked up among the
/// connections already in `view`.
pub fn add(view: &mut ConnsView, snap: &Snapshot, templates: &[TemplateInfo], limit: usize) {
    let mut found = Vec::new();
    for t in templates {
        let Some(svc) = snap.services6.iter().find(|s| u32::from(s.id) == t.service) else {
            continue;
        };
        let Some(srv) = svc.servers.iter().find(|s| s.shared.id == t.server_id) else {
            continue;
        };
        let len = svc.persistence_prefix;
        let fold = u32::from(t.client_net);
        let client = view
            .conns
            .iter()
            .filter(|c| !c.template && of_service(c, svc))
            .find_map(|c| match c.client {
                IpAddr::V6(a) if u32::from(client_net6(a, len)) == fold => Some(prefix6(a, len)),
                _ => None,
            });
        found.push(ConnInfo {
            protocol: match svc.proto {
                conn::PROTO_TCP => "tcp".to_string(),
                conn::PROTO_UDP => "udp".to_string(),
                p => p.to_string(),
            },
            client: client.unwrap_or(Ipv6Addr::UNSPECIFIED).into(),
            cport: 0,
            vip: svc.vip.into(),
            vport: svc.port,
            server: srv.addr.into(),
            sport: srv.port,
            state: TcpState::None.name().to_string(),
            expires_ms: t.left_ms,
            forward: srv.method.name().to_string(),
            worker: 0,
            template: true,
            synced: false,
            local: None,
            prefix6: Some(TemplatePrefix6 {
                len,
                fold,
                known: client.is_some(),
            }),
        });
    }
    for c in found {
        view.total += 1;
        if view.conns.len() >= limit {
            view.truncated = true;
            continue;
        }
        view.conns.push(c);
    }
}

/// A connection to `svc` (its protocol, VIP and one of its ports).
fn of_service(c: &ConnInfo, svc: &Service6) -> bool {
    let proto = match c.protocol.as_str() {
        "tcp" => conn::PROTO_TCP,
        "udp" => conn::PROTO_UDP,
        p => p.parse().unwrap_or(0),
    };
    proto == svc.proto
        && c.vip == IpAddr::V6(svc.vip)
        && (svc.port == 0 || c.vport == svc.port || svc.ports.contains(&c.vport))
}
