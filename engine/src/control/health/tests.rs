//! The health table: results in, states, quorum and events out; the
//! snapshot and the pipeline as it leaves them; real check threads on
//! loopback; the controller's hooks with `exec` checks and the exec hook.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::config::{self, Config};
use crate::control::notify::EventKind;
use crate::control::Controller;
use crate::dataplane::pipeline::{Frame, Pipeline, VecFrame, Verdict};
use crate::dataplane::snapshot::{PortInfo, Snapshot};
use crate::dataplane::Shared;
use crate::packet::ethernet::MacAddr;

const CFG: &str = concat!(
    crate::control::two_port_director!(),
    r#"
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "wrr"
sorry_server = "198.19.0.99:8080"
quorum = 2
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  weight = 2
  [[service.server]]
  address = "198.19.0.13"
  port = 8080
  weight = 1
  [service.health_check]
  kind = "http"
  fall = 2
  rise = 3
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
"#
);

fn cfg(text: &str) -> Config {
    config::parse(text).expect("config")
}

/// A checker without threads, synced with `c`.
fn manual(c: &Config) -> HealthChecker {
    let mut hc = HealthChecker::with_threads(false);
    hc.sync(c);
    hc
}

/// Feeds one result for server `si` of service 0, as its thread would.
fn feed(hc: &mut HealthChecker, c: &Config, si: usize, ok: bool) {
    let sc = &c.services[0];
    let key = Key::of(sc, &sc.servers[si]);
    let epoch = hc.entries[&key].worker.as_ref().expect("checked").epoch;
    hc.tx
        .send(CheckResult {
            key,
            epoch,
            ok,
            text: if ok {
                "HTTP 200 in 1 ms".into()
            } else {
                "connect: Connection refused (os error 111)".into()
            },
            weight: Weight::Keep,
            at: SystemTime::now(),
        })
        .unwrap();
}

fn kinds(events: &[Event]) -> Vec<(EventKind, Option<String>)> {
    events.iter().map(|e| (e.event, e.server.clone())).collect()
}

fn health_of(hc: &HealthChecker, c: &Config, si: usize) -> Health {
    hc.health(&c.services[0], &c.services[0].servers[si])
}

#[test]
fn servers_start_up_and_fall_after_consecutive_failures() {
    let c = cfg(CFG);
    let mut hc = manual(&c);
    for i in 0..3 {
        assert_eq!(health_of(&hc, &c, i), Health::Up, "initial state is up");
    }
    assert!(!hc.quorum_lost(&c.services[0]));
    assert!(hc.poll().is_empty());
    feed(&mut hc, &c, 1, false);
    assert!(
        hc.poll().is_empty(),
        "one failure of fall 2 changes nothing"
    );
    assert_eq!(health_of(&hc, &c, 1), Health::Up);
    feed(&mut hc, &c, 1, false);
    let ev = hc.poll();
    assert_eq!(
        kinds(&ev),
        [(EventKind::ServerDown, Some("198.19.0.12:8080".into()))]
    );
    let ev = &ev[0];
    assert_eq!(ev.service, "tcp:198.18.0.100:80");
    assert_eq!(
        ev.last_result.as_deref(),
        Some("connect: Connection refused (os error 111)")
    );
    assert!(
        ev.description
            .contains("2 consecutive http check(s) failed"),
        "{}",
        ev.description
    );
    assert!(
        ev.action.contains("connections are expired"),
        "{}",
        ev.action
    );
    assert_eq!(
        ev.check.as_deref(),
        Some("http GET http://198.19.0.12:8080/ expecting 200, every 1000 ms, timeout 500 ms")
    );
    assert_eq!((ev.live_weight, ev.quorum), (4, 2));
    assert_eq!(ev.sorry_server.as_deref(), Some("198.19.0.99:8080"));
    assert_eq!(health_of(&hc, &c, 1), Health::Down);
    // the udp service has no check: its server is up whatever happens
    assert_eq!(
        hc.health(&c.services[1], &c.services[1].servers[0]),
        Health::Up
    );
    let st = hc.status(&c.services[1], &c.services[1].servers[0]);
    assert_eq!(st.state, "no-check");
}

