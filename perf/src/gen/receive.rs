//! Receiving what the DUT forwards: counting, latency, byte-by-byte checks.

use std::net::Ipv4Addr;

use dpdk_ffi::{rdtsc, rte_mbuf};

use super::neighbour::is_ndp;
use super::source::{flow_addr, Space, CLIENT_IPS, NEW_BASE, PROBE_BASE};
use super::{frame, Gen, BURST, MAX_STALL_SAMPLES};
use crate::frames::{self, read_stamp, Bad, Kind};

impl Gen {
    /// One rx burst on every queue of both ports.
    #[inline]
    pub(super) fn poll_rx(&mut self) {
        let mut burst: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        // The client side only carries ARP (and stale frames): every 4th
        // poll is plenty, and leaves the cycles to the forwarded traffic.
        self.poll_ctr = self.poll_ctr.wrapping_add(1);
        let sides: &[(u16, bool)] = if self.poll_ctr.is_multiple_of(4) {
            &[(self.server.id, true), (self.client.id, false)]
        } else {
            &[(self.server.id, true)]
        };
        for &(port, server_side) in sides {
            for q in 0..self.queues {
                // SAFETY: queue q of a started port; burst has room for BURST.
                let n = unsafe {
                    dpdk_ffi::rvs_eth_rx_burst(port, q as u16, burst.as_mut_ptr(), BURST as u16)
                } as usize;
                if n == 0 {
                    continue;
                }
                let now = rdtsc();
                for &m in burst.iter().take(n) {
                    self.on_frame(m, port, server_side, now);
                }
                if !self.frees.is_empty() {
                    // SAFETY: frees holds owned mbufs, each once.
                    unsafe {
                        dpdk_ffi::rvs_pktmbuf_free_bulk(
                            self.frees.as_mut_ptr(),
                            self.frees.len() as u32,
                        )
                    };
                    self.frees.clear();
                }
            }
        }
    }

    #[inline]
    pub(super) fn on_frame(&mut self, m: *mut rte_mbuf, port: u16, server_side: bool, now: u64) {
        // SAFETY: rx burst gave us this mbuf; its first segment is readable.
        let f = unsafe { frame(m) };
        let Some(s) = read_stamp(f) else {
            if f.len() >= 14 && f[12] == 0x08 && f[13] == 0x06 {
                self.st.arp += 1;
                if self.on_arp(m, port, server_side) {
                    return;
                }
            } else if is_ndp(f) {
                self.st.arp += 1;
                if self.on_ndp(m, port, server_side) {
                    return;
                }
            } else {
                self.st.foreign += 1;
            }
            self.frees.push(m);
            return;
        };
        if s.phase != self.phase || !server_side {
            self.st.stale += 1;
            self.frees.push(m);
            return;
        }
        if self.in_window {
            self.st.rx += 1;
        } else {
            self.st.late += 1;
        }
        if self.in_window {
            self.st.rx_bytes += f.len() as u64;
        }
        self.st.by_kind[s.kind as usize] += 1;
        self.lat_ctr += 1;
        if self.lat_ctr >= self.lat_every {
            self.lat_ctr = 0;
            let cyc = now.wrapping_sub(s.tsc) & s.tsc_mask;
            let ns = (cyc as f64 * self.ns_per_cycle) as u64;
            self.hist.saturating_record(ns);
            if let Some(w) = &mut self.lat_win {
                w.hist.saturating_record(ns);
            }
            if ns >= self.stall_ns && self.stalls.len() < MAX_STALL_SAMPLES {
                self.stalls.push((now, ns));
            }
        }
        if s.kind == Kind::Syn && self.space == Space::Flows && s.seq < self.flows {
            self.opened[(s.seq / 64) as usize] |= 1 << (s.seq % 64);
        }
        self.sample_ctr += 1;
        if self.sample_ctr >= self.o.sample {
            self.sample_ctr = 0;
            self.verify(f, s.seq);
        }
        self.frees.push(m);
    }

    #[cold]
    pub(super) fn verify(&mut self, f: &[u8], seq: u32) {
        let (src, sport) = match self.space {
            Space::Probe => {
                // Probe flows: the port says the round; the checker only
                // needs the address, so read the port back from the frame.
                let ip = PROBE_BASE + seq;
                let Some(sp) = read_sport(f) else {
                    return self.bad(Bad::Parse, f);
                };
                (ip, sp)
            }
            Space::Flows => {
                if seq >= self.flows {
                    return self.bad(Bad::Source, f);
                }
                flow_addr(seq)
            }
            Space::NewConns => {
                // seq holds the low 32 bits of the connection number; the
                // address is a function of it modulo CLIENT_IPS (a power of
                // two), and the port is read back.
                let ip = NEW_BASE + seq % CLIENT_IPS;
                let Some(sp) = read_sport(f) else {
                    return self.bad(Bad::Parse, f);
                };
                (ip, sp)
            }
        };
        self.st.checked += 1;
        match frames::check(&self.ck, f, Ipv4Addr::from(src), sport) {
            Ok(Some(k)) if self.space == Space::Flows => {
                let s = &mut self.sticky[seq as usize];
                if *s == 0 {
                    *s = k as u8 + 1;
                } else if *s != k as u8 + 1 {
                    self.bad(Bad::NotSticky, f);
                }
            }
            Ok(_) => {}
            Err(b) => self.bad(b, f),
        }
    }

    #[cold]
    pub(super) fn bad(&mut self, b: Bad, f: &[u8]) {
        self.st.bad[b as usize] += 1;
        if self.st.bad_examples.len() < 3 {
            let hex: String = f.iter().take(80).map(|x| format!("{x:02x}")).collect();
            self.st.bad_examples.push(format!("{}: {hex}", b.name()));
        }
    }
}

/// TCP source port of a (possibly IPIP) frame.
fn read_sport(f: &[u8]) -> Option<u16> {
    let s = read_stamp(f)?;
    let t = s.tcp_off;
    Some(u16::from_be_bytes([*f.get(t)?, *f.get(t + 1)?]))
}
