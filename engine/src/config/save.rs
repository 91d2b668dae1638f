//! `rvs ctl save`: the running configuration written back as TOML.
//!
//! Live changes (`rvs ctl add-/edit-/del-service`, `add-/edit-/del-server`,
//! `set-timeouts`) touch only `[[service]]`, `[[service.server]]` and
//! `[timeouts] tcp_established / tcp_fin / udp`, so saving starts from
//! the file rvs was started with and rewrites just what differs there: a
//! value that did not change keeps its text, its comments and its place; a
//! changed value keeps the comments around it; a new service or server is
//! appended after its siblings; a deleted one goes with its comments. The
//! other sections are the file's own.
//!
//! The result is checked before anything is written: parsed back, it must be
//! the running configuration, or saving is refused with the first
//! difference (for example a file edited since it was loaded).

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use super::{parse, Config, Forward, SchedFlags, ServerConfig, ServiceConfig};
use crate::sched::SchedKind;

/// The text of the file `original` (the configuration rvs was started
/// with) changed to hold `running`'s services; an error says why not.
pub fn render(original: &str, running: &Config) -> Result<String, String> {
    let base = parse(original).map_err(|e| {
        format!(
            "the configuration file no longer loads ({} error(s), first: {}); fix it or save to another file after a restart",
            e.errors.len(),
            e.errors.first().map(|x| x.to_string()).unwrap_or_default()
        )
    })?;
    let mut doc: DocumentMut = original
        .parse()
        .map_err(|e| format!("the configuration file is not TOML: {e}"))?;
    let old_tables: Vec<Table> = match doc.get("service") {
        Some(Item::ArrayOfTables(a)) => a.iter().cloned().collect(),
        _ => Vec::new(),
    };
    let mut out = ArrayOfTables::new();
    for svc in &running.services {
        let found = base.services.iter().position(|o| {
            o.protocol == svc.protocol && o.vip == svc.vip && o.vports() == svc.vports()
        });
        let (mut t, was) = match found.and_then(|i| Some((old_tables.get(i)?.clone(), i))) {
            Some((t, i)) => (t, base.services[i].clone()),
            None => (new_service_table(svc), default_service(svc)),
        };
        sync_service(&mut t, &was, svc);
        out.push(t);
    }
    if out.is_empty() {
        doc.remove("service");
    } else {
        doc.insert("service", Item::ArrayOfTables(out));
    }
    sync_timeouts(&mut doc, &base.timeouts, &running.timeouts);
    let text = doc.to_string();
    check_round_trip(&text, running)?;
    Ok(text)
}

/// A service as a file that names only its key would give it.
fn default_service(svc: &ServiceConfig) -> ServiceConfig {
    ServiceConfig {
        vip: svc.vip,
        port: svc.port,
        ports: svc.ports.clone(),
        protocol: svc.protocol,
        scheduler: SchedKind::Wlc,
        sched_flags: SchedFlags::default(),
        forward: Forward::Nat,
        persistence_timeout: 0,
        persistence_netmask: std::net::Ipv4Addr::BROADCAST,
        persistence_prefix: 128,
        sorry_server: None,
        quorum: 1,
        ops: false,
        servers: Vec::new(),
        health_check: None,
    }
}

fn new_service_table(svc: &ServiceConfig) -> Table {
    let mut t = Table::new();
    t.insert("vip", value(svc.vip.to_string()));
    if svc.is_grouped() {
        let a: Array = svc.ports.iter().map(|&p| i64::from(p)).collect();
        t.insert("ports", value(a));
    } else {
        t.insert("port", value(i64::from(svc.port)));
    }
    t.insert("protocol", value(svc.protocol.name()));
    // Written even at their defaults: a reader should not need to know them.
    t.insert("scheduler", value(svc.scheduler.name()));
    t.insert("forward", value(svc.forward.name()));
    t
}

/// Writes the timeouts `rvs ctl set-timeouts` changes into `[timeouts]`
/// (created at the end of the file when it has none).
fn sync_timeouts(doc: &mut DocumentMut, was: &super::Timeouts, now: &super::Timeouts) {
    let changes = [
        ("tcp_established", was.tcp_established, now.tcp_established),
        ("tcp_fin", was.tcp_fin, now.tcp_fin),
        ("udp", was.udp, now.udp),
    ];
    if changes.iter().all(|(_, a, b)| a == b) {
        return;
    }
    let Some(t) = doc
        .entry("timeouts")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
    else {
        // `timeouts = {...}` inline: the round-trip check reports it.
        return;
    };
    for (key, a, b) in changes {
        if a != b {
            set(t, key, i64::from(b).into());
        }
    }
}

