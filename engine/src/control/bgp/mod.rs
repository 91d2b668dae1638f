//! `[bgp]`: which VIPs this director announces (SPEC §7 "Scale-out").
//!
//! rvs never speaks BGP: BIRD 2 runs beside it and exports the routes of a
//! `protocol static rvs_vips` that rvs rewrites ([`routes`]) before asking
//! BIRD to reconfigure ([`bird`]). This module is the decision alone, with
//! no I/O, so every rule is unit-tested: a VIP is announced while one of
//! its services has a live server, and withdrawn (each cause can be turned
//! off by `withdraw_on`, except the operator's) on shutdown, when every
//! server is down, while the director is not master of its `[ha]` group,
//! and after `rvs ctl bgp withdraw` until `rvs ctl bgp announce`.

pub mod bird;
pub mod routes;
pub mod runtime;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::WithdrawOn;

/// Why a VIP is (not) announced; the first that applies wins, in this
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The director is stopping (`withdraw_on` "shutdown").
    Shutdown,
    /// `rvs ctl bgp withdraw`: sticks until `rvs ctl bgp announce`.
    Operator,
    /// Not master of the `[ha]` group (`withdraw_on` "backup").
    Backup,
    /// None of the VIP's services has a live server (`withdraw_on`
    /// "no-server").
    NoServer,
    /// Announced: a service of the VIP has a live server.
    Live,
    /// Announced although no server is live: `withdraw_on` lacks
    /// "no-server" (the director keeps attracting the VIP's traffic).
    Kept,
}

impl Reason {
    /// The name `rvs ctl status` and the logs show.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Shutdown => "shutdown",
            Reason::Operator => "operator",
            Reason::Backup => "backup",
            Reason::NoServer => "no-server",
            Reason::Live => "live",
            Reason::Kept => "kept",
        }
    }

    pub fn announced(self) -> bool {
        matches!(self, Reason::Live | Reason::Kept)
    }
}

/// What the controller knows of one VIP at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipInput {
    /// A service of the VIP has a server in its pool (up by health check,
    /// weight above zero).
    pub live: bool,
}

/// One VIP as `rvs ctl status --json` shows it under `"bgp"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpVipView {
    pub vip: Ipv4Addr,
    /// `announced` or `withdrawn`.
    pub state: String,
    /// `live`, `kept` (announced), `no-server`, `backup`, `operator`,
    /// `shutdown` (withdrawn).
    pub reason: String,
    /// When the state last changed (Unix seconds).
    pub since: u64,
}

/// `"bgp"` in `rvs ctl status --json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpView {
    pub bird_socket: String,
    pub routes_file: String,
    /// `ok` once BIRD took the current routes file, `pending` while it has
    /// not yet, `error` after a failed attempt (retried with backoff).
    pub bird: String,
    /// The last error talking to BIRD, if the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bird_error: Option<String>,
    /// Reconfigurations BIRD accepted, and attempts that failed.
    pub reconfigures: u64,
    pub failures: u64,
    pub vips: Vec<BgpVipView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VipState {
    reason: Reason,
    since: u64,
}

/// The announcement state of every VIP.
#[derive(Debug, Clone)]
pub struct Announcer {
    withdraw_on: WithdrawOn,
    operator: BTreeSet<Ipv4Addr>,
    shutdown: bool,
    vips: BTreeMap<Ipv4Addr, VipState>,
}

impl Announcer {
    pub fn new(withdraw_on: WithdrawOn) -> Announcer {
        Announcer {
            withdraw_on,
            operator: BTreeSet::new(),
            shutdown: false,
            vips: BTreeMap::new(),
        }
    }

    /// The rule, for one VIP. `master` is `None` without `[ha]`.
    pub fn decide(&self, vip: Ipv4Addr, input: VipInput, master: Option<bool>) -> Reason {
        let w = self.withdraw_on;
        if self.shutdown && w.shutdown {
            Reason::Shutdown
        } else if self.operator.contains(&vip) {
            Reason::Operator
        } else if master == Some(false) && w.backup {
            Reason::Backup
        } else if input.live {
            Reason::Live
        } else if w.no_server {
            Reason::NoServer
        } else {
            Reason::Kept
        }
    }

