//! engine::control::templates6: `rvs ctl list --conns` lists the
//! persistence templates of IPv6 services with `[addr]:port` endpoints.
//! The template table keys them by the fold of the client prefix, so an
//! entry shows the prefix of a listed connection that folds to its key, or
//! `::` and says the prefix is not known; the prefix length and the fold
//! always. IPv4 templates are not its business; the limit counts and
//! truncates as for connections.
#![cfg(feature = "dpdk")]

use std::net::{IpAddr, Ipv6Addr};

use engine::config;
use engine::control::ctl_proto::{ConnInfo, ConnsView, TemplatePrefix6};
use engine::control::{format, templates6};
use engine::dataplane::pipeline::client_net6;
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use engine::sched::persist::PersistTable;

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_null0"
address = ["198.18.0.2/24", "2001:db8:100::2/48"]

[[port]]
name = "servers"
device = "net_null1"
address = ["198.19.0.2/24", "2001:db8:0:2::2/64"]

[[service]]
vip = "2001:db8:100::100"
port = 443
persistence_timeout = 300
persistence_prefix = 64
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8443
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8443

[[service]]
vip = "198.18.0.100"
port = 80
persistence_timeout = 300
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
"#;

const C1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 0x10);
const C1B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 0x20);
const C2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 2, 0, 0, 0, 0x10);

fn snapshot() -> (std::sync::Arc<Shared>, Snapshot) {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr([2, 0, 0, 0, 0, 2])),
        PortInfo::new(&cfg.ports[1], MacAddr([2, 0, 0, 0, 1, 1])),
    ];
    let shared = std::sync::Arc::new(Shared::new(1));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    (shared, snap)
}

/// A connection of C1B (C1's /64) on rs2, as the workers' dump lists it.
fn listed_conn() -> ConnInfo {
    ConnInfo {
        protocol: "tcp".into(),
        client: C1B.into(),
        cport: 40020,
        vip: "2001:db8:100::100".parse().unwrap(),
        vport: 443,
        server: "2001:db8:0:2::12".parse().unwrap(),
        sport: 8443,
        state: "ESTABLISHED".into(),
        expires_ms: 900_000,
        forward: "nat".into(),
        worker: 0,
        template: false,
        synced: true,
        local: None,
        prefix6: None,
    }
}

#[test]
fn ipv6_templates_are_listed_with_what_is_known_of_their_prefix() {
    let (_shared, snap) = snapshot();
    let s6 = &snap.services6[0];
    let s4 = &snap.services[0];
    let persist = PersistTable::with_seed(1024, 7);
    let sid6 = u32::from(s6.id);
    persist.insert(
        sid6,
        client_net6(C1, 64),
        s6.servers[1].shared.id,
        1_000,
        300_000,
    );
    persist.insert(
        sid6,
        client_net6(C2, 64),
        s6.servers[0].shared.id,
        1_000,
        300_000,
    );
    // An IPv4 template: listed by the IPv4 code, not here.
    persist.insert(
        u32::from(s4.id),
        "198.18.0.0".parse().unwrap(),
        s4.servers[0].shared.id,
        1_000,
        300_000,
    );
    let all = persist.templates(1_000);
    assert_eq!(all.len(), 3);

    let mut view = ConnsView {
        total: 1,
        truncated: false,
        missing_workers: vec![],
        conns: vec![listed_conn()],
    };
    templates6::add(&mut view, &snap, &all, 100);
    assert_eq!(
        (view.total, view.conns.len(), view.truncated),
        (3, 3, false)
    );
    view.conns.sort_by(|a, b| {
        (a.vip, a.vport, a.client, a.cport).cmp(&(b.vip, b.vport, b.client, b.cport))
    });
    let t: Vec<&ConnInfo> = view.conns.iter().filter(|c| c.template).collect();
    assert_eq!(t.len(), 2);
    // C2's /64: no connection of it listed, so only its fold is known.
    assert_eq!(t[0].client, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(
        t[0].prefix6,
        Some(TemplatePrefix6 {
            len: 64,
            // 0x20010db8 ^ 0x01000002
            fold: 0x2101_0dba,
            known: false,
        })
    );
    assert_eq!(t[0].server, "2001:db8:0:2::11".parse::<IpAddr>().unwrap());
    // C1's /64: C1B's connection folds to its key.
    assert_eq!(t[1].client, "2001:db8:100:1::".parse::<IpAddr>().unwrap());
    assert_eq!(
        t[1].prefix6,
        Some(TemplatePrefix6 {
            len: 64,
            fold: 0x2101_0db9,
            known: true,
        })
    );
    assert_eq!(
        (t[1].cport, t[1].sport, t[1].expires_ms, t[1].state.as_str()),
        (0, 8443, 300_000, "NONE")
    );

    let text = format::conns(&view);
    let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 05:00  NONE        [::]:0             [2001:db8:100::100]:443 [2001:db8:0:2::11]:8443 prefix /64 fold 0x21010dba (prefix not known: no connection of it listed)
TCP 05:00  NONE        [2001:db8:100:1::]:0 [2001:db8:100::100]:443 [2001:db8:0:2::12]:8443 prefix /64 fold 0x21010db9
TCP 15:00  ESTABLISHED [2001:db8:100:1::20]:40020 [2001:db8:100::100]:443 [2001:db8:0:2::12]:8443
";
    assert_eq!(text, want);

    // --json: the key's parts under `prefix6`; absent on a connection.
    let j = serde_json::to_value(&view).unwrap();
    assert_eq!(
        j["conns"][1]["prefix6"],
        serde_json::json!({"len": 64, "fold": 0x2101_0db9u32, "known": true})
    );
    assert_eq!(j["conns"][1]["client"], "2001:db8:100:1::");
    assert!(j["conns"][2].get("prefix6").is_none());
    let back: ConnsView = serde_json::from_value(j).unwrap();
    assert_eq!(back, view);
}

#[test]
fn ipv6_templates_past_the_limit_are_counted_not_listed() {
    let (_shared, snap) = snapshot();
    let s6 = &snap.services6[0];
    let persist = PersistTable::with_seed(1024, 7);
    for (i, c) in [C1, C2].into_iter().enumerate() {
        persist.insert(
            u32::from(s6.id),
            client_net6(c, 64),
            s6.servers[i].shared.id,
            1_000,
            300_000,
        );
    }
    let mut view = ConnsView {
        total: 1,
        truncated: false,
        missing_workers: vec![],
        conns: vec![listed_conn()],
    };
    templates6::add(&mut view, &snap, &persist.templates(1_000), 2);
    assert_eq!((view.total, view.conns.len(), view.truncated), (3, 2, true));
}
