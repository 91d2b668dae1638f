use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const M: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);
const REAL: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const MOVED: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
const SPOOF: MacAddr = MacAddr([2, 0x66, 0x66, 0x66, 0x66, 0x66]);

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xC612_0000 + n)
}

fn mac_of(a: Ipv4Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([2, 0x42, o[0], o[1], o[2], o[3]])
}

fn is_mac(r: Resolution, m: MacAddr) -> bool {
    matches!(r, Resolution::Mac(x, _) if x == m)
}

#[test]
fn request_then_learn_then_refresh_then_expire() {
    let t = NeighTable::new(64);
    let ip = Ipv4Addr::new(198, 19, 0, 11);
    assert_eq!(t.resolve(ip, 1000), Resolution::Request);
    assert_eq!(t.resolve(ip, 1500), Resolution::Pending);
    assert_eq!(t.resolve(ip, 2000), Resolution::Request);
    t.learn_reply(ip, M, 2100);
    assert!(is_mac(t.resolve(ip, 2200), M));
    assert_eq!(t.peek(ip, 2200), Some(M));
    assert_eq!(t.resolve(ip, 2100 + REFRESH_MS), Resolution::MacRefresh(M));
    assert!(is_mac(t.resolve(ip, 2100 + REFRESH_MS + 10), M));
    assert_eq!(t.peek(ip, 2100 + EXPIRE_MS + 1), None);
    assert_eq!(t.resolve(ip, 2100 + EXPIRE_MS + 1), Resolution::Request);
}

#[test]
fn many_neighbours_and_reuse_of_expired_slots() {
    // A tenth full at most: no probe window of 8 fills up. The key is
    // fixed: with a random one the outcome is a draw (the one-round slot
    // hash filled a window here for about 1 key in 180; the hash now, for
    // none of 200,000), and a test must not fail by the draw.
    let t = NeighTable::with_seed(1024, 1);
    for i in 1..=40u32 {
        t.learn(ip(i), M, 10);
    }
    for i in 1..=40u32 {
        assert_eq!(t.peek(ip(i), 20), Some(M), "{i}");
    }
    assert_eq!(t.entries(20).len(), 40);
    // Long after, new neighbours take the expired slots.
    let later = 10 + EXPIRE_MS + 1;
    for i in 100..=160u32 {
        t.learn(ip(i), M, later);
        assert_eq!(t.peek(ip(i), later), Some(M), "{i}");
    }
}

/// Structured on-link clients (a subnet's addresses in sequence, a grid
/// of them, one per /24, sequential IPv6 interface identifiers) fill no
/// probe window of a table of the director's size: every one is learned,
/// for each of 64 fixed keys. The one-round slot hash (a multiplicative
/// hash: its homes of such addresses lie on a lattice) failed this for
/// keys 22, 30, 32, 33 and 57 (1% to 2% of keys per set, where a random
/// function fails none of 4,096).
#[test]
fn structured_neighbours_are_all_learned() {
    use crate::dataplane::{NEIGH6_ENTRIES, NEIGH_ENTRIES};
    let v4: [(&str, Vec<u32>); 3] = [
        (
            "a /20 in sequence",
            (0..4096).map(|i| 0xc612_0000 + i).collect(),
        ),
        (
            "a 64 x 64 grid",
            (0..4096)
                .map(|i| 0xc612_0000 + (i >> 6 << 8) + (i & 63))
                .collect(),
        ),
        (
            "one per /24",
            (0..2048).map(|i| 0x0a00_0001 + (i << 8)).collect(),
        ),
    ];
    let v6: Vec<Ipv6Addr> = (1..=1500u128)
        .map(|i| Ipv6Addr::from(0x2001_0db8_0000_0001u128 << 64 | i))
        .collect();
    for seed in 0..64 {
        for (name, set) in &v4 {
            let t = NeighTable::with_seed(NEIGH_ENTRIES, seed);
            for &a in set {
                t.learn(Ipv4Addr::from(a), M, 10);
            }
            let lost = set
                .iter()
                .filter(|&&a| t.peek(Ipv4Addr::from(a), 10).is_none())
                .count();
            assert_eq!(lost, 0, "key {seed}, {name}: {lost} not learned");
        }
        let t = NeighTable6::with_seed(NEIGH6_ENTRIES, seed);
        for &a in &v6 {
            t.learn(a, M, 10);
        }
        let lost = v6.iter().filter(|&&a| t.peek(a, 10).is_none()).count();
        assert_eq!(
            lost, 0,
            "key {seed}, IPv6 ::1 to ::1500: {lost} not learned"
        );
    }
}