    /// Brings every VIP up to date: `vips` are the configured VIPs (one
    /// entry each), `master` the `[ha]` role (`None` without `[ha]`), `now`
    /// Unix seconds. Returns the VIPs whose announcement changed (added,
    /// removed, announced <-> withdrawn); the routes file is rewritten when
    /// it is not empty.
    pub fn update(
        &mut self,
        vips: &BTreeMap<Ipv4Addr, VipInput>,
        master: Option<bool>,
        now: u64,
    ) -> Vec<(Ipv4Addr, Option<Reason>)> {
        let mut changed = Vec::new();
        self.vips.retain(|vip, st| {
            let keep = vips.contains_key(vip);
            if !keep && st.reason.announced() {
                changed.push((*vip, None));
            }
            keep
        });
        for (&vip, &input) in vips {
            let reason = self.decide(vip, input, master);
            match self.vips.get_mut(&vip) {
                Some(st) => {
                    if st.reason.announced() != reason.announced() {
                        st.since = now;
                        changed.push((vip, Some(reason)));
                    }
                    st.reason = reason;
                }
                None => {
                    self.vips.insert(vip, VipState { reason, since: now });
                    if reason.announced() {
                        changed.push((vip, Some(reason)));
                    }
                }
            }
        }
        changed
    }

    /// `rvs ctl bgp withdraw`: the VIP stays withdrawn until
    /// [`Self::operator_announce`]. Returns false if it already was.
    pub fn operator_withdraw(&mut self, vip: Ipv4Addr) -> bool {
        self.operator.insert(vip)
    }

    /// `rvs ctl bgp announce`: ends an operator's withdrawal (the other
    /// rules still apply). Returns false if there was none.
    pub fn operator_announce(&mut self, vip: Ipv4Addr) -> bool {
        self.operator.remove(&vip)
    }

    /// SIGTERM/SIGINT: every VIP goes (with `withdraw_on` "shutdown").
    /// Returns whether that withdraws anything at all.
    pub fn shutdown(&mut self) -> bool {
        self.shutdown = true;
        self.withdraw_on.shutdown
    }

    /// The VIPs announced now, in order.
    pub fn announced(&self) -> Vec<Ipv4Addr> {
        self.vips
            .iter()
            .filter(|(_, st)| st.reason.announced())
            .map(|(vip, _)| *vip)
            .collect()
    }

