//! Value syntax of the schema: addresses, networks, endpoints, mail
//! addresses, names, paths and commands, each checked on its own. Each error
//! message is complete after "key.path: ".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::config::*;

/// An absolute path: the director does not run where the file was written.
pub(super) fn parse_abs_path(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if s.is_empty() || !p.is_absolute() {
        return Err(format!("`{s}` is not an absolute path"));
    }
    Ok(p)
}

pub(super) fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 address"))
}

/// An address a packet can be sent to: not 0.0.0.0, loopback, multicast or
/// broadcast.
pub(super) fn parse_unicast(s: &str) -> Result<Ipv4Addr, String> {
    let ip = parse_ipv4(s)?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(format!("{ip} is not a unicast address"));
    }
    Ok(ip)
}

/// An IPv4 or IPv6 address a packet can be sent to: for IPv6, not ::,
/// loopback, multicast, link-local or IPv4-mapped (a VIP, a real server, a
/// gateway are global or unique-local addresses).
pub(crate) fn parse_unicast_ip(s: &str) -> Result<IpAddr, String> {
    let t = s.trim();
    if !t.contains(':') {
        return parse_unicast(t).map(IpAddr::V4);
    }
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    let ip: Ipv6Addr = t
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 or IPv6 address"))?;
    check_unicast6(ip).map(IpAddr::V6)
}

/// The IPv6 addresses a data-plane endpoint cannot be.
pub(super) fn check_unicast6(ip: Ipv6Addr) -> Result<Ipv6Addr, String> {
    let first = ip.segments()[0];
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        Err(format!("{ip} is not a unicast address"))
    } else if first & 0xffc0 == 0xfe80 {
        Err(format!(
            "{ip} is link-local; use a global or unique-local address"
        ))
    } else if ip.to_ipv4_mapped().is_some() {
        Err(format!(
            "{ip} is an IPv4-mapped address; write the IPv4 address itself"
        ))
    } else {
        Ok(ip)
    }
}

/// "X:Y::Z/N": the director's IPv6 address on a port and its prefix length.
pub(super) fn parse_cidr6(s: &str) -> Result<(Ipv6Addr, u8), String> {
    let Some((ip, prefix)) = s.trim().split_once('/') else {
        return Err(format!(
            "`{s}` has no prefix length: write ADDRESS/PREFIX, e.g. \"2001:db8::2/64\""
        ));
    };
    let ip: Ipv6Addr = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
    let ip = check_unicast6(ip)?;
    match prefix.parse() {
        Ok(n @ 1..=128) => Ok((ip, n)),
        _ => Err(format!("prefix length `{prefix}` is outside 1..128")),
    }
}

/// "A.B.C.D/N": the director's address on a port and its prefix length.
pub(super) fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let Some((ip, prefix)) = s.trim().split_once('/') else {
        let ip = parse_ipv4(s)?;
        return Err(format!(
            "{ip} has no prefix length: write ADDRESS/PREFIX, e.g. \"{ip}/24\""
        ));
    };
    let ip = parse_unicast(ip)?;
    let prefix_len: u8 = match prefix.parse() {
        Ok(n @ 1..=32) => n,
        _ => return Err(format!("prefix length `{prefix}` is outside 1..32")),
    };
    let host = u32::from(ip) & !u32::from(prefix_mask(prefix_len));
    if prefix_len <= 30 && (host == 0 || host == !u32::from(prefix_mask(prefix_len))) {
        return Err(format!(
            "{ip} is the network or broadcast address of {}/{prefix_len}",
            Ipv4Addr::from(u32::from(ip) & u32::from(prefix_mask(prefix_len)))
        ));
    }
    Ok((ip, prefix_len))
}

/// "ADDRESS/PREFIX@PORT" or "ADDRESS/PREFIX": an `[ha]` virtual address.
/// Whether it fits its port's subnet is for the rules pass.
pub(super) fn parse_virtual_address(s: &str) -> Result<(Ipv4Addr, u8, Option<String>), String> {
    let (cidr, port) = match s.split_once('@') {
        Some((cidr, port)) => {
            let port = port.trim();
            if port.is_empty() {
                return Err(format!(
                    "`{s}` names no port after `@` (ADDRESS/PREFIX@PORT, or leave `@` out for the [ha] port)"
                ));
            }
            (cidr.trim(), Some(port.to_string()))
        }
        None => (s.trim(), None),
    };
    let Some((ip, prefix)) = cidr.split_once('/') else {
        let ip = parse_ipv4(cidr)?;
        return Err(format!(
            "{ip} has no prefix length: write ADDRESS/PREFIX@PORT, e.g. \"{ip}/24@servers\" (the prefix of the port's subnet)"
        ));
    };
    let ip = parse_unicast(ip)?;
    match prefix.parse() {
        Ok(n @ 1..=32) => Ok((ip, n, port)),
        _ => Err(format!("prefix length `{prefix}` is outside 1..32")),
    }
}