#[test]
fn rise_brings_a_server_back_and_a_failure_restarts_the_count() {
    let c = cfg(CFG);
    let mut hc = manual(&c);
    feed(&mut hc, &c, 0, false);
    feed(&mut hc, &c, 0, false);
    assert_eq!(kinds(&hc.poll()).len(), 1);
    // rise 3: two successes, a failure, then three
    for ok in [true, true, false, true, true] {
        feed(&mut hc, &c, 0, ok);
    }
    assert!(hc.poll().is_empty());
    assert_eq!(health_of(&hc, &c, 0), Health::Down);
    let st = hc.status(&c.services[0], &c.services[0].servers[0]);
    assert_eq!(st.state, "down");
    assert!(st.detail.contains("2/3 successes"), "{}", st.detail);
    feed(&mut hc, &c, 0, true);
    let ev = hc.poll();
    assert_eq!(
        kinds(&ev),
        [(EventKind::ServerUp, Some("198.19.0.11:8080".into()))]
    );
    assert_eq!(ev[0].action, "back in the pool with weight 3");
    assert_eq!(ev[0].live_weight, 6);
    assert_eq!(health_of(&hc, &c, 0), Health::Up);
}

#[test]
fn weight_zero_inhibits_instead_of_removing() {
    let c = cfg(&CFG.replace("rise = 3", "rise = 3\n  on_failure = \"weight-zero\""));
    let mut hc = manual(&c);
    feed(&mut hc, &c, 2, false);
    feed(&mut hc, &c, 2, false);
    let ev = hc.poll();
    assert!(ev[0].action.contains("weight set to 0"), "{}", ev[0].action);
    assert_eq!(health_of(&hc, &c, 2), Health::Inhibited);
    assert_eq!(
        hc.status(&c.services[0], &c.services[0].servers[2]).state,
        "inhibited"
    );
    let ports: Vec<PortInfo> = Vec::new();
    let shared = Shared::new(1);
    let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &hc).unwrap();
    let s = &snap.services[0].servers[2];
    assert!(s.usable);
    assert_eq!(s.weight, 0);
}

#[test]
fn quorum_is_lost_below_the_live_weight_and_regained() {
    let c = cfg(CFG);
    let mut hc = manual(&c);
    // weights 3,2,1, quorum 2: losing .11 leaves 3 -> still up
    feed(&mut hc, &c, 0, false);
    feed(&mut hc, &c, 0, false);
    assert_eq!(
        kinds(&hc.poll()),
        [(EventKind::ServerDown, Some("198.19.0.11:8080".into()))]
    );
    assert!(!hc.quorum_lost(&c.services[0]));
    // losing .12 leaves 1 < 2: quorum lost, notified after the server event
    feed(&mut hc, &c, 1, false);
    feed(&mut hc, &c, 1, false);
    let ev = hc.poll();
    assert_eq!(
        kinds(&ev),
        [
            (EventKind::ServerDown, Some("198.19.0.12:8080".into())),
            (EventKind::QuorumLost, None)
        ]
    );
    assert_eq!((ev[1].live_weight, ev[1].quorum), (1, 2));
    assert!(
        ev[1].action.contains("sorry server 198.19.0.99:8080"),
        "{}",
        ev[1].action
    );
    assert_eq!(
        ev[0].live_weight, 1,
        "server events carry the live weight after them"
    );
    assert!(hc.quorum_lost(&c.services[0]));
    assert!(!hc.quorum_lost(&c.services[1]));
    let st = hc.status(&c.services[0], &c.services[0].servers[2]);
    assert_eq!(st.state, "up");
    assert!(st.detail.contains("quorum lost"), "{}", st.detail);
    // .12 back: 3 >= 2
    for _ in 0..3 {
        feed(&mut hc, &c, 1, true);
    }
    let ev = hc.poll();
    assert_eq!(
        kinds(&ev),
        [
            (EventKind::ServerUp, Some("198.19.0.12:8080".into())),
            (EventKind::QuorumRegained, None)
        ]
    );
    assert!(!hc.quorum_lost(&c.services[0]));
}