/// The same seed places every address where it did; another seed moves
/// them.
#[test]
fn a_seed_fixes_the_slot_hash() {
    let (a, b, c) = (
        NeighTable::with_seed(65536, 7),
        NeighTable::with_seed(65536, 7),
        NeighTable::with_seed(65536, 8),
    );
    let homes = |t: &NeighTable| {
        (0..64u32)
            .map(|i| t.home(ip(i)) & t.mask)
            .collect::<Vec<_>>()
    };
    assert_eq!(homes(&a), homes(&b));
    let same = homes(&a)
        .iter()
        .zip(homes(&c))
        .filter(|(x, y)| **x == *y)
        .count();
    assert!(same < 8, "{same} of 64 addresses kept their home");
}

#[test]
fn ignores_zero_and_broadcast() {
    let t = NeighTable::new(64);
    t.learn(Ipv4Addr::UNSPECIFIED, M, 1);
    t.learn(Ipv4Addr::new(1, 2, 3, 4), MacAddr([0xff; 6]), 1);
    assert!(t.entries(1).is_empty());
}

#[test]
fn a_stamp_changes_when_the_entry_does() {
    let t = NeighTable::new(64);
    t.learn(ip(1), M, 10);
    let Resolution::Mac(_, s) = t.resolve(ip(1), 11) else {
        panic!("resolved")
    };
    assert_eq!(t.version(s.entry), s.version);
    t.learn(ip(1), MOVED, 12);
    assert_ne!(t.version(s.entry), s.version);
    assert!(is_mac(t.resolve(ip(1), 13), MOVED));
}

#[test]
fn the_slot_hash_is_keyed_per_table() {
    let (a, b) = (NeighTable::new(65536), NeighTable::new(65536));
    let same = (0..64u32)
        .filter(|&i| a.home(ip(i)) & a.mask == b.home(ip(i)) & b.mask)
        .count();
    assert!(
        same < 8,
        "{same} of 64 addresses share a home in two tables"
    );
}

/// A full probe window (every slot live) must not leave an address
/// unresolved for ever: resolve evicts and asks, and the answer is kept.
#[test]
fn a_full_window_still_sends_the_request() {
    // A fixed key: with the one-round slot hash, about 1 random key in
    // 800 left a slot outside every learned address's window (so the
    // region did not fill); the hash now, none of 1,000,000.
    let t = NeighTable::with_seed(64, 1);
    // Thousands of on-link "neighbours" (a spoofer's ARP requests): every
    // general slot is live.
    for i in 1000..4000u32 {
        t.learn(ip(i), mac_of(ip(i)), 100);
    }
    assert_eq!(t.entries(100).len(), 64, "general region full");
    let target = ip(7);
    assert_eq!(t.resolve(target, 200), Resolution::Request);
    t.learn_reply(target, REAL, 201);
    assert!(is_mac(t.resolve(target, 202), REAL));
    // The spoofer goes on: the entry we asked for is not pushed out by
    // unsolicited learning.
    for i in 4000..8000u32 {
        t.learn(ip(i), mac_of(ip(i)), 300);
    }
    assert!(is_mac(t.resolve(target, 301), REAL));
}