pub(super) fn parse_netmask(s: &str) -> Result<Ipv4Addr, String> {
    let mask = parse_ipv4(s)?;
    if !is_contiguous(mask) {
        return Err(format!("{mask} is not a contiguous netmask"));
    }
    Ok(mask)
}

/// Ones then zeros: 255.255.255.0 is, 255.0.255.0 is not.
pub(in crate::config) fn is_contiguous(mask: Ipv4Addr) -> bool {
    let m = u32::from(mask);
    m.leading_ones() + m.trailing_zeros() == 32
}

/// "IP:PORT" or "[IPV6]:PORT" with a unicast IP and a port in 1..65535.
pub(super) fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    let bad = || format!("`{s}` is not IP:PORT (IPv6: [ADDRESS]:PORT)");
    let Some((ip, port)) = s.trim().rsplit_once(':') else {
        return Err(bad());
    };
    let ip = match ip.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        Some(v6) => match v6.parse::<Ipv6Addr>() {
            Ok(v6) => IpAddr::V6(check_unicast6(v6)?),
            Err(_) => return Err(format!("`{v6}` is not an IPv6 address")),
        },
        // An IPv6 address without brackets: its last group would be read
        // as the port.
        None if ip.contains(':') => return Err(bad()),
        None => IpAddr::V4(parse_unicast(ip)?),
    };
    match port.parse::<i64>() {
        Ok(p @ 1..=65535) => Ok(SocketAddr::new(ip, p as u16)),
        Ok(p) => Err(format!("port {p} is outside 1..65535")),
        Err(_) => Err(bad()),
    }
}

/// "host" or "host:port" (port 25 when left out).
pub(super) fn parse_smtp(s: &str) -> Result<SmtpRelay, String> {
    let s = s.trim();
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => match p.parse::<i64>() {
            Ok(p @ 1..=65535) => (h, p as u16),
            _ => return Err(format!("`{p}` in `{s}` is not a port in 1..65535")),
        },
        None => (s, 25),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err(format!("`{s}` is not HOST or HOST:PORT"));
    }
    Ok(SmtpRelay {
        host: host.to_string(),
        port,
    })
}

/// "local@domain".
pub(super) fn parse_email(s: &str) -> Result<String, String> {
    let valid = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not an email address (local@domain)"))
    }
}

pub(super) fn parse_http_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.contains(char::is_whitespace) {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not an HTTP path (it starts with `/`)"))
    }
}

/// An HTTP `Host` header value: a name or address, optionally `:port`;
/// nothing that could end the header line or split the request.
pub(super) fn parse_http_host(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a host name (letters, digits, `.-_:[]`, e.g. www.example.org or www.example.org:8443)",
            s.escape_debug()
        ))
    }
}

/// A TLS server name: a DNS name or an IP address.
pub(super) fn parse_tls_name(s: &str) -> Result<String, String> {
    match rustls::pki_types::ServerName::try_from(s) {
        Ok(_) => Ok(s.to_string()),
        Err(_) => Err(format!(
            "`{}` is not a TLS server name (a DNS name such as www.example.org)",
            s.escape_debug()
        )),
    }
}

/// An absolute file path.
pub(super) fn parse_file_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not an absolute file path",
            s.escape_debug()
        ))
    }
}

/// A domain name a DNS query can carry ("." is the root).
pub(super) fn parse_dns_name(s: &str) -> Result<String, String> {
    match hickory_proto::rr::Name::from_ascii(s) {
        Ok(_) if !s.is_empty() && s.is_ascii() => Ok(s.to_string()),
        _ => Err(format!(
            "`{}` is not a domain name (e.g. \".\" or www.example.org)",
            s.escape_debug()
        )),
    }
}

/// A command line: at least a program, its words well quoted (the same
/// splitting exec checks use).
pub(super) fn parse_command(s: &str) -> Result<String, String> {
    match crate::control::health::probe::split_words(s) {
        Ok(w) if !w.is_empty() && !w[0].is_empty() => Ok(s.to_string()),
        Ok(_) => Err("an empty command line".to_string()),
        Err(e) => Err(format!("`{}`: {e}", s.escape_debug())),
    }
}

/// MD5 as 32 hex digits, kept lowercase.
pub(super) fn parse_md5(s: &str) -> Result<String, String> {
    if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("`{s}` is not an MD5 digest (32 hex digits)"))
    }
}
