//! The IPv6 pipeline tests' rig (`pipeline_nat6`, `_sched6`, `_v6ops`,
//! `_v6routed`): one worker, the [ha] master, a clients' port (0) and a
//! servers' port (1) with IPv6 addresses, the test's configuration
//! published, and the servers' MACs learned from their answers to the
//! director's neighbour solicitations. Each test file adds its own
//! constructor (`Rig::new`) and helpers in an `impl Rig` of its own.
#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::sync::Arc;

use engine::config::{self, Config};
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, HealthView, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use engine::packet::icmpv6::{self, NaFlags, NDP_FRAME_LEN};
use etherparse::PacketBuilder;

pub const PORT0_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x02]);
pub const PORT1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x01]);
pub const CLIENT_MAC: [u8; 6] = [2, 0xc1, 0, 0, 0, 0x10];
pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
pub const PORT0_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);
pub const PORT1_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);

pub struct Rig {
    pub cfg: Config,
    pub ports: Vec<PortInfo>,
    pub shared: Arc<Shared>,
    pub w: Pipeline,
    pub generation: u64,
}

impl Rig {
    /// The director of `cfg` (whose IPv6 services must be forwarded: no
    /// IPv6 warning), every server up, and the servers at `neighbours`
    /// answering its solicitations on port 1.
    pub fn with(cfg: &str, neighbours: &[(Ipv6Addr, [u8; 6])]) -> Rig {
        Rig::with_workers(cfg, neighbours, 1)
    }

    /// [`with`](Rig::with) for a director of `workers` workers, this rig
    /// being worker 0 (a flow RSS gives another worker is handed over).
    pub fn with_workers(cfg: &str, neighbours: &[(Ipv6Addr, [u8; 6])], workers: usize) -> Rig {
        let shared = Arc::new(Shared::new(workers));
        shared.ha.set_master(true);
        let w = Pipeline::new(0, workers, 1 << 12, &shared);
        let cfg = config::parse(cfg).expect("config");
        assert!(
            cfg.warnings().iter().all(|w| !w.contains("IPv6")),
            "the IPv6 services are forwarded: {:?}",
            cfg.warnings()
        );
        let ports = vec![
            PortInfo::new(&cfg.ports[0], PORT0_MAC),
            PortInfo::new(&cfg.ports[1], PORT1_MAC),
        ];
        let mut r = Rig {
            cfg,
            ports,
            shared,
            w,
            generation: 0,
        };
        r.rebuild(&AllUp);
        let snap = r.snap();
        r.w.housekeeping(&snap, 1_000, 16);
        while r.w.take_ns_request().is_some() {}
        for &(ip, mac) in neighbours {
            let (v, _) = r.run(1, &na(ip, MacAddr(mac)), 1_000);
            assert_eq!(v, Verdict::Drop);
            assert_eq!(r.shared.neigh6.peek(ip, 1_000), Some(MacAddr(mac)));
        }
        r
    }

    /// A new snapshot of the configuration with the servers' health as
    /// `health` says (what the health checker publishes).
    pub fn rebuild(&mut self, health: &dyn HealthView) {
        self.generation += 1;
        let snap = Snapshot::build(
            &self.cfg,
            &self.ports,
            &self.shared.registry,
            self.generation,
            health,
        )
        .unwrap();
        self.shared.publish(snap);
        let snap = self.snap();
        self.w.on_snapshot(&snap);
    }

    pub fn snap(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// `frame` in on port `port` at `now_ms`: the verdict and the frame as
    /// the pipeline left it.
    pub fn run(&mut self, port: usize, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let snap = self.snap();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&snap, &mut f, port, now_ms, false);
        (v, f.to_vec())
    }

    pub fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }
}

/// A solicited advertisement of `target` at `mac` to the servers' port.
pub fn na(target: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let mut buf = vec![0u8; NDP_FRAME_LEN];
    let flags = NaFlags {
        solicited: true,
        override_: true,
        router: false,
    };
    icmpv6::build_na(&mut buf, mac, target, PORT1_MAC, PORT1_ADDR, flags).unwrap();
    buf
}

/// Ethernet + IPv6 + TCP with `flags` ("S", "A", "PA", "FA"...), built by
/// etherparse.
#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    macs: ([u8; 6], [u8; 6]),
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    hop: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.octets(), dst.octets(), hop)
        .tcp(sport, dport, 0x1234_5678, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(0x0bad_cafe);
    }
    if flags.contains('P') {
        b = b.psh();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}
