//! The control thread: owns the configuration, turns every change into a new
//! immutable snapshot and publishes it to the workers (SPEC §2, §7).
//!
//! `Controller::tick` is called by the main lcore's loop every few
//! milliseconds; everything slow (sockets, health checks, mail) lives on
//! helper threads that talk to it through channels, so nothing here ever
//! blocks the data plane.
//!
//! - [`api`]: the `rvs ctl` Unix socket (protocol in its docs, types in
//!   [`ctl_proto`]); requests arrive here through a channel and are applied
//!   in `tick`, one at a time, between reloads.
//! - [`edit`]: a change is applied to a copy of the configuration and
//!   validated as `rvs check` validates, then published whole.
//! - [`stats`]: counters as `list` shows them (`zero` is a baseline, rates
//!   are sampled every second); [`metrics`]: the Prometheus endpoint.
//! - [`conns`]: `list --conns`, answered by the workers between bursts.
//!
//! A SIGHUP reload re-reads the file and replaces the running configuration
//! with it: changes made through the API since the file was loaded are
//! overridden (put them in the file to keep them). A file with errors
//! changes nothing; every error is logged.

pub mod api;
pub mod bgp;
pub mod conns;
pub mod cost;
pub mod ctl_proto;
pub mod edit;
pub mod format;
pub mod ha;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod stats;
pub mod templates6;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use self::api::{ApiServer, Call};
use self::ctl_proto::{
    ChangeResult, ConnInfo, ConnsView, Request, Response, ServerHealthView, ServiceHealthView,
    StatusView, WorkerView, DEFAULT_CONN_LIMIT,
};
use self::metrics::ControlInfo;
use self::stats::Stats;
use crate::config::{self, Config, HealthCheckKind, ServerConfig, ServiceConfig};
use crate::dataplane::snapshot::{AllUp, HealthView, PortInfo, Snapshot};
use crate::dataplane::Shared;

/// Requests applied per tick at most (the rest wait for the next tick).
const CALLS_PER_TICK: usize = 64;
/// How long `list --conns` waits for the workers.
const CONN_DUMP_WAIT: Duration = Duration::from_millis(500);
/// Largest `list --conns` answer.
const MAX_CONN_LIMIT: usize = 1_000_000;

/// What health checking says of one server, for `status` and `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthStatus {
    /// `no-check`, `unknown`, `up`, `down`, `inhibited`.
    pub state: &'static str,
    pub detail: String,
}

/// Server health as the controller sees it: the view snapshots are built
/// with, and what `rvs ctl status` reports. The health checker provides the
/// real one; [`NoHealthChecks`] stands in until it runs.
pub trait HealthSource: Send {
    fn view(&self) -> &dyn HealthView;
    fn status(&self, svc: &ServiceConfig, srv: &ServerConfig) -> HealthStatus;
    /// Brings the checks in line with `cfg` (servers added or removed,
    /// checks changed); called before every snapshot is built.
    fn sync(&mut self, _cfg: &Config) {}
    /// The changes of state (servers, quorums) since the last call; never
    /// blocks.
    fn poll(&mut self) -> Vec<notify::Event> {
        Vec::new()
    }
    /// The last check of a server, if it has one.
    fn last_check(&self, _svc: &ServiceConfig, _srv: &ServerConfig) -> Option<health::LastCheck> {
        None
    }
    /// Whether the pool changed without a change of state (a dynamic
    /// weight) since the last call: the snapshot is rebuilt.
    fn take_republish(&mut self) -> bool {
        false
    }
}

/// No health checking: every server is in the pool. Reports "no check
/// configured" where none is, and "unknown" (never a result it does not
/// have) where one is configured.
pub struct NoHealthChecks;

impl HealthSource for NoHealthChecks {
    fn view(&self) -> &dyn HealthView {
        &AllUp
    }

    fn status(&self, svc: &ServiceConfig, _: &ServerConfig) -> HealthStatus {
        match &svc.health_check {
            Some(hc) if hc.kind != HealthCheckKind::None => HealthStatus {
                state: "unknown",
                detail: format!("{} check configured but not running", hc.kind),
            },
            _ => HealthStatus {
                state: "no-check",
                detail: "no check configured".to_string(),
            },
        }
    }
}

