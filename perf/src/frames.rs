//! The generator's frames: Ethernet + IPv4 + TCP built from a template with
//! precomputed partial checksums, so each packet costs a 64-byte copy and a
//! handful of stores; and the receive-side checks, which reuse the engine's
//! packet views (`engine::packet`).
//!
//! Layout of a generated frame (no VLAN, no IP options):
//!
//! | off | field |
//! |----:|-------|
//! |  0  | Ethernet dst, src, type 0x0800 |
//! | 14  | IPv4, TTL 64, DF clear, protocol 6 |
//! | 26  | IPv4 source = the flow's client address |
//! | 34  | TCP source port = the flow's client port |
//! | 38  | TCP seq = flow (or connection) number |
//! | 42  | TCP ack = [`TAG`] `<< 16 \| phase << 8 \| kind` |
//! | 47  | TCP flags by kind: SYN, ACK, PSH\|ACK, FIN\|ACK |
//! | 54  | payload: low 48 bits of the TSC at send time, then zeros |
//!
//! `pkt_size` is the Ethernet frame *with* its 4-byte FCS (RFC 2544 frame
//! sizes: 64 ... 1518), so a 64-byte packet is a 60-byte buffer.

use std::net::{Ipv4Addr, Ipv6Addr};

use engine::packet::checksum;
use engine::packet::ethernet::MacAddr;
use engine::packet::{parse_frame, Ipv4Packet, TcpPacket};

use crate::frames6;

pub const ETH_LEN: usize = 14;
pub const IP_OFF: usize = 14;
pub const TCP_OFF: usize = 34;
pub const PAYLOAD_OFF: usize = 54;
pub const TSC_LEN: usize = 6;
/// Smallest frame we build (64-byte packet minus FCS).
pub const MIN_FRAME: usize = 60;
pub const FCS: usize = 4;
/// High half of the TCP ack field of every generated segment ("RV").
pub const TAG: u32 = 0x5256;
pub const TTL: u8 = 64;
pub const TSC_MASK: u64 = (1 << 48) - 1;

/// What a generated segment is, in a connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Syn = 0,
    Ack = 1,
    Data = 2,
    Fin = 3,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Syn, Kind::Ack, Kind::Data, Kind::Fin];

    pub fn tcp_flags(self) -> u8 {
        match self {
            Kind::Syn => 0x02,
            Kind::Ack => 0x10,
            Kind::Data => 0x18,
            Kind::Fin => 0x11,
        }
    }

    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.get(v as usize).copied()
    }
}

/// Sum of the big-endian 16-bit words of a u32.
#[inline(always)]
pub(crate) fn words32(v: u32) -> u64 {
    u64::from(v >> 16) + u64::from(v & 0xffff)
}

