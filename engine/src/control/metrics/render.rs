//! The Prometheus text itself: every family rendered at scrape time from
//! the snapshot, the servers' and workers' counters and [`ControlInfo`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::ControlInfo;
use crate::control::ctl_proto::MbufPoolView;
use crate::control::stats::Counts;
use crate::dataplane::counters::{Drop, PortStats, WorkerStats};
use crate::dataplane::Shared;
use crate::packet::DropReason;

/// A metric family computed from one `T`: name (or suffix), help, value.
type Field<T> = (&'static str, &'static str, fn(&T) -> u64);

/// A service's label: `proto:vip:ports`, an IPv6 VIP in brackets.
pub(super) fn service_label(proto: u8, vip: std::net::IpAddr, port: u16, ports: &[u16]) -> String {
    let proto = match proto {
        crate::conn::PROTO_TCP => "tcp".to_string(),
        crate::conn::PROTO_UDP => "udp".to_string(),
        p => p.to_string(),
    };
    let ports = if ports.is_empty() {
        port.to_string()
    } else {
        crate::config::port_list(ports)
    };
    format!("{proto}:{}:{ports}", crate::config::host_part(vip))
}

/// Escapes a label value.
pub(super) fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family being written.
pub(super) struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The whole exposition.
/// `[bgp]`: 1 per announced VIP, 0 per withdrawn one (nothing without
/// `[bgp]`).
pub(super) fn render_bgp(o: &mut Out, info: &ControlInfo) {
    let vips = {
        let g = info.bgp.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(v) => v.clone(),
            None => return,
        }
    };
    o.family(
        "rvs_bgp_announced",
        "gauge",
        "Whether this director announces the VIP through BIRD (1) or withdrew it (0).",
    );
    for (vip, on) in vips {
        o.sample(
            "rvs_bgp_announced",
            &[("vip", &vip.to_string())],
            u64::from(on),
        );
    }
}

/// `[ha]`: role, adverts and sync counters (nothing without `[ha]`).
pub(super) fn render_ha(o: &mut Out, info: &ControlInfo) {
    let view = {
        let g = info.ha.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(v) => v.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => return,
        }
    };
    o.family(
        "rvs_ha_role",
        "gauge",
        "1 for the director's current VRRP role (init, backup, master).",
    );
    for r in ["init", "backup", "master"] {
        o.sample("rvs_ha_role", &[("role", r)], u64::from(view.role == r));
    }
    o.family("rvs_ha_priority", "gauge", "This director's VRRP priority.");
    o.sample("rvs_ha_priority", &[], u64::from(view.priority));
    o.family(
        "rvs_ha_transitions_total",
        "counter",
        "VRRP role changes since start.",
    );
    o.sample("rvs_ha_transitions_total", &[], view.transitions);
    o.family(
        "rvs_ha_adverts_total",
        "counter",
        "VRRP adverts, by what happened to them.",
    );
    for (k, v) in [
        ("sent", view.adverts_sent),
        ("received", view.adverts_received),
        ("ignored", view.adverts_ignored),
        ("ignored_non_peer", view.adverts_ignored_non_peer),
        ("malformed", view.adverts_bad),
    ] {
        o.sample("rvs_ha_adverts_total", &[("result", k)], v);
    }
    o.family(
        "rvs_ha_sync_messages_total",
        "counter",
        "Connection-sync datagrams: sent, received (authenticated), bad (failed authentication, malformed or replayed).",
    );
    for (k, v) in [
        ("sent", view.sync_sent),
        ("received", view.sync_received),
        ("bad", view.sync_bad),
    ] {
        o.sample("rvs_ha_sync_messages_total", &[("result", k)], v);
    }
    o.family(
        "rvs_ha_sync_records_total",
        "counter",
        "Connection and template records sent to the peers and received from them.",
    );
    o.sample(
        "rvs_ha_sync_records_total",
        &[("direction", "sent")],
        view.records_sent,
    );
    o.sample(
        "rvs_ha_sync_records_total",
        &[("direction", "received")],
        view.conns_synced,
    );
    o.family(
        "rvs_ha_bulk_done",
        "gauge",
        "1 once this director has its bulk copy (or needs none).",
    );
    o.sample(
        "rvs_ha_bulk_done",
        &[],
        u64::from(matches!(
            view.bulk.state.as_str(),
            "done" | "not-needed" | "gave-up"
        )),
    );
}