/// A `list --conns` waiting for the workers.
struct PendingDump {
    req: u64,
    limit: usize,
    deadline: Instant,
    /// Where to answer, and the service (`--service`) each asker keeps.
    replies: Vec<(SyncSender<Response>, Option<edit::ServiceKey>)>,
}

/// Test fixtures: the `[dpdk]` section and the two ports (client side,
/// server side) that the control tests' configurations share.
#[cfg(test)]
macro_rules! two_port_director {
    () => {
        r#"[dpdk]
cores = "0-1"
[[port]]
name = "client"
device = "net_null0"
address = "198.18.0.2/24"
[[port]]
name = "servers"
device = "net_null1"
address = "198.19.0.1/24"
"#
    };
}
#[cfg(test)]
pub(crate) use two_port_director;

pub struct Controller {
    /// The configuration in force.
    pub cfg: Config,
    /// The file SIGHUP re-reads.
    pub path: PathBuf,
    pub shared: Arc<Shared>,
    pub ports: Vec<PortInfo>,
    generation: u64,
    health: Box<dyn HealthSource>,
    notifier: notify::Notifier,
    api: Option<ApiServer>,
    stats: Stats,
    /// Workers' busy share and cycles per frame (`status`).
    cost: cost::CostSampler,
    last_sample: Instant,
    dump: Option<PendingDump>,
    info: Arc<ControlInfo>,
    /// The HA thread (`[ha]`), once `serve` started it.
    ha: Option<ha::HaRuntime>,
    /// `[bgp]`: the announcements and the BIRD thread, once `serve`
    /// started them.
    bgp: Option<bgp::runtime::BgpRuntime>,
    /// What `rvs ctl` changed since the file was loaded or saved (the
    /// newest [`MAX_CHANGE_LOG`]), named when a reload replaces them.
    ctl_changes: Vec<String>,
}

/// Live changes a reload's warning names one by one.
const MAX_CHANGE_LOG: usize = 32;

impl Controller {
    /// Builds and publishes the first snapshot.
    pub fn new(
        cfg: Config,
        path: PathBuf,
        shared: Arc<Shared>,
        ports: Vec<PortInfo>,
    ) -> Result<Controller> {
        let workers = shared.workers.max(1) as u64;
        let capacity = u64::from(cfg.timeouts.max_connections).div_ceil(workers);
        let mut c = Controller {
            cfg,
            path,
            shared,
            ports,
            generation: 0,
            health: Box::new(NoHealthChecks),
            notifier: notify::Notifier::default(),
            api: None,
            stats: Stats::default(),
            cost: cost::CostSampler::default(),
            last_sample: Instant::now(),
            dump: None,
            info: Arc::new(ControlInfo::new(capacity)),
            ha: None,
            bgp: None,
            ctl_changes: Vec::new(),
        };
        c.publish()?;
        c.stats.sample(&c.shared.registry, Instant::now());
        c.cost
            .sample(c.shared.worker_stats.iter().map(|w| &**w), Instant::now());
        Ok(c)
    }

    /// Starts the API socket (`[control] socket`), the health checks and,
    /// if configured, the metrics endpoint (`[control] metrics`).
    pub fn serve(&mut self) -> Result<()> {
        self.api = Some(ApiServer::start(&self.cfg.control.socket)?);
        self.start_health()?;
        if self.cfg.ha.is_some() {
            let rt = ha::HaRuntime::start(&self.cfg, self.shared.clone())?;
            *self.info.ha.lock().unwrap_or_else(|e| e.into_inner()) = Some(rt.view.clone());
            self.ha = Some(rt);
        }
        if let Some(b) = &self.cfg.bgp {
            for w in self.cfg.warnings() {
                tracing::warn!("{w}");
            }
            let snap = self.shared.snapshot.load();
            let rt = bgp::runtime::BgpRuntime::start(
                b,
                &bgp::runtime::vip_inputs(&snap),
                self.ha_master(),
            )?;
            *self.info.bgp.lock().unwrap_or_else(|e| e.into_inner()) = Some(rt.metrics());
            self.bgp = Some(rt);
        }
        if let Some(addr) = self.cfg.control.metrics {
            metrics::start(addr, self.shared.clone(), self.info.clone())?;
        }
        Ok(())
    }

    /// With `[ha]`: whether this director is master now.
    fn ha_master(&self) -> Option<bool> {
        self.ha.as_ref().map(|h| h.view().role == "master")
    }

