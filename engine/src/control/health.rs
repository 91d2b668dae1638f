//! Health checks (SPEC §7, `[service.health_check]`), keepalived style.
//!
//! Each checked server of each service has its own thread that runs its
//! probe ([`probe`]: `tcp` connect, `http`/`https` GET with expected status,
//! optional `Host` header and MD5 body digest ([`web`]), `dns` query
//! ([`dns`]), `exec` of a script given the server's address and port,
//! optionally setting the weight) every `interval_ms`, each probe bounded
//! by `timeout_ms` as a whole. A failed probe is retried `retry` times,
//! `delay_before_retry_ms` apart, before the round counts as one failure. A server that accepts and never answers therefore fails at its
//! own deadline and delays nobody else's checks. A probe that takes longer
//! than the interval is followed by the next one at once. Probes are
//! ordinary kernel sockets and processes: with the ports bound to DPDK they
//! go through the exception path.
//!
//! Results come back to the controller through a channel, drained (never
//! blocking) in `Controller::tick`. The [`fsm`] turns them into states:
//!
//! - **Initial state: up** (keepalived's default): a server is in the pool
//!   from the start and leaves it after `fall` consecutive failures. With
//!   `alpha` a server new to the table starts down and its first success
//!   brings it up.
//! - Down after `fall` consecutive failures: `on_failure = "remove"` takes it
//!   out of the pool ([`Health::Down`]: no new connections, and the workers
//!   expire its connections on their next packet: an RST to the client
//!   with `expire_nodest_conn`, else drop reason `server_gone`);
//!   `"weight-zero"` keeps it with weight 0
//!   ([`Health::Inhibited`]: no new connections, existing ones continue).
//! - Up after `rise` consecutive successes: back with its configured weight.
//!
//! **Quorum** (keepalived's): the live weight of a service is the sum of
//! the configured weights of its servers that are up. When it is 0 or
//! below `quorum`, the service has lost its quorum. If it has a sorry
//! server, the snapshot marks the service `sorry_only`: every new
//! connection goes to the sorry server, while the connections the real
//! servers have keep flowing to them (keepalived removes the remaining real
//! servers instead, which cuts those connections). Without a sorry server,
//! losing the quorum changes nothing in the pool (as in keepalived) but is
//! notified. Independently of the quorum, the sorry server gets a new
//! connection whenever the scheduler finds no usable server.
//!
//! Every change of state (a server down or up, a quorum lost or regained)
//! is logged, republishes the snapshot and is notified ([`super::notify`]);
//! a server's own `notify_up`/`notify_down` hook runs too ([`hooks`]). An
//! exec check with `dynamic_weight` sets the server's weight: a change is
//! logged and republishes the snapshot.
//! Every check result is logged at debug level (target
//! `engine::control::health`), a failure that counts towards `fall` at
//! info.

mod check_loop;
mod controller;
pub mod dns;
pub mod fsm;
pub mod hooks;
pub mod probe;
pub mod proc;
pub mod web;

use self::check_loop::check_loop;
pub use self::controller::ServerHealthStatus;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::SystemTime;

use self::fsm::Fsm;
use self::hooks::HookRun;
use self::probe::{CheckSpec, Weight};
use super::notify::{rfc3339, Event, EventKind};
use super::{HealthSource, HealthStatus};
use crate::config::{Config, OnFailure, ServerConfig, ServiceConfig};
use crate::dataplane::snapshot::{proto_of, Health, HealthView};

/// Results waiting for the controller, at most (check threads wait beyond).
const RESULTS: usize = 4096;
/// Results taken per tick, at most.
const RESULTS_PER_POLL: usize = 1024;

/// A service: protocol number, VIP, port.
type SvcId = (u8, IpAddr, u16);

/// One server of one service, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    svc: SvcId,
    addr: IpAddr,
    port: u16,
}

impl Key {
    fn of(svc: &ServiceConfig, srv: &ServerConfig) -> Key {
        Key {
            svc: svc_id(svc),
            addr: srv.address,
            port: srv.port,
        }
    }
}

fn svc_id(svc: &ServiceConfig) -> SvcId {
    (proto_of(svc.protocol), svc.vip, svc.port)
}

/// What a check thread reports.
#[derive(Debug)]
struct CheckResult {
    key: Key,
    epoch: u64,
    ok: bool,
    text: String,
    weight: Weight,
    at: SystemTime,
}

/// The last result of a server's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastCheck {
    pub ok: bool,
    pub text: String,
    pub at: SystemTime,
}

