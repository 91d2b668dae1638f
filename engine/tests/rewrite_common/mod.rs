//! Shared helpers for the `rewrite_*` integration tests: frames are built and
//! checked with etherparse, an implementation independent of ours.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, NetHeaders,
    PacketHeaders, PayloadSlice, TcpHeader, TransportHeader, UdpHeader,
};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0xC1, 0, 0, 0, 0x10];
pub const PORT_MAC: [u8; 6] = [0x02, 0xD1, 0, 0, 0, 0x01];
pub const RS_MAC: [u8; 6] = [0x02, 0x5E, 0, 0, 0, 0x11];
pub const GW_MAC: [u8; 6] = [0x02, 0x6A, 0, 0, 0, 0x01];

pub const CLIENT: [u8; 4] = [198, 18, 0, 10];
pub const VIP: [u8; 4] = [198, 18, 0, 100];
pub const RS: [u8; 4] = [198, 19, 0, 11];
pub const DIR: [u8; 4] = [198, 19, 0, 2];
pub const ROUTER: [u8; 4] = [198, 18, 0, 1];

pub fn ip4(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

/// The transport part of a test frame.
#[derive(Clone, Debug, PartialEq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        /// FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128.
        flags: u8,
        window: u16,
        options: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        /// false: checksum field 0 ("none").
        checksum: bool,
    },
    /// Payload bytes only (non-first fragments, other protocols).
    Raw { protocol: u8 },
}

/// A test frame description; `build` serializes it with etherparse.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub df: bool,
    pub mf: bool,
    /// Fragment offset in 8-byte units.
    pub frag: u16,
    pub ip_options: Vec<u8>,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// Ethernet padding appended after the IP packet.
    pub padding: usize,
}

impl Frame {
    /// Client -> VIP:80 TCP SYN with an MSS option.
    pub fn tcp_syn() -> Frame {
        Frame {
            src_mac: CLIENT_MAC,
            dst_mac: PORT_MAC,
            src: CLIENT,
            dst: VIP,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0x1234,
            df: true,
            mf: false,
            frag: 0,
            ip_options: vec![],
            l4: L4::Tcp {
                sport: 40000,
                dport: 80,
                seq: 0x1000_0001,
                ack: 0,
                flags: 0x02,
                window: 64240,
                options: vec![2, 4, 0x05, 0xB4],
            },
            payload: vec![],
            padding: 0,
        }
    }

    /// Client -> VIP:53 UDP with a checksum.
    pub fn udp() -> Frame {
        Frame {
            l4: L4::Udp {
                sport: 5353,
                dport: 53,
                checksum: true,
            },
            payload: b"\x12\x34\x01\x00\x00\x01query".to_vec(),
            ident: 0x4321,
            df: false,
            ..Frame::tcp_syn()
        }
    }

