//! The phases of a run (probe, open, and the timed ones) and the send loop.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use dpdk_ffi::{rdtsc, rte_mbuf};
use serde_json::{json, Value};

use super::source::{rss_queue, rss_queue6, Source, Space};
use super::stats::PhaseStats;
use super::{frame_mut, free_all, Gen, BURST, LAT_SAMPLE_FAST};
use crate::frames::ack_word;

impl Gen {
    /// Sends SYNs of distinct probe flows until a whole round reaches the
    /// server side (every real server's MAC is resolved by then).
    pub(super) fn probe(&mut self, phase: u8) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.ready_timeout);
        let n = (8 * self.ck.server_macs.len()).min(256) as u32;
        let t0 = Instant::now();
        for round in 0.. {
            let src = Source::Probe { round, n, i: 0 };
            let st = self.run_phase(phase, Space::Probe, src, Some(20_000.0), 0.05, 0.1);
            if st.rx + st.late >= u64::from(n) && st.bad.iter().sum::<u64>() == 0 {
                self.log(&format!(
                    "DUT forwards (probe round {round}, {:.2} s)",
                    t0.elapsed().as_secs_f64()
                ));
                return Ok(
                    json!({"rounds": round + 1, "secs": t0.elapsed().as_secs_f64(), "bad": self.bad_json(&st)}),
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the DUT did not forward the probes within {} s (last round {}/{} received, bad {:?}, {:?})",
                    self.o.ready_timeout,
                    st.rx + st.late,
                    n,
                    st.bad,
                    st.bad_examples
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        unreachable!()
    }

    /// SYN + ACK for every flow; up to 4 passes over the flows whose SYN did
    /// not come through.
    pub(super) fn open(&mut self, phase: u8) -> Result<Value> {
        let t0 = Instant::now();
        let mut list: Vec<u32> = Vec::new();
        let mut passes = 0;
        let mut sent = 0;
        loop {
            passes += 1;
            let n = if list.is_empty() {
                self.flows
            } else {
                list.len() as u32
            };
            let src = Source::Open {
                list: std::mem::take(&mut list),
                all: self.flows,
                i: 0,
                second: false,
            };
            // Long enough for the whole pass at >= 0.5 Mpps; ends when done.
            let secs = 10.0 + f64::from(n) * 2.0 / 500_000.0;
            let st = self.run_phase(phase, Space::Flows, src, None, secs, 0.2);
            sent += st.tx;
            list = (0..self.flows).filter(|&f| !self.is_open(f)).collect();
            if list.is_empty() || passes == 4 {
                break;
            }
        }
        let opened = self.flows as usize - list.len();
        let secs = t0.elapsed().as_secs_f64();
        self.log(&format!(
            "opened {opened}/{} flows in {passes} passes, {secs:.2} s",
            self.flows
        ));
        Ok(json!({"flows_opened": opened, "passes": passes, "secs": secs, "sent": sent}))
    }

    pub(super) fn is_open(&self, f: u32) -> bool {
        self.opened[(f / 64) as usize] & (1 << (f % 64)) != 0
    }

    /// Runs one phase: sends from `src` at `rate` packets/s (None: as fast
    /// as the DUT takes them) for `secs` seconds or until `src` ends, then
    /// keeps receiving for `drain` seconds.
    pub(super) fn run_phase(
        &mut self,
        phase: u8,
        space: Space,
        mut src: Source,
        rate: Option<f64>,
        secs: f64,
        drain: f64,
    ) -> PhaseStats {
        self.phase = phase;
        self.space = space;
        self.st = PhaseStats::default();
        self.hist.reset();
        self.in_window = true;
        for p in &mut self.pending {
            free_all(p);
        }
        let hz = self.hz as f64;
        let per_cycle = rate.map(|r| r / hz);
        self.stalls.clear();
        self.lat_every = if rate.is_some() { 1 } else { LAT_SAMPLE_FAST };
        self.lat_ctr = 0;
        let t0 = rdtsc();
        self.phase_t0 = t0;
        let end = t0 + (secs * hz) as u64;
        let mut made: u64 = 0;
        let mut exhausted = false;
        let mut now = t0;
        while now < end {
            let budget = match per_cycle {
                None => BURST,
                Some(pc) => {
                    let due = ((now - t0) as f64 * pc) as u64;
                    due.saturating_sub(made).min(BURST as u64) as usize
                }
            };
            if !exhausted {
                let n = self.send(&mut src, budget);
                made += n as u64;
                self.st.iters += 1;
                if self.pending.iter().any(|p| !p.is_empty()) {
                    // The DUT's ring is full: the DUT, not the generator,
                    // sets the pace.
                    self.st.blocked += 1;
                }
                if n < budget && self.pending.iter().all(Vec::is_empty) && self.src_done(&src) {
                    exhausted = true;
                }
            } else if self.pending.iter().any(|p| !p.is_empty()) {
                self.send(&mut src, 0);
            } else {
                // Sent everything: wait for the tail only as long as drain.
                let done = now;
                self.in_window = false;
                self.st.secs = (done - t0) as f64 / hz;
                self.drain(drain);
                return std::mem::take(&mut self.st);
            }
            self.poll_rx();
            now = rdtsc();
            if let Some(w) = &mut self.lat_win {
                if now >= w.ends {
                    w.close(now, &self.o.label);
                }
            }
        }
        self.st.secs = (now - t0) as f64 / hz;
        self.in_window = false;
        // What was never taken by the DUT was never sent.
        for p in &mut self.pending {
            free_all(p);
        }
        self.drain(drain);
        std::mem::take(&mut self.st)
    }

    pub(super) fn src_done(&self, src: &Source) -> bool {
        match src {
            Source::Probe { n, i, .. } => i >= n,
            Source::Open { list, all, i, .. } => {
                *i >= if list.is_empty() {
                    *all
                } else {
                    list.len() as u32
                }
            }
            _ => false,
        }
    }

    pub(super) fn drain(&mut self, secs: f64) {
        let end = rdtsc() + (secs * self.hz as f64) as u64;
        while rdtsc() < end {
            self.poll_rx();
        }
    }

    /// Retries what the DUT did not take last time; then builds up to
    /// `budget` new segments. Returns how many new segments were built.
    #[inline]
    pub(super) fn send(&mut self, src: &mut Source, budget: usize) -> usize {
        let mut blocked = false;
        for q in 0..self.queues {
            if self.pending[q].is_empty() {
                continue;
            }
            let p = &mut self.pending[q];
            // SAFETY: queue q of a started port; p holds owned mbufs.
            let n = unsafe {
                dpdk_ffi::rvs_eth_tx_burst(self.client.id, q as u16, p.as_mut_ptr(), p.len() as u16)
            } as usize;
            self.st.tx += n as u64;
            p.drain(..n);
            blocked |= !p.is_empty();
        }
        if blocked || budget == 0 {
            return 0;
        }
        let mut ms: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        // SAFETY: the pool is valid; ms has room for budget <= BURST pointers.
        if unsafe {
            dpdk_ffi::rvs_pktmbuf_alloc_bulk(self.pool.as_ptr(), ms.as_mut_ptr(), budget as u32)
        } != 0
        {
            return 0;
        }
        let tsc = rdtsc();
        let mut built = 0;
        let len = self.tpl.len;
        for &m in ms.iter().take(budget) {
            let Some(p) = src.next() else {
                // SAFETY: an mbuf we allocated and did not use.
                unsafe { dpdk_ffi::rvs_pktmbuf_free(m) };
                continue;
            };
            // SAFETY: a fresh single-segment mbuf with room for a 1518-byte
            // frame (default data room).
            let buf = unsafe {
                (*m).data_len = len as u16;
                (*m).pkt_len = len as u32;
                frame_mut(m)
            };
            self.tpl.write(
                buf,
                p.kind,
                p.src,
                p.sport,
                p.seq,
                ack_word(self.phase, p.kind),
                tsc,
            );
            let q = if self.queues <= 1 {
                0
            } else if self.ck.expect.ipv6() {
                rss_queue6(p.src, p.sport, self.queues)
            } else {
                rss_queue(p.src, p.sport, self.queues)
            };
            self.pending[q].push(m);
            built += 1;
        }
        for q in 0..self.queues {
            let p = &mut self.pending[q];
            if p.is_empty() {
                continue;
            }
            // SAFETY: as above.
            let n = unsafe {
                dpdk_ffi::rvs_eth_tx_burst(self.client.id, q as u16, p.as_mut_ptr(), p.len() as u16)
            } as usize;
            self.st.tx += n as u64;
            p.drain(..n);
        }
        built
    }
}
