//! engine::config: every kind of error is reported with its key path and
//! line, and a file with several errors reports all of them.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use engine::config::{parse, parse_named, ConfigErrors};

/// Ten lines: a valid head that cases append to (their line 1 is line 11).
const HEAD: &str = "[dpdk]
cores = \"0-1\"
[[port]]
name = \"client\"
device = \"net_af_packet0,iface=c\"
address = \"198.18.0.2/24\"
[[port]]
name = \"servers\"
device = \"net_af_packet1,iface=s\"
address = \"198.19.0.1/24\"
";
const HEAD_LINES: usize = 10;

/// The text as written in a raw string: the first (empty) line dropped,
/// indentation removed.
fn doc(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    text.lines()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn errors_of(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(cfg) => panic!("expected errors, parsed {cfg:#?}\nfrom:\n{text}"),
        Err(e) => e,
    }
}

/// Checks that `text` gives exactly the errors `expected`: (path, line,
/// a piece of the message).
fn expect_exactly(text: &str, expected: &[(&str, usize, &str)]) {
    let errors = errors_of(text);
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.path.clone(), e.line, e.message.clone()))
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "expected {expected:#?}\ngot:\n{errors}\nfrom:\n{text}"
    );
    for (path, line, piece) in expected {
        assert!(
            got.iter()
                .any(|(p, l, m)| p == path && l == line && m.contains(piece)),
            "missing ({path}, {line}, {piece:?})\ngot:\n{errors}\nfrom:\n{text}"
        );
    }
}

/// A case appended to HEAD; lines are counted within the case.
fn expect_case(case: &str, expected: &[(&str, usize, &str)]) {
    let shifted: Vec<_> = expected
        .iter()
        .map(|&(p, l, m)| (p, l + HEAD_LINES, m))
        .collect();
    expect_exactly(&(HEAD.to_string() + &doc(case)), &shifted);
}

fn expect_ok_case(case: &str) {
    let text = HEAD.to_string() + &doc(case);
    if let Err(e) = parse(&text) {
        panic!("expected a valid config, got:\n{e}\nfrom:\n{text}");
    }
}

/// A file in the temp directory, removed when dropped: `[ha] auth_key_file`.
struct TempFile(PathBuf);

impl TempFile {
    /// `len` bytes with `mode`; `name` keeps parallel tests apart.
    fn new(name: &str, len: usize, mode: u32) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "rvs-config-errors-{}-{name}.key",
            std::process::id()
        ));
        std::fs::write(&path, vec![0x5a; len]).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
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

#[test]
fn config_err_unknown_keys_list_expected_ones() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        scheduller = "rr"
          [[service.server]]
          address = "198.19.0.11"
          wieght = 2
        [dpkd]
        "#,
        &[
            (
                "service[0].scheduller",
                4,
                "unknown key `scheduller` (expected one of: vip, port, ports, protocol, scheduler, scheduler_flags, forward,",
            ),
            ("service[0].server[0].wieght", 7, "unknown key `wieght` (expected one of: address, port, weight,"),
            ("dpkd", 8, "unknown key `dpkd` (expected one of: dpdk, port, service, timeouts, control, notify, ha, bgp)"),
        ],
    );
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            lcores = "0-1"
            [[port]]
            name = "a"
            device = "d"
            address = "198.18.0.2/24"
            [timeouts]
            tcp_estab = 5
            "#),
        &[
            ("dpdk.lcores", 3, "unknown key `lcores`"),
            (
                "timeouts.tcp_estab",
                9,
                "(expected one of: tcp_established, tcp_fin, udp, max_connections,",
            ),
        ],
    );
}

#[test]
fn config_err_wrong_types() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = "80"
        scheduler = 3
        scheduler_flags = "sh-port"
          [[service.server]]
          address = "198.19.0.11"
          weight = 1.5
        [control]
        socket = ["/run/x"]
        [ha]
        sync = "yes"
        vrid = 1
        "#,
        &[
            ("service[0].port", 3, "expected an integer, found a string"),
            (
                "service[0].scheduler",
                4,
                "expected a string, found an integer",
            ),
            (
                "service[0].scheduler_flags",
                5,
                "expected an array of strings, found a string",
            ),
            (
                "service[0].server[0].weight",
                8,
                "expected an integer, found a float",
            ),
            ("control.socket", 10, "expected a string, found an array"),
            ("ha.sync", 12, "expected true or false, found a string"),
        ],
    );
    // Sections of the wrong shape.
    expect_exactly(
        &doc(r#"
            timeouts = 5
            [[dpdk]]
            cores = "0-1"
            [port]
            name = "a"
            "#),
        &[
            ("timeouts", 1, "expected a table, found an integer"),
            ("dpdk", 2, "expected a table, found an array of tables"),
            (
                "port",
                4,
                "expected an array of tables (`[[port]]`), found a table",
            ),
        ],
    );
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        server = { address = "198.19.0.11" }
        health_check = "tcp"
        "#,
        &[
            (
                "service[0].server",
                4,
                "expected an array of tables (`[[service.server]]`), found an inline table",
            ),
            (
                "service[0].health_check",
                5,
                "expected a table, found a string",
            ),
        ],
    );
}

