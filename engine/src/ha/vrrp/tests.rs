//! Every transition of the state machine, on a fake clock.

use super::*;

const US: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);
const LOW_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 9);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

fn cfg(priority: u8) -> VrrpConfig {
    VrrpConfig {
        vrid: 51,
        priority,
        advert_interval_cs: 10, // 100 ms
        preempt: true,
        preempt_delay_ms: 0,
        primary: US,
        peers: Vec::new(),
        addrs: vec![VIP],
    }
}

fn adv(priority: u8) -> Advert {
    Advert {
        vrid: 51,
        priority,
        interval_cs: 10,
        addrs: vec![VIP],
    }
}

fn tr(from: State, to: State, reason: &'static str) -> Action {
    Action::Transition { from, to, reason }
}

fn send(priority: u8) -> Action {
    Action::SendAdvert { priority }
}

/// A router that has started at `t0` and is backup.
fn backup(c: VrrpConfig, t0: u64) -> Vrrp {
    let mut v = Vrrp::new(c);
    assert_eq!(
        v.start(t0),
        vec![tr(State::Init, State::Backup, reason::START)]
    );
    v
}

/// A router that has become master at 360 (started at 0, priority 100).
fn master(c: VrrpConfig) -> Vrrp {
    let mut v = backup(c, 0);
    let t = v.next_deadline().unwrap();
    assert_eq!(t, 360);
    assert_eq!(
        v.tick(t),
        vec![
            send(100),
            tr(State::Backup, State::Master, reason::MASTER_DOWN)
        ]
    );
    v
}

#[test]
fn state_names() {
    assert_eq!(State::Init.name(), "init");
    assert_eq!(State::Backup.name(), "backup");
    assert_eq!(State::Master.name(), "master");
}

#[test]
fn new_is_init_and_start_goes_backup() {
    let mut v = Vrrp::new(cfg(100));
    assert_eq!(v.state(), State::Init);
    assert_eq!(v.next_deadline(), None);
    assert_eq!(v.master(), None);
    assert_eq!(v.tick(1_000_000), vec![]);
    assert_eq!(v.on_advert(5, PEER, &adv(200)), vec![]);
    assert_eq!(v.state(), State::Init);
    assert_eq!(
        v.start(1000),
        vec![tr(State::Init, State::Backup, reason::START)]
    );
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.master(), None);
    // A second start does nothing.
    assert_eq!(v.start(2000), vec![]);
    assert_eq!(v.next_deadline(), Some(1360));
    assert_eq!(v.counters().became_backup, 1);
}

#[test]
fn timer_figures_are_pinned() {
    // Skew = (256 - p) * interval / 256, truncated to ms.
    // p 100, 100 ms: 156 * 100 / 256 = 60.9 -> 60; down = 300 + 60 = 360.
    let v = Vrrp::new(cfg(100));
    assert_eq!((v.skew_time_ms(), v.master_down_interval_ms()), (60, 360));
    // p 254: 2 * 100 / 256 = 0.78 -> 0; down = 300.
    let v = Vrrp::new(cfg(254));
    assert_eq!((v.skew_time_ms(), v.master_down_interval_ms()), (0, 300));
    // p 1: 255 * 100 / 256 = 99.6 -> 99; down = 399.
    let v = Vrrp::new(cfg(1));
    assert_eq!((v.skew_time_ms(), v.master_down_interval_ms()), (99, 399));
    // p 100 at 1 s (100 cs): 156 * 1000 / 256 = 609.4 -> 609; down = 3609.
    let mut c = cfg(100);
    c.advert_interval_cs = 100;
    let v = Vrrp::new(c);
    assert_eq!((v.skew_time_ms(), v.master_down_interval_ms()), (609, 3609));
}

#[test]
fn backup_becomes_master_after_exactly_master_down_interval() {
    let mut v = backup(cfg(100), 1000);
    assert_eq!(v.next_deadline(), Some(1360));
    assert_eq!(v.tick(1359), vec![]);
    assert_eq!(v.state(), State::Backup);
    assert_eq!(
        v.tick(1360),
        vec![
            send(100),
            tr(State::Backup, State::Master, reason::MASTER_DOWN)
        ]
    );
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.master(), Some(US));
    assert_eq!(v.master_priority(), Some(100));
    assert_eq!(v.next_deadline(), Some(1460));
    let c = v.counters();
    assert_eq!((c.became_master, c.adverts_sent), (1, 1));
}

