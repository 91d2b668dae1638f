//! Persistence templates in bulk copies (SPEC §7): a backup that joins
//! after the master made its templates learns them from the bulk copy, so
//! a persistent client keeps its server across a later takeover (the
//! streamed reports only carry templates made while the backup listens).
//!
//! The template table is shared by the workers, so worker 0 alone walks
//! it, after its connection tables, `BULK_BUDGET` slots per loop and
//! paused while its out queue is full, as the connection walk is. Each
//! live template goes as the record the scheduler's report would have
//! made (IPv4: type 2; IPv6 service: type 5), with its remaining time. A
//! template that still controls connections (held) never expires on the
//! master while they live, and lives on up to 60 s (`TEMPLATE_HOLD_MS`)
//! after the last ends; nothing holds it on the backup, so it goes with at
//! least those 60 s. A template whose service or server this
//! configuration no longer has is left out.
//!
//! An IPv6 template's key is the 32-bit fold of the client prefix
//! (`persist6.rs`): the prefix itself is not stored, so the type 5 record
//! of a bulk copy carries the prefix's *key form* ([`key_form6`]), an
//! address under the service's prefix length whose fold is the key. The
//! receiver derives the same key from it as from the prefix (for prefix
//! lengths up to 32 it is the prefix itself).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Pipeline;
use crate::dataplane::snapshot::Snapshot;
use crate::ha::sync::{Record, Template6Record, TemplateRecord};
use crate::sched::persist::{TemplateInfo, TEMPLATE_HOLD_MS};

/// An address whose prefix under any length `len` folds to `key`
/// (`client_net6(key_form6(k), len) == k` whenever `k` is the key of a
/// `len` prefix): `key` in the first 32 bits, zeros after. The key of a
/// prefix of 32 bits or fewer is the prefix's first word, host bits clear,
/// so there this is the prefix itself.
#[inline]
pub fn key_form6(key: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(u32::from(key)) << 96)
}

impl Pipeline {
    /// The template part of a bulk copy (worker 0; the others have none):
    /// reports the live templates of the next `budget` slots of the shared
    /// table. `false` while it is not done (paused on a full out queue, or
    /// budget spent).
    pub(super) fn bulk_templates(&mut self, snap: &Snapshot, now_ms: u64, budget: usize) -> bool {
        if self.worker != 0 {
            return true;
        }
        let cap = self.persist().capacity();
        let end = (self.ha.bulk_tpl + budget).min(cap);
        while self.ha.bulk_tpl < end {
            if let Some(t) = self.persist().template_at(self.ha.bulk_tpl, now_ms) {
                if let Some(r) = template_record(snap, &t) {
                    if self.shared.ha.out[self.worker].is_full() {
                        return false; // paced by the HA thread: resume next loop
                    }
                    self.push_out(r);
                }
            }
            self.ha.bulk_tpl += 1;
        }
        self.ha.bulk_tpl >= cap
    }
}

/// The sync record of template `t` (its service and server by address and
/// port, as the scheduler's reports name them), `None` when this
/// configuration no longer has them.
fn template_record(snap: &Snapshot, t: &TemplateInfo) -> Option<Record> {
    let held = if t.holds > 0 { TEMPLATE_HOLD_MS } else { 0 };
    let timeout_ms = t.left_ms.max(held).min(u64::from(u32::MAX)) as u32;
    if let Some(svc) = snap.services.iter().find(|s| u32::from(s.id) == t.service) {
        let srv = svc.servers.iter().find(|s| s.shared.id == t.server_id)?;
        return Some(Record::Template(TemplateRecord {
            proto: svc.proto,
            vip: svc.vip,
            vport: svc.port,
            client_net: t.client_net,
            server: srv.addr,
            sport: srv.port,
            timeout_ms,
        }));
    }
    if let Some(svc) = snap
        .services64
        .iter()
        .find(|s| u32::from(s.id) == t.service)
    {
        // NAT64 (`persist64.rs`): the IPv4 server IPv4-mapped.
        let srv = svc.servers.iter().find(|s| s.shared.id == t.server_id)?;
        return Some(Record::Template6(Template6Record {
            proto: svc.proto,
            vip: svc.vip,
            vport: svc.port,
            prefix_len: svc.persistence_prefix,
            client_net: key_form6(t.client_net),
            server: srv.addr.to_ipv6_mapped(),
            sport: srv.port,
            timeout_ms,
        }));
    }
    let svc = snap
        .services6
        .iter()
        .find(|s| u32::from(s.id) == t.service)?;
    let srv = svc.servers.iter().find(|s| s.shared.id == t.server_id)?;
    Some(Record::Template6(Template6Record {
        proto: svc.proto,
        vip: svc.vip,
        vport: svc.port,
        prefix_len: svc.persistence_prefix,
        client_net: key_form6(t.client_net),
        server: srv.addr,
        sport: srv.port,
        timeout_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::pipeline::{client_net6, prefix6};

    #[test]
    fn the_key_form_of_a_prefix_has_its_key() {
        let addrs: [Ipv6Addr; 3] = [
            "2001:db8:100:1:aaaa:bbbb:cccc:dddd".parse().unwrap(),
            "fe80::1".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
        ];
        for a in addrs {
            for len in 0..=128u8 {
                let key = client_net6(a, len);
                let form = key_form6(key);
                assert_eq!(client_net6(form, len), key, "{a}/{len}");
                if len <= 32 {
                    assert_eq!(form, prefix6(a, len), "{a}/{len}: the prefix itself");
                }
            }
        }
        let a: Ipv6Addr = "2001:db8:100:1::10".parse().unwrap();
        // 0x2001_0db8 ^ 0x0100_0001
        assert_eq!(
            key_form6(client_net6(a, 64)),
            "2101:db9::".parse::<Ipv6Addr>().unwrap()
        );
    }
}
