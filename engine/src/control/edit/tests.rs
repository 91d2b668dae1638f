use super::*;
use crate::config;

const CFG: &str = concat!(
    crate::control::two_port_director!(),
    r#"
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "wrr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  weight = 2
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
"#
);

fn cfg() -> Config {
    config::parse(CFG).unwrap()
}

fn server(service: &str, server: &str) -> ServerArgs {
    ServerArgs {
        service: service.into(),
        server: server.into(),
        ..ServerArgs::default()
    }
}

#[test]
fn service_keys_parse() {
    let k = parse_service("tcp:198.18.0.100:80").unwrap();
    assert_eq!(k.to_string(), "tcp:198.18.0.100:80");
    assert_eq!(
        parse_service("UDP:198.18.0.100:0").unwrap().protocol,
        Protocol::Udp
    );
    for (bad, want) in [
        ("198.18.0.100:80", "is not PROTO:VIP:PORT"),
        ("tcp", "is not PROTO:VIP:PORT"),
        ("sctp:198.18.0.100:80", "unknown protocol `sctp`"),
        ("tcp:198.18.0:80", "`198.18.0` is not an IPv4 address"),
        ("tcp:0.0.0.0:80", "0.0.0.0 is not a unicast address"),
        (
            "tcp:198.18.0.100:65536",
            "`65536` in `tcp:198.18.0.100:65536` is not a port",
        ),
        ("tcp:198.18.0.100:http", "`http` in"),
    ] {
        let e = parse_service(bad).unwrap_err();
        assert!(e.starts_with("service: ") && e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn server_addresses_parse() {
    assert_eq!(
        parse_server("198.19.0.14:8080").unwrap(),
        ("198.19.0.14".parse().unwrap(), Some(8080))
    );
    assert_eq!(
        parse_server("198.19.0.14").unwrap(),
        ("198.19.0.14".parse().unwrap(), None)
    );
    for (bad, want) in [
        ("198.19.0.14:0", "is not a port (1..65535)"),
        ("198.19.0.14:70000", "is not a port"),
        ("198.19.0:80", "is not an IPv4 address"),
        ("not-an-address", "is not an IPv4 address"),
        ("255.255.255.255:80", "not a unicast address"),
    ] {
        let e = parse_server(bad).unwrap_err();
        assert!(e.starts_with("server: ") && e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn add_edit_del_server() {
    let c = cfg();
    let mut a = server("tcp:198.18.0.100:80", "198.19.0.14:8080");
    a.weight = Some(2);
    let (c2, msg) = apply(&c, &Request::AddServer(a)).unwrap();
    assert_eq!(msg, "added server 198.19.0.14:8080 to tcp:198.18.0.100:80");
    let s = &c2.services[0].servers[2];
    assert_eq!(
        (s.address.to_string(), s.port, s.weight),
        ("198.19.0.14".into(), 8080, 2)
    );
    // the original is untouched
    assert_eq!(c.services[0].servers.len(), 2);

    let mut e = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
    e.weight = Some(0);
    let (c3, _) = apply(&c2, &Request::EditServer(e)).unwrap();
    assert_eq!(c3.services[0].servers[0].weight, 0);
    assert_eq!(c3.services[0].servers[1].weight, 2);

    // by address alone when it is unique
    let mut e = server("tcp:198.18.0.100:80", "198.19.0.12");
    e.weight = Some(7);
    let (c4, _) = apply(&c3, &Request::EditServer(e)).unwrap();
    assert_eq!(c4.services[0].servers[1].weight, 7);

    let (c5, msg) = apply(
        &c4,
        &Request::DelServer {
            service: "tcp:198.18.0.100:80".into(),
            server: "198.19.0.11:8080".into(),
        },
    )
    .unwrap();
    assert_eq!(
        msg,
        "deleted server 198.19.0.11:8080 from tcp:198.18.0.100:80"
    );
    let left: Vec<String> = c5.services[0]
        .servers
        .iter()
        .map(|s| s.address.to_string())
        .collect();
    assert_eq!(left, ["198.19.0.12", "198.19.0.14"]);
    assert!(c5.validate().is_empty());
}

/// One identity rule (issue 14 item 3): a NAT server at IP:8080 and a
/// DR server at the same IP configured with port 8080 (which DR
/// ignores: it keeps the VIP port 80) are `IP:8080` and `IP:80`, in
/// replies and lookups alike.
#[test]
fn nat_and_dr_server_at_one_address_have_distinct_identities() {
    let c = cfg();
    let mut dr = server("tcp:198.18.0.100:80", "198.19.0.12:8080");
    dr.forward = Some("dr".into());
    dr.weight = Some(3);
    // 198.19.0.12:8080 (NAT) exists; DR at .12 is .12:80, which does not
    let (c2, msg) = apply(&c, &Request::AddServer(dr.clone())).unwrap();
    assert_eq!(msg, "added server 198.19.0.12:80 to tcp:198.18.0.100:80");
    let e = apply(&c2, &Request::AddServer(dr)).unwrap_err();
    assert_eq!(
        e,
        "server: 198.19.0.12:80 is already a server of tcp:198.18.0.100:80"
    );
    let svc = &c2.services[0];
    let idents: Vec<String> = svc.servers.iter().map(|s| s.ident(svc)).collect();
    assert_eq!(
        idents,
        ["198.19.0.11:8080", "198.19.0.12:8080", "198.19.0.12:80"]
    );

    // IP:8080 names the NAT server, IP:80 the DR one
    let mut e = server("tcp:198.18.0.100:80", "198.19.0.12:8080");
    e.weight = Some(5);
    let (c3, msg) = apply(&c2, &Request::EditServer(e)).unwrap();
    assert_eq!(
        msg,
        "changed server 198.19.0.12:8080 of tcp:198.18.0.100:80 (weight 5)"
    );
    assert_eq!(c3.services[0].servers[1].weight, 5);
    assert_eq!(c3.services[0].servers[2].weight, 3);
    let (c4, msg) = apply(
        &c3,
        &Request::DelServer {
            service: "tcp:198.18.0.100:80".into(),
            server: "198.19.0.12:80".into(),
        },
    )
    .unwrap();
    assert_eq!(
        msg,
        "deleted server 198.19.0.12:80 from tcp:198.18.0.100:80"
    );
    assert_eq!(c4.services[0].servers.len(), 2);
    assert_eq!(c4.services[0].servers[1].forward, None);

    // the address alone is ambiguous, and the message lists identities
    let mut e = server("tcp:198.18.0.100:80", "198.19.0.12");
    e.weight = Some(1);
    let err = apply(&c2, &Request::EditServer(e)).unwrap_err();
    assert!(err.contains("several servers at 198.19.0.12"), "{err}");
}

#[test]
fn add_edit_del_service() {
    let c = cfg();
    let a = ServiceArgs {
        service: "tcp:198.18.0.100:8080".into(),
        scheduler: Some("rr".into()),
        persistence: Some(30),
        ..ServiceArgs::default()
    };
    let (c2, msg) = apply(&c, &Request::AddService(a)).unwrap();
    assert_eq!(msg, "added service tcp:198.18.0.100:8080");
    let s = &c2.services[2];
    assert_eq!(s.scheduler, SchedKind::Rr);
    assert_eq!(s.persistence_timeout, 30);
    assert_eq!(s.forward, Forward::Nat);
    assert!(s.servers.is_empty());

    // defaults as a file gets them: wlc, nat
    let (c3, _) = apply(
        &c2,
        &Request::AddService(ServiceArgs {
            service: "udp:198.18.0.101:0".into(),
            ..ServiceArgs::default()
        }),
    )
    .unwrap();
    assert_eq!(c3.services[3].scheduler, SchedKind::Wlc);

    let (c4, _) = apply(
        &c3,
        &Request::EditService(ServiceArgs {
            service: "tcp:198.18.0.100:8080".into(),
            scheduler: Some("sh".into()),
            flags: Some(vec!["sh-port".into()]),
            ..ServiceArgs::default()
        }),
    )
    .unwrap();
    assert_eq!(c4.services[2].scheduler, SchedKind::Sh);
    assert!(c4.services[2].sched_flags.sh_port);

    let (c5, _) = apply(
        &c4,
        &Request::DelService {
            service: "tcp:198.18.0.100:80".into(),
        },
    )
    .unwrap();
    assert_eq!(c5.services.len(), 3);
    assert!(c5.services.iter().all(|s| s.port != 80));
}

#[test]
fn a_service_over_several_ports_by_its_name() {
    let k = parse_service("tcp:198.18.0.100:8080,8443").unwrap();
    assert_eq!((k.port, k.ports.as_slice()), (8080, &[8080, 8443][..]));
    assert_eq!(k.to_string(), "tcp:198.18.0.100:8080,8443");
    for (bad, want) in [
        ("tcp:198.18.0.100:80,80", "port 80 is listed twice"),
        (
            "tcp:198.18.0.100:0,80",
            "port 0 (all ports) cannot be one of several",
        ),
        (
            "tcp:198.18.0.100:80,",
            "`` in `tcp:198.18.0.100:80,` is not a port",
        ),
    ] {
        let e = parse_service(bad).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
    let add = |c: &Config, svc: &str| {
        apply(
            c,
            &Request::AddService(ServiceArgs {
                service: svc.into(),
                ..ServiceArgs::default()
            }),
        )
    };
    let c = cfg();
    let (c, msg) = add(&c, "tcp:198.18.0.100:8080,8443").unwrap();
    assert_eq!(msg, "added service tcp:198.18.0.100:8080,8443");
    assert_eq!(c.services[2].ports, [8080, 8443]);
    // One of its ports taken by the existing :80 service.
    let e = add(&c, "tcp:198.18.0.100:443,80").unwrap_err();
    assert!(e.contains("tcp:198.18.0.100:80 is already defined"), "{e}");
    // Its NAT servers keep the client's port: none given is 0, one
    // given is refused.
    let (c, _) = apply(
        &c,
        &Request::AddServer(server("tcp:198.18.0.100:8080,8443", "198.19.0.14")),
    )
    .unwrap();
    assert_eq!(c.services[2].servers[0].port, 0);
    let e = apply(
        &c,
        &Request::AddServer(server("tcp:198.18.0.100:8080,8443", "198.19.0.15:8080")),
    )
    .unwrap_err();
    assert!(e.contains("keeps the client's destination port"), "{e}");
    // Only the whole name finds it.
    let e = apply(
        &c,
        &Request::DelService {
            service: "tcp:198.18.0.100:8080".into(),
        },
    )
    .unwrap_err();
    assert!(e.contains("8080,8443"), "lists the services there are: {e}");
}

/// Every refusal names what it is about; the running config is untouched.
#[test]
fn bad_changes_are_refused_with_the_field() {
    let c = cfg();
    let mut w = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
    w.weight = Some(70000);
    let mut thr = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
    thr.upper_threshold = Some(10);
    thr.lower_threshold = Some(20);
    let mut fw = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
    fw.forward = Some("masq".into());
    let mut dr = server("tcp:198.18.0.100:80", "198.20.0.5:8080");
    dr.forward = Some("dr".into());
    let cases: Vec<(Request, &str)> = vec![
            (
                Request::AddServer(server("tcp:198.18.0.100:81", "198.19.0.14:8080")),
                "service: no service tcp:198.18.0.100:81 (the services are: tcp:198.18.0.100:80, udp:198.18.0.100:53)",
            ),
            (
                Request::AddServer(server("tcp:198.18.0.100:80", "198.19.0.11:8080")),
                "server: 198.19.0.11:8080 is already a server of tcp:198.18.0.100:80",
            ),
            (
                Request::AddServer(server("tcp:198.18.0.100:80", "198.19.0.300:8080")),
                "server: `198.19.0.300` is not an IPv4 address",
            ),
            (
                Request::AddServer(server("tcp:198.18.0.100:80", "198.18.0.2:8080")),
                "refused: service[0].server[2].address: 198.18.0.2 is the director's own address (port `client`)",
            ),
            (
                Request::AddServer(dr),
                "refused: service[0].server[2].address: 198.20.0.5 is not on a directly attached subnet",
            ),
            (
                Request::EditServer(w),
                "refused: service[0].server[0].weight: 70000 is outside 0..65535",
            ),
            (
                Request::EditServer(thr),
                "refused: service[0].server[0].lower_threshold: 20 is above upper_threshold 10",
            ),
            (Request::EditServer(fw), "forward: unknown forward method `masq`"),
            (
                Request::EditServer(server("tcp:198.18.0.100:80", "198.19.0.11:8080")),
                "edit-server: nothing to change",
            ),
            (
                Request::DelServer {
                    service: "tcp:198.18.0.100:80".into(),
                    server: "198.19.0.13:8080".into(),
                },
                "server: tcp:198.18.0.100:80 has no server 198.19.0.13:8080 (its servers are: 198.19.0.11:8080, 198.19.0.12:8080)",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.100:80".into(),
                    ..ServiceArgs::default()
                }),
                "service: tcp:198.18.0.100:80 already exists",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.2:80".into(),
                    ..ServiceArgs::default()
                }),
                "refused: service[2].vip: 198.18.0.2 is the address of port `client`",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.100:8080".into(),
                    scheduler: Some("fastest".into()),
                    ..ServiceArgs::default()
                }),
                "scheduler: unknown scheduler `fastest` (valid: rr, wrr,",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.100:8080".into(),
                    scheduler: Some("rr".into()),
                    flags: Some(vec!["sh-port".into()]),
                    ..ServiceArgs::default()
                }),
                "refused: service[2].scheduler_flags: `sh-port` applies only to scheduler sh, not rr",
            ),
            (
                Request::EditService(ServiceArgs {
                    service: "tcp:198.18.0.100:80".into(),
                    persistence_netmask: Some("255.0.255.0".into()),
                    ..ServiceArgs::default()
                }),
                "refused: service[0].persistence_netmask: 255.0.255.0 is not a contiguous netmask",
            ),
            (
                Request::EditService(ServiceArgs {
                    service: "tcp:198.18.0.100:80".into(),
                    ..ServiceArgs::default()
                }),
                "edit-service: nothing to change",
            ),
            (
                Request::DelService {
                    service: "udp:198.18.0.100:80".into(),
                },
                "service: no service udp:198.18.0.100:80",
            ),
            (Request::List { service: None }, "not a configuration change"),
            (
                Request::SetTimeouts {
                    tcp: Some(0),
                    tcpfin: None,
                    udp: Some(0),
                },
                "set-timeouts: nothing to change",
            ),
        ];
    for (req, want) in cases {
        let e = apply(&c, &req).unwrap_err();
        assert!(e.starts_with(want), "{req:?}:\n got  {e}\n want {want}");
    }
}

/// `ipvsadm --set 0 60 2`: 0 and absent leave a timeout as it was.
#[test]
fn set_timeouts_changes_only_what_is_given() {
    let c = cfg();
    let (next, msg) = apply(
        &c,
        &Request::SetTimeouts {
            tcp: Some(0),
            tcpfin: Some(60),
            udp: Some(2),
        },
    )
    .unwrap();
    assert_eq!(msg, "set timeouts (tcp tcpfin udp): 900 60 2");
    let t = &next.timeouts;
    assert_eq!((t.tcp_established, t.tcp_fin, t.udp), (900, 60, 2));
    // the rest of [timeouts] and the services are untouched
    assert_eq!(t.tcp_time_wait, c.timeouts.tcp_time_wait);
    assert_eq!(next.services, c.services);
    let (next, msg) = apply(
        &next,
        &Request::SetTimeouts {
            tcp: Some(3600),
            tcpfin: None,
            udp: None,
        },
    )
    .unwrap();
    assert_eq!(msg, "set timeouts (tcp tcpfin udp): 3600 60 2");
    assert_eq!(next.timeouts.tcp_established, 3600);
}