#[test]
fn reserved_entries_ignore_spoofers_and_follow_replies_to_our_requests() {
    let t = NeighTable::new(64);
    let srv = ip(5);
    assert_eq!(t.reserve(&[srv, ip(6)]), 0);
    assert!(t.is_reserved(srv));
    assert_eq!(t.resolve(srv, 1_000), Resolution::Request);
    t.learn_reply(srv, REAL, 1_001);
    assert!(is_mac(t.resolve(srv, 1_002), REAL));
    // A flood of ARP from everywhere, including claims for the server.
    for i in 1000..5000u32 {
        t.learn(ip(i), mac_of(ip(i)), 2_000);
        t.learn(srv, SPOOF, 2_000);
    }
    // An unsolicited reply (no request of ours in the last ANSWER_MS).
    t.learn_reply(srv, SPOOF, 2_000 + ANSWER_MS + 5);
    assert_eq!(t.peek(srv, 5_000), Some(REAL));
    // ... which makes us ask now; the real server answers.
    assert_eq!(t.resolve(srv, 5_000), Resolution::MacRefresh(REAL));
    t.learn_reply(srv, REAL, 5_001);
    assert!(is_mac(t.resolve(srv, 5_002), REAL));
    // The server's MAC really changes: the refresh request finds it.
    let due = 5_001 + REFRESH_MS;
    assert_eq!(t.resolve(srv, due), Resolution::MacRefresh(REAL));
    t.learn_reply(srv, MOVED, due + 1);
    assert!(is_mac(t.resolve(srv, due + 2), MOVED));
    // One request, one answer: a second reply in the window is hearsay.
    t.learn_reply(srv, SPOOF, due + 3);
    assert_eq!(t.peek(srv, due + 4), Some(MOVED));
    // Unsolicited evidence never refreshes a reserved entry's age.
    t.learn(srv, MOVED, due + 100);
    assert_eq!(
        t.resolve(srv, due + 1 + REFRESH_MS),
        Resolution::MacRefresh(MOVED)
    );
}

#[test]
fn a_reserved_entry_takes_its_mac_only_from_an_answer() {
    let t = NeighTable::new(64);
    let srv = ip(5);
    t.reserve(&[srv]);
    t.learn(srv, SPOOF, 10);
    t.learn_reply(srv, SPOOF, 11);
    assert_eq!(t.peek(srv, 12), None, "hearsay");
    assert_eq!(t.resolve(srv, 12), Resolution::Request);
    t.learn_reply(srv, REAL, 13);
    assert!(is_mac(t.resolve(srv, 14), REAL));
}

#[test]
fn reserving_keeps_a_confirmed_general_mac_and_drops_hearsay() {
    let t = NeighTable::new(64);
    let (a, b) = (ip(1), ip(2));
    assert_eq!(t.resolve(a, 10), Resolution::Request);
    t.learn_reply(a, REAL, 11);
    t.learn(b, SPOOF, 11);
    assert_eq!(t.peek(b, 12), Some(SPOOF), "general entries take hearsay");
    t.reserve(&[a, b]);
    assert_eq!(t.peek(a, 12), Some(REAL));
    assert_eq!(t.peek(b, 12), None);
    assert_eq!(t.resolve(b, 12), Resolution::Request);
}

#[test]
fn gratuitous_arp_makes_us_ask_not_believe() {
    let t = NeighTable::new(64);
    let srv = ip(5);
    t.reserve(&[srv]);
    assert_eq!(t.resolve(srv, 10), Resolution::Request);
    t.learn_reply(srv, REAL, 11);
    t.recheck(srv, REAL, 20);
    assert!(
        is_mac(t.resolve(srv, 2_000), REAL),
        "same MAC: nothing to do"
    );
    t.recheck(srv, SPOOF, 2_001);
    assert_eq!(t.peek(srv, 2_002), Some(REAL));
    assert_eq!(t.resolve(srv, 2_002), Resolution::MacRefresh(REAL));
    // The rate limit holds however many claims arrive.
    t.recheck(srv, SPOOF, 2_003);
    assert!(is_mac(t.resolve(srv, 2_004), REAL));
}

#[test]
fn reserving_follows_the_configuration() {
    let t = NeighTable::new(1024);
    let cap = t.reserved_capacity();
    assert_eq!(cap, 32);
    t.reserve(&[ip(1), ip(2)]);
    t.resolve(ip(1), 1);
    t.learn_reply(ip(1), REAL, 2);
    t.reserve(&[ip(2), ip(3)]);
    assert!(!t.is_reserved(ip(1)));
    assert!(t.is_reserved(ip(2)) && t.is_reserved(ip(3)));
    // Back again: its MAC was kept.
    t.reserve(&[ip(1), ip(2), ip(3)]);
    assert!(t.is_reserved(ip(1)));
    assert_eq!(t.peek(ip(1), 5), Some(REAL));
    // Many reloads with changing servers: tombstones pile up and the region
    // is rebuilt, keeping what is still wanted and its MAC.
    for round in 0..200u32 {
        let set: Vec<Ipv4Addr> = std::iter::once(ip(1))
            .chain((0..20).map(|k| ip(100 + round * 7 + k)))
            .collect();
        assert_eq!(t.reserve(&set), 0);
        for a in &set {
            assert!(t.is_reserved(*a), "round {round}: {a}");
        }
        assert!(!t.is_reserved(ip(100 + round * 7 - 1)) || round == 0);
        assert_eq!(t.peek(ip(1), 300), Some(REAL), "round {round}");
    }
    // More than the region holds: the rest stay general, and are counted.
    let many: Vec<Ipv4Addr> = (0..(cap as u32 + 5)).map(|k| ip(5000 + k)).collect();
    assert_eq!(t.reserve(&many), 5);
}