#[test]
fn config_err_bad_addresses() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.300"
        port = 80
        sorry_server = "198.19.0.99"
          [[service.server]]
          address = "198.19.0"
          [[service.server]]
          address = "224.0.0.1"
        [[service]]
        vip = "0.0.0.0"
        port = 81
        sorry_server = "198.19.0.99:0"
        [control]
        metrics = "localhost"
        [ha]
        peers = ["198.19.0.3", "peer"]
        vrid = 1
        "#,
        &[
            ("service[0].vip", 2, "`198.18.0.300` is not an IPv4 address"),
            ("service[0].sorry_server", 4, "`198.19.0.99` is not IP:PORT"),
            (
                "service[0].server[0].address",
                6,
                "`198.19.0` is not an IPv4 address",
            ),
            (
                "service[0].server[1].address",
                8,
                "224.0.0.1 is not a unicast address",
            ),
            ("service[1].vip", 10, "0.0.0.0 is not a unicast address"),
            ("service[1].sorry_server", 12, "port 0 is outside 1..65535"),
            ("control.metrics", 14, "`localhost` is not an address:port"),
            ("ha.peers[1]", 16, "`peer` is not an IPv4 address"),
        ],
    );
}

#[test]
fn config_err_af_packet_jumbo_mtu() {
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "a"
            device = "net_af_packet0,iface=eth1"
            address = "198.18.0.2/24"
            mtu = 9000
            [[port]]
            name = "b"
            device = "0000:03:00.0"
            address = "198.19.0.1/24"
            mtu = 9000
            "#),
        &[(
            "port[0].mtu",
            7,
            "9000: net_af_packet takes frames of at most 1518 bytes (mtu at most 1500)",
        )],
    );
}

#[test]
fn config_err_port_addresses_and_mtu() {
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "a"
            device = "d0"
            address = "198.18.0.2"
            [[port]]
            name = "b"
            device = "d1"
            address = "198.19.0.1/33"
            [[port]]
            name = "c"
            device = "d2"
            address = "198.20.0.0/24"
            mtu = 500
            [[port]]
            name = "d"
            device = "d3"
            address = "198.21.0.1/24"
            mtu = 9001
            "#),
        &[
            (
                "port[0].address",
                6,
                "198.18.0.2 has no prefix length: write ADDRESS/PREFIX, e.g. \"198.18.0.2/24\"",
            ),
            ("port[1].address", 10, "prefix length `33` is outside 1..32"),
            (
                "port[2].address",
                14,
                "198.20.0.0 is the network or broadcast address of 198.20.0.0/24",
            ),
            ("port[2].mtu", 15, "500 is outside 576..9000"),
            ("port[3].mtu", 20, "9001 is outside 576..9000"),
        ],
    );
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "a"
            device = "d0"
            address = "198.21.0.1/24"
            gateway = "198.22.0.1"
            [[port]]
            name = "b"
            device = "d1"
            address = "198.23.0.1/24"
            gateway = "198.23.0.1"
            "#),
        &[
            (
                "port[0].gateway",
                7,
                "198.22.0.1 is not another host on this port's subnet 198.21.0.0/24",
            ),
            (
                "port[1].gateway",
                12,
                "198.23.0.1 is not another host on this port's subnet 198.23.0.0/24",
            ),
        ],
    );
}

#[test]
fn config_err_duplicate_port_names_and_addresses() {
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "lan"
            device = "d0"
            address = "198.18.0.2/24"
            [[port]]
            name = "lan"
            device = "d1"
            address = "198.18.0.2/24"
            "#),
        &[
            (
                "port[1].name",
                8,
                "port name `lan` is already used by port[0]",
            ),
            (
                "port[1].address",
                10,
                "198.18.0.2 is already the address of port[0]",
            ),
        ],
    );
}

#[test]
fn config_err_port_ranges() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 70000
        [[service]]
        vip = "198.18.0.101"
        port = -1
        [[service]]
        vip = "198.18.0.102"
        port = 80
          [[service.server]]
          address = "198.19.0.11"
          port = 0
          [[service.server]]
          address = "198.19.0.12"
          port = 70000
        [[service]]
        vip = "198.18.0.103"
        port = 80
        forward = "dr"
          [[service.server]]
          address = "198.19.0.13"
          port = 65536
        "#,
        &[
            ("service[0].port", 3, "70000 is outside 0..65535"),
            ("service[1].port", 6, "-1 is outside 0..65535"),
            ("service[2].server[0].port", 12, "0 is outside 1..65535"),
            ("service[2].server[1].port", 15, "70000 is outside 1..65535"),
            ("service[3].server[0].port", 22, "65536 is outside 1..65535"),
        ],
    );
    // Port 0 is "all ports" for a service; a DR server's port is ignored.
    expect_ok_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 0
        forward = "dr"
          [[service.server]]
          address = "198.19.0.11"
          port = 8080
        "#,
    );
}

