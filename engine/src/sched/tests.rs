//! Unit tests: exact sequences and exact picks, as IPVS makes them.

use std::net::Ipv4Addr;

use super::*;

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn input(src: [u8; 4], sport: u16, dst: [u8; 4], now_ms: u64) -> SchedInput {
    SchedInput {
        src_ip: ip(src),
        src_port: sport,
        dst_ip: ip(dst),
        dst_port: 80,
        now_ms,
    }
}

fn any_input() -> SchedInput {
    input([198, 18, 0, 10], 40000, [198, 18, 0, 100], 0)
}

fn infos(weights: &[u32]) -> Vec<DestInfo> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| DestInfo::new(ip([198, 19, 0, 11 + i as u8]), 8080, w, true))
        .collect()
}

fn up(weights: &[u32]) -> Vec<StaticDest> {
    weights.iter().map(|&w| StaticDest::up(w)).collect()
}

fn letter(p: Option<usize>) -> char {
    p.map_or('-', |i| (b'A' + i as u8) as char)
}

/// `n` picks as letters, A = server 0, `-` = none.
fn picks(s: &dyn Scheduler, d: &dyn Dests, n: usize) -> String {
    (0..n)
        .map(|_| letter(s.schedule(d, &any_input())))
        .collect()
}

fn sched(kind: SchedKind, weights: &[u32]) -> Box<dyn Scheduler> {
    build(kind, &SchedOpts::default(), &infos(weights))
}

#[test]
fn build_gives_each_kind() {
    for k in SchedKind::ALL {
        assert_eq!(sched(k, &[1, 1]).kind(), k);
        assert_eq!(SchedKind::from_name(k.name()), Some(k));
    }
}

// ---------------------------------------------------------------- wrr

#[test]
fn wrr_432_gives_aababcabc_twice() {
    let s = sched(SchedKind::Wrr, &[4, 3, 2]);
    let d = up(&[4, 3, 2]);
    assert_eq!(picks(&*s, &d, 18), "AABABCABCAABABCABC");
}

#[test]
fn wrr_with_common_divisor() {
    // gcd 2: step 2, ceiling 6 - 1 = 5; passes at 5, 3, 1.
    let s = sched(SchedKind::Wrr, &[6, 4, 2]);
    assert_eq!(picks(&*s, &up(&[6, 4, 2]), 12), "AABABCAABABC");
    // gcd 2: ceiling 3, passes at 3 and 1.
    let s = sched(SchedKind::Wrr, &[4, 2, 2]);
    assert_eq!(picks(&*s, &up(&[4, 2, 2]), 8), "AABCAABC");
    // gcd 5 with equal weights: plain round robin.
    let s = sched(SchedKind::Wrr, &[5, 5, 5]);
    assert_eq!(picks(&*s, &up(&[5, 5, 5]), 6), "ABCABC");
}

#[test]
fn wrr_skips_overloaded_down_and_weight_zero() {
    let s = sched(SchedKind::Wrr, &[4, 3, 2, 0]);
    let mut d = up(&[4, 3, 2, 0]);
    d[1].overloaded = true;
    // B never qualifies; cw runs 4, 3, 2, 1 as before.
    assert_eq!(picks(&*s, &d, 12), "AAACACAAACAC");
    let s = sched(SchedKind::Wrr, &[4, 3, 2]);
    let mut d = up(&[4, 3, 2]);
    d[0].usable = false;
    assert_eq!(picks(&*s, &d, 10), "BBCBCBBCBC");
}

#[test]
fn wrr_none_available_then_recovers() {
    let s = sched(SchedKind::Wrr, &[2, 1]);
    let mut d = up(&[2, 1]);
    assert_eq!(picks(&*s, &d, 2), "AA");
    d[0].overloaded = true;
    d[1].overloaded = true;
    assert_eq!(picks(&*s, &d, 3), "---");
    // The kernel's failed scan stopped on A with cw 1 (its last pass):
    // the cycle resumes from there.
    d[0].overloaded = false;
    d[1].overloaded = false;
    assert_eq!(picks(&*s, &d, 6), "BAABAA");
    // All weights 0 at build time: nothing, ever.
    let s = sched(SchedKind::Wrr, &[0, 0]);
    assert_eq!(picks(&*s, &up(&[1, 1]), 2), "--");
}

#[test]
fn wrr_ignores_servers_not_usable_at_build() {
    // C (weight 8) is not in the list at build: the ceiling is 4.
    let mut i = infos(&[4, 3, 8]);
    i[2].usable = false;
    let s = build(SchedKind::Wrr, &SchedOpts::default(), &i);
    let mut d = up(&[4, 3, 8]);
    d[2].usable = false;
    assert_eq!(picks(&*s, &d, 7), "AABABAB");
}

// ---------------------------------------------------------------- rr

#[test]
fn rr_skips_and_continues_from_last_pick() {
    let s = sched(SchedKind::Rr, &[1, 0, 1, 1, 1]);
    let mut d = up(&[1, 0, 1, 1, 1]);
    d[3].usable = false;
    d[4].overloaded = true;
    assert_eq!(picks(&*s, &d, 5), "ACACA");
    // Last pick A; E comes back: next after A is C, then E.
    d[4].overloaded = false;
    assert_eq!(picks(&*s, &d, 4), "CEAC");
    // Nothing available: no pick, cursor stays on C.
    let mut none = d.clone();
    for x in none.iter_mut() {
        x.usable = false;
    }
    assert_eq!(picks(&*s, &none, 2), "--");
    assert_eq!(picks(&*s, &d, 3), "EAC");
}

