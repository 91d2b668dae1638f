//! Persistence for IPv6 services (issue 13): `persistence_timeout` with
//! `persistence_prefix` (IPv6's `persistence_netmask`): every client in one
//! prefix (a /64 by the usual setting) goes to the server the first of
//! them was scheduled to, for as long as the template lives.
//!
//! The templates are IPv4's ([`PersistTable`], shared by the workers, held
//! by the connections made with them, expired as IPVS does): an IPv6
//! template is keyed by the service id and the 32-bit [`fold6`] of the
//! client's prefix. Service ids name one family, so an IPv6 template never
//! meets an IPv4 one. Two prefixes of one service whose folds collide share
//! one template (both go to one server, which persistence allows; neither
//! is ever split from its own server).
//!
//! A connection that took a hold is marked `PERSISTENT` as for IPv4, and
//! gives the hold back when it ends ([`release_template6`]), its prefix
//! rebuilt from the record (the client's address id) and the prefix
//! lengths the service has had (`Snapshot::persist_masks`).
//!
//! A template the scheduler makes is reported to an HA backup (sync
//! record type 5, `ha6.rs`) with the client prefix itself, from which the
//! backup derives the same key.
//!
//! A sorry server takes a new connection when no real server can, as for
//! IPv4 (`pick6`), and holds no template.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Pipeline, PERSISTENT};
use crate::conn::addr6::Addr6Table;
use crate::conn::Conn;
use crate::dataplane::snapshot::{fold6, LiveDests, Server, Service6, Snapshot};
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::sched::persist::PersistTable;
use crate::sched::{Sched, SchedInput};

/// The template key of client `a` under prefix length `prefix`: the fold of
/// `a` with its host bits cleared.
#[inline]
pub fn client_net6(a: Ipv6Addr, prefix: u8) -> Ipv4Addr {
    fold6(prefix6(a, prefix))
}

/// `a` with its host bits under prefix length `prefix` cleared.
#[inline]
pub fn prefix6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u32::from(prefix.min(128));
    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
    Ipv6Addr::from(u128::from(a) & mask)
}

/// A service's persistence settings and scheduler, as the pick needs them.
#[derive(Clone, Copy)]
pub(super) struct Persistence<'a> {
    pub service: u16,
    pub sched: &'a Sched,
    /// 0 = no persistence.
    pub ms: u64,
    pub prefix: u8,
}