#[test]
fn config_err_weights_and_thresholds() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
          [[service.server]]
          address = "198.19.0.11"
          weight = 70000
          [[service.server]]
          address = "198.19.0.12"
          weight = -1
        [[service]]
        vip = "198.18.0.101"
        port = 80
          [[service.server]]
          address = "198.19.0.11"
          upper_threshold = 100
          lower_threshold = 150
          [[service.server]]
          address = "198.19.0.12"
          upper_threshold = 0
          lower_threshold = 150
        "#,
        &[
            (
                "service[0].server[0].weight",
                6,
                "70000 is outside 0..65535",
            ),
            ("service[0].server[1].weight", 9, "-1 is outside 0..65535"),
            (
                "service[1].server[0].lower_threshold",
                16,
                "150 is above upper_threshold 100",
            ),
        ],
    );
}

#[test]
fn config_err_persistence_netmask() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        persistence_timeout = 300
        persistence_netmask = "255.0.255.0"
        [[service]]
        vip = "198.18.0.101"
        port = 80
        persistence_timeout = -5
        persistence_netmask = "255.255.256.0"
        "#,
        &[
            (
                "service[0].persistence_netmask",
                5,
                "255.0.255.0 is not a contiguous netmask",
            ),
            (
                "service[1].persistence_timeout",
                9,
                "-5 is too small (minimum 0)",
            ),
            (
                "service[1].persistence_netmask",
                10,
                "`255.255.256.0` is not an IPv4 address",
            ),
        ],
    );
}

#[test]
fn config_err_unknown_names() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        protocol = "sctp"
        scheduler = "foo"
        scheduler_flags = ["sh-port", "fast"]
        forward = "masq"
          [[service.server]]
          address = "198.19.0.11"
          forward = "gre"
          [service.health_check]
          kind = "ping"
          on_failure = "panic"
        [ha]
        role = "primary"
        vrid = 1
        sync = false
        "#,
        &[
            ("service[0].protocol", 4, "unknown protocol `sctp` (valid: tcp, udp)"),
            ("service[0].scheduler", 5, "unknown scheduler `foo` (valid: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh)"),
            ("service[0].scheduler_flags[1]", 6, "unknown scheduler flag `fast` (valid: sh-port, sh-fallback, mh-port, mh-fallback)"),
            ("service[0].forward", 7, "unknown forward method `masq` (valid: nat, dr, tun, fnat)"),
            ("service[0].server[0].forward", 10, "unknown forward method `gre` (valid: nat, dr, tun, fnat)"),
            ("service[0].health_check.kind", 12, "unknown health-check kind `ping` (valid: tcp, http, https, dns, exec, none)"),
            ("service[0].health_check.on_failure", 13, "unknown on_failure action `panic` (valid: remove, weight-zero)"),
            ("ha.role", 15, "unknown key `role` (expected one of: vrid, priority, port, peers, advert_interval_ms, preempt, preempt_delay_ms, virtual_addresses, sync, sync_port, auth_key_file)"),
        ],
    );
}

#[test]
fn config_err_scheduler_flag_for_another_scheduler() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        scheduler = "mh"
        scheduler_flags = ["sh-port", "mh-fallback"]
        "#,
        &[(
            "service[0].scheduler_flags",
            5,
            "`sh-port` applies only to scheduler sh, not mh",
        )],
    );
}

#[test]
fn config_err_health_check_values() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
          [service.health_check]
          kind = "tcp"
          interval_ms = 0
          timeout_ms = 0
          fall = 0
          rise = 0
          path = "/x"
        [[service]]
        vip = "198.18.0.101"
        port = 80
          [service.health_check]
          kind = "exec"
        [[service]]
        vip = "198.18.0.102"
        port = 80
          [service.health_check]
          kind = "http"
          path = "health"
          expect_status = 600
          digest = "abc"
          script = "/bin/true"
        "#,
        &[
            (
                "service[0].health_check.interval_ms",
                6,
                "0 is too small (minimum 1)",
            ),
            (
                "service[0].health_check.timeout_ms",
                7,
                "0 is too small (minimum 1)",
            ),
            (
                "service[0].health_check.fall",
                8,
                "0 is too small (minimum 1)",
            ),
            (
                "service[0].health_check.rise",
                9,
                "0 is too small (minimum 1)",
            ),
            (
                "service[0].health_check.path",
                10,
                "`path` applies only to kind \"http\" or \"https\", not \"tcp\"",
            ),
            (
                "service[1].health_check.script",
                14,
                "kind \"exec\" needs a `script`",
            ),
            (
                "service[2].health_check.path",
                21,
                "`health` is not an HTTP path",
            ),
            (
                "service[2].health_check.expect_status",
                22,
                "600 is outside 100..599",
            ),
            (
                "service[2].health_check.digest",
                23,
                "`abc` is not an MD5 digest (32 hex digits)",
            ),
            (
                "service[2].health_check.script",
                24,
                "`script` applies only to kind \"exec\", not \"http\"",
            ),
        ],
    );
}