    /// Re-evaluates the `[bgp]` announcements (health, role, operator).
    fn poll_bgp(&mut self, force: bool) {
        let master = self.ha_master();
        let Some(rt) = &mut self.bgp else { return };
        if !force && rt.last_poll.elapsed() < bgp::runtime::POLL {
            return;
        }
        let snap = self.shared.snapshot.load();
        if rt.update(&bgp::runtime::vip_inputs(&snap), master) || force {
            *self.info.bgp.lock().unwrap_or_else(|e| e.into_inner()) = Some(rt.metrics());
        }
    }

    /// SIGTERM/SIGINT with `[bgp]`: withdraws every VIP (`withdraw_on`
    /// "shutdown") and waits (at most 2 s) for BIRD to take it. Returns the
    /// grace time the router needs to move the flows away, to be spent
    /// forwarding before the drain; `None` when nothing was withdrawn.
    pub fn shutdown_bgp(&mut self) -> Option<Duration> {
        let rt = self.bgp.as_mut()?;
        if !rt.announcer.shutdown() {
            return None;
        }
        self.poll_bgp(true);
        let rt = self.bgp.as_ref()?;
        if rt.wait_applied(Duration::from_secs(2)) {
            tracing::info!("bgp: every VIP withdrawn; BIRD reconfigured");
        } else {
            tracing::warn!(
                "bgp: BIRD did not take the withdrawal within 2 s; the routes stay until its BGP sessions drop"
            );
        }
        Some(rt.shutdown_grace())
    }

    /// `rvs ctl bgp withdraw/announce`.
    fn bgp_command(&mut self, service: &str, withdraw: bool) -> Result<String, String> {
        let key = edit::parse_service(service)?;
        let Some(rt) = &mut self.bgp else {
            return Err("bgp: no [bgp] section: this director announces nothing".to_string());
        };
        if !self.cfg.services.iter().any(|s| key.matches(s)) {
            return Err(format!("service: no service {key}"));
        }
        let std::net::IpAddr::V4(vip) = key.vip else {
            return Err(format!(
                "bgp: {key}: IPv6 VIPs are not announced through BIRD yet"
            ));
        };
        let msg = if withdraw {
            if rt.announcer.operator_withdraw(vip) {
                format!("bgp: {vip} withdrawn by the operator (until rvs ctl bgp announce)")
            } else {
                format!("bgp: {vip} was already withdrawn by the operator")
            }
        } else if rt.announcer.operator_announce(vip) {
            format!("bgp: the operator's withdrawal of {vip} ended")
        } else {
            format!("bgp: {vip} was not withdrawn by the operator")
        };
        self.poll_bgp(true);
        tracing::info!("rvs ctl: {msg}");
        Ok(msg)
    }

    /// Clean shutdown of `[ha]`: a master hands over (VRRP priority 0)
    /// before the ports close.
    /// Returns whether there was an HA thread to stop.
    pub fn shutdown_ha(&mut self) -> bool {
        let Some(mut rt) = self.ha.take() else {
            return false;
        };
        rt.shutdown();
        // Log and notify the last role change (master/backup -> init).
        let changes: Vec<ha::RoleChange> = rt.changes.try_iter().collect();
        for c in changes {
            tracing::info!(from = c.from.name(), to = c.to.name(), "ha: {}", c.reason);
        }
        true
    }

    /// Logs and notifies the HA thread's role changes.
    fn poll_ha(&mut self) {
        let Some(rt) = &self.ha else { return };
        let changes: Vec<ha::RoleChange> = rt.changes.try_iter().collect();
        if changes.is_empty() {
            return;
        }
        let snap = self.shared.snapshot.load();
        let view = self
            .stats
            .list_view(&self.cfg, &snap, &self.shared.registry, &*self.health);
        for c in changes {
            let mut ev = notify::Event::new(
                notify::EventKind::Role,
                String::new(),
                format!(
                    "the director is now {} (was {}): {}",
                    c.to.name(),
                    c.from.name(),
                    c.reason
                ),
                match c.to {
                    crate::ha::vrrp::State::Master => {
                        "took the virtual addresses: answering ARP for them, gratuitous ARP sent, forwarding".to_string()
                    }
                    _ => "released the virtual addresses: not forwarding, installing synced connections".to_string(),
                },
            );
            ev.role = Some(c.to.name().to_string());
            ev.previous_role = Some(c.from.name().to_string());
            ev.master = c.master.map(|m| m.to_string());
            ev.configuration = Some(view.clone());
            self.notifier.send(&ev, &self.cfg.notify);
        }
    }