/// A running check thread: dropping `stop` ends it.
struct Worker {
    epoch: u64,
    _stop: Sender<()>,
}

struct Entry {
    service: String,
    server: String,
    /// `None`: not checked (see `note`).
    spec: Option<CheckSpec>,
    /// Why a configured check cannot run.
    note: Option<String>,
    fsm: Fsm,
    on_failure: OnFailure,
    /// The configured weight.
    weight: u32,
    /// The weight a `dynamic_weight` check set, instead of the configured.
    dyn_weight: Option<u32>,
    notify_up: Option<String>,
    notify_down: Option<String>,
    last: Option<LastCheck>,
    /// When the state last changed.
    since: Option<SystemTime>,
    worker: Option<Worker>,
}

impl Entry {
    /// The weight in the pool while up.
    fn weight(&self) -> u32 {
        self.dyn_weight.unwrap_or(self.weight)
    }

    fn health(&self) -> Health {
        if self.fsm.is_up() {
            Health::Up
        } else if self.on_failure == OnFailure::WeightZero {
            Health::Inhibited
        } else {
            Health::Down
        }
    }

    fn state(&self) -> &'static str {
        match (&self.spec, self.health()) {
            (None, _) => "no-check",
            (Some(_), Health::Up) => "up",
            (Some(_), Health::Down) => "down",
            (Some(_), Health::Inhibited) => "inhibited",
        }
    }
}

struct SvcInfo {
    id: SvcId,
    key: String,
    quorum: u32,
    sorry: Option<SocketAddr>,
    servers: Vec<Key>,
}

/// The health-check state table and its check threads. Installed in the
/// controller as its [`HealthSource`]; snapshots are built with it as their
/// [`HealthView`].
pub struct HealthChecker {
    entries: HashMap<Key, Entry>,
    services: Vec<SvcInfo>,
    /// Services whose quorum is lost.
    lost: HashSet<SvcId>,
    tx: SyncSender<CheckResult>,
    rx: Receiver<CheckResult>,
    next_epoch: u64,
    /// Start check threads (false in tests that feed results by hand).
    spawn: bool,
    /// Events found by `sync` (quorum changes of a configuration change),
    /// handed out by the next `poll`.
    pending: Vec<Event>,
    /// A dynamic weight changed since the last `take_republish`.
    reweighted: bool,
}

impl HealthChecker {
    /// A checker that runs check threads for what [`HealthSource::sync`]
    /// gives it.
    pub fn new() -> HealthChecker {
        HealthChecker::with_threads(true)
    }

    fn with_threads(spawn: bool) -> HealthChecker {
        let (tx, rx) = mpsc::sync_channel(RESULTS);
        HealthChecker {
            entries: HashMap::new(),
            services: Vec::new(),
            lost: HashSet::new(),
            tx,
            rx,
            next_epoch: 1,
            spawn,
            pending: Vec::new(),
            reweighted: false,
        }
    }

    fn start_worker(&mut self, key: Key, spec: CheckSpec, label: String) -> Option<Worker> {
        if !self.spawn {
            return Some(Worker {
                epoch: self.take_epoch(),
                _stop: mpsc::channel().0,
            });
        }
        let epoch = self.take_epoch();
        let (stop_tx, stop_rx) = mpsc::channel();
        let tx = self.tx.clone();
        let name = format!("rvs-hc-{}", spec.target);
        match std::thread::Builder::new()
            .name(name)
            .spawn(move || check_loop(spec, key, epoch, label, tx, stop_rx))
        {
            Ok(_) => Some(Worker {
                epoch,
                _stop: stop_tx,
            }),
            Err(e) => {
                tracing::error!("health: cannot start a check thread: {e}");
                None
            }
        }
    }

    fn take_epoch(&mut self) -> u64 {
        let e = self.next_epoch;
        self.next_epoch += 1;
        e
    }

    /// Live weight of a service: the weights (dynamic, else configured) of
    /// its servers that are up.
    fn live_weight(&self, svc: &SvcInfo) -> u64 {
        svc.servers
            .iter()
            .filter_map(|k| self.entries.get(k))
            .filter(|e| e.fsm.is_up())
            .map(|e| u64::from(e.weight()))
            .sum()
    }

    fn quorum_lost_now(&self, svc: &SvcInfo) -> bool {
        let live = self.live_weight(svc);
        live == 0 || live < u64::from(svc.quorum)
    }

