//! The worker poll loop: rx burst -> process -> tx burst, as DPDK's l3fwd.
//!
//! Everything that decides lives in `Pipeline` (no DPDK types); this file
//! only moves mbufs between queues, rings and the pipeline.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use dpdk_ffi::rte_mbuf;

use super::counters::Drop;
use super::mbuf::{Mbuf, Pool};
use super::pipeline::{FragHold, Frame, Inspected, Pipeline, Verdict};
use super::poll_cost::EmptyPolls;
use super::port::Port;
use super::ring::Ring;
use super::snapshot::Snapshot;
use super::Shared;

pub const BURST: usize = 32;
const TX_BUF: usize = 64;
/// The exception path's TAPs are polled at most once per this many
/// microseconds. A TAP's rx burst is a readv syscall (a few microseconds,
/// thousands of cycles): polled every 16 loops, as before, one in 16 of a
/// busy worker's loops carried one, whatever the packet rate. Kernel traffic (ARP, ping, BGP, health checks) waits at most this
/// long, and one poll takes up to a burst of it.
const KERNEL_POLL_US: u64 = 100;
/// Connection-table slots examined for expiry once per millisecond (a full
/// sweep of 1M slots takes 4 s; an expired entry is a miss for lookups
/// anyway, the sweep only reclaims it and gives back its count).
const EXPIRE_BUDGET: usize = 256;

/// One port's rx burst of a loop.
struct RxBurst {
    len: usize,
    pkts: [*mut rte_mbuf; BURST],
}

impl RxBurst {
    const EMPTY: RxBurst = RxBurst {
        len: 0,
        pkts: [std::ptr::null_mut(); BURST],
    };
}

/// Frames waiting for tx burst on one port.
struct TxBuf {
    len: usize,
    pkts: [*mut rte_mbuf; TX_BUF],
}

pub struct Worker {
    pub id: usize,
    /// The configured ports (indexes as in the snapshot), then their
    /// exception-path TAPs.
    pub ports: Vec<Port>,
    /// `kernel_of[i]`: index in `ports` of port i's TAP.
    pub kernel_of: Vec<Option<usize>>,
    /// `port_of_tap[j]`: for a TAP at index j, the port it belongs to.
    pub port_of_tap: Vec<Option<usize>>,
    /// `work_out[w]`: flows owned by worker w (None for ourselves).
    pub work_out: Vec<Option<Arc<Ring>>>,
    /// `work_in[w]`: flows worker w hands us.
    pub work_in: Vec<Option<Arc<Ring>>>,
    /// `tx_out[w]`: frames for a port queue that worker w owns.
    pub tx_out: Vec<Option<Arc<Ring>>>,
    pub tx_in: Vec<Option<Arc<Ring>>>,
    pub pool: Pool,
    pub pipeline: Pipeline,
    pub shared: Arc<Shared>,
}

