//! SYN cookies: an initial sequence number that proves, when the client
//! acknowledges it, that the client received our SYN-ACK at its address —
//! without the director keeping anything per SYN.
//!
//! The layout is Linux's (`net/ipv4/syncookies.c`,
//! `secure_tcp_syn_cookie`), except that the client's ISN goes into both
//! hashes instead of being added to the cookie, so that a cookie is bound
//! to it exactly (Linux's sum also accepts an ISN a few units off, as
//! another MSS index):
//!
//! ```text
//! cookie = H1(4-tuple, client_isn) + (count << 24)
//!        + ((H2(4-tuple, client_isn, count) + (mss_index << 22)) & 0xFF_FFFF)
//! ```
//!
//! `count` is the time window (minutes since start, 8 bits on the wire).
//! Checking subtracts `H1`, reads the window from the top
//! byte, accepts it only if it is the current or the previous one (a cookie
//! lives 60 to 120 s), and accepts the MSS index only if it is one of the
//! [`MSS_TABLE`] entries, which sit in the top two of the 24 bits (Linux
//! adds the index itself, so a cookie a unit or two off still passed,
//! with another MSS): a forged ACK passes with probability about
//! `4 / 2^24` per try, and no neighbour of a valid cookie passes.
//!
//! `H1`, `H2` are SipHash-1-3 keyed with a secret drawn from the OS when
//! the worker starts (std's `RandomState`, the same source as the
//! connection table's seed): a cheap keyed PRF, ~20 ns per cookie, so a
//! flood of SYNs costs little more than the replies themselves. Each
//! worker has its own secret; a client's SYN and its ACK reach the same
//! worker (the flow owner, by client address and port).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;

/// The MSS values a cookie can carry (Linux's `msstab`): the client's MSS
/// is rounded down to one of these (536 when it sent none or less).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Length of one cookie time window, ms.
pub const WINDOW_MS: u64 = 60_000;

/// Windows a cookie is accepted in: its own and the next one.
const MAX_AGE: u32 = 2;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// Where the MSS index sits in the low 24 bits (their top two).
const MSS_SHIFT: u32 = COOKIE_BITS - 2;
const _: () = assert!(MSS_TABLE.len() == 1 << (COOKIE_BITS - MSS_SHIFT));

/// The 4-tuple of the client's SYN, as the client sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub client: Ipv4Addr,
    pub cport: u16,
    pub vip: Ipv4Addr,
    pub vport: u16,
}

/// One worker's cookie secret.
pub struct CookieKey(RandomState);

impl CookieKey {
    /// A fresh secret from the OS.
    pub fn random() -> CookieKey {
        CookieKey(RandomState::new())
    }

    fn hash(&self, t: &Tuple, isn: u32, count: u32, which: u8) -> u32 {
        let mut h = self.0.build_hasher();
        h.write_u32(isn);
        h.write_u32(u32::from(t.client));
        h.write_u32(u32::from(t.vip));
        h.write_u16(t.cport);
        h.write_u16(t.vport);
        h.write_u32(count);
        h.write_u8(which);
        h.finish() as u32
    }

    /// The cookie (our ISN) for a SYN of `t` with sequence `client_isn`
    /// and MSS index `mss_index` (< 4), at `now_ms`.
    pub fn make(&self, t: &Tuple, client_isn: u32, mss_index: u8, now_ms: u64) -> u32 {
        let count = window(now_ms);
        self.hash(t, client_isn, 0, 1)
            .wrapping_add(count << COOKIE_BITS)
            .wrapping_add(
                self.hash(t, client_isn, count, 2)
                    .wrapping_add(u32::from(mss_index) << MSS_SHIFT)
                    & COOKIE_MASK,
            )
    }