#[test]
fn config_err_overlapping_services_and_duplicate_servers() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
          [[service.server]]
          address = "198.19.0.11"
          port = 8080
          [[service.server]]
          address = "198.19.0.11"
          port = 8081
          [[service.server]]
          address = "198.19.0.11"
          port = 8080
        [[service]]
        vip = "198.18.0.100"
        port = 80
        protocol = "udp"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        protocol = "tcp"
        [[service]]
        vip = "198.18.0.101"
        port = 80
        forward = "dr"
          [[service.server]]
          address = "198.19.0.11"
          port = 1
          [[service.server]]
          address = "198.19.0.11"
          port = 2
        "#,
        &[
            (
                "service[0].server[2]",
                10,
                "198.19.0.11:8080 is already in this service (server[0])",
            ),
            (
                "service[2]",
                17,
                "tcp:198.18.0.100:80 is already defined by service[0]",
            ),
            (
                "service[3].server[1]",
                28,
                "198.19.0.11 is already in this service (server[0])",
            ),
        ],
    );
}

#[test]
fn config_err_workers_and_cores() {
    let dpdk = |body: &str| {
        doc(body) + "[[port]]\nname = \"a\"\ndevice = \"d\"\naddress = \"198.18.0.2/24\"\n"
    };
    expect_exactly(
        &dpdk(
            r#"
            [dpdk]
            cores = "0-1"
            workers = 2
            "#,
        ),
        &[(
            "dpdk.workers",
            3,
            "2 workers need 3 lcores, but cores \"0-1\" has 2 (the first is the control core)",
        )],
    );
    expect_exactly(
        &dpdk(
            r#"
            [dpdk]
            cores = "0"
            "#,
        ),
        &[(
            "dpdk.workers",
            1,
            "1 workers need 2 lcores, but cores \"0\" has 1",
        )],
    );
    expect_exactly(
        &dpdk(
            r#"
            [dpdk]
            cores = "0-"
            workers = 0
            memory_mb = 0
            hugepages = 1
            extra_args = ["-v", 3]
            "#,
        ),
        &[
            ("dpdk.cores", 2, "bad cores \"0-\": `` is not a number"),
            ("dpdk.workers", 3, "0 is outside 1..127"),
            ("dpdk.memory_mb", 4, "0 is too small (minimum 1)"),
            (
                "dpdk.hugepages",
                5,
                "expected true or false, found an integer",
            ),
            (
                "dpdk.extra_args[1]",
                6,
                "expected a string, found an integer",
            ),
        ],
    );
    expect_exactly(
        &dpdk(
            r#"
            [dpdk]
            cores = "0@0,1@1,1@2"
            "#,
        ),
        &[("dpdk.cores", 2, "lcore 1 is listed twice")],
    );
}

#[test]
fn config_err_missing_sections_and_keys() {
    expect_exactly(
        "",
        &[
            ("dpdk", 1, "required section [dpdk] is missing"),
            ("port", 1, "at least one [[port]] is required"),
        ],
    );
    expect_exactly(
        &doc(r#"
            [dpdk]
            workers = 1
            [[port]]
            name = "a"
            "#),
        &[
            ("dpdk.cores", 1, "required key is missing"),
            ("port[0].device", 3, "required key is missing"),
            ("port[0].address", 3, "required key is missing"),
        ],
    );
    expect_case(
        r#"
        [[service]]
        protocol = "tcp"
          [[service.server]]
          weight = 1
        "#,
        &[
            ("service[0].vip", 1, "required key is missing"),
            ("service[0].port", 1, "required key is missing"),
            ("service[0].server[0].address", 3, "required key is missing"),
        ],
    );
}

#[test]
fn config_err_reachability() {
    // DR needs an attached subnet; TUN and NAT need one or a gateway.
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        forward = "dr"
          [[service.server]]
          address = "198.20.0.11"
          [[service.server]]
          address = "198.20.0.12"
          forward = "tun"
          [[service.server]]
          address = "198.20.0.13"
          forward = "nat"
          port = 8080
          [[service.server]]
          address = "198.19.0.14"
        "#,
        &[
            (
                "service[0].server[0].address",
                6,
                "198.20.0.11 is not on a directly attached subnet (client 198.18.0.0/24, servers 198.19.0.0/24), which dr needs",
            ),
            (
                "service[0].server[1].address",
                8,
                "198.20.0.12 is not reachable with tun: not on an attached subnet (client 198.18.0.0/24, servers 198.19.0.0/24) and no port has a gateway",
            ),
            ("service[0].server[2].address", 11, "198.20.0.13 is not reachable with nat"),
        ],
    );
    // With a gateway, TUN (and NAT) servers elsewhere are fine; DR still is not.
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "wan"
            device = "d"
            address = "198.18.0.2/24"
            gateway = "198.18.0.1"
            [[service]]
            vip = "198.18.0.100"
            port = 80
            forward = "tun"
            sorry_server = "198.21.0.1:80"
              [[service.server]]
              address = "198.20.0.12"
              [[service.server]]
              address = "198.20.0.13"
              forward = "dr"
            "#),
        &[("service[0].server[1].address", 16, "which dr needs")],
    );
}

