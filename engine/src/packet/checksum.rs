//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Values called "sums" here are one's-complement sums folded to 16 bits but
//! *not* complemented; a checksum field holds the complement of a sum. A
//! region whose checksum field is correct therefore sums to `0xFFFF`.
//!
//! The forwarding path never recomputes a checksum over a payload: a NAT
//! rewrite changes a handful of 16-bit words, and RFC 1624 eqn. 3,
//! `HC' = ~(~HC + ~m + m')`, updates the stored checksum from the old and new
//! values of those words alone. [`Delta`] accumulates several such changes so
//! that an address rewrite is summed once and applied to both the IPv4 header
//! checksum and the TCP/UDP checksum (whose pseudo header contains it).
//!
//! IPv6 (RFC 8200 section 8.1) has no header checksum, but its pseudo header
//! (two 128-bit addresses, a 32-bit upper-layer length, the next header) is
//! covered by TCP, UDP *and* ICMPv6, so an IPv6 address rewrite updates all
//! three with [`Delta::addr6`]. In IPv6 a UDP checksum of 0 is not "none"
//! but invalid, so updates use [`Delta::apply_udp6`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` to the unfolded accumulator `acc`, as big-endian 16-bit words.
///
/// An odd trailing byte counts as the high byte of a zero-padded word, so when
/// summing a message in several pieces only the last piece may be odd.
#[inline]
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    // Eight bytes at a time: a big-endian u64 is four 16-bit words; adding its
    // two 32-bit halves keeps every carry (they are folded at the end, and
    // 2^16 == 1 modulo 0xFFFF).
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xFFFF_FFFF);
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds an accumulator to 16 bits with end-around carry.
///
/// Branch-free: 64 -> 33 bits, then three 16-bit folds, which always end
/// below 2^16 (33 bits -> < 2^17 + 2^16 -> <= 0x1_0001 -> <= 0xFFFF).
#[inline(always)]
pub fn fold(acc: u64) -> u16 {
    let acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    let acc = (acc & 0xFFFF) + (acc >> 16);
    acc as u16
}

/// Sum of a 20-byte IPv4 header without options, unrolled: the forwarding
/// path verifies one per packet.
#[inline(always)]
pub fn sum20(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    fold(acc)
}

/// True when a 20-byte IPv4 header sums to `0xFFFF` (its checksum is
/// right): [`sum20`]`(h) == 0xFFFF` in fewer instructions, for the check
/// every forwarded packet makes.
///
/// The words are added in native byte order: a one's-complement sum is
/// independent of byte order (RFC 1071 §2(B): swapping the bytes of every
/// word swaps those of the sum), and `0xFFFF` is its own swap.
///
/// As two 64-bit loads and a 32-bit one, added with their carries (each
/// carry out of bit 63 is worth 1, as `2^64 ≡ 1 (mod 0xFFFF)`), and no
/// fold at all: the folded sum of 16-bit words is `0xFFFF` exactly when
/// the total is a non-zero multiple of `0xFFFF` (a fold keeps the value
/// modulo `0xFFFF`, and gives 0 only for 0), and for an odd divisor that
/// test is a multiply by its inverse and a compare, not a division.
#[inline(always)]
pub fn valid20(h: &[u8; 20]) -> bool {
    let q = |i: usize| {
        u64::from_ne_bytes([
            h[i],
            h[i + 1],
            h[i + 2],
            h[i + 3],
            h[i + 4],
            h[i + 5],
            h[i + 6],
            h[i + 7],
        ])
    };
    let w16 = u64::from(u32::from_ne_bytes([h[16], h[17], h[18], h[19]]));
    let (s, c1) = q(0).overflowing_add(q(8));
    // w16 + c1 < 2^33; after a carry out of this add, s < 2^33: adding
    // the carry back cannot carry again.
    let (s, c2) = s.overflowing_add(w16 + u64::from(c1));
    let s = s + u64::from(c2);
    // `s = k * 0xFFFF` exactly when `s * INV_FFFF = k <= u64::MAX / 0xFFFF`
    // (multiplying by the inverse permutes u64, and maps the multiples to
    // their quotients); k = 0 (an all-zero header, which sums to 0, not
    // 0xFFFF) wraps to the top with the `- 1`: one compare for both.
    s.wrapping_mul(INV_FFFF).wrapping_sub(1) < u64::MAX / 0xFFFF
}