    pub fn view(&self) -> Vec<BgpVipView> {
        self.vips
            .iter()
            .map(|(vip, st)| BgpVipView {
                vip: *vip,
                state: if st.reason.announced() {
                    "announced"
                } else {
                    "withdrawn"
                }
                .to_string(),
                reason: st.reason.name().to_string(),
                since: st.since,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn vips(list: &[(&str, bool)]) -> BTreeMap<Ipv4Addr, VipInput> {
        list.iter()
            .map(|(v, live)| (ip(v), VipInput { live: *live }))
            .collect()
    }

    const A: &str = "198.18.0.100";
    const B: &str = "198.18.0.101";

    #[test]
    fn live_vips_are_announced_dead_ones_withdrawn() {
        let mut a = Announcer::new(WithdrawOn::default());
        let ch = a.update(&vips(&[(A, true), (B, false)]), None, 10);
        // Only announcements are changes for a VIP seen the first time.
        assert_eq!(ch, vec![(ip(A), Some(Reason::Live))]);
        assert_eq!(a.announced(), vec![ip(A)]);
        let v = a.view();
        assert_eq!(v[1].state, "withdrawn");
        assert_eq!(v[1].reason, "no-server");
        assert_eq!(v[1].since, 10);
        // Nothing changes: no change reported, since kept.
        assert!(a
            .update(&vips(&[(A, true), (B, false)]), None, 20)
            .is_empty());
        // A loses its servers, B gains one.
        let ch = a.update(&vips(&[(A, false), (B, true)]), None, 30);
        assert_eq!(
            ch,
            vec![(ip(A), Some(Reason::NoServer)), (ip(B), Some(Reason::Live))]
        );
        assert_eq!(a.announced(), vec![ip(B)]);
        assert_eq!(a.view()[0].since, 30);
        // B's service is deleted: its route goes.
        let ch = a.update(&vips(&[(A, false)]), None, 40);
        assert_eq!(ch, vec![(ip(B), None)]);
        assert!(a.announced().is_empty());
    }

    #[test]
    fn backup_withdraws_everything_master_announces() {
        let mut a = Announcer::new(WithdrawOn::default());
        a.update(&vips(&[(A, true)]), Some(false), 1);
        assert!(a.announced().is_empty());
        assert_eq!(a.view()[0].reason, "backup");
        let ch = a.update(&vips(&[(A, true)]), Some(true), 2);
        assert_eq!(ch, vec![(ip(A), Some(Reason::Live))]);
        // Without "backup" in withdraw_on a backup keeps announcing.
        let mut a = Announcer::new(WithdrawOn {
            backup: false,
            ..WithdrawOn::default()
        });
        a.update(&vips(&[(A, true)]), Some(false), 1);
        assert_eq!(a.announced(), vec![ip(A)]);
    }

    #[test]
    fn no_server_can_be_turned_off() {
        let mut a = Announcer::new(WithdrawOn {
            no_server: false,
            ..WithdrawOn::default()
        });
        a.update(&vips(&[(A, false)]), None, 1);
        assert_eq!(a.announced(), vec![ip(A)]);
        assert_eq!(a.view()[0].reason, "kept");
    }

    #[test]
    fn operator_withdraw_sticks_until_announce() {
        let mut a = Announcer::new(WithdrawOn::default());
        a.update(&vips(&[(A, true), (B, true)]), None, 1);
        assert!(a.operator_withdraw(ip(A)));
        assert!(!a.operator_withdraw(ip(A)));
        let ch = a.update(&vips(&[(A, true), (B, true)]), None, 2);
        assert_eq!(ch, vec![(ip(A), Some(Reason::Operator))]);
        // Servers coming and going do not bring it back.
        a.update(&vips(&[(A, false), (B, true)]), None, 3);
        let ch = a.update(&vips(&[(A, true), (B, true)]), None, 4);
        assert!(ch.is_empty());
        assert_eq!(a.announced(), vec![ip(B)]);
        assert_eq!(a.view()[0].reason, "operator");
        assert!(a.operator_announce(ip(A)));
        assert!(!a.operator_announce(ip(A)));
        let ch = a.update(&vips(&[(A, true), (B, true)]), None, 5);
        assert_eq!(ch, vec![(ip(A), Some(Reason::Live))]);
        // An operator's announce does not override a dead pool.
        a.operator_withdraw(ip(A));
        a.operator_announce(ip(A));
        a.update(&vips(&[(A, false), (B, true)]), None, 6);
        assert_eq!(a.view()[0].reason, "no-server");
    }

    #[test]
    fn shutdown_withdraws_all_unless_turned_off() {
        let mut a = Announcer::new(WithdrawOn::default());
        a.update(&vips(&[(A, true), (B, true)]), None, 1);
        assert!(a.shutdown());
        let ch = a.update(&vips(&[(A, true), (B, true)]), None, 2);
        assert_eq!(ch.len(), 2);
        assert!(a.announced().is_empty());
        assert!(a.view().iter().all(|v| v.reason == "shutdown"));
        let mut a = Announcer::new(WithdrawOn::NONE);
        a.update(&vips(&[(A, true)]), None, 1);
        assert!(!a.shutdown());
        a.update(&vips(&[(A, true)]), None, 2);
        assert_eq!(a.announced(), vec![ip(A)]);
    }
}
