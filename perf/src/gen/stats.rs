//! The counters of a phase and its JSON result.

use serde_json::{json, Value};

use super::Gen;
use crate::frames::Bad;

/// The counters of one phase.
#[derive(Default, Clone)]
pub(super) struct PhaseStats {
    pub(super) secs: f64,
    pub(super) tx: u64,
    /// Received inside the measuring window.
    pub(super) rx: u64,
    /// Received during the drain after it.
    pub(super) late: u64,
    pub(super) rx_bytes: u64,
    pub(super) by_kind: [u64; 4],
    /// Ours but from another phase.
    pub(super) stale: u64,
    /// Not ours (ARP excluded).
    pub(super) foreign: u64,
    pub(super) arp: u64,
    /// Send attempts, and those that left frames the DUT's ring could not
    /// take (back-pressure).
    pub(super) iters: u64,
    pub(super) blocked: u64,
    pub(super) checked: u64,
    pub(super) bad: [u64; Bad::ALL.len()],
    /// First few failures, for the report.
    pub(super) bad_examples: Vec<String>,
}

impl Gen {
    pub(super) fn bad_json(&self, st: &PhaseStats) -> Value {
        let mut m = serde_json::Map::new();
        for b in Bad::ALL {
            if st.bad[b as usize] > 0 {
                m.insert(b.name().into(), json!(st.bad[b as usize]));
            }
        }
        Value::Object(m)
    }

    pub(super) fn phase_json(&self, st: &PhaseStats) -> Value {
        let h = &self.hist;
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let secs = st.secs.max(1e-9);
        let got = st.rx + st.late;
        let lost = st.tx.saturating_sub(got);
        let bad: u64 = st.bad.iter().sum();
        // Late frames grouped into events: a gap of more than 1 ms between
        // two late frames starts a new event.
        let gap = self.hz / 1000;
        let mut events: Vec<(u64, u64, u64, u64)> = Vec::new(); // start, end, peak ns, frames
        for &(t, ns) in &self.stalls {
            match events.last_mut() {
                Some(e) if t.wrapping_sub(e.1) <= gap => {
                    e.1 = t;
                    e.2 = e.2.max(ns);
                    e.3 += 1;
                }
                _ => events.push((t, t, ns, 1)),
            }
        }
        let ms = |t: u64| t.wrapping_sub(self.phase_t0) as f64 * 1000.0 / self.hz as f64;
        let mut peak_hist = [0u64; 6];
        for e in &events {
            let us = e.2 / 1000;
            let b = [100u64, 200, 500, 1000, 2000]
                .iter()
                .take_while(|&&hi| us >= hi)
                .count();
            peak_hist[b] += 1;
        }
        let mut top = events.clone();
        top.sort_by_key(|e| std::cmp::Reverse(e.2));
        let stalls = json!({
            "threshold_us": self.stall_ns as f64 / 1000.0,
            "frames": self.stalls.len(),
            "events": events.len(),
            "events_per_s": events.len() as f64 / secs,
            // events by peak latency: <100us, <200, <500, <1000, <2000, more
            "peak_hist_us": peak_hist,
            "worst": top.iter().take(12).map(|e| json!({
                "at_ms": ms(e.0), "span_ms": ms(e.1) - ms(e.0), "peak_us": e.2 as f64 / 1000.0, "frames": e.3,
            })).collect::<Vec<_>>(),
        });
        json!({
            "stalls": stalls,
            "secs": st.secs,
            "tx": st.tx,
            "rx": st.rx,
            "late": st.late,
            "lost": lost,
            "loss": if st.tx > 0 { lost as f64 / st.tx as f64 } else { 0.0 },
            "tx_mpps": st.tx as f64 / secs / 1e6,
            "rx_mpps": st.rx as f64 / secs / 1e6,
            // L2 bits with the FCS, without preamble and inter-frame gap.
            "gbps": (st.rx_bytes + 4 * st.rx) as f64 * 8.0 / secs / 1e9,
            "by_kind": {"syn": st.by_kind[0], "ack": st.by_kind[1], "data": st.by_kind[2], "fin": st.by_kind[3]},
            // Near 1: the DUT's ring was full (DUT-bound). Near 0 at the
            // max rate: the generator could not feed the DUT faster.
            "tx_blocked_frac": if st.iters > 0 { st.blocked as f64 / st.iters as f64 } else { 0.0 },
            "stale": st.stale,
            "foreign": st.foreign,
            "arp": st.arp,
            "checked": st.checked,
            "bad_total": bad,
            "bad": self.bad_json(st),
            "bad_examples": st.bad_examples,
            "lat_us": {
                "count": h.len(),
                "min": h.min() as f64 / 1000.0,
                "mean": h.mean() / 1000.0,
                "p50": us(0.5),
                "p90": us(0.9),
                "p99": us(0.99),
                "p999": us(0.999),
                "max": h.max() as f64 / 1000.0,
            },
        })
    }
}
