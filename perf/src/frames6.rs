//! The generator's IPv6 frames (the bench's `nat6` row): Ethernet + IPv6 +
//! TCP, built like the IPv4 ones from templates with precomputed checksum
//! sums, and their receive-side checks.
//!
//! The smallest valid IPv6/TCP frame is 74 bytes (78 on the wire with the
//! FCS): no room for a payload, so the send TSC rides in two TCP fields a
//! director leaves alone, the window and the urgent pointer (URG is never
//! set, so the pointer means nothing to anyone): 32 bits of TSC, enough
//! for latencies up to a second.
//!
//! | off | field |
//! |----:|-------|
//! |  0  | Ethernet dst, src, type 0x86dd |
//! | 14  | IPv6, hop limit 64, next header 6 |
//! | 22  | source = [`CLIENT6_PREFIX`] + the flow's 32-bit client number |
//! | 38  | destination = the VIP |
//! | 54  | TCP source port = the flow's client port |
//! | 58  | TCP seq = flow (or connection) number |
//! | 62  | TCP ack = [`TAG`] `<< 16 \| phase << 8 \| kind` |
//! | 67  | TCP flags by kind |
//! | 68  | TCP window = TSC bits 31..16 |
//! | 72  | TCP urgent pointer = TSC bits 15..0 |

use std::net::Ipv6Addr;

use engine::packet::checksum;
use engine::packet::ethernet::MacAddr;

use crate::frames::{finish, words32, Bad, CheckCtx, Kind, Stamp, FCS, TAG, TTL};

pub const IP6_OFF: usize = 14;
pub const TCP6_OFF: usize = 54;
/// Ethernet + IPv6 + TCP, no payload: 78 bytes on the wire.
pub const MIN_FRAME6: usize = 74;
/// The TSC bits a frame carries.
pub const TSC6_MASK: u64 = (1 << 32) - 1;
/// The first 96 bits of every generated client address (2001:db8:1::/96;
/// the low 32 bits are the IPv4 rows' client number, so flows, ports and
/// queues are the IPv4 rows').
pub const CLIENT6_PREFIX: [u8; 12] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0];

/// The IPv6 address of client number `src`.
pub fn client6(src: u32) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[..12].copy_from_slice(&CLIENT6_PREFIX);
    o[12..].copy_from_slice(&src.to_be_bytes());
    Ipv6Addr::from(o)
}

/// The frame length, the four templates and their TCP checksum sums (the
/// pseudo header with the fixed part of the source, the destination, the
/// length and the protocol, plus the template's TCP header).
pub fn templates(
    pkt_size: usize,
    src_mac: MacAddr,
    dst_mac: MacAddr,
    dst: Ipv6Addr,
    dport: u16,
) -> (usize, [Vec<u8>; 4], [u64; 4]) {
    let len = pkt_size.saturating_sub(FCS).max(MIN_FRAME6);
    let mk = |kind: Kind| {
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&dst_mac.0);
        f[6..12].copy_from_slice(&src_mac.0);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        let ip = &mut f[IP6_OFF..];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((len - TCP6_OFF) as u16).to_be_bytes());
        ip[6] = 6;
        ip[7] = TTL;
        ip[8..20].copy_from_slice(&CLIENT6_PREFIX);
        ip[24..40].copy_from_slice(&dst.octets());
        let tcp = &mut f[TCP6_OFF..];
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = kind.tcp_flags();
        f
    };
    let frames = Kind::ALL.map(mk);
    let tcp_len = (len - TCP6_OFF) as u64;
    // Source prefix and destination come from the template's own bytes.
    let pseudo = checksum::accumulate(0, &frames[0][IP6_OFF + 8..TCP6_OFF]) + 6 + tcp_len;
    let tcp_base =
        Kind::ALL.map(|k| pseudo + checksum::accumulate(0, &frames[k as usize][TCP6_OFF..]));
    (len, frames, tcp_base)
}

/// Fills the per-packet fields of a frame copied from its template.
#[inline(always)]
pub fn write(buf: &mut [u8], tcp_base: u64, src: u32, sport: u16, seq: u32, ack: u32, tsc: u64) {
    buf[34..38].copy_from_slice(&src.to_be_bytes());
    buf[54..56].copy_from_slice(&sport.to_be_bytes());
    buf[58..62].copy_from_slice(&seq.to_be_bytes());
    buf[62..66].copy_from_slice(&ack.to_be_bytes());
    let t = (tsc & TSC6_MASK) as u32;
    buf[68..70].copy_from_slice(&((t >> 16) as u16).to_be_bytes());
    buf[72..74].copy_from_slice(&(t as u16).to_be_bytes());
    let acc = tcp_base + words32(src) + u64::from(sport) + words32(seq) + words32(ack) + words32(t);
    buf[70..72].copy_from_slice(&finish(acc).to_be_bytes());
}

/// [`crate::frames::read_stamp`] of an IPv6 frame (the caller checked the
/// EtherType and the length).
#[inline(always)]
pub fn read_stamp(f: &[u8]) -> Option<Stamp> {
    let tcp = TCP6_OFF;
    if f[IP6_OFF + 6] != 6 {
        return None;
    }
    let word = |o: usize| u32::from_be_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]]);
    let ack = word(tcp + 8);
    if ack >> 16 != TAG {
        return None;
    }
    let hi = u16::from_be_bytes([f[tcp + 14], f[tcp + 15]]);
    let lo = u16::from_be_bytes([f[tcp + 18], f[tcp + 19]]);
    Some(Stamp {
        ip_off: IP6_OFF,
        tcp_off: tcp,
        tsc_mask: TSC6_MASK,
        seq: word(tcp + 4),
        phase: (ack >> 8) as u8,
        kind: Kind::from_u8(ack as u8)?,
        tsc: u64::from(hi) << 16 | u64::from(lo),
    })
}