/// Three workers learning different addresses into the same slots while a
/// reader checks that every MAC they are shown belongs to the address they
/// asked for (the MAC encodes the address). The old table could pair one
/// neighbour's address with another's MAC here (issue 12, item 5): run
/// against it, this fails in under a second.
#[test]
fn concurrent_learning_never_pairs_an_address_with_another_mac() {
    let t = Arc::new(NeighTable::new(64));
    // The clock moves past EXPIRE_MS at every write, so every slot is
    // always reusable and writers keep taking each other's slots.
    let clock = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..3u32)
        .map(|w| {
            let (t, clock, stop) = (t.clone(), clock.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let a = ip(w * 1000 + i % 500);
                    let now = clock.fetch_add(EXPIRE_MS + 1, Ordering::Relaxed);
                    t.learn(a, mac_of(a), now);
                    i = i.wrapping_add(1);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..1u32)
        .map(|r| {
            let (t, stop, bad, reads) = (t.clone(), stop.clone(), bad.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let a = ip((i & 1) * 1000 + (i / 2 + r) % 500);
                    // Time 0: anything set counts as fresh.
                    if let Some(m) = t.peek(a, 0) {
                        reads.fetch_add(1, Ordering::Relaxed);
                        if m != mac_of(a) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i = i.wrapping_add(1);
                }
            })
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) && bad.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for h in writers.into_iter().chain(readers) {
        h.join().unwrap();
    }
    assert!(
        reads.load(Ordering::Relaxed) > 1000,
        "the readers saw entries"
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "MACs read for another address (of {} reads)",
        reads.load(Ordering::Relaxed)
    );
}

fn ip6(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, n)
}

fn mac_of6(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([2, 0x66, o[12], o[13], o[14], o[15]])
}

/// The IPv6 table is the same design: request, answer, refresh, expiry.
#[test]
fn ipv6_request_then_learn_then_refresh_then_expire() {
    let t = NeighTable6::new(64);
    let a = ip6(0x11);
    assert_eq!(t.resolve(a, 1000), Resolution::Request);
    assert_eq!(t.resolve(a, 1500), Resolution::Pending);
    t.learn_reply(a, M, 1600);
    assert!(is_mac(t.resolve(a, 1700), M));
    assert_eq!(t.peek(a, 1700), Some(M));
    // Same low 64 bits on another prefix: another neighbour.
    let b = Ipv6Addr::new(0x2001, 0xdb8, 0, 3, 0, 0, 0, 0x11);
    assert_eq!(t.peek(b, 1700), None);
    assert_eq!(t.resolve(a, 1600 + REFRESH_MS), Resolution::MacRefresh(M));
    assert_eq!(t.peek(a, 1600 + EXPIRE_MS + 1), None);
    assert_eq!(t.entries(1700), vec![(a, M, 100)]);
    t.learn(Ipv6Addr::UNSPECIFIED, M, 1);
    assert_eq!(t.peek(Ipv6Addr::UNSPECIFIED, 1), None);
}

/// Reserved IPv6 entries take a MAC only from an answer to our request,
/// and survive being retired and reserved again.
#[test]
fn ipv6_reserved_entries_ignore_spoofers() {
    let t = NeighTable6::new(64);
    let s = ip6(0x11);
    assert_eq!(t.reserve(&[s, Ipv6Addr::UNSPECIFIED]), 0);
    assert!(t.is_reserved(s) && t.is_known(s));
    t.learn(s, SPOOF, 10);
    t.learn_reply(s, SPOOF, 10);
    assert_eq!(t.peek(s, 10), None, "no request out: hearsay");
    assert_eq!(t.resolve(s, 20), Resolution::Request);
    t.learn_reply(s, REAL, 30);
    t.learn_reply(s, SPOOF, 31);
    assert_eq!(t.peek(s, 40), Some(REAL), "only the first answer");
    t.reserve(&[]);
    assert!(!t.is_reserved(s));
    t.reserve(&[s]);
    assert_eq!(t.peek(s, 50), Some(REAL), "its MAC back with it");
}

