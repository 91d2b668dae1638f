//! engine::config: good configurations parse to the expected structs.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use engine::config::*;
use engine::sched::SchedKind;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn parse_ok(text: &str) -> Config {
    match parse(text) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// Every key of SPEC §4, none at its default.
const EVERY_KEY: &str = r#"
[dpdk]
cores = "0@0,1@1,2@1"
workers = 2
hugepages = true
memory_mb = 2048
extra_args = ["--log-level=7", "--vdev=net_null0"]

[[port]]
name = "client"
device = "net_af_packet0,iface=veth-c"
address = "198.18.0.2/24"
gateway = "198.18.0.1"
mtu = 9000

[[port]]
name = "servers"
device = "0000:03:00.0"
address = "198.19.0.1/16"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "udp"
scheduler = "sh"
scheduler_flags = ["sh-port", "sh-fallback"]
forward = "dr"
persistence_timeout = 300
persistence_netmask = "255.255.255.0"
sorry_server = "198.19.0.99:8080"
quorum = 4

  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 5
  forward = "nat"
  upper_threshold = 100
  lower_threshold = 50

  [[service.server]]
  address = "198.19.0.12"

  [service.health_check]
  kind = "http"
  path = "/health"
  expect_status = 204
  digest = "9E107D9D372BB6826BD81D3542A419D6"
  interval_ms = 2000
  timeout_ms = 700
  fall = 5
  rise = 4
  on_failure = "weight-zero"

[[service]]
vip = "198.18.0.101"
port = 0
scheduler = "mh"
scheduler_flags = ["mh-port", "mh-fallback"]
forward = "tun"

  [[service.server]]
  address = "198.20.0.31"

  [service.health_check]
  kind = "exec"
  script = "/bin/check 198.20.0.31"

[timeouts]
tcp_established = 901
tcp_fin = 121
udp = 301
max_connections = 4096
tcp_syn_recv = 61
tcp_time_wait = 122
tcp_close = 11
tcp_close_wait = 62
tcp_last_ack = 31

[control]
socket = "/tmp/rvs.sock"
metrics = "127.0.0.1:9100"

[notify]
smtp = "mail.example.org:587"
from = "rvs@example.org"
to = ["ops@example.org", "oncall@example.org"]
exec = "/usr/local/bin/on-rvs-event"

[ha]
role = "backup"
priority = 50
peer = "198.18.0.3"
advert_interval_ms = 1000
sync = false
"#;

#[test]
fn config_every_key_parses_to_expected_struct() {
    let expected = Config {
        dpdk: DpdkConfig {
            cores: "0@0,1@1,2@1".into(),
            lcores: vec![
                LcoreMap { lcore: 0, cpu: 0 },
                LcoreMap { lcore: 1, cpu: 1 },
                LcoreMap { lcore: 2, cpu: 1 },
            ],
            workers: 2,
            hugepages: true,
            memory_mb: 2048,
            extra_args: vec!["--log-level=7".into(), "--vdev=net_null0".into()],
        },
        ports: vec![
            PortConfig {
                name: "client".into(),
                device: "net_af_packet0,iface=veth-c".into(),
                address: ip("198.18.0.2"),
                prefix_len: 24,
                gateway: Some(ip("198.18.0.1")),
                mtu: 9000,
                exception_path: true,
                tap_name: "rvs-client".into(),
            },
            PortConfig {
                name: "servers".into(),
                device: "0000:03:00.0".into(),
                address: ip("198.19.0.1"),
                prefix_len: 16,
                gateway: None,
                mtu: 1500,
                exception_path: true,
                tap_name: "rvs-servers".into(),
            },
        ],
        services: vec![
            ServiceConfig {
                vip: ip("198.18.0.100"),
                port: 80,
                protocol: Protocol::Udp,
                scheduler: SchedKind::Sh,
                sched_flags: SchedFlags {
                    sh_port: true,
                    sh_fallback: true,
                    ..SchedFlags::default()
                },
                forward: Forward::Dr,
                persistence_timeout: 300,
                persistence_netmask: ip("255.255.255.0"),
                sorry_server: Some(SocketAddrV4::new(ip("198.19.0.99"), 8080)),
                quorum: 4,
                servers: vec![
                    ServerConfig {
                        address: ip("198.19.0.11"),
                        port: 8080,
                        weight: 5,
                        forward: Some(Forward::Nat),
                        upper_threshold: 100,
                        lower_threshold: 50,
                    },
                    ServerConfig {
                        address: ip("198.19.0.12"),
                        port: 80,
                        weight: 1,
                        forward: None,
                        upper_threshold: 0,
                        lower_threshold: 0,
                    },
                ],
                health_check: Some(HealthCheck {
                    kind: HealthCheckKind::Http,
                    path: "/health".into(),
                    expect_status: 204,
                    digest: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
                    script: None,
                    interval_ms: 2000,
                    timeout_ms: 700,
                    fall: 5,
                    rise: 4,
                    on_failure: OnFailure::WeightZero,
                }),
            },
            ServiceConfig {
                vip: ip("198.18.0.101"),
                port: 0,
                protocol: Protocol::Tcp,
                scheduler: SchedKind::Mh,
                sched_flags: SchedFlags {
                    mh_port: true,
                    mh_fallback: true,
                    ..SchedFlags::default()
                },
                forward: Forward::Tun,
                persistence_timeout: 0,
                persistence_netmask: Ipv4Addr::BROADCAST,
                sorry_server: None,
                quorum: 1,
                servers: vec![ServerConfig {
                    address: ip("198.20.0.31"),
                    port: 0,
                    weight: 1,
                    forward: None,
                    upper_threshold: 0,
                    lower_threshold: 0,
                }],
                health_check: Some(HealthCheck {
                    kind: HealthCheckKind::Exec,
                    script: Some("/bin/check 198.20.0.31".into()),
                    ..HealthCheck::default()
                }),
            },
        ],
        timeouts: Timeouts {
            tcp_established: 901,
            tcp_fin: 121,
            udp: 301,
            max_connections: 4096,
            tcp_syn_recv: 61,
            tcp_time_wait: 122,
            tcp_close: 11,
            tcp_close_wait: 62,
            tcp_last_ack: 31,
        },
        control: ControlConfig {
            socket: PathBuf::from("/tmp/rvs.sock"),
            metrics: Some("127.0.0.1:9100".parse::<SocketAddr>().unwrap()),
        },
        notify: NotifyConfig {
            smtp: Some(SmtpRelay {
                host: "mail.example.org".into(),
                port: 587,
            }),
            from: "rvs@example.org".into(),
            to: vec!["ops@example.org".into(), "oncall@example.org".into()],
            exec: Some(PathBuf::from("/usr/local/bin/on-rvs-event")),
        },
        ha: Some(HaConfig {
            role: HaRole::Backup,
            priority: 50,
            peer: Some(ip("198.18.0.3")),
            advert_interval_ms: 1000,
            sync: false,
        }),
    };
    let cfg = parse_ok(EVERY_KEY);
    assert_eq!(cfg, expected);
    assert!(cfg.validate().is_empty());

    // Helpers over the typed config.
    let svc = &cfg.services[0];
    assert_eq!(svc.key(), "udp:198.18.0.100:80");
    assert_eq!(svc.servers[0].effective_forward(svc), Forward::Nat);
    assert_eq!(svc.servers[0].effective_port(svc), 8080);
    assert_eq!(svc.servers[1].effective_forward(svc), Forward::Dr);
    assert_eq!(svc.servers[1].effective_port(svc), 80);
    assert_eq!(cfg.server_count(), 3);
    assert_eq!(cfg.dpdk.main_lcore(), LcoreMap { lcore: 0, cpu: 0 });
    assert_eq!(cfg.dpdk.worker_lcores().len(), 2);
    assert_eq!(cfg.ports[1].netmask(), ip("255.255.0.0"));
    assert_eq!(cfg.ports[1].subnet(), "198.19.0.0/16");
    assert_eq!(cfg.port_for(ip("198.19.7.7")).unwrap().name, "servers");
    assert!(cfg.port_for(ip("10.0.0.1")).is_none());
    assert_eq!(svc.sched_flags.names(), ["sh-port", "sh-fallback"]);
}

#[test]
fn config_minimal_gets_spec_defaults() {
    let cfg = parse_ok(
        r#"
[dpdk]
cores = "0-1"

[[port]]
name = "wan"
device = "net_tap0"
address = "198.18.0.2/24"

[[service]]
vip = "198.18.0.100"
port = 80

  [[service.server]]
  address = "198.18.0.11"

  [service.health_check]
  kind = "http"
"#,
    );
    assert_eq!(cfg.dpdk.workers, 1);
    assert!(!cfg.dpdk.hugepages);
    assert_eq!(cfg.dpdk.memory_mb, 512);
    assert!(cfg.dpdk.extra_args.is_empty());
    assert_eq!(cfg.ports[0].mtu, 1500);
    assert_eq!(cfg.ports[0].gateway, None);
    let svc = &cfg.services[0];
    assert_eq!(svc.protocol, Protocol::Tcp);
    assert_eq!(svc.scheduler, SchedKind::Wlc);
    assert!(svc.sched_flags.is_empty());
    assert_eq!(svc.forward, Forward::Nat);
    assert_eq!(svc.persistence_timeout, 0);
    assert_eq!(svc.persistence_netmask, Ipv4Addr::BROADCAST);
    assert_eq!(svc.sorry_server, None);
    assert_eq!(svc.quorum, 1);
    let srv = &svc.servers[0];
    assert_eq!((srv.port, srv.weight, srv.forward), (80, 1, None));
    assert_eq!((srv.upper_threshold, srv.lower_threshold), (0, 0));
    // http without a path checks "/".
    let hc = svc.health_check.as_ref().unwrap();
    assert_eq!(hc.kind, HealthCheckKind::Http);
    assert_eq!(hc.path, "/");
    assert_eq!(
        (
            hc.expect_status,
            hc.interval_ms,
            hc.timeout_ms,
            hc.fall,
            hc.rise
        ),
        (200, 1000, 500, 3, 2)
    );
    assert_eq!(hc.on_failure, OnFailure::Remove);
    assert_eq!(cfg.timeouts, Timeouts::default());
    assert_eq!(
        (
            cfg.timeouts.tcp_established,
            cfg.timeouts.tcp_fin,
            cfg.timeouts.udp
        ),
        (900, 120, 300)
    );
    assert_eq!(
        (
            cfg.timeouts.tcp_syn_recv,
            cfg.timeouts.tcp_time_wait,
            cfg.timeouts.tcp_close,
            cfg.timeouts.tcp_close_wait,
            cfg.timeouts.tcp_last_ack
        ),
        (60, 120, 10, 60, 30)
    );
    assert_eq!(cfg.control.socket, PathBuf::from("/run/rvs/rvs.sock"));
    assert_eq!(cfg.control.metrics, None);
    assert_eq!(cfg.notify, NotifyConfig::default());
    assert_eq!(cfg.ha, None);
}

#[test]
fn config_empty_ha_section_gets_defaults() {
    let cfg = parse_ok(
        "[dpdk]\ncores = \"0-1\"\n[[port]]\nname = \"a\"\ndevice = \"d\"\naddress = \"198.18.0.2/24\"\n[ha]\n",
    );
    let ha = cfg.ha.unwrap();
    assert_eq!(ha, HaConfig::default());
    assert_eq!(
        (
            ha.role,
            ha.priority,
            ha.peer,
            ha.advert_interval_ms,
            ha.sync
        ),
        (HaRole::Auto, 100, None, 100, true)
    );
}

#[test]
fn config_zero_services_is_valid() {
    let cfg = parse_ok(
        "[dpdk]\ncores = \"0-1\"\n[[port]]\nname = \"a\"\ndevice = \"d\"\naddress = \"198.18.0.2/24\"\n",
    );
    assert!(cfg.services.is_empty());
    assert_eq!(cfg.server_count(), 0);
}

#[test]
fn config_inline_tables_are_accepted() {
    let cfg = parse_ok(
        r#"
dpdk = { cores = "0-1" }
port = [{ name = "a", device = "d", address = "198.18.0.2/24" }]

[[service]]
vip = "198.18.0.100"
port = 80
server = [{ address = "198.18.0.11", port = 8080 }, { address = "198.18.0.12", port = 8080 }]
health_check = { kind = "tcp" }
"#,
    );
    assert_eq!(cfg.services[0].servers.len(), 2);
    assert_eq!(
        cfg.services[0].health_check.as_ref().unwrap().kind,
        HealthCheckKind::Tcp
    );
}

/// SPEC §4's example, verbatim.
const SPEC_EXAMPLE: &str = r#"
[dpdk]
cores = "0-1"              # EAL --lcores syntax: "0-1", or "0@0,1@1,2@1" to map
                           # lcores onto CPUs; the first lcore is the control core
workers = 1                # worker threads, one per remaining lcore
hugepages = false          # false -> --no-huge
memory_mb = 512
extra_args = []            # passed to EAL as is

[[port]]
name = "client"            # or "wan"; one-arm setups have one port
device = "net_af_packet0,iface=veth-c"   # vdev string, or a PCI address
address = "198.18.0.2/24"   # the director's own address on this port
gateway = "198.18.0.1"      # optional

[[service]]
vip = "198.18.0.100"
port = 80                  # 0 = all ports
protocol = "tcp"           # tcp | udp
scheduler = "wlc"          # rr wrr lc wlc lblc lblcr dh sh (+ sed nq mh)
forward = "nat"            # nat | tun | dr : default for its servers
persistence_timeout = 0    # seconds; 0 = off
persistence_netmask = "255.255.255.255"
sorry_server = "198.19.0.99:8080"   # optional, used while no server is up
quorum = 1                 # optional: sum of live weights needed (keepalived)

  [[service.server]]
  address = "198.19.0.11"
  port = 8080              # ignored for dr/tun (they keep the VIP port)
  weight = 1
  forward = "nat"          # optional per-server override, as in IPVS
  upper_threshold = 0      # max active+inactive conns, 0 = none
  lower_threshold = 0

  [service.health_check]
  kind = "http"            # tcp | http | exec | none
  path = "/"
  expect_status = 200
  interval_ms = 1000
  timeout_ms = 500
  fall = 3                 # consecutive failures to mark down
  rise = 2                 # consecutive successes to mark up
  on_failure = "remove"    # remove | weight-zero (keepalived's inhibit_on_failure)

[timeouts]                 # seconds, IPVS defaults
tcp_established = 900
tcp_fin = 120
udp = 300
max_connections = 1048576  # per director; table memory is allocated up front

[control]
socket = "/run/rvs/rvs.sock"
metrics = "127.0.0.1:9100" # Prometheus text format, optional

[notify]
smtp = "127.0.0.1:25"      # optional
from = "rvs@example.org"
to = ["ops@example.org"]
exec = "/usr/local/bin/on-rvs-event"   # optional; gets the event as JSON on stdin

[ha]
role = "auto"              # auto (elect) | master | backup
priority = 100
peer = "198.18.0.3"         # the other director
advert_interval_ms = 100
sync = true                # stream connection state to the peer
"#;

#[test]
fn config_spec_example_parses() {
    let cfg = parse_ok(SPEC_EXAMPLE);
    assert_eq!(cfg.dpdk.lcores.len(), 2);
    assert_eq!(cfg.ports.len(), 1);
    let svc = &cfg.services[0];
    assert_eq!(svc.scheduler, SchedKind::Wlc);
    // The sorry server is off the attached subnet: reached through the gateway.
    assert_eq!(
        svc.sorry_server,
        Some(SocketAddrV4::new(ip("198.19.0.99"), 8080))
    );
    assert_eq!(svc.servers[0].address, ip("198.19.0.11"));
    assert_eq!(cfg.timeouts, Timeouts::default());
    assert_eq!(
        cfg.notify.smtp.as_ref().unwrap().to_string(),
        "127.0.0.1:25"
    );
    assert_eq!(cfg.ha.as_ref().unwrap().peer, Some(ip("198.18.0.3")));
}

#[test]
fn config_every_file_in_configs_checks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "configs/ holds {files:?}");
    for file in &files {
        if let Err(e) = load(file) {
            panic!("{} does not check:\n{e}", file.display());
        }
    }
}