    /// The MSS index `cookie` carries, if it is a cookie of ours for a SYN
    /// of `t` with `client_isn`, made in this window or the previous one.
    pub fn check(&self, t: &Tuple, client_isn: u32, cookie: u32, now_ms: u64) -> Option<u8> {
        let count = window(now_ms);
        let c = cookie.wrapping_sub(self.hash(t, client_isn, 0, 1));
        let diff = count.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if diff >= MAX_AGE {
            return None;
        }
        let made = count.wrapping_sub(diff);
        let rest = c.wrapping_sub(self.hash(t, client_isn, made, 2)) & COOKIE_MASK;
        // The index's two bits, and zeros below them.
        (rest & ((1 << MSS_SHIFT) - 1) == 0).then_some((rest >> MSS_SHIFT) as u8)
    }
}

/// The time window of `now_ms`: whole minutes (only the low 8 bits travel).
fn window(now_ms: u64) -> u32 {
    (now_ms / WINDOW_MS) as u32
}

/// The index of the largest [`MSS_TABLE`] entry not above `mss`.
pub fn mss_index(mss: u16) -> u8 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Tuple = Tuple {
        client: Ipv4Addr::new(198, 18, 0, 10),
        cport: 40000,
        vip: Ipv4Addr::new(198, 18, 0, 100),
        vport: 80,
    };

    #[test]
    fn round_trip_each_mss_and_windows() {
        let k = CookieKey::random();
        for i in 0..4u8 {
            for now in [
                0,
                59_999,
                60_000,
                3_600_000,
                255 * WINDOW_MS,
                256 * WINDOW_MS + 5,
            ] {
                let c = k.make(&T, 12345, i, now);
                assert_eq!(k.check(&T, 12345, c, now), Some(i));
                assert_eq!(k.check(&T, 12345, c, now + WINDOW_MS), Some(i));
                assert_eq!(k.check(&T, 12345, c, now + 2 * WINDOW_MS), None);
            }
        }
    }

    #[test]
    fn bound_to_tuple_isn_and_secret() {
        let k = CookieKey::random();
        let c = k.make(&T, 777, 3, 1000);
        for isn in [776, 778, 779, 780, 777 ^ (1 << 31)] {
            assert_eq!(k.check(&T, isn, c, 1000), None);
        }
        assert_eq!(k.check(&Tuple { cport: 40001, ..T }, 777, c, 1000), None);
        assert_eq!(
            k.check(
                &Tuple {
                    client: Ipv4Addr::new(198, 18, 0, 11),
                    ..T
                },
                777,
                c,
                1000
            ),
            None
        );
        assert_eq!(CookieKey::random().check(&T, 777, c, 1000), None);
    }

    #[test]
    fn forged_cookies_rarely_pass() {
        let k = CookieKey::random();
        let ok = (0..200_000u32)
            .filter(|&g| k.check(&T, 1, g.wrapping_mul(0x9E37_79B1), 0).is_some())
            .count();
        // Expected 200 000 * 2 windows * 4 / 2^24 ~ 0.1.
        assert!(ok <= 3, "{ok} forged cookies passed");
    }

    /// A cookie one or a few units off, or with a low bit flipped, never
    /// passes (with Linux's layout it did, as another MSS index, for half
    /// of all keys).
    #[test]
    fn neighbours_of_a_cookie_never_pass() {
        for round in 0..2000u32 {
            let k = CookieKey::random();
            let isn = round.wrapping_mul(2_654_435_761);
            for i in 0..4u8 {
                let c = k.make(&T, isn, i, 5_000);
                assert_eq!(k.check(&T, isn, c, 5_000), Some(i));
                for d in 1..=8u32 {
                    assert_eq!(k.check(&T, isn, c.wrapping_add(d), 5_000), None);
                    assert_eq!(k.check(&T, isn, c.wrapping_sub(d), 5_000), None);
                }
                for bit in 0..22 {
                    assert_eq!(k.check(&T, isn, c ^ (1 << bit), 5_000), None);
                }
            }
        }
    }

    #[test]
    fn mss_rounds_down() {
        assert_eq!(mss_index(0), 0);
        assert_eq!(mss_index(1299), 0);
        assert_eq!(mss_index(1300), 1);
        assert_eq!(mss_index(1460), 3);
        assert_eq!(mss_index(9000), 3);
    }
}
