//! Persistence templates: (service, client network) -> real server, shared
//! by every worker (the flows of one client network hash to different
//! workers), lock-free for readers.
//!
//! # What IPVS does (`ip_vs_sched_persist`, `ip_vs_conn_expire`)
//!
//! A persistent service masks the client address with its netmask and
//! looks up a template connection for (service, client net). If there is
//! one and its server is still available (`ip_vs_check_template`: present,
//! and not weight 0 when `expire_quiescent_template` is set), the new
//! connection goes to that server; otherwise the scheduler picks one and a
//! template is created with the persistence timeout. Each new connection
//! made from a template restarts the template's timer (now + timeout), and
//! the template controls its connections: when its timer fires while a
//! controlled connection is alive, it is re-armed for 60 s, again and again,
//! until no controlled connection is left.
//!
//! # What rvs implements
//!
//! - [`PersistTable::lookup`] (or [`PersistTable::lookup_valid`], which
//!   also drops a template whose server the caller declares invalid, as
//!   `ip_vs_check_template` does) finds a live template and extends its
//!   expiry to at least `now + timeout`, as the kernel restarts the timer on
//!   each new connection.
//! - [`PersistTable::insert`] stores the template after a scheduling
//!   decision, expiring at `now + timeout`.
//! - [`PersistTable::hold`] / [`PersistTable::release`], called when a
//!   connection made with the template is created / freed, count its
//!   controlled connections: a held template does not expire. On the last
//!   release, a template whose expiry has passed lives until the kernel's
//!   next 60-s re-check would have found it unused: `expires + k * 60 s`,
//!   the first such instant after the release. A data plane that does not
//!   call hold/release gets templates that expire `timeout` after the last
//!   new connection.
//! - Differences: the kernel, once it has delayed a template, keeps 60 s as
//!   that template's timeout for later connections too; rvs keeps the
//!   service's persistence timeout. The table has a fixed capacity (IPVS's
//!   grows): when the 4 ways of a set are all taken, the live template
//!   without held connections that expires first is replaced, and those
//!   clients lose their persistence; a template that controls connections
//!   is never replaced (as in the kernel, where it lives as long as they
//!   do), so a set whose 4 ways all control connections stores nothing
//!   and the new client is scheduled without persistence.
//!
//! # Holds: exactly the template that was held
//!
//! The data plane takes a hold with the server the template sent the
//! connection to (`hold(svc, net, server)`, which fails unless the live
//! template for (svc, net) still maps to that server), marks the
//! connection as holding only when the hold succeeded, and gives it back
//! with the same triple, which it rebuilds from the connection record
//! alone (service id, client address, server id): the connection table has
//! no room for a handle, and it hands back only the record when it expires
//! or evicts a connection. A (svc, net, server) triple names exactly one
//! held entry because an entry's key and server never change while it is
//! held:
//!
//! - a template that controls connections is never replaced by an insert;
//! - when it must stop sending clients to its server (`lookup_valid` finds
//!   the server invalid, `remove`, `forget_server`, `forget_service`), it
//!   is *retired* instead of cleared: invisible to lookups and inserts,
//!   kept only to count its holds, and freed by its last release (the
//!   kernel unhashes such a template and frees it when its last controlled
//!   connection goes);
//! - a new template for the same (svc, net) and the same server revives
//!   the retired entry (holds kept) rather than taking another way, so a
//!   release never decrements a template that replaced the one it held;
//!   one for another server takes another way.
//!
//! The only way two held entries can share a triple is the insert race
//! below (two workers storing the same client net in two ways at the same
//! instant): their releases may then be counted against either, which
//! moves a hold between two templates of the same client net and server
//! and never leaves a hold that no release will give back.
//!
//! # Layout and races
//!
//! The table is 4-way set-associative, indexed by a keyed hash of
//! (service, client net): the key is a per-table secret drawn at
//! construction (as the connection table's), so nobody can choose client
//! addresses that land in one set and evict a victim's template. An entry
//! is a sequence counter, the key, the server id, the expiry (ms, 0 =
//! empty), the hold count and the retired flag, all atomics. Readers take
//! no lock: they read an entry between two reads of its sequence counter
//! and retry if it changed (seqlock), so they never see a key with another
//! entry's server. Writers (insert, refresh, hold, release, forget) own an
//! entry for a few stores by moving its counter to an odd value with a
//! compare-and-swap; a writer that finds the entry owned spins a few times
//! and then gives up (a refresh or hold is then skipped, an insert does not
//! cache: the next connection schedules again). A release does not give
//! up (a lost release would hold its template for ever): it spins until
//! the entry is free, yielding the CPU now and then; an owner keeps an
//! entry for a handful of stores.
//!
//! Benign races: two workers that miss on the same client net at the same
//! time may both schedule; `insert` returns the server of a template that
//! another worker stored first (use it), but two inserts into two different
//! ways at the same instant can leave two templates, of which lookups use
//! the first (IPVS has the same window between its lookup and its insert).

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// How long the kernel re-arms a template that still controls connections.
pub const TEMPLATE_HOLD_MS: u64 = 60_000;