/// The inverse of `0xFFFF` modulo 2^64 (`0xFFFF * INV_FFFF == 1`): `0xFFFF`
/// is odd, so it has one.
const INV_FFFF: u64 = 0xFFFE_FFFE_FFFE_FFFF;
const _: () = assert!(0xFFFFu64.wrapping_mul(INV_FFFF) == 1);

/// One's-complement sum of `data` (folded, not complemented).
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    fold(accumulate(0, data))
}

/// One's-complement addition of two folded sums.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// The checksum of `data`: complement of its sum. Compute it with the
/// checksum field zeroed.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Sum of the IPv4 pseudo header that TCP and UDP checksums cover.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, l4_len: u16) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xFFFF)
            + u64::from(d >> 16)
            + u64::from(d & 0xFFFF)
            + u64::from(protocol)
            + u64::from(l4_len),
    )
}

/// Full TCP/UDP checksum of `segment` (header + payload, checksum field
/// zeroed) under the IPv4 pseudo header. The segment length must fit 16 bits
/// (it does for anything carried in an IPv4 packet). For UDP, pass the result
/// through [`udp_final`].
#[inline]
pub fn ipv4_l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    let ph = pseudo_header_sum(src, dst, protocol, segment.len() as u16);
    !fold(accumulate(u64::from(ph), segment))
}

/// True when `segment` (checksum field as received) verifies under the
/// pseudo header.
///
/// A new connection's first segment is verified before it may create state
/// (`pipeline/admit.rs`), so this is on the path of every SYN: summed as
/// [`valid20`] checks an IPv4 header. The words are added in native byte
/// order (the sum's byte order does not change whether it is `0xFFFF`), eight
/// bytes per add with its carry added back (`2^64 ≡ 1 (mod 0xFFFF)`), and
/// the result tested for a non-zero multiple of `0xFFFF` without a fold.
#[inline]
pub fn ipv4_l4_verify(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> bool {
    let len = segment.len() as u16;
    // The pseudo header in the same byte order: the addresses as they are
    // on the wire, then the words (0, protocol) and the length.
    let mut acc = u64::from(u32::from_ne_bytes(src.octets()))
        + u64::from(u32::from_ne_bytes(dst.octets()))
        + u64::from(u16::from_ne_bytes([0, protocol]))
        + u64::from(u16::from_ne_bytes(len.to_be_bytes()));
    let add = |acc: u64, w: u64| {
        let (s, c) = acc.overflowing_add(w);
        // After a carry, s < w <= u64::MAX: adding it back cannot carry.
        s + u64::from(c)
    };
    let mut chunks = segment.chunks_exact(8);
    for c in &mut chunks {
        acc = add(
            acc,
            u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        );
    }
    let mut rest = chunks.remainder();
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        acc = add(acc, u64::from(u32::from_ne_bytes(*w)));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        acc = add(acc, u64::from(u16::from_ne_bytes(*w)));
        rest = r;
    }
    if let [b] = rest {
        // An odd last byte is the high byte of a zero-padded word.
        acc = add(acc, u64::from(u16::from_ne_bytes([*b, 0])));
    }
    acc.wrapping_mul(INV_FFFF).wrapping_sub(1) < u64::MAX / 0xFFFF
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1): source, destination,
/// upper-layer packet length (32 bits) and next header (the upper-layer
/// protocol, not the first extension header).
#[inline]
pub fn pseudo_header_sum_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4_len: u32) -> u16 {
    let acc = accumulate(0, &src.octets());
    let acc = accumulate(acc, &dst.octets());
    fold(acc + u64::from(l4_len >> 16) + u64::from(l4_len & 0xFFFF) + u64::from(next_header))
}

