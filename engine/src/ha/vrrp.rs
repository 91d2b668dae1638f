//! The VRRPv3 state machine of RFC 5798 §6.4, for one virtual router.
//!
//! Pure: the caller passes the monotonic time (`now_ms`) into every call and
//! gets back [`Action`]s to carry out (send an advert, take or drop the
//! addresses). It never sleeps and never reads a clock, so the unit tests
//! drive every transition with a plain `u64`. The runtime calls
//! [`Vrrp::tick`] no later than [`Vrrp::next_deadline`] and feeds every
//! decoded advert to [`Vrrp::on_advert`].
//!
//! # Timers
//!
//! One timer is armed at a time: `Master_Down_Timer` as backup,
//! `Adver_Timer` as master. All in milliseconds (an interval of `n`
//! centiseconds is `10 n` ms):
//!
//! * `Skew_Time = (256 - priority) * Master_Adver_Interval / 256`, with our
//!   own priority, truncated to whole milliseconds (keepalived computes the
//!   same in microseconds; the difference is below 1 ms);
//! * `Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time`, where
//!   `Master_Adver_Interval` is learned from the master's adverts (initially
//!   our own interval).
//!
//! Example: priority 100, interval 100 ms: skew = 156 * 100 / 256 = 60 ms,
//! master down = 360 ms.
//!
//! # Preemption
//!
//! RFC 5798 lets a backup with `Preempt_Mode` discard adverts from a
//! lower-priority master, so that its `Master_Down_Timer` runs out and it
//! takes over. rvs allows that only when [`Vrrp::preempt_allowed`]:
//! `preempt` is set, the runtime has said the bulk sync of the connection
//! table has arrived ([`Vrrp::set_preempt_ready`]), and `preempt_delay_ms`
//! has passed since we entered Backup. Until then a lower-priority master is
//! accepted like any other, so taking over never loses its connections.
//! A dead master is taken over regardless: the gate only guards preemption.
//!
//! # Filters
//!
//! Before the state machine looks at an advert: with `peers` configured, a
//! source outside them is ignored (`ignored_non_peer`); our own adverts
//! looped back are ignored; another VRID is ignored (`ignored_other_vrid`).

use std::net::Ipv4Addr;

use super::advert::{Advert, INTERVAL_MASK};

/// Static reasons carried by [`Action::Transition`] (for logs and
/// notifications).
pub mod reason {
    pub const START: &str = "start";
    pub const SHUTDOWN: &str = "shutdown";
    /// Backup -> Master: no acceptable advert for the master-down interval.
    pub const MASTER_DOWN: &str = "master down";
    /// Backup -> Master: the master said it is leaving, we waited the skew.
    pub const PRIORITY_ZERO: &str = "master sent priority 0";
    /// Backup -> Master: we discarded a lower-priority master's adverts.
    pub const PREEMPT: &str = "preempting lower priority master";
    /// Master -> Backup: an advert with a higher priority.
    pub const HIGHER_PRIORITY: &str = "preempted by higher priority";
    /// Master -> Backup: same priority, higher primary address.
    pub const HIGHER_ADDRESS: &str = "equal priority, higher address";
}

/// The role of this router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Init,
    Backup,
    Master,
}

impl State {
    /// Lower-case name, as `rvs ctl status` shows it.
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
        }
    }
}

/// Configuration of one virtual router (from `[ha]`).
#[derive(Debug, Clone)]
pub struct VrrpConfig {
    pub vrid: u8,
    /// 1..=254 (255 is the address owner, which a director never is; 0
    /// means "leaving"). Clamped by [`Vrrp::new`].
    pub priority: u8,
    /// Our advertisement interval in centiseconds, 1..=4095. Clamped by
    /// [`Vrrp::new`].
    pub advert_interval_cs: u16,
    pub preempt: bool,
    pub preempt_delay_ms: u64,
    /// Our address on the HA port: the source of our adverts and the tie
    /// breaker between equal priorities.
    pub primary: Ipv4Addr,
    /// Unicast peers; empty means multicast and any source is accepted.
    pub peers: Vec<Ipv4Addr>,
    /// The address list of our adverts.
    pub addrs: Vec<Ipv4Addr>,
}

/// What the runtime must do after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send an advert with this priority (the runtime sends it to
    /// 224.0.0.18 or to every peer). Use [`Vrrp::advert`] to build it.
    SendAdvert { priority: u8 },
    /// The role changed. On `to == Master` the runtime takes the addresses
    /// and sends gratuitous ARP; on leaving Master it drops them.
    Transition {
        from: State,
        to: State,
        reason: &'static str,
    },
}