impl Pipeline {
    /// Picks the server of a new IPv6 connection: the live template's for
    /// the client's prefix, else the scheduler's (stored as the prefix's
    /// template), else (none usable, or the quorum lost) the sorry server,
    /// as IPv4's `pick`. With the server comes the template key when a
    /// template chose it (never for the sorry server): the connection takes
    /// a hold on it.
    pub(super) fn pick6<'s>(
        &self,
        snap: &Snapshot,
        svc: &'s Service6,
        p: &Ipv6Parsed,
        now_ms: u64,
    ) -> Option<(&'s Server<Ipv6Addr>, Option<Ipv4Addr>)> {
        let sorry = || svc.sorry.as_ref().map(|s| (s, None));
        if svc.sorry_only {
            // quorum lost: the sorry server takes every new connection
            return sorry();
        }
        self.pick6_real(snap, svc, p, now_ms).or_else(sorry)
    }

    /// `pick6` among the real servers.
    fn pick6_real<'s>(
        &self,
        snap: &Snapshot,
        svc: &'s Service6,
        p: &Ipv6Parsed,
        now_ms: u64,
    ) -> Option<(&'s Server<Ipv6Addr>, Option<Ipv4Addr>)> {
        let on = Persistence {
            service: svc.id,
            sched: &svc.sched,
            ms: svc.persistence_ms,
            prefix: svc.persistence_prefix,
        };
        self.pick_persistent6(snap, on, &svc.servers, p, now_ms, |id| {
            if self.sync {
                self.report_template6(svc, p.src, id);
            }
        })
    }

    /// The pick of a new IPv6 client's connection among `servers` (IPv6
    /// services' and NAT64's alike): the live template's server for the
    /// client's prefix, else the scheduler's, stored as the prefix's
    /// template (`made` hears of each new template). With the server comes
    /// the template key when persistence is on.
    pub(super) fn pick_persistent6<'s, A>(
        &self,
        snap: &Snapshot,
        on: Persistence<'_>,
        servers: &'s [Server<A>],
        p: &Ipv6Parsed,
        now_ms: u64,
        made: impl FnOnce(u32),
    ) -> Option<(&'s Server<A>, Option<Ipv4Addr>)> {
        let input = SchedInput {
            src_ip: fold6(p.src),
            src_port: p.src_port,
            dst_ip: fold6(p.dst),
            dst_port: p.dst_port,
            now_ms,
        };
        if on.ms == 0 {
            let i = on.sched.schedule(&LiveDests(servers), &input)?;
            return Some((&servers[i], None));
        }
        let net = client_net6(p.src, on.prefix);
        let sid = u32::from(on.service);
        // As IPv4: a drained server's (weight 0) template is dropped with
        // `expire_quiescent_template`, so the client is scheduled afresh.
        let quiescent = snap.expire_quiescent_template;
        let usable = |id: u32| {
            servers
                .iter()
                .any(|s| s.shared.id == id && s.usable && !(quiescent && s.weight == 0))
        };
        let persist = self.persist();
        let id = match persist.lookup_valid(sid, net, now_ms, on.ms, usable) {
            Some(id) => id,
            None => {
                let i = on.sched.schedule(&LiveDests(servers), &input)?;
                let id = persist.insert(sid, net, servers[i].shared.id, now_ms, on.ms);
                made(id);
                id
            }
        };
        let srv = servers.iter().find(|s| s.shared.id == id)?;
        Some((srv, Some(net)))
    }

    /// Takes the connection's hold on its template: the connection flags
    /// (`PERSISTENT` when held).
    pub(super) fn hold6(
        &self,
        service: u16,
        template: Option<Ipv4Addr>,
        dest: u32,
        now_ms: u64,
    ) -> u8 {
        match template {
            Some(net) if self.persist().hold(u32::from(service), net, dest, now_ms) => PERSISTENT,
            _ => 0,
        }
    }

    /// Gives back a hold taken for a connection that could not be made.
    pub(super) fn unhold6(
        &self,
        svc: &Service6,
        template: Option<Ipv4Addr>,
        flags: u8,
        dest: u32,
        now_ms: u64,
    ) {
        if let Some(net) = template.filter(|_| flags & PERSISTENT != 0) {
            self.persist().release(u32::from(svc.id), net, dest, now_ms);
        }
    }
}

/// An IPv6 connection that held a template ended: give back its hold on
/// exactly that template (service, client prefix, server), from the record
/// and the address ids, before the ids are released; also when the
/// service has been deleted or its prefix changed since.
pub(super) fn release_template6(
    snap: &Snapshot,
    persist: &PersistTable,
    addrs: &Addr6Table,
    c: &Conn,
    now_ms: u64,
) {
    if c.flags() & PERSISTENT == 0 {
        return;
    }
    let svc = c.service();
    let client = addrs.addr(u32::from(c.client()));
    for &m in snap.persist_masks(svc) {
        let net = client_net6(client, u32::from(m).min(128) as u8);
        if persist.release(u32::from(svc), net, c.dest(), now_ms) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_keys_every_address_in_it() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_net6(a, 64), client_net6(b, 64));
        assert_ne!(client_net6(a, 64), client_net6(c, 64));
        // (0x2001_0db8 ^ 0x0001_0002)
        assert_eq!(client_net6(a, 64), Ipv4Addr::from(0x2000_0dba));
        assert_eq!(client_net6(a, 128), fold6(a));
        assert_eq!(client_net6(a, 0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(client_net6(a, 16), Ipv4Addr::from(0x2001_0000));
    }
}