    /// Recomputes every service's quorum; returns the events of the
    /// services whose state changed. `known` services are those whose
    /// earlier state counts (a new service starts silently).
    fn update_quorum(&mut self, known: &HashSet<SvcId>) -> Vec<Event> {
        let mut events = Vec::new();
        let mut lost = HashSet::new();
        for svc in &self.services {
            let now_lost = self.quorum_lost_now(svc);
            if now_lost {
                lost.insert(svc.id);
            }
            let was_lost = self.lost.contains(&svc.id);
            let live = self.live_weight(svc);
            if !known.contains(&svc.id) {
                if now_lost {
                    tracing::warn!(
                        service = %svc.key,
                        live_weight = live,
                        quorum = svc.quorum,
                        "health: service starts without its quorum{}",
                        if svc.sorry.is_some() { "; the sorry server takes new connections" } else { "" }
                    );
                }
                continue;
            }
            if now_lost == was_lost {
                continue;
            }
            let sorry = svc.sorry.map(|s| s.to_string());
            let (kind, description, action) = if now_lost {
                (
                    EventKind::QuorumLost,
                    format!(
                        "service {} lost its quorum: live weight {live} < quorum {}",
                        svc.key, svc.quorum
                    ),
                    match &sorry {
                        Some(s) => format!("the sorry server {s} takes every new connection; the real servers keep the connections they have"),
                        None => "no sorry server: the servers that are up keep serving".to_string(),
                    },
                )
            } else {
                (
                    EventKind::QuorumRegained,
                    format!(
                        "service {} regained its quorum: live weight {live} >= quorum {}",
                        svc.key, svc.quorum
                    ),
                    match &sorry {
                        Some(s) => format!("new connections go to the real servers again, not to the sorry server {s}"),
                        None => "the servers that are up serve".to_string(),
                    },
                )
            };
            if now_lost {
                tracing::warn!(service = %svc.key, live_weight = live, quorum = svc.quorum, "health: {description}; {action}");
            } else {
                tracing::info!(service = %svc.key, live_weight = live, quorum = svc.quorum, "health: {description}; {action}");
            }
            let mut ev = Event::new(kind, svc.key.clone(), description, action);
            ev.live_weight = live;
            ev.quorum = svc.quorum;
            ev.sorry_server = sorry;
            events.push(ev);
        }
        self.lost = lost;
        events
    }

    /// Applies one result; returns the event if the server's state changed.
    fn apply(&mut self, r: CheckResult) -> Option<Event> {
        let e = self.entries.get_mut(&r.key)?;
        if e.worker.as_ref().map(|w| w.epoch) != Some(r.epoch) {
            return None; // from a check since replaced or stopped
        }
        e.last = Some(LastCheck {
            ok: r.ok,
            text: r.text.clone(),
            at: r.at,
        });
        let dyn_weight = match r.weight {
            Weight::Keep => e.dyn_weight,
            Weight::Configured => None,
            Weight::Set(w) => Some(w),
        };
        if dyn_weight != e.dyn_weight {
            let (from, to) = (e.weight(), dyn_weight.unwrap_or(e.weight));
            e.dyn_weight = dyn_weight;
            self.reweighted = true;
            tracing::info!(
                service = %e.service,
                server = %e.server,
                "health: weight {from} -> {to} ({}): {}",
                if dyn_weight.is_some() { "set by the check's exit status" } else { "the configured weight again" },
                r.text
            );
        }
        let was_up = e.fsm.is_up();
        let first = e.fsm.awaiting_first();
        let change = e.fsm.feed(r.ok);
        let kind = e.spec.as_ref().map_or("?", |s| s.kind.name());
        if !r.ok && was_up && change.is_none() {
            tracing::info!(
                service = %e.service,
                server = %e.server,
                "health: {kind} check failed ({}/{}): {}",
                e.fsm.fails(),
                e.fsm.fall(),
                r.text
            );
        }
        let up = change?;
        e.since = Some(r.at);
        let hook = if up { &e.notify_up } else { &e.notify_down };
        if let Some(command) = hook {
            hooks::spawn(HookRun {
                command: command.clone(),
                up,
                server: e.server.clone(),
                service: e.service.clone(),
                reason: r.text.clone(),
            });
        }
        let (kind_ev, description, action) = if up {
            (
                EventKind::ServerUp,
                if first {
                    format!(
                        "server {} of {} is up: its first {kind} check passed (alpha)",
                        e.server, e.service
                    )
                } else {
                    format!(
                        "server {} of {} is up again: {} consecutive {kind} check(s) passed",
                        e.server,
                        e.service,
                        e.fsm.rise()
                    )
                },
                format!("back in the pool with weight {}", e.weight()),
            )
        } else {
            (
                EventKind::ServerDown,
                format!(
                    "server {} of {} is down: {} consecutive {kind} check(s) failed",
                    e.server,
                    e.service,
                    e.fsm.fall()
                ),
                match e.on_failure {
                    OnFailure::Remove => {
                        "removed from the pool: no new connections, and its connections are expired"
                            .to_string()
                    }
                    OnFailure::WeightZero => {
                        "weight set to 0 (inhibited): no new connections, its connections continue"
                            .to_string()
                    }
                },
            )
        };
        if up {
            tracing::info!(service = %e.service, server = %e.server, "health: {description}; {action}; last check: {}", r.text);
        } else {
            tracing::warn!(service = %e.service, server = %e.server, "health: {description}; {action}; last check: {}", r.text);
        }
        let mut ev = Event::new(kind_ev, e.service.clone(), description, action);
        ev.server = Some(e.server.clone());
        ev.check = e.spec.as_ref().map(|s| s.to_string());
        ev.last_result = Some(r.text);
        Some(ev)
    }