/// Full TCP/UDP/ICMPv6 checksum of `segment` (upper-layer header + payload,
/// checksum field zeroed) under the IPv6 pseudo header. For UDP, pass the
/// result through [`udp_final`].
#[inline]
pub fn ipv6_l4_checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, segment: &[u8]) -> u16 {
    let ph = pseudo_header_sum_v6(src, dst, next_header, segment.len() as u32);
    !fold(accumulate(u64::from(ph), segment))
}

/// True when `segment` (checksum field as received) verifies under the IPv6
/// pseudo header. A UDP checksum of 0 does not verify (RFC 8200 section 8.1).
#[inline]
pub fn ipv6_l4_verify(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, segment: &[u8]) -> bool {
    let ph = pseudo_header_sum_v6(src, dst, next_header, segment.len() as u32);
    fold(accumulate(u64::from(ph), segment)) == 0xFFFF
}

/// [`update16`]'s twin for a 128-bit IPv6 address in a pseudo header.
#[inline]
pub fn update_addr6(hc: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    Delta::new().addr6(old, new).apply(hc)
}

/// UDP rule for a freshly computed checksum: 0 means "no checksum" on the
/// wire, so a computed 0 is sent as its one's-complement twin 0xFFFF.
#[inline]
pub const fn udp_final(computed: u16) -> u16 {
    if computed == 0 {
        0xFFFF
    } else {
        computed
    }
}

/// RFC 1624 eqn. 3 for one 16-bit word changing from `old` to `new`.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    Delta::new().word(old, new).apply(hc)
}

/// RFC 1624 eqn. 3 for a 32-bit field (two adjacent words), e.g. an address.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    Delta::new().dword(old, new).apply(hc)
}

/// [`update32`] for an IPv4 address.
#[inline]
pub fn update_addr(hc: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update32(hc, u32::from(old), u32::from(new))
}

/// [`update16`] with the UDP rules: a zero checksum ("none") stays zero and a
/// resulting zero is sent as 0xFFFF.
#[inline]
pub fn udp_update16(hc: u16, old: u16, new: u16) -> u16 {
    Delta::new().word(old, new).apply_udp(hc)
}

/// [`update32`] with the UDP rules.
#[inline]
pub fn udp_update32(hc: u16, old: u32, new: u32) -> u16 {
    Delta::new().dword(old, new).apply_udp(hc)
}

/// One's-complement addition of two 32-bit values (the carry out added
/// back in: an add and an add-with-carry). A sum of 32-bit values made
/// this way is congruent, modulo `0xFFFF`, to the sum of their 16-bit
/// halves (`2^16 ≡ 1`), so an address changes a checksum as one 32-bit
/// addend rather than two words ([`apply32`]).
#[inline(always)]
pub fn add32(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    // No second carry: when the first add carried, s <= 2^32 - 2.
    s.wrapping_add(u32::from(carry))
}

/// RFC 1624 eqn. 3 with a delta `d` made with [`add32`]: the updated
/// checksum `~(~HC + d)`, folded as [`Delta::apply`] folds. Words may be
/// taken in either byte order as long as all of them are (RFC 1071
/// §2(B)): the fast rewrites load the checksum, old and new values in the
/// frame's byte order as native integers and store the result the same
/// way, with no byte swap.
#[inline(always)]
pub fn apply32(hc: u16, d: u32) -> u16 {
    !fold32(add32(u32::from(!hc), d))
}

/// A 32-bit one's-complement sum ([`add32`]) folded to 16 bits with
/// end-around carry, in one add: adding the value rotated by 16 leaves
/// the carried sum of its halves in the upper half (Linux's `csum_fold`).
#[inline(always)]
pub fn fold32(s: u32) -> u16 {
    (s.wrapping_add(s.rotate_left(16)) >> 16) as u16
}

