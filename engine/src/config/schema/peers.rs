//! The `[ha]` and `[bgp]` sections: the director's peers (VRRP and
//! connection sync, BIRD).

use super::values::*;
use super::{Ctx, Tab};
use crate::config::*;

pub(super) fn ha(ctx: &mut Ctx, t: &Tab, ports: &[Option<PortConfig>]) -> Option<HaConfig> {
    let mark = ctx.mark();
    if !t.has("vrid") {
        ctx.error(
            t.child("vrid"),
            t.line,
            "required: the virtual router id 1..255, the same on every director of the group",
        );
    }
    let vrid = t.int(ctx, "vrid", 1, 255);
    // 255 passes here: the rules pass says why it is refused.
    let priority = t
        .int::<i64>(ctx, "priority", i64::MIN, i64::MAX)
        .and_then(|n| {
            if (1..=255).contains(&n) {
                Some(n as u8)
            } else {
                let line = t.key_line(ctx, "priority");
                ctx.error(t.child("priority"), line, format!("{n} is outside 1..254"));
                None
            }
        });
    let port = t.string(ctx, "port");
    let peers = t.strings(ctx, "peers").map(|list| {
        list.into_iter()
            .filter_map(|l| match parse_unicast(l.text) {
                Ok(ip) => Some(ip),
                Err(m) => {
                    ctx.error(l.path, l.line, m);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    // Multiples of 10: the rules pass.
    let advert_interval_ms = t.int(ctx, "advert_interval_ms", 10, 40950);
    let preempt = t.bool(ctx, "preempt");
    let preempt_delay_ms = t.int(
        ctx,
        "preempt_delay_ms",
        0,
        i64::from(HaConfig::MAX_PREEMPT_DELAY_MS),
    );
    let virtual_addresses = t.strings(ctx, "virtual_addresses").map(|list| {
        list.into_iter()
            .filter_map(|l| match parse_virtual_address(l.text) {
                Ok(va) => Some(va),
                Err(m) => {
                    ctx.error(l.path, l.line, m);
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let sync = t.bool(ctx, "sync");
    let sync_port = t.int(ctx, "sync_port", 1, 65535);
    let auth_key_file = t.string(ctx, "auth_key_file").map(PathBuf::from);
    if !ctx.clean_since(mark) {
        return None;
    }
    // The rules pass reports a port that does not exist, and judges nothing
    // against a default taken while some [[port]] had errors.
    let port = port.unwrap_or_else(|| default_ha_port(ports));
    let mut ha = HaConfig::new(vrid?, port);
    ha.priority = priority.unwrap_or(ha.priority);
    ha.peers = peers.unwrap_or_default();
    ha.advert_interval_ms = advert_interval_ms.unwrap_or(ha.advert_interval_ms);
    ha.preempt = preempt.unwrap_or(ha.preempt);
    ha.preempt_delay_ms = preempt_delay_ms.unwrap_or(ha.preempt_delay_ms);
    ha.virtual_addresses = virtual_addresses
        .unwrap_or_default()
        .into_iter()
        .map(|(address, prefix_len, port)| VirtualAddress {
            address,
            prefix_len,
            port: port.unwrap_or_else(|| ha.port.clone()),
        })
        .collect();
    ha.sync = sync.unwrap_or(ha.sync);
    ha.sync_port = sync_port.unwrap_or(ha.sync_port);
    ha.auth_key_file = auth_key_file;
    Some(ha)
}

pub(super) fn bgp(ctx: &mut Ctx, t: &Tab) -> Option<BgpConfig> {
    let mark = ctx.mark();
    let d = BgpConfig::default();
    let bird_socket = t.parsed(ctx, "bird_socket", parse_abs_path);
    let routes_file = t.parsed(ctx, "routes_file", parse_abs_path);
    let withdraw_on = t.strings(ctx, "withdraw_on").map(|list| {
        let mut w = WithdrawOn::NONE;
        for l in list {
            if !w.set(l.text.trim()) {
                ctx.error(
                    l.path,
                    l.line,
                    format!(
                        "`{}` is not an event (valid: {})",
                        l.text,
                        WithdrawOn::NAMES.join(", ")
                    ),
                );
            }
        }
        w
    });
    let grace = t.int(
        ctx,
        "shutdown_grace_ms",
        0,
        i64::from(BgpConfig::MAX_SHUTDOWN_GRACE_MS),
    );
    if !ctx.clean_since(mark) {
        return None;
    }
    Some(BgpConfig {
        bird_socket: bird_socket.unwrap_or(d.bird_socket),
        routes_file: routes_file.unwrap_or(d.routes_file),
        withdraw_on: withdraw_on.unwrap_or(d.withdraw_on),
        shutdown_grace_ms: grace.unwrap_or(d.shutdown_grace_ms),
    })
}

/// `[ha] port` when left out: the port named "server" or "servers", else the
/// last port; "" when no port was built.
pub(super) fn default_ha_port(ports: &[Option<PortConfig>]) -> String {
    let built = || ports.iter().flatten();
    built()
        .find(|p| p.name == "server" || p.name == "servers")
        .or_else(|| built().last())
        .map_or_else(String::new, |p| p.name.clone())
}
