//! Schedulers and the persistence table shared by several worker threads.

use std::net::Ipv4Addr;
use std::sync::Barrier;

use engine::sched::{build, DestInfo, PersistTable, SchedInput, SchedKind, SchedOpts, StaticDest};

fn infos(weights: &[u32]) -> Vec<DestInfo> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| DestInfo::new(Ipv4Addr::new(198, 19, 0, 11 + i as u8), 80, w, true))
        .collect()
}

fn input(k: u32) -> SchedInput {
    SchedInput {
        src_ip: Ipv4Addr::from(0xC612_0000 | k),
        src_port: (k % 60000) as u16 + 1024,
        dst_ip: Ipv4Addr::new(198, 18, 0, 100),
        dst_port: 80,
        now_ms: k as u64,
    }
}

/// `threads` threads make `per_thread` picks each from one shared
/// scheduler; the per-server totals.
fn shared_counts(
    kind: SchedKind,
    weights: &[u32],
    threads: usize,
    per_thread: usize,
) -> Vec<usize> {
    let s = build(kind, &SchedOpts::default(), &infos(weights));
    let d: Vec<StaticDest> = weights.iter().map(|&w| StaticDest::up(w)).collect();
    let barrier = Barrier::new(threads);
    let per: Vec<Vec<usize>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (s, d, barrier) = (&s, &d, &barrier);
                sc.spawn(move || {
                    let mut c = vec![0usize; d.len()];
                    barrier.wait();
                    for k in 0..per_thread {
                        let i = s
                            .schedule(d, &input((t * per_thread + k) as u32))
                            .expect("a pick");
                        c[i] += 1;
                    }
                    c
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (0..weights.len())
        .map(|i| per.iter().map(|c| c[i]).sum())
        .collect()
}

#[test]
fn wrr_two_threads_make_exact_cycles() {
    // 600 picks of wrr 3,2,1 = 100 cycles of A A B A B C.
    for _ in 0..20 {
        assert_eq!(
            shared_counts(SchedKind::Wrr, &[3, 2, 1], 2, 300),
            vec![300, 200, 100]
        );
    }
    // 4,3,2: cycle 9; 4 threads x 450 = 200 cycles.
    assert_eq!(
        shared_counts(SchedKind::Wrr, &[4, 3, 2], 4, 450),
        vec![800, 600, 400]
    );
    // gcd 2: 6,4,2 is the cycle of 3,2,1.
    assert_eq!(
        shared_counts(SchedKind::Wrr, &[6, 4, 2], 2, 3000),
        vec![3000, 2000, 1000]
    );
}

#[test]
fn rr_two_threads_make_exact_cycles() {
    for _ in 0..20 {
        assert_eq!(
            shared_counts(SchedKind::Rr, &[1, 1, 1], 2, 300),
            vec![200, 200, 200]
        );
    }
    // Weight 0 is skipped; 3 threads x 1000 over 3 live servers.
    assert_eq!(
        shared_counts(SchedKind::Rr, &[5, 0, 1, 2], 3, 1000),
        vec![1000, 0, 1000, 1000]
    );
}

#[test]
fn wrr_shared_sequence_is_the_single_thread_sequence() {
    // Interleave two threads strictly (ping-pong): the merged sequence must
    // be exactly the kernel's sequence.
    let s = build(SchedKind::Wrr, &SchedOpts::default(), &infos(&[4, 3, 2]));
    let d: Vec<StaticDest> = [4, 3, 2].iter().map(|&w| StaticDest::up(w)).collect();
    let turn = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(String::new());
    std::thread::scope(|sc| {
        for t in 0..2 {
            let (s, d, turn, out) = (&s, &d, &turn, &out);
            sc.spawn(move || {
                for _ in 0..9 {
                    while turn.load(std::sync::atomic::Ordering::Acquire) % 2 != t {
                        std::hint::spin_loop();
                    }
                    let p = s.schedule(d, &input(0)).unwrap();
                    out.lock().unwrap().push((b'A' + p as u8) as char);
                    turn.fetch_add(1, std::sync::atomic::Ordering::Release);
                }
            });
        }
    });
    assert_eq!(out.into_inner().unwrap(), "AABABCABCAABABCABC");
}

#[test]
fn caches_stay_consistent_under_concurrency() {
    // lblc / lblcr / persistence hammered by 4 threads on few keys: every
    // answer is a valid server, and after the storm every thread agrees.
    let w = [1u32, 2, 3, 1, 1];
    let d: Vec<StaticDest> = w.iter().map(|&w| StaticDest::up(w)).collect();
    for kind in [SchedKind::Lblc, SchedKind::Lblcr] {
        let opts = SchedOpts {
            cache_entries: 16,
            ..SchedOpts::default()
        };
        let s = build(kind, &opts, &infos(&w));
        std::thread::scope(|sc| {
            for t in 0..4u32 {
                let (s, d) = (&s, &d);
                sc.spawn(move || {
                    for k in 0..20_000u32 {
                        let mut i = input(t);
                        i.dst_ip = Ipv4Addr::new(10, 0, 0, (k % 40) as u8);
                        i.now_ms = k as u64;
                        let p = s.schedule(d, &i).unwrap();
                        assert!(p < w.len());
                    }
                });
            }
        });
    }

    // Room for the 16 nets whatever the interleaving: with 64 slots (16 sets
    // of 4) and a random secret, 5 of the nets shared a set in ~7% of runs,
    // and the table then rightly evicted a live template (no held
    // connection) for another net's, which the quiescent check below took
    // for a lost one. A fixed secret and 256 sets keep every net's template;
    // eviction under pressure is `persist_holds_balance_under_churn`'s.
    let t = PersistTable::with_seed(1024, 1);
    std::thread::scope(|sc| {
        for th in 0..4u32 {
            let t = &t;
            sc.spawn(move || {
                for k in 0..20_000u32 {
                    let net = Ipv4Addr::new(10, 0, (k % 16) as u8, 0);
                    let now = k as u64;
                    let server = match t.lookup(1, net, now, 1_000_000) {
                        Some(s) => s,
                        None => t.insert(1, net, th * 100 + k % 16, now, 1_000_000),
                    };
                    assert_eq!(server % 100, k % 16, "a template of another net");
                    if t.hold(1, net, server, now) {
                        assert!(t.release(1, net, server, now), "a hold lost");
                    }
                }
            });
        }
    });
    // Quiescent: one answer per net.
    for n in 0..16u8 {
        let net = Ipv4Addr::new(10, 0, n, 0);
        let a = t.lookup(1, net, 20_000, 0).expect("template kept");
        assert_eq!(a % 100, n as u32);
        assert_eq!(t.lookup(1, net, 20_000, 0), Some(a));
    }
}

/// Workers take and give back holds while templates are invalidated,
/// replaced, revived and forgotten under them (small table: full sets and
/// collisions): every hold comes back to the entry that counted it, none is
/// left once every connection is gone, and every template then expires.
#[test]
fn persist_holds_balance_under_churn() {
    let t = PersistTable::new(32);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let t = &t;
        let stop = &stop;
        let workers: Vec<_> = (0..4u32)
            .map(|th| {
                sc.spawn(move || {
                    // Connections alive: (net, server), given back later.
                    let mut alive: Vec<(Ipv4Addr, u32)> = Vec::new();
                    let mut x = 0x9e37_79b9u32.wrapping_mul(th + 1);
                    for k in 0..40_000u32 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let now = k as u64;
                        let net = Ipv4Addr::new(10, 0, (x % 48) as u8, 0);
                        // Server 7 is "down" now and then: its templates go.
                        let bad = (k / 500) % 3 == th % 3;
                        let server = match t.lookup_valid(1, net, now, 50, |s| !(bad && s == 7)) {
                            Some(s) => s,
                            None => t.insert(1, net, 5 + (x >> 8) % 3, now, 50),
                        };
                        if t.hold(1, net, server, now) {
                            alive.push((net, server));
                        }
                        if alive.len() > 20 || (x >> 4).is_multiple_of(3) {
                            if let Some((n, s)) = (!alive.is_empty())
                                .then(|| alive.swap_remove((x >> 12) as usize % alive.len()))
                            {
                                assert!(t.release(1, n, s, now), "a hold lost");
                            }
                        }
                    }
                    for (n, s) in alive {
                        assert!(t.release(1, n, s, 40_000), "a hold lost");
                    }
                })
            })
            .collect();
        // The control thread forgets a server now and then.
        sc.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                t.forget_server(6);
                std::thread::yield_now();
            }
        });
        // Stop the control thread also when a worker failed.
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in results {
            if let Err(e) = r {
                std::panic::resume_unwind(e);
            }
        }
    });
    assert_eq!(t.held_entries(), 0, "holds left with no connection");
    assert_eq!(t.live_entries(40_000 + 200_000), 0);
}
