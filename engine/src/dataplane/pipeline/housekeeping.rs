//! Work a worker does between bursts: a new configuration's effect on
//! its own state, connection expiry, and keeping next hops resolved.

use super::*;

/// How often worker 0 walks the configured next hops to keep them resolved.
pub(super) const NEIGH_WARM_MS: u64 = 1000;

impl Pipeline {
    /// Takes in what a new configuration changes for this worker's own
    /// state: the connection timeouts (`[timeouts]`), and the synproxy's
    /// per-connection shifts the first time a service uses it.
    pub fn on_snapshot(&mut self, snap: &Snapshot) {
        self.conns.set_timeouts(snap.timeouts);
        if snap.has_fnat {
            self.conns
                .set_snat(&snap.snat_specs(), self.worker, self.workers);
        }
        self.synproxy.prepare(snap, self.conns.capacity());
        self.prepare_v6(snap);
        self.dests.refresh(snap);
    }

    /// Bounded background work, once per loop: expire connections, and
    /// (worker 0) keep the configured next hops resolved.
    pub fn housekeeping(&mut self, snap: &Snapshot, now_ms: u64, budget: usize) {
        let worker = self.worker;
        let stats = self.stats.clone();
        let persist = &self.shared.persist;
        self.conns.expire_some(now_ms, budget, |c| {
            stats.conns_expired.inc();
            release_template(snap, persist, c, now_ms);
            uncount(snap, worker, c);
        });
        self.expire_v6(snap, now_ms, budget);
        self.stats
            .conns
            .set((self.conns.len() + self.conns6_len()) as u64);
        self.stats.established_hits.set(self.established_hits);
        // Worker 0 keeps the next hops resolved: every second, and at once
        // when a new configuration may have brought new servers.
        let due = now_ms.saturating_sub(self.last_warm_ms) >= NEIGH_WARM_MS
            || snap.generation != self.warm_generation;
        if self.worker == 0 && due {
            self.last_warm_ms = now_ms;
            self.warm_generation = snap.generation;
            self.warm_neighbours(snap, now_ms);
            self.warm_neighbours6(snap, now_ms);
        }
    }
}