#[test]
fn a_configuration_change_restarts_checks_and_ignores_stale_results() {
    let c = cfg(CFG);
    let mut hc = manual(&c);
    let key = Key::of(&c.services[0], &c.services[0].servers[0]);
    let old_epoch = hc.entries[&key].worker.as_ref().unwrap().epoch;
    feed(&mut hc, &c, 0, false);
    // the same configuration again keeps the thread
    hc.sync(&c);
    assert_eq!(hc.entries[&key].worker.as_ref().unwrap().epoch, old_epoch);
    // a new path replaces it; the result queued by the old one is ignored
    let c2 = cfg(&CFG.replace("kind = \"http\"", "kind = \"http\"\n  path = \"/health\""));
    hc.sync(&c2);
    assert_ne!(hc.entries[&key].worker.as_ref().unwrap().epoch, old_epoch);
    feed(&mut hc, &c2, 0, false);
    assert!(hc.poll().is_empty());
    assert_eq!(
        hc.entries[&key].fsm.fails(),
        1,
        "only the new check's failure counts"
    );
    // a server removed from the configuration leaves the table
    let c3 = cfg(&CFG.replace(
        "  [[service.server]]\n  address = \"198.19.0.13\"\n  port = 8080\n  weight = 1\n",
        "",
    ));
    hc.sync(&c3);
    assert_eq!(hc.entries.len(), 3, "2 tcp servers + 1 udp server");
    // removing the check brings a down server back
    feed(&mut hc, &c3, 0, false);
    feed(&mut hc, &c3, 0, false);
    assert_eq!(hc.poll().len(), 1);
    let c4 = cfg(&CFG.replace("kind = \"http\"", "kind = \"none\""));
    hc.sync(&c4);
    assert_eq!(health_of(&hc, &c4, 0), Health::Up);
    assert_eq!(
        hc.status(&c4.services[0], &c4.services[0].servers[0]).state,
        "no-check"
    );
}

#[test]
fn a_weight_change_that_loses_the_quorum_is_notified() {
    let c = cfg(CFG);
    let mut hc = manual(&c);
    let c2 = cfg(&CFG
        .replace("weight = 3", "weight = 0")
        .replace("weight = 2", "weight = 1")
        .replace("weight = 1\n  [service", "weight = 0\n  [service"));
    hc.sync(&c2);
    let ev = hc.poll();
    assert_eq!(kinds(&ev), [(EventKind::QuorumLost, None)]);
    assert_eq!(ev[0].live_weight, 1);
}

#[test]
fn a_new_service_without_quorum_starts_silently() {
    let c = cfg(&CFG.replace("quorum = 2", "quorum = 100"));
    let mut hc = manual(&c);
    assert!(hc.quorum_lost(&c.services[0]));
    assert!(hc.poll().is_empty());
}

#[test]
fn all_ports_servers_without_a_port_are_not_checked() {
    let text = CFG
        .replace("port = 80\n", "port = 0\n")
        .replace("  port = 8080\n  weight = 3", "  weight = 3");
    let c = cfg(&text);
    let hc = manual(&c);
    let st = hc.status(&c.services[0], &c.services[0].servers[0]);
    assert_eq!(st.state, "no-check");
    assert!(st.detail.contains("no port to check"), "{}", st.detail);
    assert_eq!(
        hc.status(&c.services[0], &c.services[0].servers[1]).state,
        "up"
    );
}

// ------------------------------------------------------------ snapshot + pipeline

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];

fn syn(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4([198, 18, 0, 10], [198, 18, 0, 100], 64)
        .tcp(sport, 80, 1000, 64240)
        .syn()
        .write(&mut v, b"")
        .unwrap();
    v
}

/// Where a new connection goes: the destination address and port of the
/// forwarded SYN.
fn new_conn_goes_to(p: &mut Pipeline, snap: &Snapshot, sport: u16) -> (Ipv4Addr, u16) {
    let mut f = VecFrame::new(&syn(sport));
    let v = p.process(snap, &mut f, 0, 10, false);
    assert_eq!(v, Verdict::Tx(1));
    let d = f.data();
    let dst = Ipv4Addr::new(d[30], d[31], d[32], d[33]);
    let dport = u16::from_be_bytes([d[36], d[37]]);
    (dst, dport)
}

