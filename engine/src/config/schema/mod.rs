//! The schema pass: every table, key and value of SPEC §4, checked on its
//! own (known key, type, syntax, range) and turned into the typed structs,
//! with the defaults for what is left out. Then the rules pass runs over what
//! was built, and the result is a `Config` only if neither found an error.
//!
//! This file reads the sections; `peers` reads `[ha]` and `[bgp]`; `values`
//! holds the syntax of single values (addresses, networks, names, paths).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use toml_edit::ImDocument;

mod peers;
mod values;

use super::reader::{Ctx, Tab};
use super::rules::{self, Scope};
use super::*;
use peers::{bgp, ha};
pub(in crate::config) use values::is_contiguous;
pub(crate) use values::parse_unicast_ip;
use values::*;

const TOP: &[&str] = &[
    "dpdk", "port", "service", "timeouts", "control", "notify", "ha", "bgp",
];
const DPDK: &[&str] = &["cores", "workers", "hugepages", "memory_mb", "extra_args"];
const PORT: &[&str] = &[
    "name",
    "device",
    "address",
    "gateway",
    "mtu",
    "exception_path",
    "tap_name",
    "snat_addresses",
    "snat_ports",
];
const SERVICE: &[&str] = &[
    "vip",
    "port",
    "ports",
    "protocol",
    "scheduler",
    "scheduler_flags",
    "forward",
    "persistence_timeout",
    "persistence_netmask",
    "persistence_prefix",
    "sorry_server",
    "quorum",
    "ops",
    "server",
    "health_check",
];
const SERVER: &[&str] = &[
    "address",
    "port",
    "weight",
    "forward",
    "upper_threshold",
    "lower_threshold",
    "notify_up",
    "notify_down",
];
const HEALTH_CHECK: &[&str] = &[
    "kind",
    "path",
    "expect_status",
    "digest",
    "host",
    "sni",
    "tls_verify",
    "tls_ca",
    "connect_port",
    "retry",
    "delay_before_retry_ms",
    "alpha",
    "dns_name",
    "dns_type",
    "script",
    "dynamic_weight",
    "interval_ms",
    "timeout_ms",
    "fall",
    "rise",
    "on_failure",
];
const TIMEOUTS: &[&str] = &[
    "tcp_established",
    "tcp_fin",
    "udp",
    "max_connections",
    "tcp_syn_recv",
    "tcp_time_wait",
    "tcp_close",
    "tcp_close_wait",
    "tcp_last_ack",
    "syn_cookies",
    "expire_nodest_conn",
    "expire_quiescent_template",
];
const CONTROL: &[&str] = &["socket", "metrics", "drain_timeout_ms"];
const NOTIFY: &[&str] = &["smtp", "from", "to", "exec"];
const HA: &[&str] = &[
    "vrid",
    "priority",
    "port",
    "peers",
    "advert_interval_ms",
    "preempt",
    "preempt_delay_ms",
    "virtual_addresses",
    "sync",
    "sync_port",
    "auth_key_file",
];
const BGP: &[&str] = &[
    "bird_socket",
    "routes_file",
    "withdraw_on",
    "shutdown_grace_ms",
];

const U32_MAX: i64 = u32::MAX as i64;

/// The key a `key = value` line sets (for errors the TOML parser reports
/// with a line only), or "" for anything else.
fn key_on_line(text: &str, line: usize) -> String {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    match l.split_once('=') {
        Some((k, _)) if !l.trim_start().starts_with('[') && !l.trim_start().starts_with('#') => {
            k.trim().trim_matches('"').to_string()
        }
        _ => String::new(),
    }
}

