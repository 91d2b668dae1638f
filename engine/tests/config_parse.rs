//! engine::config: good configurations parse to the expected structs.

use std::fs::Permissions;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
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

/// A file in the temp directory, removed when dropped: `[ha] auth_key_file`.
struct TempFile(PathBuf);

impl TempFile {
    /// A 32-byte key with mode 0600; `name` keeps parallel tests apart.
    fn key(name: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "rvs-config-parse-{}-{name}.key",
            std::process::id()
        ));
        std::fs::write(&path, [0x5a; 32]).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every key of SPEC §4, none at its default; `@KEY@` is the path of an
/// `[ha] auth_key_file`.
const EVERY_KEY: &str = r#"
[dpdk]
cores = "0@0,1@1,2@1"
workers = 2
hugepages = true
memory_mb = 2048
extra_args = ["--log-level=7", "--vdev=net_null0"]

[[port]]
name = "client"
device = "0000:03:00.1"
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
syn_cookies = true

[control]
socket = "/tmp/rvs.sock"
metrics = "127.0.0.1:9100"
drain_timeout_ms = 2500

[notify]
smtp = "mail.example.org:587"
from = "rvs@example.org"
to = ["ops@example.org", "oncall@example.org"]
exec = "/usr/local/bin/on-rvs-event"

[ha]
vrid = 51
priority = 50
port = "client"
peers = ["198.18.0.3", "198.18.0.4"]
advert_interval_ms = 1010
preempt = false
preempt_delay_ms = 30000
virtual_addresses = ["198.18.0.254/24@client", "198.19.255.1/16@servers", "198.18.0.253/24"]
sync = true
sync_port = 9848
auth_key_file = "@KEY@"
"#;

