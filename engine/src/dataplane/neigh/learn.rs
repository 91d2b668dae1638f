//! Learning a neighbour's MAC: from ARP/NDP we receive and from a NAT
//! client's first packet, into the general region (a free, expired or, when
//! a request must go out, least recently used slot of the probe window) or,
//! for a configured next hop, the reserved one, whose MAC only an answer to
//! our own request replaces (the rules in the parent module's docs).

use super::*;

impl<A: NeighAddr> Table<A> {
    /// Claims a general slot for `ip` (which has none): the first free one,
    /// else an expired one, else (if `evict`) the least recently used one,
    /// preferring entries we never sent a request for. Returns it locked.
    #[inline(always)]
    pub(super) fn claim_general(
        &self,
        ip: A,
        now_ms: u64,
        evict: bool,
    ) -> Option<(usize, Guard<'_, A>)> {
        let h = self.home(ip);
        let mut expired = None;
        let mut lru: Option<(usize, (bool, u64))> = None;
        for i in 0..PROBE {
            let j = h.wrapping_add(i) & self.mask;
            let e = &self.entries[j];
            let key = e.key_now();
            if key == A::FREE {
                return Self::lock_free_for(e, ip.live()).map(|g| (j, g));
            }
            if key == ip.live() {
                let g = e.lock()?;
                return (g.key() == ip.live()).then_some((j, g));
            }
            let asked = e.asked_at();
            let used = e.learned.load(Ordering::Relaxed).max(asked);
            if expired.is_none() && now_ms.saturating_sub(used) > EXPIRE_MS {
                expired = Some((j, key));
            }
            let rank = (asked != 0, used);
            if lru.is_none_or(|(_, r)| rank < r) {
                lru = Some((j, rank));
            }
        }
        let (j, seen) = match (expired, lru) {
            (Some(x), _) => x,
            (None, Some((j, _))) if evict => (j, self.entries[j].key_now()),
            _ => return None,
        };
        self.take_seen(j, seen, ip.live())
    }

