//! Notifications (SPEC §7): every server up/down and every quorum change
//! is mailed through the `[notify] smtp` relay and given, as one line of
//! JSON on stdin, to the `[notify] exec` hook.
//!
//! Delivery never blocks the controller: [`Notifier::send`] only puts the
//! event on a bounded queue ([`QUEUE`]; when full the event is dropped and
//! that is logged). Mail goes out on its own thread through `lettre`'s
//! blocking SMTP transport (plain SMTP, no TLS, no authentication: a relay
//! on the director's network). A relay that refuses, stalls (each SMTP step
//! times out after [`SMTP_TIMEOUT`]) or answers with a transient error is
//! retried with exponential backoff (1 s, 2 s, 4 s ... at most 60 s, for
//! [`MAIL_ATTEMPTS`] attempts), in order: a later mail waits behind the one
//! being retried. A permanent SMTP error (5xx) is not retried. The hook
//! runs on another thread, once per event, killed after [`HOOK_TIMEOUT`];
//! a hook that fails is logged and not retried. Every failure is logged
//! with its reason.
//!
//! The mail's subject says what happened to which server of which service;
//! its body gives the failure, the check's last result and the current
//! configuration as `ipvsadm -L -n` shows it, with a health column.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::ctl_proto::ListView;
use super::health::proc::run_bounded;
use crate::config::{NotifyConfig, SmtpRelay};

/// Events waiting for each delivery thread, at most.
pub const QUEUE: usize = 64;
/// Mails kept for retrying, at most (the oldest is dropped beyond).
pub const MAIL_BACKLOG: usize = 256;
/// Attempts to deliver one mail.
pub const MAIL_ATTEMPTS: u32 = 8;
/// Connect, and each SMTP command, time out after this.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The exec hook is killed after this.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A server failed `fall` checks in a row.
    ServerDown,
    /// A server passed `rise` checks in a row.
    ServerUp,
    /// The live weight of a service fell below its quorum.
    QuorumLost,
    /// It is back at or above the quorum.
    QuorumRegained,
    /// The director's `[ha]` role changed (master, backup, init).
    Role,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ServerDown => "server-down",
            EventKind::ServerUp => "server-up",
            EventKind::QuorumLost => "quorum-lost",
            EventKind::QuorumRegained => "quorum-regained",
            EventKind::Role => "role",
        }
    }
}

/// One notification: the JSON the hook reads, and what the mail says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: EventKind,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub unix_ms: u64,
    /// The director's host name.
    pub director: String,
    /// `tcp:198.18.0.100:80`.
    pub service: String,
    /// `198.19.0.12:8080`; absent for quorum events.
    #[serde(default)]
    pub server: Option<String>,
    /// The check, as configured ("http GET http://... expecting 200, ...").
    #[serde(default)]
    pub check: Option<String>,
    /// One sentence: what happened and why.
    pub description: String,
    /// What the director did about it.
    pub action: String,
    /// The check's last result (its error, for a failure).
    #[serde(default)]
    pub last_result: Option<String>,
    /// Sum of the weights of the service's live servers, after the event.
    pub live_weight: u64,
    pub quorum: u32,
    #[serde(default)]
    pub sorry_server: Option<String>,
    /// The configuration in force after the event (`rvs ctl list --json`).
    #[serde(default)]
    pub configuration: Option<ListView>,
    /// Role events: the new role, the one before, and who is master now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
}

impl Event {
    /// A new event stamped now, on this host.
    pub fn new(event: EventKind, service: String, description: String, action: String) -> Event {
        let now = SystemTime::now();
        Event {
            event,
            time: rfc3339(now),
            unix_ms: now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            director: hostname(),
            service,
            server: None,
            check: None,
            description,
            action,
            last_result: None,
            live_weight: 0,
            quorum: 0,
            sorry_server: None,
            configuration: None,
            role: None,
            previous_role: None,
            master: None,
        }
    }

