//! `rvs ctl list --conns`: copies of the per-worker connection tables
//! (IPv4 and IPv6), taken by the workers themselves, a bounded slice at a
//! time. A data-plane service the control thread calls (`control::conns`
//! turns the copies into the listing); nothing here knows the listing.
//!
//! A connection table is touched only by its worker (no locks), so the
//! control thread cannot read it. Instead it asks: [`ConnDump::request`]
//! gives every worker a buffer of raw records ([`Conn`], 32 bytes, `Copy`)
//! allocated on the control thread, then bumps a sequence number. Each
//! worker, between bursts, sees the new number ([`ConnDump::poll`]: one
//! relaxed load and a compare when nothing is asked) and looks at the next
//! [`SLOTS_PER_POLL`] slots of its table, copying the live connections into
//! that buffer while it has room (at most `limit`), counting all of them.
//! A table of capacity C is answered over `ceil(C / SLOTS_PER_POLL)` loops
//! (256 for a million slots); then the worker acknowledges by storing the
//! number it answered. The worker never allocates, frees, formats or
//! blocks: the buffer never grows, and the control thread takes the
//! records ([`ConnDump::collect`]) once every worker has answered or after
//! a deadline with whatever came. An IPv6 record holds address ids of its
//! worker's `Addr6Table`; the worker copies the addresses with it.
//!
//! The buffer is handed over in a `Mutex` used only as an ownership token:
//! the worker only ever `try_lock`s it (a busy token means "next loop"),
//! and the control thread also only `try_lock`s it, yielding while the
//! worker holds it for one slice. So nobody ever waits on it and the
//! worker's unlock never has a sleeper to wake (no system call).
//!
//! A listing spans a few loops, not one instant: a connection made behind
//! the worker's cursor during the walk is not listed, one removed after it
//! was copied is (as a `/proc/net/ip_vs_conn` read in pieces). Persistence
//! templates that a table holds (synced ones, [`conn::flags::TEMPLATE`])
//! are listed with `template: true`, as `ipvsadm -Lnc` lists them.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::conn::addr6::Addr6Table;
use crate::conn::{self, Conn, ConnId, ConnTable, Method, TcpState};

/// Table slots a worker looks at per loop while answering.
pub const SLOTS_PER_POLL: usize = 4096;

/// How long the control thread waits for a worker to let go of its buffer
/// (it holds it for one slice, microseconds) before giving up on it.
const TAKE_WAIT: Duration = Duration::from_millis(50);

/// One worker's answer in the making: allocated by the control thread,
/// filled in place by the worker.
struct Batch {
    /// The request it answers.
    req: u64,
    /// Next slot to look at.
    cursor: usize,
    /// Live connections seen so far.
    total: u64,
    /// Of those, established TCP connections (what a drain waits for).
    established: u64,
    /// Copied records; never grows beyond its capacity (`min(limit,
    /// table capacity)`).
    conns: Vec<Conn>,
    /// Milliseconds left for each record of `conns`.
    left_ms: Vec<u32>,
    /// The full-NAT local tuple of each record of `conns`, if any.
    locals: Vec<Option<(Ipv4Addr, u16)>>,
    /// For an IPv6 record, the addresses its ids stand for.
    addrs6: Vec<Option<Addrs6>>,
}

impl Batch {
    fn new(req: u64, room: usize) -> Batch {
        Batch {
            req,
            cursor: 0,
            total: 0,
            established: 0,
            conns: Vec::with_capacity(room),
            left_ms: Vec::with_capacity(room),
            locals: Vec::with_capacity(room),
            addrs6: Vec::with_capacity(room),
        }
    }

    /// Room left without growing.
    fn has_room(&self) -> bool {
        self.conns.len() < self.conns.capacity()
            && self.left_ms.len() < self.left_ms.capacity()
            && self.locals.len() < self.locals.capacity()
            && self.addrs6.len() < self.addrs6.capacity()
    }

    /// Copies the live connection `id` of `table`, counting it.
    fn take(&mut self, table: &ConnTable, id: ConnId, now_ms: u64, addrs6: Option<&Addr6Table>) {
        self.total += 1;
        let c = table.get(id);
        if c.proto() == conn::PROTO_TCP && c.state() == TcpState::Established {
            self.established += 1;
        }
        if self.has_room() {
            self.conns.push(*c);
            self.left_ms.push(table.time_left_ms(id, now_ms));
            self.locals.push(table.local(id));
            self.addrs6.push(addrs6.map(|a| Addrs6::of(c, a)));
        }
    }
}

