//! Worker cost accounting, the operator's view (VPP's `show runtime`):
//! how busy each worker is and what a frame costs it, from the TSC cycles
//! the workers count once per poll loop (`WorkerStats::loop_cycles` etc.).
//!
//! The control thread samples the counters about once a second (with the
//! per-server rates); `rvs ctl status` shows the last interval's figures and
//! the totals since start, Prometheus the raw counters.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::dataplane::counters::WorkerStats;

/// One worker's cost: the last sampling interval, and totals since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerCost {
    /// Share of the poll loop's cycles spent in loops that moved frames
    /// (0..100): 100 means the worker cannot keep up with more.
    pub busy_pct: f64,
    /// Frames taken in per second (from ports, TAPs and other workers).
    pub frames_per_sec: f64,
    /// Busy cycles per frame, less the busy loops' empty rx polls: what a
    /// frame costs, counted as testpmd's `--record-core-cycles` counts
    /// (only polls that returned frames), the figure the benchmark compares
    /// with testpmd's (`perf/bench.sh`).
    pub cycles_per_frame: f64,
    /// Frames per non-empty port rx burst (32 is the most).
    pub avg_burst: f64,
    /// Totals since start (the Prometheus counters).
    pub loop_cycles: u64,
    pub busy_cycles: u64,
    pub busy_frames: u64,
    pub rx_bursts: u64,
    /// Of `busy_cycles`, those spent in rx polls that returned nothing.
    #[serde(default)]
    pub empty_poll_cycles: u64,
}

/// The counters one sample reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Raw {
    pub loop_cycles: u64,
    pub busy_cycles: u64,
    pub busy_frames: u64,
    pub rx_packets: u64,
    pub rx_bursts: u64,
    pub empty_poll_cycles: u64,
}

impl Raw {
    pub fn of(w: &WorkerStats) -> Raw {
        Raw {
            loop_cycles: w.loop_cycles.get(),
            busy_cycles: w.busy_cycles.get(),
            busy_frames: w.busy_frames.get(),
            rx_packets: w.rx_packets.get(),
            rx_bursts: w.rx_bursts.get(),
            empty_poll_cycles: w.empty_poll_cycles.get(),
        }
    }

    /// The interval from `prev` to `self`, `ms` milliseconds long.
    pub fn cost_since(self, prev: Raw, ms: u64) -> WorkerCost {
        let d = |a: u64, b: u64| a.wrapping_sub(b) as f64;
        let loops = d(self.loop_cycles, prev.loop_cycles);
        let busy = d(self.busy_cycles, prev.busy_cycles);
        let frames = d(self.busy_frames, prev.busy_frames);
        let rx = d(self.rx_packets, prev.rx_packets);
        let bursts = d(self.rx_bursts, prev.rx_bursts);
        let empty = d(self.empty_poll_cycles, prev.empty_poll_cycles);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        WorkerCost {
            busy_pct: 100.0 * ratio(busy, loops),
            frames_per_sec: ratio(frames * 1000.0, ms as f64),
            cycles_per_frame: ratio(busy - empty, frames),
            avg_burst: ratio(rx, bursts),
            loop_cycles: self.loop_cycles,
            busy_cycles: self.busy_cycles,
            busy_frames: self.busy_frames,
            rx_bursts: self.rx_bursts,
            empty_poll_cycles: self.empty_poll_cycles,
        }
    }
}

/// The previous sample and the figures of the last interval.
#[derive(Default)]
pub struct CostSampler {
    prev: Option<(Instant, Vec<Raw>)>,
    last: Vec<WorkerCost>,
}

impl CostSampler {
    /// Reads every worker's counters; with the previous sample, computes
    /// the interval's figures.
    pub fn sample<'a>(&mut self, workers: impl IntoIterator<Item = &'a WorkerStats>, now: Instant) {
        let raws: Vec<Raw> = workers.into_iter().map(Raw::of).collect();
        if let Some((then, prev)) = &self.prev {
            let ms = now.saturating_duration_since(*then).as_millis() as u64;
            self.last = raws
                .iter()
                .enumerate()
                .map(|(i, r)| r.cost_since(prev.get(i).copied().unwrap_or(*r), ms))
                .collect();
        }
        self.prev = Some((now, raws));
    }

    /// Worker `id`'s figures: the last interval's (zero before the second
    /// sample), and the totals as they are now.
    pub fn view(&self, id: usize, w: &WorkerStats) -> WorkerCost {
        let now = Raw::of(w);
        WorkerCost {
            loop_cycles: now.loop_cycles,
            busy_cycles: now.busy_cycles,
            busy_frames: now.busy_frames,
            rx_bursts: now.rx_bursts,
            empty_poll_cycles: now.empty_poll_cycles,
            ..self.last.get(id).copied().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn interval_figures() {
        let prev = Raw {
            loop_cycles: 1_000,
            busy_cycles: 500,
            busy_frames: 10,
            rx_packets: 10,
            rx_bursts: 1,
            empty_poll_cycles: 100,
        };
        let now = Raw {
            loop_cycles: 1_000 + 3_000_000,
            busy_cycles: 500 + 750_000,
            busy_frames: 10 + 5_000,
            rx_packets: 10 + 4_800,
            rx_bursts: 1 + 200,
            empty_poll_cycles: 100 + 50_000,
        };
        let c = now.cost_since(prev, 500);
        assert_eq!(c.busy_pct, 25.0);
        assert_eq!(c.frames_per_sec, 10_000.0);
        // (750,000 busy - 50,000 in empty polls) / 5,000 frames
        assert_eq!(c.cycles_per_frame, 140.0);
        assert_eq!(c.avg_burst, 24.0);
        assert_eq!(c.busy_cycles, 750_500);
    }

    #[test]
    fn idle_worker_is_zero_not_nan() {
        let r = Raw::default();
        let c = r.cost_since(r, 0);
        assert_eq!(c, WorkerCost::default());
    }

    #[test]
    fn sampler_uses_the_last_interval() {
        let w = WorkerStats::default();
        let mut s = CostSampler::default();
        let t0 = Instant::now();
        s.sample([&w], t0);
        assert_eq!(s.view(0, &w), WorkerCost::default());
        w.loop_cycles.add(1_000);
        w.busy_cycles.add(400);
        w.empty_poll_cycles.add(40);
        w.busy_frames.add(4);
        w.rx_packets.add(4);
        w.rx_bursts.add(2);
        s.sample([&w], t0 + Duration::from_secs(1));
        let c = s.view(0, &w);
        assert_eq!(c.busy_pct, 40.0);
        assert_eq!(c.frames_per_sec, 4.0);
        assert_eq!(c.cycles_per_frame, 90.0);
        assert_eq!(c.avg_burst, 2.0);
        // An idle second: the interval is idle, the totals stay.
        s.sample([&w], t0 + Duration::from_secs(2));
        let c = s.view(0, &w);
        assert_eq!((c.busy_pct, c.busy_frames), (0.0, 4));
        // Totals are read when asked, not at the last sample.
        w.busy_frames.add(3);
        assert_eq!(s.view(0, &w).busy_frames, 7);
        let other = WorkerStats::default();
        assert_eq!(s.view(7, &other), WorkerCost::default());
    }
}