const WAYS: usize = 4;
const SPINS: u32 = 64;

/// `ip & netmask`: the client network a template is keyed by.
#[inline]
pub fn mask(ip: Ipv4Addr, netmask: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & u32::from(netmask))
}

#[derive(Default)]
struct Slot {
    seq: AtomicU32,
    server: AtomicU32,
    key: AtomicU64,
    /// Expiry in ms; 0 = empty.
    expires: AtomicU64,
    /// Connections alive that were made with this template.
    holds: AtomicU32,
    /// No longer a template (its server went away): kept only to count
    /// the holds of its connections, freed by the last release.
    retired: AtomicBool,
}

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    server: u32,
    expires: u64,
    holds: u32,
    retired: bool,
}

impl Entry {
    /// A template lookups and inserts see.
    #[inline]
    fn live(&self, now: u64) -> bool {
        !self.retired && self.expires != 0 && (self.holds > 0 || now < self.expires)
    }

    /// Counts connections: never replaced, never cleared.
    #[inline]
    fn held(&self) -> bool {
        self.holds > 0 && (self.retired || self.expires != 0)
    }
}

/// Multiply two 64-bit words to 128 bits and fold the halves together.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// MurmurHash3's 64-bit finaliser.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// One live template, as [`PersistTable::templates`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateInfo {
    pub service: u32,
    pub client_net: Ipv4Addr,
    pub server_id: u32,
    /// Until it expires (0 while held past its expiry: it lives as long
    /// as the connections it controls).
    pub left_ms: u64,
    /// Connections it controls.
    pub holds: u32,
}

/// A fixed-capacity persistence template table shared by all workers.
pub struct PersistTable {
    slots: Box<[Slot]>,
    set_bits: u32,
    /// The set hash's secret.
    secret: [u64; 3],
}

#[inline]
fn key_of(svc: u32, client_net: Ipv4Addr) -> u64 {
    ((svc as u64) << 32) | u32::from(client_net) as u64
}

impl PersistTable {
    /// A table of at least `capacity` templates (rounded up to a power of
    /// two, at least 4), its set hash keyed with a fresh random secret.
    /// Allocates here only.
    pub fn new(capacity: usize) -> PersistTable {
        // std's `RandomState` carries per-process keys drawn from the OS
        // (as the connection table's seed); SipHash runs here only.
        let rs = std::collections::hash_map::RandomState::new();
        let mut secret = [0u64; 3];
        for (i, w) in secret.iter_mut().enumerate() {
            let mut h = rs.build_hasher();
            h.write_usize(i);
            h.write_usize(w as *const u64 as usize);
            *w = h.finish();
        }
        PersistTable::with_secret(capacity, secret)
    }

    /// As [`new`](Self::new) with a secret derived from `seed` (tests,
    /// reproducible runs).
    pub fn with_seed(capacity: usize, seed: u64) -> PersistTable {
        let mut x = seed;
        let mut secret = [0u64; 3];
        for w in &mut secret {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *w = fmix64(x);
        }
        PersistTable::with_secret(capacity, secret)
    }

    fn with_secret(capacity: usize, secret: [u64; 3]) -> PersistTable {
        let total = capacity.max(WAYS).next_power_of_two();
        let sets = total / WAYS;
        PersistTable {
            slots: (0..total).map(|_| Slot::default()).collect(),
            set_bits: sets.trailing_zeros(),
            secret,
        }
    }

    /// Number of templates the table can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The first way of the set of `key`: a keyed hash (two folded
    /// multiplies with the secret), so the set of a key cannot be computed
    /// from outside.
    #[inline]
    fn set_base(&self, key: u64) -> usize {
        if self.set_bits == 0 {
            return 0;
        }
        let [s0, s1, s2] = self.secret;
        let h = fold_mul(fold_mul(key ^ s0, s1 | 1) ^ s2, 0xa076_1d64_78bd_642f);
        (h >> (64 - self.set_bits)) as usize * WAYS
    }