    /// Replaces the health source (the health checker installs itself).
    pub fn set_health(&mut self, health: Box<dyn HealthSource>) {
        self.health = health;
    }

    /// Rebuilds the snapshot from `self.cfg` and publishes it.
    pub fn publish(&mut self) -> Result<()> {
        self.health.sync(&self.cfg);
        let snap = Snapshot::build(
            &self.cfg,
            &self.ports,
            &self.shared.registry,
            self.generation + 1,
            self.health.view(),
        )?;
        self.generation += 1;
        self.shared.publish(snap);
        Ok(())
    }

    /// Periodic work: API requests, `list --conns` answers, rates.
    pub fn tick(&mut self) {
        for _ in 0..CALLS_PER_TICK {
            let Some(api) = &self.api else { break };
            let Ok(call) = api.calls.try_recv() else {
                break;
            };
            self.call(call);
        }
        self.finish_dump(Instant::now());
        self.poll_health();
        self.poll_ha();
        self.poll_bgp(false);
        if self.last_sample.elapsed() >= Duration::from_secs(1) {
            self.last_sample = Instant::now();
            self.stats.sample(&self.shared.registry, self.last_sample);
            self.cost.sample(
                self.shared.worker_stats.iter().map(|w| &**w),
                self.last_sample,
            );
        }
    }

    fn call(&mut self, call: Call) {
        if let Request::Conns { limit, service } = &call.req {
            let limit = limit.unwrap_or(DEFAULT_CONN_LIMIT).min(MAX_CONN_LIMIT);
            match service
                .as_deref()
                .map(|s| self.known_service(s))
                .transpose()
            {
                Ok(filter) => self.start_dump(limit, filter, call.reply),
                Err(e) => {
                    let resp = Response::error(e);
                    self.count(&resp);
                    let _ = call.reply.send(resp);
                }
            }
            return;
        }
        let resp = self.handle(&call.req);
        self.count(&resp);
        let _ = call.reply.send(resp);
    }

    fn count(&self, resp: &Response) {
        if resp.ok {
            self.info.api_ok.fetch_add(1, Relaxed);
        } else {
            self.info.api_errors.fetch_add(1, Relaxed);
        }
    }

    /// The key of a configured service (`--service`); the error names it
    /// and the services there are.
    fn known_service(&self, text: &str) -> Result<edit::ServiceKey, String> {
        let key = edit::parse_service(text)?;
        edit::find_service(&self.cfg, &key)?;
        Ok(key)
    }

