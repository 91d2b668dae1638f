//! engine::config: the keepalived-grade health-check keys (https, host,
//! sni, tls_verify, tls_ca, connect_port, retry, delay_before_retry_ms,
//! alpha, dns, dynamic_weight) and the per-server notify_up/notify_down:
//! accepted values and defaults, and errors that name the key and line.

use engine::config::*;

/// Nine lines: a valid head that cases append to (their line 1 is line 10).
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

/// A service with one server on port 8080 and a health check whose
/// lines are `check` (line 1 of the case is `[[service]]`; the check's
/// first key is on line 8).
fn case(server_extra: &str, check: &str) -> String {
    let mut s = format!(
        "{HEAD}[[service]]\nvip = \"198.18.0.100\"\nport = 80\n[[service.server]]\naddress = \"198.19.0.11\"\nport = 8080\n{server_extra}[service.health_check]\n"
    );
    for l in check.lines().map(str::trim).filter(|l| !l.is_empty()) {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn ok(server_extra: &str, check: &str) -> Config {
    let text = case(server_extra, check);
    match parse(&text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\nfrom:\n{text}"),
    }
}

fn hc(check: &str) -> HealthCheck {
    ok("", check).services[0].health_check.clone().unwrap()
}

/// The single error of the case: (path, line within the case, a piece of
/// the message).
fn err(server_extra: &str, check: &str, path: &str, line: usize, piece: &str) {
    let text = case(server_extra, check);
    let errors = match parse(&text) {
        Ok(c) => panic!("expected an error, parsed {c:#?}\nfrom:\n{text}"),
        Err(e) => e,
    };
    let got: Vec<_> = errors.iter().collect();
    assert_eq!(got.len(), 1, "{errors}\nfrom:\n{text}");
    let e = got[0];
    assert_eq!(
        (e.path.as_str(), e.line),
        (path, line + HEAD_LINES),
        "{errors}\nfrom:\n{text}"
    );
    assert!(e.message.contains(piece), "{:?} lacks {piece:?}", e.message);
}

#[test]
fn defaults_are_keepalived_s() {
    let h = hc(r#"kind = "https""#);
    assert_eq!(h.kind, HealthCheckKind::Https);
    assert_eq!((h.host.as_deref(), h.sni.as_deref()), (None, None));
    assert!(!h.tls_verify, "SSL_GET does not verify");
    assert_eq!(h.tls_ca, None);
    assert_eq!(h.connect_port, None);
    assert_eq!((h.retry, h.delay_before_retry_ms), (0, 1000));
    assert!(!h.alpha);
    let h = hc(r#"kind = "dns""#);
    assert_eq!((h.dns_name.as_str(), h.dns_type), (".", DnsType::Soa));
    let h = hc("kind = \"exec\"\nscript = \"/bin/true\"");
    assert!(!h.dynamic_weight);
    let c = ok("", r#"kind = "tcp""#);
    let s = &c.services[0].servers[0];
    assert_eq!(
        (s.notify_up.as_deref(), s.notify_down.as_deref()),
        (None, None)
    );
}

#[test]
fn every_key_is_read() {
    let h = hc(r#"
        kind = "https"
        path = "/status"
        host = "www.example.org:8443"
        sni = "www.example.org"
        tls_verify = true
        tls_ca = "/etc/rvs/ca.pem"
        connect_port = 8443
        retry = 3
        delay_before_retry_ms = 250
        alpha = true
    "#);
    assert_eq!(h.host.as_deref(), Some("www.example.org:8443"));
    assert_eq!(h.sni.as_deref(), Some("www.example.org"));
    assert!(h.tls_verify);
    assert_eq!(h.tls_ca.as_deref(), Some("/etc/rvs/ca.pem"));
    assert_eq!(h.connect_port, Some(8443));
    assert_eq!((h.retry, h.delay_before_retry_ms), (3, 250));
    assert!(h.alpha);
    let h = hc(r#"
        kind = "dns"
        dns_name = "www.example.org"
        dns_type = "a"
        connect_port = 53
    "#);
    assert_eq!(
        (h.dns_name.as_str(), h.dns_type),
        ("www.example.org", DnsType::A)
    );
    for t in ["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"] {
        let h = hc(&format!("kind = \"dns\"\ndns_type = \"{t}\""));
        assert_eq!(h.dns_type.name(), t);
    }
    let h = hc("kind = \"http\"\nhost = \"vhost.example.org\"");
    assert_eq!(h.host.as_deref(), Some("vhost.example.org"));
    let h = hc("kind = \"exec\"\nscript = \"/bin/check\"\ndynamic_weight = true");
    assert!(h.dynamic_weight);
    let c = ok(
        "notify_up = \"/usr/local/bin/rs-up --quiet\"\nnotify_down = \"/usr/local/bin/rs-down\"\n",
        r#"kind = "tcp""#,
    );
    let s = &c.services[0].servers[0];
    assert_eq!(s.notify_up.as_deref(), Some("/usr/local/bin/rs-up --quiet"));
    assert_eq!(s.notify_down.as_deref(), Some("/usr/local/bin/rs-down"));
}

#[test]
fn keys_of_another_kind_are_refused_by_name() {
    let at = "service[0].health_check";
    for (check, key, piece) in [
        ("kind = \"tcp\"\nhost = \"a.example\"", "host", "`host` applies only to kind \"http\" or \"https\", not \"tcp\""),
        ("kind = \"http\"\nsni = \"a.example\"", "sni", "`sni` applies only to kind \"https\", not \"http\""),
        ("kind = \"http\"\ntls_verify = true", "tls_verify", "`tls_verify` applies only to kind \"https\""),
        ("kind = \"tcp\"\ntls_ca = \"/ca.pem\"", "tls_ca", "`tls_ca` applies only to kind \"https\""),
        ("kind = \"https\"\ndns_name = \"a.example\"", "dns_name", "`dns_name` applies only to kind \"dns\", not \"https\""),
        ("kind = \"tcp\"\ndns_type = \"A\"", "dns_type", "`dns_type` applies only to kind \"dns\""),
        ("kind = \"dns\"\npath = \"/\"", "path", "`path` applies only to kind \"http\" or \"https\", not \"dns\""),
        ("kind = \"http\"\ndynamic_weight = true", "dynamic_weight", "`dynamic_weight` applies only to kind \"exec\", not \"http\""),
        ("kind = \"exec\"\nscript = \"/x\"\nconnect_port = 80", "connect_port", "`connect_port` applies only to kind \"tcp\" or \"http\" or \"https\" or \"dns\", not \"exec\""),
    ] {
        let line = 7 + check.lines().count();
        err("", check, &format!("{at}.{key}"), line, piece);
    }
}

#[test]
fn bad_values_are_refused_by_name() {
    let at = "service[0].health_check";
    for (check, key, piece) in [
        (
            "kind = \"https\"\nhost = \"a b\"",
            "host",
            "is not a host name",
        ),
        (
            "kind = \"http\"\nhost = \"a\\r\\nX-Evil: 1\"",
            "host",
            "is not a host name",
        ),
        (
            "kind = \"https\"\nsni = \"not a name\"",
            "sni",
            "is not a TLS server name",
        ),
        (
            "kind = \"https\"\ntls_verify = \"yes\"",
            "tls_verify",
            "expected true or false",
        ),
        (
            "kind = \"https\"\ntls_verify = true\ntls_ca = \"ca.pem\"",
            "tls_ca",
            "is not an absolute file path",
        ),
        (
            "kind = \"tcp\"\nconnect_port = 0",
            "connect_port",
            "0 is outside 1..65535",
        ),
        (
            "kind = \"tcp\"\nconnect_port = 65536",
            "connect_port",
            "65536",
        ),
        ("kind = \"tcp\"\nretry = -1", "retry", "-1"),
        ("kind = \"tcp\"\nretry = 101", "retry", "101"),
        (
            "kind = \"tcp\"\ndelay_before_retry_ms = -5",
            "delay_before_retry_ms",
            "-5",
        ),
        (
            "kind = \"tcp\"\nalpha = 1",
            "alpha",
            "expected true or false",
        ),
        (
            "kind = \"dns\"\ndns_name = \"a..b\"",
            "dns_name",
            "is not a domain name",
        ),
        (
            "kind = \"dns\"\ndns_type = \"PTRX\"",
            "dns_type",
            "A, NS, CNAME, SOA, MX, TXT, AAAA",
        ),
        (
            "kind = \"exec\"\nscript = \"/x\"\ndynamic_weight = \"on\"",
            "dynamic_weight",
            "expected true or false",
        ),
        (
            "kind = \"smtp\"",
            "kind",
            "tcp, http, https, dns, exec, none",
        ),
    ] {
        let line = 7 + check.lines().count();
        err("", check, &format!("{at}.{key}"), line, piece);
    }
    // a CA without verification is a mistake, not silently ignored
    err(
        "",
        "kind = \"https\"\ntls_ca = \"/etc/rvs/ca.pem\"",
        "service[0].health_check.tls_ca",
        9,
        "has no effect without tls_verify = true",
    );
}

#[test]
fn notify_hooks_are_command_lines() {
    err(
        "notify_up = \"\"\n",
        "kind = \"tcp\"",
        "service[0].server[0].notify_up",
        7,
        "an empty command line",
    );
    err(
        "notify_down = \"/bin/hook 'open\"\n",
        "kind = \"tcp\"",
        "service[0].server[0].notify_down",
        7,
        "unterminated quote",
    );
    err(
        "notify_down = 3\n",
        "kind = \"tcp\"",
        "service[0].server[0].notify_down",
        7,
        "string",
    );
}