#[test]
fn accepted_advert_resets_master_down_timer() {
    let mut v = backup(cfg(100), 0);
    assert_eq!(v.on_advert(200, PEER, &adv(150)), vec![]);
    assert_eq!(v.master(), Some(PEER));
    assert_eq!(v.master_priority(), Some(150));
    assert_eq!(v.next_deadline(), Some(560));
    assert_eq!(v.tick(559), vec![]);
    assert_eq!(v.on_advert(559, PEER, &adv(150)), vec![]);
    assert_eq!(v.tick(918), vec![]);
    assert_eq!(v.tick(919).len(), 2);
    assert_eq!(v.counters().adverts_received, 2);
}

#[test]
fn backup_learns_the_masters_interval() {
    let mut v = backup(cfg(100), 0);
    let mut a = adv(200);
    a.interval_cs = 100; // 1 s
    v.on_advert(50, PEER, &a);
    assert_eq!(v.master_adver_interval_cs(), 100);
    // 3 * 1000 + 156 * 1000 / 256 = 3609.
    assert_eq!(v.next_deadline(), Some(50 + 3609));
    assert_eq!(v.tick(50 + 3608), vec![]);
    assert_eq!(
        v.tick(50 + 3609)[1],
        tr(State::Backup, State::Master, reason::MASTER_DOWN)
    );
    // As master it advertises its own interval, not the learned one.
    assert_eq!(v.next_deadline(), Some(50 + 3609 + 100));
    assert_eq!(v.advert(100).interval_cs, 10);
    // An interval of 0 cannot make the timer fire at once.
    let mut v = backup(cfg(100), 0);
    let mut a = adv(200);
    a.interval_cs = 0;
    v.on_advert(10, PEER, &a);
    assert_eq!(v.master_adver_interval_cs(), 1);
    assert_eq!(v.next_deadline(), Some(10 + 30 + 6));
}

#[test]
fn priority_zero_makes_backup_take_over_after_skew() {
    let mut v = backup(cfg(100), 0);
    v.on_advert(100, PEER, &adv(200));
    assert_eq!(v.on_advert(150, PEER, &adv(0)), vec![]);
    assert_eq!(v.next_deadline(), Some(150 + 60));
    assert_eq!(v.tick(209), vec![]);
    assert_eq!(
        v.tick(210),
        vec![
            send(100),
            tr(State::Backup, State::Master, reason::PRIORITY_ZERO)
        ]
    );
    assert_eq!(v.counters().priority_zero_received, 1);
    // Priority 254 has no skew at 100 ms: immediate on the next tick.
    let mut v = backup(cfg(254), 0);
    v.on_advert(100, PEER, &adv(0));
    assert_eq!(v.next_deadline(), Some(100));
    assert_eq!(v.tick(100)[0], send(254));
}

#[test]
fn master_sends_an_advert_every_interval() {
    let mut v = master(cfg(100));
    let mut t = 360;
    for _ in 0..10 {
        assert_eq!(v.next_deadline(), Some(t + 100));
        assert_eq!(v.tick(t + 99), vec![]);
        t += 100;
        assert_eq!(v.tick(t), vec![send(100)]);
    }
    assert_eq!(v.counters().adverts_sent, 11);
    // A late tick sends once and re-arms from now.
    assert_eq!(v.tick(t + 350), vec![send(100)]);
    assert_eq!(v.next_deadline(), Some(t + 450));
}

#[test]
fn master_goes_backup_on_higher_priority() {
    let mut v = master(cfg(100));
    let mut a = adv(101);
    a.interval_cs = 20;
    assert_eq!(
        v.on_advert(400, PEER, &a),
        vec![tr(State::Master, State::Backup, reason::HIGHER_PRIORITY)]
    );
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.master(), Some(PEER));
    assert_eq!(v.master_priority(), Some(101));
    // Learned 200 ms: 600 + 156 * 200 / 256 (121.875) = 721.
    assert_eq!(v.next_deadline(), Some(400 + 721));
    assert_eq!(v.counters().became_backup, 2);
}

#[test]
fn equal_priority_tie_goes_to_the_higher_address() {
    // PEER (.3) > US (.2): we yield.
    let mut v = master(cfg(100));
    assert_eq!(
        v.on_advert(400, PEER, &adv(100)),
        vec![tr(State::Master, State::Backup, reason::HIGHER_ADDRESS)]
    );
    // LOW_ADDR (.1) < US: we stay master.
    let mut v = master(cfg(100));
    assert_eq!(v.on_advert(400, LOW_ADDR, &adv(100)), vec![]);
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.counters().ignored_lower_priority, 1);
}