/// rr against IPVS's walk written out (the first candidate after the last
/// pick, wrapping once; from the head, the whole list in order; no pick
/// leaves the cursor): every candidate set of up to 6 servers, changed
/// between picks, from every cursor position rr reaches.
#[test]
fn rr_matches_the_ipvs_walk() {
    const HEAD: usize = usize::MAX;
    for n in 0..=6usize {
        let sets = 1u32 << n;
        let s = sched(SchedKind::Rr, &vec![1; n]);
        let mut last = HEAD;
        // A walk through the candidate sets that visits each from many
        // cursors: set k, then k * 5 + 3 (mod sets), three picks each.
        let mut k = 0u32;
        for _ in 0..4 * sets {
            let mut d = up(&vec![1; n]);
            for (i, x) in d.iter_mut().enumerate() {
                match (k >> i) & 1 {
                    1 => {}
                    _ if i % 2 == 0 => x.usable = false,
                    _ => x.overloaded = true,
                }
            }
            for _ in 0..3 {
                let cand = |i: usize| k >> i & 1 == 1;
                let want = if last >= n {
                    (0..n).find(|&i| cand(i))
                } else {
                    (last + 1..n).chain(0..=last).find(|&i| cand(i))
                };
                let got = s.schedule(&d, &any_input());
                assert_eq!(got, want, "n {n} set {k:#b} last {last}");
                if let Some(i) = got {
                    last = i;
                }
            }
            k = (k * 5 + 3) % sets;
        }
    }
}

// ---------------------------------------------------------------- lc family

fn loaded(spec: &[(u32, u32, u32)]) -> Vec<StaticDest> {
    spec.iter()
        .map(|&(weight, active, inactive)| StaticDest {
            weight,
            usable: true,
            overloaded: false,
            active,
            inactive,
        })
        .collect()
}

#[test]
fn lc_picks_lowest_overhead_first_on_tie() {
    let s = sched(SchedKind::Lc, &[1, 1, 1]);
    // 256, 300, 256: tie between A and C goes to A.
    let d = loaded(&[(1, 1, 0), (1, 0, 300), (9, 0, 256)]);
    assert_eq!(picks(&*s, &d, 1), "A");
    // B at 255 wins; weights do not matter to lc.
    let d = loaded(&[(9, 1, 0), (1, 0, 255), (9, 0, 256)]);
    assert_eq!(picks(&*s, &d, 1), "B");
    // Weight 0 is never chosen, even idle.
    let d = loaded(&[(1, 5, 5), (0, 0, 0)]);
    assert_eq!(picks(&*s, &d, 1), "A");
}

#[test]
fn wlc_picks_lowest_overhead_over_weight() {
    let s = sched(SchedKind::Wlc, &[1, 1, 1]);
    // 256/1 vs 512/3: B.
    let d = loaded(&[(1, 1, 0), (3, 2, 0)]);
    assert_eq!(picks(&*s, &d, 1), "B");
    // 512/2 vs 256/1: tie, first wins.
    let d = loaded(&[(2, 2, 0), (1, 1, 0)]);
    assert_eq!(picks(&*s, &d, 1), "A");
    // Inactive connections count 1/256 of an active one.
    let d = loaded(&[(1, 0, 257), (1, 1, 0)]);
    assert_eq!(picks(&*s, &d, 1), "B");
    // Overloaded and down are skipped.
    let mut d = loaded(&[(1, 0, 0), (1, 0, 0), (1, 0, 1)]);
    d[0].overloaded = true;
    d[1].usable = false;
    assert_eq!(picks(&*s, &d, 1), "C");
}

#[test]
fn sed_and_nq_exact_picks() {
    let sed = sched(SchedKind::Sed, &[1, 1, 1]);
    let nq = sched(SchedKind::Nq, &[1, 1, 1]);
    // sed: (0+1)/1 = 1 vs (1+1)/3: B. nq: A is idle, taken at once.
    let d = loaded(&[(1, 0, 0), (3, 1, 0)]);
    assert_eq!(picks(&*sed, &d, 1), "B");
    assert_eq!(picks(&*nq, &d, 1), "A");
    // nq: the first idle server in order, whatever the weights.
    let d = loaded(&[(1, 2, 0), (5, 0, 9), (9, 0, 0)]);
    assert_eq!(picks(&*nq, &d, 1), "B");
    // sed ignores inactive: (0+1)/5 vs (0+1)/9: C.
    assert_eq!(picks(&*sed, &d, 1), "C");
    // nq with nobody idle behaves as sed: 3/2 vs 2/1 vs 5/4 -> C.
    let d = loaded(&[(2, 2, 0), (1, 1, 0), (4, 4, 0)]);
    assert_eq!(picks(&*nq, &d, 1), "C");
    assert_eq!(picks(&*sed, &d, 1), "C");
    // Ties go to the first: 2/2 vs 1/1.
    let d = loaded(&[(2, 1, 0), (1, 0, 0)]);
    assert_eq!(picks(&*sed, &d, 1), "A");
}

// ---------------------------------------------------------------- lblc

fn lblc_pick(s: &dyn Scheduler, d: &dyn Dests, dst: [u8; 4], now: u64) -> char {
    letter(s.schedule(d, &input([198, 18, 0, 10], 1234, dst, now)))
}