impl Worker {
    /// Runs until the control thread sets `stop`.
    pub fn run(mut self) {
        let hz = super::eal::tsc_hz().max(1000);
        let per_ms = hz / 1000;
        let mut snap: Arc<Snapshot> = self.shared.snapshot.load_full();
        let mut gen = snap.generation;
        self.pipeline.on_snapshot(&snap);
        let mut tx: Vec<TxBuf> = (0..self.ports.len())
            .map(|_| TxBuf {
                len: 0,
                pkts: [std::ptr::null_mut(); TX_BUF],
            })
            .collect();
        // The handed-over and tx-owner rings' bursts.
        let mut burst: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        let mut mbufs: [Option<Mbuf>; BURST] = [const { None }; BURST];
        let mut insp: [Inspected; BURST] = [Inspected::EMPTY; BURST];
        let mut dump_seen = self.shared.conn_dump.current();
        // Later fragments waiting for their first (pipeline `frag` module).
        let mut hold: FragHold<Mbuf> = FragHold::new();
        tracing::info!(
            worker = self.id,
            lcore = super::lcore_id(),
            "worker started"
        );
        // The incoming rings are only read here: take them out of `self` so
        // the loop borrows them while `handle` borrows `self` mutably.
        let work_in = std::mem::take(&mut self.work_in);
        let tx_in = std::mem::take(&mut self.tx_in);
        let kernel_poll_cycles = hz / 1_000_000 * KERNEL_POLL_US;
        let mut last_kernel_poll = 0u64;
        let mut last_expire_ms = 0u64;
        // Each port's rx burst of this loop (all ports are polled before
        // any frame is processed, so that in a timed loop one rdtsc after
        // each poll times it; see `EmptyPolls` and `account`).
        let mut rx: Vec<RxBurst> = (0..self.ports.len()).map(|_| RxBurst::EMPTY).collect();
        let tsc_cost = (0..64)
            .map(|_| {
                let a = dpdk_ffi::rdtsc();
                dpdk_ffi::rdtsc().wrapping_sub(a)
            })
            .min()
            .unwrap_or(0);
        let mut empty = EmptyPolls::new(self.ports.len(), tsc_cost);
        // The last millisecond the occasional services ran in (below).
        let mut last_service_ms = 0u64;
        // The end of one loop is the start of the next: one rdtsc.
        let mut loop_start = dpdk_ffi::rdtsc();
        // The millisecond clock, without a 64-bit division per loop (some
        // 5% of the loop's own cycles): it moves on when the TSC passes
        // `next_ms_at`.
        let mut now_ms = loop_start / per_ms;
        let mut next_ms_at = (now_ms + 1) * per_ms;
        while !self.shared.stop.load(Relaxed) {
            if loop_start >= next_ms_at {
                now_ms = loop_start / per_ms;
                next_ms_at = (now_ms + 1) * per_ms;
            }
            // Frames this loop takes in (cost accounting, below).
            let mut moved = 0usize;
            // Cycles of this loop's rx polls that returned nothing.
            let mut empty_polls = 0u64;
            let poll_kernel = loop_start.wrapping_sub(last_kernel_poll) >= kernel_poll_cycles;
            if poll_kernel {
                last_kernel_poll = loop_start;
            }
            // Every port's rx burst first. In a timed loop each is timed by
            // the rdtsc after it (the one before is the previous poll's,
            // or the loop's start: the previous loop's end); in the others
            // an empty poll counts its port's sampled cost.
            let timed = empty.timed();
            let mut t = loop_start;
            for (pi, b) in rx.iter_mut().enumerate() {
                b.len = 0;
                if self.id >= self.ports[pi].rx_queues as usize {
                    continue;
                }
                // A TAP's rx burst is a readv syscall: poll the exception
                // path only every KERNEL_POLL_US.
                if self.port_of_tap[pi].is_some() && !poll_kernel {
                    continue;
                }
                // SAFETY: port/queue were set up for this worker; the
                // burst has room for BURST pointers.
                b.len = unsafe {
                    dpdk_ffi::rvs_eth_rx_burst(
                        self.ports[pi].id,
                        self.id as u16,
                        b.pkts.as_mut_ptr(),
                        BURST as u16,
                    )
                } as usize;
                if timed {
                    let after = dpdk_ffi::rdtsc();
                    if b.len == 0 {
                        empty.sample(pi, after.wrapping_sub(t));
                    }
                    t = after;
                }
                if b.len == 0 {
                    empty_polls += empty.cost[pi];
                }
                moved += b.len;
            }
            // A new configuration is picked up between bursts.
            if self.shared.generation.load(Relaxed) != gen {
                snap = self.shared.snapshot.load_full();
                gen = snap.generation;
                self.pipeline.on_snapshot(&snap);
            }
            // [ha]: role, synced connections to install, bulk walk.
            self.pipeline.ha_poll(&snap, now_ms);

            for (pi, b) in rx.iter().enumerate() {
                let n = b.len;
                if n == 0 {
                    continue;
                }
                let burst = &b.pkts;
                if let Some(out) = self.port_of_tap[pi] {
                    // What the kernel sends goes out its port as it is.
                    self.pipeline.stats.from_kernel.add(n as u64);
                    for p in burst.iter().take(n) {
                        // SAFETY: rx burst returned n valid mbufs we now own.
                        if let Some(m) = unsafe { Mbuf::from_raw(*p) } {
                            self.queue_tx(m, out, &mut tx);
                        }
                    }
                    continue;
                }
                self.pipeline.stats.rx_packets.add(n as u64);
                self.pipeline.stats.rx_bursts.inc();
                // Three passes, so that the burst's memory accesses overlap:
                // parse every frame, hash its flow and prefetch its table
                // bucket; read the buckets and prefetch the connection
                // records; process the frames.
                for i in 0..n {
                    // SAFETY: rx burst returned n valid mbufs that we now own.
                    mbufs[i] = unsafe { Mbuf::from_raw(burst[i]) };
                    if i + 1 < n {
                        // SAFETY: burst[i + 1] is a valid mbuf.
                        unsafe { super::mbuf::prefetch_data(burst[i + 1]) };
                    }
                    match &mbufs[i] {
                        Some(m) => self.pipeline.inspect_into(m.data(), &mut insp[i]),
                        None => insp[i] = Inspected::EMPTY,
                    }
                }
                self.pipeline.prefetch_conns(&mut insp[..n]);
                for i in 0..n {
                    if let Some(m) = mbufs[i].take() {
                        self.handle(
                            &snap,
                            m,
                            Some(&insp[i]),
                            pi,
                            now_ms,
                            false,
                            &mut tx,
                            &mut hold,
                        );
                    }
                }
            }

            for ring in work_in.iter().flatten() {
                let n = ring.pop_burst(&mut burst);
                moved += n;
                self.pipeline.stats.handoffs_in.add(n as u64);
                for p in burst.iter().take(n) {
                    // SAFETY: the ring held owned mbufs; we take them over.
                    let Some(m) = (unsafe { Mbuf::from_raw(*p) }) else {
                        continue;
                    };
                    let pi = m.port() as usize;
                    self.handle(&snap, m, None, pi, now_ms, true, &mut tx, &mut hold);
                }
            }
            for ring in tx_in.iter().flatten() {
                let n = ring.pop_burst(&mut burst);
                moved += n;
                for p in burst.iter().take(n) {
                    // SAFETY: as above.
                    let Some(m) = (unsafe { Mbuf::from_raw(*p) }) else {
                        continue;
                    };
                    let pi = m.port() as usize;
                    self.queue_tx(m, pi, &mut tx);
                }
            }

            // The occasional services (held fragments whose first arrived,
            // the ARP and ND requests the pipeline queued, gratuitous ARP
            // and unsolicited NA rounds): in a loop that moved nothing,
            // and in the first loop of each millisecond, so a busy loop
            // pays one compare for them. Their frames wait 1 ms at most.
            if moved == 0 || now_ms != last_service_ms {
                last_service_ms = now_ms;
                self.services(&snap, now_ms, &mut tx, &mut hold);
            }
            // The fast path's per-server counts of this loop's frames.
            self.pipeline.end_burst(&snap, now_ms);

            for (pi, buf) in tx.iter_mut().enumerate() {
                self.flush(pi, buf);
            }
            if now_ms != last_expire_ms {
                last_expire_ms = now_ms;
                self.pipeline.housekeeping(&snap, now_ms, EXPIRE_BUDGET);
            }
            // `rvs ctl list --conns`: one load and compare unless asked.
            self.shared.conn_dump.poll(
                self.id,
                &mut dump_seen,
                self.pipeline.dump_tables(),
                now_ms,
            );
            loop_start = self.account(loop_start, moved, empty_polls);
        }
        self.pipeline.flush_counts(&snap);
        for (pi, buf) in tx.iter_mut().enumerate() {
            self.flush(pi, buf);
        }
        // Held fragments go back to the pool before the ports stop.
        hold.clear(&self.pipeline);
        tracing::info!(worker = self.id, "worker stopped");
    }