#[test]
fn config_err_vip_and_server_on_director_addresses() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.2"
        port = 80
          [[service.server]]
          address = "198.19.0.1"
          [[service.server]]
          address = "198.18.0.2"
        "#,
        &[
            (
                "service[0].vip",
                2,
                "198.18.0.2 is the address of port `client`; a VIP needs an address of its own",
            ),
            (
                "service[0].server[0].address",
                5,
                "198.19.0.1 is the director's own address (port `servers`)",
            ),
            (
                "service[0].server[1].address",
                7,
                "198.18.0.2 is the service's own VIP",
            ),
        ],
    );
}

#[test]
fn config_err_timeouts() {
    expect_case(
        r#"
        [timeouts]
        tcp_established = 0
        max_connections = 0
        udp = 4294967296
        "#,
        &[
            ("timeouts.tcp_established", 2, "0 is too small (minimum 1)"),
            ("timeouts.max_connections", 3, "0 is too small (minimum 1)"),
            ("timeouts.udp", 4, "4294967296 is outside 1..4294967295"),
        ],
    );
}

#[test]
fn config_err_notify() {
    expect_case(
        r#"
        [notify]
        smtp = "relay:0"
        from = "rvs"
        to = ["ops@example.org", "ops", "@example.org"]
        "#,
        &[
            (
                "notify.smtp",
                2,
                "`0` in `relay:0` is not a port in 1..65535",
            ),
            (
                "notify.from",
                3,
                "`rvs` is not an email address (local@domain)",
            ),
            ("notify.to[1]", 4, "`ops` is not an email address"),
            ("notify.to[2]", 4, "`@example.org` is not an email address"),
        ],
    );
    expect_case(
        r#"
        [notify]
        smtp = "relay"
        "#,
        &[("notify.to", 1, "`smtp` is set but `to` names no recipient")],
    );
    expect_case(
        r#"
        [notify]
        to = ["ops@example.org"]
        "#,
        &[(
            "notify.smtp",
            1,
            "`to` names recipients but no `smtp` relay is set",
        )],
    );
}

#[test]
fn config_err_ha_vrid_is_required() {
    expect_case(
        r#"
        [ha]
        priority = 100
        sync = false
        "#,
        &[(
            "ha.vrid",
            1,
            "required: the virtual router id 1..255, the same on every director of the group",
        )],
    );
}

#[test]
fn config_err_ha_old_keys_are_unknown() {
    expect_case(
        r#"
        [ha]
        vrid = 1
        role = "master"
        peer = "198.19.0.3"
        sync = false
        "#,
        &[
            (
                "ha.role",
                3,
                "unknown key `role` (expected one of: vrid, priority, port, peers, advert_interval_ms, preempt, preempt_delay_ms, virtual_addresses, sync, sync_port, auth_key_file)",
            ),
            ("ha.peer", 4, "unknown key `peer` (expected one of: vrid,"),
        ],
    );
}

#[test]
fn config_err_ha_ranges() {
    expect_case(
        r#"
        [ha]
        vrid = 0
        priority = 0
        advert_interval_ms = 5
        preempt_delay_ms = 3600001
        sync_port = 0
        preempt = "yes"
        "#,
        &[
            ("ha.vrid", 2, "0 is outside 1..255"),
            ("ha.priority", 3, "0 is outside 1..254"),
            ("ha.advert_interval_ms", 4, "5 is outside 10..40950"),
            ("ha.preempt_delay_ms", 5, "3600001 is outside 0..3600000"),
            ("ha.sync_port", 6, "0 is outside 1..65535"),
            ("ha.preempt", 7, "expected true or false, found a string"),
        ],
    );
    expect_case(
        r#"
        [ha]
        vrid = 256
        priority = 300
        advert_interval_ms = 40960
        sync_port = 65536
        "#,
        &[
            ("ha.vrid", 2, "256 is outside 1..255"),
            ("ha.priority", 3, "300 is outside 1..254"),
            ("ha.advert_interval_ms", 4, "40960 is outside 10..40950"),
            ("ha.sync_port", 5, "65536 is outside 1..65535"),
        ],
    );
    // 255 and odd intervals pass the schema but not the rules.
    expect_case(
        r#"
        [ha]
        vrid = 1
        priority = 255
        advert_interval_ms = 105
        sync = false
        "#,
        &[
            (
                "ha.priority",
                3,
                "255 is reserved for the address owner in VRRP; rvs directors use 1..254",
            ),
            (
                "ha.advert_interval_ms",
                4,
                "105 is not a multiple of 10 (VRRPv3 counts centiseconds)",
            ),
        ],
    );
    expect_ok_case(
        r#"
        [ha]
        vrid = 255
        priority = 254
        advert_interval_ms = 40950
        preempt_delay_ms = 3600000
        sync_port = 65535
        sync = false
        "#,
    );
}

