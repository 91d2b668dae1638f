use super::*;
use crate::control::ctl_proto::{ConnInfo, ServerHealthView, ServiceHealthView, WorkerView};

fn view() -> ListView {
    let srv = |last: u8, w: u32, active: u64, inactive: u64, conns: u64| ServerView {
        address: std::net::Ipv4Addr::new(198, 19, 0, last).into(),
        port: 8080,
        forward: "nat".into(),
        weight: w,
        effective_weight: w,
        up: true,
        health: "no-check".into(),
        active,
        inactive,
        conns,
        in_packets: conns * 5,
        out_packets: conns * 4,
        in_bytes: conns * 400,
        out_bytes: conns * 600,
        ..ServerView::default()
    };
    ListView {
        version: "0.1.0".into(),
        size: 65536,
        generation: 3,
        timeouts: Default::default(),
        services: vec![
            ServiceView {
                protocol: "tcp".into(),
                vip: "198.18.0.100".parse().unwrap(),
                port: 80,
                scheduler: "wrr".into(),
                forward: "nat".into(),
                persistence_netmask: std::net::Ipv4Addr::BROADCAST,
                conns: 15,
                in_packets: 75,
                out_packets: 60,
                in_bytes: 6000,
                out_bytes: 9000,
                servers: vec![srv(11, 3, 2, 10, 10), srv(12, 2, 0, 5, 5)],
                ..ServiceView::default()
            },
            ServiceView {
                protocol: "udp".into(),
                vip: "198.18.0.100".parse().unwrap(),
                port: 53,
                scheduler: "sh".into(),
                flags: vec!["sh-port".into()],
                forward: "dr".into(),
                persistence: 300,
                persistence_netmask: "255.255.255.0".parse().unwrap(),
                rate: Rates {
                    cps: 1,
                    in_pps: 2,
                    out_pps: 3,
                    in_bps: 4,
                    out_bps: 123456789,
                },
                servers: vec![],
                ..ServiceView::default()
            },
        ],
    }
}

#[test]
fn plain_list_is_ipvsadm_layout() {
    let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr
  -> 198.19.0.11:8080             Masq    3      2          10        
  -> 198.19.0.12:8080             Masq    2      0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
    assert_eq!(list(&view(), ListMode::Plain), want);
}

#[test]
fn large_counters_round_as_ipvsadm_unless_exact() {
    assert_eq!(largenum(99_999_999, false), "99999999");
    assert_eq!(largenum(123_456_789, false), " 123456K");
    assert_eq!(largenum(12_345_678_901, false), "  12345M");
    assert_eq!(largenum(123_456_789_012, false), "    123G");
    assert_eq!(largenum(123_456_789_012_345, false), "    123T");
    assert_eq!(largenum(12_345_678_901, true), "12345678901");
    let mut v = view();
    v.services[0].in_bytes = 12_345_678_901;
    let text = list(&v, ListMode::Stats);
    let line = text.lines().find(|l| l.starts_with("TCP")).unwrap();
    assert!(
        line.ends_with("    75       60   12345M     9000"),
        "{line}"
    );
    let exact = list_exact(&v, ListMode::Stats, true);
    assert!(exact.contains(" 12345678901 "), "{exact}");
}

#[test]
fn a_server_out_of_the_pool_shows_weight_0_and_down() {
    let mut v = view();
    let d = &mut v.services[0].servers[1];
    d.up = false;
    d.effective_weight = 0;
    let text = list(&v, ListMode::Plain);
    assert!(
        text.contains(
            "  -> 198.19.0.12:8080             Masq    0      0          5          (down)\n"
        ),
        "{text}"
    );
}