    /// Locks `e`, a free slot of the probe window when the walk read it,
    /// for `live`: taken (no MAC yet) while still free, kept when another
    /// walk gave it `live` meanwhile; `None` when it went to another
    /// address (or stayed busy).
    #[inline(always)]
    fn lock_free_for(e: &Entry<A>, live: A::Key) -> Option<Guard<'_, A>> {
        let g = e.lock()?;
        let k = g.key();
        if k == A::FREE {
            g.take(live, 0, 0);
        } else if k != live {
            return None;
        }
        Some(g)
    }

    /// Takes slot `j`, expired or chosen for eviction when the walk read
    /// `seen` there, for `live` (no MAC yet); `None` when someone else
    /// reused it meanwhile (it is theirs).
    #[inline(always)]
    fn take_seen(&self, j: usize, seen: A::Key, live: A::Key) -> Option<(usize, Guard<'_, A>)> {
        let g = self.entries[j].lock()?;
        if g.key() != seen {
            return None;
        }
        g.take(live, 0, 0);
        Some((j, g))
    }

    /// [`find_general`](Self::find_general), then, when `ip` has no
    /// general entry, [`claim_general`](Self::claim_general) without
    /// eviction, in one walk of the probe window: both stop at the
    /// window's first free slot or at `ip`'s entry, so the one walk visits
    /// the slots the two did (a new neighbour, a NAT client's first
    /// packet, is one probe of the table and one claim, not two probes).
    /// `None` when no slot could be taken. Returns the entry locked.
    #[inline(always)]
    fn find_or_claim_general(&self, ip: A, now_ms: u64) -> Option<(usize, Guard<'_, A>)> {
        let h = self.home(ip);
        let mut expired = None;
        for i in 0..PROBE {
            let j = h.wrapping_add(i) & self.mask;
            let e = &self.entries[j];
            let key = e.key_now();
            if key == A::FREE {
                // `find_general` ends here with nothing; `claim_general`
                // takes this slot.
                return Self::lock_free_for(e, ip.live()).map(|g| (j, g));
            }
            if key == ip.live() && e.read().unwrap_or(View::busy(key)).key == ip.live() {
                let g = e.lock()?;
                return (g.key() == ip.live()).then_some((j, g));
            }
            let used = e.learned.load(Ordering::Relaxed).max(e.asked_at());
            if expired.is_none() && now_ms.saturating_sub(used) > EXPIRE_MS {
                expired = Some((j, key));
            }
        }
        let (j, seen) = expired?;
        self.take_seen(j, seen, ip.live())
    }

    /// Records that `ip` is at `mac`, from unsolicited evidence: an ARP
    /// request to us, or a NAT client's first packet. A general entry takes
    /// it (as Linux does); a reserved entry never does: a MAC other than the
    /// one it holds only makes it ask now (rate-limited), so hearsay cannot
    /// redirect a configured next hop.
    pub fn learn(&self, ip: A, mac: MacAddr, now_ms: u64) {
        self.learn_from(ip, mac, now_ms, Source::Unsolicited);
    }

    /// [`learn`](Self::learn) unless `ip` has a fresh MAC already (what
    /// [`peek`](Self::peek) would return), for a NAT client's first packet
    /// (both families' new connections), in one walk of the general probe
    /// window: the home hashed once; the walk stops at the address's entry
    /// (kept when its MAC is fresh, else written) or at the first free
    /// slot, which takes the address, MAC and time in one write under its
    /// lock; with no free slot, the first expired one is taken, as
    /// `claim_general` without eviction. A multi-word key's probe read is
    /// the entry's view (no second read on a match). The entries end as
    /// `peek` then `learn` leave them (neigh/tests: the same operations on
    /// two tables with one hash key leave the same entries).
    #[inline(always)]
    pub fn learn_unless_fresh(&self, ip: A, mac: MacAddr, now_ms: u64) {
        if ip.is_unspecified() || mac.is_multicast() {
            return;
        }
        let bits = mac_to_u64(mac);
        let h = self.home(ip);
        // A new client is never a configured next hop: the filter skips
        // the reserved region's probe for (nearly) every one.
        let reserved = self
            .may_be_reserved(h)
            .then(|| self.find_reserved_at(h, ip));
        if let Some((j, v)) = reserved.flatten() {
            // `learn_from`'s reserved arm for unsolicited evidence: a
            // fresh MAC stays, another only makes it ask.
            if v.fresh_mac(now_ms).is_none() && (v.mac & MAC_BITS != bits || v.mac & VALID == 0) {
                self.entries[j].recheck.store(true, Ordering::Relaxed);
            }
            return;
        }
        let live = ip.live();
        let mut expired = None;
        for i in 0..PROBE {
            let j = h.wrapping_add(i) & self.mask;
            let e = &self.entries[j];
            let (key, view) = if A::ONE_WORD {
                (A::load(&e.key), None)
            } else {
                match e.read() {
                    Some(v) => (v.key, Some(v)),
                    None => (A::load(&e.key), None),
                }
            };
            if key == A::FREE {
                let Some(g) = e.lock() else { return };
                let k = g.key();
                if k == A::FREE {
                    g.take(live, VALID | bits, now_ms);
                } else if k == live {
                    Self::learn_locked(&g, live, bits, now_ms);
                }
                return;
            }
            if key == live {
                let v = view.unwrap_or_else(|| e.read().unwrap_or(View::busy(key)));
                if v.key == live {
                    if v.fresh_mac(now_ms).is_some() {
                        return;
                    }
                    if let Some(g) = e.lock() {
                        if g.key() == live {
                            Self::learn_locked(&g, live, bits, now_ms);
                        }
                    }
                    return;
                }
            }
            if expired.is_none() {
                let used = e.learned.load(Ordering::Relaxed).max(e.asked_at());
                if now_ms.saturating_sub(used) > EXPIRE_MS {
                    expired = Some((j, key));
                }
            }
        }
        let Some((j, seen)) = expired else { return };
        let e = &self.entries[j];
        let Some(g) = e.lock() else { return };
        // Someone else reused it meanwhile: leave it to them.
        if g.key() == seen {
            g.take(live, VALID | bits, now_ms);
        }
    }

    /// Unsolicited `bits` written into a held entry of `live`: confirmed
    /// still when an answer confirmed this same MAC (`learn_from`'s rule).
    #[inline(always)]
    fn learn_locked(g: &Guard<'_, A>, live: A::Key, bits: u64, now_ms: u64) {
        let old = g.mac();
        let confirmed = old & CONFIRMED != 0 && old & MAC_BITS == bits;
        g.set(
            live,
            VALID | bits | if confirmed { CONFIRMED } else { 0 },
            now_ms,
        );
    }

    /// Records an ARP reply addressed to us. Within [`ANSWER_MS`] of our
    /// latest request for the address it is an answer: it sets the MAC of a
    /// reserved entry and marks the MAC confirmed. Any other reply counts as
    /// unsolicited.
    pub fn learn_reply(&self, ip: A, mac: MacAddr, now_ms: u64) {
        self.learn_from(ip, mac, now_ms, Source::Reply);
    }

    /// Whether a reply to us now answers our latest request for entry `e`
    /// (the first reply within [`ANSWER_MS`] does; later ones are hearsay).
    fn take_answer(e: &Entry<A>, src: Source, now_ms: u64) -> bool {
        let r = e.requested.load(Ordering::Relaxed);
        src == Source::Reply
            && r != 0
            && r & ANSWERED == 0
            && now_ms.saturating_sub(r) <= ANSWER_MS
            && e.requested
                .compare_exchange(r, r | ANSWERED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Learns `mac` for `ip` (reserved entry first, as [`find`](Self::find)).
    #[inline(always)]
    fn learn_from(&self, ip: A, mac: MacAddr, now_ms: u64, src: Source) {
        if ip.is_unspecified() || mac.is_multicast() {
            return;
        }
        let bits = mac_to_u64(mac);
        if let Some((j, v)) = self.find_reserved(ip) {
            let e = &self.entries[j];
            if !Self::take_answer(e, src, now_ms) {
                if v.mac & MAC_BITS != bits || v.mac & VALID == 0 {
                    e.recheck.store(true, Ordering::Relaxed);
                }
                return;
            }
            if let Some(g) = e.lock() {
                if g.key() == ip.live() {
                    g.set(ip.live(), VALID | CONFIRMED | bits, now_ms);
                    e.recheck.store(false, Ordering::Relaxed);
                }
            }
            return;
        }
        let Some((j, g)) = self.find_or_claim_general(ip, now_ms) else {
            return;
        };
        let e = &self.entries[j];
        // Confirmed by an answer, or still the MAC an answer confirmed.
        let old = g.mac();
        let confirmed =
            Self::take_answer(e, src, now_ms) || (old & CONFIRMED != 0 && old & MAC_BITS == bits);
        let word = VALID | bits | if confirmed { CONFIRMED } else { 0 };
        g.set(ip.live(), word, now_ms);
        drop(g);
        if src == Source::Reply {
            e.recheck.store(false, Ordering::Relaxed);
        }
    }

    /// A gratuitous ARP (or other hearsay) says `ip` is at `mac`: if we know
    /// `ip` at another MAC, ask it now instead of believing it.
    pub fn recheck(&self, ip: A, mac: MacAddr, now_ms: u64) {
        if let Some((j, v)) = self.find(ip) {
            if v.fresh_mac(now_ms).is_some_and(|m| m != mac) {
                self.entries[j].recheck.store(true, Ordering::Relaxed);
            }
        }
    }
}