    /// The loop's occasional work (see `run`): held fragments with a
    /// verdict now, then the frames the pipeline asked for (ARP requests,
    /// gratuitous ARP, neighbour solicitations and advertisements).
    #[inline(never)]
    fn services(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        tx: &mut [TxBuf],
        hold: &mut FragHold<Mbuf>,
    ) {
        if hold.begin_retry(&self.pipeline, now_ms) {
            while let Some((m, pi, v)) = hold.next_ready(&mut self.pipeline, snap, now_ms) {
                self.dispatch(m, pi, v, now_ms, tx, hold);
            }
        }

        while let Some((pi, ip)) = self.pipeline.take_arp_request() {
            let Some(mut m) = Mbuf::alloc(self.pool) else {
                break;
            };
            let len = super::pipeline::ARP_FRAME_LEN;
            if !m.append(len as u16) {
                continue;
            }
            if self.pipeline.build_arp_request(snap, pi, ip, m.data_mut()) {
                self.pipeline.stats.arp_requests_sent.inc();
                self.queue_tx(m, pi, tx);
            }
        }

        while let Some((pi, ip)) = self.pipeline.take_garp(snap) {
            let Some(mut m) = Mbuf::alloc(self.pool) else {
                break;
            };
            if !m.append(super::pipeline::ARP_FRAME_LEN as u16) {
                continue;
            }
            if self.pipeline.build_garp(snap, pi, ip, m.data_mut()) {
                self.queue_tx(m, pi, tx);
            }
        }

        self.send_nd(snap, tx);
    }