    /// `list [--service]`, persistence templates counted per server.
    fn list(&self, service: Option<&str>) -> Result<ctl_proto::ListView, String> {
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
    fn persistent_per_server(&self) -> std::collections::HashMap<u32, u64> {
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
    fn zero(&mut self, service: Option<&str>) -> Result<String, String> {
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

    /// Answers one request (all but `Conns`, which the workers answer).
    pub fn handle(&mut self, req: &Request) -> Response {
        match req {
            Request::List { service } => match self.list(service.as_deref()) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::error(e),
            },
            Request::Status {} => Response::ok(self.status()),
            Request::Zero { service } => match self.zero(service.as_deref()) {
                Ok(message) => {
                    tracing::info!("rvs ctl zero: {message}");
                    Response::ok(ChangeResult {
                        message,
                        generation: self.generation,
                    })
                }
                Err(e) => Response::error(e),
            },
            Request::Conns { .. } => Response::error("internal error: conns is asynchronous"),
            Request::BgpWithdraw { service } | Request::BgpAnnounce { service } => {
                let withdraw = matches!(req, Request::BgpWithdraw { .. });
                match self.bgp_command(service, withdraw) {
                    Ok(message) => Response::ok(ChangeResult {
                        message,
                        generation: self.generation,
                    }),
                    Err(e) => {
                        tracing::warn!("rvs ctl: {e}");
                        Response::error(e)
                    }
                }
            }
            Request::Save { file } => match self.save(file.as_deref()) {
                Ok(msg) => {
                    tracing::info!("rvs ctl: {msg}");
                    Response::ok(ChangeResult {
                        message: msg,
                        generation: self.generation,
                    })
                }
                Err(e) => {
                    tracing::warn!("rvs ctl save: {e}");
                    Response::error(format!("save: {e}"))
                }
            },
            change => match self.change(change) {
                Ok(msg) => Response::ok(ChangeResult {
                    message: msg,
                    generation: self.generation,
                }),
                Err(e) => {
                    tracing::warn!("rvs ctl: {e}");
                    Response::error(e)
                }
            },
        }
    }

    /// Validates and publishes a configuration change.
    fn change(&mut self, req: &Request) -> Result<String, String> {
        let (next, msg) = edit::apply(&self.cfg, req)?;
        let old = std::mem::replace(&mut self.cfg, next);
        if let Err(e) = self.publish() {
            self.cfg = old;
            return Err(format!("refused: {e:#}"));
        }
        self.info.api_changes.fetch_add(1, Relaxed);
        if self.ctl_changes.len() == MAX_CHANGE_LOG {
            self.ctl_changes.remove(0);
        }
        self.ctl_changes.push(msg.clone());
        tracing::info!(generation = self.generation, "rvs ctl: {msg}");
        Ok(msg)
    }

    fn start_dump(
        &mut self,
        limit: usize,
        service: Option<edit::ServiceKey>,
        reply: SyncSender<Response>,
    ) {
        match &mut self.dump {
            // One walk of the tables serves every request that comes while
            // it runs.
            Some(d) => {
                d.limit = d.limit.max(limit);
                d.replies.push((reply, service));
            }
            None => {
                let req = self.shared.conn_dump.request(limit);
                self.dump = Some(PendingDump {
                    req,
                    limit,
                    deadline: Instant::now() + CONN_DUMP_WAIT,
                    replies: vec![(reply, service)],
                });
            }
        }
    }

    fn finish_dump(&mut self, now: Instant) {
        let Some(d) = &self.dump else { return };
        if !self.shared.conn_dump.complete(d.req) && now < d.deadline {
            return;
        }
        let Some(d) = self.dump.take() else { return };
        let mut view = conns::collect(&self.shared.conn_dump, d.req, d.limit);
        if !view.missing_workers.is_empty() {
            tracing::warn!(
                workers = ?view.missing_workers,
                "list --conns: worker(s) did not answer within {} ms",
                CONN_DUMP_WAIT.as_millis()
            );
        }
        self.add_templates(&mut view, d.limit);
        view.conns.sort_by(|a, b| {
            (a.vip, a.vport, a.client, a.cport).cmp(&(b.vip, b.vport, b.client, b.cport))
        });
        for (r, service) in d.replies {
            let resp = match service {
                None => Response::ok(&view),
                Some(k) => Response::ok(conns_of(&view, &k)),
            };
            self.count(&resp);
            let _ = r.send(resp);
        }
    }

    /// The persistence templates (shared by the workers, not in their
    /// tables) join the listing as `ipvsadm -Lnc` shows them: client
    /// network, port 0, state NONE.
    fn add_templates(&self, view: &mut ConnsView, limit: usize) {
        let now = self.shared.conn_dump.clock_ms();
        if now == 0 {
            return;
        }
        let snap = self.shared.snapshot.load();
        let all = self.shared.persist.templates(now);
        for t in &all {
            let Some(svc) = snap.services.iter().find(|s| u32::from(s.id) == t.service) else {
                continue;
            };
            let Some(srv) = svc
                .servers
                .iter()
                .chain(svc.sorry.as_ref())
                .find(|s| s.shared.id == t.server_id)
            else {
                continue;
            };
            view.total += 1;
            if view.conns.len() >= limit {
                view.truncated = true;
                continue;
            }
            view.conns.push(ConnInfo {
                protocol: match svc.proto {
                    crate::conn::PROTO_TCP => "tcp".to_string(),
                    crate::conn::PROTO_UDP => "udp".to_string(),
                    p => p.to_string(),
                },
                client: t.client_net.into(),
                cport: 0,
                vip: svc.vip.into(),
                vport: svc.port,
                server: srv.addr.into(),
                sport: srv.port,
                state: crate::conn::TcpState::None.name().to_string(),
                expires_ms: t.left_ms,
                forward: srv.method.name().to_string(),
                worker: 0,
                template: true,
                synced: false,
                local: None,
                prefix6: None,
            });
        }
        // The IPv6 services' (keyed by a fold of the client prefix).
        templates6::add(view, &snap, &all, limit);
    }

    fn status(&self) -> StatusView {
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

    /// `rvs ctl save`: the running configuration, as the file rvs was
    /// started with changed by what `rvs ctl` did (`config::save`), written
    /// atomically to `file` (default: that file; its mode is kept).
    fn save(&mut self, file: Option<&str>) -> Result<String, String> {
        let target = file.map_or_else(|| self.path.clone(), PathBuf::from);
        if target.is_relative() {
            return Err(format!(
                "`{}` is not an absolute path (the director's working directory is not yours)",
                target.display()
            ));
        }
        let original = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let text = config::save::render(&original, &self.cfg)?;
        write_atomically(&target, text.as_bytes(), &self.path)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        let n = self.ctl_changes.len();
        if target == self.path {
            // The file now holds them: a reload no longer replaces anything.
            self.ctl_changes.clear();
            self.info.api_changes.store(0, Relaxed);
        }
        Ok(format!(
            "saved the running configuration to {} ({n} live change(s) since the file was loaded)",
            target.display()
        ))
    }

    /// SIGHUP: re-reads the file and replaces the running configuration
    /// (API changes since the last load included); a file with errors
    /// changes nothing and every error is logged.
    pub fn reload(&mut self) {
        match config::load(&self.path) {
            Ok(new) => {
                if new.dpdk != self.cfg.dpdk || new.ports != self.cfg.ports {
                    tracing::warn!(
                        "reload: [dpdk] and [[port]] changes need a restart; applying the rest"
                    );
                }
                if new.control != self.cfg.control {
                    tracing::warn!(
                        "reload: [control] changes (socket, metrics) need a restart; applying the rest"
                    );
                }
                let mut next = new;
                next.dpdk = self.cfg.dpdk.clone();
                next.ports = self.cfg.ports.clone();
                next.control = self.cfg.control.clone();
                if next.ha != self.cfg.ha {
                    tracing::warn!("reload: [ha] changes need a restart; applying the rest");
                    next.ha = self.cfg.ha.clone();
                }
                if next.bgp != self.cfg.bgp {
                    tracing::warn!("reload: [bgp] changes need a restart; applying the rest");
                    next.bgp = self.cfg.bgp.clone();
                }
                let changes = self.info.api_changes.swap(0, Relaxed);
                let named = std::mem::take(&mut self.ctl_changes);
                if changes > 0 {
                    tracing::warn!(
                        "reload: {changes} change(s) made with rvs ctl since the file was loaded are replaced by the file (keep them with `rvs ctl save` before a reload)"
                    );
                    for m in &named {
                        tracing::warn!("reload: replaced by the file: {m}");
                    }
                }
                self.info.reloads_ok.fetch_add(1, Relaxed);
                if next == self.cfg {
                    tracing::info!(path = %self.path.display(), "reload: no change");
                    return;
                }
                let old = std::mem::replace(&mut self.cfg, next);
                if let Err(e) = self.publish() {
                    tracing::error!("reload: {e:#}; keeping the running configuration");
                    self.cfg = old;
                    self.info.api_changes.store(changes, Relaxed);
                    self.ctl_changes = named;
                    self.info.reloads_ok.fetch_sub(1, Relaxed);
                    self.info.reloads_failed.fetch_add(1, Relaxed);
                    return;
                }
                for line in config_changes(&old, &self.cfg) {
                    tracing::info!("reload: {line}");
                }
                tracing::info!(path = %self.path.display(), generation = self.generation, "reload: applied");
            }
            Err(errors) => {
                self.info.reloads_failed.fetch_add(1, Relaxed);
                tracing::error!(
                    "reload refused: {} error(s) in {}; keeping the running configuration",
                    errors.len(),
                    errors.file
                );
                // The same `FILE:LINE: key: message` lines as `rvs check`
                // (no line 0 or empty key for a file that cannot be read).
                for line in errors.to_string().lines() {
                    tracing::error!("reload refused: {line}");
                }
            }
        }
    }
}

/// `list --conns --service`: the entries of service `k` (templates
/// included). `total` counts that service's entries when the walk saw them
/// all; a truncated walk keeps the table-wide total (the limit bounds the
/// walk, before the filter).
fn conns_of(view: &ConnsView, k: &edit::ServiceKey) -> ConnsView {
    let conns: Vec<ConnInfo> = view
        .conns
        .iter()
        .filter(|c| c.protocol == k.protocol.name() && c.vip == k.vip && c.vport == k.port)
        .cloned()
        .collect();
    ConnsView {
        total: if view.truncated {
            view.total
        } else {
            conns.len() as u64
        },
        truncated: view.truncated,
        missing_workers: view.missing_workers.clone(),
        conns,
    }
}

/// What a reload changes, one line each, as keepalived logs it: services
/// and servers added, removed or changed (with the keys that changed), and
/// other sections.
pub fn config_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for s in &old.services {
        if !new.services.iter().any(|n| n.key() == s.key()) {
            out.push(format!("service {} removed", s.key()));
        }
    }
    for n in &new.services {
        let Some(o) = old.services.iter().find(|o| o.key() == n.key()) else {
            out.push(format!(
                "service {} added ({}, {} servers)",
                n.key(),
                n.scheduler,
                n.servers.len()
            ));
            continue;
        };
        let mut what = Vec::new();
        if o.scheduler != n.scheduler {
            what.push(format!("scheduler {} -> {}", o.scheduler, n.scheduler));
        }
        if o.forward != n.forward {
            what.push(format!("forward {} -> {}", o.forward, n.forward));
        }
        if o.persistence_timeout != n.persistence_timeout
            || o.persistence_netmask != n.persistence_netmask
        {
            what.push("persistence".to_string());
        }
        if o.quorum != n.quorum || o.sorry_server != n.sorry_server {
            what.push("quorum/sorry server".to_string());
        }
        if o.health_check != n.health_check {
            what.push("health check".to_string());
        }
        if !what.is_empty() {
            out.push(format!("service {} changed: {}", n.key(), what.join(", ")));
        }
        let (old_id, id) = (|s: &ServerConfig| s.ident(o), |s: &ServerConfig| s.ident(n));
        for s in &o.servers {
            if !n.servers.iter().any(|x| id(x) == old_id(s)) {
                out.push(format!("server {} of {} removed", old_id(s), n.key()));
            }
        }
        for s in &n.servers {
            match o.servers.iter().find(|x| old_id(x) == id(s)) {
                None => out.push(format!(
                    "server {} of {} added (weight {})",
                    id(s),
                    n.key(),
                    s.weight
                )),
                Some(x) if x != s => {
                    let mut w = Vec::new();
                    if x.weight != s.weight {
                        w.push(format!("weight {} -> {}", x.weight, s.weight));
                    }
                    if x.forward != s.forward {
                        w.push("forward".to_string());
                    }
                    if x.upper_threshold != s.upper_threshold
                        || x.lower_threshold != s.lower_threshold
                    {
                        w.push("thresholds".to_string());
                    }
                    if w.is_empty() {
                        w.push("settings".to_string());
                    }
                    out.push(format!(
                        "server {} of {} changed: {}",
                        id(s),
                        n.key(),
                        w.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if old.timeouts != new.timeouts {
        out.push("[timeouts] changed".to_string());
    }
    if old.notify != new.notify {
        out.push("[notify] changed".to_string());
    }
    out
}

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename, so a reader (or a crash) never sees half a file. The mode
/// is `path`'s own when it exists, else `like`'s (the configuration file).
fn write_atomically(
    path: &std::path::Path,
    data: &[u8],
    like: &std::path::Path,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("/"),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.rvs-save.{}", std::process::id()));
    let mode = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(like))
        .map(|m| m.permissions())
        .ok();
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if let Some(m) = mode {
            f.set_permissions(m)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::ctl_proto::{ListView, ServerArgs};
    use super::*;

    const CFG: &str = concat!(
        crate::control::two_port_director!(),
        r#"
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
  weight = 2
[control]
socket = "/nonexistent/rvs.sock"
"#
    );

    fn controller(tag: &str, text: &str) -> Controller {
        let path = std::env::temp_dir().join(format!("rvs-ctl-{tag}-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let cfg = config::load(&path).unwrap();
        let shared = Arc::new(Shared::new(1));
        Controller::new(cfg, path, shared, Vec::new()).unwrap()
    }

    fn list(c: &mut Controller) -> ListView {
        let r = c.handle(&Request::List { service: None });
        serde_json::from_value(r.result.unwrap()).unwrap()
    }

    #[test]
    fn changes_publish_and_keep_server_identities() {
        let mut c = controller("changes", CFG);
        let before = c.shared.snapshot.load_full();
        let id11 = before.services[0].servers[0].shared.id;
        let mut a = ServerArgs {
            service: "tcp:198.18.0.100:80".into(),
            server: "198.19.0.14:8080".into(),
            weight: Some(1),
            ..ServerArgs::default()
        };
        let r = c.handle(&Request::AddServer(a.clone()));
        assert!(r.ok, "{r:?}");
        let snap = c.shared.snapshot.load_full();
        assert_eq!(snap.generation, before.generation + 1);
        assert_eq!(snap.services[0].servers.len(), 3);
        assert_eq!(snap.services[0].servers[0].shared.id, id11);
        // the same again is refused and publishes nothing
        let r = c.handle(&Request::AddServer(a.clone()));
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("already a server"));
        assert_eq!(c.shared.snapshot.load().generation, snap.generation);

        a.server = "198.19.0.11:8080".into();
        a.weight = Some(0);
        assert!(c.handle(&Request::EditServer(a)).ok);
        let v = list(&mut c);
        let w: Vec<u32> = v.services[0].servers.iter().map(|s| s.weight).collect();
        assert_eq!(w, [0, 2, 1]);
        assert_eq!(c.shared.snapshot.load().services[0].servers[0].weight, 0);
        let st: StatusView =
            serde_json::from_value(c.handle(&Request::Status {}).result.unwrap()).unwrap();
        assert_eq!(st.api_changes, 2);
        assert_eq!(st.role, "standalone");
        assert_eq!(st.services[0].servers[0].health, "no-check");

        // a reload replaces the API's changes with the file
        c.reload();
        let v = list(&mut c);
        let w: Vec<u32> = v.services[0].servers.iter().map(|s| s.weight).collect();
        assert_eq!(w, [3, 2]);
        let st: StatusView =
            serde_json::from_value(c.handle(&Request::Status {}).result.unwrap()).unwrap();
        assert_eq!((st.api_changes, st.reloads_ok), (0, 1));
        let _ = std::fs::remove_file(&c.path);
    }

    #[test]
    fn a_reload_names_each_change() {
        let old = config::parse(CFG).unwrap();
        let text = CFG
            .replace("weight = 3", "weight = 5")
            .replace(
                "  [[service.server]]\n  address = \"198.19.0.12\"\n  port = 8080\n  weight = 2\n",
                "  [[service.server]]\n  address = \"198.19.0.13\"\n  port = 8080\n",
            )
            .replace("scheduler = \"wrr\"", "scheduler = \"wlc\"");
        let new = config::parse(&text).unwrap();
        assert_eq!(
            config_changes(&old, &new),
            [
                "service tcp:198.18.0.100:80 changed: scheduler wrr -> wlc",
                "server 198.19.0.12:8080 of tcp:198.18.0.100:80 removed",
                "server 198.19.0.11:8080 of tcp:198.18.0.100:80 changed: weight 3 -> 5",
                "server 198.19.0.13:8080 of tcp:198.18.0.100:80 added (weight 1)",
            ]
        );
        assert!(config_changes(&old, &old).is_empty());
    }

    #[test]
    fn a_broken_file_changes_nothing() {
        let mut c = controller("broken", CFG);
        let g = c.shared.snapshot.load().generation;
        std::fs::write(&c.path, CFG.replace("weight = 3", "weight = -3")).unwrap();
        c.reload();
        assert_eq!(c.shared.snapshot.load().generation, g);
        assert_eq!(c.cfg.services[0].servers[0].weight, 3);
        assert_eq!(c.info.reloads_failed.load(Relaxed), 1);
        // a good change takes effect
        std::fs::write(&c.path, CFG.replace("weight = 3", "weight = 5")).unwrap();
        c.reload();
        assert_eq!(c.shared.snapshot.load().generation, g + 1);
        assert_eq!(c.shared.snapshot.load().services[0].servers[0].weight, 5);
        let _ = std::fs::remove_file(&c.path);
    }

    #[test]
    fn configured_checks_are_unknown_not_invented() {
        let text = format!(
            "{}\n[service.health_check]\nkind = \"tcp\"\n",
            CFG.replace("[control]\nsocket = \"/nonexistent/rvs.sock\"\n", "")
        );
        let c = controller("hc", &text);
        let st = c.status();
        assert_eq!(st.services[0].check, "tcp");
        assert_eq!(st.services[0].servers[0].health, "unknown");
        let _ = std::fs::remove_file(&c.path);
    }
}