#[test]
fn config_err_ha_port() {
    expect_case(
        r#"
        [ha]
        vrid = 1
        port = "wan"
        sync = false
        "#,
        &[(
            "ha.port",
            3,
            "`wan` is not a configured [[port]] (ports: client, servers); adverts and sync go out through it",
        )],
    );
    expect_case(
        r#"
        [ha]
        vrid = 1
        port = ""
        sync = false
        "#,
        &[("ha.port", 3, "must not be empty")],
    );
    // No port at all: nothing to default to.
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [ha]
            vrid = 1
            sync = false
            "#),
        &[
            ("port", 1, "at least one [[port]] is required"),
            (
                "ha.port",
                3,
                "no [[port]] is configured to carry adverts and sync",
            ),
        ],
    );
    // A [[port]] with errors: the [ha] port and its peers are not judged
    // against the ports that are left.
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "client"
            device = "d"
            address = "198.18.0.2/24"
            [[port]]
            name = "servers"
            device = "e"
            address = "198.19.0.1"
            [ha]
            vrid = 1
            peers = ["198.19.0.3"]
            virtual_addresses = ["198.19.0.254/24@servers"]
            sync = false
            "#),
        &[("port[1].address", 10, "198.19.0.1 has no prefix length")],
    );
}

#[test]
fn config_err_ha_peers() {
    expect_case(
        r#"
        [ha]
        vrid = 1
        sync = false
        peers = [
        "198.19.0.3",
        "198.19.0.1",
        "198.18.0.3",
        "198.19.0.3",
        "198.18.0.2",
        ]
        "#,
        &[
            (
                "ha.peers[1]",
                6,
                "198.19.0.1 is this director's own address (port `servers`); list the other directors",
            ),
            (
                "ha.peers[2]",
                7,
                "198.18.0.3 is not on the subnet of the [ha] port `servers` (198.19.0.0/24): adverts are link-local (TTL 255) and do not cross a router",
            ),
            (
                "ha.peers[3]",
                8,
                "198.19.0.3 is already listed as ha.peers[0]",
            ),
            (
                "ha.peers[4]",
                9,
                "198.18.0.2 is this director's own address (port `client`)",
            ),
        ],
    );
    // The subnet is that of the [ha] port, not any attached one.
    expect_case(
        r#"
        [ha]
        vrid = 1
        port = "client"
        peers = ["198.18.0.3", "198.19.0.3"]
        sync = false
        "#,
        &[(
            "ha.peers[1]",
            4,
            "198.19.0.3 is not on the subnet of the [ha] port `client` (198.18.0.0/24)",
        )],
    );
    expect_case(
        r#"
        [ha]
        vrid = 1
        peers = ["224.0.0.18", "198.19.0.255"]
        sync = false
        "#,
        &[("ha.peers[0]", 3, "224.0.0.18 is not a unicast address")],
    );
    expect_case(
        r#"
        [ha]
        vrid = 1
        peers = "198.19.0.3"
        sync = false
        "#,
        &[(
            "ha.peers",
            3,
            "expected an array of strings, found a string",
        )],
    );
}