/// An accumulated set of 16-bit word changes, `sum(~m + m')` of RFC 1624.
///
/// Build it once per rewrite and apply it to every checksum that covers the
/// changed words. `Copy` and register-sized; combining is plain addition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u32);

impl Delta {
    /// No change.
    #[inline]
    pub const fn new() -> Self {
        Delta(0)
    }

    /// Adds a 16-bit word changing from `old` to `new`.
    #[inline]
    pub const fn word(self, old: u16, new: u16) -> Self {
        // At most a few dozen words are ever accumulated, far below overflow.
        Delta(self.0 + (!old) as u32 + new as u32)
    }

    /// Adds a 32-bit field (two words) changing from `old` to `new`.
    #[inline]
    pub const fn dword(self, old: u32, new: u32) -> Self {
        self.word((old >> 16) as u16, (new >> 16) as u16)
            .word(old as u16, new as u16)
    }

    /// Adds an IPv4 address change.
    #[inline]
    pub fn addr(self, old: Ipv4Addr, new: Ipv4Addr) -> Self {
        self.dword(u32::from(old), u32::from(new))
    }

    /// Adds an IPv6 address change (eight words).
    #[inline]
    pub fn addr6(self, old: Ipv6Addr, new: Ipv6Addr) -> Self {
        let (o, n) = (old.segments(), new.segments());
        let mut d = self;
        let mut i = 0;
        while i < 8 {
            d = d.word(o[i], n[i]);
            i += 1;
        }
        d
    }

    /// Combines two deltas.
    #[inline]
    pub const fn plus(self, other: Delta) -> Self {
        Delta(self.0 + other.0)
    }

    /// The updated checksum: `~(~HC + delta)`.
    ///
    /// `~HC + delta` fits 32 bits (a delta is a few dozen words), so it is
    /// folded as Linux's `csum_fold` does: adding the sum rotated by 16
    /// leaves the end-around-carry sum of its halves in the upper half (one
    /// add where [`fold`] takes three; the same value for every input,
    /// `apply_is_fold` checks).
    #[inline]
    pub fn apply(self, hc: u16) -> u16 {
        let s = u32::from(!hc) + self.0;
        !((s.wrapping_add(s.rotate_left(16)) >> 16) as u16)
    }

    /// [`apply`](Self::apply) with the UDP rules: 0 ("no checksum") stays 0,
    /// and a result of 0 is written as 0xFFFF.
    #[inline]
    pub fn apply_udp(self, hc: u16) -> u16 {
        if hc == 0 {
            0
        } else {
            udp_final(self.apply(hc))
        }
    }
}