#[test]
fn master_ignores_lower_priority() {
    let mut v = master(cfg(100));
    assert_eq!(v.on_advert(400, PEER, &adv(99)), vec![]);
    assert_eq!(v.on_advert(401, PEER, &adv(1)), vec![]);
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.master(), Some(US));
    assert_eq!(v.next_deadline(), Some(460));
    assert_eq!(v.counters().ignored_lower_priority, 2);
}

#[test]
fn master_answers_priority_zero_at_once() {
    let mut v = master(cfg(100));
    assert_eq!(v.on_advert(400, PEER, &adv(0)), vec![send(100)]);
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.next_deadline(), Some(500));
    assert_eq!(v.counters().priority_zero_received, 1);
}

#[test]
fn preempt_discards_lower_priority_and_takes_over() {
    let mut v = backup(cfg(100), 0);
    assert!(v.preempt_allowed(0));
    assert_eq!(v.on_advert(100, PEER, &adv(50)), vec![]);
    assert_eq!(v.counters().ignored_lower_priority, 1);
    assert_eq!(v.master(), None, "discarded, not accepted");
    // The timer set at start (360) is not reset by discarded adverts.
    assert_eq!(v.on_advert(200, PEER, &adv(50)), vec![]);
    assert_eq!(v.next_deadline(), Some(360));
    assert_eq!(
        v.tick(360),
        vec![send(100), tr(State::Backup, State::Master, reason::PREEMPT)]
    );
}

#[test]
fn preempt_waits_for_the_delay() {
    let mut c = cfg(100);
    c.preempt_delay_ms = 500;
    let mut v = backup(c, 0);
    // Before the delay: the lower-priority master is accepted, timer reset.
    v.on_advert(100, PEER, &adv(50));
    assert_eq!(v.master(), Some(PEER));
    assert_eq!(v.next_deadline(), Some(460));
    v.on_advert(400, PEER, &adv(50));
    assert_eq!(v.next_deadline(), Some(760));
    assert!(!v.preempt_allowed(499));
    assert!(v.preempt_allowed(500));
    // From the delay on: discarded, and we take over at the running timer.
    v.on_advert(500, PEER, &adv(50));
    v.on_advert(600, PEER, &adv(50));
    assert_eq!(v.counters().ignored_lower_priority, 2);
    assert_eq!(v.next_deadline(), Some(760));
    assert_eq!(v.tick(759), vec![]);
    assert_eq!(
        v.tick(760),
        vec![send(100), tr(State::Backup, State::Master, reason::PREEMPT)]
    );
}

#[test]
fn preempt_delay_counts_from_entering_backup() {
    let mut c = cfg(100);
    c.preempt_delay_ms = 1000;
    let mut v = master(c);
    // Pushed back to backup at 5000 by a higher priority...
    v.on_advert(5000, PEER, &adv(200));
    assert!(!v.preempt_allowed(5999));
    assert!(v.preempt_allowed(6000));
}

#[test]
fn preempt_waits_for_the_bulk_sync_gate() {
    let mut v = backup(cfg(100), 0);
    v.set_preempt_ready(false);
    assert!(!v.preempt_allowed(10_000));
    // A live lower-priority master is accepted for as long as it lives.
    let mut t = 0;
    for _ in 0..50 {
        t += 100;
        assert_eq!(v.tick(t), vec![]);
        assert_eq!(v.on_advert(t, PEER, &adv(50)), vec![]);
        assert_eq!(v.master(), Some(PEER));
        assert_eq!(v.next_deadline(), Some(t + 360));
    }
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.counters().ignored_lower_priority, 0);
    // Bulk sync done: the next advert is discarded, the timer set by the
    // last accepted one runs out.
    v.set_preempt_ready(true);
    let last = t;
    t += 100;
    v.on_advert(t, PEER, &adv(50));
    assert_eq!(v.counters().ignored_lower_priority, 1);
    assert_eq!(v.tick(last + 359), vec![]);
    assert_eq!(
        v.tick(last + 360),
        vec![send(100), tr(State::Backup, State::Master, reason::PREEMPT)]
    );
}