/// As for IPv4: concurrent writers reusing each other's slots never make
/// a reader pair an IPv6 address with another's MAC (the three-word key
/// is read under the entry's sequence lock).
#[test]
fn ipv6_concurrent_learning_never_pairs_an_address_with_another_mac() {
    let t = Arc::new(NeighTable6::new(64));
    let clock = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..2u16)
        .map(|w| {
            let (t, clock, stop) = (t.clone(), clock.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u16;
                while !stop.load(Ordering::Relaxed) {
                    let a = ip6(w * 1000 + i % 300);
                    let now = clock.fetch_add(EXPIRE_MS + 1, Ordering::Relaxed);
                    t.learn(a, mac_of6(a), now);
                    i = i.wrapping_add(1);
                }
            })
        })
        .collect();
    let reader = {
        let (t, stop, bad, reads) = (t.clone(), stop.clone(), bad.clone(), reads.clone());
        std::thread::spawn(move || {
            let mut i = 0u16;
            while !stop.load(Ordering::Relaxed) {
                let a = ip6((i & 1) * 1000 + (i / 2) % 300);
                if let Some(m) = t.peek(a, 0) {
                    reads.fetch_add(1, Ordering::Relaxed);
                    if m != mac_of6(a) {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i = i.wrapping_add(1);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for h in writers.into_iter().chain([reader]) {
        h.join().unwrap();
    }
    assert!(
        reads.load(Ordering::Relaxed) > 100,
        "the reader saw entries"
    );
    assert_eq!(bad.load(Ordering::Relaxed), 0);
}

/// `learn_unless_fresh` is `peek(..).is_none()` then `learn`, in one probe:
/// a fresh MAC stays (whoever claims another), a missing or expired one is
/// learned, a reserved entry is never written by it; and the entry's
/// version moves only when it learns.
#[test]
fn learn_unless_fresh_learns_only_what_peek_does_not_know() {
    let t = NeighTable::new(64);
    let a = ip(1);
    t.learn_unless_fresh(a, M, 1000);
    assert_eq!(t.peek(a, 1000), Some(M), "missing: learned");
    let (j, _) = t.find(a).unwrap();
    let v = t.version(j);
    t.learn_unless_fresh(a, MOVED, 2000);
    assert_eq!(t.peek(a, 2000), Some(M), "fresh: kept");
    assert_eq!(t.version(j), v, "fresh: not written");
    // What `learn` does once the MAC has expired.
    let late = 1000 + EXPIRE_MS + 1;
    assert_eq!(t.peek(a, late), None);
    t.learn_unless_fresh(a, MOVED, late);
    assert_eq!(t.peek(a, late), Some(MOVED), "expired: learned");
    // A reserved address without a MAC: hearsay only asks (as `learn`).
    let r = ip(2);
    t.reserve(&[r]);
    t.learn_unless_fresh(r, SPOOF, late);
    assert_eq!(t.peek(r, late), None, "reserved: never taken");
    assert!(t.is_reserved(r));
}

/// The reserved filter holds exactly the reserved addresses' bits after
/// each reload (an empty reload clears it, a retired address's bit goes),
/// and `learn_unless_fresh` still finds every reserved address behind it:
/// hearsay about one only asks, and never makes it a general entry (a
/// filter missing the address would send it to the general region).
#[test]
fn the_reserved_filter_follows_reloads_and_keeps_hearsay_out() {
    let t = NeighTable::new(1024);
    let bits = |set: &[Ipv4Addr]| set.iter().fold(0, |b, &a| b | filter_bit(t.home(a)));
    let srvs: Vec<Ipv4Addr> = (1..=20).map(ip).collect();
    t.reserve(&srvs);
    assert_eq!(t.rfilter.load(Ordering::Relaxed), bits(&srvs));
    t.reserve(&[]);
    assert_eq!(t.rfilter.load(Ordering::Relaxed), 0, "nothing reserved");
    t.reserve(&srvs[..1]);
    assert_eq!(t.rfilter.load(Ordering::Relaxed), bits(&srvs[..1]));
    // Back from their tombstones.
    t.reserve(&srvs);
    assert_eq!(t.rfilter.load(Ordering::Relaxed), bits(&srvs));
    for &s in &srvs {
        t.learn_unless_fresh(s, SPOOF, 1_000);
        let (j, _) = t.find_reserved(s).expect("reserved");
        assert!(t.entries[j].recheck.load(Ordering::Relaxed), "{s}: asks");
        assert!(t.find_general(s).is_none(), "{s}: no general entry");
    }
    // A client whose bit no reserved address has skips the region: learned.
    let client = (1000..)
        .map(ip)
        .find(|&c| bits(&srvs) & filter_bit(t.home(c)) == 0)
        .unwrap();
    assert!(!t.may_be_reserved(t.home(client)));
    t.learn_unless_fresh(client, M, 1_000);
    assert_eq!(t.peek(client, 1_000), Some(M));
}

/// Every entry's words: version, key, MAC word, learned, requested, recheck.
fn words<A: NeighAddr>(t: &Table<A>) -> Vec<(u64, A::Key, u64, u64, u64, bool)> {
    t.entries
        .iter()
        .map(|e| {
            (
                e.seq.load(Ordering::Relaxed),
                A::load(&e.key),
                e.mac.load(Ordering::Relaxed),
                e.learned.load(Ordering::Relaxed),
                e.requested.load(Ordering::Relaxed),
                e.recheck.load(Ordering::Relaxed),
            )
        })
        .collect()
}

/// `learn_unless_fresh` (one walk) leaves every entry as `peek` then
/// `learn` do: two tables with one hash key, the same random operations on
/// both (learns, answers, resolutions, reservations, time past expiry; a
/// pool of addresses several times the table, so full windows, expired
/// slots and reserved entries come up), one learning a client with each;
/// after every step the tables' words are equal.
fn learn_unless_fresh_is_peek_then_learn<A: NeighAddr>(addr: impl Fn(u32) -> A) {
    let mut a = Table::<A>::new(64);
    let b = {
        let mut b = Table::<A>::new(64);
        b.key = a.key;
        b
    };
    a.key = b.key;
    let macs = [M, REAL, MOVED, SPOOF];
    let (mut x, mut now) = (0x2545_f491u32, 1u64);
    let (mut new, mut known, mut fresh, mut confirmed) = (0, 0, 0, 0);
    let mut asked = addr(1);
    for step in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let ip = addr(x % 300 + 1);
        let mac = macs[(x >> 9) as usize % 4];
        match (x >> 12) % 16 {
            0..=7 => {
                let before = a.find(ip);
                a.learn_unless_fresh(ip, mac, now);
                if b.peek(ip, now).is_none() {
                    b.learn(ip, mac, now);
                }
                match before {
                    None if a.find(ip).is_some() => new += 1,
                    Some((_, v)) if v.fresh_mac(now).is_some() => fresh += 1,
                    Some((_, v)) => {
                        known += 1;
                        confirmed += usize::from(v.mac & CONFIRMED != 0);
                    }
                    None => {}
                }
            }
            8 | 9 => {
                a.learn(ip, mac, now);
                b.learn(ip, mac, now);
            }
            10 => {
                // Mostly the answer to the latest request.
                let ip = if x & 0x10 != 0 { asked } else { ip };
                a.learn_reply(ip, mac, now);
                b.learn_reply(ip, mac, now);
            }
            11 | 12 => {
                assert_eq!(a.resolve(ip, now), b.resolve(ip, now));
                asked = ip;
            }
            13 => {
                let set: Vec<A> = (0..(x >> 20) % 6).map(|k| addr(x % 7 + k * 41)).collect();
                assert_eq!(a.reserve(&set), b.reserve(&set));
            }
            _ => now += if x & 0x8000 != 0 { EXPIRE_MS / 3 } else { 700 },
        }
        assert!(words(&a) == words(&b), "step {step}");
    }
    assert!(
        new > 100 && known > 100 && fresh > 100 && confirmed > 10,
        "{new} {known} {fresh} {confirmed}"
    );
}

#[test]
fn learn_unless_fresh_leaves_the_entries_peek_then_learn_do() {
    learn_unless_fresh_is_peek_then_learn(ip);
    learn_unless_fresh_is_peek_then_learn(|n| ip6(n as u16));
}