#[test]
fn the_pipeline_sends_new_connections_to_the_sorry_server_without_quorum() {
    let c = cfg(CFG);
    let mut hc = manual(&c);
    let ports = vec![
        PortInfo::new(&c.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&c.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    for last in [11, 12, 13, 99] {
        shared.neigh.learn(
            Ipv4Addr::new(198, 19, 0, last),
            MacAddr([2, 0, 0, 1, 0, last]),
            0,
        );
    }
    shared
        .neigh
        .learn(Ipv4Addr::new(198, 18, 0, 10), MacAddr(CLIENT_MAC), 0);
    let mut p = Pipeline::new(0, 1, 1024, &shared);

    // .11 down (removed): wrr 2,1 over .12 and .13
    feed(&mut hc, &c, 0, false);
    feed(&mut hc, &c, 0, false);
    hc.poll();
    let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &hc).unwrap();
    assert!(!snap.services[0].sorry_only);
    assert!(!snap.services[0].servers[0].usable);
    let got: Vec<u8> = (0..3)
        .map(|i| new_conn_goes_to(&mut p, &snap, 40000 + i).0.octets()[3])
        .collect();
    assert_eq!(got, [12, 12, 13]);

    // .12 down too: live weight 1 < quorum 2 -> the sorry server, though
    // .13 is up
    feed(&mut hc, &c, 1, false);
    feed(&mut hc, &c, 1, false);
    assert_eq!(hc.poll().len(), 2);
    let snap = Snapshot::build(&c, &ports, &shared.registry, 2, &hc).unwrap();
    assert!(snap.services[0].sorry_only);
    assert!(snap.services[0].servers[2].usable);
    for i in 0..3 {
        assert_eq!(
            new_conn_goes_to(&mut p, &snap, 41000 + i),
            (Ipv4Addr::new(198, 19, 0, 99), 8080)
        );
    }

    // .12 back: quorum regained, the real servers again
    for _ in 0..3 {
        feed(&mut hc, &c, 1, true);
    }
    assert_eq!(hc.poll().len(), 2);
    let snap = Snapshot::build(&c, &ports, &shared.registry, 3, &hc).unwrap();
    assert!(!snap.services[0].sorry_only);
    let (dst, _) = new_conn_goes_to(&mut p, &snap, 42000);
    assert_ne!(dst, Ipv4Addr::new(198, 19, 0, 99));
}

// ------------------------------------------------------------ real threads

/// A loopback listener that accepts and never answers (held open).
fn hanging_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(8) {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (port, h)
}

/// A loopback HTTP server that answers 200 to everything.
fn ok_server() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let t0 = Instant::now();
        l.set_nonblocking(true).unwrap();
        while t0.elapsed() < Duration::from_secs(8) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut b = [0u8; 1024];
                    let _ = s.read(&mut b);
                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    port
}

fn loopback_cfg(ports: [u16; 2], interval: u32, timeout: u32) -> Config {
    let text = format!(
        r#"
[dpdk]
cores = "0-1"
[[port]]
name = "p"
device = "net_null0"
address = "198.19.0.1/24"
[[service]]
vip = "198.18.0.100"
port = 80
  [[service.server]]
  address = "198.19.0.11"
  port = {}
  [[service.server]]
  address = "198.19.0.12"
  port = {}
  [service.health_check]
  kind = "http"
  interval_ms = {interval}
  timeout_ms = {timeout}
  fall = 2
  rise = 1
"#,
        ports[0], ports[1]
    );
    // the configuration refuses loopback servers; these tests need them
    let mut c = cfg(&text);
    for srv in &mut c.services[0].servers {
        srv.address = Ipv4Addr::LOCALHOST.into();
    }
    c
}