#[test]
fn no_preempt_never_takes_over_from_a_live_lower_master() {
    let mut c = cfg(200);
    c.preempt = false;
    let mut v = backup(c, 0);
    let mut t = 0;
    for _ in 0..100 {
        t += 100;
        assert_eq!(v.tick(t), vec![]);
        v.on_advert(t, PEER, &adv(1));
    }
    assert_eq!(v.state(), State::Backup);
    assert_eq!(v.master(), Some(PEER));
    // When it dies we do take over (200: skew 56*100/256 = 21, down 321).
    assert_eq!(v.next_deadline(), Some(t + 321));
    assert_eq!(
        v.tick(t + 321)[1],
        tr(State::Backup, State::Master, reason::MASTER_DOWN)
    );
}

#[test]
fn closed_gate_does_not_stop_taking_over_a_dead_master() {
    // With the gate closed and no master at all, we still become master:
    // the gate guards preemption, not taking over a dead master.
    let mut v = backup(cfg(100), 0);
    v.set_preempt_ready(false);
    assert_eq!(
        v.tick(360)[1],
        tr(State::Backup, State::Master, reason::MASTER_DOWN)
    );
}

#[test]
fn non_peer_adverts_are_ignored_even_at_254() {
    let mut c = cfg(100);
    c.peers = vec![PEER];
    let mut v = backup(c.clone(), 0);
    assert_eq!(v.on_advert(100, STRANGER, &adv(254)), vec![]);
    assert_eq!(v.on_advert(110, STRANGER, &adv(0)), vec![]);
    assert_eq!(v.master(), None);
    assert_eq!(v.next_deadline(), Some(360));
    let k = v.counters();
    assert_eq!(
        (
            k.ignored_non_peer,
            k.adverts_received,
            k.priority_zero_received
        ),
        (2, 2, 0)
    );
    // A listed peer is heard.
    v.on_advert(120, PEER, &adv(254));
    assert_eq!(v.master(), Some(PEER));
    // As master too.
    let mut v = master(c);
    assert_eq!(v.on_advert(400, STRANGER, &adv(254)), vec![]);
    assert_eq!(v.state(), State::Master);
    assert_eq!(v.counters().ignored_non_peer, 1);
}

#[test]
fn non_peer_check_comes_before_the_vrid_check() {
    let mut c = cfg(100);
    c.peers = vec![PEER];
    let mut v = backup(c, 0);
    let mut a = adv(200);
    a.vrid = 7;
    v.on_advert(100, STRANGER, &a);
    let k = v.counters();
    assert_eq!((k.ignored_non_peer, k.ignored_other_vrid), (1, 0));
}

#[test]
fn other_vrid_and_own_adverts_are_ignored() {
    let mut v = backup(cfg(100), 0);
    let mut a = adv(200);
    a.vrid = 52;
    assert_eq!(v.on_advert(100, PEER, &a), vec![]);
    assert_eq!(v.counters().ignored_other_vrid, 1);
    // Our own advert looped back by multicast.
    assert_eq!(v.on_advert(100, US, &adv(200)), vec![]);
    assert_eq!(v.master(), None);
    assert_eq!(v.next_deadline(), Some(360));
    let mut v = master(cfg(100));
    assert_eq!(v.on_advert(400, US, &adv(0)), vec![]);
    assert_eq!(v.on_advert(400, US, &adv(254)), vec![]);
    assert_eq!(v.state(), State::Master);
}

#[test]
fn shutdown_master_sends_priority_zero() {
    let mut v = master(cfg(100));
    assert_eq!(
        v.shutdown(500),
        vec![send(0), tr(State::Master, State::Init, reason::SHUTDOWN)]
    );
    assert_eq!(v.state(), State::Init);
    assert_eq!(v.master(), None);
    assert_eq!(v.next_deadline(), None);
    assert_eq!(v.counters().adverts_sent, 2);
    assert_eq!(v.advert(0).priority, 0);
    assert_eq!(v.shutdown(600), vec![]);
    // And it can start again.
    assert_eq!(
        v.start(700),
        vec![tr(State::Init, State::Backup, reason::START)]
    );
    assert_eq!(v.next_deadline(), Some(1060));
}

#[test]
fn shutdown_backup_is_silent() {
    let mut v = backup(cfg(100), 0);
    assert_eq!(
        v.shutdown(10),
        vec![tr(State::Backup, State::Init, reason::SHUTDOWN)]
    );
    assert_eq!(v.counters().adverts_sent, 0);
    assert_eq!(v.tick(10_000), vec![]);
}