/// Sets `key` to `v`, keeping the comments around an old value.
fn set(t: &mut Table, key: &str, v: toml_edit::Value) {
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = v;
            *old.decor_mut() = decor;
        }
        None => {
            t.insert(key, value(v));
        }
    }
}

/// Rewrites the keys of `t` (a service as the file had it, `was`) that
/// differ in `now`.
fn sync_service(t: &mut Table, was: &ServiceConfig, now: &ServiceConfig) {
    if was.scheduler != now.scheduler {
        set(t, "scheduler", now.scheduler.name().into());
    }
    if was.sched_flags != now.sched_flags {
        if now.sched_flags == SchedFlags::default() {
            t.remove("scheduler_flags");
        } else {
            let a: Array = now.sched_flags.names().into_iter().collect();
            set(t, "scheduler_flags", a.into());
        }
    }
    if was.forward != now.forward {
        set(t, "forward", now.forward.name().into());
    }
    if was.persistence_timeout != now.persistence_timeout {
        set(
            t,
            "persistence_timeout",
            i64::from(now.persistence_timeout).into(),
        );
    }
    if was.persistence_netmask != now.persistence_netmask {
        set(
            t,
            "persistence_netmask",
            now.persistence_netmask.to_string().into(),
        );
    }
    if was.persistence_prefix != now.persistence_prefix {
        set(
            t,
            "persistence_prefix",
            i64::from(now.persistence_prefix).into(),
        );
    }
    if was.sorry_server != now.sorry_server {
        match now.sorry_server {
            Some(a) => set(t, "sorry_server", a.to_string().into()),
            None => {
                t.remove("sorry_server");
            }
        }
    }
    if was.quorum != now.quorum {
        set(t, "quorum", i64::from(now.quorum).into());
    }
    if was.ops != now.ops {
        if now.ops {
            set(t, "ops", true.into());
        } else {
            t.remove("ops");
        }
    }
    sync_servers(t, was, now);
}

/// Rebuilds `[[service.server]]` in `now`'s order, each server from its
/// old table when it had one (matched by identity, `ServerConfig::ident`).
fn sync_servers(t: &mut Table, was: &ServiceConfig, now: &ServiceConfig) {
    let old_tables: Vec<Table> = match t.get("server") {
        Some(Item::ArrayOfTables(a)) => a.iter().cloned().collect(),
        _ => Vec::new(),
    };
    let mut out = ArrayOfTables::new();
    for srv in &now.servers {
        let id = srv.ident(now);
        let found = was.servers.iter().position(|o| o.ident(was) == id);
        let (mut st, old) = match found.and_then(|i| Some((old_tables.get(i)?.clone(), i))) {
            Some((st, i)) => (st, was.servers[i].clone()),
            None => {
                let mut st = Table::new();
                st.insert("address", value(srv.address.to_string()));
                let blank = ServerConfig {
                    address: srv.address,
                    // A grouped service's servers have no port of their own.
                    port: if now.is_grouped() { 0 } else { now.port },
                    weight: 1,
                    forward: None,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    notify_up: None,
                    notify_down: None,
                };
                (st, blank)
            }
        };
        sync_server(&mut st, &old, srv);
        out.push(st);
    }
    // The document prints tables by position (a table without one follows
    // the table visited before it), so a moved or new server could land
    // elsewhere, even under the next `[[service]]`: all of this service's
    // servers take the first old server's position (or the service's), and
    // ties keep `now`'s order.
    let anchor = old_tables
        .iter()
        .filter_map(Table::position)
        .min()
        .or(t.position());
    if let Some(pos) = anchor {
        for st in out.iter_mut() {
            st.set_position(pos);
        }
    }
    if out.is_empty() {
        t.remove("server");
    } else {
        t.insert("server", Item::ArrayOfTables(out));
    }
}

