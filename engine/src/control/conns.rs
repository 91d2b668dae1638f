//! `rvs ctl list --conns`: copies of the per-worker connection tables,
//! taken by the workers themselves.
//!
//! A connection table is touched only by its worker (no locks), so the
//! control thread cannot read it. Instead it asks: [`ConnDump::request`]
//! bumps a sequence number; each worker, between bursts, sees the new number
//! ([`ConnDump::poll`]: one relaxed load and a compare when nothing is
//! asked), copies up to `limit` of its live connections into its own slot
//! and acknowledges by storing the number it answered. The controller
//! collects the slots once every worker has answered, or after a deadline
//! with whatever came ([`ConnDump::collect`]). Memory is allocated only while
//! answering a request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_utils::CachePadded;

use super::ctl_proto::{ConnInfo, ConnsView};
use crate::conn::{self, Conn, ConnTable, TcpState};

#[derive(Default)]
struct Slot {
    /// The request number this slot answers.
    answered: AtomicU64,
    /// Live connections in the worker's table when it answered.
    total: AtomicU64,
    conns: ArcSwap<Vec<ConnInfo>>,
}

/// The request/response between the controller and the workers.
pub struct ConnDump {
    request: AtomicU64,
    limit: AtomicUsize,
    slots: Box<[CachePadded<Slot>]>,
}

impl ConnDump {
    pub fn new(workers: usize) -> ConnDump {
        ConnDump {
            request: AtomicU64::new(0),
            limit: AtomicUsize::new(0),
            slots: (0..workers.max(1))
                .map(|_| CachePadded::new(Slot::default()))
                .collect(),
        }
    }

    /// The current request number: a worker starts with it as "seen".
    pub fn current(&self) -> u64 {
        self.request.load(Ordering::Acquire)
    }

    /// Worker side, between bursts: answers a new request, if there is one.
    #[inline]
    pub fn poll(&self, worker: usize, seen: &mut u64, table: &ConnTable, now_ms: u64) {
        let req = self.request.load(Ordering::Acquire);
        if req != *seen {
            *seen = req;
            self.answer(worker, req, table, now_ms);
        }
    }

    #[cold]
    #[inline(never)]
    fn answer(&self, worker: usize, req: u64, table: &ConnTable, now_ms: u64) {
        let Some(slot) = self.slots.get(worker) else {
            return;
        };
        let limit = self.limit.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(table.len().min(limit));
        let mut total = 0u64;
        for (id, c) in table.iter() {
            if table.is_expired(id, now_ms) {
                continue;
            }
            total += 1;
            if out.len() < limit {
                out.push(info(c, table.time_left_ms(id, now_ms), worker));
            }
        }
        slot.conns.store(Arc::new(out));
        slot.total.store(total, Ordering::Relaxed);
        slot.answered.store(req, Ordering::Release);
    }

    /// Controller side: asks every worker for up to `limit` connections.
    /// Returns the request number to collect.
    pub fn request(&self, limit: usize) -> u64 {
        self.limit.store(limit, Ordering::Relaxed);
        self.request.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether every worker has answered request `req`.
    pub fn complete(&self, req: u64) -> bool {
        self.slots
            .iter()
            .all(|s| s.answered.load(Ordering::Acquire) == req)
    }

    /// The answers to `req` so far (workers that have not answered are
    /// listed as missing), at most `limit` connections in all. Empties the
    /// slots.
    pub fn collect(&self, req: u64, limit: usize) -> ConnsView {
        let mut v = ConnsView::default();
        for (w, s) in self.slots.iter().enumerate() {
            if s.answered.load(Ordering::Acquire) != req {
                v.missing_workers.push(w);
                continue;
            }
            v.total += s.total.load(Ordering::Relaxed);
            let conns = s.conns.swap(Arc::new(Vec::new()));
            let room = limit.saturating_sub(v.conns.len());
            v.conns.extend(conns.iter().take(room).cloned());
        }
        v.truncated = (v.conns.len() as u64) < v.total;
        v
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{Method, NewConn};
    use std::net::Ipv4Addr;

    fn table(n: u16) -> ConnTable {
        let mut t = ConnTable::with_capacity_and_seed(64, 1);
        for i in 0..n {
            let c = NewConn {
                proto: conn::PROTO_TCP,
                client: Ipv4Addr::new(198, 18, 0, 10),
                cport: 40000 + i,
                vip: Ipv4Addr::new(198, 18, 0, 100),
                vport: 80,
                server: Ipv4Addr::new(198, 19, 0, 11),
                sport: 8080,
                method: Method::Nat,
                flags: 0,
                service: 0,
                dest: 0,
                state: TcpState::None,
            };
            let id = t.insert(c, 0).unwrap();
            t.on_packet(id, crate::conn::Dir::Inbound, conn::tcp_flags::SYN, 0);
        }
        t
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
        let partial = d.collect(req, 100);
        assert_eq!(partial.missing_workers, vec![1]);
        assert_eq!(partial.conns.len(), 3);
        d.poll(1, &mut s1, &t1, 5);
        assert!(d.complete(req));
        let v = d.collect(req, 100);
        assert!(v.missing_workers.is_empty());
        // worker 0's answer was taken by the first collect
        assert_eq!(v.total, 5);
        assert_eq!(v.conns.len(), 2);
        assert!(v.conns.iter().all(|c| c.worker == 1
            && c.state == "SYN_RECV"
            && c.protocol == "tcp"
            && c.forward == "nat"
            && c.sport == 8080));
        assert!(v.conns[0].expires_ms > 0);
        assert!(v.truncated);
    }

    #[test]
    fn limits_apply_per_worker_and_in_all() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(10), table(10));
        let (mut s0, mut s1) = (d.current(), d.current());
        let req = d.request(4);
        d.poll(0, &mut s0, &t0, 1);
        d.poll(1, &mut s1, &t1, 1);
        // a second poll of the same request does nothing
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
}
