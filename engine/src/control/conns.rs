//! `rvs ctl list --conns`: copies of the per-worker connection tables,
//! taken by the workers themselves, a bounded slice at a time.
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
//! blocks: the buffer never grows, and the control thread turns the
//! records into [`ConnInfo`]s (strings) in [`ConnDump::collect`], once
//! every worker has answered or after a deadline with whatever came.
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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::ctl_proto::{ConnInfo, ConnsView};
use crate::conn::{self, Conn, ConnId, ConnTable, TcpState};

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
    locals: Vec<Option<(std::net::Ipv4Addr, u16)>>,
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
        }
    }

    /// Room left without growing.
    fn has_room(&self) -> bool {
        self.conns.len() < self.conns.capacity()
            && self.left_ms.len() < self.left_ms.capacity()
            && self.locals.len() < self.locals.capacity()
    }
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
    pub fn poll(&self, worker: usize, seen: &mut u64, table: &ConnTable, now_ms: u64) {
        self.poll_slots(worker, seen, table, now_ms, SLOTS_PER_POLL);
    }

    /// [`poll`](Self::poll) with a slot budget of `budget`.
    #[inline]
    pub fn poll_slots(
        &self,
        worker: usize,
        seen: &mut u64,
        table: &ConnTable,
        now_ms: u64,
        budget: usize,
    ) {
        let req = self.request.load(Ordering::Acquire);
        if req != *seen {
            self.step(worker, req, seen, table, now_ms, budget.max(1));
        }
    }

    #[cold]
    #[inline(never)]
    fn step(
        &self,
        worker: usize,
        req: u64,
        seen: &mut u64,
        table: &ConnTable,
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
        let cap = table.capacity();
        let end = b.cursor.saturating_add(budget).min(cap);
        for i in b.cursor..end {
            let id = ConnId(i as u32);
            if !table.contains(id) || table.is_expired(id, now_ms) {
                continue;
            }
            b.total += 1;
            let c = table.get(id);
            if c.proto() == conn::PROTO_TCP && c.state() == TcpState::Established {
                b.established += 1;
            }
            if b.has_room() {
                b.conns.push(*table.get(id));
                b.left_ms.push(table.time_left_ms(id, now_ms));
                b.locals.push(table.local(id));
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
    pub fn collect(&self, req: u64, limit: usize) -> ConnsView {
        let mut v = ConnsView::default();
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
                    .take(room)
                    .map(|((c, &left), &local)| {
                        let mut i = info(c, left, w);
                        i.local = local.map(|(a, p)| std::net::SocketAddrV4::new(a, p));
                        i
                    }),
            );
        }
        v.truncated = (v.conns.len() as u64) < v.total;
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
    fn buffer_capacity(&self, w: usize) -> Option<(usize, usize)> {
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

fn info(c: &Conn, left_ms: u32, worker: usize) -> ConnInfo {
    let protocol = match c.proto() {
        conn::PROTO_TCP => "tcp".to_string(),
        conn::PROTO_UDP => "udp".to_string(),
        p => p.to_string(),
    };
    let state = if c.proto() == conn::PROTO_TCP {
        c.state().name().to_string()
    } else if c.proto() == conn::PROTO_UDP {
        "UDP".to_string()
    } else {
        TcpState::None.name().to_string()
    };
    ConnInfo {
        protocol,
        client: c.client(),
        cport: c.cport(),
        vip: c.vip(),
        vport: c.vport(),
        server: c.server(),
        sport: c.sport(),
        state,
        expires_ms: u64::from(left_ms),
        forward: c.method().name().to_string(),
        worker,
        template: c.is_template(),
        synced: c.is_synced(),
        local: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{flags, Method, NewConn};
    use std::net::Ipv4Addr;

    fn new_conn(cport: u16, flags: u8) -> NewConn {
        NewConn {
            proto: conn::PROTO_TCP,
            client: Ipv4Addr::new(198, 18, 0, 10),
            cport,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
            server: Ipv4Addr::new(198, 19, 0, 11),
            sport: 8080,
            method: Method::Nat,
            flags,
            service: 0,
            dest: 0,
            state: TcpState::None,
        }
    }

    fn table_of(capacity: usize, n: u16) -> ConnTable {
        let mut t = ConnTable::with_capacity_and_seed(capacity, 1);
        for i in 0..n {
            let id = t.insert(new_conn(40000 + i, 0), 0).unwrap();
            t.on_packet(id, crate::conn::Dir::Inbound, conn::tcp_flags::SYN, 0);
        }
        t
    }

    fn table(n: u16) -> ConnTable {
        table_of(64, n)
    }

    /// What a listing of `t` at `now` must hold.
    fn contents(t: &ConnTable, now: u64, worker: usize) -> Vec<ConnInfo> {
        let mut v: Vec<_> = t
            .iter()
            .filter(|&(id, _)| !t.is_expired(id, now))
            .map(|(id, c)| info(c, t.time_left_ms(id, now), worker))
            .collect();
        sort(&mut v);
        v
    }

    fn sort(v: &mut [ConnInfo]) {
        v.sort_by_key(|c| (c.worker, c.client, c.cport, c.template));
    }

    #[test]
    fn workers_answer_only_new_requests() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(3), table(2));
        let (mut s0, mut s1) = (d.current(), d.current());
        // nothing asked: nothing answered
        d.poll(0, &mut s0, &t0, 5);
        assert!(d.complete(0));
        let req = d.request(100);
        assert!(!d.complete(req));
        d.poll(0, &mut s0, &t0, 5);
        assert!(!d.complete(req));
        d.poll(1, &mut s1, &t1, 5);
        assert!(d.complete(req));
        // a second poll of the same request does nothing
        d.poll(1, &mut s1, &t1, 5);
        let v = d.collect(req, 100);
        assert!(v.missing_workers.is_empty());
        assert_eq!(v.total, 5);
        assert_eq!(v.conns.len(), 5);
        assert!(!v.truncated);
        assert!(v.conns.iter().all(|c| c.state == "SYN_RECV"
            && c.protocol == "tcp"
            && c.forward == "nat"
            && c.sport == 8080
            && !c.template));
        assert_eq!(v.conns.iter().filter(|c| c.worker == 1).count(), 2);
        assert!(v.conns[0].expires_ms > 0);
    }

    #[test]
    fn a_late_worker_is_missing_and_then_stops() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(3), table_of(10_000, 2));
        let (mut s0, mut s1) = (d.current(), d.current());
        let req = d.request(100);
        d.poll(0, &mut s0, &t0, 5);
        // worker 1 is one slice into a 10,000-slot table at the deadline
        d.poll_slots(1, &mut s1, &t1, 5, 16);
        assert!(!d.complete(req));
        let v = d.collect(req, 100);
        assert_eq!(v.missing_workers, vec![1]);
        assert_eq!(v.conns.len(), 3);
        assert_eq!(v.total, 3);
        // its buffer is gone: it stops at its next loop, answering nothing
        assert_eq!(d.buffer_capacity(1), None);
        d.poll_slots(1, &mut s1, &t1, 5, 16);
        assert_eq!(s1, req);
        assert!(!d.complete(req));
        // and the next request is whole again
        let req = d.request(100);
        d.poll(0, &mut s0, &t0, 5);
        for _ in 0..3 {
            d.poll(1, &mut s1, &t1, 5);
        }
        assert!(d.complete(req));
        assert_eq!(d.collect(req, 100).total, 5);
    }

    #[test]
    fn limits_apply_per_worker_and_in_all() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(10), table(10));
        let (mut s0, mut s1) = (d.current(), d.current());
        let req = d.request(4);
        d.poll(0, &mut s0, &t0, 1);
        d.poll(1, &mut s1, &t1, 1);
        let v = d.collect(req, 6);
        assert_eq!(v.total, 20);
        assert_eq!(v.conns.len(), 6);
        assert!(v.truncated);
        // expired connections are not listed
        let req = d.request(100);
        d.poll(0, &mut s0, &t0, 10_000_000);
        d.poll(1, &mut s1, &t1, 1);
        let v = d.collect(req, 100);
        assert_eq!(v.total, 10);
    }

    /// The worker's part is bounded: `budget` slots per call, a table of
    /// capacity C answered in exactly ceil(C / budget) calls, into the
    /// buffer the controller made (its capacity never changes); the result
    /// is the table's contents, templates included.
    #[test]
    fn a_dump_is_bounded_per_call_and_fills_a_preallocated_buffer() {
        const CAP: usize = 1000;
        const BUDGET: usize = 64;
        let now = 7;
        let mut t = ConnTable::with_capacity_and_seed(CAP, 3);
        let mut ids = Vec::new();
        for i in 0..700u16 {
            ids.push(t.insert(new_conn(10_000 + i, 0), 0).unwrap());
        }
        // holes, and expired entries not yet swept
        for id in ids.iter().step_by(7) {
            t.remove(*id);
        }
        for id in ids.iter().skip(3).step_by(11) {
            if t.contains(*id) {
                t.set_timeout(*id, now, 0);
            }
        }
        // a persistence template (as a synced one sits in the table)
        let tpl = NewConn {
            cport: 0,
            ..new_conn(0, flags::TEMPLATE)
        };
        let tid = t.insert(tpl, 0).unwrap();
        t.set_timeout(tid, 0, 300_000);
        assert_eq!(t.capacity(), CAP);
        let want = contents(&t, now, 0);
        assert!(want.len() > 500);

        let d = ConnDump::new(1);
        let mut seen = d.current();
        for round in 0..2 {
            let req = d.request(100_000);
            let buf = d.buffer_capacity(0).unwrap();
            // the first buffer is sized by the limit, the next ones by the
            // table's capacity, learned from the first answer
            assert!(buf.0 >= if round == 0 { 100_000 } else { CAP });
            if round == 1 {
                assert!(buf.0 < 100_000);
            }
            let mut calls = 0;
            while !d.complete(req) {
                d.poll_slots(0, &mut seen, &t, now, BUDGET);
                calls += 1;
                assert_eq!(d.buffer_capacity(0), Some(buf), "the buffer grew");
                assert!(calls <= CAP, "never completes");
            }
            assert_eq!(calls, CAP.div_ceil(BUDGET));
            // done: more polls do nothing
            d.poll_slots(0, &mut seen, &t, now, BUDGET);
            let mut v = d.collect(req, usize::MAX);
            assert!(v.missing_workers.is_empty());
            assert!(!v.truncated);
            assert_eq!(v.total as usize, want.len());
            sort(&mut v.conns);
            assert_eq!(v.conns, want);
            let tpl: Vec<_> = v.conns.iter().filter(|c| c.template).collect();
            assert_eq!(tpl.len(), 1);
            assert_eq!((tpl[0].cport, tpl[0].state.as_str()), (0, "NONE"));
            assert_eq!(d.buffer_capacity(0), None, "collect frees the buffer");
        }

        // a limit smaller than the table: the buffer is that small, the
        // rest only counted
        let req = d.request(10);
        assert_eq!(d.buffer_capacity(0).unwrap().0, 10);
        while !d.complete(req) {
            d.poll_slots(0, &mut seen, &t, now, BUDGET);
        }
        let v = d.collect(req, 10);
        assert_eq!((v.conns.len(), v.total as usize), (10, want.len()));
        assert!(v.truncated);
    }
}
