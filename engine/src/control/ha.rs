//! The HA thread: runs the VRRPv3 state machine ([`crate::ha::vrrp`]) and
//! connection sync ([`crate::ha::sync`]) over ordinary sockets on the
//! `[ha] port`'s exception-path TAP (SPEC §7).
//!
//! - Adverts: a raw IPv4 socket for protocol 112, bound to the TAP, TTL
//!   255, to 224.0.0.18 (joined on the TAP) or to each of `peers`.
//! - Sync: a UDP socket on `sync_port`; messages to each peer (or to the
//!   IPVS sync group 224.0.0.81 without peers). The workers' reports are
//!   drained from their queues, batched and sent at least every
//!   `FLUSH_MS`; what a peer sends is verified (HMAC-SHA256, replay
//!   window), decoded and queued to the worker that owns each flow.
//! - Ownership: on becoming master the thread sets the `master` flag the
//!   workers read (they answer ARP for the VIPs and forward) and asks
//!   worker 0 for gratuitous ARP, again `GARP_REFRESH_MS` later
//!   (keepalived: 5 at once, 5 more after 5 s).
//! - Bulk copy: a backup that sees a master asks it for its whole table
//!   and lets the state machine preempt only once the copy has arrived (or
//!   the master never answered `BULK_TRIES` requests: a peer that does not
//!   speak rvs sync, e.g. keepalived).
//!
//! Nothing here is on the packet path; the thread sleeps 1 ms between
//! rounds.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, HaConfig};
use crate::conn::owner_worker;
use crate::dataplane::snapshot::fold6;
use crate::dataplane::Shared;
use crate::ha::advert::{self, MCAST_GROUP};
use crate::ha::sync::{self, Batcher, Body, Message, Record, ReplayGuard, SyncKey};
use crate::ha::vrrp::{Action, State, Vrrp, VrrpConfig};

/// IPVS's sync multicast group, used when `[ha] peers` is empty.
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// Reported connections wait at most this long before they are sent.
pub const FLUSH_MS: u64 = 5;
/// Records taken from the workers' queues per round at most.
const DRAIN_PER_ROUND: usize = 8192;
/// A bulk request is repeated after this long without its end...
const BULK_RETRY_MS: u64 = 2000;
/// ...this many times, then the backup stops waiting for it.
const BULK_TRIES: u32 = 3;
/// The second round of gratuitous ARP after a takeover.
const GARP_REFRESH_MS: u64 = 5000;

/// Bulk-copy progress of this director (as the one that asked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkView {
    /// `none` (nothing asked yet), `requested`, `done`, `gave-up`
    /// (the master never answered), `not-needed` (no master to copy from).
    pub state: String,
    /// Records received since the request.
    pub records: u64,
    /// Requests sent.
    pub requests: u32,
    /// Bulk copies this director served to a peer.
    pub served: u64,
}

/// What `rvs ctl status --json` shows under `"ha"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaView {
    pub role: String,
    pub vrid: u8,
    pub priority: u8,
    /// The current master's address (ours when master).
    pub master: Option<Ipv4Addr>,
    pub master_priority: Option<u8>,
    pub peers: Vec<Ipv4Addr>,
    pub advert_interval_ms: u32,
    pub preempt: bool,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// From a non-peer, for another VRID, or lower priority discarded.
    pub adverts_ignored: u64,
    pub adverts_ignored_non_peer: u64,
    /// Not a valid VRRPv3 advert (TTL, checksum, length...).
    pub adverts_bad: u64,
    pub sync: bool,
    pub sync_sent: u64,
    pub sync_received: u64,
    /// Failed authentication, malformed, or replayed.
    pub sync_bad: u64,
    /// Connection and template records received and queued to a worker.
    pub conns_synced: u64,
    /// Records queued here by the workers for the peers.
    pub records_sent: u64,
    pub bulk: BulkView,
    pub transitions: u64,
    /// RFC 3339 time this director last became master.
    pub last_takeover: Option<String>,
    /// The last role change and why.
    pub last_change: Option<String>,
}

/// A role change, for the controller to log and notify.
#[derive(Debug, Clone)]
pub struct RoleChange {
    pub from: State,
    pub to: State,
    pub reason: &'static str,
    pub master: Option<Ipv4Addr>,
}

/// The running HA thread.
pub struct HaRuntime {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub view: Arc<Mutex<HaView>>,
    pub changes: Receiver<RoleChange>,
}