#[test]
fn config_every_key_parses_to_expected_struct() {
    let key = TempFile::key("every-key");
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
                device: "0000:03:00.1".into(),
                address: ip("198.18.0.2"),
                prefix_len: 24,
                gateway: Some(ip("198.18.0.1")),
                ipv6: None,
                mtu: 9000,
                exception_path: true,
                tap_name: "rvs-client".into(),
                snat_addresses: vec![],
                snat_ports: PortConfig::DEFAULT_SNAT_PORTS,
            },
            PortConfig {
                name: "servers".into(),
                device: "0000:03:00.0".into(),
                address: ip("198.19.0.1"),
                prefix_len: 16,
                gateway: None,
                ipv6: None,
                mtu: 1500,
                exception_path: true,
                tap_name: "rvs-servers".into(),
                snat_addresses: vec![],
                snat_ports: PortConfig::DEFAULT_SNAT_PORTS,
            },
        ],
        services: vec![
            ServiceConfig {
                vip: ip("198.18.0.100").into(),
                port: 80,
                ports: Vec::new(),
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
                persistence_prefix: 128,
                sorry_server: Some(SocketAddr::V4(SocketAddrV4::new(ip("198.19.0.99"), 8080))),
                quorum: 4,
                ops: false,
                servers: vec![
                    ServerConfig {
                        address: ip("198.19.0.11").into(),
                        port: 8080,
                        weight: 5,
                        forward: Some(Forward::Nat),
                        upper_threshold: 100,
                        lower_threshold: 50,
                        notify_up: None,
                        notify_down: None,
                    },
                    ServerConfig {
                        address: ip("198.19.0.12").into(),
                        port: 80,
                        weight: 1,
                        forward: None,
                        upper_threshold: 0,
                        lower_threshold: 0,
                        notify_up: None,
                        notify_down: None,
                    },
                ],
                health_check: Some(HealthCheck {
                    kind: HealthCheckKind::Http,
                    path: "/health".into(),
                    expect_status: 204,
                    digest: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
                    host: None,
                    sni: None,
                    tls_verify: false,
                    tls_ca: None,
                    connect_port: None,
                    retry: 0,
                    delay_before_retry_ms: 1000,
                    alpha: false,
                    dns_name: ".".into(),
                    dns_type: DnsType::Soa,
                    script: None,
                    dynamic_weight: false,
                    interval_ms: 2000,
                    timeout_ms: 700,
                    fall: 5,
                    rise: 4,
                    on_failure: OnFailure::WeightZero,
                }),
            },
            ServiceConfig {
                vip: ip("198.18.0.101").into(),
                port: 0,
                ports: Vec::new(),
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
                persistence_prefix: 128,
                sorry_server: None,
                quorum: 1,
                ops: false,
                servers: vec![ServerConfig {
                    address: ip("198.20.0.31").into(),
                    port: 0,
                    weight: 1,
                    forward: None,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    notify_up: None,
                    notify_down: None,
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
            syn_cookies: true,
            expire_nodest_conn: true,
            expire_quiescent_template: false,
        },
        control: ControlConfig {
            socket: PathBuf::from("/tmp/rvs.sock"),
            metrics: Some("127.0.0.1:9100".parse::<SocketAddr>().unwrap()),
            drain_timeout_ms: 2500,
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
            vrid: 51,
            priority: 50,
            port: "client".into(),
            peers: vec![ip("198.18.0.3"), ip("198.18.0.4")],
            advert_interval_ms: 1010,
            preempt: false,
            preempt_delay_ms: 30000,
            virtual_addresses: vec![
                VirtualAddress {
                    address: ip("198.18.0.254"),
                    prefix_len: 24,
                    port: "client".into(),
                },
                VirtualAddress {
                    address: ip("198.19.255.1"),
                    prefix_len: 16,
                    port: "servers".into(),
                },
                // No @PORT: the [ha] port.
                VirtualAddress {
                    address: ip("198.18.0.253"),
                    prefix_len: 24,
                    port: "client".into(),
                },
            ],
            sync: true,
            sync_port: 9848,
            auth_key_file: Some(key.0.clone()),
        }),
        bgp: None,
    };
    let cfg = parse_ok(&EVERY_KEY.replace("@KEY@", key.path()));
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

    // [ha] helpers.
    let ha = cfg.ha.as_ref().unwrap();
    assert_eq!(ha.advert_interval_cs(), 101);
    assert_eq!(cfg.ha_port().unwrap().name, "client");
    assert_eq!(
        ha.virtual_addresses[1].to_string(),
        "198.19.255.1/16@servers"
    );
    assert_eq!(
        cfg.vrrp_addresses(),
        [
            ip("198.18.0.100"),
            ip("198.18.0.101"),
            ip("198.18.0.254"),
            ip("198.19.255.1"),
            ip("198.18.0.253")
        ]
    );
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
    assert_eq!(cfg.control.drain_timeout_ms, 5000);
    assert_eq!(cfg.notify, NotifyConfig::default());
    assert_eq!(cfg.ha, None);
}