    pub fn protocol(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Raw { protocol } => protocol,
        }
    }

    fn ip_header_for(&self, payload_len: usize) -> Ipv4Header {
        let mut h = Ipv4Header {
            dscp: Ipv4Dscp::try_new(self.dscp).unwrap(),
            ecn: Ipv4Ecn::try_new(self.ecn).unwrap(),
            total_len: 0,
            identification: self.ident,
            dont_fragment: self.df,
            more_fragments: self.mf,
            fragment_offset: IpFragOffset::try_new(self.frag).unwrap(),
            time_to_live: self.ttl,
            protocol: IpNumber(self.protocol()),
            header_checksum: 0,
            source: self.src,
            destination: self.dst,
            options: self.ip_options.as_slice().try_into().unwrap(),
        };
        h.set_payload_len(payload_len).unwrap();
        h.header_checksum = h.calc_header_checksum();
        h
    }

    /// The L4 header + payload bytes, checksum computed by etherparse.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                options,
            } => {
                let mut t = TcpHeader::new(*sport, *dport, *seq, *window);
                t.acknowledgment_number = *ack;
                t.fin = flags & 0x01 != 0;
                t.syn = flags & 0x02 != 0;
                t.rst = flags & 0x04 != 0;
                t.psh = flags & 0x08 != 0;
                t.ack = flags & 0x10 != 0;
                t.urg = flags & 0x20 != 0;
                t.ece = flags & 0x40 != 0;
                t.cwr = flags & 0x80 != 0;
                t.set_options_raw(options).unwrap();
                let ip = self.ip_header_for(t.header_len() + self.payload.len());
                t.checksum = t.calc_checksum_ipv4(&ip, &self.payload).unwrap();
                t.write(&mut out).unwrap();
            }
            L4::Udp {
                sport,
                dport,
                checksum,
            } => {
                let ip = self.ip_header_for(8 + self.payload.len());
                let u = if *checksum {
                    UdpHeader::with_ipv4_checksum(*sport, *dport, &ip, &self.payload).unwrap()
                } else {
                    UdpHeader::without_ipv4_checksum(*sport, *dport, self.payload.len()).unwrap()
                };
                u.write(&mut out).unwrap();
            }
            L4::Raw { .. } => {}
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// The IPv4 packet (header + L4), no Ethernet.
    pub fn ip_bytes(&self) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let mut out = Vec::new();
        self.ip_header_for(l4.len()).write(&mut out).unwrap();
        out.extend_from_slice(&l4);
        out
    }

    /// The whole Ethernet frame, padding included.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        Ethernet2Header {
            source: self.src_mac,
            destination: self.dst_mac,
            ether_type: EtherType::IPV4,
        }
        .write(&mut out)
        .unwrap();
        out.extend_from_slice(&self.ip_bytes());
        out.resize(out.len() + self.padding, 0);
        out
    }

    // Builders for expected frames.

    pub fn with_src(mut self, addr: [u8; 4], port: u16) -> Frame {
        self.src = addr;
        match &mut self.l4 {
            L4::Tcp { sport, .. } | L4::Udp { sport, .. } => *sport = port,
            L4::Raw { .. } => {}
        }
        self
    }

    pub fn with_dst(mut self, addr: [u8; 4], port: u16) -> Frame {
        self.dst = addr;
        match &mut self.l4 {
            L4::Tcp { dport, .. } | L4::Udp { dport, .. } => *dport = port,
            L4::Raw { .. } => {}
        }
        self
    }

    pub fn with_ttl(mut self, ttl: u8) -> Frame {
        self.ttl = ttl;
        self
    }

    pub fn with_macs(mut self, dst: [u8; 6], src: [u8; 6]) -> Frame {
        self.dst_mac = dst;
        self.src_mac = src;
        self
    }

    /// The reply a server sends back for this frame (addresses, ports and
    /// MACs swapped, TCP SYN -> SYN|ACK).
    pub fn reply(&self, payload: &[u8]) -> Frame {
        let l4 = match &self.l4 {
            L4::Tcp {
                sport, dport, seq, ..
            } => L4::Tcp {
                sport: *dport,
                dport: *sport,
                seq: 0x7000_0000,
                ack: seq.wrapping_add(1),
                flags: 0x12,
                window: 65160,
                options: vec![2, 4, 0x05, 0xB4, 1, 1, 4, 2],
            },
            L4::Udp {
                sport,
                dport,
                checksum,
            } => L4::Udp {
                sport: *dport,
                dport: *sport,
                checksum: *checksum,
            },
            L4::Raw { protocol } => L4::Raw {
                protocol: *protocol,
            },
        };
        Frame {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            src: self.dst,
            dst: self.src,
            ident: self.ident.wrapping_add(1000),
            l4,
            payload: payload.to_vec(),
            ..self.clone()
        }
    }
}

/// What etherparse read back from a frame whose checksums all verified.
#[derive(Debug)]
pub struct Checked {
    pub eth: Ethernet2Header,
    pub ip: Ipv4Header,
    pub transport: Option<TransportHeader>,
    pub payload: Vec<u8>,
}

/// Parses `frame` with etherparse and asserts that the IPv4 header checksum
/// and (when present and unfragmented) the TCP/UDP/ICMP checksum equal
/// etherparse's own recomputation. A zero UDP checksum is accepted as "none".
pub fn parse_and_verify(frame: &[u8]) -> Checked {
    let h = PacketHeaders::from_ethernet_slice(frame).expect("etherparse parses the frame");
    let eth = match h.link {
        Some(etherparse::LinkHeader::Ethernet2(e)) => e,
        other => panic!("not ethernet: {other:?}"),
    };
    let ip = match h.net {
        Some(NetHeaders::Ipv4(ip, _)) => ip,
        other => panic!("not ipv4: {other:?}"),
    };
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 header checksum"
    );
    let payload: Vec<u8> = match &h.payload {
        PayloadSlice::Tcp(p) | PayloadSlice::Udp(p) | PayloadSlice::Icmpv4(p) => p.to_vec(),
        PayloadSlice::Ip(p) => p.payload.to_vec(),
        other => panic!("unexpected payload {other:?}"),
    };
    match &h.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(&ip, &payload).unwrap(),
                "TCP checksum"
            );
        }
        // A zero UDP checksum means "none": nothing to verify.
        Some(TransportHeader::Udp(u)) if u.checksum != 0 => {
            assert_eq!(
                u.checksum,
                u.calc_checksum_ipv4(&ip, &payload).unwrap(),
                "UDP checksum"
            );
        }
        Some(TransportHeader::Udp(_)) => {}
        Some(TransportHeader::Icmpv4(i)) => {
            let mut again = i.clone();
            again.update_checksum(&payload);
            assert_eq!(i.checksum, again.checksum, "ICMP checksum");
        }
        Some(other) => panic!("unexpected transport {other:?}"),
        None => {}
    }
    Checked {
        eth,
        ip,
        transport: h.transport,
        payload,
    }
}

/// Runs our parser on `frame` and panics with the drop reason on failure.
pub fn parsed(frame: &[u8]) -> engine::packet::Parsed {
    engine::packet::parse_frame(frame).unwrap_or_else(|r| panic!("parse_frame: {r}"))
}