/// Parses and validates a whole file.
pub(super) fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut ctx = Ctx::new(text);
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = ctx.line_of(e.span()).max(1);
            // One line, as every other error: toml's message may span two.
            let what: Vec<&str> = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let msg = format!("invalid TOML: {}", what.join("; "));
            return Err(vec![ConfigError::new(key_on_line(text, line), line, msg)]);
        }
    };
    let root = Tab::open(&mut ctx, String::new(), 1, doc.as_table(), TOP);

    let dpdk = match root.table(&mut ctx, "dpdk", DPDK) {
        Some(t) => dpdk(&mut ctx, &t),
        None => {
            if !root.has("dpdk") {
                ctx.error("dpdk", 1, "required section [dpdk] is missing");
            }
            None
        }
    };
    let port_tabs = root.tables(&mut ctx, "port", PORT);
    if port_tabs.is_empty() && ctx.errors.iter().all(|e| e.path != "port") {
        ctx.error("port", 1, "at least one [[port]] is required");
    }
    let ports: Vec<_> = port_tabs.iter().map(|t| port(&mut ctx, t)).collect();
    let services: Vec<_> = root
        .tables(&mut ctx, "service", SERVICE)
        .iter()
        .map(|t| service(&mut ctx, t))
        .collect();
    let timeouts = section(&mut ctx, &root, "timeouts", TIMEOUTS, timeouts);
    let control = section(&mut ctx, &root, "control", CONTROL, control);
    let notify = section(&mut ctx, &root, "notify", NOTIFY, notify);
    let ha = section(&mut ctx, &root, "ha", HA, |c, t| ha(c, t, &ports).map(Some));
    let bgp = section(&mut ctx, &root, "bgp", BGP, |c, t| bgp(c, t).map(Some));

    let scope = Scope {
        dpdk: dpdk.as_ref(),
        ports: indexed(&ports),
        all_ports: ports.iter().all(Option::is_some),
        services: indexed(&services),
        notify: notify.as_ref(),
        ha: ha.as_ref().and_then(Option::as_ref),
        control: control.as_ref(),
        bgp: bgp.as_ref().and_then(Option::as_ref),
    };
    for e in rules::check(&scope) {
        ctx.error_at_path(e);
    }

    let mut errors = ctx.errors;
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    match (dpdk, timeouts, control, notify, ha, bgp) {
        (Some(dpdk), Some(timeouts), Some(control), Some(notify), Some(ha), Some(bgp)) => {
            Ok(Config {
                dpdk,
                ports: ports.into_iter().flatten().collect(),
                services: services.into_iter().flatten().collect(),
                timeouts,
                control,
                notify,
                ha,
                bgp,
            })
        }
        // Every builder that returns None has reported why.
        _ => Err(vec![ConfigError::new("", 0, "incomplete configuration")]),
    }
}

/// The elements that were built, with their index in the file.
fn indexed<T>(items: &[Option<T>]) -> Vec<(usize, &T)> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.as_ref()?)))
        .collect()
}

/// An optional section: its default when absent, `None` when it has errors.
fn section<T: Default>(
    ctx: &mut Ctx,
    root: &Tab,
    key: &str,
    allowed: &[&str],
    build: impl FnOnce(&mut Ctx, &Tab) -> Option<T>,
) -> Option<T> {
    if !root.has(key) {
        return Some(T::default());
    }
    let t = root.table(ctx, key, allowed)?;
    build(ctx, &t)
}

fn dpdk(ctx: &mut Ctx, t: &Tab) -> Option<DpdkConfig> {
    let mark = ctx.mark();
    t.require(ctx, &["cores"]);
    let cores = t.parsed(ctx, "cores", |s| match parse_lcores(s) {
        Ok(lcores) => Ok((s.to_string(), lcores)),
        Err(e) => Err(format!("bad cores \"{s}\": {e}")),
    });
    let workers = t.int(ctx, "workers", 1, i64::from(MAX_LCORES) - 1);
    let hugepages = t.bool(ctx, "hugepages");
    let memory_mb = t.int(ctx, "memory_mb", 1, U32_MAX);
    let extra_args = t.strings(ctx, "extra_args");
    if !ctx.clean_since(mark) {
        return None;
    }
    let (cores, lcores) = cores?;
    Some(DpdkConfig {
        cores,
        lcores,
        workers: workers.unwrap_or(1),
        hugepages: hugepages.unwrap_or(false),
        memory_mb: memory_mb.unwrap_or(512),
        extra_args: extra_args
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.text.to_string())
            .collect(),
    })
}