#[test]
fn a_hanging_server_times_out_without_delaying_the_other_checks() {
    let good = ok_server();
    let (hang, _h) = hanging_server();
    // the timeout is much longer than the interval: a serial checker would
    // leave gaps of 800 ms between the good server's checks. The bounds
    // below leave room for a loaded test machine (every test runs at once
    // on 2 cores in CI) and still tell the two apart.
    let c = loopback_cfg([good, hang], 100, 800);
    let mut hc = HealthChecker::new();
    hc.sync(&c);
    let t0 = Instant::now();
    let mut down_at = None;
    let mut good_results = Vec::new();
    while t0.elapsed() < Duration::from_millis(2500) {
        // drain by hand to see every result with its time
        while let Ok(r) = hc.rx.try_recv() {
            if r.key.port == good {
                assert!(r.ok, "{}", r.text);
                good_results.push(t0.elapsed());
            } else {
                assert!(r.text.contains("timed out after 800 ms"), "{}", r.text);
            }
            if let Some(ev) = hc.apply(r) {
                assert_eq!(ev.event, EventKind::ServerDown);
                down_at.get_or_insert(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let down_at = down_at.expect("the hanging server went down");
    // fall 2 x timeout 800 ms (each check starts at once after the last)
    assert!(
        down_at >= Duration::from_millis(1550) && down_at < Duration::from_millis(2450),
        "down after {down_at:?}"
    );
    // the good server: a check every 100 ms all along
    assert!(
        good_results.len() >= 15,
        "{} good checks",
        good_results.len()
    );
    for w in good_results.windows(2) {
        assert!(
            w[1] - w[0] < Duration::from_millis(500),
            "gap {:?}",
            w[1] - w[0]
        );
    }
    let key = |p| Key {
        svc: svc_id(&c.services[0]),
        addr: Ipv4Addr::LOCALHOST.into(),
        port: p,
    };
    assert_eq!(hc.entries[&key(good)].health(), Health::Up);
    assert_eq!(hc.entries[&key(hang)].health(), Health::Down);
}

// ------------------------------------------------------------ the controller

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn wait_for(c: &mut Controller, what: &str, mut f: impl FnMut(&Controller) -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        c.tick();
        if f(c) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within 10 s");
}

fn events(path: &PathBuf) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect()
}

#[test]
fn the_controller_republishes_and_notifies_on_changes() {
    let dir = std::env::temp_dir().join(format!("rvs-health-ctl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.jsonl");
    let hook = dir.join("hook.sh");
    write_exec(&hook, &format!("#!/bin/sh\ncat >> {}\n", log.display()));
    // exec checks (no network): a server is down while dir/down-<ip> exists
    let script = format!("/bin/sh -c 'test ! -e {}/down-$0'", dir.display());
    let text = CFG
        .replace(
            "kind = \"http\"",
            &format!(
                "kind = \"exec\"\n  script = \"{}\"\n  interval_ms = 30",
                script.replace('"', "\\\"")
            ),
        )
        .replace("quorum = 2", "quorum = 1")
        + &format!("[notify]\nexec = \"{}\"\n", hook.display());
    let path = dir.join("rvs.toml");
    std::fs::write(&path, &text).unwrap();
    let c = config::load(&path).unwrap();
    let shared = Arc::new(Shared::new(1));
    let mut ctl = Controller::new(c, path, shared, Vec::new()).unwrap();
    ctl.start_health().unwrap();
    let usable =
        |ctl: &Controller, si: usize| ctl.shared.snapshot.load().services[0].servers[si].usable;

    wait_for(&mut ctl, "first results", |c| {
        c.health_status()
            .iter()
            .take(3)
            .all(|s| s.last_ok == Some(true))
    });
    let g0 = ctl.shared.snapshot.load().generation;
    std::fs::write(dir.join("down-198.19.0.12"), "").unwrap();
    wait_for(&mut ctl, ".12 down", |c| !usable(c, 1));
    assert!(ctl.shared.snapshot.load().generation > g0);
    let st = ctl.health_status();
    assert_eq!(st[1].server, "198.19.0.12:8080");
    assert_eq!(st[1].state, "down");
    assert_eq!(st[1].check, "exec");
    assert_eq!(st[1].last_ok, Some(false));
    assert_eq!(st[1].last_result.as_deref(), Some("exit status 1"));
    assert_eq!(st[0].state, "up");
    assert_eq!(st[3].state, "no-check");

    std::fs::remove_file(dir.join("down-198.19.0.12")).unwrap();
    wait_for(&mut ctl, ".12 up", |c| usable(c, 1));
    for ip in [11, 12, 13] {
        std::fs::write(dir.join(format!("down-198.19.0.{ip}")), "").unwrap();
    }
    wait_for(&mut ctl, "quorum lost", |c| {
        c.shared.snapshot.load().services[0].sorry_only
    });
    // the hook ran once per event, with the configuration
    let t0 = Instant::now();
    let mut evs = events(&log);
    while evs.len() < 6 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
        evs = events(&log);
    }
    let got: Vec<(EventKind, Option<String>)> = kinds(&evs);
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(
        got[0],
        (EventKind::ServerDown, Some("198.19.0.12:8080".into()))
    );
    assert_eq!(
        got[1],
        (EventKind::ServerUp, Some("198.19.0.12:8080".into()))
    );
    assert_eq!(got[5], (EventKind::QuorumLost, None));
    let downs = got[2..5]
        .iter()
        .filter(|(k, _)| *k == EventKind::ServerDown)
        .count();
    assert_eq!(downs, 3);
    let conf = evs[0].configuration.as_ref().expect("configuration");
    let s12 = &conf.services[0].servers[1];
    assert_eq!(
        (s12.address, s12.up),
        (Ipv4Addr::new(198, 19, 0, 12).into(), false)
    );
    assert!(notify_listing_names(&evs[0]));
    let _ = std::fs::remove_dir_all(&dir);
}

fn notify_listing_names(ev: &Event) -> bool {
    let body = ev.mail_body();
    body.contains("198.19.0.12:8080") && body.contains("TCP  198.18.0.100:80 wrr")
}

/// Feeds one result with what it says of the weight.
fn feed_weight(hc: &mut HealthChecker, c: &Config, si: usize, ok: bool, weight: Weight) {
    let sc = &c.services[0];
    let key = Key::of(sc, &sc.servers[si]);
    let epoch = hc.entries[&key].worker.as_ref().expect("checked").epoch;
    hc.tx
        .send(CheckResult {
            key,
            epoch,
            ok,
            text: format!("exit status {}", if ok { 0 } else { 1 }),
            weight,
            at: SystemTime::now(),
        })
        .unwrap();
}

#[test]
fn alpha_servers_start_down_until_their_first_success() {
    let text = CFG.replace("rise = 3", "rise = 3\n  alpha = true");
    let c = cfg(&text);
    let mut hc = manual(&c);
    for i in 0..3 {
        assert_eq!(health_of(&hc, &c, i), Health::Down, "alpha: down at first");
    }
    assert!(hc.quorum_lost(&c.services[0]));
    let st = hc.status(&c.services[0], &c.services[0].servers[0]);
    assert_eq!(st.state, "down");
    assert!(
        st.detail.contains("alpha: down until the first success"),
        "{}",
        st.detail
    );
    // the unchecked udp service is not concerned
    assert_eq!(
        hc.health(&c.services[1], &c.services[1].servers[0]),
        Health::Up
    );
    assert!(hc.poll().is_empty(), "starting down is no change of state");
    feed(&mut hc, &c, 0, false);
    assert!(hc.poll().is_empty());
    // one success, not rise = 3
    feed(&mut hc, &c, 0, true);
    let ev = hc.poll();
    assert_eq!(
        kinds(&ev),
        [
            (EventKind::ServerUp, Some("198.19.0.11:8080".into())),
            (EventKind::QuorumRegained, None)
        ]
    );
    assert!(
        ev[0]
            .description
            .contains("its first http check passed (alpha)"),
        "{}",
        ev[0].description
    );
    assert_eq!(health_of(&hc, &c, 0), Health::Up);
    // a server added by a reload starts down too; the others keep their state
    let text2 = text.replace(
        "  [service.health_check]",
        "  [[service.server]]\n  address = \"198.19.0.14\"\n  port = 8080\n  [service.health_check]",
    );
    let c2 = cfg(&text2);
    hc.sync(&c2);
    assert_eq!(health_of(&hc, &c2, 0), Health::Up);
    assert_eq!(health_of(&hc, &c2, 3), Health::Down);
}

#[test]
fn a_dynamic_weight_sets_the_pool_weight_and_the_quorum() {
    let text = CFG.replace(
        "kind = \"http\"",
        "kind = \"exec\"\n  script = \"/bin/true\"\n  dynamic_weight = true",
    );
    let c = cfg(&text);
    let mut hc = manual(&c);
    let ports: Vec<PortInfo> = Vec::new();
    let shared = Shared::new(1);
    let weights = |hc: &HealthChecker| -> Vec<u32> {
        let snap = Snapshot::build(&c, &ports, &shared.registry, 1, hc).unwrap();
        snap.services[0].servers.iter().map(|s| s.weight).collect()
    };
    assert_eq!(weights(&hc), [3, 2, 1]);
    assert!(!hc.take_republish());
    // exit 7: weight 5, up all along (no event), but the pool changes
    feed_weight(&mut hc, &c, 1, true, Weight::Set(5));
    assert!(hc.poll().is_empty());
    assert!(hc.take_republish());
    assert!(!hc.take_republish(), "taken once");
    assert_eq!(weights(&hc), [3, 5, 1]);
    let st = hc.status(&c.services[0], &c.services[0].servers[1]);
    assert!(
        st.detail
            .contains("weight 5 set by the check (configured 2)"),
        "{}",
        st.detail
    );
    // exit 2: weight 0 — and rs1, rs3 at 0 too lose the quorum (2)
    feed_weight(&mut hc, &c, 0, true, Weight::Set(0));
    feed_weight(&mut hc, &c, 2, true, Weight::Set(0));
    feed_weight(&mut hc, &c, 1, true, Weight::Set(1));
    let ev = hc.poll();
    assert_eq!(kinds(&ev), [(EventKind::QuorumLost, None)]);
    assert_eq!(ev[0].live_weight, 1);
    assert_eq!(weights(&hc), [0, 1, 0]);
    assert!(hc.take_republish());
    // a failure (exit 1) keeps the weight; exit 0 restores the configured
    feed_weight(&mut hc, &c, 1, false, Weight::Keep);
    hc.poll();
    assert!(!hc.take_republish());
    assert_eq!(weights(&hc), [0, 1, 0]);
    feed_weight(&mut hc, &c, 0, true, Weight::Configured);
    let ev = hc.poll();
    assert_eq!(kinds(&ev), [(EventKind::QuorumRegained, None)]);
    assert!(hc.take_republish());
    assert_eq!(weights(&hc), [3, 1, 0]);
}

#[test]
fn notify_up_and_down_hooks_run_on_changes_of_state() {
    let dir = std::env::temp_dir().join(format!("rvs-health-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("hooks.txt");
    let hook = dir.join("hook.sh");
    write_exec(
        &hook,
        &format!(
            "#!/bin/sh\necho \"$1 $2 $3 $4 $RVS_REASON\" >> {}\n",
            out.display()
        ),
    );
    let text = CFG.replace(
        "  weight = 2\n",
        &format!(
            "  weight = 2\n  notify_up = \"{0} up-hook\"\n  notify_down = \"{0} down-hook\"\n",
            hook.display()
        ),
    );
    let c = cfg(&text);
    assert_eq!(
        c.services[0].servers[1].notify_down.as_deref(),
        Some(format!("{} down-hook", hook.display()).as_str())
    );
    let mut hc = manual(&c);
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let wait_lines = |n: usize| {
        let t0 = Instant::now();
        while lines().len() < n && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        lines()
    };
    // server 0 has no hooks: its fall runs none
    feed(&mut hc, &c, 0, false);
    feed(&mut hc, &c, 0, false);
    feed(&mut hc, &c, 1, false);
    feed(&mut hc, &c, 1, false);
    // two servers down and the quorum lost (live weight 1 < 2)
    assert_eq!(hc.poll().len(), 3);
    let got = wait_lines(1);
    assert_eq!(
        got[..1],
        ["down-hook down 198.19.0.12:8080 tcp:198.18.0.100:80 connect: Connection refused (os error 111)"]
    );
    for _ in 0..3 {
        feed(&mut hc, &c, 1, true);
    }
    hc.poll();
    let got = wait_lines(2);
    assert_eq!(
        got[1],
        "up-hook up 198.19.0.12:8080 tcp:198.18.0.100:80 HTTP 200 in 1 ms"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        lines().len(),
        2,
        "one run per change of state: {:?}",
        lines()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