/// Counters for `rvs ctl status`.
///
/// `adverts_received` counts every advert handed to [`Vrrp::on_advert`],
/// including those then ignored or discarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VrrpCounters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub ignored_non_peer: u64,
    pub ignored_other_vrid: u64,
    /// Discarded by preemption (as backup) or as master.
    pub ignored_lower_priority: u64,
    pub priority_zero_received: u64,
    pub became_master: u64,
    pub became_backup: u64,
}

/// Why the Master_Down_Timer is running, to name the takeover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownCause {
    MasterDown,
    PriorityZero,
    Preempt,
}

/// One VRRP virtual router.
#[derive(Debug, Clone)]
pub struct Vrrp {
    cfg: VrrpConfig,
    state: State,
    /// Learned from the accepted master, centiseconds (>= 1).
    master_adver_cs: u16,
    /// Expiry of the one running timer (Master_Down_Timer as backup,
    /// Adver_Timer as master); meaningless in Init.
    timer_at: u64,
    down_cause: DownCause,
    backup_since: u64,
    preempt_ready: bool,
    master: Option<Ipv4Addr>,
    master_priority: Option<u8>,
    counters: VrrpCounters,
}

fn cs_to_ms(cs: u16) -> u64 {
    u64::from(cs) * 10
}

impl Vrrp {
    /// A router in Init. Priority is clamped to 1..=254 and the interval to
    /// 1..=4095 cs, so that no input can make the timers zero or overflow.
    pub fn new(mut cfg: VrrpConfig) -> Vrrp {
        cfg.priority = cfg.priority.clamp(1, 254);
        cfg.advert_interval_cs = cfg.advert_interval_cs.clamp(1, INTERVAL_MASK);
        Vrrp {
            master_adver_cs: cfg.advert_interval_cs,
            cfg,
            state: State::Init,
            timer_at: 0,
            down_cause: DownCause::MasterDown,
            backup_since: 0,
            preempt_ready: true,
            master: None,
            master_priority: None,
            counters: VrrpCounters::default(),
        }
    }

    /// Init -> Backup, Master_Down_Timer = Master_Down_Interval (we never
    /// own the addresses, so never start as master). No-op unless in Init.
    pub fn start(&mut self, now_ms: u64) -> Vec<Action> {
        if self.state != State::Init {
            return Vec::new();
        }
        self.master_adver_cs = self.cfg.advert_interval_cs;
        self.master = None;
        self.master_priority = None;
        vec![self.enter_backup(now_ms, State::Init, reason::START)]
    }

    /// Feeds one decoded advert from `src`.
    pub fn on_advert(&mut self, now_ms: u64, src: Ipv4Addr, a: &Advert) -> Vec<Action> {
        self.counters.adverts_received += 1;
        if !self.cfg.peers.is_empty() && !self.cfg.peers.contains(&src) {
            self.counters.ignored_non_peer += 1;
            return Vec::new();
        }
        if src == self.cfg.primary {
            // Our own advert, looped back by multicast.
            return Vec::new();
        }
        if a.vrid != self.cfg.vrid {
            self.counters.ignored_other_vrid += 1;
            return Vec::new();
        }
        if a.priority == 0 {
            self.counters.priority_zero_received += 1;
        }
        match self.state {
            State::Init => Vec::new(),
            State::Backup => {
                if a.priority == 0 {
                    self.timer_at = now_ms + self.skew_time_ms();
                    self.down_cause = DownCause::PriorityZero;
                } else if !self.preempt_allowed(now_ms) || a.priority >= self.cfg.priority {
                    self.accept_master(now_ms, src, a);
                } else {
                    self.counters.ignored_lower_priority += 1;
                    self.down_cause = DownCause::Preempt;
                }
                Vec::new()
            }
            State::Master => {
                if a.priority == 0 {
                    self.timer_at = now_ms + cs_to_ms(self.cfg.advert_interval_cs);
                    vec![self.send(self.cfg.priority)]
                } else if a.priority > self.cfg.priority
                    || (a.priority == self.cfg.priority
                        && u32::from(src) > u32::from(self.cfg.primary))
                {
                    let why = if a.priority > self.cfg.priority {
                        reason::HIGHER_PRIORITY
                    } else {
                        reason::HIGHER_ADDRESS
                    };
                    let t = self.enter_backup(now_ms, State::Master, why);
                    self.accept_master(now_ms, src, a);
                    vec![t]
                } else {
                    self.counters.ignored_lower_priority += 1;
                    Vec::new()
                }
            }
        }
    }

