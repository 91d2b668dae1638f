//! The reserved region: the next hops the configuration names, added and
//! retired by the control side only (cold path), so that learning about
//! other addresses never evicts them.

use super::*;

impl<A: NeighAddr> Table<A> {
    /// Makes `ips` the reserved set (control side, on every published
    /// configuration): new addresses get a reserved entry (seeded with the
    /// general entry's MAC if an answer to our request confirmed it), addresses
    /// no longer named are retired (their entries fall back to general
    /// learning). Addresses beyond [`reserved_capacity`](Self::reserved_capacity)
    /// stay general; their number is returned.
    pub fn reserve(&self, ips: &[A]) -> usize {
        let mut want: Vec<A> = ips
            .iter()
            .copied()
            .filter(|a| !a.is_unspecified())
            .collect();
        want.sort_unstable();
        want.dedup();
        let cap = self.reserved_capacity();
        let over = want.len().saturating_sub(cap);
        want.truncate(cap);
        let mut st = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        for &ip in &st.ips {
            if want.binary_search(&ip).is_err() {
                self.retire(ip);
            }
        }
        // Tombstones only accumulate: start afresh when they crowd the
        // region (readers meanwhile miss, fall back to the general region
        // and ask again: a few unresolved frames, never a wrong MAC).
        let adding = want
            .iter()
            .filter(|ip| st.ips.binary_search(ip).is_err())
            .count();
        if st.used + adding > self.rmask * 3 / 4 {
            st.used = self.rebuild(&want);
        } else {
            for &ip in &want {
                if st.ips.binary_search(&ip).is_err() && self.insert_reserved(ip) {
                    st.used += 1;
                }
            }
        }
        // Exactly the addresses reserved now: the retired ones' bits
        // go (their entries are tombstones already).
        let bits = want.iter().fold(0, |b, &ip| b | filter_bit(self.home(ip)));
        self.rfilter.store(bits, Ordering::Relaxed);
        st.ips = want;
        over
    }

    /// Turns the reserved entry of `ip` into a tombstone.
    fn retire(&self, ip: A) {
        if let Some((j, _)) = self.find_reserved(ip) {
            if let Some(g) = self.entries[j].lock() {
                if g.key() == ip.live() {
                    g.set(A::retired(ip.live()), g.mac(), g.learned());
                }
            }
        }
    }

    /// Gives `ip` a reserved entry: its own tombstone, else the first
    /// tombstone or free slot of its chain. True if a free slot was used.
    fn insert_reserved(&self, ip: A) -> bool {
        let h = self.home(ip);
        // Before the entry: a reader that sees it may probe for it.
        self.rfilter.fetch_or(filter_bit(h), Ordering::Relaxed);
        let mut reuse = None;
        let mut free = None;
        for i in 0..=self.rmask {
            let j = self.rbase + (h.wrapping_add(i) & self.rmask);
            let key = self.entries[j].key_now();
            if key == A::retired(ip.live()) {
                // Coming back: its old MAC is still the best guess.
                if let Some(g) = self.entries[j].lock() {
                    g.set(ip.live(), g.mac(), g.learned());
                }
                return false;
            }
            if A::is_retired(key) && reuse.is_none() {
                reuse = Some(j);
            }
            if key == A::FREE {
                free = Some(j);
                break;
            }
        }
        let Some(j) = reuse.or(free) else {
            return false;
        };
        // A MAC an answer confirmed is kept (hearsay is not). The workers'
        // clock is not ours: copy the MAC with its age and let readers judge
        // its freshness.
        let (mac, learned) = match self.find_general(ip) {
            Some((_, v)) if v.mac & (VALID | CONFIRMED) == VALID | CONFIRMED => (v.mac, v.learned),
            _ => (0, 0),
        };
        let e = &self.entries[j];
        if let Some(g) = e.lock() {
            g.take(ip.live(), mac, learned);
        }
        reuse.is_none()
    }

    /// Empties the reserved region and reserves `want` afresh, keeping the
    /// MACs already known; returns the slots used.
    fn rebuild(&self, want: &[A]) -> usize {
        let region = self.rbase..=self.rbase + self.rmask;
        let keep: Vec<(A, u64, u64)> = self.entries[region.clone()]
            .iter()
            .filter_map(|e| e.read())
            .filter(|v| v.key != A::FREE && want.binary_search(&v.ip()).is_ok())
            .map(|v| (v.ip(), v.mac, v.learned))
            .collect();
        for e in &self.entries[region] {
            if let Some(g) = e.lock() {
                g.take(A::FREE, 0, 0);
            }
        }
        let mut used = 0;
        for &ip in want {
            if self.insert_reserved(ip) {
                used += 1;
            }
            if let Some(&(_, mac, learned)) = keep.iter().find(|k| k.0 == ip) {
                if let Some((j, _)) = self.find_reserved(ip) {
                    if let Some(g) = self.entries[j].lock() {
                        g.set(ip.live(), mac, learned);
                    }
                }
            }
        }
        used
    }
}