#[test]
fn lblc_keeps_destination_until_overloaded_in_its_sense() {
    let s = sched(SchedKind::Lblc, &[2, 2]);
    let x = [10, 0, 0, 1];
    let mut d = loaded(&[(2, 0, 0), (2, 0, 0)]);
    assert_eq!(lblc_pick(&*s, &d, x, 0), 'A');
    // A is far more loaded than B, but B has active 1 = weight/2: A is not
    // overloaded in lblc's sense (some server must be below half its weight).
    d[0].active = 50;
    d[1].active = 1;
    assert_eq!(lblc_pick(&*s, &d, x, 1), 'A');
    // B drops below half its weight: A (active 50 > weight 2) is overloaded,
    // a wlc pick (B) replaces it.
    d[1].active = 0;
    assert_eq!(lblc_pick(&*s, &d, x, 2), 'B');
    // The destination now stays on B, even once A is idle again.
    d[0].active = 0;
    d[1].active = 2;
    assert_eq!(lblc_pick(&*s, &d, x, 3), 'B');
    // Another destination gets its own wlc pick.
    assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, 2], 4), 'A');
    // B goes down: replaced by a wlc pick, and stays replaced.
    d[1].usable = false;
    assert_eq!(lblc_pick(&*s, &d, x, 5), 'A');
    d[1].usable = true;
    assert_eq!(lblc_pick(&*s, &d, x, 6), 'A');
}

#[test]
fn lblc_entry_expires_after_idle_time() {
    let opts = SchedOpts {
        lblc_expiration_ms: 1000,
        ..SchedOpts::default()
    };
    let s = build(SchedKind::Lblc, &opts, &infos(&[1, 1]));
    let x = [10, 0, 0, 1];
    let mut d = loaded(&[(1, 0, 0), (1, 0, 0)]);
    assert_eq!(lblc_pick(&*s, &d, x, 0), 'A');
    d[0].active = 1; // A busier, but not overloaded in lblc's sense
    assert_eq!(lblc_pick(&*s, &d, x, 999), 'A'); // refreshes last use
    assert_eq!(lblc_pick(&*s, &d, x, 1998), 'A');
    // Idle for the full expiration: forgotten, wlc picks B.
    assert_eq!(lblc_pick(&*s, &d, x, 2998), 'B');
}

#[test]
fn lblc_honours_upper_threshold_on_cache_hit() {
    let s = sched(SchedKind::Lblc, &[1, 1]);
    let x = [10, 0, 0, 1];
    let mut d = loaded(&[(1, 0, 0), (1, 0, 0)]);
    assert_eq!(lblc_pick(&*s, &d, x, 0), 'A');
    d[0].overloaded = true;
    assert_eq!(lblc_pick(&*s, &d, x, 1), 'B');
}

#[test]
fn lblc_cache_evicts_least_recently_used_of_a_full_set() {
    // 4 entries = one set of 4 ways: the fifth destination evicts the LRU.
    let opts = SchedOpts {
        cache_entries: 4,
        ..SchedOpts::default()
    };
    let s = build(SchedKind::Lblc, &opts, &infos(&[1, 1]));
    let mut d = loaded(&[(1, 0, 0), (1, 0, 0)]);
    for k in 1..=4u8 {
        assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, k], k as u64), 'A');
    }
    // Touch 1, 3, 4: 2 is the LRU.
    for k in [1u8, 3, 4] {
        assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, k], 10 + k as u64), 'A');
    }
    d[0].active = 1; // wlc now prefers B
    assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, 5], 20), 'B');
    // 1, 3, 4, 5 are cached; 2 was evicted and is scheduled afresh.
    for k in [1u8, 3, 4] {
        assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, k], 30), 'A');
    }
    assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, 5], 30), 'B');
    assert_eq!(lblc_pick(&*s, &d, [10, 0, 0, 2], 30), 'B');
}

// ---------------------------------------------------------------- lblcr

#[test]
fn lblcr_grows_when_best_is_overloaded_and_shrinks_after_expiry() {
    let opts = SchedOpts {
        lblcr_expiration_ms: 1000,
        lblc_expiration_ms: 1000, // not used by lblcr
        ..SchedOpts::default()
    };
    let s = build(SchedKind::Lblcr, &opts, &infos(&[2, 2, 2]));
    let x = [10, 0, 0, 1];
    let mut d = loaded(&[(2, 0, 0), (2, 0, 0), (2, 0, 0)]);
    // Miss: wlc pick A, set {A} (modified at 0).
    assert_eq!(lblc_pick(&*s, &d, x, 0), 'A');
    // A overloaded in lblc's sense (3 > 2, C idle): wlc adds B: {A, B}.
    d[0].active = 3;
    assert_eq!(lblc_pick(&*s, &d, x, 100), 'B');
    // The set's least loaded member is B.
    d[1].active = 1;
    assert_eq!(lblc_pick(&*s, &d, x, 200), 'B');
    // C is never in the set: even idle, not chosen while B is fine.
    assert_eq!(lblc_pick(&*s, &d, x, 300), 'B');
    // Unchanged for exactly the expiration (100 + 1000): no shrink yet.
    d[0].active = 0;
    d[1].active = 1;
    // Now A (idle) is the set's best.
    assert_eq!(lblc_pick(&*s, &d, x, 1100), 'A');
    // Past the expiration: the most loaded member (B) is dropped.
    assert_eq!(lblc_pick(&*s, &d, x, 1101), 'A');
    // {A}: make A busier than B; B is no longer a member, A is kept.
    d[0].active = 2;
    d[1].active = 0;
    d[2].active = 1;
    assert_eq!(lblc_pick(&*s, &d, x, 1200), 'A');
}