#[test]
fn config_demo_nat_is_as_documented() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let cfg = load(&dir.join("demo-nat.toml")).unwrap();
    assert_eq!(cfg.dpdk.cores, "0@0,1@1");
    assert_eq!(
        (cfg.dpdk.workers, cfg.dpdk.hugepages, cfg.dpdk.memory_mb),
        (1, false, 256)
    );
    let ports: Vec<_> = cfg
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.device.as_str(), p.address, p.prefix_len))
        .collect();
    assert_eq!(
        ports,
        [
            (
                "client",
                "net_af_packet0,iface=dc,qpairs=1",
                ip("198.18.0.2"),
                24
            ),
            (
                "servers",
                "net_af_packet1,iface=ds,qpairs=1",
                ip("198.19.0.1"),
                24
            ),
        ]
    );
    let tcp = &cfg.services[0];
    assert_eq!(tcp.key(), "tcp:198.18.0.100:80");
    assert_eq!((tcp.scheduler, tcp.forward), (SchedKind::Wrr, Forward::Nat));
    let servers: Vec<_> = tcp
        .servers
        .iter()
        .map(|s| (s.address, s.port, s.weight))
        .collect();
    assert_eq!(
        servers,
        [
            (ip("198.19.0.11"), 8080, 3),
            (ip("198.19.0.12"), 8080, 2),
            (ip("198.19.0.13"), 8080, 1)
        ]
    );
    let udp = &cfg.services[1];
    assert_eq!(udp.key(), "udp:198.18.0.100:53");
    assert_eq!(udp.scheduler, SchedKind::Rr);
    assert!(udp.servers.iter().all(|s| s.port == 5353));
    assert_eq!(udp.servers.len(), 3);
    assert_eq!(cfg.timeouts.max_connections, 65536);
    assert_eq!(cfg.control.socket, PathBuf::from("/run/rvs/demo.sock"));
}

#[test]
fn config_validate_checks_changes_made_in_code() {
    let mut cfg = parse_ok(SPEC_EXAMPLE);
    assert!(cfg.validate().is_empty());
    // A live add-server of a server already there, with a weight too large.
    let mut dup = cfg.services[0].servers[0].clone();
    dup.weight = 70000;
    cfg.services[0].servers.push(dup);
    // A live add-service overlapping the first.
    let svc = cfg.services[0].clone();
    cfg.services.push(svc);
    let errors = cfg.validate();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"service[0].server[1]"), "{errors:?}");
    assert!(paths.contains(&"service[0].server[1].weight"), "{errors:?}");
    assert!(paths.contains(&"service[1]"), "{errors:?}");
    assert!(errors.iter().all(|e| e.line == 0));
}

#[test]
fn config_load_names_the_file() {
    let missing = Path::new("/nonexistent/rvs.toml");
    let e = load(missing).unwrap_err();
    assert_eq!(e.file, "/nonexistent/rvs.toml");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rvs.toml: cannot read: "),
        "{e}"
    );
}