impl Delta {
    /// [`apply`](Self::apply) for UDP over IPv6: the checksum is mandatory,
    /// so 0 is never kept, and a result of 0 is written as 0xFFFF.
    #[inline]
    pub fn apply_udp6(self, hc: u16) -> u16 {
        udp_final(self.apply(hc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Delta::apply`'s 32-bit fold against [`fold`], over every checksum
    /// and deltas from none to far more words than any rewrite adds.
    #[test]
    fn apply_is_fold() {
        let mut x = 0x9e37_79b9u32;
        for hc in 0..=u16::MAX {
            for words in [0u32, 1, 2, 3, 5, 40] {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let d = Delta(match words {
                    0 => 0,
                    // All ones (the largest value of `words` words), or random.
                    3 if hc % 2 == 0 => 3 * 0x1FFFE,
                    n => (0..n)
                        .map(|i| (x.rotate_left(i * 7) & 0x1FFFF).min(0x1FFFE))
                        .sum(),
                });
                let want = !fold(u64::from(!hc) + u64::from(d.0));
                assert_eq!(d.apply(hc), want, "hc {hc:#x} delta {:#x}", d.0);
            }
        }
    }

    /// `apply32` of 32-bit deltas made with `add32` against the 16-bit
    /// fold of the same words: every checksum, deltas of addresses,
    /// ports and TTL changes (random and extreme), in both byte orders.
    #[test]
    fn apply32_is_fold() {
        let mut x = 0x2545_f491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for hc in 0..=u16::MAX {
            let (old, new) = match hc % 4 {
                0 => (0, u32::MAX),
                1 => (u32::MAX, 0),
                _ => (next(), next()),
            };
            let (op, np) = (next() as u16, next() as u16);
            // Native: an address and a port as 32- and 16-bit addends.
            let d = add32(add32(!old, new), u32::from(!op) + u32::from(np) + 0xFFFE);
            let words = u64::from(!(old >> 16) & 0xFFFF)
                + u64::from(!old & 0xFFFF)
                + u64::from(new >> 16)
                + u64::from(new & 0xFFFF)
                + u64::from(!op)
                + u64::from(np)
                + 0xFFFE;
            let want = !fold(u64::from(!hc) + words);
            assert_eq!(apply32(hc, d), want, "hc {hc:#x} {old:#x}->{new:#x}");
            // Byte-swapped words give the byte-swapped checksum.
            let ds = add32(
                add32(!old.swap_bytes(), new.swap_bytes()),
                u32::from(!op.swap_bytes()) + u32::from(np.swap_bytes()) + 0xFEFF,
            );
            assert_eq!(apply32(hc.swap_bytes(), ds), want.swap_bytes());
        }
    }

    // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
        // Same words, split so both code paths (8-byte chunks, words) run.
        assert_eq!(
            fold(accumulate(accumulate(0, &data[..2]), &data[2..])),
            0xddf2
        );
    }

    #[test]
    fn branch_free_fold_matches_the_loop() {
        let slow = |mut a: u64| {
            while a >> 16 != 0 {
                a = (a & 0xFFFF) + (a >> 16);
            }
            a as u16
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for v in [
            0,
            0xFFFF,
            0x1_0000,
            0x1_FFFE,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
        ] {
            assert_eq!(fold(v), slow(v), "{v:#x}");
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(fold(x), slow(x), "{x:#x}");
            assert_eq!(fold(x >> 20), slow(x >> 20));
        }
    }

    #[test]
    fn l4_verify_is_the_folded_sum_is_ffff() {
        // Every length up to 80 (odd tails, 4- and 2-byte rests), random
        // bytes, and segments made to verify by their checksum field.
        let (src, dst) = (
            Ipv4Addr::new(198, 18, 0, 10),
            Ipv4Addr::new(198, 18, 0, 100),
        );
        let slow = |p: u8, seg: &[u8]| {
            fold(accumulate(
                u64::from(pseudo_header_sum(src, dst, p, seg.len() as u16)),
                seg,
            )) == 0xFFFF
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut seg = [0u8; 80];
        for round in 0..4000 {
            let len = round % 81;
            for b in seg.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if round % 3 == 0 && len >= 18 {
                seg[16] = 0;
                seg[17] = 0;
                let ck = ipv4_l4_checksum(src, dst, 6, &seg[..len]);
                seg[16..18].copy_from_slice(&ck.to_be_bytes());
                assert!(ipv4_l4_verify(src, dst, 6, &seg[..len]), "len {len}");
            }
            if round % 7 == 0 {
                seg[..len].fill(0xFF);
            }
            for p in [6, 17] {
                let s = &seg[..len];
                assert_eq!(ipv4_l4_verify(src, dst, p, s), slow(p, s), "len {len}");
            }
        }
    }

    #[test]
    fn unrolled_header_sum_matches() {
        let mut h = [0u8; 20];
        for seed in 0..2000u32 {
            for (i, b) in h.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32) >> 3) as u8;
            }
            assert_eq!(sum20(&h), sum(&h));
        }
        assert_eq!(sum20(&[0xFF; 20]), sum(&[0xFF; 20]));
    }

    #[test]
    fn valid20_is_sum20_is_ffff() {
        let mut h = [0u8; 20];
        for seed in 0..4000u32 {
            for (i, b) in h.iter_mut().enumerate() {
                *b = (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32) >> 3) as u8;
            }
            assert_eq!(valid20(&h), sum20(&h) == 0xFFFF, "{h:02x?}");
            // The same header with its checksum field set right (every
            // other seed), or one off.
            h[10..12].fill(0);
            let ck = !sum20(&h);
            h[10..12].copy_from_slice(&ck.wrapping_add(seed as u16 & 1).to_be_bytes());
            assert_eq!(valid20(&h), sum20(&h) == 0xFFFF, "{h:02x?}");
            assert_eq!(valid20(&h), seed & 1 == 0 || sum20(&h) == 0xFFFF);
        }
        for h in [[0u8; 20], [0xFF; 20]] {
            assert_eq!(valid20(&h), sum20(&h) == 0xFFFF);
        }
        let mut h = [0u8; 20];
        h[0] = 0xFF;
        h[1] = 0xFF;
        assert!(valid20(&h));
    }

    #[test]
    fn valid20_carries_and_multiples() {
        // Bytes near 0xFF make both 64-bit adds carry; the checksum set
        // right, one off, and to each of its other 16-bit values in turn
        // (every multiple of 0xFFFF the total can reach).
        let mut h = [0u8; 20];
        for seed in 0..2000u32 {
            for (i, b) in h.iter_mut().enumerate() {
                *b = 0xF0 | (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32) >> 7) as u8;
            }
            h[10..12].fill(0);
            let ck = !sum20(&h);
            for d in [0u16, 1, 0xFFFF, 0x8000] {
                h[10..12].copy_from_slice(&ck.wrapping_add(d).to_be_bytes());
                assert_eq!(valid20(&h), sum20(&h) == 0xFFFF, "{h:02x?}");
            }
        }
        for v in 0..=0xFFFFu16 {
            let mut h = [0xFFu8; 20];
            h[10..12].copy_from_slice(&v.to_be_bytes());
            assert_eq!(valid20(&h), sum20(&h) == 0xFFFF, "{v:#x}");
            let mut h = [0u8; 20];
            h[4..6].copy_from_slice(&v.to_be_bytes());
            assert_eq!(valid20(&h), sum20(&h) == 0xFFFF, "{v:#x}");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn chunked_sum_matches_wordwise() {
        let data: Vec<u8> = (0..=255u8)
            .cycle()
            .take(1001)
            .map(|b| b.wrapping_mul(151))
            .collect();
        let mut acc: u64 = 0;
        for w in data.chunks(2) {
            acc += u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0));
        }
        assert_eq!(sum(&data), fold(acc));
    }

    #[test]
    fn fold_and_add() {
        assert_eq!(fold(0x1_FFFE), 0xFFFF);
        assert_eq!(fold(0xFFFF_FFFF_FFFF), 0xFFFF);
        assert_eq!(fold(0x2_0001), 0x0003);
        assert_eq!(add(0xFFFF, 0x0001), 0x0001);
        assert_eq!(add(0x8000, 0x8000), 0x0001);
    }

    // A well-known IPv4 header (Wikipedia "IPv4 header checksum"): b861.
    #[test]
    fn ipv4_header_example() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(sum(&h), 0xFFFF);
    }

    #[test]
    fn pseudo_header() {
        let s = pseudo_header_sum(
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 199),
            17,
            0x5f,
        );
        assert_eq!(s, fold(0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 17 + 0x5f));
    }

    fn recompute_after(data: &mut [u8], at: usize, new: &[u8]) -> u16 {
        data[at..at + new.len()].copy_from_slice(new);
        data[0] = 0;
        data[1] = 0;
        checksum(data)
    }

    #[test]
    fn incremental_matches_full_recompute() {
        // Checksum lives in bytes 0..2; data follows.
        let data = [
            0u8, 0, 0x12, 0x34, 0xab, 0xcd, 0xc0, 0xa8, 0x01, 0x02, 0x00, 0x50, 0xff, 0xff,
        ];
        let hc = checksum(&data);
        // 16-bit change at 10..12: port 80 -> 8080.
        let expect16 = recompute_after(&mut data.clone(), 10, &8080u16.to_be_bytes());
        assert_eq!(update16(hc, 80, 8080), expect16);
        // 32-bit change at 6..10: 192.168.1.2 -> 10.0.0.7.
        let old = Ipv4Addr::new(192, 168, 1, 2);
        let new = Ipv4Addr::new(10, 0, 0, 7);
        let expect32 = recompute_after(&mut data.clone(), 6, &new.octets());
        assert_eq!(update_addr(hc, old, new), expect32);
        assert_eq!(update32(hc, u32::from(old), u32::from(new)), expect32);
        // Both at once through Delta.
        let mut both = data;
        both[6..10].copy_from_slice(&new.octets());
        let expect = recompute_after(&mut both, 10, &8080u16.to_be_bytes());
        assert_eq!(Delta::new().addr(old, new).word(80, 8080).apply(hc), expect);
        let d = Delta::new()
            .addr(old, new)
            .plus(Delta::new().word(80, 8080));
        assert_eq!(d.apply(hc), expect);
        // No change is the identity.
        assert_eq!(Delta::new().apply(hc), hc);
        assert_eq!(update16(hc, 0x1234, 0x1234), hc);
    }

    #[test]
    fn rfc1624_negative_zero_case() {
        // RFC 1624 section 3 example: HC = 0xDD2F, m = 0x5555 -> m' = 0x3285
        // gives HC' = 0x0000 with eqn. 3 (eqn. 2 would give 0xFFFF).
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn udp_rules() {
        assert_eq!(udp_final(0), 0xFFFF);
        assert_eq!(udp_final(0x1234), 0x1234);
        // "No checksum" stays "no checksum".
        assert_eq!(udp_update16(0, 80, 8080), 0);
        assert_eq!(udp_update32(0, 1, 2), 0);
        // A result of 0 becomes 0xFFFF.
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0);
        assert_eq!(udp_update16(0xDD2F, 0x5555, 0x3285), 0xFFFF);
        assert_eq!(udp_update16(0x1000, 1, 2), update16(0x1000, 1, 2));
    }

    #[test]
    fn ipv6_pseudo_header_and_incremental_address() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:ffff::abcd:1".parse().unwrap();
        // Words: 2001 0db8 0 ... 1, 2001 0db8 ffff 0 0 0 abcd 1, len 0x14, nh 6.
        let want = fold(0x2001 + 0x0db8 + 1 + 0x2001 + 0x0db8 + 0xffff + 0xabcd + 1 + 0x14 + 6);
        assert_eq!(pseudo_header_sum_v6(src, dst, 6, 0x14), want);
        assert_eq!(
            pseudo_header_sum_v6(src, dst, 6, 0x1_0014),
            add(want, 1),
            "the high half of the 32-bit length counts"
        );
        let seg = [
            0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ];
        let mut s = seg;
        let c = ipv6_l4_checksum(src, dst, 6, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        assert!(ipv6_l4_verify(src, dst, 6, &s));
        let new: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert!(!ipv6_l4_verify(src, new, 6, &s));
        let inc = Delta::new().addr6(dst, new).word(80, 8080).apply(c);
        s[2..4].copy_from_slice(&8080u16.to_be_bytes());
        s[16] = 0;
        s[17] = 0;
        assert_eq!(inc, ipv6_l4_checksum(src, new, 6, &s));
        assert_eq!(update_addr6(c, dst, dst), c);
        assert_eq!(Delta::new().apply_udp6(0xDD2F), 0xDD2F);
        assert_eq!(Delta::new().word(0x5555, 0x3285).apply_udp6(0xDD2F), 0xFFFF);
    }
}