    /// Fills in each event's service facts (live weight, quorum, sorry
    /// server) as they are now.
    fn annotate(&self, events: &mut [Event]) {
        for ev in events {
            if let Some(svc) = self.services.iter().find(|s| s.key == ev.service) {
                ev.live_weight = self.live_weight(svc);
                ev.quorum = svc.quorum;
                ev.sorry_server = svc.sorry.map(|s| s.to_string());
            }
        }
    }

    /// The last check of a server, if it is checked and has a result.
    pub fn last(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Option<LastCheck> {
        self.entries.get(&Key::of(svc, srv))?.last.clone()
    }
}

impl Default for HealthChecker {
    fn default() -> Self {
        HealthChecker::new()
    }
}

impl HealthView for HealthChecker {
    fn health(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Health {
        self.entries
            .get(&Key::of(svc, srv))
            .map_or(Health::Up, Entry::health)
    }

    fn weight(&self, svc: &ServiceConfig, srv: &ServerConfig) -> u32 {
        self.entries
            .get(&Key::of(svc, srv))
            .and_then(|e| e.dyn_weight)
            .unwrap_or(srv.weight)
    }

    fn quorum_lost(&self, svc: &ServiceConfig) -> bool {
        self.lost.contains(&svc_id(svc))
    }
}

impl HealthSource for HealthChecker {
    fn view(&self) -> &dyn HealthView {
        self
    }

    fn status(&self, svc: &ServiceConfig, srv: &ServerConfig) -> HealthStatus {
        let Some(e) = self.entries.get(&Key::of(svc, srv)) else {
            return HealthStatus {
                state: "unknown",
                detail: "not in the health table yet".to_string(),
            };
        };
        let mut detail = match (&e.spec, &e.note) {
            (None, Some(note)) => format!("not checked: {note}"),
            (None, None) => "no check configured".to_string(),
            (Some(spec), _) => {
                let mut d = match &e.last {
                    None if e.fsm.awaiting_first() => {
                        "no result yet (alpha: down until the first success)".to_string()
                    }
                    None => format!("no result yet (up until {} failures)", e.fsm.fall()),
                    Some(l) => format!(
                        "last {} check {} ago {}: {}",
                        spec.kind,
                        ago(l.at),
                        if l.ok { "passed" } else { "failed" },
                        l.text
                    ),
                };
                if let Some(w) = e.dyn_weight {
                    d.push_str(&format!(
                        "; weight {w} set by the check (configured {})",
                        e.weight
                    ));
                }
                if e.fsm.is_up() && e.fsm.fails() > 0 {
                    d.push_str(&format!("; {}/{} failures", e.fsm.fails(), e.fsm.fall()));
                }
                if !e.fsm.is_up() {
                    if e.fsm.oks() > 0 {
                        d.push_str(&format!("; {}/{} successes", e.fsm.oks(), e.fsm.rise()));
                    }
                    if let Some(t) = e.since {
                        d.push_str(&format!("; down since {}", rfc3339(t)));
                    }
                }
                d
            }
        };
        if self.lost.contains(&svc_id(svc)) {
            detail.push_str(if svc.sorry_server.is_some() {
                "; service quorum lost: the sorry server takes new connections"
            } else {
                "; service quorum lost"
            });
        }
        HealthStatus {
            state: e.state(),
            detail,
        }
    }

