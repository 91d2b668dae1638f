//! The segments the synproxy writes itself (SYN-ACK to the client, SYN and
//! ACK to the server, RST to the client), built in place over the frame
//! that caused them, and the sequence shift of a synproxied connection.

use std::net::Ipv4Addr;

use crate::packet::checksum::{self, Delta};
use crate::packet::ethernet::{EtherType, EthernetFrame, MacAddr};
use crate::packet::ipv4::proto;
use crate::packet::{Ipv4Packet, Parsed, TcpFlags, TcpPacket};

/// Ethernet + IPv4 (no options) + TCP with an MSS option.
const HEADERS_LEN: usize = 14 + 20 + 24;
/// What a built segment's frame is resized to: the headers, zero-padded
/// to the Ethernet minimum (60 bytes without FCS).
pub const FRAME_LEN: usize = 60;
/// TTL of the segments the director originates (Linux's default).
const TTL: u8 = 64;

/// One header-only TCP segment to write.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// An MSS option (SYN and SYN-ACK only).
    pub mss: Option<u16>,
}

/// Writes `s` over the first [`FRAME_LEN`] bytes of `frame` (the caller has
/// sized it so): IPv4 without options, ident 0, DF, TTL 64, both checksums
/// computed in full.
pub fn write(frame: &mut [u8], s: &Segment) -> bool {
    if frame.len() < FRAME_LEN {
        return false;
    }
    frame[..FRAME_LEN].fill(0);
    let tcp_len = if s.mss.is_some() { 24 } else { 20 };
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst(s.eth_dst);
    eth.set_src(s.eth_src);
    eth.set_ethertype(EtherType::IPV4);
    let l3 = &mut frame[14..HEADERS_LEN];
    let mut ip = Ipv4Packet::new_unchecked(&mut l3[..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + tcp_len) as u16);
    ip.set_dont_frag(true);
    ip.set_ttl(TTL);
    ip.set_protocol(proto::TCP);
    ip.set_src(s.src);
    ip.set_dst(s.dst);
    ip.fill_checksum();
    let seg = &mut l3[20..20 + tcp_len];
    if let Some(mss) = s.mss {
        seg[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    }
    let mut t = TcpPacket::new_unchecked(seg);
    t.set_src_port(s.sport);
    t.set_dst_port(s.dport);
    t.set_seq_number(s.seq);
    t.set_ack_number(s.ack);
    t.set_header_len(tcp_len);
    t.set_flags(s.flags);
    t.set_window(s.window);
    t.fill_checksum(s.src, s.dst);
    true
}

/// The segment's TCP header fields the synproxy reads: (seq, ack, window).
pub fn numbers(frame: &[u8], p: &Parsed) -> Option<(u32, u32, u16)> {
    let fr = p.ipv4(frame)?;
    let t = fr.tcp()?;
    Some((t.seq_number(), t.ack_number(), t.window()))
}

/// Bytes of TCP payload in the segment.
pub fn payload_len(frame: &[u8], p: &Parsed) -> usize {
    p.ipv4(frame)
        .and_then(|fr| fr.tcp().map(|t| t.payload().len()))
        .unwrap_or(0)
}

/// The MSS option of a SYN, if it carries a well-formed one.
pub fn mss_option(frame: &[u8], p: &Parsed) -> Option<u16> {
    let fr = p.ipv4(frame)?;
    let t = fr.tcp()?;
    let mut o = t.options();
    while let [kind, rest @ ..] = o {
        match *kind {
            0 => return None,
            1 => o = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if len < 2 || len > o.len() {
                    return None;
                }
                if *kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([o[2], o[3]]));
                }
                o = &o[len..];
            }
        }
    }
    None
}

/// Adds `seq_add` to the sequence number and `ack_add` to the
/// acknowledgement number of the TCP segment in `frame`, updating its
/// checksum incrementally (RFC 1624). The acknowledgement is shifted only
/// when the segment has ACK set (otherwise the field is not in use).
#[inline]
pub fn shift(frame: &mut [u8], p: &Parsed, seq_add: u32, ack_add: u32) -> bool {
    let Some(mut fr) = p.ipv4(frame) else {
        return false;
    };
    let Some(mut t) = fr.tcp_mut() else {
        return false;
    };
    let (seq, ack) = (t.seq_number(), t.ack_number());
    let ack_add = if t.flags().ack() { ack_add } else { 0 };
    let (nseq, nack) = (seq.wrapping_add(seq_add), ack.wrapping_add(ack_add));
    t.set_seq_number(nseq);
    t.set_ack_number(nack);
    let d = Delta::new().dword(seq, nseq).dword(ack, nack);
    t.set_checksum(d.apply(t.checksum()));
    true
}

/// The full TCP checksum of a segment in `frame` verifies (tests, debug).
#[allow(dead_code)]
pub fn tcp_ok(frame: &[u8], p: &Parsed) -> bool {
    p.ipv4(frame)
        .is_some_and(|fr| checksum::ipv4_l4_verify(p.src, p.dst, proto::TCP, fr.l4_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_frame;

    fn seg(mss: Option<u16>) -> Vec<u8> {
        let mut f = vec![0xAA; FRAME_LEN];
        assert!(write(
            &mut f,
            &Segment {
                eth_dst: MacAddr([2, 0, 0, 0, 0, 1]),
                eth_src: MacAddr([2, 0, 0, 0, 0, 2]),
                src: Ipv4Addr::new(198, 18, 0, 100),
                dst: Ipv4Addr::new(198, 18, 0, 10),
                sport: 80,
                dport: 40000,
                seq: 0xFFFF_FFF0,
                ack: 1001,
                flags: TcpFlags::SYN | TcpFlags::ACK,
                window: 65535,
                mss,
            }
        ));
        f
    }

    #[test]
    fn written_segment_parses_and_verifies() {
        for mss in [None, Some(1460)] {
            let f = seg(mss);
            let p = parse_frame(&f).unwrap();
            assert!(p.is_tcp() && p.tcp_flags.syn() && p.tcp_flags.ack());
            assert_eq!(p.ip_total_len(), if mss.is_some() { 44 } else { 40 });
            assert!(tcp_ok(&f, &p));
            assert_eq!(mss_option(&f, &p), mss);
            assert_eq!(numbers(&f, &p), Some((0xFFFF_FFF0, 1001, 65535)));
        }
    }

    #[test]
    fn shift_wraps_and_keeps_checksum() {
        let mut f = seg(Some(1300));
        let p = parse_frame(&f).unwrap();
        assert!(shift(&mut f, &p, 0x20, 0u32.wrapping_sub(1002)));
        assert_eq!(numbers(&f, &p), Some((0x10, u32::MAX, 65535)));
        assert!(tcp_ok(&f, &p));
    }
}
