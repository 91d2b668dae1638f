//! Service and server counters as `rvs ctl list` shows them: totals over
//! the workers' single-writer counters, less the baseline of the last
//! `rvs ctl zero`, and per-second rates.
//!
//! `zero` never writes a worker's counters (only their worker does): it
//! records the current totals as a baseline that is subtracted when
//! reporting. Rates are the difference between two samples the control
//! thread takes about once a second, divided by the time between them
//! (IPVS smooths its estimates; rvs shows the last second as it was).
//! The Prometheus endpoint exports the raw totals, which never go back.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use super::ctl_proto::{ListView, Rates, ServerView, ServiceView, TimeoutsView};
use super::HealthSource;
use crate::config::Config;
use crate::dataplane::snapshot::{proto_of, DestRegistry, DestShared, Snapshot};

/// A server's (or service's) traffic counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Counts {
    /// Totals over workers.
    pub fn of(d: &DestShared) -> Counts {
        Counts {
            conns: d.total(|c| &c.conns),
            in_packets: d.total(|c| &c.in_packets),
            out_packets: d.total(|c| &c.out_packets),
            in_bytes: d.total(|c| &c.in_bytes),
            out_bytes: d.total(|c| &c.out_bytes),
        }
    }

    pub fn since(self, base: Counts) -> Counts {
        Counts {
            conns: self.conns.saturating_sub(base.conns),
            in_packets: self.in_packets.saturating_sub(base.in_packets),
            out_packets: self.out_packets.saturating_sub(base.out_packets),
            in_bytes: self.in_bytes.saturating_sub(base.in_bytes),
            out_bytes: self.out_bytes.saturating_sub(base.out_bytes),
        }
    }

    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            conns: self.conns.wrapping_add(o.conns),
            in_packets: self.in_packets.wrapping_add(o.in_packets),
            out_packets: self.out_packets.wrapping_add(o.out_packets),
            in_bytes: self.in_bytes.wrapping_add(o.in_bytes),
            out_bytes: self.out_bytes.wrapping_add(o.out_bytes),
        }
    }

    /// Per-second rates from `prev` to `self` over `ms` milliseconds.
    pub fn rate_since(self, prev: Counts, ms: u64) -> Rates {
        let d = self.since(prev);
        let per_s = |n: u64| (n as u128 * 1000 / ms.max(1) as u128) as u64;
        Rates {
            cps: per_s(d.conns),
            in_pps: per_s(d.in_packets),
            out_pps: per_s(d.out_packets),
            in_bps: per_s(d.in_bytes),
            out_bps: per_s(d.out_bytes),
        }
    }
}

/// A sample of the counters: when, per server id, per service id.
type Sample = (Instant, HashMap<u32, Counts>, HashMap<u16, Counts>);

/// Baselines and rates, owned by the controller.
#[derive(Default)]
pub struct Stats {
    /// Server id -> totals at the last `zero`.
    baseline: HashMap<u32, Counts>,
    /// The previous sample: when, per server id, per service id.
    sample: Option<Sample>,
    rates: HashMap<u32, Rates>,
    svc_rates: HashMap<u16, Rates>,
}

impl Stats {
    /// `rvs ctl zero`: from now on every server (those since removed too,
    /// should they come back) counts from 0.
    pub fn zero(&mut self, registry: &DestRegistry) {
        for (_, _, _, d) in registry.entries() {
            self.baseline.insert(d.id, Counts::of(&d));
        }
    }

    /// `rvs ctl zero --service`: the servers of service `svc` (snapshot
    /// service id; those since removed too) count from 0, and so does the
    /// service, their sum. Returns how many servers were zeroed.
    pub fn zero_service(&mut self, registry: &DestRegistry, svc: u16) -> usize {
        let mut n = 0;
        for (s, _, _, d) in registry.entries() {
            if s == svc {
                self.baseline.insert(d.id, Counts::of(&d));
                n += 1;
            }
        }
        n
    }

    /// A server's counters since the last `zero`.
    pub fn shown(&self, d: &DestShared) -> Counts {
        Counts::of(d).since(self.baseline.get(&d.id).copied().unwrap_or_default())
    }