#[test]
fn lblcr_shrink_keeps_the_pick_made_before_it() {
    // The kernel computes the set's best member before dropping the most
    // loaded one; with equal loads both are the first member, which is
    // dropped from the set and still used for this connection.
    let opts = SchedOpts {
        lblcr_expiration_ms: 10,
        ..SchedOpts::default()
    };
    let s = build(SchedKind::Lblcr, &opts, &infos(&[1, 1, 1]));
    let x = [10, 0, 0, 9];
    let mut d = loaded(&[(1, 0, 0), (1, 0, 0), (1, 0, 0)]);
    assert_eq!(lblc_pick(&*s, &d, x, 0), 'A');
    d[0].active = 2; // A overloaded (2 > 1, C idle): add B
    assert_eq!(lblc_pick(&*s, &d, x, 1), 'B');
    assert_eq!(lblc_pick(&*s, &d, x, 8), 'B'); // used: not idle-expired
    d[0].active = 0;
    assert_eq!(lblc_pick(&*s, &d, x, 15), 'A'); // best A, A dropped: {B}
    assert_eq!(lblc_pick(&*s, &d, x, 16), 'B');
}

#[test]
fn lblcr_supports_more_than_64_servers() {
    let w = vec![1u32; 100];
    let s = sched(SchedKind::Lblcr, &w);
    let mut d = up(&w);
    for x in d.iter_mut().take(90) {
        x.active = 5;
    }
    // Servers 0..90 are busy: wlc picks 90, and the set remembers it.
    assert_eq!(
        s.schedule(&d, &input([1, 1, 1, 1], 1, [10, 0, 0, 1], 0)),
        Some(90)
    );
    d[90].active = 1; // busier than 91.., still kept: member of the set
    assert_eq!(
        s.schedule(&d, &input([1, 1, 1, 1], 1, [10, 0, 0, 1], 1)),
        Some(90)
    );
}

// ---------------------------------------------------------------- dh / sh

#[test]
fn dh_fills_buckets_round_robin_and_hashes_the_destination() {
    let t = dh_buckets(&infos(&[1, 5, 0]));
    for (b, s) in t.iter().enumerate() {
        assert_eq!(*s, Some(b % 3));
    }
    // Host-order address, low 8 bits of addr * 2654435761:
    // 0x04 * 0xB1 = 708 = 2 * 256 + 196.
    assert_eq!(dh_bucket(ip([1, 2, 3, 4])), 196);
    let s = sched(SchedKind::Dh, &[1, 1, 1]);
    let d = up(&[1, 1, 1]);
    for k in 0..50u8 {
        let dst = [10, 1, k, k.wrapping_mul(7)];
        let want = dh_bucket(ip(dst)) % 3;
        for src in 0..5u8 {
            assert_eq!(
                s.schedule(&d, &input([9, 9, 9, src], 1, dst, 0)),
                Some(want)
            );
        }
    }
}

#[test]
fn dh_returns_nothing_when_the_bucket_server_is_unavailable() {
    let s = sched(SchedKind::Dh, &[1, 1]);
    let mut d = up(&[1, 1]);
    let dst = [1, 2, 3, 4]; // bucket 196: server 0
    assert_eq!(s.schedule(&d, &input([9, 9, 9, 9], 1, dst, 0)), Some(0));
    d[0].overloaded = true;
    assert_eq!(s.schedule(&d, &input([9, 9, 9, 9], 1, dst, 0)), None);
    d[0].overloaded = false;
    d[0].weight = 0;
    assert_eq!(s.schedule(&d, &input([9, 9, 9, 9], 1, dst, 0)), None);
}

#[test]
fn sh_gives_weight_w_exactly_w_consecutive_buckets() {
    // Weight 0 still gets one bucket, as in the kernel.
    let t = sh_buckets(&infos(&[3, 1, 0, 2]));
    let pattern = [0, 0, 0, 1, 2, 3, 3];
    for (b, s) in t.iter().enumerate() {
        assert_eq!(*s, Some(pattern[b % 7]), "bucket {b}");
    }
    let count = |i| t.iter().filter(|s| **s == Some(i)).count();
    // 256 = 36 * 7 + 4 (A A A B).
    assert_eq!([count(0), count(1), count(2), count(3)], [111, 37, 36, 72]);
    // A server not usable at build time gets no bucket.
    let mut i = infos(&[1, 1, 1]);
    i[1].usable = false;
    let t = sh_buckets(&i);
    assert!(t.iter().enumerate().all(|(b, s)| *s == Some([0, 2][b % 2])));
    // Total weight above 256: later servers get nothing.
    let t = sh_buckets(&infos(&[200, 100]));
    assert_eq!(t.iter().filter(|s| **s == Some(1)).count(), 56);
}

#[test]
fn sh_maps_a_source_to_the_same_server() {
    assert_eq!(sh_bucket(ip([1, 2, 3, 4]), 0), 196);
    // (port + addr) * G: port 1 moves address ...04 to ...05: 5 * 0xB1 = 885.
    assert_eq!(sh_bucket(ip([1, 2, 3, 4]), 1), 885 % 256);
    let w = [2, 1, 3];
    let s = sched(SchedKind::Sh, &w);
    let t = sh_buckets(&infos(&w));
    let d = up(&w);
    for k in 0..100u8 {
        let src = [172, 16, k / 10, k];
        let want = t[sh_bucket(ip(src), 0)];
        for port in [1u16, 999, 65535] {
            assert_eq!(
                s.schedule(&d, &input(src, port, [198, 18, 0, 100], 0)),
                want
            );
        }
    }
    // With sh-port the source port takes part.
    let opts = SchedOpts {
        sh_port: true,
        ..SchedOpts::default()
    };
    let s = build(SchedKind::Sh, &opts, &infos(&w));
    let src = [172, 16, 0, 1];
    for port in [1u16, 2, 3, 4000] {
        let want = t[sh_bucket(ip(src), port)];
        assert_eq!(
            s.schedule(&d, &input(src, port, [198, 18, 0, 100], 0)),
            want
        );
    }
}