    /// "[rvs] server 198.19.0.12:8080 of tcp:198.18.0.100:80 is DOWN".
    pub fn subject(&self) -> String {
        let server = self.server.as_deref().unwrap_or("?");
        match self.event {
            EventKind::ServerDown => {
                format!("[rvs] server {server} of {} is DOWN", self.service)
            }
            EventKind::ServerUp => format!("[rvs] server {server} of {} is UP", self.service),
            EventKind::QuorumLost => format!(
                "[rvs] service {} LOST QUORUM (live weight {} < {})",
                self.service, self.live_weight, self.quorum
            ),
            EventKind::QuorumRegained => format!(
                "[rvs] service {} REGAINED QUORUM (live weight {} >= {})",
                self.service, self.live_weight, self.quorum
            ),
            EventKind::Role => format!(
                "[rvs] director {} is now {} (was {})",
                self.director,
                self.role.as_deref().unwrap_or("?").to_uppercase(),
                self.previous_role.as_deref().unwrap_or("?")
            ),
        }
    }

    /// The mail's text.
    pub fn mail_body(&self) -> String {
        let mut b = String::new();
        let _ = writeln!(b, "rvs director {}: {}", self.director, self.description);
        b.push('\n');
        let _ = writeln!(b, "Event:        {}", self.event.name());
        let _ = writeln!(b, "Time:         {}", self.time);
        let _ = writeln!(b, "Service:      {}", self.service);
        if let Some(s) = &self.server {
            let _ = writeln!(b, "Server:       {s}");
        }
        if let Some(r) = &self.role {
            let prev = self.previous_role.as_deref().unwrap_or("?");
            let _ = writeln!(b, "Role:         {r} (was {prev})");
            let m = self.master.as_deref().unwrap_or("unknown");
            let _ = writeln!(b, "Master:       {m}");
        }
        let _ = writeln!(b, "Action:       {}", self.action);
        if let Some(c) = &self.check {
            let _ = writeln!(b, "Check:        {c}");
        }
        if let Some(r) = &self.last_result {
            let _ = writeln!(b, "Last result:  {r}");
        }
        let _ = writeln!(
            b,
            "Live weight:  {} (quorum {})",
            self.live_weight, self.quorum
        );
        if let Some(s) = &self.sorry_server {
            let _ = writeln!(b, "Sorry server: {s}");
        }
        b.push('\n');
        match &self.configuration {
            Some(v) => {
                b.push_str("Current configuration:\n");
                b.push_str(&listing(v));
            }
            None => b.push_str("(current configuration not available)\n"),
        }
        b
    }

    /// One line of JSON (what the hook reads), newline-terminated.
    pub fn json_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"event\":\"{}\",\"error\":\"{e}\"}}", self.event.name())
        });
        s.push('\n');
        s
    }
}

/// The configuration as `ipvsadm -L -n` lists it, with a health column
/// and each service's sorry server and quorum.
pub fn listing(v: &ListView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "IP Virtual Server version {} (size={})",
        v.version, v.size
    );
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health\n");
    for s in &v.services {
        let _ = write!(
            out,
            "{}  {}:{} {}",
            s.protocol.to_ascii_uppercase(),
            crate::config::host_part(s.vip),
            s.port_list(),
            s.scheduler
        );
        if !s.flags.is_empty() {
            let _ = write!(out, " ({})", s.flags.join(","));
        }
        if s.persistence > 0 {
            let _ = write!(out, " persistent {}", s.persistence);
        }
        out.push('\n');
        for d in &s.servers {
            let forward = match d.forward.as_str() {
                "nat" => "Masq",
                "dr" => "Route",
                "tun" => "Tunnel",
                other => other,
            };
            let health = if d.health.is_empty() {
                if d.up {
                    "up"
                } else {
                    "down"
                }
            } else {
                d.health.as_str()
            };
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {}",
                crate::config::endpoint(d.address, d.port),
                forward,
                d.effective_weight,
                d.active,
                d.inactive,
                health
            );
        }
        if let Some(sorry) = &s.sorry_server {
            let _ = writeln!(out, "  sorry server {sorry}, quorum {}", s.quorum);
        } else if s.quorum != 1 {
            let _ = writeln!(out, "  quorum {}", s.quorum);
        }
    }
    out
}

