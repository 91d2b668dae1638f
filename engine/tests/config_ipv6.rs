//! IPv6 endpoints in configuration and control (issue 13, stage 1): a
//! port's `address`/`gateway` list form, IPv6 VIPs and servers,
//! `persistence_prefix`, the same-family rule, `rvs check` messages, and
//! `rvs ctl`/`list`/`--json`/`save` writing IPv6 endpoints as
//! `[addr]:port`; health checks that connect to `[addr]:port`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};

use engine::config::{parse, save, Config, ConfigErrors, Forward, PortIpv6};
use engine::control::ctl_proto::{ListView, Request, ServerArgs, ServiceArgs};
use engine::control::edit;
use engine::control::format::{self, ListMode};
use engine::control::health::probe::CheckSpec;

const HEAD: &str = r#"[dpdk]
cores = "0-1"
[[port]]
name = "client"
device = "net_af_packet0,iface=c"
address = ["198.18.0.2/24", "2001:db8:0:1::2/64"]
gateway = ["198.18.0.1", "2001:db8:0:1::1"]
[[port]]
name = "servers"
device = "net_af_packet1,iface=s"
address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]
"#;
/// Lines in `HEAD`: a case's line 1 is line `HEAD_LINES + 1`.
const HEAD_LINES: usize = 11;

const V6_SERVICE: &str = r#"[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "wrr"
persistence_timeout = 300
persistence_prefix = 64
sorry_server = "[2001:db8:0:2::99]:8080"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "[2001:db8:0:2::12]"
  port = 8080
  weight = 2
  [service.health_check]
  kind = "tcp"
[[service]]
vip = "198.18.0.100"
port = 80
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
"#;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\nfrom:\n{text}"))
}

fn errors_of(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(cfg) => panic!("expected errors, parsed {cfg:#?}\nfrom:\n{text}"),
        Err(e) => e,
    }
}

/// `HEAD` + `case` gives exactly `expected`: (path, line in `case`, a piece
/// of the message).
fn expect_exactly(case: &str, expected: &[(&str, usize, &str)]) {
    let text = format!("{HEAD}{case}");
    let errors = errors_of(&text);
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
        let line = HEAD_LINES + line;
        assert!(
            got.iter()
                .any(|(p, l, m)| p == path && *l == line && m.contains(piece)),
            "missing ({path}, {line}, {piece:?})\ngot:\n{errors}\nfrom:\n{text}"
        );
    }
}