#[test]
fn config_err_ha_virtual_addresses() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        [ha]
        vrid = 1
        sync = false
        virtual_addresses = [
        "198.19.0.254/24",
        "198.18.0.254/24@client",
        "198.19.0.254/24@servers",
        "198.19.0.1/24",
        "198.18.0.100/24@client",
        "198.18.0.50/24@wan",
        "198.20.0.1/24@servers",
        "198.19.0.9/16@servers",
        "198.19.0.0/24",
        "198.19.0.255/24",
        "198.18.0.2/24@servers",
        ]
        "#,
        &[
            (
                "ha.virtual_addresses[2]",
                10,
                "198.19.0.254 is already listed as ha.virtual_addresses[0]",
            ),
            (
                "ha.virtual_addresses[3]",
                11,
                "198.19.0.1 is the address of port `servers`; a virtual address needs an address of its own",
            ),
            (
                "ha.virtual_addresses[4]",
                12,
                "198.18.0.100 is the VIP of service[0] (tcp:198.18.0.100:80); VIPs move with the master without being listed here",
            ),
            (
                "ha.virtual_addresses[5]",
                13,
                "`wan` is not a configured [[port]] (ports: client, servers); write ADDRESS/PREFIX@PORT",
            ),
            (
                "ha.virtual_addresses[6]",
                14,
                "198.20.0.1 is not on the subnet of port `servers` (198.19.0.0/24); a virtual address lives on its port's subnet",
            ),
            (
                "ha.virtual_addresses[7]",
                15,
                "prefix length /16 differs from port `servers`'s /24 (198.19.0.0/24); write \"198.19.0.9/24@servers\"",
            ),
            (
                "ha.virtual_addresses[8]",
                16,
                "198.19.0.0 is the network address of 198.19.0.0/24",
            ),
            (
                "ha.virtual_addresses[9]",
                17,
                "198.19.0.255 is the broadcast address of 198.19.0.0/24",
            ),
            (
                "ha.virtual_addresses[10]",
                18,
                "198.18.0.2 is the address of port `client`",
            ),
        ],
    );
    // Syntax.
    expect_case(
        r#"
        [ha]
        vrid = 1
        sync = false
        virtual_addresses = [
        "198.19.0.9",
        "198.19.0.9/33@servers",
        "198.19.0.9/24@",
        "224.0.0.1/24",
        "gateway/24@servers",
        ]
        "#,
        &[
            (
                "ha.virtual_addresses[0]",
                5,
                "198.19.0.9 has no prefix length: write ADDRESS/PREFIX@PORT, e.g. \"198.19.0.9/24@servers\"",
            ),
            (
                "ha.virtual_addresses[1]",
                6,
                "prefix length `33` is outside 1..32",
            ),
            (
                "ha.virtual_addresses[2]",
                7,
                "`198.19.0.9/24@` names no port after `@`",
            ),
            (
                "ha.virtual_addresses[3]",
                8,
                "224.0.0.1 is not a unicast address",
            ),
            (
                "ha.virtual_addresses[4]",
                9,
                "`gateway` is not an IPv4 address",
            ),
        ],
    );
}

#[test]
fn config_err_ha_sync_needs_a_good_key_file() {
    // sync is on by default.
    expect_case(
        r#"
        [ha]
        vrid = 1
        "#,
        &[(
            "ha.auth_key_file",
            1,
            "required while sync = true: a file holding the shared secret that authenticates sync messages (mode 0600, at least 16 bytes",
        )],
    );
    let case = |sync: bool, path: &str| {
        format!("\n[ha]\nvrid = 1\nsync = {sync}\nauth_key_file = \"{path}\"\n")
    };
    expect_case(
        &case(true, "/nonexistent/rvs-ha.key"),
        &[(
            "ha.auth_key_file",
            4,
            "/nonexistent/rvs-ha.key does not exist; create it with a shared secret of at least 16 bytes",
        )],
    );
    let dir = std::env::temp_dir();
    expect_case(
        &case(true, dir.to_str().unwrap()),
        &[(
            "ha.auth_key_file",
            4,
            "is a directory; it must be a regular file holding the key",
        )],
    );
    let open = TempFile::new("mode-0644", 32, 0o644);
    expect_case(
        &case(true, open.path()),
        &[(
            "ha.auth_key_file",
            4,
            &format!(
                "{} has mode 0644; it must not be readable or writable by group or others (chmod 600)",
                open.path()
            ),
        )],
    );
    let group_writable = TempFile::new("mode-0620", 32, 0o620);
    expect_case(
        &case(true, group_writable.path()),
        &[("ha.auth_key_file", 4, "has mode 0620;")],
    );
    let short = TempFile::new("short", 15, 0o600);
    expect_case(
        &case(true, short.path()),
        &[(
            "ha.auth_key_file",
            4,
            &format!(
                "{} holds 15 bytes; the key must be at least 16 bytes",
                short.path()
            ),
        )],
    );
    // A key that is set is checked even while sync is off.
    expect_case(
        &case(false, short.path()),
        &[("ha.auth_key_file", 4, "holds 15 bytes")],
    );
    expect_case(
        "\n[ha]\nvrid = 1\nauth_key_file = \"\"\n",
        &[("ha.auth_key_file", 3, "must not be empty")],
    );
    let good = TempFile::new("good", 16, 0o600);
    expect_ok_case(&case(true, good.path()));
    let read_only = TempFile::new("read-only", 64, 0o400);
    expect_ok_case(&case(true, read_only.path()));
}

