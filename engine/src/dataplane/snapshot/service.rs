//! Services and servers as the workers see them in one snapshot, the
//! schedulers' view of them, and the health state a snapshot is built with.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::DestShared;
use crate::config::{ServerConfig, ServiceConfig};
use crate::conn::Method;
use crate::sched::{self, Dests, Sched};

/// One real server of one service in this snapshot (`A`: its address
/// family; the IPv4 path keeps its plain `Server`).
pub struct Server<A = Ipv4Addr> {
    pub addr: A,
    /// The port connections go to (the VIP port for DR/TUN).
    pub port: u16,
    pub weight: u32,
    pub method: Method,
    /// Present and up by health check.
    pub usable: bool,
    pub upper: u32,
    pub lower: u32,
    pub shared: Arc<DestShared>,
}

impl<A> Server<A> {
    /// Recomputes the overload flag after this worker changed a count.
    /// Without an upper threshold the server is never overloaded: the flag
    /// is cleared (a worker still on an older snapshot may have set it).
    /// The common case (no threshold, flag clear: nothing to do) inlined
    /// into every new and ending connection's path, the rest out of line.
    #[inline(always)]
    pub fn update_overload(&self) {
        if self.upper == 0 && !self.shared.overloaded.load(Relaxed) {
            return;
        }
        self.update_overload_slow();
    }

    /// One of worker `worker`'s connections to this server moved between
    /// active and inactive (`was` -> `is`): the counts follow, and the
    /// overload flag with them.
    #[inline]
    pub fn count_activity(&self, worker: usize, was: bool, is: bool) {
        if self.shared.per_worker[worker].shift(was, is) {
            self.update_overload();
        }
    }

    #[inline(never)]
    fn update_overload_slow(&self) {
        if self.upper == 0 {
            if self.shared.overloaded.load(Relaxed) {
                self.shared.overloaded.store(false, Relaxed);
            }
            return;
        }
        let conns = self.shared.active().wrapping_add(self.shared.inactive());
        let was = self.shared.overloaded.load(Relaxed);
        let now = sched::overload_next(was, conns, self.upper, self.lower);
        if now != was {
            self.shared.overloaded.store(now, Relaxed);
        }
    }
}

impl<A> Server<A> {
    /// Applies this snapshot's thresholds to the flag, as IPVS does when a
    /// server is edited (`__ip_vs_update_dest`): a threshold removed or
    /// raised clears it; and a server already at or over its (new)
    /// threshold is overloaded at once rather than after one more
    /// connection.
    pub(super) fn apply_thresholds(&self) {
        let d = &self.shared;
        let before = d.upper.swap(self.upper, Relaxed);
        if self.upper == 0 || self.upper > before {
            d.overloaded.store(false, Relaxed);
        }
        if self.upper != 0 && d.active().wrapping_add(d.inactive()) >= self.upper {
            d.overloaded.store(true, Relaxed);
        }
    }
}

/// One virtual service.
pub struct Service {
    /// Stable id (persistence templates key on it).
    pub id: u16,
    pub proto: u8,
    pub vip: Ipv4Addr,
    /// 0 = all ports; the first of `ports` for a service over several.
    pub port: u16,
    /// Every port of a service over several (`ports = [80, 443]`), empty
    /// for one port. The lookup finds it through `Snapshot::by_port`.
    pub ports: Box<[u16]>,
    /// Shared with the previous snapshot while the server list is unchanged.
    pub sched: Arc<Sched>,
    pub servers: Vec<Server>,
    /// 0 = no persistence.
    pub persistence_ms: u64,
    pub persistence_mask: Ipv4Addr,
    pub sorry: Option<Server>,
    /// The service lost its quorum (keepalived): the live weight is below
    /// `quorum`, so the sorry server takes every new connection; the real
    /// servers keep the connections they have. Only set with a sorry server.
    pub sorry_only: bool,
    /// One-packet scheduling: each datagram scheduled, no connection entry.
    pub ops: bool,
    /// `[timeouts] syn_cookies` applies: a TCP service whose servers (and
    /// sorry server) are all NAT. DR/TUN replies bypass the director, so it
    /// could not shift their sequence numbers; a service with any DR/TUN
    /// server keeps the plain path. Taken from each snapshot, so a reload
    /// turns it on or off for new connections at once.
    pub synproxy: bool,
}

/// The scheduler's view of a service's servers: configuration from the
/// snapshot, counts summed over workers.
pub struct LiveDests<'a, A = Ipv4Addr>(pub &'a [Server<A>]);

impl<A> Dests for LiveDests<'_, A> {
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn weight(&self, i: usize) -> u32 {
        self.0[i].weight
    }
    #[inline]
    fn usable(&self, i: usize) -> bool {
        self.0[i].usable
    }
    #[inline]
    fn overloaded(&self, i: usize) -> bool {
        let s = &self.0[i];
        s.upper != 0 && s.shared.overloaded.load(Relaxed)
    }
    #[inline]
    fn active(&self, i: usize) -> u32 {
        self.0[i].shared.active()
    }
    #[inline]
    fn inactive(&self, i: usize) -> u32 {
        self.0[i].shared.inactive()
    }
    #[inline]
    fn candidate(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|s| {
            s.usable && s.weight > 0 && !(s.upper != 0 && s.shared.overloaded.load(Relaxed))
        })
    }
}

/// What health checks say of one server when a snapshot is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// In the pool with its configured weight.
    Up,
    /// Out of the pool; its connections are expired (`on_failure = "remove"`).
    Down,
    /// In the pool with weight 0: no new connections, existing ones live on
    /// (`on_failure = "weight-zero"`, keepalived's inhibit_on_failure).
    Inhibited,
}

/// The health-check state a snapshot is built with.
pub trait HealthView {
    fn health(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Health;
    /// The server's weight while in the pool: a health check may set it
    /// (exec `dynamic_weight`, keepalived's misc_dynamic).
    fn weight(&self, _svc: &ServiceConfig, srv: &ServerConfig) -> u32 {
        srv.weight
    }
    /// Whether the service lost its quorum (its live weight is below
    /// `quorum`): with a sorry server, the sorry server takes over.
    fn quorum_lost(&self, _svc: &ServiceConfig) -> bool {
        false
    }
}

/// Every server up (no health checks, or before the first result).
pub struct AllUp;

impl HealthView for AllUp {
    fn health(&self, _: &ServiceConfig, _: &ServerConfig) -> Health {
        Health::Up
    }
}