/// Full check of one frame the director NAT-ed over IPv6: the IPv6 header
/// well formed (version, payload length, next header), hop limit
/// decremented, the client's address and port kept, the destination one
/// of the real servers (address and port) whose MAC the generator gave it,
/// from the director's MAC, and the TCP checksum right. On success, the
/// index of the real server.
pub fn check(c: &CheckCtx, f: &[u8], src: u32, sport: u16) -> Result<Option<usize>, Bad> {
    if f.len() < MIN_FRAME6 || f[12..14] != [0x86, 0xdd] || f[IP6_OFF] >> 4 != 6 {
        return Err(Bad::Parse);
    }
    let ip = &f[IP6_OFF..];
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip[6] != 6 || plen < 20 || TCP6_OFF + plen > f.len() {
        return Err(Bad::Parse);
    }
    let addr = |o: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&ip[o..o + 16]).unwrap());
    let (s, d) = (addr(8), addr(24));
    let tcp = &f[TCP6_OFF..TCP6_OFF + plen];
    if !checksum::ipv6_l4_verify(s, d, 6, tcp) {
        return Err(Bad::TcpChecksum);
    }
    let port = |o: usize| u16::from_be_bytes([tcp[o], tcp[o + 1]]);
    if s != client6(src) || port(0) != sport {
        return Err(Bad::Source);
    }
    if ip[7] != TTL - 1 {
        return Err(Bad::Ttl);
    }
    let k = c
        .servers6
        .iter()
        .position(|&(a, p)| a == d && p == port(2))
        .ok_or(Bad::Destination)?;
    if MacAddr::from_bytes(&f[0..6]) != c.server_macs[k] {
        return Err(Bad::Mac);
    }
    if let Some(m) = c.dut_server_mac {
        if MacAddr::from_bytes(&f[6..12]) != m {
            return Err(Bad::Mac);
        }
    }
    Ok(Some(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{ack_word, read_stamp, Expect, Templates};
    use engine::packet::parse_ipv6::parse_ipv6;
    use std::net::Ipv4Addr;

    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x11);

    fn ctx() -> CheckCtx {
        CheckCtx {
            expect: Expect::Nat6,
            vip: Ipv4Addr::UNSPECIFIED,
            vport: 80,
            servers: vec![],
            server_macs: vec![MacAddr([2, 0, 0, 0, 3, 0])],
            gen_client_mac: MacAddr([2, 0, 0, 0, 1, 1]),
            dut_client_mac: MacAddr([2, 0, 0, 0, 1, 2]),
            dut_server_mac: Some(MacAddr([2, 0, 0, 0, 2, 2])),
            director_addr: Ipv4Addr::UNSPECIFIED,
            servers6: vec![(RS6, 8080)],
        }
    }

    /// What the director does to a frame: destination address and port,
    /// hop limit, MACs, the TCP checksum recomputed from scratch.
    fn nat(f: &mut [u8]) {
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 3, 0]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 2, 2]);
        f[21] -= 1;
        f[38..54].copy_from_slice(&RS6.octets());
        f[56..58].copy_from_slice(&8080u16.to_be_bytes());
        f[70..72].fill(0);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap());
        let c = checksum::ipv6_l4_checksum(src, RS6, 6, &f[TCP6_OFF..]);
        f[70..72].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn ipv6_frames_are_valid_and_carry_their_stamp() {
        for size in [64usize, 78, 79, 128, 1518] {
            let t = Templates::new6(
                size,
                MacAddr([2, 0, 0, 0, 1, 1]),
                MacAddr([2, 0, 0, 0, 1, 2]),
                VIP6,
                80,
            );
            assert_eq!(t.len + FCS, size.max(78));
            let mut buf = vec![0u8; 2048];
            for (i, kind) in Kind::ALL.into_iter().enumerate() {
                let src = 0xc612_0100 + i as u32 * 77;
                let tsc = 0x1234_5678_9abc_def0u64 + i as u64;
                t.write(
                    &mut buf,
                    kind,
                    src,
                    1024 + i as u16,
                    42 + i as u32,
                    ack_word(3, kind),
                    tsc,
                );
                let f = &mut buf[..t.len];
                let p = parse_ipv6(f).unwrap().unwrap();
                assert_eq!((p.src, p.dst, p.protocol), (client6(src), VIP6, 6));
                assert_eq!((p.src_port, p.dst_port), (1024 + i as u16, 80));
                assert_eq!(p.tcp_flags.bits(), kind.tcp_flags());
                assert_eq!(usize::from(p.layout().payload_len()), t.len - TCP6_OFF);
                assert!(checksum::ipv6_l4_verify(p.src, p.dst, 6, &f[TCP6_OFF..]));
                let s = read_stamp(f).unwrap();
                assert_eq!((s.seq, s.phase, s.kind), (42 + i as u32, 3, kind));
                assert_eq!((s.tsc, s.tsc_mask), (tsc & TSC6_MASK, TSC6_MASK));
                assert_eq!(s.tcp_off, TCP6_OFF);
                // Not NAT-ed yet: a hop limit of 64 and the VIP.
                assert_eq!(check(&ctx(), f, src, 1024 + i as u16), Err(Bad::Ttl));
                nat(f);
                assert_eq!(check(&ctx(), f, src, 1024 + i as u16), Ok(Some(0)));
                f[60] ^= 1;
                assert_eq!(
                    check(&ctx(), f, src, 1024 + i as u16),
                    Err(Bad::TcpChecksum)
                );
            }
        }
    }
}