#[test]
fn config_is_clamped() {
    let mut c = cfg(255);
    c.advert_interval_cs = 0;
    let v = Vrrp::new(c);
    assert_eq!(v.priority(), 254);
    assert_eq!(v.config().advert_interval_cs, 1);
    let mut c = cfg(0);
    c.advert_interval_cs = 5000;
    let v = Vrrp::new(c);
    assert_eq!(v.priority(), 1);
    assert_eq!(v.config().advert_interval_cs, 4095);
}

#[test]
fn advert_carries_config() {
    let v = Vrrp::new(cfg(100));
    assert_eq!(v.advert(100), adv(100));
}

/// Routers on a lossless fake link: adverts sent at `t` arrive at `t`.
struct Net {
    routers: Vec<Vrrp>,
    up: Vec<bool>,
}

impl Net {
    fn new(prios: &[(Ipv4Addr, u8)]) -> Net {
        let routers = prios
            .iter()
            .map(|&(addr, p)| {
                let mut c = cfg(p);
                c.primary = addr;
                Vrrp::new(c)
            })
            .collect::<Vec<_>>();
        let up = vec![false; routers.len()];
        Net { routers, up }
    }

    fn deliver(&mut self, t: u64, from: usize, actions: Vec<Action>) {
        for a in actions {
            if let Action::SendAdvert { priority } = a {
                let adv = self.routers[from].advert(priority);
                let src = self.routers[from].config().primary;
                for j in 0..self.routers.len() {
                    if j != from && self.up[j] {
                        let out = self.routers[j].on_advert(t, src, &adv);
                        self.deliver(t, j, out);
                    }
                }
            }
        }
    }

    fn start(&mut self, t: u64, i: usize) {
        self.up[i] = true;
        let out = self.routers[i].start(t);
        self.deliver(t, i, out);
    }

    fn stop(&mut self, t: u64, i: usize) {
        let out = self.routers[i].shutdown(t);
        self.up[i] = false;
        self.deliver(t, i, out);
    }

    fn crash(&mut self, i: usize) {
        self.up[i] = false;
        self.routers[i] = Vrrp::new(self.routers[i].config().clone());
    }

    /// Every router's timers fire before anything is delivered, as on a
    /// real link where two expiries at the same instant cross.
    fn run(&mut self, from: u64, until: u64) {
        for t in from..=until {
            let outs: Vec<_> = (0..self.routers.len())
                .map(|i| {
                    if self.up[i] {
                        self.routers[i].tick(t)
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            for (i, out) in outs.into_iter().enumerate() {
                self.deliver(t, i, out);
            }
        }
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&i| self.routers[i].state() == State::Master)
            .collect()
    }
}

#[test]
fn simulated_group_elects_one_master_and_fails_over() {
    let a = Ipv4Addr::new(198, 19, 0, 2);
    let b = Ipv4Addr::new(198, 19, 0, 3);
    let c = Ipv4Addr::new(198, 19, 0, 4);
    let mut n = Net::new(&[(a, 100), (b, 200), (c, 100)]);
    n.start(0, 0);
    n.start(0, 1);
    n.start(0, 2);
    // b (200): down interval 300 + 56*100/256 = 321.
    n.run(0, 1000);
    assert_eq!(n.masters(), vec![1]);
    assert_eq!(n.routers[0].master(), Some(b));
    // Clean shutdown of b: the equal-priority pair takes over after its skew
    // (60 ms); the tie goes to c (higher address).
    n.stop(1000, 1);
    n.run(1001, 2000);
    assert_eq!(n.masters(), vec![2]);
    assert_eq!(n.routers[0].master(), Some(c));
    // c crashes (no priority 0): a takes over 360 ms after c's last advert
    // (c has advertised every 100 ms since 1060: last at 1960).
    n.crash(2);
    assert_eq!(n.routers[0].next_deadline(), Some(1960 + 360));
    n.run(2001, 2319);
    assert_eq!(n.masters(), Vec::<usize>::new());
    n.run(2320, 2500);
    assert_eq!(n.masters(), vec![0]);
    // b comes back with a higher priority and preempts after its down
    // interval (321 ms after starting).
    n.start(3000, 1);
    n.run(3000, 3320);
    assert_eq!(n.masters(), vec![0]);
    n.run(3321, 3400);
    assert_eq!(n.masters(), vec![1]);
    assert_eq!(n.routers[0].state(), State::Backup);
}