#[test]
fn sh_fallback_walks_the_kernel_way() {
    let w = [1, 1, 1, 1];
    let t = sh_buckets(&infos(&w));
    let fb = build(
        SchedKind::Sh,
        &SchedOpts {
            sh_fallback: true,
            ..SchedOpts::default()
        },
        &infos(&w),
    );
    let plain = sched(SchedKind::Sh, &w);
    let mut d = up(&w);
    d[1].usable = false;
    d[2].overloaded = true;
    let g = HASH_MUL;
    for k in 0..=255u8 {
        let src = [10, 9, 8, k];
        let addr = u32::from(ip(src));
        let ihash = sh_bucket(ip(src), 0);
        let first = t[ihash].unwrap();
        let got_plain = plain.schedule(&d, &input(src, 5, [1, 1, 1, 1], 0));
        let got_fb = fb.schedule(&d, &input(src, 5, [1, 1, 1, 1], 0));
        if first == 0 || first == 3 {
            assert_eq!(got_plain, Some(first));
            assert_eq!(got_fb, Some(first));
            continue;
        }
        assert_eq!(got_plain, None);
        // Kernel walk: bucket (roffset + addr * G) mod 256, roffset from ihash.
        let want = (0..256u32)
            .map(|off| (off + ihash as u32) % 256)
            .map(|roff| t[(roff.wrapping_add(addr.wrapping_mul(g)) % 256) as usize].unwrap())
            .find(|&s| s == 0 || s == 3);
        assert_eq!(got_fb, want);
    }
}

// ---------------------------------------------------------------- mh

#[test]
#[allow(deprecated)]
fn siphash_core_matches_std_siphash_2_4() {
    use std::hash::{Hasher, SipHasher};
    for (k0, k1) in [(0u64, 0u64), (2_654_435_761, 2_654_435_761), (1, u64::MAX)] {
        for v in [0u32, 1, 0xdead_beef, u32::MAX] {
            let mut h = SipHasher::new_with_keys(k0, k1);
            h.write(&v.to_le_bytes());
            assert_eq!(mh::siphash_short(v as u64, 4, [k0, k1], 2, 4), h.finish());
        }
    }
}

#[test]
fn mh_table_honours_weights_and_is_stable() {
    let m = 4093;
    let t = mh_table(m, &infos(&[1, 1, 1]));
    assert_eq!(t.len(), m as usize);
    let count = |t: &[Option<usize>], i| t.iter().filter(|s| **s == Some(i)).count();
    for i in 0..3 {
        let c = count(&t, i);
        assert!((1300..=1430).contains(&c), "server {i}: {c} slots");
    }
    // Weights 3:1 (gcd 1): turns 3 and 1, so exactly 3/4 and 1/4 up to one round.
    let t = mh_table(m, &infos(&[3, 1]));
    let (a, b) = (count(&t, 0), count(&t, 1));
    assert_eq!(a + b, m as usize);
    assert!(a.abs_diff(3 * b) <= 3, "{a} vs {b}");
    // Weight 0 and unusable servers take no slot.
    let mut i = infos(&[1, 0, 1]);
    i[2].usable = false;
    let t = mh_table(m, &i);
    assert_eq!(count(&t, 0), m as usize);
    // Nothing usable: empty table, no pick.
    let s = build(SchedKind::Mh, &SchedOpts::default(), &infos(&[0, 0]));
    assert_eq!(s.schedule(&up(&[1, 1]), &any_input()), None);
    // Deterministic: the same servers give the same table.
    assert_eq!(
        mh_table(251, &infos(&[1, 2, 3])),
        mh_table(251, &infos(&[1, 2, 3]))
    );
}

#[test]
fn mh_lookup_uses_the_table_and_the_port_flag() {
    let w = [1, 1, 1, 1, 1];
    let t = mh_table(MH_DEFAULT_TABLE_SIZE, &infos(&w));
    let s = sched(SchedKind::Mh, &w);
    let d = up(&w);
    for k in 0..200u8 {
        let src = [100, 64, k, 255 - k];
        let want = t[mh_lookup_slot(MH_DEFAULT_TABLE_SIZE, ip(src), 0)];
        assert_eq!(s.schedule(&d, &input(src, k as u16, [1, 1, 1, 1], 0)), want);
    }
    let opts = SchedOpts {
        mh_port: true,
        ..SchedOpts::default()
    };
    let s = build(SchedKind::Mh, &opts, &infos(&w));
    let src = [100, 64, 1, 1];
    let mut seen = std::collections::BTreeSet::new();
    for port in 1000..1100u16 {
        let want = t[mh_lookup_slot(MH_DEFAULT_TABLE_SIZE, ip(src), port)];
        let got = s.schedule(&d, &input(src, port, [1, 1, 1, 1], 0));
        assert_eq!(got, want);
        seen.insert(got);
    }
    assert!(seen.len() > 1, "the port must take part in the hash");
}