#[test]
fn stats_and_rate_lists() {
    let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                    15       75       60     6000     9000
  -> 198.19.0.11:8080                   10       50       40     4000     6000
  -> 198.19.0.12:8080                    5       25       20     2000     3000
UDP  198.18.0.100:53                     0        0        0        0        0
";
    assert_eq!(list(&view(), ListMode::Stats), want);
    let out = list(&view(), ListMode::Rate);
    assert!(out.contains(
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"
    ));
    assert!(out.contains(
        "UDP  198.18.0.100:53                     1        2        3        4  123456K\n"
    ));
}

#[test]
fn conns_list_is_ipvsadm_layout() {
    let v = ConnsView {
        total: 3,
        truncated: true,
        missing_workers: vec![1],
        conns: vec![ConnInfo {
            protocol: "tcp".into(),
            client: "198.18.0.10".parse().unwrap(),
            cport: 40000,
            vip: "198.18.0.100".parse().unwrap(),
            vport: 80,
            server: "198.19.0.11".parse().unwrap(),
            sport: 8080,
            state: "ESTABLISHED".into(),
            expires_ms: 899_001,
            forward: "nat".into(),
            worker: 0,
            template: false,
            synced: false,
            local: None,
            prefix6: None,
        }],
    };
    let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 15:00  ESTABLISHED 198.18.0.10:40000  198.18.0.100:80    198.19.0.11:8080
(1 of 3 connections shown)
(worker(s) 1 did not answer in time: their connections are missing)
";
    assert_eq!(conns(&v), want);
}

#[test]
fn status_text() {
    let v = StatusView {
        version: "0.1.0".into(),
        pid: 42,
        uptime_secs: 3725,
        config: "/etc/rvs/rvs.toml".into(),
        generation: 2,
        role: "standalone".into(),
        sync: "off".into(),
        api_changes: 1,
        workers: vec![WorkerView {
            id: 0,
            rx_packets: 10,
            tx_packets: 9,
            conns: 1,
            capacity: 65536,
            drops_total: 1,
            drops: [("no_server".to_string(), 1)].into_iter().collect(),
            cost: crate::control::cost::WorkerCost {
                busy_pct: 12.34,
                frames_per_sec: 250_000.0,
                cycles_per_frame: 187.6,
                avg_burst: 7.3,
                ..Default::default()
            },
            conn_memory: "dpdk hugetlbfs 2 MiB pages".into(),
            ..WorkerView::default()
        }],
        services: vec![ServiceHealthView {
            service: "tcp:198.18.0.100:80".into(),
            check: "none".into(),
            servers: vec![ServerHealthView {
                server: "198.19.0.11:8080".into(),
                weight: 3,
                up: true,
                health: "no-check".into(),
                detail: "no check configured".into(),
            }],
        }],
        ..StatusView::default()
    };
    let s = status(&v);
    assert!(s.starts_with("rvs 0.1.0 (pid 42), up 1:02:05, config /etc/rvs/rvs.toml (generation 2)\nrole: standalone  peer: -  sync: off\n"), "{s}");
    assert!(s.contains(
        "live changes since the file was loaded: 1 (a reload (SIGHUP) replaces them with the file)"
    ));
    assert!(s.contains("         drops: no_server=1\n"), "{s}");
    assert!(
        s.contains("         busy 12.3%, 250000 frames/s, 188 cycles/frame, burst 7.3\n"),
        "{s}"
    );
    assert!(s.contains("1/65536"));
    assert!(
        s.contains("         connection table: dpdk hugetlbfs 2 MiB pages\n"),
        "{s}"
    );
    assert!(s.contains(
            "    -> 198.19.0.11:8080      weight 3     up   health: no-check (no check configured)\n"
        ), "{s}");
    assert!(!s.contains("bgp:"));
}