    /// Cost accounting (issue 16; `rvs ctl status` shows busy %, frames/s,
    /// cycles per frame and burst size from these): an rdtsc per loop (its
    /// end, which is the next loop's start), one after each port poll in
    /// one loop of `poll_cost::POLL_SAMPLE` (`EmptyPolls`), and a few single-writer
    /// stores per loop. Returns the loop's end. (An rdtsc is some 25
    /// cycles here and does not overlap with other work: at the 1-4 frames
    /// per loop of a modest rate, each one a loop is worth 6-25 cycles
    /// per frame.)
    #[inline]
    fn account(&self, loop_start: u64, moved: usize, empty_polls: u64) -> u64 {
        let end = dpdk_ffi::rdtsc();
        let cycles = end.wrapping_sub(loop_start);
        let s = &self.pipeline.stats;
        s.loop_cycles.add(cycles);
        if moved > 0 {
            s.busy_cycles.add(cycles);
            s.busy_frames.add(moved as u64);
            s.empty_poll_cycles.add(empty_polls.min(cycles));
        }
        end
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn handle(
        &mut self,
        snap: &Snapshot,
        mut m: Mbuf,
        insp: Option<&Inspected>,
        pi: usize,
        now_ms: u64,
        owned: bool,
        tx: &mut [TxBuf],
        hold: &mut FragHold<Mbuf>,
    ) {
        if m.nb_segs() > 1 || pi >= self.ports.len() {
            self.pipeline.stats.count_drop(Drop::MultiSegment);
            return;
        }
        let own;
        let insp = match insp {
            Some(x) => x,
            None => {
                own = self.pipeline.inspect(m.data());
                &own
            }
        };
        let v = self
            .pipeline
            .process_inspected(snap, &mut m, insp, pi, now_ms, owned);
        self.dispatch(m, pi, v, now_ms, tx, hold);
    }

    /// Sends, hands over, holds or frees a frame as the pipeline decided.
    #[inline]
    fn dispatch(
        &mut self,
        mut m: Mbuf,
        pi: usize,
        v: Verdict,
        now_ms: u64,
        tx: &mut [TxBuf],
        hold: &mut FragHold<Mbuf>,
    ) {
        match v {
            Verdict::Tx(out) => self.queue_tx(m, out, tx),
            Verdict::Handoff(w) => {
                m.set_port(pi as u16);
                match self.work_out.get(w).and_then(|r| r.as_ref()) {
                    Some(ring) => match ring.push(m) {
                        Ok(()) => self.pipeline.stats.handoffs_out.inc(),
                        Err(_m) => self.pipeline.stats.count_drop(Drop::HandoffFull),
                    },
                    None => self.pipeline.stats.count_drop(Drop::HandoffFull),
                }
            }
            Verdict::Kernel => match self.kernel_of.get(pi).copied().flatten() {
                Some(tap) => self.queue_tx(m, tap, tx),
                None => self.pipeline.stats.count_drop(Drop::ToDirector),
            },
            Verdict::Hold => hold.hold(&self.pipeline, m, pi, now_ms),
            Verdict::Drop => {}
        }
    }

    /// IPv6 neighbour discovery's own frames: the solicitations the
    /// pipeline queued and the unsolicited advertisements it is due.
    fn send_nd(&mut self, snap: &Snapshot, tx: &mut [TxBuf]) {
        let len = crate::packet::icmpv6::NDP_FRAME_LEN as u16;
        while let Some((pi, ip)) = self.pipeline.take_ns_request() {
            let Some(mut m) = Mbuf::alloc(self.pool) else {
                break;
            };
            if m.append(len) && self.pipeline.build_ns_request(snap, pi, ip, m.data_mut()) {
                self.pipeline.stats.nd_solicits_sent.inc();
                self.queue_tx(m, pi, tx);
            }
        }
        while let Some((pi, ip)) = self.pipeline.take_unsolicited_na(snap) {
            let Some(mut m) = Mbuf::alloc(self.pool) else {
                break;
            };
            if m.append(len)
                && self
                    .pipeline
                    .build_unsolicited_na(snap, pi, ip, m.data_mut())
            {
                self.queue_tx(m, pi, tx);
            }
        }
    }

    /// Queues a frame for port `pi`: on our own TX queue, or through the
    /// worker that owns a queue of a port with fewer queues than workers.
    #[inline]
    fn queue_tx(&mut self, mut m: Mbuf, pi: usize, tx: &mut [TxBuf]) {
        let Some(port) = self.ports.get(pi) else {
            // No such port: the mbuf is freed here, and counted.
            self.pipeline.stats.count_drop(Drop::NoRoute);
            return;
        };
        if self.id < port.tx_queues as usize {
            let buf = &mut tx[pi];
            buf.pkts[buf.len] = m.into_raw();
            buf.len += 1;
            if buf.len == TX_BUF {
                self.flush(pi, buf);
            }
            return;
        }
        let owner = self.id % port.tx_queues as usize;
        m.set_port(pi as u16);
        match self.tx_out.get(owner).and_then(|r| r.as_ref()) {
            Some(ring) => {
                if ring.push(m).is_err() {
                    self.pipeline.stats.count_drop(Drop::TxFull);
                }
            }
            None => self.pipeline.stats.count_drop(Drop::TxFull),
        }
    }

    fn flush(&self, pi: usize, buf: &mut TxBuf) {
        if buf.len == 0 {
            return;
        }
        // SAFETY: the queue belongs to this worker; pkts[..len] are owned mbufs.
        let sent = unsafe {
            dpdk_ffi::rvs_eth_tx_burst(
                self.ports[pi].id,
                self.id as u16,
                buf.pkts.as_mut_ptr(),
                buf.len as u16,
            )
        } as usize;
        self.pipeline.stats.tx_packets.add(sent as u64);
        if sent < buf.len {
            self.pipeline.stats.drops[Drop::TxFull as usize].add((buf.len - sent) as u64);
            // SAFETY: the driver did not take pkts[sent..len]; we still own them.
            unsafe {
                dpdk_ffi::rvs_pktmbuf_free_bulk(
                    buf.pkts.as_mut_ptr().add(sent),
                    (buf.len - sent) as u32,
                )
            };
        }
        buf.len = 0;
    }
}