#[test]
fn a_port_takes_one_address_of_each_family_and_an_ipv6_service_parses() {
    let cfg = ok(&format!("{HEAD}{V6_SERVICE}"));
    let client = &cfg.ports[0];
    assert_eq!(
        client.address,
        "198.18.0.2".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(client.prefix_len, 24);
    assert_eq!(client.gateway, Some("198.18.0.1".parse().unwrap()));
    assert_eq!(
        client.ipv6,
        Some(PortIpv6 {
            address: v6("2001:db8:0:1::2"),
            prefix_len: 64,
            gateway: Some(v6("2001:db8:0:1::1")),
        })
    );
    assert_eq!(cfg.ports[1].ipv6.unwrap().subnet(), "2001:db8:0:2::/64");
    assert_eq!(
        cfg.port_for6(v6("2001:db8:0:2::11")).unwrap().name,
        "servers"
    );
    assert!(cfg.port_for6(v6("2001:db8:0:3::11")).is_none());

    let svc = &cfg.services[0];
    assert_eq!(svc.vip, IpAddr::V6(v6("2001:db8:0:1::100")));
    assert!(svc.is_ipv6() && svc.vip_v4().is_none());
    assert_eq!(svc.key(), "tcp:[2001:db8:0:1::100]:80");
    assert_eq!(svc.persistence_prefix, 64);
    assert_eq!(
        svc.sorry_server,
        Some(SocketAddr::new(v6("2001:db8:0:2::99").into(), 8080))
    );
    let idents: Vec<String> = svc.servers.iter().map(|s| s.ident(svc)).collect();
    assert_eq!(
        idents,
        ["[2001:db8:0:2::11]:8080", "[2001:db8:0:2::12]:8080"]
    );
    // The IPv4 service beside it is as before; IPv6 VIPs stay out of the
    // IPv4 VRRP advert.
    assert_eq!(cfg.services[1].key(), "tcp:198.18.0.100:80");
    assert_eq!(cfg.services[1].persistence_prefix, 128);
    assert_eq!(
        cfg.vrrp_addresses(),
        ["198.18.0.100".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    // The IPv6 service (persistence and a sorry server) is forwarded:
    // `rvs check` has nothing to say.
    assert!(svc.forwards_ipv6());
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    // A one-string IPv4 port has no IPv6 side.
    let plain = ok(&HEAD.replace(
        r#"address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]"#,
        r#"address = "198.19.0.1/24""#,
    ));
    assert_eq!(plain.ports[1].ipv6, None);
}

#[test]
fn port_address_and_gateway_lists_are_checked_element_by_element() {
    let port = |address: &str, gateway: &str| {
        format!(
            "[[port]]\nname = \"third\"\ndevice = \"net_af_packet2,iface=t\"\naddress = {address}\n{gateway}"
        )
    };
    expect_exactly(
        &port(r#"["198.20.0.1/24", "198.21.0.1/24"]"#, ""),
        &[(
            "port[2].address[1]",
            4,
            "`198.21.0.1/24`: at most one address of each family (one IPv4, one IPv6)",
        )],
    );
    expect_exactly(
        &port(r#""2001:db8:0:3::1/64""#, ""),
        &[(
            "port[2].address",
            4,
            "a port needs an IPv4 address (IPv6-only ports are not supported yet)",
        )],
    );
    expect_exactly(
        &port(r#"["198.20.0.1/24", "2001:db8:0:3::1/129"]"#, ""),
        &[(
            "port[2].address[1]",
            4,
            "prefix length `129` is outside 1..128",
        )],
    );
    expect_exactly(
        &port(r#"["198.20.0.1/24", "fe80::1/64"]"#, ""),
        &[("port[2].address[1]", 4, "fe80::1 is link-local")],
    );
    expect_exactly(
        &port(r#"["198.20.0.1/24", "2001:db8:0:3::1"]"#, ""),
        &[(
            "port[2].address[1]",
            4,
            "has no prefix length: write ADDRESS/PREFIX, e.g. \"2001:db8::2/64\"",
        )],
    );
    expect_exactly(
        &port(r#"[]"#, ""),
        &[("port[2].address", 4, "lists no address")],
    );
    expect_exactly(
        &port(r#"7"#, ""),
        &[("port[2].address", 4, "a string or an array of strings")],
    );
    expect_exactly(
        &port(r#""198.20.0.1/24""#, "gateway = \"2001:db8:0:3::9\"\n"),
        &[(
            "port[2].gateway",
            5,
            "an IPv6 gateway needs an IPv6 address on the port",
        )],
    );
    expect_exactly(
        &port(
            r#"["198.20.0.1/24", "2001:db8:0:3::1/64"]"#,
            "gateway = [\"198.20.0.9\", \"2001:db8:0:4::9\"]\n",
        ),
        &[(
            "port[2].gateway",
            5,
            "2001:db8:0:4::9 is not another host on this port's subnet 2001:db8:0:3::/64",
        )],
    );
    expect_exactly(
        &port(r#"["198.20.0.1/24", "2001:db8:0:1::2/64"]"#, ""),
        &[(
            "port[2].address",
            4,
            "2001:db8:0:1::2 is already the address of port[0]",
        )],
    );
}

#[test]
fn a_service_and_its_servers_are_of_one_family() {
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n  [[service.server]]\n  address = \"198.19.0.11\"\n",
        &[(
            "service[0].server[0].address",
            5,
            "198.19.0.11 is IPv4 but the VIP 2001:db8:0:1::100 is IPv6: a service's servers are in its VIP's family",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"198.18.0.100\"\nport = 80\nforward = \"dr\"\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n",
        &[(
            "service[0].server[0].address",
            6,
            "2001:db8:0:2::11 is IPv6 but the VIP 198.18.0.100 is IPv4",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"198.18.0.100\"\nport = 80\nsorry_server = \"[2001:db8:0:2::99]:80\"\n",
        &[(
            "service[0].sorry_server",
            4,
            "2001:db8:0:2::99 is IPv6 but the VIP 198.18.0.100 is IPv4",
        )],
    );
}

#[test]
fn persistence_takes_a_netmask_for_ipv4_and_a_prefix_for_ipv6() {
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\npersistence_timeout = 60\npersistence_netmask = \"255.255.255.0\"\n",
        &[(
            "service[0].persistence_netmask",
            5,
            "is for IPv4 services; the IPv6 VIP 2001:db8:0:1::100 takes a prefix length: persistence_prefix = 64",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"198.18.0.100\"\nport = 80\npersistence_timeout = 60\npersistence_prefix = 24\n",
        &[(
            "service[0].persistence_prefix",
            5,
            "is for IPv6 services; the IPv4 VIP 198.18.0.100 takes persistence_netmask",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\npersistence_prefix = 64\n",
        &[(
            "service[0].persistence_prefix",
            4,
            "has no effect without persistence_timeout",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\npersistence_timeout = 60\npersistence_prefix = 0\n",
        &[("service[0].persistence_prefix", 5, "0 is outside 1..128")],
    );
}

#[test]
fn ipv6_addresses_get_the_same_checks_as_ipv4_ones() {
    // Own address, reachability for dr, link-local, multicast, mapped,
    // brackets in an endpoint.
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::2\"\nport = 80\n",
        &[(
            "service[0].vip",
            2,
            "2001:db8:0:1::2 is the address of port `client`; a VIP needs an address of its own",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nforward = \"dr\"\n  [[service.server]]\n  address = \"2001:db8:0:9::11\"\n",
        &[(
            "service[0].server[0].address",
            6,
            "2001:db8:0:9::11 is not on a directly attached IPv6 subnet (client 2001:db8:0:1::/64, servers 2001:db8:0:2::/64), which dr needs",
        )],
    );
    // NAT to another subnet is routed through the IPv6 gateway.
    ok(&format!(
        "{HEAD}[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n  [[service.server]]\n  address = \"2001:db8:0:9::11\"\n"
    ));
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n  [[service.server]]\n  address = \"2001:db8:0:2::1\"\n",
        &[(
            "service[0].server[0].address",
            5,
            "2001:db8:0:2::1 is the director's own address (port `servers`)",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"fe80::100\"\nport = 80\n",
        &[("service[0].vip", 2, "fe80::100 is link-local")],
    );
    expect_exactly(
        "[[service]]\nvip = \"ff02::1\"\nport = 80\n",
        &[("service[0].vip", 2, "ff02::1 is not a unicast address")],
    );
    expect_exactly(
        "[[service]]\nvip = \"::ffff:198.18.0.100\"\nport = 80\n",
        &[("service[0].vip", 2, "is an IPv4-mapped address")],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nsorry_server = \"2001:db8:0:2::99:8080\"\n",
        &[(
            "service[0].sorry_server",
            4,
            "is not IP:PORT (IPv6: [ADDRESS]:PORT)",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n",
        &[(
            "service[1]",
            4,
            "tcp:[2001:db8:0:1::100]:80 is already defined by service[0]",
        )],
    );
}

#[test]
fn ctl_reads_bracketed_ipv6_services_and_servers() {
    let k = edit::parse_service("tcp:[2001:db8::100]:80").unwrap();
    assert_eq!(k.vip, IpAddr::V6(v6("2001:db8::100")));
    assert_eq!((k.port, k.ports.clone()), (80, vec![]));
    assert_eq!(k.to_string(), "tcp:[2001:db8::100]:80");
    let k = edit::parse_service("UDP:[2001:db8::100]:53,5353").unwrap();
    assert_eq!(k.to_string(), "udp:[2001:db8::100]:53,5353");
    assert_eq!(
        edit::parse_service("tcp:2001:db8::100:80").unwrap_err(),
        "service: write an IPv6 VIP in brackets: `tcp:[ADDRESS]:PORT` (in `tcp:2001:db8::100:80`)"
    );
    assert!(edit::parse_service("tcp:[2001:db8::100]80")
        .unwrap_err()
        .contains("is not PROTO:VIP:PORT"));
    assert!(edit::parse_service("tcp:[2001:db8::zz]:80")
        .unwrap_err()
        .contains("is not an IPv4 or IPv6 address"));
    // IPv4 as before.
    assert_eq!(
        edit::parse_service("tcp:198.18.0.100:80,443")
            .unwrap()
            .to_string(),
        "tcp:198.18.0.100:80,443"
    );

    let a: IpAddr = v6("2001:db8::11").into();
    assert_eq!(
        edit::parse_server("[2001:db8::11]:8080"),
        Ok((a, Some(8080)))
    );
    assert_eq!(edit::parse_server("[2001:db8::11]"), Ok((a, None)));
    assert_eq!(edit::parse_server("2001:db8::11"), Ok((a, None)));
    assert!(edit::parse_server("[2001:db8::11]:0")
        .unwrap_err()
        .contains("is not a port"));
    assert!(edit::parse_server("[2001:db8::11]x")
        .unwrap_err()
        .contains("is not [IPV6]:PORT"));
}

fn svc_args(service: &str) -> ServiceArgs {
    ServiceArgs {
        service: service.into(),
        ..ServiceArgs::default()
    }
}

fn server_args(service: &str, server: &str, weight: u32) -> ServerArgs {
    ServerArgs {
        service: service.into(),
        server: server.into(),
        weight: Some(weight),
        ..ServerArgs::default()
    }
}

#[test]
fn live_changes_add_ipv6_services_list_them_and_save_them() {
    let text = format!("{HEAD}{V6_SERVICE}");
    let cfg = ok(&text);
    let key = "tcp:[2001:db8:0:1::200]:443";
    let mut add = svc_args(key);
    add.scheduler = Some("rr".into());
    add.persistence = Some(60);
    add.persistence_prefix = Some(48);
    let (cfg, msg) = edit::apply(&cfg, &Request::AddService(add)).unwrap();
    assert_eq!(msg, "added service tcp:[2001:db8:0:1::200]:443");
    let (cfg, msg) = edit::apply(
        &cfg,
        &Request::AddServer(server_args(key, "[2001:db8:0:2::21]:8443", 4)),
    )
    .unwrap();
    assert_eq!(
        msg,
        "added server [2001:db8:0:2::21]:8443 to tcp:[2001:db8:0:1::200]:443"
    );
    // The same rules as the file: another family is refused, naming it.
    let e = edit::apply(
        &cfg,
        &Request::AddServer(server_args(key, "198.19.0.21:8443", 1)),
    )
    .unwrap_err();
    assert!(
        e.contains("service[2].server[1].address: 198.19.0.21 is IPv4 but the VIP 2001:db8:0:1::200 is IPv6"),
        "{e}"
    );
    let e = edit::apply(
        &cfg,
        &Request::AddServer(server_args(key, "[2001:db8:0:2::21]:8443", 1)),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "server: [2001:db8:0:2::21]:8443 is already a server of tcp:[2001:db8:0:1::200]:443"
    );
    // edit-server finds it by [addr]:port.
    let (cfg, msg) = edit::apply(
        &cfg,
        &Request::EditServer(server_args(key, "[2001:db8:0:2::21]:8443", 7)),
    )
    .unwrap();
    assert_eq!(
        msg,
        "changed server [2001:db8:0:2::21]:8443 of tcp:[2001:db8:0:1::200]:443 (weight 7)"
    );

    // `rvs ctl save`: the file gains the service, and reads back the same.
    let saved = save::render(&text, &cfg).unwrap();
    assert!(
        saved.contains("vip = \"2001:db8:0:1::200\"")
            && saved.contains("persistence_prefix = 48")
            && saved.contains("address = \"2001:db8:0:2::21\""),
        "{saved}"
    );
    assert_eq!(ok(&saved), cfg);

    // del-server and del-service by the bracketed names.
    let (cfg2, msg) = edit::apply(
        &cfg,
        &Request::DelServer {
            service: key.into(),
            server: "[2001:db8:0:2::21]:8443".into(),
        },
    )
    .unwrap();
    assert!(msg.contains("[2001:db8:0:2::21]:8443"), "{msg}");
    let (cfg2, _) = edit::apply(
        &cfg2,
        &Request::DelService {
            service: key.into(),
        },
    )
    .unwrap();
    assert_eq!(cfg2.services.len(), 2);
}

/// The list view as the controller builds it from a configuration (what
/// `list` prints for services the data plane has no counters of).
fn view_of(cfg: &Config) -> ListView {
    use engine::control::ctl_proto::{ServerView, ServiceView};
    ListView {
        version: "test".into(),
        size: 1024,
        generation: 1,
        timeouts: Default::default(),
        services: cfg
            .services
            .iter()
            .map(|s| ServiceView {
                protocol: s.protocol.name().into(),
                vip: s.vip,
                port: s.port,
                scheduler: s.scheduler.name().into(),
                forward: s.forward.name().into(),
                persistence: s.persistence_timeout,
                persistence_netmask: s.persistence_netmask,
                persistence_prefix: s.persistence_prefix,
                sorry_server: s.sorry_server.map(|a| a.to_string()),
                servers: s
                    .servers
                    .iter()
                    .map(|d| ServerView {
                        address: d.address,
                        port: d.effective_port(s),
                        forward: d.effective_forward(s).name().into(),
                        weight: d.weight,
                        effective_weight: d.weight,
                        up: true,
                        ..ServerView::default()
                    })
                    .collect(),
                ..ServiceView::default()
            })
            .collect(),
    }
}

#[test]
fn list_and_json_write_ipv6_endpoints_in_brackets() {
    let cfg = ok(&format!("{HEAD}{V6_SERVICE}"));
    let v = view_of(&cfg);
    let text = format::list(&v, ListMode::Plain);
    let lines: Vec<&str> = text.lines().collect();
    // ipvsadm's sort: the IPv4 service first, then the IPv6 one.
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"))
    };
    let v4 = at("TCP  198.18.0.100:80 wlc");
    let v6 = at("TCP  [2001:db8:0:1::100]:80 wrr persistent 300 mask 64");
    assert!(v4 < v6, "{text}");
    assert!(
        lines[v6 + 1].starts_with("  -> [2001:db8:0:2::11]:8080"),
        "{text}"
    );
    assert!(
        lines[v6 + 2].starts_with("  -> [2001:db8:0:2::12]:8080"),
        "{text}"
    );
    assert!(
        lines[v6 + 1].contains("Masq") && lines[v6 + 1].contains(" 3 "),
        "{text}"
    );

    // JSON: bare addresses (the port is its own key), the key bracketed.
    let json = serde_json::to_value(&v).unwrap();
    let s6 = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["vip"] == "2001:db8:0:1::100")
        .expect("the IPv6 service");
    assert_eq!(s6["port"], 80);
    assert_eq!(s6["persistence_prefix"], 64);
    assert_eq!(s6["sorry_server"], "[2001:db8:0:2::99]:8080");
    assert_eq!(s6["servers"][0]["address"], "2001:db8:0:2::11");
    assert_eq!(s6["servers"][0]["port"], 8080);
    let back: ListView = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, v);
    assert_eq!(v.services[0].key(), "tcp:[2001:db8:0:1::100]:80");
}

#[test]
fn health_checks_connect_to_bracketed_ipv6_servers() {
    let cfg = ok(&format!("{HEAD}{V6_SERVICE}"));
    let svc = &cfg.services[0];
    let spec = CheckSpec::of(svc, &svc.servers[1]).unwrap().unwrap();
    assert_eq!(
        spec.target,
        SocketAddr::new(v6("2001:db8:0:2::12").into(), 8080)
    );
    let shown = spec.to_string();
    assert!(
        shown.starts_with("tcp connect to [2001:db8:0:2::12]:8080,"),
        "{shown}"
    );
    assert_eq!(svc.servers[1].effective_forward(svc), Forward::Nat);

    // A real probe over IPv6 loopback (skipped where the host has no IPv6).
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here: probe part skipped");
        return;
    };
    let target = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap_or(0);
            if n > 0 {
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = c.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                return Some(req);
            }
        }
        None
    });
    let mut spec = CheckSpec::new(&Default::default(), target);
    spec.kind = engine::config::HealthCheckKind::Tcp;
    let got = spec.run();
    assert!(
        got.as_deref().is_ok_and(|s| s.starts_with("connected in")),
        "{got:?}"
    );
    spec.kind = engine::config::HealthCheckKind::Http;
    let got = spec.run();
    assert!(
        got.as_deref().is_ok_and(|s| s.starts_with("HTTP 200")),
        "{got:?}"
    );
    let req = server.join().unwrap().expect("an HTTP request");
    // The Host header names the server as a URL would: [::1]:PORT.
    assert!(
        req.contains(&format!("\r\nHost: [::1]:{}\r\n", target.port()))
            || req.contains(&format!("\r\nhost: [::1]:{}\r\n", target.port())),
        "{req}"
    );
}

/// NAT64: an IPv6 VIP whose servers are IPv4 and reached by full-NAT is
/// accepted and forwarded (no "not forwarded" warning); an IPv4 server of
/// an IPv6 VIP by nat/dr/tun is refused naming the key and saying what
/// would be accepted; a NAT64 service does not mix in IPv6 servers.
#[test]
fn an_ipv6_vip_takes_ipv4_servers_by_fnat_only_nat64() {
    let svc = "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nforward = \"fnat\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n  port = 8080\n  [[service.server]]\n  address = \"198.19.0.12\"\n";
    let cfg = ok(&format!("{HEAD}{svc}"));
    assert!(cfg.services[0].forwards_nat64());
    assert!(!cfg.services[0].forwards_ipv6());
    assert!(
        cfg.warnings()
            .iter()
            .all(|w| !w.contains("does not forward")),
        "{:?}",
        cfg.warnings()
    );
    // Per server: `forward = "fnat"` on the server alone is NAT64 too.
    let per_server = "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n  [[service.server]]\n  address = \"198.19.0.11\"\n  forward = \"fnat\"\n";
    assert!(ok(&format!("{HEAD}{per_server}")).services[0].forwards_nat64());
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nforward = \"dr\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n",
        &[(
            "service[0].server[0].address",
            6,
            "an IPv4 server of an IPv6 VIP is NAT64: forward = \"fnat\"",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n  forward = \"fnat\"\n",
        &[(
            "service[0].server[1].address",
            7,
            "a NAT64 service's servers are all IPv4",
        )],
    );
    // IPv4 VIP, IPv6 server: no such thing as NAT46, whatever forward.
    expect_exactly(
        "[[service]]\nvip = \"198.18.0.100\"\nport = 80\nforward = \"fnat\"\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n",
        &[(
            "service[0].server[0].address",
            6,
            "2001:db8:0:2::11 is IPv6 but the VIP 198.18.0.100 is IPv4: a service's servers are in its VIP's family",
        )],
    );
}

/// `ops` and a sorry server no longer keep an IPv6 service from being
/// forwarded (NAT, DR and TUN servers alike); TCP `ops` is refused as for
/// IPv4, so is an IPv4 sorry server of an IPv6 VIP. NAT64 refuses `ops`
/// (full-NAT needs the connection entry) and is not forwarded with a sorry
/// server, which `rvs check` says (with persistence it is forwarded).
#[test]
fn ipv6_ops_and_sorry_servers_are_forwarded_but_not_for_nat64() {
    let ops = "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 53\nprotocol = \"udp\"\nops = true\nsorry_server = \"[2001:db8:0:2::99]:53\"\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n  [[service.server]]\n  address = \"2001:db8:0:2::12\"\n  forward = \"dr\"\n  [[service.server]]\n  address = \"2001:db8:0:9::13\"\n  forward = \"tun\"\n";
    let cfg = ok(&format!("{HEAD}{ops}"));
    assert!(cfg.services[0].forwards_ipv6());
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());

    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nops = true\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n",
        &[(
            "service[0].ops",
            4,
            "one-packet scheduling is for UDP services",
        )],
    );
    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nsorry_server = \"198.19.0.99:80\"\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n",
        &[(
            "service[0].sorry_server",
            4,
            "198.19.0.99 is IPv4 but the VIP 2001:db8:0:1::100 is IPv6",
        )],
    );

    expect_exactly(
        "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 53\nprotocol = \"udp\"\nops = true\nforward = \"fnat\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n",
        &[(
            "service[0].server[0].forward",
            7,
            "fnat needs a connection entry for the reply, which one-packet scheduling (ops) does not make",
        )],
    );
    let nat64_sorry = "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nforward = \"fnat\"\nsorry_server = \"[2001:db8:0:2::99]:80\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n";
    let cfg = ok(&format!("{HEAD}{nat64_sorry}"));
    assert!(!cfg.services[0].forwards_nat64() && !cfg.services[0].forwards_ipv6());
    let w = cfg.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("service[0].vip: tcp:[2001:db8:0:1::100]:80 is IPv6")
            && w[0].contains(
                "does not forward a NAT64 service (fnat to IPv4 servers) with a sorry server yet"
            ),
        "{w:?}"
    );
    // Persistence alone no longer keeps a NAT64 service from the data
    // plane (no warning); with a sorry server too, the warning stays.
    let nat64_persist = "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nforward = \"fnat\"\npersistence_timeout = 300\npersistence_prefix = 64\n  [[service.server]]\n  address = \"198.19.0.11\"\n";
    let cfg = ok(&format!("{HEAD}{nat64_persist}"));
    assert!(cfg.services[0].forwards_nat64());
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    let both = nat64_persist.replace(
        "persistence_prefix = 64\n",
        "persistence_prefix = 64\nsorry_server = \"[2001:db8:0:2::99]:80\"\n",
    );
    let cfg = ok(&format!("{HEAD}{both}"));
    assert!(!cfg.services[0].forwards_nat64());
    let w = cfg.warnings();
    assert!(
        w.len() == 1
            && w[0].contains(
                "does not forward a NAT64 service (fnat to IPv4 servers) with a sorry server yet"
            ),
        "{w:?}"
    );
    // Anything else unforwarded keeps the general message: fnat to IPv6
    // servers.
    let fnat6 = "[[service]]\nvip = \"2001:db8:0:1::100\"\nport = 80\nforward = \"fnat\"\n  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n";
    let w = ok(&format!("{HEAD}{fnat6}")).warnings();
    assert!(
        w.len() == 1 && w[0].contains("does not forward IPv6 yet except NAT, DR and TUN"),
        "{w:?}"
    );
}
