//! Scheduler state across configuration snapshots (issue 12, items 3 and 4):
//! a snapshot rebuilt for a change elsewhere keeps a service's rr/wrr cursor
//! and lblc cache; a change to the service's own server list restarts it
//! (SPEC §6); and a server whose upper threshold is removed is no longer
//! excluded as overloaded.

use std::net::Ipv4Addr;

use engine::config::{self, Config, ServerConfig, ServiceConfig};
use engine::dataplane::snapshot::{
    AllUp, DestRegistry, Health, HealthView, LiveDests, Server, Snapshot,
};
use engine::sched::SchedInput;

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = "198.19.0.1/24"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "wrr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 4
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.13"
  port = 8080
  weight = 2

[[service]]
vip = "198.18.0.100"
port = 443
protocol = "tcp"
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8443
  [[service.server]]
  address = "198.19.0.12"
  port = 8443
  [[service.server]]
  address = "198.19.0.13"
  port = 8443

[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "lblc"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
  [[service.server]]
  address = "198.19.0.12"
  port = 5353
"#;

fn cfg() -> Config {
    config::parse(CFG).expect("config")
}

fn input(dst: [u8; 4]) -> SchedInput {
    SchedInput {
        src_ip: Ipv4Addr::new(198, 18, 0, 10),
        src_port: 40000,
        dst_ip: Ipv4Addr::from(dst),
        dst_port: 80,
        now_ms: 1000,
    }
}

/// `n` picks of service `si` as letters (A = its first server, `-` = none).
fn picks(snap: &Snapshot, si: usize, n: usize) -> String {
    let svc = &snap.services[si];
    (0..n)
        .map(|_| {
            svc.sched
                .schedule(&LiveDests(&svc.servers), &input([198, 18, 0, 100]))
                .map_or('-', |i| (b'A' + i as u8) as char)
        })
        .collect()
}

fn overloaded(s: &Server) -> bool {
    s.shared
        .overloaded
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn build(c: &Config, reg: &DestRegistry, generation: u64, health: &dyn HealthView) -> Snapshot {
    Snapshot::build(c, &[], reg, generation, health).unwrap()
}

/// Every server up except `down` (service index, server index).
struct DownOne(usize, usize);

impl HealthView for DownOne {
    fn health(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Health {
        let c = cfg();
        let s = &c.services[self.0];
        if svc.vip == s.vip && svc.port == s.port && srv.address == s.servers[self.1].address {
            Health::Down
        } else {
            Health::Up
        }
    }
}

#[test]
fn wrr_cycle_continues_across_a_snapshot_for_another_service() {
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    let s1 = build(&c, &reg, 1, &AllUp);
    // Weights 4,3,2: the cycle is A A B A B C A B C.
    assert_eq!(picks(&s1, 0, 3), "AAB");
    // Another service's weight changes: this service's cycle goes on.
    c.services[1].servers[0].weight = 5;
    let s2 = build(&c, &reg, 2, &AllUp);
    assert_eq!(picks(&s2, 0, 6), "ABCABC");
    // A health flap elsewhere (the rr service's server down, then up):
    // the next cycle goes on too.
    let s3 = build(&c, &reg, 3, &DownOne(1, 2));
    assert_eq!(picks(&s3, 0, 2), "AA");
    let s4 = build(&c, &reg, 4, &AllUp);
    assert_eq!(picks(&s4, 0, 4), "BABC");
}

#[test]
fn a_change_to_the_server_list_restarts_the_wrr_cycle() {
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    let s1 = build(&c, &reg, 1, &AllUp);
    assert_eq!(picks(&s1, 0, 6), "AABABC");
    // Weight of C 2 -> 1 (4,3,1: A A B A B A B C): the cycle restarts.
    c.services[0].servers[2].weight = 1;
    let s2 = build(&c, &reg, 2, &AllUp);
    assert_eq!(picks(&s2, 0, 8), "AABABABC");
    assert_eq!(picks(&s2, 0, 2), "AA");
    // Its own server going down (usable flag) restarts it too: 4,3 over A, B.
    let s3 = build(&c, &reg, 3, &DownOne(0, 2));
    assert_eq!(picks(&s3, 0, 7), "AABABAB");
    // ... and coming back.
    let s4 = build(&c, &reg, 4, &AllUp);
    assert_eq!(picks(&s4, 0, 3), "AAB");
    // Unchanged since s4: the cycle goes on.
    let s5 = build(&c, &reg, 5, &AllUp);
    assert_eq!(picks(&s5, 0, 5), "ABABC");
}

#[test]
fn rr_cursor_and_lblc_cache_survive_an_unrelated_snapshot() {
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    let s1 = build(&c, &reg, 1, &AllUp);
    assert_eq!(picks(&s1, 1, 2), "AB");
    // lblc: the destination 198.18.0.100 is cached on its first pick (A:
    // all idle, the earlier wins).
    assert_eq!(picks(&s1, 2, 1), "A");
    c.services[0].servers[0].weight = 7;
    let s2 = build(&c, &reg, 2, &AllUp);
    assert_eq!(picks(&s2, 1, 3), "CAB");
    // The cached entry is still there: A again, although wlc would now
    // pick B (A has one more inactive connection than B).
    s2.services[2].servers[0].shared.per_worker[0]
        .inactive
        .inc();
    assert_eq!(picks(&s2, 2, 1), "A");
    // The lblc service's own list changes (a weight): cache starts empty,
    // wlc picks B.
    c.services[2].servers[0].weight = 2;
    let s3 = build(&c, &reg, 3, &AllUp);
    assert_eq!(picks(&s3, 2, 1), "B");
}

#[test]
fn a_scheduler_of_a_deleted_and_re_added_service_starts_afresh() {
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    let s1 = build(&c, &reg, 1, &AllUp);
    assert_eq!(picks(&s1, 0, 3), "AAB");
    let wrr = c.services.remove(0);
    let s2 = build(&c, &reg, 2, &AllUp);
    assert_eq!(s2.services.len(), 2);
    c.services.insert(0, wrr);
    let s3 = build(&c, &reg, 3, &AllUp);
    assert_eq!(picks(&s3, 0, 3), "AAB");
}

// ---------------------------------------------------------------- overload

#[test]
fn removing_the_upper_threshold_ends_the_overload() {
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    c.services[1].servers[0].upper_threshold = 2;
    let s1 = build(&c, &reg, 1, &AllUp);
    let a = &s1.services[1].servers[0];
    a.shared.per_worker[0].active.inc();
    a.shared.per_worker[0].active.inc();
    a.update_overload();
    assert!(overloaded(a));
    assert_eq!(picks(&s1, 1, 3), "BCB");
    // The threshold is removed: A is no longer overloaded, at once (its
    // counts have not changed since).
    c.services[1].servers[0].upper_threshold = 0;
    let s2 = build(&c, &reg, 2, &AllUp);
    let a = &s2.services[1].servers[0];
    assert!(!overloaded(a));
    assert!(picks(&s2, 1, 3).contains('A'));
    // A count change with no threshold leaves it clear.
    a.shared.per_worker[0].active.inc();
    a.update_overload();
    assert!(!overloaded(a));
}

#[test]
fn update_overload_clears_the_flag_when_there_is_no_threshold() {
    // A worker still on the old snapshot may set the flag after the new one
    // was built; the first count change under the new snapshot clears it.
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    c.services[1].servers[0].upper_threshold = 1;
    let s1 = build(&c, &reg, 1, &AllUp);
    c.services[1].servers[0].upper_threshold = 0;
    let s2 = build(&c, &reg, 2, &AllUp);
    let (old, new) = (&s1.services[1].servers[0], &s2.services[1].servers[0]);
    old.shared.per_worker[0].inactive.inc();
    old.update_overload();
    assert!(overloaded(old));
    new.shared.per_worker[0].inactive.dec();
    new.update_overload();
    assert!(!overloaded(new));
}

#[test]
fn raising_the_upper_threshold_clears_the_overload_as_ipvs_does() {
    let reg = DestRegistry::new(1);
    let mut c = cfg();
    c.services[1].servers[0].upper_threshold = 4;
    let s1 = build(&c, &reg, 1, &AllUp);
    let a = &s1.services[1].servers[0];
    for _ in 0..4 {
        a.shared.per_worker[0].inactive.inc();
    }
    a.update_overload();
    assert!(overloaded(a));
    // 4 -> 5 (`__ip_vs_update_dest`: a raised threshold clears the flag).
    c.services[1].servers[0].upper_threshold = 5;
    let s2 = build(&c, &reg, 2, &AllUp);
    assert!(!overloaded(&s2.services[1].servers[0]));
    // Lowered to 3 with 4 connections: overloaded at once.
    c.services[1].servers[0].upper_threshold = 3;
    let s3 = build(&c, &reg, 3, &AllUp);
    assert!(overloaded(&s3.services[1].servers[0]));
}