#[test]
fn status_bgp_lines() {
    use crate::control::bgp::{BgpView, BgpVipView};
    let v = StatusView {
        bgp: Some(BgpView {
            bird_socket: "/run/bird/bird.ctl".into(),
            routes_file: "/etc/bird/rvs-vips.conf".into(),
            bird: "error".into(),
            bird_error: Some("cannot connect".into()),
            reconfigures: 3,
            failures: 1,
            vips: vec![
                BgpVipView {
                    vip: "198.18.0.100".parse().unwrap(),
                    state: "announced".into(),
                    reason: "live".into(),
                    since: 1_700_000_000,
                },
                BgpVipView {
                    vip: "198.18.0.101".parse().unwrap(),
                    state: "withdrawn".into(),
                    reason: "operator".into(),
                    since: 951_782_400,
                },
            ],
        }),
        ..StatusView::default()
    };
    let s = status(&v);
    assert!(s.contains("bgp: bird error (3 reconfigures, 1 failures; last error: cannot connect) socket /run/bird/bird.ctl routes /etc/bird/rvs-vips.conf\n"), "{s}");
    assert!(
        s.contains("  198.18.0.100       announced (live) since 2023-11-14 22:13:20 UTC\n"),
        "{s}"
    );
    assert!(
        s.contains("  198.18.0.101       withdrawn (operator) since 2000-02-29 00:00:00 UTC\n"),
        "{s}"
    );
}

/// The view as configured in another order: UDP before TCP, rs2
/// before rs1; with thresholds and persistence templates.
fn unsorted() -> ListView {
    let mut v = view();
    v.services.reverse();
    v.services[1].servers.reverse();
    let rs2 = &mut v.services[1].servers[0];
    rs2.upper_threshold = 10000;
    rs2.lower_threshold = 100;
    rs2.persistent_conns = 7;
    v.services[1].servers[1].persistent_conns = 1;
    v.services[1].persistence = 60;
    v
}

#[test]
fn list_sorts_as_ipvsadm_unless_nosort() {
    let sorted_text = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.11:8080             Masq    3      2          10        
  -> 198.19.0.12:8080             Masq    2      0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
    assert_eq!(list(&unsorted(), ListMode::Plain), sorted_text);
    let config_order = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.12:8080             Masq    2      0          5         
  -> 198.19.0.11:8080             Masq    3      2          10        
";
    let nosort = ListOpts {
        exact: false,
        nosort: true,
    };
    assert_eq!(
        list_with(&unsorted(), ListMode::Plain, nosort),
        config_order
    );
    // addresses sort as numbers, not text: .9 before .10, port 80 before 443
    let mut v = unsorted();
    let mk = |addr: [u8; 4], port| ServerView {
        address: addr.into(),
        port,
        ..ServerView::default()
    };
    v.services[1].servers = vec![
        mk([198, 19, 0, 10], 80),
        mk([198, 19, 0, 9], 443),
        mk([198, 19, 0, 9], 80),
    ];
    v.services[0].vip = "198.18.0.99".parse().unwrap();
    let s = sorted(&v);
    let order: Vec<String> = s.services[0].servers.iter().map(server_name).collect();
    assert_eq!(order, ["198.19.0.9:80", "198.19.0.9:443", "198.19.0.10:80"]);
    assert_eq!(
        s.services[0].protocol, "tcp",
        "TCP before UDP whatever the VIP"
    );
}

#[test]
fn thresholds_and_persistent_conn_columns() {
    let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
  -> RemoteAddress:Port
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.11:8080             0          0          2          10        
  -> 198.19.0.12:8080             10000      100        0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
    assert_eq!(list(&unsorted(), ListMode::Thresholds), want);
    let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn
  -> RemoteAddress:Port
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.11:8080             3         1           2          10        
  -> 198.19.0.12:8080             2         7           0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
    assert_eq!(list(&unsorted(), ListMode::PersistConn), want);
}

#[test]
fn timeout_line_is_ipvsadm_s() {
    let mut v = view();
    v.timeouts = crate::control::ctl_proto::TimeoutsView {
        tcp: 900,
        tcpfin: 120,
        udp: 2,
    };
    assert_eq!(
        list(&v, ListMode::Timeout),
        "Timeout (tcp tcpfin udp): 900 120 2\n"
    );
}