    /// Takes a sample; with the previous one, computes the rates.
    pub fn sample(&mut self, registry: &DestRegistry, now: Instant) {
        let mut dests = HashMap::new();
        let mut svcs: HashMap<u16, Counts> = HashMap::new();
        for (svc, _, _, d) in registry.entries() {
            let c = Counts::of(&d);
            dests.insert(d.id, c);
            let e = svcs.entry(svc).or_default();
            *e = e.plus(c);
        }
        if let Some((then, prev, prev_svcs)) = &self.sample {
            let ms = now.saturating_duration_since(*then).as_millis() as u64;
            self.rates = dests
                .iter()
                .map(|(id, c)| {
                    let p = prev.get(id).copied().unwrap_or(*c);
                    (*id, c.rate_since(p, ms))
                })
                .collect();
            self.svc_rates = svcs
                .iter()
                .map(|(id, c)| {
                    let p = prev_svcs.get(id).copied().unwrap_or(*c);
                    (*id, c.rate_since(p, ms))
                })
                .collect();
        }
        self.sample = Some((now, dests, svcs));
    }

    /// The `list` view of `cfg` (which `snap` was built from).
    pub fn list_view(
        &self,
        cfg: &Config,
        snap: &Snapshot,
        registry: &DestRegistry,
        health: &dyn HealthSource,
    ) -> ListView {
        let entries = registry.entries();
        let mut services = Vec::with_capacity(cfg.services.len());
        for sc in &cfg.services {
            let proto = proto_of(sc.protocol);
            let ss = snap
                .services
                .iter()
                .find(|s| s.proto == proto && s.vip == sc.vip && s.port == sc.port);
            let mut sv = ServiceView {
                protocol: sc.protocol.name().to_string(),
                vip: sc.vip,
                port: sc.port,
                ports: sc.ports.clone(),
                scheduler: sc.scheduler.name().to_string(),
                flags: sc
                    .sched_flags
                    .names()
                    .into_iter()
                    .map(String::from)
                    .collect(),
                forward: sc.forward.name().to_string(),
                persistence: sc.persistence_timeout,
                persistence_netmask: sc.persistence_netmask,
                persistence_prefix: sc.persistence_prefix,
                sorry_server: sc.sorry_server.map(|a| a.to_string()),
                quorum: sc.quorum,
                ops: sc.ops,
                ..ServiceView::default()
            };
            // A forwarded IPv6 service lives in `services6`.
            let ss6 = snap
                .services6
                .iter()
                .find(|s| s.proto == proto && sc.vip == s.vip && s.port == sc.port);
            // A NAT64 service (IPv6 VIP, IPv4 servers) in `services64`.
            let ss64 = snap
                .services64
                .iter()
                .find(|s| s.proto == proto && sc.vip == s.vip && s.port == sc.port);
            let live_id = ss
                .map(|s| s.id)
                .or(ss6.map(|s| s.id))
                .or(ss64.map(|s| s.id));
            if let Some(live_id) = live_id {
                let mut total = Counts::default();
                for (svc, _, _, d) in &entries {
                    if *svc == live_id {
                        total = total.plus(self.shown(d));
                    }
                }
                sv.conns = total.conns;
                sv.in_packets = total.in_packets;
                sv.out_packets = total.out_packets;
                sv.in_bytes = total.in_bytes;
                sv.out_bytes = total.out_bytes;
                sv.rate = self.svc_rates.get(&live_id).copied().unwrap_or_default();
            }
            for srv in &sc.servers {
                let port = srv.effective_port(sc);
                let live = ss
                    .and_then(|ss| {
                        ss.servers
                            .iter()
                            .find(|s| s.addr == srv.address && s.port == port)
                            .map(|s| (s.usable, s.weight, &s.shared))
                    })
                    .or_else(|| {
                        ss6?.servers
                            .iter()
                            .find(|s| srv.address == s.addr && s.port == port)
                            .map(|s| (s.usable, s.weight, &s.shared))
                    })
                    .or_else(|| {
                        ss64?
                            .servers
                            .iter()
                            .find(|s| srv.address == s.addr && s.port == port)
                            .map(|s| (s.usable, s.weight, &s.shared))
                    });
                let h = health.status(sc, srv);
                let mut v = ServerView {
                    address: srv.address,
                    port,
                    forward: srv.effective_forward(sc).name().to_string(),
                    weight: srv.weight,
                    effective_weight: srv.weight,
                    up: true,
                    health: h.state.to_string(),
                    upper_threshold: srv.upper_threshold,
                    lower_threshold: srv.lower_threshold,
                    ..ServerView::default()
                };
                if let Some((usable, weight, shared)) = live {
                    let c = self.shown(shared);
                    // A server out of the pool (health check, `remove`) takes
                    // no connections: its weight in the pool is 0.
                    v.effective_weight = if usable { weight } else { 0 };
                    v.up = usable;
                    v.overloaded = shared.overloaded.load(std::sync::atomic::Ordering::Relaxed);
                    v.active = u64::from(shared.active());
                    v.inactive = u64::from(shared.inactive());
                    v.conns = c.conns;
                    v.in_packets = c.in_packets;
                    v.out_packets = c.out_packets;
                    v.in_bytes = c.in_bytes;
                    v.out_bytes = c.out_bytes;
                    v.rate = self.rates.get(&shared.id).copied().unwrap_or_default();
                }
                sv.active += v.active;
                sv.inactive += v.inactive;
                sv.servers.push(v);
            }
            services.push(sv);
        }
        ListView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            size: u64::from(cfg.timeouts.max_connections),
            generation: snap.generation,
            timeouts: TimeoutsView {
                tcp: cfg.timeouts.tcp_established,
                tcpfin: cfg.timeouts.tcp_fin,
                udp: cfg.timeouts.udp,
            },
            services,
        }
    }
}