#[test]
fn config_ha_defaults() {
    // Only the required vrid (and sync off, which needs no key).
    let cfg = parse_ok(
        "[dpdk]\ncores = \"0-1\"\n[[port]]\nname = \"a\"\ndevice = \"d\"\naddress = \"198.18.0.2/24\"\n\
         [[port]]\nname = \"b\"\ndevice = \"e\"\naddress = \"198.19.0.2/24\"\n[ha]\nvrid = 7\nsync = false\n",
    );
    let ha = cfg.ha.clone().unwrap();
    assert_eq!(
        ha,
        HaConfig {
            vrid: 7,
            priority: 100,
            // No "server(s)" port: the last one.
            port: "b".into(),
            peers: vec![],
            advert_interval_ms: 100,
            preempt: true,
            preempt_delay_ms: 0,
            virtual_addresses: vec![],
            sync: false,
            sync_port: 8848,
            auth_key_file: None,
        }
    );
    assert_eq!(
        ha,
        HaConfig {
            sync: false,
            ..HaConfig::new(7, "b")
        }
    );
    assert_eq!(ha.advert_interval_cs(), 10);
    assert_eq!(cfg.ha_port().unwrap().address, ip("198.19.0.2"));
    assert!(cfg.vrrp_addresses().is_empty());

    // Sync is on by default, with its key; the port named "server" (or
    // "servers") is the default wherever it is.
    let key = TempFile::key("defaults");
    let text = format!(
        r#"
[dpdk]
cores = "0-1"
[[port]]
name = "server"
device = "d"
address = "198.19.0.2/24"
[[port]]
name = "client"
device = "e"
address = "198.18.0.2/24"
[[service]]
vip = "198.18.0.100"
port = 80
[[service]]
vip = "198.18.0.101"
port = 80
[[service]]
vip = "198.18.0.100"
port = 443
[ha]
vrid = 255
virtual_addresses = ["198.19.0.1/24", "198.18.0.1/24@client"]
auth_key_file = "{}"
"#,
        key.path()
    );
    let cfg = parse_ok(&text);
    let ha = cfg.ha.as_ref().unwrap();
    assert_eq!((ha.vrid, ha.port.as_str()), (255, "server"));
    assert!(ha.sync);
    assert_eq!(ha.auth_key_file.as_deref(), Some(key.0.as_path()));
    // "ADDRESS/PREFIX" without @PORT lives on the [ha] port.
    assert_eq!(
        ha.virtual_addresses,
        [
            VirtualAddress {
                address: ip("198.19.0.1"),
                prefix_len: 24,
                port: "server".into()
            },
            VirtualAddress {
                address: ip("198.18.0.1"),
                prefix_len: 24,
                port: "client".into()
            },
        ]
    );
    assert_eq!(ha.virtual_addresses[0].to_string(), "198.19.0.1/24@server");
    assert_eq!(cfg.ha_port().unwrap().name, "server");
    // VIPs once each, in configuration order, then the virtual addresses.
    assert_eq!(
        cfg.vrrp_addresses(),
        [
            ip("198.18.0.100"),
            ip("198.18.0.101"),
            ip("198.19.0.1"),
            ip("198.18.0.1")
        ]
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

/// SPEC §4's example, verbatim but for: a second [[port]] "server" (the
/// example's `[ha] port`, whose subnet holds its peer and virtual address),
/// `@KEY@` for the path of a real `auth_key_file`, and no [bgp] (not in the
/// schema yet).
const SPEC_EXAMPLE_TEMPLATE: &str = r#"
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

[[port]]
name = "server"
device = "net_af_packet1,iface=veth-s"
address = "198.19.0.2/24"

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

[ha]                       # two or more directors, one master (VRRPv3, RFC 5798)
vrid = 51                  # virtual router id 1..255, the same on every director of the group
priority = 100             # 1..254; the highest wins; a tie goes to the higher primary address
port = "server"            # the [[port]] whose segment carries adverts and sync
peers = ["198.19.0.3"]     # unicast adverts and sync to these; empty = multicast 224.0.0.18
advert_interval_ms = 100   # 10..40950 in steps of 10 (VRRPv3 centiseconds)
preempt = true             # a higher priority takes the master role back...
preempt_delay_ms = 0       # ...after this delay and after its bulk sync has arrived
virtual_addresses = ["198.19.0.1/24@server"]  # move with the master besides the VIPs
                           # (ADDRESS/PREFIX@PORT; e.g. the NAT real servers' gateway)
sync = true                # stream connection state to the peers
sync_port = 8848           # UDP
auth_key_file = "@KEY@"   # shared secret (mode 0600, >= 16 bytes): every sync
                           # message carries an HMAC-SHA256 over it; required when sync = true
"#;

/// The SPEC example with a key file of its own.
fn spec_example(name: &str) -> (Config, TempFile) {
    let key = TempFile::key(name);
    let cfg = parse_ok(&SPEC_EXAMPLE_TEMPLATE.replace("@KEY@", key.path()));
    (cfg, key)
}

#[test]
fn config_spec_example_parses() {
    let (cfg, key) = spec_example("spec-example");
    assert_eq!(cfg.dpdk.lcores.len(), 2);
    assert_eq!(cfg.ports.len(), 2);
    let svc = &cfg.services[0];
    assert_eq!(svc.scheduler, SchedKind::Wlc);
    // The sorry server is off the attached subnet: reached through the gateway.
    assert_eq!(
        svc.sorry_server,
        Some(SocketAddr::V4(SocketAddrV4::new(ip("198.19.0.99"), 8080)))
    );
    assert_eq!(svc.servers[0].address, ip("198.19.0.11"));
    assert_eq!(cfg.timeouts, Timeouts::default());
    assert_eq!(
        cfg.notify.smtp.as_ref().unwrap().to_string(),
        "127.0.0.1:25"
    );
    let ha = cfg.ha.as_ref().unwrap();
    assert_eq!(
        (ha.vrid, ha.priority, ha.port.as_str()),
        (51, 100, "server")
    );
    assert_eq!(ha.peers, [ip("198.19.0.3")]);
    assert_eq!((ha.advert_interval_ms, ha.advert_interval_cs()), (100, 10));
    assert_eq!((ha.preempt, ha.preempt_delay_ms), (true, 0));
    assert_eq!(ha.virtual_addresses[0].to_string(), "198.19.0.1/24@server");
    assert_eq!((ha.sync, ha.sync_port), (true, 8848));
    assert_eq!(ha.auth_key_file.as_deref(), Some(key.0.as_path()));
    assert_eq!(cfg.ha_port().unwrap().address, ip("198.19.0.2"));
    assert_eq!(cfg.vrrp_addresses(), [ip("198.18.0.100"), ip("198.19.0.1")]);
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

/// `deploy/rvs.toml`, the real-server example, checks too.
#[test]
fn config_deploy_example_checks() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rvs.toml");
    let cfg = load(&file).unwrap_or_else(|e| panic!("deploy/rvs.toml does not check:\n{e}"));
    assert!(cfg
        .ports
        .iter()
        .all(|p| engine::config::host::is_pci_address(&p.device)));
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
            (ip("198.19.0.11").into(), 8080, 3),
            (ip("198.19.0.12").into(), 8080, 2),
            (ip("198.19.0.13").into(), 8080, 1)
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
    let (mut cfg, _key) = spec_example("validate");
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

    // [ha] values a file could not hold, and rules across sections.
    let (mut cfg, _key) = spec_example("validate-ha");
    let ha = cfg.ha.as_mut().unwrap();
    ha.vrid = 0;
    ha.priority = 255;
    ha.advert_interval_ms = 15;
    ha.sync_port = 0;
    ha.port = "wan".into();
    ha.auth_key_file = None;
    ha.virtual_addresses.push(VirtualAddress {
        address: ip("198.18.0.100"),
        prefix_len: 24,
        port: "client".into(),
    });
    let errors = cfg.validate();
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.line, e.message.as_str()))
        .collect();
    let expected = [
        ("ha.vrid", "0 is outside 1..255"),
        (
            "ha.priority",
            "255 is reserved for the address owner in VRRP",
        ),
        ("ha.advert_interval_ms", "15 is not a multiple of 10"),
        ("ha.sync_port", "0 is outside 1..65535"),
        (
            "ha.port",
            "`wan` is not a configured [[port]] (ports: client, server)",
        ),
        (
            "ha.virtual_addresses[1]",
            "198.18.0.100 is the VIP of service[0] (tcp:198.18.0.100:80)",
        ),
        ("ha.auth_key_file", "required while sync = true"),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (path, piece) in expected {
        assert!(
            got.iter()
                .any(|&(p, l, m)| p == path && l == 0 && m.contains(piece)),
            "missing ({path}, {piece:?}) in {got:#?}"
        );
    }
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

/// A one-service director (DR, mh) for the `[bgp]` tests, `@BGP@` being
/// replaced by the section and `@FWD@`/`@SCHED@` by the service's values.
const BGP_BASE: &str = r#"[dpdk]
cores = "0-1"
[[port]]
name = "lan"
device = "net_null0"
address = "198.18.0.2/24"
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "@SCHED@"
forward = "@FWD@"
  [[service.server]]
  address = "198.18.0.11"
@BGP@"#;

fn bgp_text(section: &str, fwd: &str, sched: &str) -> String {
    BGP_BASE
        .replace("@BGP@", section)
        .replace("@FWD@", fwd)
        .replace("@SCHED@", sched)
}

#[test]
fn config_bgp_defaults_and_keys() {
    let none = parse_ok(&bgp_text("", "nat", "wlc"));
    assert_eq!(none.bgp, None);
    let cfg = parse_ok(&bgp_text("[bgp]\n", "dr", "mh"));
    assert_eq!(cfg.bgp, Some(BgpConfig::default()));
    let d = BgpConfig::default();
    assert_eq!(d.bird_socket, PathBuf::from("/run/bird/bird.ctl"));
    assert_eq!(d.routes_file, PathBuf::from("/etc/bird/rvs-vips.conf"));
    assert_eq!(
        d.withdraw_on,
        WithdrawOn {
            shutdown: true,
            no_server: true,
            backup: true
        }
    );
    assert_eq!(d.shutdown_grace_ms, 3000);
    assert!(cfg.warnings().is_empty());

    let cfg = parse_ok(&bgp_text(
        "[bgp]\nbird_socket = \"/tmp/b.ctl\"\nroutes_file = \"/tmp/r.conf\"\nwithdraw_on = [\"no-server\"]\nshutdown_grace_ms = 0\n",
        "tun",
        "mh",
    ));
    assert_eq!(
        cfg.bgp,
        Some(BgpConfig {
            bird_socket: "/tmp/b.ctl".into(),
            routes_file: "/tmp/r.conf".into(),
            withdraw_on: WithdrawOn {
                no_server: true,
                ..WithdrawOn::NONE
            },
            shutdown_grace_ms: 0,
        })
    );
}

#[test]
fn config_bgp_errors_name_key_and_line() {
    let errs = |text: String| -> Vec<(String, usize, String)> {
        parse(&text)
            .expect_err("must be refused")
            .errors
            .into_iter()
            .map(|e| (e.path, e.line, e.message))
            .collect()
    };
    // Line 14 is `[bgp]`, 15 the first key.
    let e = errs(bgp_text(
        "[bgp]\nwithdraw_on = [\"shutdown\", \"later\"]\n",
        "dr",
        "mh",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "bgp.withdraw_on[1]");
    assert_eq!(e[0].1, 15);
    assert!(e[0].2.contains("`later` is not an event"), "{}", e[0].2);

    let e = errs(bgp_text("[bgp]\nbird_socket = \"bird.ctl\"\n", "dr", "mh"));
    assert_eq!((e[0].0.as_str(), e[0].1), ("bgp.bird_socket", 15), "{e:?}");
    assert!(e[0].2.contains("not an absolute path"));
    let e = errs(bgp_text("[bgp]\nshutdown_grace_ms = 600001\n", "dr", "mh"));
    assert_eq!((e[0].0.as_str(), e[0].1), ("bgp.shutdown_grace_ms", 15));
    let e = errs(bgp_text("[bgp]\nrouter = 1\n", "dr", "mh"));
    assert_eq!((e[0].0.as_str(), e[0].1), ("bgp.router", 15), "{e:?}");

    // Plain NAT behind ECMP: refused, with the reason, at the service's line.
    let e = errs(bgp_text("[bgp]\n", "nat", "mh"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "service[0].forward");
    assert!(e[0].1 >= 7 && e[0].1 <= 12, "line {}", e[0].1);
    assert!(
        e[0].2.contains("plain NAT is refused with [bgp]") && e[0].2.contains("another director"),
        "{}",
        e[0].2
    );
    // The same for a NAT server under a DR service.
    let text = bgp_text("[bgp]\n", "dr", "mh").replace(
        "  address = \"198.18.0.11\"\n",
        "  address = \"198.18.0.11\"\n  forward = \"nat\"\n  port = 8080\n",
    );
    let e = errs(text);
    assert_eq!(e[0].0, "service[0].server[0].forward", "{e:?}");

    // Not mh: accepted, with a warning naming the service.
    let cfg = parse_ok(&bgp_text("[bgp]\n", "dr", "wlc"));
    let w = cfg.warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("service[0].scheduler: tcp:198.18.0.100:80 uses wlc behind [bgp]"),
        "{}",
        w[0]
    );
}