fn sync_server(t: &mut Table, was: &ServerConfig, now: &ServerConfig) {
    if was.port != now.port {
        set(t, "port", i64::from(now.port).into());
    }
    if was.weight != now.weight {
        set(t, "weight", i64::from(now.weight).into());
    }
    if was.forward != now.forward {
        match now.forward {
            Some(f) => set(t, "forward", f.name().into()),
            None => {
                t.remove("forward");
            }
        }
    }
    if was.upper_threshold != now.upper_threshold {
        set(t, "upper_threshold", i64::from(now.upper_threshold).into());
    }
    if was.lower_threshold != now.lower_threshold {
        set(t, "lower_threshold", i64::from(now.lower_threshold).into());
    }
}

/// The saved text must load as exactly the running configuration.
fn check_round_trip(text: &str, running: &Config) -> Result<(), String> {
    let back = parse(text).map_err(|e| {
        format!(
            "internal error: the saved text does not load: {}",
            e.errors.first().map(|x| x.to_string()).unwrap_or_default()
        )
    })?;
    if back == *running {
        return Ok(());
    }
    let section = if back.services != running.services {
        let i = back
            .services
            .iter()
            .zip(&running.services)
            .position(|(a, b)| a != b)
            .unwrap_or(back.services.len().min(running.services.len()));
        match running.services.get(i) {
            Some(s)
                if back
                    .services
                    .get(i)
                    .map(|b| b.health_check != s.health_check)
                    == Some(true) =>
            {
                format!("the health check of service {}", s.key())
            }
            Some(s) => format!("service {}", s.key()),
            None => "the list of services".to_string(),
        }
    } else {
        let restart = if back.dpdk != running.dpdk {
            Some("[dpdk]")
        } else if back.ports != running.ports {
            Some("[[port]]")
        } else if back.control != running.control {
            Some("[control]")
        } else if back.ha != running.ha {
            Some("[ha]")
        } else if back.bgp != running.bgp {
            Some("[bgp]")
        } else {
            None
        };
        if let Some(s) = restart {
            return Err(format!(
                "the file's {s} differs from the running configuration (it changes only with a restart); save to another file"
            ));
        }
        "[timeouts] or [notify]".to_string()
    };
    Err(format!(
        "the file differs from the running configuration in {section} beyond what rvs ctl changed (edited since it was loaded?); reload it (SIGHUP) or save to another file"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    const FILE: &str = concat!(
        crate::control::two_port_director!(),
        r#"
# the web service
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "wrr"   # weighted, see below
  [[service.server]]
  address = "198.19.0.11"   # rs1
  port = 8080
  weight = 3                # the big one
  [[service.server]]
  address = "198.19.0.12"   # rs2
  port = 8080
  weight = 2
  [service.health_check]
  kind = "tcp"
# DNS
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353

[timeouts]
udp = 30   # short
"#
    );

    #[test]
    fn unchanged_is_byte_identical() {
        let c = config::parse(FILE).unwrap();
        assert_eq!(render(FILE, &c).unwrap(), FILE);
    }

    /// `set-timeouts` lands in `[timeouts]`, keeping its comments; a file
    /// without the section gets one.
    #[test]
    fn set_timeouts_are_saved() {
        let mut c = config::parse(FILE).unwrap();
        c.timeouts.udp = 2;
        c.timeouts.tcp_fin = 60;
        let text = render(FILE, &c).unwrap();
        assert!(
            text.ends_with("[timeouts]\nudp = 2   # short\ntcp_fin = 60\n"),
            "{text}"
        );
        assert_eq!(config::parse(&text).unwrap(), c);
        let bare = FILE.replace("\n[timeouts]\nudp = 30   # short\n", "");
        let mut c = config::parse(&bare).unwrap();
        c.timeouts.tcp_established = 3600;
        let text = render(&bare, &c).unwrap();
        assert!(
            text.ends_with("\n[timeouts]\ntcp_established = 3600\n"),
            "{text}"
        );
        assert_eq!(config::parse(&text).unwrap(), c);
    }

    /// A server added to a service that is not the file's last lands under
    /// that service, not under the next `[[service]]` header (a new table
    /// has no position of its own in the document).
    #[test]
    fn a_server_added_to_an_earlier_service_stays_there() {
        for readd in [false, true] {
            let mut c = config::parse(FILE).unwrap();
            let mut extra = c.services[0].servers[1].clone();
            extra.address = "198.19.0.13".parse().unwrap();
            if readd {
                // Deleted and added back: its old table is gone.
                let old = c.services[0].servers.remove(0);
                c.services[0].servers.push(old);
            }
            c.services[0].servers.push(extra);
            let text = render(FILE, &c).unwrap_or_else(|e| panic!("readd={readd}: {e}"));
            assert_eq!(config::parse(&text).unwrap(), c, "{text}");
        }
    }

    #[test]
    fn changes_keep_comments_and_order() {
        let mut c = config::parse(FILE).unwrap();
        c.services[0].scheduler = SchedKind::Rr;
        c.services[0].servers[0].weight = 5;
        c.services[0].servers.remove(1);
        c.services[0].servers.push(ServerConfig {
            address: "198.19.0.14".parse().unwrap(),
            port: 8080,
            weight: 0,
            forward: Some(Forward::Dr),
            upper_threshold: 10,
            lower_threshold: 0,
            notify_up: None,
            notify_down: None,
        });
        c.services.remove(1);
        let mut added = default_service(&c.services[0]);
        added.port = 443;
        added.persistence_timeout = 300;
        added.servers.push(ServerConfig {
            address: "198.19.0.11".parse().unwrap(),
            port: 443,
            weight: 1,
            forward: None,
            upper_threshold: 0,
            lower_threshold: 0,
            notify_up: None,
            notify_down: None,
        });
        c.services.push(added);
        let text = render(FILE, &c).unwrap();
        assert_eq!(config::parse(&text).unwrap(), c);
        for kept in [
            "# the web service",
            "scheduler = \"rr\"   # weighted, see below",
            "address = \"198.19.0.11\"   # rs1",
            "weight = 5                # the big one",
            "udp = 30   # short",
            "kind = \"tcp\"",
        ] {
            assert!(text.contains(kept), "lost `{kept}`:\n{text}");
        }
        for gone in ["# rs2", "5353", "# DNS"] {
            assert!(!text.contains(gone), "kept `{gone}`:\n{text}");
        }
        // the new server follows rs1 inside the first service, the new
        // service follows the first, and [timeouts] stays last
        let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("no `{s}`:\n{text}"));
        assert!(at("198.19.0.14") > at("# rs1"));
        assert!(at("port = 443") > at("198.19.0.14"));
        assert!(at("[timeouts]") > at("port = 443"));
        assert!(text.contains("forward = \"dr\""), "{text}");
        assert!(text.contains("persistence_timeout = 300"), "{text}");
    }

    #[test]
    fn a_service_over_several_ports_is_written_with_ports() {
        let mut c = config::parse(FILE).unwrap();
        let mut added = default_service(&c.services[0]);
        added.vip = "198.18.0.101".parse().unwrap();
        added.ports = vec![80, 443];
        added.persistence_timeout = 300;
        added.servers.push(ServerConfig {
            address: "198.19.0.11".parse().unwrap(),
            port: 0,
            weight: 1,
            forward: None,
            upper_threshold: 0,
            lower_threshold: 0,
            notify_up: None,
            notify_down: None,
        });
        c.services.push(added);
        let text = render(FILE, &c).unwrap();
        assert!(text.contains("ports = [80, 443]"), "{text}");
        let back = config::parse(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.services[2].key(), "tcp:198.18.0.101:80,443");
        // Saved again from what it wrote: byte-identical.
        assert_eq!(render(&text, &back).unwrap(), text);
    }

    #[test]
    fn a_file_edited_since_it_was_loaded_is_refused() {
        let c = config::parse(FILE).unwrap();
        let edited = FILE.replace("kind = \"tcp\"", "kind = \"http\"");
        let e = render(&edited, &c).unwrap_err();
        assert!(
            e.contains("health check of service tcp:198.18.0.100:80"),
            "{e}"
        );
        let e = render("[[service]]\nvip = 1\n", &c).unwrap_err();
        assert!(e.contains("no longer loads"), "{e}");
    }

    #[test]
    fn the_identity_rule_matches_a_dr_server_by_the_vip_port() {
        let file = FILE.replace(
            "  address = \"198.19.0.12\"   # rs2\n  port = 8080",
            "  address = \"198.19.0.12\"   # rs2\n  port = 8080\n  forward = \"dr\"",
        );
        let mut c = config::parse(&file).unwrap();
        c.services[0].servers[1].weight = 9;
        let text = render(&file, &c).unwrap();
        assert!(text.contains("# rs2"), "{text}");
        assert_eq!(config::parse(&text).unwrap(), c);
    }
}