#[test]
fn mh_fallback_finds_a_live_server() {
    let w = [1, 1, 1];
    let opts = SchedOpts {
        mh_fallback: true,
        mh_table_size: 251,
        ..SchedOpts::default()
    };
    let fb = build(SchedKind::Mh, &opts, &infos(&w));
    let plain = build(
        SchedKind::Mh,
        &SchedOpts {
            mh_table_size: 251,
            ..SchedOpts::default()
        },
        &infos(&w),
    );
    let t = mh_table(251, &infos(&w));
    let mut d = up(&w);
    d[1].usable = false;
    for k in 0..=255u8 {
        let src = [100, 64, 3, k];
        let first = t[mh_lookup_slot(251, ip(src), 0)].unwrap();
        let a = plain.schedule(&d, &input(src, 1, [1, 1, 1, 1], 0));
        let b = fb.schedule(&d, &input(src, 1, [1, 1, 1, 1], 0));
        if first == 1 {
            assert_eq!(a, None);
            assert!(matches!(b, Some(0) | Some(2)));
        } else {
            assert_eq!(a, Some(first));
            assert_eq!(b, Some(first));
        }
    }
}

#[test]
fn mh_removing_one_server_moves_about_one_nth() {
    let n = 10;
    let all = infos(&vec![1; n]);
    let before = mh_table(MH_DEFAULT_TABLE_SIZE, &all);
    let mut less = all.clone();
    less[4].usable = false;
    let after = mh_table(MH_DEFAULT_TABLE_SIZE, &less);
    let m = before.len() as f64;
    let moved_others = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b != Some(4) && b != a)
        .count() as f64;
    let on_removed = before.iter().filter(|b| **b == Some(4)).count() as f64;
    assert!(on_removed / m < 1.0 / n as f64 + 0.03);
    assert!(
        moved_others / m < 0.03,
        "{moved_others} slots of survivors moved"
    );
}

#[test]
fn mh_corrects_a_bad_table_size() {
    assert!(SchedOpts::default().validate(10).is_ok());
    let bad = SchedOpts {
        mh_table_size: 1000,
        ..SchedOpts::default()
    };
    assert!(bad.validate(3).is_err());
    assert_eq!(mh_table(1000, &infos(&[1])).len(), 1009);
    let small = SchedOpts {
        mh_table_size: 3,
        ..SchedOpts::default()
    };
    assert!(small.validate(5).is_err());
    assert_eq!(mh_table(3, &infos(&[1; 5])).len(), 7);
    assert_eq!(mh_table_bits(4093), 6);
    assert_eq!(mh_table_bits(251), 4);
    assert_eq!(mh_table_bits(65521), 8);
}

// ---------------------------------------------------------------- thresholds

#[test]
fn thresholds_switch_at_upper_and_back_at_lower() {
    // upper 10, lower 5: on at 10, off below 5.
    let mut o = false;
    let mut trace = Vec::new();
    for c in (0..=10).chain((0..10).rev()) {
        o = overload_next(o, c, 10, 5);
        trace.push(o);
    }
    let on: Vec<u32> = (0..=10)
        .chain((0..10).rev())
        .zip(&trace)
        .filter(|(_, &t)| t)
        .map(|(c, _)| c)
        .collect();
    assert_eq!(on, vec![10, 9, 8, 7, 6, 5]);
}

#[test]
fn thresholds_without_lower_release_below_three_quarters() {
    // upper 10: off when conns * 4 < 30, i.e. at 7.
    let mut o = overload_next(false, 10, 10, 0);
    assert!(o);
    for c in [9, 8] {
        o = overload_next(o, c, 10, 0);
        assert!(o, "{c}");
    }
    o = overload_next(o, 7, 10, 0);
    assert!(!o);
    // Not overloaded below upper when it was not.
    assert!(!overload_next(false, 9, 10, 0));
    // upper 4: 3 * 4 = 12 is not below 12: still on at 3, off at 2.
    assert!(overload_next(true, 3, 4, 0));
    assert!(!overload_next(true, 2, 4, 0));
    // No upper threshold: never overloaded.
    assert!(!overload_next(true, 1_000_000, 0, 5));
}

// ---------------------------------------------------------------- persistence

#[test]
fn persist_hit_refresh_expiry_and_forget() {
    let t = PersistTable::new(64);
    let net = mask(ip([198, 18, 7, 200]), ip([255, 255, 255, 0]));
    assert_eq!(net, ip([198, 18, 7, 0]));
    assert_eq!(t.lookup(1, net, 0, 300_000), None);
    assert_eq!(t.insert(1, net, 42, 0, 300_000), 42);
    // Same service, same net: hit; other service: miss.
    assert_eq!(t.lookup(1, net, 1000, 300_000), Some(42));
    assert_eq!(t.lookup(2, net, 1000, 300_000), None);
    // The hit at 1000 moved the expiry to 301000.
    assert_eq!(t.lookup(1, net, 300_999, 300_000), Some(42));
    // ... and that one to 600999; idle past it: gone.
    assert_eq!(t.lookup(1, net, 600_999 + 1, 300_000), None);
    assert_eq!(t.live_entries(600_999 + 1), 0);
    // A second insert by a racing worker keeps the first template.
    assert_eq!(t.insert(1, net, 7, 700_000, 1000), 7);
    assert_eq!(t.insert(1, net, 8, 700_000, 1000), 7);
    assert_eq!(t.lookup(1, net, 700_500, 1000), Some(7));
    // forget_server drops it.
    assert_eq!(t.forget_server(7), 1);
    assert_eq!(t.lookup(1, net, 700_600, 1000), None);
    // forget_service.
    t.insert(3, net, 9, 0, 10_000);
    t.insert(3, ip([10, 0, 0, 0]), 9, 0, 10_000);
    assert_eq!(t.forget_service(3), 2);
    assert_eq!(t.live_entries(1), 0);
}

