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
//!   grows): when the 4 ways of a set are all live, the one expiring first
//!   (preferring templates without held connections) is replaced, and those
//!   clients lose their persistence.
//!
//! # Layout and races
//!
//! The table is 4-way set-associative, indexed by a hash of (service,
//! client net). An entry is a sequence counter, the key, the server id, the
//! expiry (ms, 0 = empty) and the hold count, all atomics. Readers take no
//! lock: they read an entry between two reads of its sequence counter and
//! retry if it changed (seqlock), so they never see a key with another
//! entry's server. Writers (insert, refresh, hold, release, forget) own an
//! entry for a few stores by moving its counter to an odd value with a
//! compare-and-swap; a writer that finds the entry owned spins a few times
//! and then gives up (a refresh or hold is then skipped, an insert does not
//! cache: the next connection schedules again).
//!
//! Benign races: two workers that miss on the same client net at the same
//! time may both schedule; `insert` returns the server of a template that
//! another worker stored first (use it), but two inserts into two different
//! ways at the same instant can leave two templates, of which lookups use
//! the first (IPVS has the same window between its lookup and its insert).

use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

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
}

#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    server: u32,
    expires: u64,
    holds: u32,
}

impl Entry {
    #[inline]
    fn live(&self, now: u64) -> bool {
        self.expires != 0 && (self.holds > 0 || now < self.expires)
    }
}

/// A fixed-capacity persistence template table shared by all workers.
pub struct PersistTable {
    slots: Box<[Slot]>,
    set_bits: u32,
}

#[inline]
fn key_of(svc: u32, client_net: Ipv4Addr) -> u64 {
    ((svc as u64) << 32) | u32::from(client_net) as u64
}

impl PersistTable {
    /// A table of at least `capacity` templates (rounded up to a power of
    /// two, at least 4). Allocates here only.
    pub fn new(capacity: usize) -> PersistTable {
        let total = capacity.max(WAYS).next_power_of_two();
        let sets = total / WAYS;
        PersistTable {
            slots: (0..total).map(|_| Slot::default()).collect(),
            set_bits: sets.trailing_zeros(),
        }
    }

    /// Number of templates the table can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn set_base(&self, key: u64) -> usize {
        if self.set_bits == 0 {
            return 0;
        }
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.set_bits);
        h as usize * WAYS
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

    /// Own an entry for writing; `None` if it stayed busy.
    fn lock(&self, i: usize) -> Option<u32> {
        let s = &self.slots[i];
        for _ in 0..SPINS {
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
            std::hint::spin_loop();
        }
        None
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
        }
    }

    fn clear_locked(&self, i: usize) {
        let s = &self.slots[i];
        s.expires.store(0, Ordering::Relaxed);
        s.holds.store(0, Ordering::Relaxed);
        s.key.store(0, Ordering::Relaxed);
        s.server.store(0, Ordering::Relaxed);
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
    /// dropped and `None` returned, as `ip_vs_check_template` does.
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
                if cur.key == key && cur.server == e.server {
                    self.clear_locked(i);
                }
                self.unlock(i, seq);
            }
            return None;
        }
        let want = now_ms.saturating_add(timeout_ms);
        if e.expires < want {
            if let Some(seq) = self.lock(i) {
                let cur = self.locked(i);
                if cur.key == key && cur.server == e.server && cur.expires < want {
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
    /// another worker stored first (send the connection there). When the
    /// entry to replace stays busy, nothing is stored and `server_id` is
    /// returned.
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
        // Victim: a dead entry of this key, else an empty or dead entry,
        // else the live one expiring first among those without held
        // connections, else the live one expiring first.
        let rank = |e: &Option<Entry>| -> (u8, u64) {
            match e {
                None => (4, u64::MAX), // busy: avoid
                Some(e) if !e.live(now_ms) && e.key == key => (0, 0),
                Some(e) if !e.live(now_ms) => (1, e.expires),
                Some(e) if e.holds == 0 => (2, e.expires),
                Some(e) => (3, e.expires),
            }
        };
        let w = (0..WAYS).min_by_key(|&w| rank(&entries[w])).unwrap_or(0);
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
        s.key.store(key, Ordering::Relaxed);
        s.server.store(server_id, Ordering::Relaxed);
        s.expires
            .store(now_ms.saturating_add(timeout_ms).max(1), Ordering::Relaxed);
        s.holds.store(0, Ordering::Relaxed);
        self.unlock(i, seq);
        server_id
    }

    /// A connection made with the template (svc, client_net) was created:
    /// the template does not expire while it lives. False if there is no
    /// live template (or the entry stayed busy).
    pub fn hold(&self, svc: u32, client_net: Ipv4Addr, now_ms: u64) -> bool {
        let key = key_of(svc, client_net);
        let Some((i, e)) = self.find(key, now_ms) else {
            return false;
        };
        let Some(seq) = self.lock(i) else {
            return false;
        };
        let cur = self.locked(i);
        let ok = cur.key == key && cur.server == e.server && cur.expires != 0;
        if ok {
            self.slots[i]
                .holds
                .store(cur.holds.saturating_add(1), Ordering::Relaxed);
        }
        self.unlock(i, seq);
        ok
    }

    /// A connection counted by [`hold`](Self::hold) was freed. When it was
    /// the last one and the template's expiry has passed, the template lives
    /// until the kernel's next 60-s re-check instant.
    pub fn release(&self, svc: u32, client_net: Ipv4Addr, now_ms: u64) {
        let key = key_of(svc, client_net);
        let base = self.set_base(key);
        let Some(i) = (base..base + WAYS).find(|&i| {
            self.read(i)
                .is_some_and(|e| e.key == key && e.expires != 0 && e.holds > 0)
        }) else {
            return;
        };
        let Some(seq) = self.lock(i) else {
            return;
        };
        let cur = self.locked(i);
        if cur.key == key && cur.expires != 0 && cur.holds > 0 {
            let s = &self.slots[i];
            let holds = cur.holds - 1;
            s.holds.store(holds, Ordering::Relaxed);
            if holds == 0 && cur.expires <= now_ms {
                let k = (now_ms - cur.expires) / TEMPLATE_HOLD_MS + 1;
                s.expires.store(
                    cur.expires.saturating_add(k * TEMPLATE_HOLD_MS),
                    Ordering::Relaxed,
                );
            }
        }
        self.unlock(i, seq);
    }

    /// Drop the template (svc, client_net), if any.
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
            if e.expires == 0 || !pred(&e) {
                continue;
            }
            if let Some(seq) = self.lock(i) {
                let cur = self.locked(i);
                if cur.expires != 0 && pred(&cur) {
                    self.clear_locked(i);
                    dropped = true;
                }
                self.unlock(i, seq);
            }
        }
        dropped
    }

    /// Live templates at `now_ms` (scans the table: for statistics).
    pub fn live_entries(&self, now_ms: u64) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.read(i).is_some_and(|e| e.live(now_ms)))
            .count()
    }
}