/// The addresses of an IPv6 record: client, VIP and server (a NAT64
/// record's server is IPv4: the record's own `server()`, and `None` here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addrs6 {
    pub client: Ipv6Addr,
    pub vip: Ipv6Addr,
    pub server: Option<Ipv6Addr>,
}

impl Addrs6 {
    fn of(c: &Conn, a: &Addr6Table) -> Addrs6 {
        Addrs6 {
            client: a.addr(u32::from(c.client())),
            vip: a.addr(u32::from(c.vip())),
            server: (c.method() != Method::Fnat).then(|| a.addr(u32::from(c.server()))),
        }
    }
}

/// The tables one worker answers from: IPv4, and IPv6 (made with the
/// first IPv6 service) with the addresses its records' ids stand for.
#[derive(Clone, Copy)]
pub struct Tables<'a> {
    pub v4: &'a ConnTable,
    pub v6: Option<(&'a ConnTable, &'a Addr6Table)>,
}

impl<'a> Tables<'a> {
    pub fn v4(v4: &'a ConnTable) -> Tables<'a> {
        Tables { v4, v6: None }
    }

    /// Slots of both tables: the walk's length.
    fn slots(&self) -> usize {
        self.v4.capacity() + self.v6.map_or(0, |(t, _)| t.capacity())
    }
}

/// One copied connection, as [`ConnDump::collect`] returns it.
#[derive(Clone, Copy, Debug)]
pub struct Dumped {
    pub conn: Conn,
    /// Milliseconds until it expires.
    pub left_ms: u32,
    pub worker: usize,
    /// Full-NAT (and NAT64): the director-side tuple.
    pub local: Option<(Ipv4Addr, u16)>,
    /// An IPv6 record's addresses (its `conn` holds ids).
    pub addrs6: Option<Addrs6>,
}

/// The answers to one request.
#[derive(Debug, Default)]
pub struct Dump {
    /// Connections in the tables (may exceed `conns.len()`).
    pub total: u64,
    /// Workers that did not answer in time.
    pub missing_workers: Vec<usize>,
    pub conns: Vec<Dumped>,
}

#[derive(Default)]
struct Slot {
    /// The request number this slot's batch fully answers.
    answered: AtomicU64,
    /// The worker's table capacity, learned from its last answer (0 until
    /// then): the next buffers need not be larger.
    capacity: AtomicUsize,
    batch: Mutex<Option<Batch>>,
}

/// The request/response between the controller and the workers.
pub struct ConnDump {
    request: AtomicU64,
    slots: Box<[CachePadded<Slot>]>,
    /// The workers' clock (ms) when they last finished an answer: the
    /// control thread reads the shared persistence templates with it.
    clock_ms: AtomicU64,
}

impl ConnDump {
    pub fn new(workers: usize) -> ConnDump {
        ConnDump {
            request: AtomicU64::new(0),
            slots: (0..workers.max(1))
                .map(|_| CachePadded::new(Slot::default()))
                .collect(),
            clock_ms: AtomicU64::new(0),
        }
    }

    /// The workers' clock as of their last answer (0: none yet).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }

    /// The current request number: a worker starts with it as "seen".
    pub fn current(&self) -> u64 {
        self.request.load(Ordering::Acquire)
    }

    /// Worker side, between bursts: works on the current request, if it
    /// has not answered it yet, for at most [`SLOTS_PER_POLL`] slots.
    /// `seen` is the last request this worker is done with.
    #[inline]
    pub fn poll(&self, worker: usize, seen: &mut u64, tables: Tables, now_ms: u64) {
        self.poll_tables(worker, seen, tables, now_ms, SLOTS_PER_POLL);
    }

    /// [`poll`](Self::poll) of an IPv4 table alone, with a slot budget.
    #[inline]
    pub fn poll_slots(
        &self,
        worker: usize,
        seen: &mut u64,
        table: &ConnTable,
        now_ms: u64,
        budget: usize,
    ) {
        self.poll_tables(worker, seen, Tables::v4(table), now_ms, budget);
    }

    /// [`poll`](Self::poll) with a slot budget of `budget`.
    #[inline]
    pub fn poll_tables(
        &self,
        worker: usize,
        seen: &mut u64,
        tables: Tables,
        now_ms: u64,
        budget: usize,
    ) {
        let req = self.request.load(Ordering::Acquire);
        if req != *seen {
            self.step(worker, req, seen, tables, now_ms, budget.max(1));
        }
    }