#[test]
fn config_err_toml_syntax_has_a_line() {
    let errors = errors_of("[dpdk]\ncores = \"0-1\"\nworkers = = 2\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.errors[0].line, 3);
    assert!(
        errors.errors[0].message.starts_with("invalid TOML"),
        "{errors}"
    );
    let errors = errors_of("[dpdk]\ncores = \"0-1\"\ncores = \"0-2\"\n");
    assert_eq!(errors.errors[0].line, 3, "{errors}");
    // issue 14 item 8: the key of the line, and one line per error
    let errors = errors_of("[dpdk]\ncores = \"0-1\"\nworkers = 99999999999999999999\n");
    assert_eq!(errors.errors[0].path, "workers", "{errors}");
    let errors = errors_of("[dpdk]\ncores = \"0-1\"\n[[port]\nname = \"x\"\n");
    let text = errors.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("<config>:3: invalid TOML: "), "{text}");
}

#[test]
fn config_err_several_errors_all_reported_in_line_order() {
    let text = HEAD.to_string()
        + &doc(r#"
            [[service]]
            vip = "198.18.0.100"
            port = 80
            scheduler = "foo"
              [[service.server]]
              address = "198.19.0.11"
              port = 70000
              weight = 1
            [[service]]
            vip = "198.18.0.101"
            port = 80
            forward = "dr"
              [[service.server]]
              address = "198.25.0.1"
            [timeouts]
            max_connections = 0
            bogus = 1
            "#);
    let errors = parse_named(&text, "rvs.toml").unwrap_err();
    let shown = errors.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines,
        [
            "rvs.toml:14: service[0].scheduler: unknown scheduler `foo` (valid: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh)",
            "rvs.toml:17: service[0].server[0].port: 70000 is outside 1..65535",
            "rvs.toml:24: service[1].server[0].address: 198.25.0.1 is not on a directly attached subnet (client 198.18.0.0/24, servers 198.19.0.0/24), which dr needs",
            "rvs.toml:26: timeouts.max_connections: 0 is too small (minimum 1)",
            "rvs.toml:27: timeouts.bogus: unknown key `bogus` (expected one of: tcp_established, tcp_fin, udp, max_connections, tcp_syn_recv, tcp_time_wait, tcp_close, tcp_close_wait, tcp_last_ack, syn_cookies, expire_nodest_conn, expire_quiescent_template)",
        ],
        "\n{shown}"
    );
    assert_eq!(errors.len(), 5);
    assert_eq!(errors.at("timeouts.bogus").unwrap().line, 27);
}

#[test]
fn config_err_operator_mistakes_are_named() {
    // issue 14 item 9: each of these was accepted without a word
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.255"
        port = 80
        [[service]]
        vip = "198.18.0.101"
        port = 80
        persistence_netmask = "255.255.255.0"
        "#,
        &[
            (
                "service[0].vip",
                2,
                "198.18.0.255 is the broadcast address of port `client`'s subnet 198.18.0.0/24",
            ),
            (
                "service[1].persistence_netmask",
                7,
                "has no effect without persistence_timeout",
            ),
        ],
    );
}

#[test]
fn config_err_ops_is_for_udp() {
    expect_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        ops = true
        [[service]]
        vip = "198.18.0.100"
        port = 53
        protocol = "udp"
        ops = "yes"
        "#,
        &[
            (
                "service[0].ops",
                4,
                "one-packet scheduling is for UDP services",
            ),
            ("service[1].ops", 9, "expected true or false"),
        ],
    );
}

#[test]
fn config_err_two_ports_on_one_interface() {
    expect_exactly(
        &doc(r#"
            [dpdk]
            cores = "0-1"
            [[port]]
            name = "a"
            device = "net_af_packet0,iface=veth0"
            address = "198.18.0.2/24"
            [[port]]
            name = "b"
            device = "net_af_packet1,iface=veth0,qpairs=1"
            address = "198.19.0.2/24"
            "#),
        &[("port[1].device", 9, "uses the same interface as port[0]")],
    );
}

#[test]
fn config_names_are_case_insensitive_as_in_ctl() {
    expect_ok_case(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        protocol = "TCP"
        scheduler = "WRR"
        forward = "NAT"
        "#,
    );
}

/// Found by `ci/fuzz-long.sh config_parse`: a TOML escape (`\n`) in a value
/// that an error message quotes made a two-line message, and `rvs check`
/// prints one error per line. Control characters are escaped.
#[test]
fn config_err_quoted_value_with_a_newline_stays_on_one_line() {
    let text = format!(
        "{HEAD}[[service]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tc\\np\\u001b\"\n"
    );
    let errs = errors_of(&text);
    let e = errs
        .iter()
        .find(|e| e.path == "service[0].protocol")
        .unwrap_or_else(|| panic!("no protocol error in {errs:?}"));
    assert_eq!(e.line, HEAD_LINES + 4);
    assert!(
        !e.message.contains('\n') && !e.message.contains('\u{1b}'),
        "{e:?}"
    );
    assert!(
        e.message.contains("unknown protocol `tc\\np\\u{1b}`"),
        "{e:?}"
    );
}