impl HaRuntime {
    /// Opens the sockets on the `[ha] port`'s TAP and starts the thread.
    pub fn start(cfg: &Config, shared: Arc<Shared>) -> Result<HaRuntime> {
        let ha = cfg.ha.clone().ok_or_else(|| anyhow!("no [ha] section"))?;
        let port = cfg
            .ports
            .iter()
            .find(|p| p.name == ha.port)
            .ok_or_else(|| anyhow!("[ha] port `{}` is not a configured port", ha.port))?;
        let local = port.address;
        let key = if ha.sync {
            let path = ha
                .auth_key_file
                .as_ref()
                .ok_or_else(|| anyhow!("[ha] sync = true needs auth_key_file"))?;
            let bytes = std::fs::read(path)
                .with_context(|| format!("[ha] auth_key_file {}", path.display()))?;
            Some(SyncKey::new(&bytes).map_err(|e| anyhow!("[ha] auth_key_file: {e}"))?)
        } else {
            None
        };
        let vrrp_sock = vrrp_socket(&port.tap_name, local)
            .with_context(|| format!("VRRP socket on {}", port.tap_name))?;
        let sync_sock = if ha.sync {
            Some(
                sync_socket(&port.tap_name, local, ha.sync_port, ha.peers.is_empty())
                    .with_context(|| format!("sync socket on {}:{}", local, ha.sync_port))?,
            )
        } else {
            None
        };
        let vcfg = VrrpConfig {
            vrid: ha.vrid,
            priority: ha.priority,
            advert_interval_cs: ha.advert_interval_cs(),
            preempt: ha.preempt,
            preempt_delay_ms: u64::from(ha.preempt_delay_ms),
            primary: local,
            peers: ha.peers.clone(),
            addrs: cfg.vrrp_addresses(),
        };
        shared.ha.enable(ha.sync);
        let view = Arc::new(Mutex::new(HaView {
            role: State::Init.name().to_string(),
            vrid: ha.vrid,
            priority: ha.priority,
            peers: ha.peers.clone(),
            advert_interval_ms: ha.advert_interval_ms,
            preempt: ha.preempt,
            sync: ha.sync,
            bulk: BulkView {
                state: "none".into(),
                ..BulkView::default()
            },
            ..HaView::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let mut t = HaThread {
            ha,
            local,
            vrrp: Vrrp::new(vcfg),
            vrrp_sock,
            sync_sock,
            key,
            shared,
            view: view.clone(),
            changes: tx,
            epoch: Instant::now(),
            batcher: Batcher::new(local, boot_id()),
            replay: ReplayGuard::new(),
            last_flush: 0,
            garp_again: None,
            bulk: BulkAsk::default(),
            serving: Vec::new(),
            stats: Counters::default(),
            last_takeover: None,
            last_change: None,
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-ha".into())
            .spawn(move || t.run(&stop2))
            .context("cannot start the HA thread")?;
        Ok(HaRuntime {
            stop,
            thread: Some(thread),
            view,
            changes: rx,
        })
    }

    /// Clean shutdown: a master sends priority 0 (the backup takes over
    /// after its skew time), then the thread ends.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn view(&self) -> HaView {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for HaRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A random number per process start: sync receivers reset their replay
/// window when a sender restarts.
fn boot_id() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    u64::from_le_bytes(b) ^ t ^ u64::from(std::process::id())
}

fn vrrp_socket(tap: &str, local: Ipv4Addr) -> Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(advert::PROTO_VRRP))),
    )?;
    s.bind_device(Some(tap.as_bytes()))?;
    s.set_ttl(u32::from(advert::TTL))?;
    s.set_multicast_ttl_v4(u32::from(advert::TTL))?;
    s.set_multicast_loop_v4(false)?;
    s.set_multicast_if_v4(&local)?;
    s.join_multicast_v4(&MCAST_GROUP, &local)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn sync_socket(tap: &str, local: Ipv4Addr, port: u16, multicast: bool) -> Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(tap.as_bytes()))?;
    let bind = if multicast {
        Ipv4Addr::UNSPECIFIED
    } else {
        local
    };
    s.bind(&SocketAddr::V4(SocketAddrV4::new(bind, port)).into())?;
    if multicast {
        s.set_multicast_if_v4(&local)?;
        s.set_multicast_loop_v4(false)?;
        s.set_multicast_ttl_v4(1)?;
        s.join_multicast_v4(&SYNC_GROUP, &local)?;
    }
    s.set_nonblocking(true)?;
    // Bulk copies arrive in bursts.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    Ok(s.into())
}