/// Folds a ones'-complement accumulator and complements it.
#[inline(always)]
pub(crate) fn finish(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// One template per segment kind, with the checksum sums of everything
/// that does not change per packet.
pub struct Templates {
    pub len: usize,
    frames: [Vec<u8>; 4],
    ip_base: u64,
    tcp_base: [u64; 4],
    /// IPv6 frames (`frames6`'s layout).
    v6: bool,
}

impl Templates {
    /// Frames of `pkt_size` bytes (FCS included) from `src_mac` to
    /// `dst_mac`, for `dst:dport`.
    pub fn new(
        pkt_size: usize,
        src_mac: MacAddr,
        dst_mac: MacAddr,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Templates {
        let len = pkt_size.saturating_sub(FCS).max(MIN_FRAME);
        let mk = |kind: Kind| {
            let mut f = vec![0u8; len];
            f[0..6].copy_from_slice(&dst_mac.0);
            f[6..12].copy_from_slice(&src_mac.0);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[IP_OFF..];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
            ip[8] = TTL;
            ip[9] = 6;
            ip[16..20].copy_from_slice(&dst.octets());
            let tcp = &mut f[TCP_OFF..];
            tcp[2..4].copy_from_slice(&dport.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = kind.tcp_flags();
            tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
            f
        };
        let frames = Kind::ALL.map(mk);
        // Variable fields are zero in the templates: their words are added
        // per packet.
        let ip_base = checksum::accumulate(0, &frames[0][IP_OFF..TCP_OFF]);
        let tcp_len = (len - TCP_OFF) as u16;
        let pseudo = words32(u32::from(dst)) + 6 + u64::from(tcp_len);
        let tcp_base =
            Kind::ALL.map(|k| pseudo + checksum::accumulate(0, &frames[k as usize][TCP_OFF..]));
        Templates {
            len,
            frames,
            ip_base,
            tcp_base,
            v6: false,
        }
    }

    /// IPv6 twin of [`Templates::new`]: frames of `pkt_size` bytes (at
    /// least [`frames6::MIN_FRAME6`] + FCS) to `[dst]:dport`, in the layout
    /// of [`frames6`].
    pub fn new6(
        pkt_size: usize,
        src_mac: MacAddr,
        dst_mac: MacAddr,
        dst: Ipv6Addr,
        dport: u16,
    ) -> Templates {
        let (len, frames, tcp_base) = frames6::templates(pkt_size, src_mac, dst_mac, dst, dport);
        Templates {
            len,
            frames,
            ip_base: 0,
            tcp_base,
            v6: true,
        }
    }

    /// Writes the frame of one segment into `buf` (at least `self.len`
    /// bytes).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn write(
        &self,
        buf: &mut [u8],
        kind: Kind,
        src: u32,
        sport: u16,
        seq: u32,
        ack: u32,
        tsc: u64,
    ) {
        let k = kind as usize;
        let buf = &mut buf[..self.len];
        buf.copy_from_slice(&self.frames[k]);
        if self.v6 {
            return frames6::write(buf, self.tcp_base[k], src, sport, seq, ack, tsc);
        }
        buf[26..30].copy_from_slice(&src.to_be_bytes());
        let ipc = finish(self.ip_base + words32(src));
        buf[24..26].copy_from_slice(&ipc.to_be_bytes());
        buf[34..36].copy_from_slice(&sport.to_be_bytes());
        buf[38..42].copy_from_slice(&seq.to_be_bytes());
        buf[42..46].copy_from_slice(&ack.to_be_bytes());
        let t = tsc & TSC_MASK;
        let tb = t.to_be_bytes();
        buf[PAYLOAD_OFF..PAYLOAD_OFF + TSC_LEN].copy_from_slice(&tb[2..8]);
        let acc = self.tcp_base[k]
            + words32(src)
            + u64::from(sport)
            + words32(seq)
            + words32(ack)
            + (t >> 32)
            + ((t >> 16) & 0xffff)
            + (t & 0xffff);
        let tc = finish(acc);
        buf[50..52].copy_from_slice(&tc.to_be_bytes());
    }
}

/// The ack word of a generated segment.
#[inline(always)]
pub fn ack_word(phase: u8, kind: Kind) -> u32 {
    TAG << 16 | u32::from(phase) << 8 | kind as u32
}

/// What the generator expects the device under test to have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// testpmd io: the frame unchanged.
    Io,
    /// testpmd macswap: Ethernet source and destination swapped.
    Macswap,
    /// Director NAT: destination = a real server and its port.
    Nat,
    /// Director DR: destination MAC = a real server's.
    Dr,
    /// Director TUN: wrapped in IPv4 (protocol 4) to a real server.
    Tun,
    /// Director NAT over IPv6: destination = a real server's IPv6 address
    /// and port (the generator speaks IPv6, `frames6`).
    Nat6,
}

impl Expect {
    /// Is this a router hop (TTL decremented)?
    pub fn routed(self) -> bool {
        matches!(self, Expect::Nat | Expect::Dr | Expect::Tun | Expect::Nat6)
    }

    /// Does the generator send IPv6?
    pub fn ipv6(self) -> bool {
        self == Expect::Nat6
    }
}

/// The fields of a received generated segment, read at fixed offsets (no
/// validation): enough to count it and take its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Offset of the (inner) IPv4 header.
    pub ip_off: usize,
    /// Offset of the TCP header.
    pub tcp_off: usize,
    /// The bits of the TSC the frame carries (48 over IPv4, 32 over IPv6).
    pub tsc_mask: u64,
    pub seq: u32,
    pub phase: u8,
    pub kind: Kind,
    pub tsc: u64,
}