/// `t` as RFC 3339 UTC with milliseconds: "2026-11-22T02:44:37.123Z".
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// This host's name (the UTS namespace's, as gethostname(2) gives it;
/// "localhost" if it has none).
pub fn hostname() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "localhost".to_string(),
    }
}

/// A mail to deliver.
#[derive(Debug, Clone)]
pub struct MailJob {
    pub relay: SmtpRelay,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Retrying cannot help (a 5xx answer, a bad address).
    pub permanent: bool,
    pub reason: String,
}

/// Hands events to the delivery threads, which start with the first event
/// that needs them.
#[derive(Default)]
pub struct Notifier {
    mail: Option<SyncSender<MailJob>>,
    hook: Option<SyncSender<(PathBuf, String)>>,
}

impl Notifier {
    /// Queues `ev` for every channel `cfg` configures. Never blocks.
    pub fn send(&mut self, ev: &Event, cfg: &NotifyConfig) {
        if let Some(relay) = &cfg.smtp {
            if cfg.to.is_empty() {
                tracing::warn!("notify: smtp is set but `to` is empty; no mail sent");
            } else {
                let job = MailJob {
                    relay: relay.clone(),
                    from: cfg.from.clone(),
                    to: cfg.to.clone(),
                    subject: ev.subject(),
                    body: ev.mail_body(),
                };
                let tx = self.mail.get_or_insert_with(|| {
                    start("rvs-notify-mail", move |rx| {
                        mail_loop(rx, &Backoff::default(), &smtp_send)
                    })
                });
                if !offer(tx, job, "mail", ev) {
                    self.mail = None;
                }
            }
        }
        if let Some(exec) = &cfg.exec {
            let tx = self
                .hook
                .get_or_insert_with(|| start("rvs-notify-hook", hook_loop));
            if !offer(tx, (exec.clone(), ev.json_line()), "exec hook", ev) {
                self.hook = None;
            }
        }
    }
}

/// Starts a delivery thread; returns its queue.
fn start<T: Send + 'static>(
    name: &str,
    body: impl FnOnce(Receiver<T>) + Send + 'static,
) -> SyncSender<T> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    if let Err(e) = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || body(rx))
    {
        tracing::error!("notify: cannot start the {name} thread: {e}");
    }
    tx
}

/// Queues without blocking; false when the thread is gone.
fn offer<T>(tx: &SyncSender<T>, job: T, what: &str, ev: &Event) -> bool {
    match tx.try_send(job) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            tracing::warn!(
                event = ev.event.name(),
                service = %ev.service,
                "notify: the {what} queue is full ({QUEUE} waiting); this event is not delivered by {what}"
            );
            true
        }
        Err(TrySendError::Disconnected(_)) => {
            tracing::error!("notify: the {what} thread is gone; restarting it with the next event");
            false
        }
    }
}

/// Retry schedule of a mail.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            attempts: MAIL_ATTEMPTS,
        }
    }
}

impl Backoff {
    /// The wait after the `n`th failed attempt (1-based).
    pub fn after(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first.saturating_mul(factor).min(self.max)
    }
}

struct Pending {
    job: MailJob,
    attempts: u32,
    next_at: Instant,
}