    /// Fires the timer if it is due: as master, sends the periodic advert;
    /// as backup, takes over.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        match self.state {
            State::Init => Vec::new(),
            _ if now_ms < self.timer_at => Vec::new(),
            State::Master => {
                self.timer_at = now_ms + cs_to_ms(self.cfg.advert_interval_cs);
                vec![self.send(self.cfg.priority)]
            }
            State::Backup => {
                let why = match self.down_cause {
                    DownCause::MasterDown => reason::MASTER_DOWN,
                    DownCause::PriorityZero => reason::PRIORITY_ZERO,
                    DownCause::Preempt => reason::PREEMPT,
                };
                let advert = self.send(self.cfg.priority);
                self.state = State::Master;
                self.counters.became_master += 1;
                self.master = Some(self.cfg.primary);
                self.master_priority = Some(self.cfg.priority);
                self.master_adver_cs = self.cfg.advert_interval_cs;
                self.timer_at = now_ms + cs_to_ms(self.cfg.advert_interval_cs);
                vec![
                    advert,
                    Action::Transition {
                        from: State::Backup,
                        to: State::Master,
                        reason: why,
                    },
                ]
            }
        }
    }

    /// Leaves the group: a master first sends priority 0 so that a backup
    /// takes over after its skew instead of the whole master-down interval.
    pub fn shutdown(&mut self, _now_ms: u64) -> Vec<Action> {
        let from = self.state;
        let mut out = Vec::new();
        match from {
            State::Init => return out,
            State::Master => out.push(self.send(0)),
            State::Backup => {}
        }
        self.state = State::Init;
        self.master = None;
        self.master_priority = None;
        out.push(Action::Transition {
            from,
            to: State::Init,
            reason: reason::SHUTDOWN,
        });
        out
    }

    /// Bulk-sync gate: preemption of a lower-priority master is allowed
    /// only while this is true (default true).
    pub fn set_preempt_ready(&mut self, ready: bool) {
        self.preempt_ready = ready;
    }

    /// `preempt && preempt_ready && now >= entered Backup + preempt_delay`.
    pub fn preempt_allowed(&self, now_ms: u64) -> bool {
        self.cfg.preempt
            && self.preempt_ready
            && now_ms >= self.backup_since.saturating_add(self.cfg.preempt_delay_ms)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The current master: ourselves as master, the source of the last
    /// accepted advert as backup (None before the first one, and in Init).
    pub fn master(&self) -> Option<Ipv4Addr> {
        self.master
    }

    pub fn master_priority(&self) -> Option<u8> {
        self.master_priority
    }

    pub fn counters(&self) -> VrrpCounters {
        self.counters
    }

    /// Our advert with `priority` (ours, or 0 when leaving).
    pub fn advert(&self, priority: u8) -> Advert {
        Advert {
            vrid: self.cfg.vrid,
            priority,
            interval_cs: self.cfg.advert_interval_cs,
            addrs: self.cfg.addrs.clone(),
        }
    }

    /// When [`tick`](Self::tick) must next be called (None in Init).
    pub fn next_deadline(&self) -> Option<u64> {
        match self.state {
            State::Init => None,
            State::Backup | State::Master => Some(self.timer_at),
        }
    }

    /// Our (clamped) priority.
    pub fn priority(&self) -> u8 {
        self.cfg.priority
    }

    /// The configuration, after clamping.
    pub fn config(&self) -> &VrrpConfig {
        &self.cfg
    }

    /// The learned Master_Adver_Interval, in centiseconds.
    pub fn master_adver_interval_cs(&self) -> u16 {
        self.master_adver_cs
    }

    /// Skew_Time in ms for our priority and the learned interval.
    pub fn skew_time_ms(&self) -> u64 {
        (256 - u64::from(self.cfg.priority)) * cs_to_ms(self.master_adver_cs) / 256
    }

    /// Master_Down_Interval in ms.
    pub fn master_down_interval_ms(&self) -> u64 {
        3 * cs_to_ms(self.master_adver_cs) + self.skew_time_ms()
    }

    fn send(&mut self, priority: u8) -> Action {
        self.counters.adverts_sent += 1;
        Action::SendAdvert { priority }
    }

    fn enter_backup(&mut self, now_ms: u64, from: State, why: &'static str) -> Action {
        self.state = State::Backup;
        self.counters.became_backup += 1;
        self.backup_since = now_ms;
        self.down_cause = DownCause::MasterDown;
        self.timer_at = now_ms + self.master_down_interval_ms();
        Action::Transition {
            from,
            to: State::Backup,
            reason: why,
        }
    }

    /// Learn the master's interval and restart Master_Down_Timer.
    fn accept_master(&mut self, now_ms: u64, src: Ipv4Addr, a: &Advert) {
        self.master_adver_cs = a.interval_cs.clamp(1, INTERVAL_MASK);
        self.master = Some(src);
        self.master_priority = Some(a.priority);
        self.down_cause = DownCause::MasterDown;
        self.timer_at = now_ms + self.master_down_interval_ms();
    }
}

#[cfg(test)]
mod tests;