    fn sync(&mut self, cfg: &Config) {
        let known: HashSet<SvcId> = self.services.iter().map(|s| s.id).collect();
        let mut seen = HashSet::new();
        let mut services = Vec::with_capacity(cfg.services.len());
        for sc in &cfg.services {
            let mut keys = Vec::with_capacity(sc.servers.len());
            for srv in &sc.servers {
                let key = Key::of(sc, srv);
                if !seen.insert(key) {
                    continue;
                }
                keys.push(key);
                let (spec, note) = match CheckSpec::of(sc, srv) {
                    Ok(s) => (s, None),
                    Err(why) => (None, Some(why)),
                };
                let hc = sc.health_check.clone().unwrap_or_default();
                let server = srv.ident(sc);
                let new = !self.entries.contains_key(&key);
                if new {
                    // alpha: a new server with a check that runs starts down
                    let fsm = if hc.alpha && spec.is_some() {
                        Fsm::new_alpha(hc.fall, hc.rise)
                    } else {
                        Fsm::new(hc.fall, hc.rise)
                    };
                    self.entries.insert(
                        key,
                        Entry {
                            service: sc.key(),
                            server: server.clone(),
                            spec: None,
                            note: None,
                            fsm,
                            on_failure: hc.on_failure,
                            weight: srv.weight,
                            dyn_weight: None,
                            notify_up: None,
                            notify_down: None,
                            last: None,
                            since: None,
                            worker: None,
                        },
                    );
                }
                let restart = {
                    let e = self.entries.get_mut(&key).expect("inserted above");
                    e.weight = srv.weight;
                    e.on_failure = hc.on_failure;
                    e.notify_up = srv.notify_up.clone();
                    e.notify_down = srv.notify_down.clone();
                    if (e.fsm.fall(), e.fsm.rise()) != (hc.fall.max(1), hc.rise.max(1)) {
                        e.fsm.set_thresholds(hc.fall, hc.rise);
                    }
                    if e.note != note {
                        if let Some(n) = &note {
                            tracing::warn!(service = %e.service, server = %e.server, "health: check not run: {n}");
                        }
                        e.note = note;
                    }
                    if e.spec != spec || (e.spec.is_some() && e.worker.is_none()) {
                        e.worker = None; // stops the old thread
                        e.last = None;
                        e.dyn_weight = None; // the new check sets it again
                        if spec.is_none() && !e.fsm.is_up() {
                            tracing::info!(service = %e.service, server = %e.server, "health: no check any more: back in the pool");
                            e.fsm = Fsm::new(hc.fall, hc.rise);
                        }
                        e.spec = spec.clone();
                        spec.map(|s| (s, format!("{} ({})", e.server, e.service)))
                    } else {
                        None
                    }
                };
                if let Some((spec, label)) = restart {
                    tracing::info!(service = %sc.key(), server = %server, "health: checking: {spec}");
                    let w = self.start_worker(key, spec, label);
                    if let Some(e) = self.entries.get_mut(&key) {
                        e.worker = w;
                    }
                }
            }
            services.push(SvcInfo {
                id: svc_id(sc),
                key: sc.key(),
                quorum: sc.quorum,
                sorry: sc.sorry_server,
                servers: keys,
            });
        }
        // servers gone from the configuration: their threads stop
        self.entries.retain(|k, _| seen.contains(k));
        self.services = services;
        let mut events = self.update_quorum(&known);
        self.annotate(&mut events);
        self.pending.extend(events);
    }

    fn poll(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.pending);
        let mut server_events = Vec::new();
        for _ in 0..RESULTS_PER_POLL {
            let Ok(r) = self.rx.try_recv() else { break };
            if let Some(ev) = self.apply(r) {
                server_events.push(ev);
            }
        }
        // a dynamic weight may have moved a quorum without a change of state
        if server_events.is_empty() && events.is_empty() && !self.reweighted {
            return events;
        }
        let known: HashSet<SvcId> = self.services.iter().map(|s| s.id).collect();
        let quorum = self.update_quorum(&known);
        events.extend(server_events);
        events.extend(quorum);
        self.annotate(&mut events);
        events
    }

    fn last_check(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Option<LastCheck> {
        self.last(svc, srv)
    }

    fn take_republish(&mut self) -> bool {
        std::mem::take(&mut self.reweighted)
    }
}

/// "1.2 s".
fn ago(t: SystemTime) -> String {
    let d = SystemTime::now().duration_since(t).unwrap_or_default();
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests;