/// The backup's bulk request.
#[derive(Default)]
struct BulkAsk {
    id: u64,
    /// Time of the last request (0 = none outstanding).
    sent_ms: u64,
    tries: u32,
    done: bool,
    /// How it ended: `done`, `gave-up`, `not-needed`.
    outcome: Option<&'static str>,
    records: u64,
}

/// A bulk copy this director serves.
struct Serving {
    to: Ipv4Addr,
    id: u64,
    walk: u64,
    records_before: u64,
}

#[derive(Default)]
struct Counters {
    adverts_bad: u64,
    sync_sent: u64,
    sync_received: u64,
    sync_bad: u64,
    conns_synced: u64,
    records_sent: u64,
    transitions: u64,
    bulk_served: u64,
}

struct HaThread {
    ha: HaConfig,
    local: Ipv4Addr,
    vrrp: Vrrp,
    vrrp_sock: Socket,
    sync_sock: Option<UdpSocket>,
    key: Option<SyncKey>,
    shared: Arc<Shared>,
    view: Arc<Mutex<HaView>>,
    changes: Sender<RoleChange>,
    epoch: Instant,
    batcher: Batcher,
    replay: ReplayGuard,
    last_flush: u64,
    garp_again: Option<u64>,
    bulk: BulkAsk,
    serving: Vec<Serving>,
    stats: Counters,
    last_takeover: Option<String>,
    last_change: Option<String>,
}

impl HaThread {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn run(&mut self, stop: &AtomicBool) {
        // With sync, preemption waits for the bulk copy.
        self.vrrp.set_preempt_ready(self.key.is_none());
        let now = self.now();
        let acts = self.vrrp.start(now);
        self.apply(acts, now);
        tracing::info!(
            vrid = self.ha.vrid,
            priority = self.ha.priority,
            port = %self.ha.port,
            peers = ?self.ha.peers,
            sync = self.ha.sync,
            "ha: started as backup"
        );
        while !stop.load(Relaxed) {
            let now = self.now();
            self.recv_adverts(now);
            self.recv_sync(now);
            let acts = self.vrrp.tick(now);
            self.apply(acts, now);
            self.pump_sync(now);
            self.bulk_ask(now);
            if let Some(t) = self.garp_again {
                if now >= t {
                    self.garp_again = None;
                    if self.vrrp.state() == State::Master {
                        self.shared.ha.request_garp();
                    }
                }
            }
            self.publish_view();
            std::thread::sleep(Duration::from_millis(1));
        }
        let now = self.now();
        self.pump_sync(now + FLUSH_MS);
        let acts = self.vrrp.shutdown(now);
        self.apply(acts, now);
        self.publish_view();
        tracing::info!("ha: stopped");
    }

    fn apply(&mut self, acts: Vec<Action>, now: u64) {
        for a in acts {
            match a {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::Transition { from, to, reason } => self.transition(from, to, reason, now),
            }
        }
    }

    fn send_advert(&mut self, priority: u8) {
        let adv = self.vrrp.advert(priority);
        let dsts: Vec<Ipv4Addr> = if self.ha.peers.is_empty() {
            vec![MCAST_GROUP]
        } else {
            self.ha.peers.clone()
        };
        for dst in dsts {
            let pkt = advert::encode(&adv, self.local, dst);
            let to = SocketAddr::V4(SocketAddrV4::new(dst, 0));
            if let Err(e) = self.vrrp_sock.send_to(&pkt, &to.into()) {
                tracing::debug!("ha: advert to {dst}: {e}");
            }
        }
    }

    fn transition(&mut self, from: State, to: State, reason: &'static str, now: u64) {
        self.stats.transitions += 1;
        match to {
            State::Master => {
                self.shared.ha.set_master(true);
                self.shared.ha.request_garp();
                self.garp_again = Some(now + GARP_REFRESH_MS);
                self.last_takeover = Some(crate::control::notify::rfc3339(SystemTime::now()));
                // Nobody to copy from any more.
                if !self.bulk.done {
                    self.bulk.done = true;
                    self.bulk.sent_ms = 0;
                    self.bulk.outcome = Some("not-needed");
                    self.vrrp.set_preempt_ready(true);
                }
            }
            State::Backup | State::Init => {
                self.shared.ha.set_master(false);
                self.garp_again = None;
                if from == State::Master && to == State::Backup {
                    // Preempted: the new master has connections and templates
                    // this one never saw (it may have become master on its
                    // own at start, before it heard the other): ask it for
                    // its copy, as a starting backup does.
                    self.bulk = BulkAsk {
                        records: self.bulk.records,
                        ..BulkAsk::default()
                    };
                    self.vrrp.set_preempt_ready(self.key.is_none());
                }
            }
        }
        let master = self.vrrp.master();
        self.last_change = Some(format!("{} -> {}: {reason}", from.name(), to.name()));
        tracing::warn!(
            from = from.name(),
            to = to.name(),
            reason,
            master = ?master,
            "ha: role {} -> {} ({reason})",
            from.name(),
            to.name()
        );
        let _ = self.changes.send(RoleChange {
            from,
            to,
            reason,
            master,
        });
        self.publish_view();
    }