/// The mail thread: delivers jobs in order, retrying the first with
/// backoff while later ones wait. Returns when the queue is closed and
/// nothing is left to retry.
pub fn mail_loop(
    rx: Receiver<MailJob>,
    backoff: &Backoff,
    send: &dyn Fn(&MailJob) -> Result<(), SendError>,
) {
    let mut backlog: VecDeque<Pending> = VecDeque::new();
    let mut open = true;
    loop {
        let wait = backlog
            .front()
            .map(|p| p.next_at.saturating_duration_since(Instant::now()));
        let got = match (open, wait) {
            (false, None) => return,
            (false, Some(w)) => {
                std::thread::sleep(w);
                None
            }
            (true, None) => match rx.recv() {
                Ok(j) => Some(j),
                Err(_) => {
                    open = false;
                    None
                }
            },
            (true, Some(w)) => match rx.recv_timeout(w) {
                Ok(j) => Some(j),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            },
        };
        if let Some(job) = got {
            if backlog.len() >= MAIL_BACKLOG {
                if let Some(old) = backlog.pop_front() {
                    tracing::error!(
                        subject = %old.job.subject,
                        "notify: {MAIL_BACKLOG} mails waiting; dropping the oldest"
                    );
                }
            }
            backlog.push_back(Pending {
                job,
                attempts: 0,
                next_at: Instant::now(),
            });
        }
        while let Some(p) = backlog.front_mut() {
            if p.next_at > Instant::now() {
                break;
            }
            p.attempts += 1;
            match send(&p.job) {
                Ok(()) => {
                    tracing::info!(
                        relay = %p.job.relay,
                        to = ?p.job.to,
                        attempt = p.attempts,
                        "notify: mail sent: {}",
                        p.job.subject
                    );
                    backlog.pop_front();
                }
                Err(e) if e.permanent || p.attempts >= backoff.attempts => {
                    tracing::error!(
                        relay = %p.job.relay,
                        attempts = p.attempts,
                        "notify: giving up on mail \"{}\": {}{}",
                        p.job.subject,
                        e.reason,
                        if e.permanent { " (permanent error)" } else { "" }
                    );
                    backlog.pop_front();
                }
                Err(e) => {
                    let wait = backoff.after(p.attempts);
                    p.next_at = Instant::now() + wait;
                    tracing::warn!(
                        relay = %p.job.relay,
                        attempt = p.attempts,
                        "notify: mail \"{}\" not sent: {}; retrying in {} ms",
                        p.job.subject,
                        e.reason,
                        wait.as_millis()
                    );
                    break;
                }
            }
        }
    }
}

/// One delivery attempt through the relay (plain SMTP, no TLS).
pub fn smtp_send(job: &MailJob) -> Result<(), SendError> {
    use lettre::message::header::ContentType;
    use lettre::{Message, SmtpTransport, Transport};

    let permanent = |reason: String| SendError {
        permanent: true,
        reason,
    };
    let from = job
        .from
        .parse()
        .map_err(|e| permanent(format!("bad from address {:?}: {e}", job.from)))?;
    let mut b = Message::builder()
        .from(from)
        .subject(job.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in &job.to {
        b = b.to(to
            .parse()
            .map_err(|e| permanent(format!("bad to address {to:?}: {e}")))?);
    }
    let msg = b
        .body(job.body.clone())
        .map_err(|e| permanent(format!("cannot build the mail: {e}")))?;
    let transport = SmtpTransport::builder_dangerous(job.relay.host.as_str())
        .port(job.relay.port)
        .timeout(Some(SMTP_TIMEOUT))
        .build();
    match transport.send(&msg) {
        Ok(_) => Ok(()),
        Err(e) => Err(SendError {
            permanent: e.is_permanent(),
            reason: smtp_reason(&e),
        }),
    }
}

/// An SMTP error with its causes ("Connection refused" is in the source).
fn smtp_reason(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            let _ = write!(s, ": {t}");
        }
        src = c.source();
    }
    if e.is_timeout() && !s.contains("timed out") {
        s.push_str(" (timed out)");
    }
    s
}

/// The hook thread: runs the hook once per event with the JSON on stdin.
fn hook_loop(rx: Receiver<(PathBuf, String)>) {
    while let Ok((path, json)) = rx.recv() {
        run_hook(&path, &json);
    }
}

/// Runs the hook once; every failure is logged. Returns whether it
/// succeeded.
pub fn run_hook(path: &std::path::Path, json: &str) -> bool {
    let fin = match run_bounded(
        Command::new(path),
        Some(json.as_bytes().to_vec()),
        HOOK_TIMEOUT,
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(hook = %path.display(), "notify: cannot run the exec hook: {e}");
            return false;
        }
    };
    if fin.success() {
        tracing::debug!(hook = %path.display(), took_ms = fin.took.as_millis() as u64, "notify: exec hook done");
        return true;
    }
    let out = fin.output_line();
    tracing::warn!(
        hook = %path.display(),
        "notify: exec hook failed: {}{}{}",
        fin.describe(HOOK_TIMEOUT),
        if out.is_empty() { "" } else { ": " },
        out
    );
    false
}

#[cfg(test)]
mod tests;