/// The packet mempool's usage; `None` without the DPDK data plane (unit
/// tests, fuzzing) or before the pool exists.
pub fn mbuf_pool() -> Option<MbufPoolView> {
    #[cfg(feature = "dpdk")]
    {
        crate::dataplane::mbuf::packet_pool_usage()
            .map(|(in_use, size)| MbufPoolView { in_use, size })
    }
    #[cfg(not(feature = "dpdk"))]
    {
        None
    }
}

pub fn render(shared: &Shared, info: &ControlInfo) -> String {
    let mut o = Out(String::with_capacity(16 * 1024));
    let snap = shared.snapshot.load_full();

    o.family("rvs_info", "gauge", "rvs build information.");
    o.sample("rvs_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    o.family(
        "rvs_uptime_seconds",
        "gauge",
        "Seconds since the control thread started.",
    );
    o.sample("rvs_uptime_seconds", &[], info.started.elapsed().as_secs());
    o.family(
        "rvs_config_generation",
        "gauge",
        "Generation of the configuration snapshot the workers run.",
    );
    o.sample("rvs_config_generation", &[], snap.generation);
    o.family(
        "rvs_config_reloads_total",
        "counter",
        "SIGHUP reloads, applied or refused.",
    );
    o.sample(
        "rvs_config_reloads_total",
        &[("result", "ok")],
        info.reloads_ok.load(Relaxed),
    );
    o.sample(
        "rvs_config_reloads_total",
        &[("result", "error")],
        info.reloads_failed.load(Relaxed),
    );
    o.family(
        "rvs_api_requests_total",
        "counter",
        "Control API requests answered, by result.",
    );
    o.sample(
        "rvs_api_requests_total",
        &[("result", "ok")],
        info.api_ok.load(Relaxed),
    );
    o.sample(
        "rvs_api_requests_total",
        &[("result", "error")],
        info.api_errors.load(Relaxed),
    );

    if let Some(m) = mbuf_pool() {
        o.family(
            "rvs_mbuf_pool_in_use",
            "gauge",
            "Mbufs of the packet pool in use (rings, workers, lcore caches); flat under steady traffic.",
        );
        o.sample("rvs_mbuf_pool_in_use", &[], u64::from(m.in_use));
        o.family("rvs_mbuf_pool_size", "gauge", "Mbufs in the packet pool.");
        o.sample("rvs_mbuf_pool_size", &[], u64::from(m.size));
    }

    render_ha(&mut o, info);
    render_bgp(&mut o, info);

    // Services and servers of the running snapshot. A service counts the
    // traffic of every server it ever had, as IPVS counts a service.
    let entries = shared.registry.entries();
    let mut per_service: HashMap<u16, Counts> = HashMap::new();
    for (svc, _, _, d) in &entries {
        let e = per_service.entry(*svc).or_default();
        *e = e.plus(Counts::of(d));
    }
    let svc_name = |s: &crate::dataplane::snapshot::Service| {
        service_label(s.proto, s.vip.into(), s.port, &s.ports)
    };
    let svc_name6 = |s: &crate::dataplane::snapshot::Service6| {
        service_label(s.proto, s.vip.into(), s.port, &s.ports)
    };
    fn load<A>(servers: &[crate::dataplane::snapshot::Server<A>]) -> (u64, u64) {
        servers.iter().fold((0u64, 0u64), |(a, i), d| {
            (
                a + u64::from(d.shared.active()),
                i + u64::from(d.shared.inactive()),
            )
        })
    }
    let counts_of = |id: u16| per_service.get(&id).copied().unwrap_or_default();
    let services: Vec<(String, Counts, u64, u64)> = snap
        .services
        .iter()
        .map(|s| {
            let (a, i) = load(&s.servers);
            (svc_name(s), counts_of(s.id), a, i)
        })
        .chain(snap.services6.iter().map(|s| {
            let (a, i) = load(&s.servers);
            (svc_name6(s), counts_of(s.id), a, i)
        }))
        .collect();
    let counter_fields: [Field<Counts>; 5] = [
        ("connections_total", "Connections scheduled", |c| c.conns),
        ("in_packets_total", "Packets client -> server", |c| {
            c.in_packets
        }),
        ("out_packets_total", "Packets server -> client", |c| {
            c.out_packets
        }),
        ("in_bytes_total", "Bytes client -> server (frames)", |c| {
            c.in_bytes
        }),
        ("out_bytes_total", "Bytes server -> client (frames)", |c| {
            c.out_bytes
        }),
    ];
    for (suffix, help, get) in counter_fields {
        let name = format!("rvs_service_{suffix}");
        o.family(&name, "counter", &format!("{help}, per virtual service."));
        for (s, c, _, _) in &services {
            o.sample(&name, &[("service", s)], get(c));
        }
    }
    o.family(
        "rvs_service_active_connections",
        "gauge",
        "Active connections (TCP established and opening), per service.",
    );
    for (s, _, a, _) in &services {
        o.sample("rvs_service_active_connections", &[("service", s)], *a);
    }
    o.family(
        "rvs_service_inactive_connections",
        "gauge",
        "Inactive connections (other TCP states, UDP), per service.",
    );
    for (s, _, _, i) in &services {
        o.sample("rvs_service_inactive_connections", &[("service", s)], *i);
    }

    struct Srv {
        service: String,
        server: String,
        c: Counts,
        active: u64,
        inactive: u64,
        weight: u64,
        up: u64,
    }
    fn srv<A: Into<std::net::IpAddr> + Copy>(
        service: &str,
        d: &crate::dataplane::snapshot::Server<A>,
    ) -> Srv {
        Srv {
            service: service.to_string(),
            // `[addr]:port` for an IPv6 server.
            server: std::net::SocketAddr::new(d.addr.into(), d.port).to_string(),
            c: Counts::of(&d.shared),
            active: u64::from(d.shared.active()),
            inactive: u64::from(d.shared.inactive()),
            weight: u64::from(d.weight),
            up: u64::from(d.usable),
        }
    }
    let servers: Vec<Srv> = snap
        .services
        .iter()
        .flat_map(|s| {
            let name = svc_name(s);
            s.servers.iter().map(|d| srv(&name, d)).collect::<Vec<_>>()
        })
        .chain(snap.services6.iter().flat_map(|s| {
            let name = svc_name6(s);
            s.servers.iter().map(|d| srv(&name, d)).collect::<Vec<_>>()
        }))
        .collect();
    for (suffix, help, get) in counter_fields {
        let name = format!("rvs_server_{suffix}");
        o.family(&name, "counter", &format!("{help}, per real server."));
        for d in &servers {
            o.sample(
                &name,
                &[("service", &d.service), ("server", &d.server)],
                get(&d.c),
            );
        }
    }
    let gauges: [Field<Srv>; 4] = [
        (
            "rvs_server_active_connections",
            "Active connections, per real server.",
            |d| d.active,
        ),
        (
            "rvs_server_inactive_connections",
            "Inactive connections, per real server.",
            |d| d.inactive,
        ),
        (
            "rvs_server_weight",
            "Weight in the pool (0: drained or inhibited).",
            |d| d.weight,
        ),
        (
            "rvs_server_up",
            "1 when the server is in the pool, 0 when a health check removed it.",
            |d| d.up,
        ),
    ];
    for (name, help, get) in gauges {
        o.family(name, "gauge", help);
        for d in &servers {
            o.sample(
                name,
                &[("service", &d.service), ("server", &d.server)],
                get(d),
            );
        }
    }

    // Workers.
    let ws = &shared.worker_stats;
    let worker_counters: [Field<WorkerStats>; 29] = [
        (
            "rvs_worker_loop_cycles_total",
            "TSC cycles of the worker's poll loops.",
            |w| w.loop_cycles.get(),
        ),
        (
            "rvs_worker_busy_cycles_total",
            "TSC cycles of the poll loops that moved frames (busy share: rate of this / rate of loop cycles).",
            |w| w.busy_cycles.get(),
        ),
        (
            "rvs_worker_busy_frames_total",
            "Frames the busy loops took in (cycles per frame: rate of busy cycles / rate of this).",
            |w| w.busy_frames.get(),
        ),
        (
            "rvs_worker_empty_poll_cycles_total",
            "Of the busy cycles, those of rx polls that returned nothing (testpmd's --record-core-cycles leaves them out).",
            |w| w.empty_poll_cycles.get(),
        ),
        (
            "rvs_worker_rx_bursts_total",
            "Port rx bursts that returned frames (burst size: rate of rx packets / rate of this).",
            |w| w.rx_bursts.get(),
        ),
        ("rvs_worker_rx_packets_total", "Frames received.", |w| {
            w.rx_packets.get()
        }),
        ("rvs_worker_tx_packets_total", "Frames sent.", |w| {
            w.tx_packets.get()
        }),
        (
            "rvs_worker_handoffs_in_total",
            "Frames handed to this worker by others.",
            |w| w.handoffs_in.get(),
        ),
        (
            "rvs_worker_handoffs_out_total",
            "Frames this worker handed to their owner.",
            |w| w.handoffs_out.get(),
        ),
        (
            "rvs_worker_connections_created_total",
            "Connections created.",
            |w| w.conns_created.get(),
        ),
        (
            "rvs_worker_connections_expired_total",
            "Connections expired.",
            |w| w.conns_expired.get(),
        ),
        (
            "rvs_worker_connections_evicted_total",
            "Embryonic or idle UDP connections evicted to make room in a full table.",
            |w| w.conns_evicted.get(),
        ),
        (
            "rvs_worker_syn_cookies_sent_total",
            "SYN-ACKs with a SYN cookie sent by the synproxy.",
            |w| w.syn_cookies_sent.get(),
        ),
        (
            "rvs_worker_syn_cookies_ok_total",
            "Connections the synproxy opened after a valid cookie ACK.",
            |w| w.syn_cookies_ok.get(),
        ),
        (
            "rvs_worker_established_hits_total",
            "Frames the established fast path forwarded (the others took the full path).",
            |w| w.established_hits.get(),
        ),
        (
            "rvs_worker_rescued_total",
            "Segments of moved flows (no entry, not a SYN) forwarded to the mh pick on a DR/TUN service.",
            |w| w.rescued.get(),
        ),
        (
            "rvs_worker_nodest_expired_total",
            "Connections expired by their next packet because their real server was gone.",
            |w| w.nodest_expired.get(),
        ),
        (
            "rvs_worker_nodest_rst_sent_total",
            "RSTs sent to clients whose connection's real server was gone.",
            |w| w.nodest_rst_sent.get(),
        ),
        (
            "rvs_worker_sync_records_total",
            "Connection-sync records reported to the HA thread.",
            |w| w.sync_reported.get(),
        ),
        (
            "rvs_worker_sync_lost_total",
            "Connection-sync records lost to a full queue.",
            |w| w.sync_lost.get(),
        ),
        (
            "rvs_worker_sync_installed_total",
            "Synced connections and templates installed from a peer.",
            |w| w.sync_installed.get(),
        ),
        ("rvs_worker_arp_replies_total", "ARP replies sent.", |w| {
            w.arp_replies_sent.get()
        }),
        ("rvs_worker_arp_requests_total", "ARP requests sent.", |w| {
            w.arp_requests_sent.get()
        }),
        (
            "rvs_worker_nd_adverts_total",
            "IPv6 neighbour advertisements sent (answers to solicitations).",
            |w| w.nd_adverts_sent.get(),
        ),
        (
            "rvs_worker_nd_solicits_total",
            "IPv6 neighbour solicitations sent (resolving servers and gateways).",
            |w| w.nd_solicits_sent.get(),
        ),
        (
            "rvs_worker_nd_unsolicited_total",
            "Unsolicited IPv6 neighbour advertisements sent for owned addresses.",
            |w| w.nd_unsolicited_sent.get(),
        ),
        (
            "rvs_worker_fragments_forwarded_total",
            "IPv4 fragments forwarded (first and later ones).",
            |w| w.frags_forwarded.get(),
        ),
        (
            "rvs_worker_fragments_held_total",
            "Later IPv4 fragments held until their first fragment came.",
            |w| w.frags_held.get(),
        ),
        (
            "rvs_worker_fragment_entries_evicted_total",
            "Live fragment-table entries evicted to make room.",
            |w| w.frags_evicted.get(),
        ),
    ];
    let ids: Vec<String> = (0..ws.len()).map(|i| i.to_string()).collect();
    for (name, help, get) in worker_counters {
        o.family(name, "counter", help);
        for (i, w) in ws.iter().enumerate() {
            o.sample(name, &[("worker", &ids[i])], get(w));
        }
    }
    o.family(
        "rvs_worker_connections",
        "gauge",
        "Connections in the worker's table.",
    );
    for (i, w) in ws.iter().enumerate() {
        o.sample(
            "rvs_worker_connections",
            &[("worker", &ids[i])],
            w.conns.get(),
        );
    }
    o.family(
        "rvs_worker_connection_capacity",
        "gauge",
        "Size of the worker's connection table.",
    );
    let cap = info.capacity_per_worker.load(Relaxed);
    for id in &ids {
        o.sample("rvs_worker_connection_capacity", &[("worker", id)], cap);
    }
    o.family(
        "rvs_worker_drops_total",
        "counter",
        "Frames dropped, by worker and reason (parser and data plane).",
    );
    for (i, w) in ws.iter().enumerate() {
        for d in DropReason::ALL {
            o.sample(
                "rvs_worker_drops_total",
                &[("worker", &ids[i]), ("reason", d.as_str())],
                w.parse_drops[d.index()].get(),
            );
        }
        for d in Drop::ALL {
            o.sample(
                "rvs_worker_drops_total",
                &[("worker", &ids[i]), ("reason", d.as_str())],
                w.drops[d as usize].get(),
            );
        }
    }
    render_ports(&mut o, &shared.port_stats());
    o.0
}

/// The ports' device counters (refreshed about once a second).
pub(super) fn render_ports(o: &mut Out, ports: &[PortStats]) {
    let fields: [Field<PortStats>; 5] = [
        (
            "rvs_port_rx_packets_total",
            "Frames the device received.",
            |p| p.ipackets,
        ),
        (
            "rvs_port_tx_packets_total",
            "Frames the device sent.",
            |p| p.opackets,
        ),
        (
            "rvs_port_rx_missed_total",
            "Frames the device dropped for lack of RX descriptors (imissed).",
            |p| p.imissed,
        ),
        (
            "rvs_port_rx_nombuf_total",
            "Frames dropped for lack of mbufs.",
            |p| p.rx_nombuf,
        ),
        (
            "rvs_port_rx_ring_drops_total",
            "net_af_packet: frames the kernel dropped at the PMD's full RX ring.",
            |p| p.rx_ring_drops,
        ),
    ];
    for (name, help, get) in fields {
        o.family(name, "counter", help);
        for p in ports {
            o.sample(name, &[("port", &p.name)], get(p));
        }
    }
}