#[test]
fn persist_lookup_valid_drops_a_template_of_a_bad_server() {
    let t = PersistTable::new(16);
    let net = ip([10, 1, 0, 0]);
    t.insert(1, net, 5, 0, 10_000);
    assert_eq!(t.lookup_valid(1, net, 1, 10_000, |s| s != 5), None);
    assert_eq!(t.lookup(1, net, 2, 10_000), None);
    assert!(!t.remove(1, net));
    t.insert(1, net, 6, 3, 10_000);
    assert!(t.remove(1, net));
    assert_eq!(t.lookup(1, net, 4, 10_000), None);
}

#[test]
fn persist_template_is_held_while_its_connections_live() {
    let t = PersistTable::new(16);
    let net = ip([10, 2, 0, 0]);
    t.insert(1, net, 5, 0, 1000);
    assert!(t.hold(1, net, 5, 10));
    assert!(t.hold(1, net, 5, 20));
    // Only with the template's own server.
    assert!(!t.hold(1, net, 6, 20));
    assert_eq!(t.holds(1, net, 20), 2);
    // Past its expiry but held: still there.
    assert_eq!(t.lookup(1, net, 5000, 1000), Some(5));
    assert!(t.release(1, net, 5, 5500));
    assert_eq!(t.live_entries(100_000), 1);
    // Last release at 70 000; expiry was 6000 (refreshed at 5000): the
    // kernel's re-checks fall at 6000 + k * 60 000; the first after 70 000
    // is 126 000.
    assert!(t.release(1, net, 5, 70_000));
    assert_eq!(t.lookup(1, net, 125_999, 0), Some(5));
    assert_eq!(t.lookup(1, net, 126_000, 0), None);
    // Releasing without a template, or past zero, is harmless.
    assert!(!t.release(1, net, 5, 200_000));
    assert!(!t.hold(1, net, 5, 200_000));
}

#[test]
fn persist_full_set_replaces_the_earliest_expiring() {
    // Capacity 4 = one set.
    let t = PersistTable::new(4);
    assert_eq!(t.capacity(), 4);
    for k in 0..4u8 {
        t.insert(1, ip([10, 0, k, 0]), k as u32, 0, 1000 + k as u64);
    }
    assert!(t.hold(1, ip([10, 0, 0, 0]), 0, 0)); // held: kept
    t.insert(1, ip([10, 0, 9, 0]), 9, 10, 1000);
    assert_eq!(t.lookup(1, ip([10, 0, 0, 0]), 20, 0), Some(0));
    assert_eq!(t.lookup(1, ip([10, 0, 1, 0]), 20, 0), None); // evicted
    assert_eq!(t.lookup(1, ip([10, 0, 2, 0]), 20, 0), Some(2));
    assert_eq!(t.lookup(1, ip([10, 0, 9, 0]), 20, 0), Some(9));
    // Expired entries are replaced first.
    t.insert(1, ip([10, 0, 8, 0]), 8, 5000, 1000);
    assert_eq!(t.lookup(1, ip([10, 0, 8, 0]), 5001, 0), Some(8));
    assert_eq!(t.lookup(1, ip([10, 0, 0, 0]), 5001, 0), Some(0)); // held
}

#[test]
fn persist_release_leaves_a_replacing_template_alone() {
    let t = PersistTable::new(64);
    let net = ip([10, 3, 0, 0]);
    // C1 holds T1 (-> 5).
    t.insert(1, net, 5, 0, 1000);
    assert!(t.hold(1, net, 5, 0));
    // Server 5 fails: T1 is dropped for new connections; C2 makes T2 (-> 6).
    assert_eq!(t.lookup_valid(1, net, 10, 1000, |s| s != 5), None);
    assert_eq!(t.insert(1, net, 6, 10, 1000), 6);
    assert!(t.hold(1, net, 6, 10));
    // C1 ends: T2 keeps C2's hold (alive past its expiry, 1010).
    assert!(t.release(1, net, 5, 20));
    assert_eq!(t.holds(1, net, 20), 1);
    assert_eq!(t.lookup(1, net, 5000, 0), Some(6));
    // T1 is gone for good: nothing left to release.
    assert!(!t.release(1, net, 5, 30));
    assert!(t.release(1, net, 6, 6000));
    assert_eq!(t.holds(1, net, 6000), 0);
}

#[test]
fn persist_a_retired_template_is_revived_by_a_template_to_its_server() {
    let t = PersistTable::with_seed(64, 1);
    let net = ip([10, 4, 0, 0]);
    t.insert(1, net, 5, 0, 1000);
    assert!(t.hold(1, net, 5, 0));
    // Server 5 removed, then back: T1 retired, then the template of the
    // next connection to 5 takes T1's entry, holds and all.
    assert_eq!(t.forget_server(5), 1);
    assert_eq!(t.lookup(1, net, 10, 1000), None);
    assert!(!t.hold(1, net, 5, 10));
    assert_eq!(t.live_entries(10), 0);
    assert_eq!(t.insert(1, net, 5, 20, 1000), 5);
    assert_eq!(t.holds(1, net, 20), 1);
    assert!(t.hold(1, net, 5, 20));
    assert!(t.release(1, net, 5, 30));
    assert!(t.release(1, net, 5, 40));
    assert!(!t.release(1, net, 5, 50));
    assert_eq!(t.lookup(1, net, 1019, 0), Some(5));
    assert_eq!(t.lookup(1, net, 1020, 0), None);
    // A retired template with no holds left is freed by its last release.
    t.insert(1, net, 7, 2000, 1000);
    assert!(t.hold(1, net, 7, 2000));
    assert!(t.remove(1, net));
    assert_eq!(t.live_entries(2000), 0);
    assert!(t.release(1, net, 7, 2100));
    assert!(!t.release(1, net, 7, 2100));
}