fn port(ctx: &mut Ctx, t: &Tab) -> Option<PortConfig> {
    let mark = ctx.mark();
    t.require(ctx, &["name", "device", "address"]);
    let name = t.string(ctx, "name");
    let device = t.string(ctx, "device");
    let addresses = port_addresses(ctx, t);
    let gateways = port_gateways(ctx, t);
    let mtu = t.int(ctx, "mtu", 576, 9000);
    let exception_path = t.bool(ctx, "exception_path");
    let tap_name = t.parsed(ctx, "tap_name", |s| {
        if s.is_empty()
            || s.len() > 15
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            Err(format!(
                "`{s}` is not an interface name (1..15 of A-Z a-z 0-9 - _ .)"
            ))
        } else {
            Ok(s.to_string())
        }
    });
    let snat_addresses = t.strings(ctx, "snat_addresses").map(|list| {
        list.into_iter()
            .filter_map(|l| match parse_unicast(l.text) {
                Ok(a) => Some(a),
                Err(m) => {
                    ctx.error(l.path, l.line, m);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let snat_ports = t.parsed(ctx, "snat_ports", parse_port_range);
    if !ctx.clean_since(mark) {
        return None;
    }
    let (v4, v6) = addresses?;
    let (gateway, gateway6) = gateways.unwrap_or_default();
    let Some((address, prefix_len)) = v4 else {
        // IPv6-only ports: later (the exception path, VRRP and sync speak
        // IPv4 through the port's IPv4 address).
        let line = t.key_line(ctx, "address");
        let msg = "a port needs an IPv4 address (IPv6-only ports are not supported yet): write [\"A.B.C.D/N\", \"X:Y::Z/N\"]";
        ctx.error(t.child("address"), line, msg);
        return None;
    };
    if gateway6.is_some() && v6.is_none() {
        let line = t.key_line(ctx, "gateway");
        let msg = "an IPv6 gateway needs an IPv6 address on the port (add one to `address`)";
        ctx.error(t.child("gateway"), line, msg);
        return None;
    }
    let ipv6 = v6.map(|(address, prefix_len)| PortIpv6 {
        address,
        prefix_len,
        gateway: gateway6,
    });
    let name = name?;
    let tap_name = tap_name.unwrap_or_else(|| {
        let mut n: String = format!("rvs-{name}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        n.truncate(15);
        n
    });
    Some(PortConfig {
        name,
        device: device?,
        address,
        prefix_len,
        gateway,
        ipv6,
        mtu: mtu.unwrap_or(1500),
        exception_path: exception_path.unwrap_or(true),
        tap_name,
        snat_addresses: snat_addresses.unwrap_or_default(),
        snat_ports: snat_ports.unwrap_or(PortConfig::DEFAULT_SNAT_PORTS),
    })
}

/// `snat_ports = "LO-HI"`: a non-empty range within 1..65535.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port range LO-HI within 1-65535 (e.g. \"1024-32767\")");
    let (lo, hi) = s.trim().split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 {
        return Err(format!("`{s}`: port 0 cannot be a local port"));
    }
    if lo > hi {
        return Err(format!("`{s}`: the first port {lo} is above the last {hi}"));
    }
    Ok((lo, hi))
}

/// An address of each family at most, in one string or a list.
type PerFamily<A, B> = (Option<A>, Option<B>);

/// A port's `address`: "A.B.C.D/N", "X:Y::Z/N", or a list of at most one of
/// each (SPEC §5).
fn port_addresses(ctx: &mut Ctx, t: &Tab) -> Option<PerFamily<(Ipv4Addr, u8), (Ipv6Addr, u8)>> {
    per_family(ctx, t, "address", |s| {
        if s.contains(':') {
            parse_cidr6(s).map(|a| (None, Some(a)))
        } else {
            parse_cidr(s).map(|a| (Some(a), None))
        }
    })
}

/// A port's `gateway`: an address, or a list of at most one of each family.
fn port_gateways(ctx: &mut Ctx, t: &Tab) -> Option<PerFamily<Ipv4Addr, Ipv6Addr>> {
    per_family(ctx, t, "gateway", |s| match parse_unicast_ip(s)? {
        IpAddr::V4(v4) => Ok((Some(v4), None)),
        IpAddr::V6(v6) => Ok((None, Some(v6))),
    })
}

/// `key` as one string or a list, each element parsed by `parse` into one
/// family's slot; two of one family is an error naming the element.
fn per_family<A, B>(
    ctx: &mut Ctx,
    t: &Tab,
    key: &str,
    parse: impl Fn(&str) -> Result<PerFamily<A, B>, String>,
) -> Option<PerFamily<A, B>> {
    let list = t.string_or_strings(ctx, key)?;
    if list.is_empty() {
        let line = t.key_line(ctx, key);
        ctx.error(t.child(key), line, "lists no address");
        return None;
    }
    let (mut a, mut b) = (None, None);
    let mut ok = true;
    for l in list {
        match parse(l.text) {
            Ok((x, y)) => {
                let twice = (x.is_some() && a.is_some()) || (y.is_some() && b.is_some());
                if twice {
                    let msg = format!(
                        "`{}`: at most one address of each family (one IPv4, one IPv6)",
                        l.text
                    );
                    ctx.error(l.path, l.line, msg);
                    ok = false;
                }
                a = a.or(x);
                b = b.or(y);
            }
            Err(m) => {
                ctx.error(l.path, l.line, m);
                ok = false;
            }
        }
    }
    ok.then_some((a, b))
}

fn service(ctx: &mut Ctx, t: &Tab) -> Option<ServiceConfig> {
    let mark = ctx.mark();
    t.require(ctx, &["vip"]);
    let vip = t.parsed(ctx, "vip", parse_unicast_ip);
    let (port, ports) = service_ports(ctx, t);
    let protocol = t.choice(
        ctx,
        "protocol",
        "protocol",
        Protocol::from_name,
        Protocol::valid_names,
    );
    let scheduler = t.choice(
        ctx,
        "scheduler",
        "scheduler",
        SchedKind::from_name,
        SchedKind::valid_names,
    );
    let sched_flags = t.strings(ctx, "scheduler_flags").map(|names| {
        let mut flags = SchedFlags::default();
        for n in names {
            if !flags.set(n.text) {
                let valid = SchedFlags::NAMES.join(", ");
                let msg = format!("unknown scheduler flag `{}` (valid: {valid})", n.text);
                ctx.error(n.path, n.line, msg);
            }
        }
        flags
    });
    let forward = t.choice(
        ctx,
        "forward",
        "forward method",
        Forward::from_name,
        Forward::valid_names,
    );
    let persistence_timeout = t.int(ctx, "persistence_timeout", 0, U32_MAX);
    let persistence_netmask = t.parsed(ctx, "persistence_netmask", parse_netmask);
    let persistence_prefix = t.int(ctx, "persistence_prefix", 1, 128);
    let sorry_server = t.parsed(ctx, "sorry_server", parse_endpoint);
    let quorum = t.int(ctx, "quorum", 0, U32_MAX);
    let ops = t.bool(ctx, "ops");
    // A server without a port takes the service's; those of a service over
    // several ports keep the client's (0).
    let server_port = match ports.len() {
        0 | 1 => port.unwrap_or(0),
        _ => 0,
    };
    let servers: Vec<_> = t
        .tables(ctx, "server", SERVER)
        .iter()
        .map(|s| server(ctx, s, server_port))
        .collect();
    let health_check = t
        .table(ctx, "health_check", HEALTH_CHECK)
        .map(|h| health_check(ctx, &h));
    if !ctx.clean_since(mark) {
        return None;
    }
    Some(ServiceConfig {
        vip: vip?,
        port: port?,
        ports,
        protocol: protocol.unwrap_or(Protocol::Tcp),
        scheduler: scheduler.unwrap_or(SchedKind::Wlc),
        sched_flags: sched_flags.unwrap_or_default(),
        forward: forward.unwrap_or(Forward::Nat),
        persistence_timeout: persistence_timeout.unwrap_or(0),
        persistence_netmask: persistence_netmask.unwrap_or(Ipv4Addr::BROADCAST),
        persistence_prefix: persistence_prefix.unwrap_or(128),
        sorry_server,
        quorum: quorum.unwrap_or(1),
        ops: ops.unwrap_or(false),
        servers: servers.into_iter().collect::<Option<_>>()?,
        health_check: match health_check {
            Some(h) => Some(h?),
            None => None,
        },
    })
}

/// `port = N` or `ports = [A, B, ...]` (exactly one of them): the service's
/// first port and, for a service over several, all of them (empty
/// otherwise). `ports` takes 1..65535 each, no repeats; a one-element list
/// is the same as `port`.
fn service_ports(ctx: &mut Ctx, t: &Tab) -> (Option<u16>, Vec<u16>) {
    match (t.has("port"), t.has("ports")) {
        (true, true) => {
            let line = t.key_line(ctx, "ports");
            let msg = "`ports` and `port` are exclusive: a service has one port or a list of them";
            ctx.error(t.child("ports"), line, msg);
            (None, Vec::new())
        }
        (false, false) => {
            let msg =
                "required key is missing (`port`, or `ports` for a service over several ports)";
            ctx.error(t.child("port"), t.line, msg);
            (None, Vec::new())
        }
        (true, false) => (t.int(ctx, "port", 0, 65535), Vec::new()),
        (false, true) => match t.ints(ctx, "ports", 1, 65535) {
            Some(list) if list.is_empty() => {
                let line = t.key_line(ctx, "ports");
                ctx.error(t.child("ports"), line, "lists no port");
                (None, Vec::new())
            }
            Some(list) => {
                let mut ports: Vec<u16> = Vec::with_capacity(list.len());
                let mut ok = true;
                for (p, path, line) in list {
                    if ports.contains(&p) {
                        ctx.error(path, line, format!("port {p} is listed twice"));
                        ok = false;
                    } else {
                        ports.push(p);
                    }
                }
                match (ok, ports.len()) {
                    (false, _) => (None, Vec::new()),
                    (true, 1) => (Some(ports[0]), Vec::new()),
                    (true, _) => (Some(ports[0]), ports),
                }
            }
            None => (None, Vec::new()),
        },
    }
}

fn server(ctx: &mut Ctx, t: &Tab, service_port: u16) -> Option<ServerConfig> {
    let mark = ctx.mark();
    t.require(ctx, &["address"]);
    let address = t.parsed(ctx, "address", parse_unicast_ip);
    let port = t.int(ctx, "port", 1, 65535);
    let weight = t.int(ctx, "weight", 0, i64::from(MAX_WEIGHT));
    let forward = t.choice(
        ctx,
        "forward",
        "forward method",
        Forward::from_name,
        Forward::valid_names,
    );
    let upper_threshold = t.int(ctx, "upper_threshold", 0, U32_MAX);
    let lower_threshold = t.int(ctx, "lower_threshold", 0, U32_MAX);
    let notify_up = t.parsed(ctx, "notify_up", parse_command);
    let notify_down = t.parsed(ctx, "notify_down", parse_command);
    if !ctx.clean_since(mark) {
        return None;
    }
    Some(ServerConfig {
        address: address?,
        port: port.unwrap_or(service_port),
        weight: weight.unwrap_or(1),
        forward,
        upper_threshold: upper_threshold.unwrap_or(0),
        lower_threshold: lower_threshold.unwrap_or(0),
        notify_up,
        notify_down,
    })
}

fn health_check(ctx: &mut Ctx, t: &Tab) -> Option<HealthCheck> {
    let mark = ctx.mark();
    let d = HealthCheck::default();
    let kind = t.choice(
        ctx,
        "kind",
        "health-check kind",
        HealthCheckKind::from_name,
        HealthCheckKind::valid_names,
    );
    if let Some(kind) = kind {
        use HealthCheckKind::{Dns, Exec, Http, Https, Tcp};
        const WEB: &[HealthCheckKind] = &[Http, Https];
        for (key, only) in [
            ("path", WEB),
            ("expect_status", WEB),
            ("digest", WEB),
            ("host", WEB),
            ("sni", &[Https]),
            ("tls_verify", &[Https]),
            ("tls_ca", &[Https]),
            ("connect_port", &[Tcp, Http, Https, Dns]),
            ("dns_name", &[Dns]),
            ("dns_type", &[Dns]),
            ("script", &[Exec]),
            ("dynamic_weight", &[Exec]),
        ] {
            if t.has(key) && !only.contains(&kind) {
                let line = t.key_line(ctx, key);
                let kinds: Vec<String> = only.iter().map(|k| format!("\"{k}\"")).collect();
                let msg = format!(
                    "`{key}` applies only to kind {}, not \"{kind}\"",
                    kinds.join(" or ")
                );
                ctx.error(t.child(key), line, msg);
            }
        }
    }
    let path = t.parsed(ctx, "path", parse_http_path);
    let expect_status = t.int(ctx, "expect_status", 100, 599);
    let digest = t.parsed(ctx, "digest", parse_md5);
    let host = t.parsed(ctx, "host", parse_http_host);
    let sni = t.parsed(ctx, "sni", parse_tls_name);
    let tls_verify = t.bool(ctx, "tls_verify");
    let tls_ca = t.parsed(ctx, "tls_ca", parse_file_path);
    let connect_port = t.int(ctx, "connect_port", 1, 65535);
    let retry = t.int(ctx, "retry", 0, 100);
    let delay_before_retry_ms = t.int(ctx, "delay_before_retry_ms", 0, U32_MAX);
    let alpha = t.bool(ctx, "alpha");
    let dns_name = t.parsed(ctx, "dns_name", parse_dns_name);
    let dns_type = t.choice(
        ctx,
        "dns_type",
        "DNS record type",
        DnsType::from_name,
        DnsType::valid_names,
    );
    let script = t.string(ctx, "script");
    let dynamic_weight = t.bool(ctx, "dynamic_weight");
    let interval_ms = t.int(ctx, "interval_ms", 1, U32_MAX);
    let timeout_ms = t.int(ctx, "timeout_ms", 1, U32_MAX);
    let fall = t.int(ctx, "fall", 1, U32_MAX);
    let rise = t.int(ctx, "rise", 1, U32_MAX);
    let on_failure = t.choice(
        ctx,
        "on_failure",
        "on_failure action",
        OnFailure::from_name,
        OnFailure::valid_names,
    );
    if !ctx.clean_since(mark) {
        return None;
    }
    Some(HealthCheck {
        kind: kind.unwrap_or(d.kind),
        path: path.unwrap_or(d.path),
        expect_status: expect_status.unwrap_or(d.expect_status),
        digest,
        host,
        sni,
        tls_verify: tls_verify.unwrap_or(d.tls_verify),
        tls_ca,
        connect_port,
        retry: retry.unwrap_or(d.retry),
        delay_before_retry_ms: delay_before_retry_ms.unwrap_or(d.delay_before_retry_ms),
        alpha: alpha.unwrap_or(d.alpha),
        dns_name: dns_name.unwrap_or(d.dns_name),
        dns_type: dns_type.unwrap_or(d.dns_type),
        script,
        dynamic_weight: dynamic_weight.unwrap_or(d.dynamic_weight),
        interval_ms: interval_ms.unwrap_or(d.interval_ms),
        timeout_ms: timeout_ms.unwrap_or(d.timeout_ms),
        fall: fall.unwrap_or(d.fall),
        rise: rise.unwrap_or(d.rise),
        on_failure: on_failure.unwrap_or(d.on_failure),
    })
}

fn timeouts(ctx: &mut Ctx, t: &Tab) -> Option<Timeouts> {
    let mark = ctx.mark();
    let d = Timeouts::default();
    let syn_cookies = t.bool(ctx, "syn_cookies").unwrap_or(d.syn_cookies);
    let expire_nodest_conn = t
        .bool(ctx, "expire_nodest_conn")
        .unwrap_or(d.expire_nodest_conn);
    let expire_quiescent_template = t
        .bool(ctx, "expire_quiescent_template")
        .unwrap_or(d.expire_quiescent_template);
    let mut get = |key: &str, default: u32| t.int(ctx, key, 1, U32_MAX).unwrap_or(default);
    let timeouts = Timeouts {
        tcp_established: get("tcp_established", d.tcp_established),
        tcp_fin: get("tcp_fin", d.tcp_fin),
        udp: get("udp", d.udp),
        max_connections: get("max_connections", d.max_connections),
        tcp_syn_recv: get("tcp_syn_recv", d.tcp_syn_recv),
        tcp_time_wait: get("tcp_time_wait", d.tcp_time_wait),
        tcp_close: get("tcp_close", d.tcp_close),
        tcp_close_wait: get("tcp_close_wait", d.tcp_close_wait),
        tcp_last_ack: get("tcp_last_ack", d.tcp_last_ack),
        syn_cookies,
        expire_nodest_conn,
        expire_quiescent_template,
    };
    ctx.clean_since(mark).then_some(timeouts)
}

fn control(ctx: &mut Ctx, t: &Tab) -> Option<ControlConfig> {
    let mark = ctx.mark();
    let socket = t.string(ctx, "socket").map(PathBuf::from);
    let metrics = t.parsed(ctx, "metrics", |s| {
        s.parse::<SocketAddr>()
            .map_err(|_| format!("`{s}` is not an address:port (e.g. 127.0.0.1:9100)"))
    });
    let drain_timeout_ms = t.int(ctx, "drain_timeout_ms", 0, 3_600_000);
    if !ctx.clean_since(mark) {
        return None;
    }
    Some(ControlConfig {
        socket: socket.unwrap_or(ControlConfig::default().socket),
        metrics,
        drain_timeout_ms: drain_timeout_ms.unwrap_or(ControlConfig::default().drain_timeout_ms),
    })
}

fn notify(ctx: &mut Ctx, t: &Tab) -> Option<NotifyConfig> {
    let mark = ctx.mark();
    let smtp = t.parsed(ctx, "smtp", parse_smtp);
    let from = t.parsed(ctx, "from", parse_email);
    let to = t.strings(ctx, "to").map(|list| {
        list.into_iter()
            .filter_map(|l| match parse_email(l.text) {
                Ok(a) => Some(a),
                Err(m) => {
                    ctx.error(l.path, l.line, m);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let exec = t.string(ctx, "exec").map(PathBuf::from);
    if !ctx.clean_since(mark) {
        return None;
    }
    Some(NotifyConfig {
        smtp,
        from: from.unwrap_or(NotifyConfig::default().from),
        to: to.unwrap_or_default(),
        exec,
    })
}
