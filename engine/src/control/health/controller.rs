//! The controller's side of health checking: starting it, taking the
//! results in its tick, and every server's health for `rvs ctl status`.

use serde::{Deserialize, Serialize};

use super::HealthChecker;
use crate::control::notify::rfc3339;
use crate::control::Controller;

/// One server's health, for `rvs ctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealthStatus {
    /// `tcp:198.18.0.100:80`.
    pub service: String,
    /// `198.19.0.12:8080`.
    pub server: String,
    /// `tcp`, `http`, `exec` or `none`.
    pub check: String,
    /// `no-check`, `unknown`, `up`, `down`, `inhibited`.
    pub state: String,
    /// What the state rests on (last result, counts, quorum).
    pub detail: String,
    /// The last check's result text.
    pub last_result: Option<String>,
    pub last_ok: Option<bool>,
    /// RFC 3339 time of the last check.
    pub last_check: Option<String>,
}

impl Controller {
    /// Starts health checking: installs a [`HealthChecker`] (its threads
    /// start as the next publish syncs it with the configuration).
    pub(in crate::control) fn start_health(&mut self) -> anyhow::Result<()> {
        self.set_health(Box::new(HealthChecker::new()));
        self.publish()
    }

    /// From `tick`: takes the check results that arrived (never blocks);
    /// on a change of state republishes the snapshot and notifies.
    pub(in crate::control) fn poll_health(&mut self) {
        let mut events = self.health.poll();
        let reweighted = self.health.take_republish();
        if events.is_empty() && !reweighted {
            return;
        }
        if let Err(e) = self.publish() {
            tracing::error!("health: cannot publish the new pool: {e:#}");
        }
        let snap = self.shared.snapshot.load();
        let view = self
            .stats
            .list_view(&self.cfg, &snap, &self.shared.registry, &*self.health);
        for ev in &mut events {
            ev.configuration = Some(view.clone());
            self.notifier.send(ev, &self.cfg.notify);
        }
    }

    /// Every configured server's health, in configuration order.
    pub fn health_status(&self) -> Vec<ServerHealthStatus> {
        let mut out = Vec::new();
        for sc in &self.cfg.services {
            let check = sc
                .health_check
                .as_ref()
                .map_or("none", |h| h.kind.name())
                .to_string();
            for srv in &sc.servers {
                let st = self.health.status(sc, srv);
                let last = self.health.last_check(sc, srv);
                out.push(ServerHealthStatus {
                    service: sc.key(),
                    server: srv.ident(sc),
                    check: check.clone(),
                    state: st.state.to_string(),
                    detail: st.detail,
                    last_result: last.as_ref().map(|l| l.text.clone()),
                    last_ok: last.as_ref().map(|l| l.ok),
                    last_check: last.as_ref().map(|l| rfc3339(l.at)),
                });
            }
        }
        out
    }
}