/// Reads the stamp of a frame the DUT forwarded: `None` when it is not one
/// of ours (ARP, garbage, a foreign protocol).
#[inline(always)]
pub fn read_stamp(f: &[u8]) -> Option<Stamp> {
    if f.len() >= frames6::MIN_FRAME6 && f[12] == 0x86 && f[13] == 0xdd {
        return frames6::read_stamp(f);
    }
    if f.len() < MIN_FRAME || f[12] != 0x08 || f[13] != 0x00 {
        return None;
    }
    let mut ip = IP_OFF;
    if f[ip + 9] == 4 {
        // IPIP: the inner header follows the outer one.
        ip += usize::from(f[ip] & 0x0f) * 4;
    }
    let ihl = usize::from(*f.get(ip)? & 0x0f) * 4;
    let tcp = ip + ihl;
    let pay = tcp + 20;
    if f.get(ip + 9) != Some(&6) || f.len() < pay + TSC_LEN {
        return None;
    }
    let ack = u32::from_be_bytes(f[tcp + 8..tcp + 12].try_into().ok()?);
    if ack >> 16 != TAG {
        return None;
    }
    let seq = u32::from_be_bytes(f[tcp + 4..tcp + 8].try_into().ok()?);
    let mut t = [0u8; 8];
    t[2..8].copy_from_slice(&f[pay..pay + TSC_LEN]);
    Some(Stamp {
        ip_off: ip,
        tcp_off: tcp,
        tsc_mask: TSC_MASK,
        seq,
        phase: (ack >> 8) as u8,
        kind: Kind::from_u8(ack as u8)?,
        tsc: u64::from_be_bytes(t),
    })
}

/// Why a sampled frame failed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// The engine's parser refused it (bad IPv4 checksum, lengths...).
    Parse,
    IpChecksum,
    TcpChecksum,
    /// Destination address/port not what the mode requires.
    Destination,
    /// Source address/port changed.
    Source,
    Ttl,
    Mac,
    /// TUN outer header wrong (protocol, source, destination).
    Outer,
    /// A flow reached a different real server than before.
    NotSticky,
}

impl Bad {
    pub const ALL: [Bad; 9] = [
        Bad::Parse,
        Bad::IpChecksum,
        Bad::TcpChecksum,
        Bad::Destination,
        Bad::Source,
        Bad::Ttl,
        Bad::Mac,
        Bad::Outer,
        Bad::NotSticky,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Bad::Parse => "parse",
            Bad::IpChecksum => "ip_checksum",
            Bad::TcpChecksum => "tcp_checksum",
            Bad::Destination => "destination",
            Bad::Source => "source",
            Bad::Ttl => "ttl",
            Bad::Mac => "mac",
            Bad::Outer => "outer",
            Bad::NotSticky => "not_sticky",
        }
    }
}

/// Everything the checker needs to know about the topology.
#[derive(Debug, Clone)]
pub struct CheckCtx {
    pub expect: Expect,
    pub vip: Ipv4Addr,
    pub vport: u16,
    /// Real servers (address, port) in configuration order.
    pub servers: Vec<(Ipv4Addr, u16)>,
    /// The MAC the generator answers ARP with for server `k`.
    pub server_macs: Vec<MacAddr>,
    /// Our client-side port MAC (source of what we send).
    pub gen_client_mac: MacAddr,
    /// The destination MAC we send to (the DUT's client-side MAC).
    pub dut_client_mac: MacAddr,
    /// The DUT's server-side MAC, once learned (source of what it forwards).
    pub dut_server_mac: Option<MacAddr>,
    /// The director's address on the server side (TUN outer source).
    pub director_addr: Ipv4Addr,
    /// IPv6 real servers (address, port) in configuration order (NAT6).
    pub servers6: Vec<(Ipv6Addr, u16)>,
}