#[test]
fn persist_a_set_of_held_templates_stores_nothing_and_holds_nothing() {
    // One set: four templates controlling connections are never replaced.
    let t = PersistTable::new(4);
    for k in 0..4u8 {
        let net = ip([10, 0, k, 0]);
        t.insert(1, net, k as u32, 0, 1000);
        assert!(t.hold(1, net, k as u32, 0));
    }
    let late = ip([10, 0, 9, 0]);
    assert_eq!(t.insert(1, late, 9, 10, 1000), 9);
    assert_eq!(t.lookup(1, late, 10, 0), None);
    assert!(!t.hold(1, late, 9, 10));
    for k in 0..4u8 {
        assert_eq!(t.lookup(1, ip([10, 0, k, 0]), 5000, 0), Some(k as u32));
    }
    // One connection ends: its template, no longer held, is the one the
    // newcomer replaces.
    assert!(t.release(1, ip([10, 0, 2, 0]), 2, 6000));
    assert_eq!(t.insert(1, late, 9, 7000, 1000), 9);
    assert_eq!(t.lookup(1, late, 7000, 0), Some(9));
    assert_eq!(t.lookup(1, ip([10, 0, 2, 0]), 7000, 0), None);
    for k in [0u8, 1, 3] {
        assert_eq!(t.holds(1, ip([10, 0, k, 0]), 7000), 1);
    }
}

/// The set index an unkeyed multiplicative hash gives (what an attacker
/// can compute): the formula of the first table.
fn public_set(key: u64, set_bits: u32) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - set_bits)
}

#[test]
fn persist_set_hash_is_keyed_so_aimed_sources_cannot_evict_a_template() {
    let t = PersistTable::new(65536);
    let bits = (t.capacity() / 4).trailing_zeros();
    let victim = ip([203, 0, 113, 7]);
    let key = |net: Ipv4Addr| (1u64 << 32) | u32::from(net) as u64;
    let target = public_set(key(victim), bits);
    // Four sources whose keys the public formula puts in the victim's set.
    let aimed: Vec<Ipv4Addr> = (0u32..)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
        .filter(|&n| public_set(key(n), bits) == target)
        .take(4)
        .collect();
    t.insert(1, victim, 5, 0, 300_000);
    for (i, &n) in aimed.iter().enumerate() {
        t.insert(1, n, 6, 1 + i as u64, 300_000);
    }
    assert_eq!(t.lookup(1, victim, 10, 300_000), Some(5), "victim evicted");
}

/// `list --conns` shows templates (issue 14 item 7): live ones only, with
/// their client net, server, time left and holds; a retired or expired
/// one is not listed.
#[test]
fn persist_templates_lists_the_live_ones() {
    let t = PersistTable::with_seed(64, 1);
    let (a, b, c) = (ip([10, 1, 0, 0]), ip([10, 2, 0, 0]), ip([10, 3, 0, 0]));
    t.insert(1, a, 5, 0, 1000);
    t.insert(2, b, 6, 0, 500);
    t.insert(1, c, 7, 0, 1000);
    assert!(t.hold(2, b, 6, 0));
    assert!(t.remove(1, c));
    let mut l = t.templates(600);
    l.sort_by_key(|x| x.service);
    assert_eq!(
        l,
        vec![
            crate::sched::persist::TemplateInfo {
                service: 1,
                client_net: a,
                server_id: 5,
                left_ms: 400,
                holds: 0
            },
            // held past its expiry: listed, no time left
            crate::sched::persist::TemplateInfo {
                service: 2,
                client_net: b,
                server_id: 6,
                left_ms: 0,
                holds: 1
            },
        ]
    );
    assert_eq!(t.templates(1000).len(), 1);
}

// ------------------------------------------------- static dispatch (Sched)

/// `Sched::schedule` (the data plane's call: the view's type known, no
/// virtual call) makes the same picks as the same scheduler behind
/// `dyn Scheduler` and `dyn Dests`, for every kind, as loads, overload
/// flags, weights and clients change between picks.
#[test]
fn static_dispatch_picks_as_dyn() {
    let weights = [3, 0, 2, 5, 1];
    for k in SchedKind::ALL {
        let opts = SchedOpts::default();
        let direct = Sched::new(k, &opts, &infos(&weights));
        let boxed = build(k, &opts, &infos(&weights));
        assert_eq!(direct.kind(), k);
        let mut d = up(&weights);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut a, mut b) = (String::new(), String::new());
        for n in 0..600u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % weights.len() as u64) as usize;
            match n % 5 {
                0 => d[i].active += 1,
                1 => d[i].inactive += 1,
                2 => d[i].overloaded = !d[i].overloaded,
                3 => d[i].usable = x & 0x100 != 0,
                _ => d[i].weight = (x >> 9) as u32 % 4,
            }
            let src = [198, 18, (x >> 20) as u8, (x >> 28) as u8];
            let dst = [198, 18, 0, 100 + (x >> 36) as u8 % 3];
            let inp = input(src, (x >> 40) as u16, dst, n * 1000);
            a.push(letter(direct.schedule(&d, &inp)));
            let dy: &dyn Dests = &d;
            b.push(letter(boxed.schedule(dy, &inp)));
        }
        assert_eq!(a, b, "{k}");
        // Not a constant: the picks moved over the servers.
        assert!(a.chars().filter(|&c| c != '-').count() > 100, "{k}: {a}");
    }
}
