//! The controller's side of `rvs ctl list --conns`: one walk of the
//! workers' tables at a time (requests that arrive during it share it), the
//! answer once every worker answered or the deadline passed, persistence
//! templates added, and the `--service` filter.

use std::sync::mpsc::SyncSender;
use std::time::Instant;

use super::ctl_proto::{ConnInfo, ConnsView, Response};
use super::{conns, edit, templates6, Controller, CONN_DUMP_WAIT};

/// A `list --conns` waiting for the workers.
pub(super) struct PendingDump {
    req: u64,
    limit: usize,
    deadline: Instant,
    /// Where to answer, and the service (`--service`) each asker keeps.
    replies: Vec<(SyncSender<Response>, Option<edit::ServiceKey>)>,
}

impl Controller {
    pub(super) fn start_dump(
        &mut self,
        limit: usize,
        service: Option<edit::ServiceKey>,
        reply: SyncSender<Response>,
    ) {
        match &mut self.dump {
            // One walk of the tables serves every request that comes while
            // it runs.
            Some(d) => {
                d.limit = d.limit.max(limit);
                d.replies.push((reply, service));
            }
            None => {
                let req = self.shared.conn_dump.request(limit);
                self.dump = Some(PendingDump {
                    req,
                    limit,
                    deadline: Instant::now() + CONN_DUMP_WAIT,
                    replies: vec![(reply, service)],
                });
            }
        }
    }

    pub(super) fn finish_dump(&mut self, now: Instant) {
        let Some(d) = &self.dump else { return };
        if !self.shared.conn_dump.complete(d.req) && now < d.deadline {
            return;
        }
        let Some(d) = self.dump.take() else { return };
        let mut view = conns::collect(&self.shared.conn_dump, d.req, d.limit);
        if !view.missing_workers.is_empty() {
            tracing::warn!(
                workers = ?view.missing_workers,
                "list --conns: worker(s) did not answer within {} ms",
                CONN_DUMP_WAIT.as_millis()
            );
        }
        self.add_templates(&mut view, d.limit);
        view.conns.sort_by(|a, b| {
            (a.vip, a.vport, a.client, a.cport).cmp(&(b.vip, b.vport, b.client, b.cport))
        });
        for (r, service) in d.replies {
            let resp = match service {
                None => Response::ok(&view),
                Some(k) => Response::ok(conns_of(&view, &k)),
            };
            self.count(&resp);
            let _ = r.send(resp);
        }
    }

    /// The persistence templates (shared by the workers, not in their
    /// tables) join the listing as `ipvsadm -Lnc` shows them: client
    /// network, port 0, state NONE.
    pub(super) fn add_templates(&self, view: &mut ConnsView, limit: usize) {
        let now = self.shared.conn_dump.clock_ms();
        if now == 0 {
            return;
        }
        let snap = self.shared.snapshot.load();
        let all = self.shared.persist.templates(now);
        for t in &all {
            let Some(svc) = snap.services.iter().find(|s| u32::from(s.id) == t.service) else {
                continue;
            };
            let Some(srv) = svc
                .servers
                .iter()
                .chain(svc.sorry.as_ref())
                .find(|s| s.shared.id == t.server_id)
            else {
                continue;
            };
            view.total += 1;
            if view.conns.len() >= limit {
                view.truncated = true;
                continue;
            }
            view.conns.push(ConnInfo {
                protocol: match svc.proto {
                    crate::conn::PROTO_TCP => "tcp".to_string(),
                    crate::conn::PROTO_UDP => "udp".to_string(),
                    p => p.to_string(),
                },
                client: t.client_net.into(),
                cport: 0,
                vip: svc.vip.into(),
                vport: svc.port,
                server: srv.addr.into(),
                sport: srv.port,
                state: crate::conn::TcpState::None.name().to_string(),
                expires_ms: t.left_ms,
                forward: srv.method.name().to_string(),
                worker: 0,
                template: true,
                synced: false,
                local: None,
                prefix6: None,
            });
        }
        // The IPv6 services' (keyed by a fold of the client prefix).
        templates6::add(view, &snap, &all, limit);
    }
}

/// `list --conns --service`: the entries of service `k` (templates
/// included). `total` counts that service's entries when the walk saw them
/// all; a truncated walk keeps the table-wide total (the limit bounds the
/// walk, before the filter).
pub(super) fn conns_of(view: &ConnsView, k: &edit::ServiceKey) -> ConnsView {
    let conns: Vec<ConnInfo> = view
        .conns
        .iter()
        .filter(|c| c.protocol == k.protocol.name() && c.vip == k.vip && c.vport == k.port)
        .cloned()
        .collect();
    ConnsView {
        total: if view.truncated {
            view.total
        } else {
            conns.len() as u64
        },
        truncated: view.truncated,
        missing_workers: view.missing_workers.clone(),
        conns,
    }
}
