//! The controller's `[bgp]` state: the [`Announcer`] fed from the running
//! snapshot and the `[ha]` role, and the [`Link`] to BIRD it hands every
//! new routes file to.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::bird::Link;
use super::{routes, Announcer, BgpView, VipInput};
use crate::config::BgpConfig;
use crate::dataplane::snapshot::Snapshot;

/// How often the controller re-evaluates the VIPs (health and role
/// changes take effect within this).
pub const POLL: Duration = Duration::from_millis(100);

pub struct BgpRuntime {
    cfg: BgpConfig,
    pub announcer: Announcer,
    link: Link,
    /// The generation of the routes file last submitted.
    gen: u64,
    /// The announced list submitted last.
    submitted: Option<Vec<Ipv4Addr>>,
    pub last_poll: Instant,
}

impl BgpRuntime {
    /// Writes the routes file for `vips` at once (BIRD may start after
    /// rvs and include it), then starts the BIRD thread, which asks BIRD
    /// to load it. A file that cannot be written is logged and retried by
    /// the thread: never fatal.
    pub fn start(
        cfg: &BgpConfig,
        vips: &BTreeMap<Ipv4Addr, VipInput>,
        master: Option<bool>,
    ) -> std::io::Result<BgpRuntime> {
        let mut announcer = Announcer::new(cfg.withdraw_on);
        announcer.update(vips, master, unix_now());
        let text = routes::text(&announcer.announced());
        if let Err(e) = routes::write_atomically(&cfg.routes_file, text.as_bytes()) {
            tracing::error!(
                "bgp: cannot write {}: {e} (retrying)",
                cfg.routes_file.display()
            );
        }
        let link = Link::start(cfg.bird_socket.clone(), cfg.routes_file.clone())?;
        let mut rt = BgpRuntime {
            cfg: cfg.clone(),
            announcer,
            link,
            gen: 0,
            submitted: None,
            last_poll: Instant::now(),
        };
        rt.submit();
        Ok(rt)
    }

    /// Re-evaluates every VIP; logs each change and hands a changed list to
    /// BIRD. Returns whether the announced list changed.
    pub fn update(&mut self, vips: &BTreeMap<Ipv4Addr, VipInput>, master: Option<bool>) -> bool {
        self.last_poll = Instant::now();
        for (vip, reason) in self.announcer.update(vips, master, unix_now()) {
            match reason {
                Some(r) if r.announced() => {
                    tracing::info!(%vip, reason = r.name(), "bgp: announcing")
                }
                Some(r) => tracing::warn!(%vip, reason = r.name(), "bgp: withdrawing"),
                None => tracing::info!(%vip, "bgp: withdrawing (no service left on the VIP)"),
            }
        }
        self.submit()
    }

    fn submit(&mut self) -> bool {
        let now = self.announcer.announced();
        if self.submitted.as_ref() == Some(&now) {
            return false;
        }
        self.gen += 1;
        self.link.submit(self.gen, routes::text(&now));
        self.submitted = Some(now);
        true
    }

    /// Waits (at most `timeout`) until BIRD took the newest routes file.
    pub fn wait_applied(&self, timeout: Duration) -> bool {
        self.link.wait_applied(self.gen, timeout)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(u64::from(self.cfg.shutdown_grace_ms))
    }

    /// What metrics show: each VIP, announced or not.
    pub fn metrics(&self) -> Vec<(Ipv4Addr, bool)> {
        let ann = self.announcer.announced();
        self.announcer
            .view()
            .iter()
            .map(|v| (v.vip, ann.contains(&v.vip)))
            .collect()
    }

    pub fn view(&self) -> BgpView {
        let st = self.link.status();
        BgpView {
            bird_socket: self.cfg.bird_socket.display().to_string(),
            routes_file: self.cfg.routes_file.display().to_string(),
            bird: if st.applied >= st.wanted {
                "ok"
            } else if st.last_error.is_some() {
                "error"
            } else {
                "pending"
            }
            .to_string(),
            bird_error: st.last_error,
            reconfigures: st.reconfigures,
            failures: st.failures,
            vips: self.announcer.view(),
        }
    }
}

/// What the snapshot says of each VIP: live while one of its services has
/// a server in the pool (up by health check, weight above zero).
pub fn vip_inputs(snap: &Snapshot) -> BTreeMap<Ipv4Addr, VipInput> {
    let mut out: BTreeMap<Ipv4Addr, VipInput> = BTreeMap::new();
    for svc in &snap.services {
        let live = svc.servers.iter().any(|s| s.usable && s.weight > 0);
        out.entry(svc.vip).or_insert(VipInput { live: false }).live |= live;
    }
    out
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