/// Fills each server's `persistent_conns` (ipvsadm's `PersistConn`) from
/// `per_server`: live persistence templates per server id (the registry's
/// [`DestShared::id`], as a template stores it). `view` is of `snap`.
pub fn fill_persistent(view: &mut ListView, snap: &Snapshot, per_server: &HashMap<u32, u64>) {
    for sv in &mut view.services {
        let Some(ss) = snap
            .services
            .iter()
            .find(|s| s.vip == sv.vip && s.port == sv.port && proto_name(s.proto) == sv.protocol)
        else {
            continue;
        };
        for v in &mut sv.servers {
            if let Some(s) = ss
                .servers
                .iter()
                .find(|s| s.addr == v.address && s.port == v.port)
            {
                v.persistent_conns = per_server.get(&s.shared.id).copied().unwrap_or(0);
            }
        }
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        crate::conn::PROTO_TCP => "tcp",
        crate::conn::PROTO_UDP => "udp",
        _ => "?",
    }
}

/// Finds the registry entry of a server (for tests and tools).
pub fn find_entry(
    registry: &DestRegistry,
    addr: Ipv4Addr,
    port: u16,
) -> Option<std::sync::Arc<DestShared>> {
    registry
        .entries()
        .into_iter()
        .find(|e| e.1 == addr && e.2 == port)
        .map(|e| e.3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::NoHealthChecks;
    use crate::dataplane::snapshot::{AllUp, Snapshot};

    const CFG: &str = r#"
[dpdk]
cores = "0-2"
workers = 2
[[port]]
name = "client"
device = "net_null0"
address = "198.18.0.2/24"
[[port]]
name = "servers"
device = "net_null1"
address = "198.19.0.1/24"
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "wrr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  weight = 0
"#;

    fn bump(d: &DestShared, w: usize, conns: u64, pk: u64) {
        let c = &d.per_worker[w];
        c.conns.add(conns);
        c.in_packets.add(pk);
        c.out_packets.add(pk * 2);
        c.in_bytes.add(pk * 100);
        c.out_bytes.add(pk * 1000);
    }

    #[test]
    fn zero_is_a_baseline_and_counts_go_on() {
        let cfg = crate::config::parse(CFG).unwrap();
        let reg = DestRegistry::new(2);
        let snap = Snapshot::build(&cfg, &[], &reg, 1, &AllUp).unwrap();
        let a = snap.services[0].servers[0].shared.clone();
        let b = snap.services[0].servers[1].shared.clone();
        bump(&a, 0, 5, 10);
        bump(&a, 1, 2, 4);
        bump(&b, 1, 1, 1);
        a.per_worker[0].active.add(3);
        a.per_worker[1].inactive.add(2);

        let mut st = Stats::default();
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        let s = &v.services[0];
        assert_eq!(s.key(), "tcp:198.18.0.100:80");
        assert_eq!((s.servers[0].conns, s.servers[0].in_packets), (7, 14));
        assert_eq!(s.servers[0].out_bytes, 14_000);
        assert_eq!((s.servers[0].active, s.servers[0].inactive), (3, 2));
        assert_eq!((s.servers[1].conns, s.servers[1].weight), (1, 0));
        assert_eq!((s.conns, s.in_packets, s.out_packets), (8, 15, 30));
        assert_eq!((s.active, s.inactive), (3, 2));
        assert_eq!(s.servers[0].health, "no-check");

        st.zero(&reg);
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        assert_eq!(v.services[0].conns, 0);
        assert_eq!(v.services[0].servers[0].in_bytes, 0);
        // gauges are not zeroed
        assert_eq!(v.services[0].servers[0].active, 3);
        // the workers' own counters were not touched
        assert_eq!(Counts::of(&a).conns, 7);

        bump(&a, 1, 1, 3);
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        assert_eq!(v.services[0].servers[0].conns, 1);
        assert_eq!(v.services[0].servers[0].in_packets, 3);
        assert_eq!(v.services[0].conns, 1);
    }

    #[test]
    fn service_counts_keep_removed_servers_and_survive_snapshots() {
        let cfg = crate::config::parse(CFG).unwrap();
        let reg = DestRegistry::new(2);
        let snap = Snapshot::build(&cfg, &[], &reg, 1, &AllUp).unwrap();
        bump(&snap.services[0].servers[1].shared, 0, 4, 4);
        bump(&snap.services[0].servers[0].shared, 0, 1, 1);
        let mut cfg2 = cfg.clone();
        cfg2.services[0].servers.remove(1);
        let snap2 = Snapshot::build(&cfg2, &[], &reg, 2, &AllUp).unwrap();
        let st = Stats::default();
        let v = st.list_view(&cfg2, &snap2, &reg, &NoHealthChecks);
        assert_eq!(v.generation, 2);
        assert_eq!(v.services[0].servers.len(), 1);
        assert_eq!(v.services[0].servers[0].conns, 1);
        assert_eq!(v.services[0].conns, 5);
    }

    #[test]
    fn rates_are_per_second() {
        let cfg = crate::config::parse(CFG).unwrap();
        let reg = DestRegistry::new(2);
        let snap = Snapshot::build(&cfg, &[], &reg, 1, &AllUp).unwrap();
        let a = snap.services[0].servers[0].shared.clone();
        let mut st = Stats::default();
        let t0 = Instant::now();
        st.sample(&reg, t0);
        bump(&a, 0, 10, 100);
        st.sample(&reg, t0 + std::time::Duration::from_millis(500));
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        let r = v.services[0].servers[0].rate;
        assert_eq!(
            r,
            Rates {
                cps: 20,
                in_pps: 200,
                out_pps: 400,
                in_bps: 20_000,
                out_bps: 200_000
            }
        );
        assert_eq!(v.services[0].rate, r);
        // zero does not disturb rates
        st.zero(&reg);
        st.sample(&reg, t0 + std::time::Duration::from_millis(1500));
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        assert_eq!(v.services[0].servers[0].rate, Rates::default());
        assert!(find_entry(&reg, "198.19.0.11".parse().unwrap(), 8080).is_some());
    }

    #[test]
    fn zero_of_one_service_leaves_the_others() {
        let text = format!(
            "{CFG}[[service]]\nvip = \"198.18.0.100\"\nport = 53\nprotocol = \"udp\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n  port = 5353\n"
        );
        let cfg = crate::config::parse(&text).unwrap();
        let reg = DestRegistry::new(2);
        let snap = Snapshot::build(&cfg, &[], &reg, 1, &AllUp).unwrap();
        bump(&snap.services[0].servers[0].shared, 0, 5, 10);
        bump(&snap.services[1].servers[0].shared, 1, 3, 3);
        let mut st = Stats::default();
        assert_eq!(st.zero_service(&reg, snap.services[1].id), 1);
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        assert_eq!(
            (v.services[0].conns, v.services[0].servers[0].conns),
            (5, 5)
        );
        assert_eq!(
            (v.services[1].conns, v.services[1].servers[0].in_bytes),
            (0, 0)
        );
        assert_eq!(
            v.timeouts,
            TimeoutsView {
                tcp: 900,
                tcpfin: 120,
                udp: 300
            }
        );
        bump(&snap.services[1].servers[0].shared, 0, 1, 2);
        let v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        assert_eq!(v.services[1].conns, 1);
        assert_eq!(v.services[0].conns, 5);
    }

    #[test]
    fn persistent_conns_go_to_their_server() {
        let cfg = crate::config::parse(CFG).unwrap();
        let reg = DestRegistry::new(2);
        let snap = Snapshot::build(&cfg, &[], &reg, 1, &AllUp).unwrap();
        let st = Stats::default();
        let mut v = st.list_view(&cfg, &snap, &reg, &NoHealthChecks);
        let id1 = snap.services[0].servers[1].shared.id;
        fill_persistent(&mut v, &snap, &[(id1, 4), (9999, 7)].into_iter().collect());
        let got: Vec<u64> = v.services[0]
            .servers
            .iter()
            .map(|s| s.persistent_conns)
            .collect();
        assert_eq!(got, [0, 4]);
    }
}
