//! What `rvs ctl list`, `zero` and `status` show: the counters and health
//! of the configuration in force, the workers' figures, persistence
//! templates counted per server.

use std::sync::atomic::Ordering::Relaxed;

use super::ctl_proto::{self, ServerHealthView, ServiceHealthView, StatusView, WorkerView};
use super::{metrics, stats, Controller};

impl Controller {
    /// `list [--service]`, persistence templates counted per server.
    pub(super) fn list(&self, service: Option<&str>) -> Result<ctl_proto::ListView, String> {
        let key = service.map(|s| self.known_service(s)).transpose()?;
        let snap = self.shared.snapshot.load();
        let mut view = self
            .stats
            .list_view(&self.cfg, &snap, &self.shared.registry, &*self.health);
        if let Some(k) = key {
            view.services
                .retain(|s| s.protocol == k.protocol.name() && s.vip == k.vip && s.port == k.port);
        }
        stats::fill_persistent(&mut view, &snap, &self.persistent_per_server());
        Ok(view)
    }

    /// Live persistence templates per server id. The template table is
    /// shared by the workers and read lock-free (seqlock), so the control
    /// thread counts it itself, one scan of its fixed slots (as `list
    /// --conns` lists templates); no worker does anything for it.
    pub(super) fn persistent_per_server(&self) -> std::collections::HashMap<u32, u64> {
        let mut out = std::collections::HashMap::new();
        // The workers' clock: read here when the EAL runs, else (tests) as
        // of the last `list --conns`.
        #[cfg(feature = "dpdk")]
        let now = crate::dataplane::eal::clock_ms().unwrap_or(0);
        #[cfg(not(feature = "dpdk"))]
        let now = 0;
        let now = now.max(self.shared.conn_dump.clock_ms());
        if now == 0 {
            return out;
        }
        for t in self.shared.persist.templates(now) {
            *out.entry(t.server_id).or_insert(0) += 1;
        }
        out
    }

    /// `zero [--service]`.
    pub(super) fn zero(&mut self, service: Option<&str>) -> Result<String, String> {
        let Some(text) = service else {
            self.stats.zero(&self.shared.registry);
            return Ok("counters zeroed".to_string());
        };
        let key = self.known_service(text)?;
        let snap = self.shared.snapshot.load();
        let proto = crate::dataplane::snapshot::proto_of(key.protocol);
        let n = snap
            .services
            .iter()
            .find(|s| s.proto == proto && s.vip == key.vip && s.port == key.port)
            .map_or(0, |s| self.stats.zero_service(&self.shared.registry, s.id));
        Ok(format!(
            "counters of {key} zeroed ({n} server(s), removed ones included)"
        ))
    }

    pub(super) fn status(&self) -> StatusView {
        let capacity = self.info.capacity_per_worker.load(Relaxed);
        let ha_view = self.ha.as_ref().map(|h| h.view());
        let workers = self
            .shared
            .worker_stats
            .iter()
            .enumerate()
            .map(|(id, w)| {
                let r = crate::dataplane::counters::StatsReport::sum([&**w]);
                WorkerView {
                    id,
                    rx_packets: r.rx_packets,
                    tx_packets: r.tx_packets,
                    handoffs_in: w.handoffs_in.get(),
                    handoffs_out: w.handoffs_out.get(),
                    conns_created: r.conns_created,
                    conns_expired: r.conns_expired,
                    conns_evicted: w.conns_evicted.get(),
                    rescued: r.rescued,
                    established_hits: w.established_hits.get(),
                    conns: r.conns,
                    capacity,
                    drops_total: r.drops_total,
                    drops: r.drops.into_iter().filter(|(_, n)| *n > 0).collect(),
                    cost: self.cost.view(id, w),
                    conn_memory: self.shared.conn_memory(id),
                }
            })
            .collect();
        let snap = self.shared.snapshot.load();
        let services = self
            .cfg
            .services
            .iter()
            .map(|sc| {
                let check = match &sc.health_check {
                    Some(hc) => hc.kind.name().to_string(),
                    None => "none".to_string(),
                };
                let live = snap.services.iter().find(|s| {
                    s.vip == sc.vip
                        && s.port == sc.port
                        && s.proto == crate::dataplane::snapshot::proto_of(sc.protocol)
                });
                ServiceHealthView {
                    service: sc.key(),
                    check,
                    servers: sc
                        .servers
                        .iter()
                        .map(|srv| {
                            let h = self.health.status(sc, srv);
                            let port = srv.effective_port(sc);
                            let s = live.and_then(|l| {
                                l.servers
                                    .iter()
                                    .find(|s| s.addr == srv.address && s.port == port)
                            });
                            ServerHealthView {
                                server: srv.ident(sc),
                                weight: s.map_or(srv.weight, |s| s.weight),
                                up: s.is_none_or(|s| s.usable),
                                health: h.state.to_string(),
                                detail: h.detail,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        StatusView {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.info.started.elapsed().as_secs(),
            config: self.path.display().to_string(),
            generation: self.generation,
            role: ha_view
                .as_ref()
                .map_or_else(|| "standalone".to_string(), |h| h.role.clone()),
            peer: ha_view
                .as_ref()
                .and_then(|h| h.master.filter(|_| h.role != "master"))
                .or_else(|| self.cfg.ha.as_ref().and_then(|h| h.peers.first().copied())),
            sync: if ha_view.as_ref().is_some_and(|h| h.sync) {
                "on".to_string()
            } else {
                "off".to_string()
            },
            ha: ha_view,
            bgp: self.bgp.as_ref().map(|b| b.view()),
            api_changes: self.info.api_changes.load(Relaxed),
            reloads_ok: self.info.reloads_ok.load(Relaxed),
            reloads_failed: self.info.reloads_failed.load(Relaxed),
            workers,
            services,
            mbufs: metrics::mbuf_pool(),
            ports: self.shared.port_stats(),
        }
    }
}