/// Full check of one forwarded frame against the expected rewrite. On
/// success, the index of the real server it went to (for the stickiness
/// check; `None` for the testpmd modes).
pub fn check(c: &CheckCtx, f: &[u8], src: Ipv4Addr, sport: u16) -> Result<Option<usize>, Bad> {
    if c.expect.ipv6() {
        return frames6::check(c, f, u32::from(src), sport);
    }
    let p = parse_frame(f).map_err(|_| Bad::Parse)?;
    let dst_mac = MacAddr::from_bytes(&f[0..6]);
    let src_mac = MacAddr::from_bytes(&f[6..12]);
    let mac_server = || c.server_macs.iter().position(|m| *m == dst_mac);
    let mut server = None;
    // The inner (original) IPv4 header.
    let inner_off = match c.expect {
        Expect::Tun => {
            if p.protocol != 4 || p.src != c.director_addr {
                return Err(Bad::Outer);
            }
            let k = c
                .servers
                .iter()
                .position(|s| s.0 == p.dst)
                .ok_or(Bad::Outer)?;
            if mac_server() != Some(k) {
                return Err(Bad::Mac);
            }
            server = Some(k);
            usize::from(p.l4_off())
        }
        _ => usize::from(p.l3_off()),
    };
    let ip = Ipv4Packet::new_checked(&f[inner_off..]).map_err(|_| Bad::Parse)?;
    if !ip.verify_checksum() {
        return Err(Bad::IpChecksum);
    }
    if ip.protocol() != 6 {
        return Err(Bad::Parse);
    }
    let tcp = TcpPacket::new_checked(ip.payload()).map_err(|_| Bad::Parse)?;
    if !tcp.verify_checksum(ip.src(), ip.dst()) {
        return Err(Bad::TcpChecksum);
    }
    if ip.src() != src || tcp.src_port() != sport {
        return Err(Bad::Source);
    }
    let want_ttl = if c.expect.routed() { TTL - 1 } else { TTL };
    if ip.ttl() != want_ttl {
        return Err(Bad::Ttl);
    }
    match c.expect {
        Expect::Io | Expect::Macswap => {
            if ip.dst() != c.vip || tcp.dst_port() != c.vport {
                return Err(Bad::Destination);
            }
            let (d, s) = if c.expect == Expect::Io {
                (c.dut_client_mac, c.gen_client_mac)
            } else {
                (c.gen_client_mac, c.dut_client_mac)
            };
            if dst_mac != d || src_mac != s {
                return Err(Bad::Mac);
            }
        }
        Expect::Nat => {
            let k = c
                .servers
                .iter()
                .position(|s| s.0 == ip.dst() && s.1 == tcp.dst_port())
                .ok_or(Bad::Destination)?;
            if mac_server() != Some(k) {
                return Err(Bad::Mac);
            }
            server = Some(k);
        }
        Expect::Dr => {
            if ip.dst() != c.vip || tcp.dst_port() != c.vport {
                return Err(Bad::Destination);
            }
            server = Some(mac_server().ok_or(Bad::Mac)?);
        }
        Expect::Tun => {
            if ip.dst() != c.vip || tcp.dst_port() != c.vport {
                return Err(Bad::Destination);
            }
        }
        Expect::Nat6 => return Err(Bad::Parse),
    }
    if c.expect.routed() {
        if let Some(m) = c.dut_server_mac {
            if src_mac != m {
                return Err(Bad::Mac);
            }
        }
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(size: usize) -> Templates {
        Templates::new(
            size,
            MacAddr([2, 0, 0, 0, 1, 1]),
            MacAddr([2, 0, 0, 0, 1, 2]),
            Ipv4Addr::new(198, 18, 0, 100),
            80,
        )
    }

    fn ctx(expect: Expect) -> CheckCtx {
        CheckCtx {
            expect,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
            servers: vec![(Ipv4Addr::new(198, 19, 0, 11), 8080)],
            server_macs: vec![MacAddr([2, 0, 0, 0, 3, 0])],
            gen_client_mac: MacAddr([2, 0, 0, 0, 1, 1]),
            dut_client_mac: MacAddr([2, 0, 0, 0, 1, 2]),
            dut_server_mac: None,
            director_addr: Ipv4Addr::new(198, 19, 0, 1),
            servers6: Vec::new(),
        }
    }

    #[test]
    fn generated_frames_have_valid_checksums_and_stamps() {
        for size in [64usize, 65, 128, 1518] {
            let t = tpl(size);
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
                let f = &buf[..t.len];
                assert_eq!(f.len(), size - 4);
                let r = check(&ctx(Expect::Io), f, Ipv4Addr::from(src), 1024 + i as u16);
                assert_eq!(r, Ok(None), "size {size} kind {kind:?}");
                let s = read_stamp(f).unwrap();
                assert_eq!((s.seq, s.phase, s.kind), (42 + i as u32, 3, kind));
                assert_eq!(s.tsc, tsc & TSC_MASK);
                assert_eq!(s.ip_off, IP_OFF);
                let p = parse_frame(f).unwrap();
                assert_eq!(p.tcp_flags.bits(), kind.tcp_flags());
            }
        }
    }

    #[test]
    fn checker_catches_a_wrong_rewrite() {
        let t = tpl(64);
        let mut buf = vec![0u8; 64];
        t.write(
            &mut buf,
            Kind::Data,
            0xc612_0101,
            1024,
            0,
            ack_word(1, Kind::Data),
            5,
        );
        let f = &mut buf[..60];
        // Unchanged frame is not a NAT rewrite.
        assert_eq!(
            check(&ctx(Expect::Nat), f, Ipv4Addr::from(0xc612_0101), 1024),
            Err(Bad::Ttl)
        );
        // A corrupted TCP checksum.
        f[50] ^= 1;
        assert_eq!(
            check(&ctx(Expect::Io), f, Ipv4Addr::from(0xc612_0101), 1024),
            Err(Bad::TcpChecksum)
        );
    }
}