    /// A consistent copy of an entry, or `None` if writers kept it busy.
    fn read(&self, i: usize) -> Option<Entry> {
        let s = &self.slots[i];
        for _ in 0..SPINS {
            let s1 = s.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let e = Entry {
                    key: s.key.load(Ordering::Relaxed),
                    server: s.server.load(Ordering::Relaxed),
                    expires: s.expires.load(Ordering::Relaxed),
                    holds: s.holds.load(Ordering::Relaxed),
                    retired: s.retired.load(Ordering::Relaxed),
                };
                fence(Ordering::Acquire);
                if s.seq.load(Ordering::Relaxed) == s1 {
                    return Some(e);
                }
            }
            std::hint::spin_loop();
        }
        None
    }

    /// One attempt to own an entry for writing.
    #[inline]
    fn try_lock(&self, i: usize) -> Option<u32> {
        let s = &self.slots[i];
        let cur = s.seq.load(Ordering::Relaxed);
        if cur & 1 == 0
            && s.seq
                .compare_exchange_weak(
                    cur,
                    cur.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            fence(Ordering::Release);
            return Some(cur);
        }
        None
    }

    /// Own an entry for writing; `None` if it stayed busy.
    fn lock(&self, i: usize) -> Option<u32> {
        for _ in 0..SPINS {
            if let Some(seq) = self.try_lock(i) {
                return Some(seq);
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Own an entry for writing, however long it takes (releases only).
    fn lock_wait(&self, i: usize) -> u32 {
        let mut spins = 0u32;
        loop {
            if let Some(seq) = self.try_lock(i) {
                return seq;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS) {
                // The owner may have been preempted (the control thread).
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    #[inline]
    fn unlock(&self, i: usize, seq: u32) {
        self.slots[i]
            .seq
            .store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The fields of a locked entry (no other writer can change them).
    fn locked(&self, i: usize) -> Entry {
        let s = &self.slots[i];
        Entry {
            key: s.key.load(Ordering::Relaxed),
            server: s.server.load(Ordering::Relaxed),
            expires: s.expires.load(Ordering::Relaxed),
            holds: s.holds.load(Ordering::Relaxed),
            retired: s.retired.load(Ordering::Relaxed),
        }
    }

    fn clear_locked(&self, i: usize) {
        let s = &self.slots[i];
        s.expires.store(0, Ordering::Relaxed);
        s.holds.store(0, Ordering::Relaxed);
        s.key.store(0, Ordering::Relaxed);
        s.server.store(0, Ordering::Relaxed);
        s.retired.store(false, Ordering::Relaxed);
    }

    /// A locked template stops being one: cleared, or retired while
    /// connections still hold it.
    fn drop_locked(&self, i: usize, cur: &Entry) {
        if cur.holds > 0 {
            self.slots[i].retired.store(true, Ordering::Relaxed);
        } else {
            self.clear_locked(i);
        }
    }

    /// The index of the live entry for `key`, with its copy.
    fn find(&self, key: u64, now: u64) -> Option<(usize, Entry)> {
        let base = self.set_base(key);
        (base..base + WAYS).find_map(|i| {
            self.read(i)
                .filter(|e| e.key == key && e.live(now))
                .map(|e| (i, e))
        })
    }

    /// The server of the live template for (svc, client_net), extending its
    /// expiry to at least `now_ms + timeout_ms` (call it for a new
    /// connection of a persistent service).
    pub fn lookup(
        &self,
        svc: u32,
        client_net: Ipv4Addr,
        now_ms: u64,
        timeout_ms: u64,
    ) -> Option<u32> {
        self.lookup_valid(svc, client_net, now_ms, timeout_ms, |_| true)
    }

    /// As [`lookup`](Self::lookup), but a template whose server `valid`
    /// rejects (gone, down, or weight 0 with expire-quiescent-template) is
    /// dropped (retired while connections hold it) and `None` returned, as
    /// `ip_vs_check_template` does.
    pub fn lookup_valid(
        &self,
        svc: u32,
        client_net: Ipv4Addr,
        now_ms: u64,
        timeout_ms: u64,
        valid: impl FnOnce(u32) -> bool,
    ) -> Option<u32> {
        let key = key_of(svc, client_net);
        let (i, e) = self.find(key, now_ms)?;
        if !valid(e.server) {
            if let Some(seq) = self.lock(i) {
                let cur = self.locked(i);
                if cur.key == key && cur.server == e.server && cur.live(now_ms) {
                    self.drop_locked(i, &cur);
                }
                self.unlock(i, seq);
            }
            return None;
        }
        let want = now_ms.saturating_add(timeout_ms);
        if e.expires < want {
            if let Some(seq) = self.lock(i) {
                let cur = self.locked(i);
                if cur.key == key
                    && cur.server == e.server
                    && !cur.retired
                    && cur.expires != 0
                    && cur.expires < want
                {
                    self.slots[i].expires.store(want, Ordering::Relaxed);
                }
                self.unlock(i, seq);
            }
        }
        Some(e.server)
    }

    /// Store the template (svc, client_net) -> server_id, created at
    /// `now_ms`, expiring at `now_ms + timeout_ms`. Returns the server the
    /// template maps to: `server_id`, or the server of a live template that
    /// another worker stored first (send the connection there). When there
    /// is no room (every way of the set controls connections) or the entry
    /// to replace stays busy, nothing is stored and `server_id` is
    /// returned (a [`hold`](Self::hold) then fails).
    pub fn insert(
        &self,
        svc: u32,
        client_net: Ipv4Addr,
        server_id: u32,
        now_ms: u64,
        timeout_ms: u64,
    ) -> u32 {
        let key = key_of(svc, client_net);
        let base = self.set_base(key);
        let mut entries = [None; WAYS];
        for (w, e) in entries.iter_mut().enumerate() {
            *e = self.read(base + w);
            if let Some(e) = e {
                if e.key == key && e.live(now_ms) {
                    return e.server;
                }
            }
        }
        // Victim: the retired entry of this very template (revived with its
        // holds), else a dead entry of this key, else an empty or dead
        // entry, else the live one without held connections expiring first.
        // Never one that counts connections.
        let revives = |e: &Entry| e.retired && e.holds > 0 && e.key == key && e.server == server_id;
        let rank = |e: &Option<Entry>| -> Option<(u8, u64)> {
            match e {
                None => None, // busy
                Some(e) if revives(e) => Some((0, 0)),
                Some(e) if e.held() => None,
                Some(e) if !e.live(now_ms) && e.key == key => Some((1, 0)),
                Some(e) if !e.live(now_ms) => Some((2, e.expires)),
                Some(e) => Some((3, e.expires)),
            }
        };
        let Some(w) = (0..WAYS)
            .filter(|&w| rank(&entries[w]).is_some())
            .min_by_key(|&w| rank(&entries[w]))
        else {
            return server_id;
        };
        let i = base + w;
        let Some(seq) = self.lock(i) else {
            return server_id;
        };
        // Another worker may have stored this key meanwhile.
        let cur = self.locked(i);
        if cur.key == key && cur.live(now_ms) {
            self.unlock(i, seq);
            return cur.server;
        }
        for ow in (0..WAYS).filter(|&ow| ow != w) {
            if let Some(e) = self.read(base + ow) {
                if e.key == key && e.live(now_ms) {
                    self.unlock(i, seq);
                    return e.server;
                }
            }
        }
        let s = &self.slots[i];
        let expires = now_ms.saturating_add(timeout_ms).max(1);
        if revives(&cur) {
            s.expires.store(expires, Ordering::Relaxed);
            s.retired.store(false, Ordering::Relaxed);
        } else if !cur.held() {
            s.key.store(key, Ordering::Relaxed);
            s.server.store(server_id, Ordering::Relaxed);
            s.expires.store(expires, Ordering::Relaxed);
            s.holds.store(0, Ordering::Relaxed);
            s.retired.store(false, Ordering::Relaxed);
        }
        // (Held meanwhile: nothing stored.)
        self.unlock(i, seq);
        server_id
    }

    /// A connection made with the template (svc, client_net) -> `server_id`
    /// was (or is about to be) created: the template does not expire while
    /// it lives. False, and nothing held, if the live template for
    /// (svc, client_net) is not one to `server_id` (there is none, another
    /// replaced it, or the entry stayed busy): the connection then must not
    /// call [`release`](Self::release).
    pub fn hold(&self, svc: u32, client_net: Ipv4Addr, server_id: u32, now_ms: u64) -> bool {
        let key = key_of(svc, client_net);
        let Some((i, e)) = self.find(key, now_ms) else {
            return false;
        };
        if e.server != server_id {
            return false;
        }
        let Some(seq) = self.lock(i) else {
            return false;
        };
        let cur = self.locked(i);
        let ok = cur.key == key && cur.server == server_id && cur.live(now_ms);
        if ok {
            self.slots[i]
                .holds
                .store(cur.holds.saturating_add(1), Ordering::Relaxed);
        }
        self.unlock(i, seq);
        ok
    }

    /// A connection counted by [`hold`](Self::hold) (with the same
    /// arguments) was freed. When it was the last one, a retired template
    /// is freed, and a template whose expiry has passed lives until the
    /// kernel's next 60-s re-check instant. Returns whether a held entry was
    /// found (false: nothing was held by this triple).
    pub fn release(&self, svc: u32, client_net: Ipv4Addr, server_id: u32, now_ms: u64) -> bool {
        let key = key_of(svc, client_net);
        let base = self.set_base(key);
        let matches = |e: &Entry| e.key == key && e.server == server_id && e.held();
        for i in base..base + WAYS {
            // An entry's key and server do not change while it is held: one
            // that does not match now cannot hold this connection.
            if self.read(i).is_some_and(|e| !matches(&e)) {
                continue;
            }
            let seq = self.lock_wait(i);
            let cur = self.locked(i);
            if !matches(&cur) {
                self.unlock(i, seq);
                continue;
            }
            let s = &self.slots[i];
            let holds = cur.holds - 1;
            s.holds.store(holds, Ordering::Relaxed);
            if holds == 0 {
                if cur.retired {
                    self.clear_locked(i);
                } else if cur.expires <= now_ms {
                    let k = (now_ms - cur.expires) / TEMPLATE_HOLD_MS + 1;
                    s.expires.store(
                        cur.expires.saturating_add(k * TEMPLATE_HOLD_MS),
                        Ordering::Relaxed,
                    );
                }
            }
            self.unlock(i, seq);
            return true;
        }
        false
    }

    /// Connections holding the live template of (svc, client_net) (0 when
    /// there is none). For statistics and tests.
    pub fn holds(&self, svc: u32, client_net: Ipv4Addr, now_ms: u64) -> u32 {
        self.find(key_of(svc, client_net), now_ms)
            .map_or(0, |(_, e)| e.holds)
    }

    /// Entries counting connections, templates and retired ones (scans the
    /// table: for statistics and tests; 0 once every hold was given back).
    pub fn held_entries(&self) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.read(i).is_some_and(|e| e.held()))
            .count()
    }

    /// Drop the template (svc, client_net), if any (retired while
    /// connections hold it).
    pub fn remove(&self, svc: u32, client_net: Ipv4Addr) -> bool {
        let key = key_of(svc, client_net);
        let base = self.set_base(key);
        self.drop_where(base..base + WAYS, |e| e.key == key)
    }

    /// Drop every template that sends clients to `server_id` (the server
    /// went away). Scans the whole table: for the control thread.
    pub fn forget_server(&self, server_id: u32) -> usize {
        self.drop_all(|e| e.server == server_id)
    }

    /// Drop every template of service `svc` (the service went away or its
    /// persistence settings changed). Scans the whole table.
    pub fn forget_service(&self, svc: u32) -> usize {
        self.drop_all(|e| (e.key >> 32) as u32 == svc)
    }

    fn drop_all(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.drop_where(i..i + 1, &pred))
            .count()
    }

    fn drop_where(&self, range: std::ops::Range<usize>, pred: impl Fn(&Entry) -> bool) -> bool {
        let mut dropped = false;
        for i in range {
            let Some(e) = self.read(i) else { continue };
            if e.expires == 0 || e.retired || !pred(&e) {
                continue;
            }
            if let Some(seq) = self.lock(i) {
                let cur = self.locked(i);
                if cur.expires != 0 && !cur.retired && pred(&cur) {
                    self.drop_locked(i, &cur);
                    dropped = true;
                }
                self.unlock(i, seq);
            }
        }
        dropped
    }

    /// Every live template at `now_ms` (scans the table: for the control
    /// thread's `list --conns`, as `ipvsadm -Lnc` lists templates).
    pub fn templates(&self, now_ms: u64) -> Vec<TemplateInfo> {
        (0..self.slots.len())
            .filter_map(|i| self.template_at(i, now_ms))
            .collect()
    }

    /// The live template in slot `i` at `now_ms` (`None` for an empty,
    /// dead, retired or busy slot, or one past [`capacity`](Self::capacity)):
    /// a bulk copy walks the table a slice per loop with it, allocating
    /// nothing.
    pub fn template_at(&self, i: usize, now_ms: u64) -> Option<TemplateInfo> {
        if i >= self.slots.len() {
            return None;
        }
        let e = self.read(i).filter(|e| e.live(now_ms))?;
        Some(TemplateInfo {
            service: (e.key >> 32) as u32,
            client_net: Ipv4Addr::from(e.key as u32),
            server_id: e.server,
            left_ms: e.expires.saturating_sub(now_ms),
            holds: e.holds,
        })
    }

    /// Live templates at `now_ms` (scans the table: for statistics).
    pub fn live_entries(&self, now_ms: u64) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.read(i).is_some_and(|e| e.live(now_ms)))
            .count()
    }
}
