//! What a phase sends: the sequence of segments, the client address and
//! port of each flow, and the queue a NIC would put each flow on.

use engine::conn::rss;

use crate::frames::Kind;
use crate::frames6;
use crate::order::Order;

/// Client addresses of established flows: 198.18.1.0 + (flow % CLIENT_IPS).
pub(super) const CLIENT_BASE: u32 = 0xc612_0100;
pub(super) const CLIENT_IPS: u32 = 16384;
/// Client addresses of new connections (cps phase).
pub(super) const NEW_BASE: u32 = 0xc612_8000;
/// Client addresses of probe flows.
pub(super) const PROBE_BASE: u32 = 0xc612_c800;
pub(super) const FIRST_PORT: u32 = 1024;
pub(super) const PORTS: u32 = 64000;

/// Which packets a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    Probe,
    Flows,
    NewConns,
}

/// One segment to send.
#[derive(Clone, Copy)]
pub(super) struct Pkt {
    pub(super) kind: Kind,
    pub(super) src: u32,
    pub(super) sport: u16,
    pub(super) seq: u32,
}

/// The sequence of segments of a phase.
pub(super) enum Source {
    /// SYNs of probe flows `round * n .. round * n + n`.
    Probe { round: u32, n: u32, i: u32 },
    /// SYN + ACK of each flow in `list` (or of all flows when `list` is
    /// empty and `all` is set).
    Open {
        list: Vec<u32>,
        all: u32,
        i: u32,
        second: bool,
    },
    /// Data over all flows, round robin in `order`.
    Data { flows: u32, i: u32, order: Order },
    /// New connections: SYN, ACK, data, FIN each.
    NewConns { k: u64, step: u8 },
}

impl Source {
    #[inline(always)]
    pub(super) fn next(&mut self) -> Option<Pkt> {
        match self {
            Source::Probe { round, n, i } => {
                if *i >= *n {
                    return None;
                }
                let j = *i;
                *i += 1;
                Some(Pkt {
                    kind: Kind::Syn,
                    src: PROBE_BASE + j,
                    sport: (FIRST_PORT + *round % PORTS) as u16,
                    seq: j,
                })
            }
            Source::Open {
                list,
                all,
                i,
                second,
            } => {
                let n = if list.is_empty() {
                    *all
                } else {
                    list.len() as u32
                };
                if *i >= n {
                    return None;
                }
                let f = if list.is_empty() {
                    *i
                } else {
                    list[*i as usize]
                };
                let kind = if *second { Kind::Ack } else { Kind::Syn };
                if *second {
                    *i += 1;
                }
                *second = !*second;
                let (src, sport) = flow_addr(f);
                Some(Pkt {
                    kind,
                    src,
                    sport,
                    seq: f,
                })
            }
            Source::Data { flows, i, order } => {
                let f = order.flow(*i, *flows);
                *i += 1;
                if *i == *flows {
                    *i = 0;
                }
                let (src, sport) = flow_addr(f);
                Some(Pkt {
                    kind: Kind::Data,
                    src,
                    sport,
                    seq: f,
                })
            }
            Source::NewConns { k, step } => {
                let (src, sport) = newconn_addr(*k);
                let p = Pkt {
                    kind: Kind::ALL[*step as usize],
                    src,
                    sport,
                    seq: *k as u32,
                };
                *step += 1;
                if *step == 4 {
                    *step = 0;
                    *k += 1;
                }
                Some(p)
            }
        }
    }
}

/// Client address and port of established flow `f`.
#[inline(always)]
pub(super) fn flow_addr(f: u32) -> (u32, u16) {
    (
        CLIENT_BASE + f % CLIENT_IPS,
        (FIRST_PORT + f / CLIENT_IPS) as u16,
    )
}

/// Client address and port of new connection `k`.
#[inline(always)]
pub(super) fn newconn_addr(k: u64) -> (u32, u16) {
    let ip = NEW_BASE + (k % CLIENT_IPS as u64) as u32;
    let port = FIRST_PORT + ((k / CLIENT_IPS as u64) % PORTS as u64) as u32;
    (ip, port as u16)
}

/// The queue a NIC configured as the director configures its client-facing
/// ports would put a client's frame on: DPDK's own Toeplitz hash
/// (`rte_softrss`) over the source address and port with the director's
/// key, the other fields zeroed (`L3_SRC_ONLY | L4_SRC_ONLY`), then entry
/// `hash % RETA_SIZE` of the director's default RETA (`i % queues`).
/// memif has no RSS, so the generator plays the NIC; it does not call the
/// director's owner function, so a director whose ownership disagrees
/// with its RSS shows up as hand-offs.
pub(super) fn rss_queue(src: u32, sport: u16, queues: usize) -> usize {
    let mut tuple = [src, 0, u32::from(sport) << 16];
    // SAFETY: a pure function over 3 words and a 40-byte key (>= 16 bytes).
    let h = unsafe { dpdk_ffi::rvs_softrss(tuple.as_mut_ptr(), 3, rss::KEY.as_ptr()) };
    usize::from(rss::reta_entry(h as usize % rss::RETA_SIZE, queues))
}

/// [`rss_queue`] of an IPv6 client (`frames6::client6(src)`): the IPv6
/// RSS input (source address as four words, destination zeroed, source
/// port) under the same key and RETA; the director configures NICs with
/// IPv6 RSS to hash it so (`engine::dataplane::rss`).
pub(super) fn rss_queue6(src: u32, sport: u16, queues: usize) -> usize {
    let p = &frames6::CLIENT6_PREFIX;
    let w = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let mut tuple = [w(0), w(4), w(8), src, 0, 0, 0, 0, u32::from(sport) << 16];
    // SAFETY: a pure function over 9 words and a 40-byte key (>= 4 * (9 + 1)).
    let h = unsafe { dpdk_ffi::rvs_softrss(tuple.as_mut_ptr(), 9, rss::KEY.as_ptr()) };
    usize::from(rss::reta_entry(h as usize % rss::RETA_SIZE, queues))
}
