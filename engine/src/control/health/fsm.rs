//! The fall/rise state machine of one checked server (keepalived's).
//!
//! A server starts up (keepalived's default: it is in the pool until
//! `fall` consecutive checks fail). While up, `fall` consecutive failures
//! mark it down and a success resets the count; while down, `rise`
//! consecutive successes mark it up and a failure resets the count.
//!
//! With keepalived's `alpha` a server starts down instead and its first
//! success brings it up (whatever `rise` is): a new server takes no
//! connection before it has answered once.

/// Consecutive results of one server's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fsm {
    up: bool,
    /// Consecutive failures while up.
    fails: u32,
    /// Consecutive successes while down.
    oks: u32,
    fall: u32,
    rise: u32,
    /// Down since the start (`alpha`) with no success yet: one brings it up.
    awaiting_first: bool,
}

impl Fsm {
    /// Up, with no result yet. `fall` and `rise` below 1 count as 1.
    pub fn new(fall: u32, rise: u32) -> Fsm {
        Fsm {
            up: true,
            fails: 0,
            oks: 0,
            fall: fall.max(1),
            rise: rise.max(1),
            awaiting_first: false,
        }
    }

    /// Down, with no result yet (`alpha`): the first success brings it up.
    pub fn new_alpha(fall: u32, rise: u32) -> Fsm {
        Fsm {
            up: false,
            awaiting_first: true,
            ..Fsm::new(fall, rise)
        }
    }

    /// Down since the start (`alpha`) and never passed a check yet.
    pub fn awaiting_first(&self) -> bool {
        self.awaiting_first
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Consecutive failures counted towards `fall` (while up).
    pub fn fails(&self) -> u32 {
        self.fails
    }

    /// Consecutive successes counted towards `rise` (while down).
    pub fn oks(&self) -> u32 {
        self.oks
    }

    pub fn fall(&self) -> u32 {
        self.fall
    }

    pub fn rise(&self) -> u32 {
        self.rise
    }

    /// New thresholds; the state stays, the counts restart.
    pub fn set_thresholds(&mut self, fall: u32, rise: u32) {
        self.fall = fall.max(1);
        self.rise = rise.max(1);
        self.fails = 0;
        self.oks = 0;
    }

    /// Feeds one check result. Returns the new state (`true` = up) when
    /// this result changes it.
    pub fn feed(&mut self, ok: bool) -> Option<bool> {
        match (self.up, ok) {
            (true, true) => {
                self.fails = 0;
                None
            }
            (true, false) => {
                self.fails += 1;
                if self.fails >= self.fall {
                    self.up = false;
                    self.fails = 0;
                    self.oks = 0;
                    Some(false)
                } else {
                    None
                }
            }
            (false, true) => {
                self.oks += 1;
                if self.oks >= self.rise || self.awaiting_first {
                    self.awaiting_first = false;
                    self.up = true;
                    self.fails = 0;
                    self.oks = 0;
                    Some(true)
                } else {
                    None
                }
            }
            (false, false) => {
                self.oks = 0;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a string of results (`+` ok, `-` fail) and writes the state
    /// after each (`U` up, `D` down), lowercase where it changed.
    fn run(fsm: &mut Fsm, results: &str) -> String {
        results
            .chars()
            .map(|c| {
                let changed = fsm.feed(c == '+').is_some();
                match (fsm.is_up(), changed) {
                    (true, false) => 'U',
                    (true, true) => 'u',
                    (false, false) => 'D',
                    (false, true) => 'd',
                }
            })
            .collect()
    }

    #[test]
    fn starts_up() {
        let f = Fsm::new(3, 2);
        assert!(f.is_up());
        assert_eq!((f.fails(), f.oks()), (0, 0));
    }

    #[test]
    fn alpha_starts_down_and_the_first_success_brings_it_up() {
        let mut f = Fsm::new_alpha(2, 3);
        assert!(!f.is_up() && f.awaiting_first());
        assert_eq!(run(&mut f, "--+"), "DDu", "one success, not rise = 3");
        assert!(!f.awaiting_first());
        // from then on the usual thresholds
        assert_eq!(run(&mut f, "--"), "Ud");
        assert_eq!(run(&mut f, "+++"), "DDu");
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let mut f = Fsm::new(3, 2);
        // two failures, a success resets, then three in a row
        assert_eq!(run(&mut f, "--+---"), "UUUUUd");
        assert!(!f.is_up());
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let mut f = Fsm::new(1, 3);
        assert_eq!(run(&mut f, "-"), "d");
        // two successes, a failure resets, then three in a row
        assert_eq!(run(&mut f, "++-+++"), "DDDDDu");
        assert!(f.is_up());
        // and down again after one failure (fall 1)
        assert_eq!(run(&mut f, "+-"), "Ud");
    }

    #[test]
    fn fall_and_rise_of_one() {
        let mut f = Fsm::new(1, 1);
        assert_eq!(run(&mut f, "-+-+"), "dudu");
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut f = Fsm::new(0, 0);
        assert_eq!((f.fall(), f.rise()), (1, 1));
        assert_eq!(run(&mut f, "-+"), "du");
    }

    #[test]
    fn new_thresholds_keep_the_state_and_restart_the_counts() {
        let mut f = Fsm::new(3, 2);
        assert_eq!(run(&mut f, "--"), "UU");
        f.set_thresholds(2, 2);
        assert_eq!(
            run(&mut f, "-"),
            "U",
            "the two earlier failures no longer count"
        );
        assert_eq!(run(&mut f, "-"), "d");
        f.set_thresholds(3, 3);
        assert!(!f.is_up());
        assert_eq!(run(&mut f, "+++"), "DDu");
    }

    #[test]
    fn long_runs_do_not_overflow_or_flap() {
        let mut f = Fsm::new(2, 2);
        let s: String = std::iter::repeat_n('-', 10_000).collect();
        let out = run(&mut f, &s);
        assert_eq!(out.matches('d').count(), 1);
        let s: String = std::iter::repeat_n('+', 10_000).collect();
        let out = run(&mut f, &s);
        assert_eq!(out.matches('u').count(), 1);
    }
}
