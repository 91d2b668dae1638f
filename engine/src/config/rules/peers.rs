//! The rules of `[ha]` and `[bgp]`: peers, virtual addresses and the sync
//! key file against the ports; what ECMP behind BIRD cannot forward.

use std::path::Path;

use super::*;

/// `[bgp]` puts several directors behind the router's ECMP: a flow's
/// packets may arrive at any of them and replies leave from the real
/// server. Plain NAT needs the replies back through the director that
/// rewrote the request, which ECMP does not give (they would reach another
/// director, which has no entry for them): refused.
pub(super) fn check_bgp(scope: &Scope, out: &mut Out) {
    for &(i, svc) in &scope.services {
        if svc.forward == Forward::Nat {
            out.push(
                format!("service[{i}].forward"),
                format!(
                    "{}: plain NAT is refused with [bgp]: behind ECMP the replies would come back through another director, which has no entry to rewrite them (use dr or tun)",
                    svc.key()
                ),
            );
            continue;
        }
        for (j, srv) in svc.servers.iter().enumerate() {
            if srv.effective_forward(svc) == Forward::Nat {
                out.push(
                    format!("service[{i}].server[{j}].forward"),
                    format!(
                        "{}: plain NAT is refused with [bgp]: behind ECMP the replies would come back through another director, which has no entry to rewrite them (use dr or tun)",
                        srv.ident(svc)
                    ),
                );
            }
        }
    }
}

