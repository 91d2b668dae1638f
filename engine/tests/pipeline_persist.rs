//! Persistence templates held by the connections made with them (issue 12,
//! item 2): a hold is taken only for a connection that exists, only for a
//! real server's template (never the sorry server), and given back to that
//! very template, whatever replaced it, wherever the service went.

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config::{self, Config, ServerConfig, ServiceConfig};
use engine::conn::{Method, NewConn, TcpState, PROTO_TCP};
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, Health, HealthView, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::PacketBuilder;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const SERVERS: [[u8; 4]; 3] = [[198, 19, 0, 11], [198, 19, 0, 12], [198, 19, 0, 99]];

/// rr over .11 and .12, persistence 1 s (per client address), sorry .99.
const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = "198.19.0.1/24"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "nat"
persistence_timeout = 1
sorry_server = "198.19.0.99:8080"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
"#;

struct Rig {
    cfg: Config,
    ports: Vec<PortInfo>,
    shared: Arc<Shared>,
    snap: Snapshot,
    p: Pipeline,
    generation: u64,
}

/// Every server down, or one of them.
struct Down(Option<Ipv4Addr>);

impl HealthView for Down {
    fn health(&self, _: &ServiceConfig, srv: &ServerConfig) -> Health {
        match self.0 {
            Some(a) if a != srv.address => Health::Up,
            _ => Health::Down,
        }
    }
}

fn rig(capacity: usize) -> Rig {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    for (i, ip) in SERVERS.iter().enumerate() {
        shared
            .neigh
            .learn(Ipv4Addr::from(*ip), MacAddr([2, 0, 0, 1, 0, i as u8]), 0);
    }
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let p = Pipeline::new(0, 1, capacity, &shared);
    Rig {
        cfg,
        ports,
        shared,
        snap,
        p,
        generation: 1,
    }
}

impl Rig {
    fn rebuild(&mut self, health: &dyn HealthView) {
        self.generation += 1;
        self.snap = Snapshot::build(
            &self.cfg,
            &self.ports,
            &self.shared.registry,
            self.generation,
            health,
        )
        .unwrap();
    }

    fn send(&mut self, frame: &[u8], now: u64) -> Verdict {
        let mut f = VecFrame::new(frame);
        self.p.process(&self.snap, &mut f, 0, now, false)
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }

    fn sid(&self) -> u32 {
        u32::from(self.snap.services[0].id)
    }

    fn server_id(&self, i: usize) -> u32 {
        self.snap.services[0].servers[i].shared.id
    }

    /// The server of the live template of CLIENT (its expiry not moved).
    fn template(&self, now: u64) -> Option<u32> {
        self.shared
            .persist
            .lookup(self.sid(), Ipv4Addr::from(CLIENT), now, 0)
    }

    /// Connections holding CLIENT's live template.
    fn holds(&self, now: u64) -> u32 {
        self.shared
            .persist
            .holds(self.sid(), Ipv4Addr::from(CLIENT), now)
    }

    /// The real server a connection's frame went to.
    fn dest_of(v: Verdict, frame: &[u8]) -> Option<[u8; 4]> {
        (v == Verdict::Tx(1)).then(|| frame[30..34].try_into().unwrap())
    }

    fn syn(&mut self, sport: u16, now: u64) -> Option<[u8; 4]> {
        let frame = tcp(sport, true, false, false);
        let mut f = VecFrame::new(&frame);
        let v = self.p.process(&self.snap, &mut f, 0, now, false);
        Rig::dest_of(v, &f.to_vec())
    }
}