    #[cold]
    #[inline(never)]
    fn step(
        &self,
        worker: usize,
        req: u64,
        seen: &mut u64,
        tables: Tables,
        now_ms: u64,
        budget: usize,
    ) {
        let Some(slot) = self.slots.get(worker) else {
            *seen = req;
            return;
        };
        let mut guard = match slot.batch.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return, // the controller's: next loop
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let Some(b) = guard.as_mut().filter(|b| b.req == req) else {
            // No buffer for this request: it was collected without us (a
            // deadline) or withdrawn. Nothing to answer.
            *seen = req;
            return;
        };
        // One walk over the IPv4 table's slots, then the IPv6 table's.
        let (cap4, cap) = (tables.v4.capacity(), tables.slots());
        let end = b.cursor.saturating_add(budget).min(cap);
        for i in b.cursor..end {
            let (table, id, addrs) = match tables.v6 {
                Some((t6, a6)) if i >= cap4 => (t6, ConnId((i - cap4) as u32), Some(a6)),
                _ => (tables.v4, ConnId(i as u32), None),
            };
            if table.contains(id) && !table.is_expired(id, now_ms) {
                b.take(table, id, now_ms, addrs);
            }
        }
        b.cursor = end;
        if end >= cap {
            drop(guard);
            self.clock_ms.fetch_max(now_ms, Ordering::Relaxed);
            slot.capacity.store(cap, Ordering::Relaxed);
            slot.answered.store(req, Ordering::Release);
            *seen = req;
        }
    }

    /// Controller side: gives every worker a buffer for up to `limit`
    /// connections (fewer if its table is known to be smaller) and asks.
    /// Returns the request number to collect. One controller thread only.
    pub fn request(&self, limit: usize) -> u64 {
        let req = self.request.load(Ordering::Acquire) + 1;
        for s in self.slots.iter() {
            let cap = s.capacity.load(Ordering::Relaxed);
            let room = if cap == 0 { limit } else { limit.min(cap) };
            let batch = Batch::new(req, room);
            // Replaces (and frees, here) whatever a late worker left.
            match take_token(&s.batch) {
                Some(mut g) => *g = Some(batch),
                None => tracing::warn!("list --conns: a worker holds its buffer; skipped"),
            }
        }
        self.request.store(req, Ordering::Release);
        req
    }

    /// Whether every worker has answered request `req`.
    pub fn complete(&self, req: u64) -> bool {
        self.slots
            .iter()
            .all(|s| s.answered.load(Ordering::Acquire) == req)
    }

    /// The answers to `req` so far (workers that have not answered are
    /// listed as missing), at most `limit` connections in all. Empties the
    /// slots: the buffers are freed here, and a worker still walking for
    /// `req` stops at its next loop.
    pub fn collect(&self, req: u64, limit: usize) -> Dump {
        let mut v = Dump::default();
        for (w, s) in self.slots.iter().enumerate() {
            let answered = s.answered.load(Ordering::Acquire) == req;
            let batch = take_token(&s.batch)
                .and_then(|mut g| g.take())
                .filter(|b| b.req == req);
            let Some(b) = batch.filter(|_| answered) else {
                v.missing_workers.push(w);
                continue;
            };
            v.total += b.total;
            let room = limit.saturating_sub(v.conns.len());
            v.conns.extend(
                b.conns
                    .iter()
                    .zip(&b.left_ms)
                    .zip(&b.locals)
                    .zip(&b.addrs6)
                    .take(room)
                    .map(|(((c, &left_ms), &local), &addrs6)| Dumped {
                        conn: *c,
                        left_ms,
                        worker: w,
                        local,
                        addrs6,
                    }),
            );
        }
        v
    }

    /// Established TCP connections over all workers for a request made
    /// with `request(0)` (a count, no records), once every worker has
    /// answered; `None` while some have not (ask again later). Empties the
    /// slots as [`collect`](Self::collect) does.
    pub fn established(&self, req: u64) -> Option<u64> {
        if !self.complete(req) {
            return None;
        }
        let mut n = 0;
        for s in self.slots.iter() {
            let b = take_token(&s.batch).and_then(|mut g| g.take());
            n += b.filter(|b| b.req == req).map_or(0, |b| b.established);
        }
        Some(n)
    }

    /// Tests: the capacity of worker `w`'s buffer, if it has one.
    #[cfg(test)]
    pub fn buffer_capacity(&self, w: usize) -> Option<(usize, usize)> {
        let g = self.slots[w].batch.lock().unwrap();
        g.as_ref()
            .map(|b| (b.conns.capacity(), b.left_ms.capacity()))
    }
}

/// The control thread's side of the token: `try_lock`, yielding while a
/// worker holds it for a slice, for at most [`TAKE_WAIT`].
fn take_token<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    let until = Instant::now() + TAKE_WAIT;
    loop {
        match m.try_lock() {
            Ok(g) => return Some(g),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() < until => std::thread::yield_now(),
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}
