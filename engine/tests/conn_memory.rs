//! The connection table in DPDK's memory (`rte_malloc_socket`, what `rvs`
//! uses when the EAL has hugepages) behaves exactly as the one on the heap:
//! the same operations, in the same order, with the same hash seed, give the
//! same answers and leave the same records. One test: the EAL is
//! initialised once per process (here without hugepages, so it runs on any
//! machine; the allocator path is the same with them).

use std::net::Ipv4Addr;

use engine::conn::{ConnTable, FlowKey, Method, NewConn, TcpState, PROTO_TCP, PROTO_UDP};
use engine::dataplane::eal;
use engine::dataplane::region::{Source, TableMemory};

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn conn(i: u64) -> NewConn {
    NewConn {
        proto: if i.is_multiple_of(5) {
            PROTO_UDP
        } else {
            PROTO_TCP
        },
        client: Ipv4Addr::from(0xc612_0100u32 + (i % 4096) as u32),
        cport: 1024 + (i / 4096) as u16,
        vip: Ipv4Addr::new(198, 18, 0, 100),
        vport: 80,
        server: Ipv4Addr::new(198, 19, 0, 11 + (i % 4) as u8),
        sport: 8080,
        method: if i.is_multiple_of(3) {
            Method::Dr
        } else {
            Method::Nat
        },
        flags: 0,
        service: 0,
        dest: (i % 4) as u32,
        state: TcpState::None,
    }
}

fn key(c: &NewConn) -> FlowKey {
    FlowKey::new(c.proto, c.client, c.cport, c.vip, c.vport)
}

#[test]
fn table_in_dpdk_memory_matches_the_heap_one() {
    eal::init(&[
        "conn_memory_test".to_string(),
        "--lcores".into(),
        "0".into(),
        "-m".into(),
        "64".into(),
        "--no-huge".into(),
        "--no-shconf".into(),
        "--no-pci".into(),
        format!("--file-prefix=rvsconnmem{}", std::process::id()),
        "--log-level=lib.eal:warning".into(),
    ])
    .expect("EAL without hugepages");

    // 4k capacity with 30k connections offered: the table fills, evicts
    // and expires, so every path that writes the memory runs.
    let cap = 4096;
    let mut heap = ConnTable::with_capacity_in(cap, TableMemory::Thp, Some(42));
    let mut dpdk = ConnTable::with_capacity_in(cap, TableMemory::Dpdk { socket: -1 }, Some(42));
    let spans = dpdk.memory_spans();
    assert_eq!(spans.source, Source::Dpdk, "the table came from rte_malloc");
    assert_eq!(heap.memory_spans().source, Source::Heap);
    let d = spans.describe();
    assert!(d.starts_with("dpdk "), "{d}");
    assert_eq!(heap.memory_bytes(), dpdk.memory_bytes());
    assert_eq!(heap.index_buckets(), dpdk.index_buckets());

    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let (mut hits, mut inserted, mut reclaimed, mut expired) = (0, 0, 0, 0);
    for step in 0..30_000u64 {
        let now = 1_000 + step / 2;
        let i = xorshift(&mut x) % 12_000;
        let c = conn(i);
        let k = key(&c);
        let (a, b) = (heap.lookup(&k, now), dpdk.lookup(&k, now));
        assert_eq!(a, b, "lookup of {i} at step {step}");
        match a {
            Some((id, dir)) => {
                hits += 1;
                let flags = [0x02, 0x10, 0x18, 0x11][(step % 4) as usize];
                assert_eq!(
                    heap.on_packet(id, dir, flags, now),
                    dpdk.on_packet(id, dir, flags, now)
                );
                if step % 7 == 0 {
                    assert_eq!(heap.remove(id), dpdk.remove(id));
                }
            }
            None => {
                let mut ra = Vec::new();
                let mut rb = Vec::new();
                let ia = heap.insert_or_evict(c, now, |old, why| ra.push((*old, why)));
                let ib = dpdk.insert_or_evict(c, now, |old, why| rb.push((*old, why)));
                assert_eq!(ia, ib, "insert of {i} at step {step}");
                assert_eq!(ra, rb);
                inserted += ia.is_ok() as usize;
                reclaimed += ra.len();
            }
        }
        if step % 64 == 0 {
            let mut ea = Vec::new();
            let mut eb = Vec::new();
            let na = heap.expire_some(now, 256, |c| ea.push(*c));
            let nb = dpdk.expire_some(now, 256, |c| eb.push(*c));
            assert_eq!((na, &ea), (nb, &eb));
            expired += na;
        }
        assert_eq!(heap.len(), dpdk.len());
    }
    let a: Vec<_> = heap.iter().map(|(id, c)| (id, *c)).collect();
    let b: Vec<_> = dpdk.iter().map(|(id, c)| (id, *c)).collect();
    assert_eq!(a, b, "the same records in the same slots");
    assert_eq!(heap.max_probe_len(), dpdk.max_probe_len());
    println!(
        "conn_memory: {} ops, {hits} hits, {inserted} inserts, {reclaimed} reclaimed, {expired} expired, \
         {} live; dpdk table: {d}",
        30_000,
        a.len()
    );
    assert!(hits > 1000 && inserted > cap && reclaimed > 0 && expired > 0);
    drop(dpdk);
}
