//! engine::config: `[[service]] ports = [...]`, one service over several
//! ports (issue 14, IPVS's fwmark service): what it parses to, and every
//! error with its key path and line.

use engine::config::{parse, Forward};

/// Six lines: a valid head that cases append to (their line 1 is line 7).
const HEAD: &str = "[dpdk]
cores = \"0-1\"
[[port]]
name = \"client\"
device = \"net_af_packet0,iface=c\"
address = \"198.18.0.2/24\"
";
const HEAD_LINES: usize = 6;

fn doc(case: &str) -> String {
    let body: Vec<&str> = case
        .strip_prefix('\n')
        .unwrap_or(case)
        .lines()
        .map(str::trim)
        .collect();
    HEAD.to_string() + &body.join("\n") + "\n"
}

/// Exactly the errors `expected`: (path, line within the case, a piece of
/// the message).
fn expect(case: &str, expected: &[(&str, usize, &str)]) {
    let text = doc(case);
    let errors = match parse(&text) {
        Ok(c) => panic!("expected errors, parsed {c:#?}"),
        Err(e) => e,
    };
    let got: Vec<_> = errors
        .iter()
        .map(|e| (e.path.clone(), e.line, e.message.clone()))
        .collect();
    assert_eq!(got.len(), expected.len(), "got:\n{errors}\nfrom:\n{text}");
    for &(path, line, piece) in expected {
        let line = line + HEAD_LINES;
        assert!(
            got.iter()
                .any(|(p, l, m)| p == path && *l == line && m.contains(piece)),
            "missing ({path}, {line}, {piece:?})\ngot:\n{errors}\nfrom:\n{text}"
        );
    }
}

#[test]
fn group_parses_to_one_service_over_its_ports() {
    let c = parse(&doc(r#"
        [[service]]
        vip = "198.18.0.100"
        ports = [80, 443]
        scheduler = "rr"
        persistence_timeout = 300
          [[service.server]]
          address = "198.18.0.11"
          [[service.server]]
          address = "198.18.0.12"
          forward = "dr"
          port = 8080
          [service.health_check]
          kind = "tcp"
          connect_port = 80
        [[service]]
        vip = "198.18.0.100"
        ports = [8443]
          [[service.server]]
          address = "198.18.0.11"
        "#))
    .unwrap();
    let s = &c.services[0];
    assert_eq!((s.port, s.ports.as_slice()), (80, &[80, 443][..]));
    assert_eq!(s.vports(), &[80, 443]);
    assert_eq!(s.key(), "tcp:198.18.0.100:80,443");
    // Both keep the client's destination port: NAT has no port, DR's own
    // (ignored) one is not the port packets go to.
    assert_eq!(s.servers[0].port, 0);
    assert_eq!(s.servers[0].effective_port(s), 0);
    assert_eq!(s.servers[1].effective_forward(s), Forward::Dr);
    assert_eq!(s.servers[1].effective_port(s), 0);
    // A one-element list is a one-port service.
    let one = &c.services[1];
    assert_eq!((one.port, one.ports.len()), (8443, 0));
    assert_eq!(one.key(), "tcp:198.18.0.100:8443");
    assert_eq!(one.servers[0].port, 8443);
}

#[test]
fn group_port_list_errors_name_key_and_line() {
    expect(
        r#"
        [[service]]
        vip = "198.18.0.100"
        port = 80
        ports = [80, 443]
        [[service]]
        vip = "198.18.0.101"
        ports = [80, 443, 80]
        [[service]]
        vip = "198.18.0.102"
        ports = [
          0,
          70000,
          "https",
        ]
        [[service]]
        vip = "198.18.0.103"
        ports = []
        [[service]]
        vip = "198.18.0.104"
        ports = 80
        [[service]]
        vip = "198.18.0.105"
        "#,
        &[
            ("service[0].ports", 4, "`ports` and `port` are exclusive"),
            ("service[1].ports[2]", 7, "port 80 is listed twice"),
            ("service[2].ports[0]", 11, "0 is outside 1..65535"),
            ("service[2].ports[1]", 12, "70000 is outside 1..65535"),
            (
                "service[2].ports[2]",
                13,
                "expected an integer, found a string",
            ),
            ("service[3].ports", 17, "lists no port"),
            (
                "service[4].ports",
                20,
                "expected an array of integers, found an integer",
            ),
            (
                "service[5].port",
                21,
                "required key is missing (`port`, or `ports`",
            ),
        ],
    );
}

#[test]
fn group_overlap_nat_server_port_and_portless_check_are_refused() {
    expect(
        r#"
        [[service]]
        vip = "198.18.0.100"
        ports = [80, 443]
          [[service.server]]
          address = "198.18.0.11"
          port = 8080
          [[service.server]]
          address = "198.18.0.12"
          [service.health_check]
          kind = "http"
        [[service]]
        vip = "198.18.0.100"
        port = 443
        [[service]]
        vip = "198.18.0.100"
        ports = [8080, 80]
        protocol = "udp"
        [[service]]
        vip = "198.18.0.100"
        ports = [8080, 8443]
          [service.health_check]
          kind = "exec"
          script = "/bin/true"
        "#,
        &[
            (
                "service[0].server[0].port",
                6,
                "a NAT server of a service over several ports (80,443) keeps the client's destination port: leave `port` out",
            ),
            (
                "service[0].health_check",
                9,
                "a http check of a service over several ports needs `connect_port`",
            ),
            (
                "service[1]",
                11,
                "tcp:198.18.0.100:443 is already defined by service[0]",
            ),
        ],
    );
}
