//! The control thread's side of `[ha]` and `[bgp]`: the HA thread's role
//! changes logged and mailed, the BGP announcements re-evaluated (health,
//! role, operator), `rvs ctl bgp`, and both shut down cleanly.

use std::time::Duration;

use super::{bgp, edit, ha, notify, Controller};

impl Controller {
    /// With `[ha]`: whether this director is master now.
    pub(super) fn ha_master(&self) -> Option<bool> {
        self.ha.as_ref().map(|h| h.view().role == "master")
    }

    /// Re-evaluates the `[bgp]` announcements (health, role, operator).
    pub(super) fn poll_bgp(&mut self, force: bool) {
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
    pub(super) fn bgp_command(&mut self, service: &str, withdraw: bool) -> Result<String, String> {
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
    pub(super) fn poll_ha(&mut self) {
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
}
