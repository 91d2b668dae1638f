//! What a worker's rx poll that returns nothing costs, sampled (cost
//! accounting, issue 16).
//!
//! `rvs ctl status` gives busy cycles per frame less the busy loops' empty
//! polls, as testpmd's `--record-core-cycles` leaves empty polls out.
//! Timing every poll took an rdtsc after each (about 25 cycles here, not
//! overlapped with other work): two per loop of two ports, some 25 cycles
//! per frame at the 2 frames per loop of a modest rate. So one loop in
//! [`POLL_SAMPLE`] times its polls, and every loop counts an empty poll at
//! its port's moving average of those samples.

/// One loop in this many times each of its rx polls (an rdtsc after each;
/// about 25 cycles apiece here, and not overlapped with other work); the
/// other loops count an empty poll at its port's sampled cost
/// ([`EmptyPolls`]).
pub const POLL_SAMPLE: u32 = 16;

/// What an rx poll that returns nothing costs, per port, sampled one loop
/// in [`POLL_SAMPLE`] (cost accounting, issue 16: a busy loop's empty
/// polls are left out of its busy cycles, as testpmd leaves them out).
/// Timing every poll cost two rdtsc per loop, some 25 cycles per frame at
/// the 2 frames per loop of a modest rate.
pub struct EmptyPolls {
    /// Cycles per empty poll of each port, a moving average (1/8 weight).
    pub cost: Vec<u64>,
    /// What two back-to-back rdtsc read apart (the timer's own cost, taken
    /// out of each sample).
    tsc_cost: u64,
    /// Loops until the next timed one.
    countdown: u32,
}

impl EmptyPolls {
    /// For a worker of `ports` ports whose rdtsc costs `tsc_cost` cycles
    /// (what two back-to-back reads are apart, the least of a few tries).
    pub fn new(ports: usize, tsc_cost: u64) -> EmptyPolls {
        EmptyPolls {
            cost: vec![0; ports],
            tsc_cost,
            countdown: 0,
        }
    }

    /// Whether this loop times its polls.
    #[inline(always)]
    pub fn timed(&mut self) -> bool {
        if self.countdown == 0 {
            self.countdown = POLL_SAMPLE - 1;
            true
        } else {
            self.countdown -= 1;
            false
        }
    }

    /// A timed empty poll of port `pi`: `cycles` between the rdtsc before
    /// it and the one after.
    #[inline(always)]
    pub fn sample(&mut self, pi: usize, cycles: u64) {
        let c = cycles.saturating_sub(self.tsc_cost);
        let e = &mut self.cost[pi];
        *e = if *e == 0 { c } else { (*e * 7 + c) / 8 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_loop_in_poll_sample_is_timed_starting_with_the_first() {
        let mut e = EmptyPolls::new(2, 0);
        let timed: Vec<usize> = (0..3 * POLL_SAMPLE as usize)
            .filter(|_| e.timed())
            .collect();
        let every = POLL_SAMPLE as usize;
        assert_eq!(timed, vec![0, every, 2 * every]);
    }

    #[test]
    fn a_sample_less_the_timer_seeds_then_moves_an_eighth_of_the_way() {
        let mut e = EmptyPolls::new(2, 20);
        assert_eq!(e.cost, vec![0, 0]);
        e.sample(1, 100);
        assert_eq!(e.cost, vec![0, 80], "the first sample, less the timer's 20");
        e.sample(1, 180);
        assert_eq!(e.cost[1], (80 * 7 + 160) / 8);
        e.sample(0, 10);
        assert_eq!(e.cost[0], 0, "shorter than the timer: counted as nothing");
    }
}
