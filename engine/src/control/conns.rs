//! `rvs ctl list --conns`: the listing, made from the copies of their
//! connection tables that the workers take themselves
//! (`dataplane::conn_dump`, which knows nothing of the listing). IPv6
//! connections show their addresses (`[addr]:port` in the text form), a
//! NAT64 one its IPv4 server and local tuple.

use std::net::{IpAddr, SocketAddrV4};

use super::ctl_proto::{ConnInfo, ConnsView};
use crate::conn::{self, TcpState};
use crate::dataplane::conn_dump::{ConnDump, Dump, Dumped};

/// The answers to request `req` (at most `limit` connections) as the
/// listing; empties the workers' slots.
pub fn collect(d: &ConnDump, req: u64, limit: usize) -> ConnsView {
    view(d.collect(req, limit))
}

/// The listing of what the workers copied.
pub fn view(d: Dump) -> ConnsView {
    let conns: Vec<ConnInfo> = d.conns.iter().map(info).collect();
    ConnsView {
        truncated: (conns.len() as u64) < d.total,
        total: d.total,
        missing_workers: d.missing_workers,
        conns,
    }
}

fn info(d: &Dumped) -> ConnInfo {
    let c = &d.conn;
    let protocol = match c.proto() {
        conn::PROTO_TCP => "tcp".to_string(),
        conn::PROTO_UDP => "udp".to_string(),
        p => p.to_string(),
    };
    let state = if c.proto() == conn::PROTO_TCP {
        c.state().name().to_string()
    } else if c.proto() == conn::PROTO_UDP {
        "UDP".to_string()
    } else {
        TcpState::None.name().to_string()
    };
    let (client, vip, server): (IpAddr, IpAddr, IpAddr) = match d.addrs6 {
        Some(a) => (
            a.client.into(),
            a.vip.into(),
            a.server.map_or(c.server().into(), IpAddr::V6),
        ),
        None => (c.client().into(), c.vip().into(), c.server().into()),
    };
    ConnInfo {
        protocol,
        client,
        cport: c.cport(),
        vip,
        vport: c.vport(),
        server,
        sport: c.sport(),
        state,
        expires_ms: u64::from(d.left_ms),
        forward: c.method().name().to_string(),
        worker: d.worker,
        template: c.is_template(),
        synced: c.is_synced(),
        local: d.local.map(|(a, p)| SocketAddrV4::new(a, p)),
        prefix6: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnTable;
    use crate::conn::{flags, Method, NewConn};
    use crate::dataplane::conn_dump::Tables;
    use std::net::Ipv4Addr;

    fn new_conn(cport: u16, flags: u8) -> NewConn {
        NewConn {
            proto: conn::PROTO_TCP,
            client: Ipv4Addr::new(198, 18, 0, 10),
            cport,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
            server: Ipv4Addr::new(198, 19, 0, 11),
            sport: 8080,
            method: Method::Nat,
            flags,
            service: 0,
            dest: 0,
            state: TcpState::None,
        }
    }

    fn table_of(capacity: usize, n: u16) -> ConnTable {
        let mut t = ConnTable::with_capacity_and_seed(capacity, 1);
        for i in 0..n {
            let id = t.insert(new_conn(40000 + i, 0), 0).unwrap();
            t.on_packet(id, crate::conn::Dir::Inbound, conn::tcp_flags::SYN, 0);
        }
        t
    }

    fn table(n: u16) -> ConnTable {
        table_of(64, n)
    }

    /// What a listing of `t` at `now` must hold.
    fn contents(t: &ConnTable, now: u64, worker: usize) -> Vec<ConnInfo> {
        let mut v: Vec<_> = t
            .iter()
            .filter(|&(id, _)| !t.is_expired(id, now))
            .map(|(id, c)| {
                info(&Dumped {
                    conn: *c,
                    left_ms: t.time_left_ms(id, now),
                    worker,
                    local: None,
                    addrs6: None,
                })
            })
            .collect();
        sort(&mut v);
        v
    }

    fn sort(v: &mut [ConnInfo]) {
        v.sort_by_key(|c| (c.worker, c.client, c.cport, c.template));
    }

    #[test]
    fn workers_answer_only_new_requests() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(3), table(2));
        let (mut s0, mut s1) = (d.current(), d.current());
        // nothing asked: nothing answered
        d.poll(0, &mut s0, Tables::v4(&t0), 5);
        assert!(d.complete(0));
        let req = d.request(100);
        assert!(!d.complete(req));
        d.poll(0, &mut s0, Tables::v4(&t0), 5);
        assert!(!d.complete(req));
        d.poll(1, &mut s1, Tables::v4(&t1), 5);
        assert!(d.complete(req));
        // a second poll of the same request does nothing
        d.poll(1, &mut s1, Tables::v4(&t1), 5);
        let v = collect(&d, req, 100);
        assert!(v.missing_workers.is_empty());
        assert_eq!(v.total, 5);
        assert_eq!(v.conns.len(), 5);
        assert!(!v.truncated);
        assert!(v.conns.iter().all(|c| c.state == "SYN_RECV"
            && c.protocol == "tcp"
            && c.forward == "nat"
            && c.sport == 8080
            && !c.template));
        assert_eq!(v.conns.iter().filter(|c| c.worker == 1).count(), 2);
        assert!(v.conns[0].expires_ms > 0);
    }

    #[test]
    fn a_late_worker_is_missing_and_then_stops() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(3), table_of(10_000, 2));
        let (mut s0, mut s1) = (d.current(), d.current());
        let req = d.request(100);
        d.poll(0, &mut s0, Tables::v4(&t0), 5);
        // worker 1 is one slice into a 10,000-slot table at the deadline
        d.poll_slots(1, &mut s1, &t1, 5, 16);
        assert!(!d.complete(req));
        let v = collect(&d, req, 100);
        assert_eq!(v.missing_workers, vec![1]);
        assert_eq!(v.conns.len(), 3);
        assert_eq!(v.total, 3);
        // its buffer is gone: it stops at its next loop, answering nothing
        assert_eq!(d.buffer_capacity(1), None);
        d.poll_slots(1, &mut s1, &t1, 5, 16);
        assert_eq!(s1, req);
        assert!(!d.complete(req));
        // and the next request is whole again
        let req = d.request(100);
        d.poll(0, &mut s0, Tables::v4(&t0), 5);
        for _ in 0..3 {
            d.poll(1, &mut s1, Tables::v4(&t1), 5);
        }
        assert!(d.complete(req));
        assert_eq!(collect(&d, req, 100).total, 5);
    }

    #[test]
    fn limits_apply_per_worker_and_in_all() {
        let d = ConnDump::new(2);
        let (t0, t1) = (table(10), table(10));
        let (mut s0, mut s1) = (d.current(), d.current());
        let req = d.request(4);
        d.poll(0, &mut s0, Tables::v4(&t0), 1);
        d.poll(1, &mut s1, Tables::v4(&t1), 1);
        let v = collect(&d, req, 6);
        assert_eq!(v.total, 20);
        assert_eq!(v.conns.len(), 6);
        assert!(v.truncated);
        // expired connections are not listed
        let req = d.request(100);
        d.poll(0, &mut s0, Tables::v4(&t0), 10_000_000);
        d.poll(1, &mut s1, Tables::v4(&t1), 1);
        let v = collect(&d, req, 100);
        assert_eq!(v.total, 10);
    }

    /// The worker's part is bounded: `budget` slots per call, a table of
    /// capacity C answered in exactly ceil(C / budget) calls, into the
    /// buffer the controller made (its capacity never changes); the result
    /// is the table's contents, templates included.
    #[test]
    fn a_dump_is_bounded_per_call_and_fills_a_preallocated_buffer() {
        const CAP: usize = 1000;
        const BUDGET: usize = 64;
        let now = 7;
        let mut t = ConnTable::with_capacity_and_seed(CAP, 3);
        let mut ids = Vec::new();
        for i in 0..700u16 {
            ids.push(t.insert(new_conn(10_000 + i, 0), 0).unwrap());
        }
        // holes, and expired entries not yet swept
        for id in ids.iter().step_by(7) {
            t.remove(*id);
        }
        for id in ids.iter().skip(3).step_by(11) {
            if t.contains(*id) {
                t.set_timeout(*id, now, 0);
            }
        }
        // a persistence template (as a synced one sits in the table)
        let tpl = NewConn {
            cport: 0,
            ..new_conn(0, flags::TEMPLATE)
        };
        let tid = t.insert(tpl, 0).unwrap();
        t.set_timeout(tid, 0, 300_000);
        assert_eq!(t.capacity(), CAP);
        let want = contents(&t, now, 0);
        assert!(want.len() > 500);

        let d = ConnDump::new(1);
        let mut seen = d.current();
        for round in 0..2 {
            let req = d.request(100_000);
            let buf = d.buffer_capacity(0).unwrap();
            // the first buffer is sized by the limit, the next ones by the
            // table's capacity, learned from the first answer
            assert!(buf.0 >= if round == 0 { 100_000 } else { CAP });
            if round == 1 {
                assert!(buf.0 < 100_000);
            }
            let mut calls = 0;
            while !d.complete(req) {
                d.poll_slots(0, &mut seen, &t, now, BUDGET);
                calls += 1;
                assert_eq!(d.buffer_capacity(0), Some(buf), "the buffer grew");
                assert!(calls <= CAP, "never completes");
            }
            assert_eq!(calls, CAP.div_ceil(BUDGET));
            // done: more polls do nothing
            d.poll_slots(0, &mut seen, &t, now, BUDGET);
            let mut v = collect(&d, req, usize::MAX);
            assert!(v.missing_workers.is_empty());
            assert!(!v.truncated);
            assert_eq!(v.total as usize, want.len());
            sort(&mut v.conns);
            assert_eq!(v.conns, want);
            let tpl: Vec<_> = v.conns.iter().filter(|c| c.template).collect();
            assert_eq!(tpl.len(), 1);
            assert_eq!((tpl[0].cport, tpl[0].state.as_str()), (0, "NONE"));
            assert_eq!(d.buffer_capacity(0), None, "collect frees the buffer");
        }

        // a limit smaller than the table: the buffer is that small, the
        // rest only counted
        let req = d.request(10);
        assert_eq!(d.buffer_capacity(0).unwrap().0, 10);
        while !d.complete(req) {
            d.poll_slots(0, &mut seen, &t, now, BUDGET);
        }
        let v = collect(&d, req, 10);
        assert_eq!((v.conns.len(), v.total as usize), (10, want.len()));
        assert!(v.truncated);
    }

    /// IPv6 records are listed with the addresses their ids stand for (a
    /// NAT64 one with its IPv4 server), after the IPv4 table's, and the
    /// text form writes them `[addr]:port`.
    #[test]
    fn ipv6_connections_are_listed_with_their_addresses() {
        use crate::conn::addr6::Addr6Table;
        use std::net::Ipv6Addr;
        let t4 = table(1);
        let mut a6 = Addr6Table::with_capacity(16);
        let mut t6 = ConnTable::with_capacity_and_seed(16, 2);
        let client: Ipv6Addr = "2001:db8:0:1::10".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8:0:1::100".parse().unwrap();
        let rs: Ipv6Addr = "2001:db8:0:2::11".parse().unwrap();
        let [c, v, r] = [client, vip, rs].map(|a| a6.acquire(a).unwrap());
        let nat = NewConn {
            client: Ipv4Addr::from(c),
            vip: Ipv4Addr::from(v),
            server: Ipv4Addr::from(r),
            ..new_conn(40000, 0)
        };
        t6.insert(nat, 0).unwrap();
        let nat64 = NewConn {
            client: Ipv4Addr::from(c),
            vip: Ipv4Addr::from(v),
            server: Ipv4Addr::new(198, 19, 0, 12),
            method: Method::Fnat,
            ..new_conn(40001, 0)
        };
        t6.insert(nat64, 0).unwrap();
        let d = ConnDump::new(1);
        let mut seen = d.current();
        let req = d.request(100);
        let tables = Tables {
            v4: &t4,
            v6: Some((&t6, &a6)),
        };
        // 64 + 16 slots, a few at a time
        for _ in 0..20 {
            d.poll_tables(0, &mut seen, tables, 5, 8);
        }
        assert!(d.complete(req));
        let mut v = collect(&d, req, 100);
        assert_eq!((v.total, v.conns.len()), (3, 3));
        v.conns.sort_by_key(|c| c.cport);
        let [v4c, n6, n64] = [&v.conns[0], &v.conns[1], &v.conns[2]];
        assert_eq!(v4c.client, IpAddr::from([198, 18, 0, 10]));
        assert_eq!(
            (n6.client, n6.vip, n6.server, n6.forward.as_str()),
            (client.into(), vip.into(), rs.into(), "nat")
        );
        assert_eq!(
            (n64.client, n64.vip, n64.server),
            (client.into(), vip.into(), IpAddr::from([198, 19, 0, 12]))
        );
        let text = crate::control::format::conns(&v);
        assert!(
            text.contains(
                "[2001:db8:0:1::10]:40000 [2001:db8:0:1::100]:80 [2001:db8:0:2::11]:8080"
            ),
            "{text}"
        );
    }
}