fn tcp(sport: u16, syn: bool, ack: bool, rst: bool) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(sport, 80, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    if rst {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

/// Fills the connection table with established connections of another
/// client (nothing a full table may evict).
fn fill(p: &mut Pipeline, n: usize) {
    for i in 0..n {
        p.conns
            .insert(
                NewConn {
                    proto: PROTO_TCP,
                    client: Ipv4Addr::new(198, 18, 0, 50),
                    cport: 10_000 + i as u16,
                    vip: Ipv4Addr::from(VIP),
                    vport: 80,
                    server: Ipv4Addr::from(SERVERS[0]),
                    sport: 8080,
                    method: Method::Nat,
                    flags: 0,
                    service: 0,
                    dest: 0,
                    state: TcpState::Established,
                },
                0,
            )
            .expect("room");
    }
}

#[test]
fn a_full_table_leaves_no_template_held() {
    let mut r = rig(4);
    fill(&mut r.p, 4);
    assert_eq!(r.send(&tcp(40000, true, false, false), 0), Verdict::Drop);
    assert_eq!(r.drops(Drop::TableFull), 1);
    assert_eq!(r.holds(0), 0);
    // The template made for that SYN expires 1 s later: no connection
    // exists that could hold it.
    assert_eq!(r.template(999), Some(r.server_id(0)));
    assert_eq!(
        r.template(2000),
        None,
        "template held by a connection that was never made"
    );
}

#[test]
fn a_sorry_server_connection_holds_no_template() {
    let mut r = rig(64);
    // Every real server down: the sorry server, and no template.
    r.rebuild(&Down(None));
    assert_eq!(r.syn(40000, 0), Some(SERVERS[2]));
    assert_eq!(r.template(0), None);
    // The servers are back and the sorry server is deleted. A second
    // connection makes a template and holds it.
    r.cfg.services[0].sorry_server = None;
    r.rebuild(&AllUp);
    assert_eq!(r.syn(40001, 100), Some(SERVERS[0]));
    assert_eq!(r.holds(100), 1);
    // The first connection's next packet finds its server gone: it ends,
    // and must not give back the second one's hold.
    assert_eq!(r.send(&tcp(40000, false, true, false), 200), Verdict::Tx(0));
    assert_eq!(r.shared.worker_stats[0].nodest_expired.get(), 1);
    // Past the template's expiry (1100) it lives: the second connection
    // (SYN_RECV, 60 s) still holds it.
    assert_eq!(r.template(2000), Some(r.server_id(0)));
    assert_eq!(r.holds(2000), 1);
}

#[test]
fn a_release_leaves_the_template_that_replaced_the_connections_own() {
    let mut r = rig(64);
    // C1 -> .11 with template T1.
    assert_eq!(r.syn(40000, 0), Some(SERVERS[0]));
    // .11 goes down: C2 finds T1 invalid, goes to .12 with template T2.
    r.rebuild(&Down(Some(Ipv4Addr::from(SERVERS[0]))));
    assert_eq!(r.syn(40001, 100), Some(SERVERS[1]));
    // C1's next packet: its server is down, the connection is expired. Its
    // release is T1's, not T2's.
    assert_eq!(r.send(&tcp(40000, false, true, false), 200), Verdict::Tx(0));
    assert_eq!(r.shared.worker_stats[0].nodest_expired.get(), 1);
    assert_eq!(r.template(2000), Some(r.server_id(1)), "T2 lost C2's hold");
    assert_eq!(r.holds(2000), 1);
    assert_eq!(r.shared.persist.held_entries(), 1, "T1 still counted");
    // C2 ends (ACK, RST: CLOSE, 10 s; swept at 20 s): T2 is released. Its
    // expiry (moved to 2000 by the look above) long past, it lives until
    // the next 60-s re-check, 62 000.
    assert_eq!(r.send(&tcp(40001, false, true, false), 300), Verdict::Tx(1));
    assert_eq!(r.send(&tcp(40001, false, false, true), 300), Verdict::Tx(1));
    r.p.housekeeping(&r.snap, 20_000, 1024);
    assert_eq!(r.p.conns.len(), 0);
    assert_eq!(r.template(61_999), Some(r.server_id(1)));
    assert_eq!(r.template(62_000), None);
    assert_eq!(r.shared.persist.held_entries(), 0);
}

#[test]
fn a_template_is_released_when_its_service_is_deleted() {
    let mut r = rig(64);
    assert_eq!(r.syn(40000, 0), Some(SERVERS[0]));
    let sid = r.sid();
    let svc = r.cfg.services.remove(0);
    r.rebuild(&AllUp);
    // The connection's next packet: its server is gone with its service.
    assert_eq!(r.send(&tcp(40000, false, true, false), 200), Verdict::Tx(0));
    assert_eq!(r.shared.worker_stats[0].nodest_expired.get(), 1);
    assert_eq!(
        r.shared
            .persist
            .lookup(sid, Ipv4Addr::from(CLIENT), 2000, 0),
        None,
        "template held for ever"
    );
    // The service is back (same id): its clients are scheduled afresh.
    r.cfg.services.insert(0, svc);
    r.rebuild(&AllUp);
    assert_eq!(r.sid(), sid);
    assert_eq!(r.template(2000), None);
}

#[test]
fn a_template_is_released_after_the_persistence_netmask_changed() {
    let mut r = rig(64);
    assert_eq!(r.syn(40000, 0), Some(SERVERS[0]));
    // Persistence per /24 from now on; the connection made under /32 ends.
    r.cfg.services[0].persistence_netmask = Ipv4Addr::new(255, 255, 255, 0);
    r.rebuild(&AllUp);
    assert_eq!(r.send(&tcp(40000, false, true, false), 100), Verdict::Tx(1));
    assert_eq!(r.send(&tcp(40000, false, false, true), 100), Verdict::Tx(1));
    r.p.housekeeping(&r.snap, 20_000, 1024);
    assert_eq!(r.p.conns.len(), 0);
    // The /32 template was released at 20 000 (expiry 1000, re-check at
    // 61 000), not held for ever.
    assert_eq!(r.template(60_999), Some(r.server_id(0)));
    assert_eq!(r.template(61_000), None, "template held for ever");
    assert_eq!(r.shared.persist.held_entries(), 0);
}
