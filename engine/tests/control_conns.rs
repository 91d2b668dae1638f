//! engine::control::conns: a worker answers `list --conns` in bounded
//! slices, without allocating or freeing, and the control thread gets the
//! table's contents.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;

use engine::conn::{self, ConnTable, Method, NewConn, TcpState};
use engine::dataplane::conn_dump::{ConnDump, Tables, SLOTS_PER_POLL};

/// Counts the allocations, reallocations and frees of each thread.
struct Counting;

thread_local! {
    static HEAP_CALLS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = HEAP_CALLS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// count touches only a const-initialised thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count();
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn heap_calls() -> u64 {
    HEAP_CALLS.with(Cell::get)
}

fn table(capacity: usize, n: u32, seed: u64) -> ConnTable {
    let mut t = ConnTable::with_capacity_and_seed(capacity, seed);
    for i in 0..n {
        let c = NewConn {
            proto: if i % 3 == 0 {
                conn::PROTO_UDP
            } else {
                conn::PROTO_TCP
            },
            client: Ipv4Addr::from(0xC612_0000 + i),
            cport: 1024 + (i % 60_000) as u16,
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
        t.insert(c, 0).unwrap();
    }
    t
}

#[test]
fn workers_answer_in_slices_without_touching_the_heap() {
    // Two workers on their own threads, tables of 50,000 and 20,000 slots.
    let d = std::sync::Arc::new(ConnDump::new(2));
    let tables = [table(50_000, 30_000, 1), table(20_000, 20_000, 2)];
    // a worker starts with the current request as seen
    let start = d.current();
    let req = d.request(1_000_000);
    let handles: Vec<_> = tables
        .into_iter()
        .enumerate()
        .map(|(w, t)| {
            let d = d.clone();
            std::thread::spawn(move || {
                let mut s = start;
                let before = heap_calls();
                let mut calls = 0;
                // as a worker loop does: poll until it has answered
                while s != req {
                    d.poll(w, &mut s, Tables::v4(&t), 1);
                    calls += 1;
                }
                // and afterwards polls cost nothing
                for _ in 0..1000 {
                    d.poll(w, &mut s, Tables::v4(&t), 1);
                }
                (heap_calls() - before, calls)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (w, &(heap, calls)) in results.iter().enumerate() {
        assert_eq!(heap, 0, "worker {w} used the heap {heap} times");
        let cap = [50_000, 20_000][w];
        assert_eq!(calls, (cap as usize).div_ceil(SLOTS_PER_POLL), "worker {w}");
    }
    assert!(d.complete(req));
    let v = engine::control::conns::collect(&d, req, 1_000_000);
    assert_eq!(v.total, 50_000);
    assert_eq!(v.conns.len(), 50_000);
    assert!(!v.truncated && v.missing_workers.is_empty());
    assert_eq!(v.conns.iter().filter(|c| c.worker == 0).count(), 30_000);
    assert_eq!(
        v.conns.iter().filter(|c| c.protocol == "udp").count(),
        10_000 + 20_000 / 3 + 1
    );
}