    fn recv_adverts(&mut self, now: u64) {
        let mut buf = [0u8; 2048];
        for _ in 0..64 {
            let n = match (&self.vrrp_sock).read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("ha: VRRP socket: {e}");
                    break;
                }
            };
            match advert::decode_ip(&buf[..n]) {
                Ok((src, _dst, adv)) => {
                    let acts = self.vrrp.on_advert(now, src, &adv);
                    self.apply(acts, now);
                }
                Err(e) => {
                    self.stats.adverts_bad += 1;
                    tracing::debug!("ha: bad advert: {e}");
                }
            }
        }
    }

    fn recv_sync(&mut self, now: u64) {
        let (Some(sock), Some(key)) = (&self.sync_sock, &self.key) else {
            return;
        };
        let mut buf = [0u8; 2048];
        let mut msgs = Vec::new();
        for _ in 0..256 {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let SocketAddr::V4(from) = from else {
                        self.stats.sync_bad += 1;
                        continue;
                    };
                    match sync::decode(&buf[..n], key) {
                        Ok(m) if self.replay.accept(&m) => msgs.push((*from.ip(), m)),
                        Ok(_) => {
                            self.stats.sync_bad += 1;
                            tracing::debug!(%from, "ha: replayed sync message dropped");
                        }
                        Err(e) => {
                            self.stats.sync_bad += 1;
                            tracing::debug!(%from, "ha: sync message dropped: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("ha: sync socket: {e}");
                    break;
                }
            }
        }
        for (from, m) in msgs {
            self.stats.sync_received += 1;
            self.handle_sync(from, m, now);
        }
    }

    fn handle_sync(&mut self, from: Ipv4Addr, m: Message, now: u64) {
        match m.body {
            Body::Records(recs) => {
                let workers = self.shared.workers.max(1);
                for r in recs {
                    let w = match &r {
                        Record::Conn(c) => owner_worker(c.client, c.cport, workers),
                        Record::Template(_) => 0,
                        // The pipeline's owner of an IPv6 flow.
                        Record::Conn6(c) => owner_worker(fold6(c.client), c.cport, workers),
                        // NAT64: the client side's owner, whose pool holds
                        // the local port.
                        Record::Conn64(c) => owner_worker(fold6(c.client), c.cport, workers),
                        Record::Template6(_) => 0,
                    };
                    if self.shared.ha.install[w].push(r).is_ok() {
                        self.stats.conns_synced += 1;
                        if self.bulk.sent_ms != 0 || self.bulk.done {
                            self.bulk.records += 1;
                        }
                    }
                }
            }
            Body::BulkRequest { id } => {
                if self.vrrp.state() != State::Master {
                    tracing::info!(%from, "ha: bulk request ignored (not master)");
                    return;
                }
                let walk = self.shared.ha.request_bulk();
                tracing::info!(%from, id, "ha: serving a bulk copy");
                self.serving.push(Serving {
                    to: from,
                    id,
                    walk,
                    records_before: self.stats.records_sent,
                });
            }
            Body::BulkEnd { id, records } => {
                if id == self.bulk.id && !self.bulk.done {
                    self.bulk.done = true;
                    self.bulk.sent_ms = 0;
                    self.bulk.outcome = Some("done");
                    self.vrrp.set_preempt_ready(true);
                    tracing::info!(%from, records, "ha: bulk copy received; preemption allowed");
                    let _ = now;
                }
            }
        }
    }

    /// Workers' reports -> datagrams; bulk ends once walked and sent.
    fn pump_sync(&mut self, now: u64) {
        let Some(key) = self.key.as_ref() else {
            return;
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut taken = 0;
        for q in self.shared.ha.out.iter() {
            while taken < DRAIN_PER_ROUND {
                let Some(r) = q.pop() else { break };
                taken += 1;
                self.stats.records_sent += 1;
                if let Some(d) = self.batcher.push(r, key) {
                    out.push(d);
                }
            }
        }
        if self.batcher.pending() > 0 && now.saturating_sub(self.last_flush) >= FLUSH_MS {
            if let Some(d) = self.batcher.flush(key) {
                out.push(d);
            }
        }
        if self.batcher.pending() == 0 {
            self.last_flush = now;
        }
        // Bulk copies whose walk is over and whose records are all out.
        let mut ends = Vec::new();
        if !self.serving.is_empty()
            && self.shared.ha.out_pending() == 0
            && self.batcher.pending() == 0
        {
            let link = &self.shared.ha;
            self.serving.retain(|s| {
                if link.bulk_walked(s.walk) {
                    ends.push((s.to, s.id, self.stats.records_sent - s.records_before));
                    false
                } else {
                    true
                }
            });
        }
        for d in out {
            self.send_sync(&d, None);
        }
        for (to, id, records) in ends {
            let key = self.key.as_ref().expect("checked above");
            let d = self.batcher.control(Body::BulkEnd { id, records }, key);
            self.send_sync(&d, Some(to));
            self.stats.bulk_served += 1;
            tracing::info!(%to, id, records, "ha: bulk copy served");
        }
    }

    fn send_sync(&mut self, d: &[u8], to: Option<Ipv4Addr>) {
        let Some(sock) = &self.sync_sock else { return };
        let port = self.ha.sync_port;
        let dsts: Vec<Ipv4Addr> = match to {
            Some(a) => vec![a],
            None if self.ha.peers.is_empty() => vec![SYNC_GROUP],
            None => self.ha.peers.clone(),
        };
        for a in dsts {
            match sock.send_to(d, SocketAddrV4::new(a, port)) {
                Ok(_) => self.stats.sync_sent += 1,
                Err(e) => tracing::debug!("ha: sync to {a}: {e}"),
            }
        }
    }

    /// A backup with sync asks the master it follows for a bulk copy,
    /// and repeats until the copy ends or the master never answers.
    fn bulk_ask(&mut self, now: u64) {
        if self.key.is_none() || self.bulk.done || self.vrrp.state() != State::Backup {
            return;
        }
        let Some(master) = self.vrrp.master() else {
            return;
        };
        if master == self.local {
            return;
        }
        if self.bulk.sent_ms != 0 && now.saturating_sub(self.bulk.sent_ms) < BULK_RETRY_MS {
            return;
        }
        if self.bulk.tries >= BULK_TRIES {
            self.bulk.done = true;
            self.bulk.sent_ms = 0;
            self.bulk.outcome = Some("gave-up");
            self.vrrp.set_preempt_ready(true);
            tracing::warn!(
                %master,
                "ha: the master answered none of {BULK_TRIES} bulk requests; preempting without its table"
            );
            return;
        }
        self.bulk.tries += 1;
        self.bulk.id = boot_id();
        self.bulk.sent_ms = now.max(1);
        let key = self.key.as_ref().expect("checked above");
        let d = self
            .batcher
            .control(Body::BulkRequest { id: self.bulk.id }, key);
        self.send_sync(&d, Some(master));
        tracing::info!(%master, try_ = self.bulk.tries, "ha: bulk copy requested");
    }

    fn publish_view(&self) {
        let c = self.vrrp.counters();
        let bulk_state = match (self.key.is_some(), self.bulk.outcome) {
            (false, _) => "not-needed",
            (true, Some(o)) => o,
            (true, None) if self.bulk.tries > 0 => "requested",
            (true, None) => "none",
        };
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.role = self.vrrp.state().name().to_string();
        v.master = self.vrrp.master();
        v.master_priority = self.vrrp.master_priority();
        v.adverts_sent = c.adverts_sent;
        v.adverts_received = c.adverts_received;
        v.adverts_ignored = c.ignored_non_peer + c.ignored_other_vrid + c.ignored_lower_priority;
        v.adverts_ignored_non_peer = c.ignored_non_peer;
        v.adverts_bad = self.stats.adverts_bad;
        v.sync_sent = self.stats.sync_sent;
        v.sync_received = self.stats.sync_received;
        v.sync_bad = self.stats.sync_bad;
        v.conns_synced = self.stats.conns_synced;
        v.records_sent = self.stats.records_sent;
        v.bulk.state = bulk_state.to_string();
        v.bulk.records = self.bulk.records;
        v.bulk.requests = self.bulk.tries;
        v.bulk.served = self.stats.bulk_served;
        v.transitions = self.stats.transitions;
        v.last_takeover = self.last_takeover.clone();
        v.last_change = self.last_change.clone();
    }
}