pub(super) fn check_ha(scope: &Scope, ha: &HaConfig, out: &mut Out) {
    // Ranges the schema pass checks in a file; here for configurations
    // built in code.
    if ha.vrid == 0 {
        out.push(
            "ha.vrid",
            "0 is outside 1..255 (the virtual router id, the same on every director of the group)",
        );
    }
    match ha.priority {
        0 => out.push("ha.priority", "0 is outside 1..254"),
        255 => out.push(
            "ha.priority",
            "255 is reserved for the address owner in VRRP; rvs directors use 1..254",
        ),
        _ => {}
    }
    let ms = ha.advert_interval_ms;
    if !(10..=40950).contains(&ms) {
        out.push(
            "ha.advert_interval_ms",
            format!("{ms} is outside 10..40950"),
        );
    } else if !ms.is_multiple_of(10) {
        out.push(
            "ha.advert_interval_ms",
            format!("{ms} is not a multiple of 10 (VRRPv3 counts centiseconds)"),
        );
    }
    if ha.preempt_delay_ms > HaConfig::MAX_PREEMPT_DELAY_MS {
        out.push(
            "ha.preempt_delay_ms",
            format!(
                "{} is outside 0..{}",
                ha.preempt_delay_ms,
                HaConfig::MAX_PREEMPT_DELAY_MS
            ),
        );
    }
    if ha.sync_port == 0 {
        out.push("ha.sync_port", "0 is outside 1..65535");
    }

    // With a [[port]] missing (it had errors), `ha.port` may be a default
    // taken from the others: nothing is judged against ports then.
    let port = named_port(scope, &ha.port).filter(|_| scope.all_ports);
    if port.is_none() && scope.all_ports {
        let msg = if ha.port.is_empty() {
            "no [[port]] is configured to carry adverts and sync".to_string()
        } else {
            format!(
                "`{}` is not a configured [[port]] ({}); adverts and sync go out through it",
                ha.port,
                port_names(scope)
            )
        };
        out.push("ha.port", msg);
    }

    let mut peers: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, &peer) in ha.peers.iter().enumerate() {
        let at = format!("ha.peers[{i}]");
        if let Some(first) = peers.get(&peer) {
            out.push(at, format!("{peer} is already listed as ha.peers[{first}]"));
            continue;
        }
        peers.insert(peer, i);
        if !is_unicast(peer) {
            out.push(at, format!("{peer} is not a unicast address"));
        } else if let Some(own) = own_address(scope, peer) {
            out.push(
                at,
                format!(
                    "{peer} is this director's own address (port `{}`); list the other directors",
                    own.name
                ),
            );
        } else if let Some(p) = port.filter(|p| !p.contains(peer)) {
            out.push(
                at,
                format!(
                    "{peer} is not on the subnet of the [ha] port `{}` ({}): adverts are link-local (TTL 255) and do not cross a router",
                    p.name,
                    p.subnet()
                ),
            );
        }
    }

    let mut seen: HashMap<Ipv4Addr, usize> = HashMap::new();
    for (i, va) in ha.virtual_addresses.iter().enumerate() {
        let at = format!("ha.virtual_addresses[{i}]");
        let ip = va.address;
        if let Some(first) = seen.get(&ip) {
            out.push(
                at,
                format!("{ip} is already listed as ha.virtual_addresses[{first}]"),
            );
            continue;
        }
        seen.insert(ip, i);
        let vport = named_port(scope, &va.port).filter(|_| scope.all_ports);
        if !is_unicast(ip) {
            out.push(at, format!("{ip} is not a unicast address"));
        } else if let Some(own) = own_address(scope, ip) {
            out.push(
                at,
                format!(
                    "{ip} is the address of port `{}`; a virtual address needs an address of its own",
                    own.name
                ),
            );
        } else if let Some(&(j, svc)) = scope.services.iter().find(|(_, s)| s.vip == IpAddr::V4(ip))
        {
            out.push(
                at,
                format!(
                    "{ip} is the VIP of service[{j}] ({}); VIPs move with the master without being listed here",
                    svc.key()
                ),
            );
        } else if let Some(p) = vport {
            let host = u32::from(ip) & !u32::from(p.netmask());
            let broadcast = !u32::from(p.netmask());
            if !p.contains(ip) {
                out.push(
                    at,
                    format!(
                        "{ip} is not on the subnet of port `{}` ({}); a virtual address lives on its port's subnet",
                        p.name,
                        p.subnet()
                    ),
                );
            } else if va.prefix_len != p.prefix_len {
                out.push(
                    at,
                    format!(
                        "prefix length /{} differs from port `{}`'s /{} ({}); write \"{ip}/{}@{}\"",
                        va.prefix_len,
                        p.name,
                        p.prefix_len,
                        p.subnet(),
                        p.prefix_len,
                        p.name
                    ),
                );
            } else if p.prefix_len <= 30 && (host == 0 || host == broadcast) {
                let which = if host == 0 { "network" } else { "broadcast" };
                out.push(at, format!("{ip} is the {which} address of {}", p.subnet()));
            }
        } else if scope.all_ports {
            out.push(
                at,
                format!(
                    "`{}` is not a configured [[port]] ({}); write ADDRESS/PREFIX@PORT",
                    va.port,
                    port_names(scope)
                ),
            );
        }
    }

    if ha.sync && ha.auth_key_file.is_none() {
        out.push(
            "ha.auth_key_file",
            "required while sync = true: a file holding the shared secret that authenticates sync messages (mode 0600, at least 16 bytes, the same on every director); or set sync = false",
        );
    }
    if let Some(path) = &ha.auth_key_file {
        if let Err(msg) = check_key_file(path) {
            out.push("ha.auth_key_file", msg);
        }
    }
}

/// The sync key: a regular file, closed to group and others, of at least
/// [`HaConfig::MIN_KEY_LEN`] bytes. Its content is not read here.
pub(super) fn check_key_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;

    let p = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{p} does not exist; create it with a shared secret of at least {min} bytes, e.g. `head -c 32 /dev/urandom > {p}; chmod 600 {p}`, and copy it to every director",
                min = HaConfig::MIN_KEY_LEN
            ));
        }
        Err(e) => return Err(format!("cannot read {p}: {e}")),
    };
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "{p} is {what}; it must be a regular file holding the key"
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{p} has mode {mode:04o}; it must not be readable or writable by group or others (chmod 600)"
        ));
    }
    if meta.len() < HaConfig::MIN_KEY_LEN {
        return Err(format!(
            "{p} holds {} bytes; the key must be at least {} bytes (e.g. `head -c 32 /dev/urandom > {p}`)",
            meta.len(),
            HaConfig::MIN_KEY_LEN
        ));
    }
    Ok(())
}
