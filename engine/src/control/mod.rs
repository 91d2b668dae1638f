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
//! - [`conns`]: `list --conns`, answered by the workers between bursts;
//!   `conn_listing`: this thread's side of it (one walk at a time, the
//!   deadline, persistence templates, `--service`).
//! - `views`: what `list`, `zero` and `status` show; `reload`: `save` and
//!   SIGHUP; `peers`: the `[ha]` and `[bgp]` threads' role changes,
//!   announcements and shutdown.
//!
//! A SIGHUP reload re-reads the file and replaces the running configuration
//! with it: changes made through the API since the file was loaded are
//! overridden (put them in the file to keep them). A file with errors
//! changes nothing; every error is logged.

pub mod api;
pub mod bgp;
mod conn_listing;
pub mod conns;
pub mod cost;
pub mod ctl_proto;
pub mod edit;
pub mod format;
pub mod ha;
pub mod health;
pub mod metrics;
pub mod notify;
mod peers;
mod reload;
pub mod stats;
pub mod templates6;
mod views;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use self::api::{ApiServer, Call};
use self::conn_listing::PendingDump;
use self::ctl_proto::{ChangeResult, Request, Response, DEFAULT_CONN_LIMIT};
use self::metrics::ControlInfo;
pub use self::reload::config_changes;
use self::stats::Stats;
use crate::config::{Config, HealthCheckKind, ServerConfig, ServiceConfig};
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
}

#[cfg(test)]
mod tests {
    use super::ctl_proto::{ListView, ServerArgs, StatusView};
    use super::*;
    use crate::config;

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
