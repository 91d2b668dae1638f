use std::net::Ipv6Addr;

use proptest::prelude::*;

use super::*;

const A: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);

fn key() -> SyncKey {
    SyncKey::new(b"0123456789abcdef-shared-secret").unwrap()
}

fn conn(i: u32) -> Record {
    Record::Conn(ConnRecord {
        proto: 6,
        state: 1,
        method: 0,
        flags: 0x80,
        client: Ipv4Addr::from(0xC612_0000 + i),
        cport: 40000 + (i % 20000) as u16,
        vip: Ipv4Addr::new(198, 18, 0, 100),
        vport: 80,
        server: Ipv4Addr::new(198, 19, 0, 11),
        sport: 8080,
        timeout_ms: 900_000 - i,
        local: None,
    })
}

/// A full-NAT connection's record: with its local tuple.
fn fnat_conn(i: u32) -> Record {
    let Record::Conn(c) = conn(i) else {
        unreachable!()
    };
    Record::Conn(ConnRecord {
        method: 3,
        local: Some((Ipv4Addr::new(198, 19, 0, 2), 1024 + i as u16)),
        ..c
    })
}

fn template(i: u32) -> Record {
    Record::Template(TemplateRecord {
        proto: 17,
        vip: Ipv4Addr::new(198, 18, 0, 101),
        vport: 0,
        client_net: Ipv4Addr::from(0xC612_0000 + (i << 8)),
        server: Ipv4Addr::new(198, 19, 0, 12),
        sport: 53,
        timeout_ms: 300_000,
    })
}

/// An IPv6 connection's record.
fn conn6(i: u32) -> Record {
    Record::Conn6(Conn6Record {
        proto: 6,
        state: 1,
        method: 0,
        flags: 0,
        client: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16),
        cport: 40000 + (i % 20000) as u16,
        vip: "2001:db8:1::100".parse().unwrap(),
        vport: 80,
        server: "2001:db8:0:2::11".parse().unwrap(),
        sport: 8080,
        timeout_ms: 900_000 - i,
    })
}

/// A NAT64 connection's record: IPv6 client and VIP, IPv4 server, local
/// tuple.
fn conn64(i: u32) -> Record {
    Record::Conn64(Conn64Record {
        proto: 6,
        state: 1,
        method: 3,
        flags: 0,
        client: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16),
        cport: 40000 + (i % 20000) as u16,
        vip: "2001:db8:1::100".parse().unwrap(),
        vport: 80,
        server: Ipv4Addr::new(198, 19, 0, 11),
        sport: 8080,
        timeout_ms: 900_000 - i,
        local: (Ipv4Addr::new(198, 19, 0, 1), 2000 + i as u16),
    })
}

/// An IPv6 service's template: the client's /64.
fn template6(i: u32) -> Record {
    Record::Template6(Template6Record {
        proto: 6,
        vip: "2001:db8:1::100".parse().unwrap(),
        vport: 443,
        prefix_len: 64,
        client_net: Ipv6Addr::new(0x2001, 0xdb8, 7, i as u16, 0, 0, 0, 0),
        server: "2001:db8:0:2::12".parse().unwrap(),
        sport: 8443,
        timeout_ms: 300_000,
    })
}

fn msg(body: Body) -> Message {
    Message {
        sender: A,
        boot: 0x0123_4567_89AB_CDEF,
        seq: 42,
        body,
    }
}

fn records_msg() -> Message {
    msg(Body::Records(vec![conn(1), template(2), conn(3)]))
}

/// Builds a message by hand (header fields as given) and signs it.
fn raw(kind_: u8, count: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&MAGIC);
    v.push(VERSION);
    v.push(kind_);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&A.octets());
    v.extend_from_slice(&7u64.to_be_bytes());
    v.extend_from_slice(&9u64.to_be_bytes());
    v.extend_from_slice(&count.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(body);
    let tag = key().mac(&v);
    v.extend_from_slice(&tag);
    v
}

fn conn_value(c: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    c.write(&mut v);
    v
}

#[test]
fn key_must_be_long_enough() {
    assert_eq!(SyncKey::new(&[7; 15]).unwrap_err(), SyncError::KeyTooShort);
    assert!(SyncKey::new(&[7; 16]).is_ok());
    assert_eq!(format!("{:?}", key()), "SyncKey(..)");
}

#[test]
fn round_trips_every_body() {
    let k = key();
    for m in [
        records_msg(),
        msg(Body::Records(vec![])),
        msg(Body::BulkRequest { id: u64::MAX }),
        msg(Body::BulkEnd {
            id: 3,
            records: 123_456,
        }),
    ] {
        let b = encode(&m, &k);
        assert!(b.len() <= MAX_DATAGRAM);
        assert_eq!(decode(&b, &k), Ok(m));
    }
}

/// Pins the header layout documented in the module table.
#[test]
fn wire_layout_is_as_documented() {
    let b = encode(&records_msg(), &key());
    assert_eq!(&b[0..4], b"RVSY");
    assert_eq!(b[4], 1, "version");
    assert_eq!(b[5], kind::RECORDS);
    assert_eq!(be16(&b, 6) as usize, 28 + 23 + 28, "body_len");
    assert_eq!(&b[8..12], &[198, 19, 0, 2], "sender");
    assert_eq!(
        &b[12..20],
        &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]
    );
    assert_eq!(be64(&b, 20), 42, "seq");
    assert_eq!(be16(&b, 28), 3, "count");
    assert_eq!(&b[30..32], &[0, 0], "reserved");
    // First record: conn(1).
    assert_eq!(
        &b[32..60],
        &[
            1, 26, // type, len
            6, 1, 0, 0x80, // proto state method flags
            198, 18, 0, 1, 0x9C, 0x41, // client 198.18.0.1:40001
            198, 18, 0, 100, 0, 80, // vip:vport
            198, 19, 0, 11, 0x1F, 0x90, // server:sport
            0x00, 0x0D, 0xBB, 0x9F, // 899999
        ]
    );
    // Second: template(2).
    assert_eq!(
        &b[60..83],
        &[
            2, 21, 17, 198, 18, 0, 101, 0, 0, 198, 18, 2, 0, 198, 19, 0, 12, 0, 53, 0x00, 0x04,
            0x93, 0xE0,
        ]
    );
    let n = b.len();
    assert_eq!(n, 32 + 79 + 32);
    assert_eq!(&b[n - 32..], &key().mac(&b[..n - 32]));
    // Control bodies.
    let b = encode(&msg(Body::BulkEnd { id: 1, records: 2 }), &key());
    assert_eq!((b[5], be16(&b, 6), be16(&b, 28)), (kind::BULK_END, 16, 0));
    assert_eq!(
        &b[32..48],
        &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    );
    let b = encode(&msg(Body::BulkRequest { id: 5 }), &key());
    assert_eq!((b[5], be16(&b, 6)), (kind::BULK_REQUEST, 8));
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let k = key();
    let good = encode(&records_msg(), &k);
    for byte in 0..good.len() {
        for bit in 0..8 {
            let mut b = good.clone();
            b[byte] ^= 1 << bit;
            assert!(decode(&b, &k).is_err(), "byte {byte} bit {bit}");
        }
    }
}

#[test]
fn wrong_key_is_bad_mac() {
    let b = encode(&records_msg(), &key());
    let other = SyncKey::new(b"0123456789abcdef-shared-secreT").unwrap();
    assert_eq!(decode(&b, &other), Err(SyncError::BadMac));
}

#[test]
fn every_truncation_and_extension_is_rejected() {
    let k = key();
    let good = encode(&records_msg(), &k);
    for n in 0..good.len() {
        let e = decode(&good[..n], &k).unwrap_err();
        if n < HEADER_LEN + MAC_LEN {
            assert_eq!(e, SyncError::Short, "len {n}");
        } else {
            assert_eq!(e, SyncError::BadMac, "len {n}");
        }
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(decode(&longer, &k), Err(SyncError::BadMac));
}

#[test]
fn magic_and_version_are_checked_before_the_mac() {
    let k = key();
    let mut b = encode(&records_msg(), &k);
    b[0] = b'X';
    assert_eq!(decode(&b, &k), Err(SyncError::BadMagic));
    let mut b = encode(&records_msg(), &k);
    b[4] = 2;
    assert_eq!(decode(&b, &k), Err(SyncError::BadVersion(2)));
}

#[test]
fn authentic_but_malformed_messages_are_refused() {
    let k = key();
    let c = conn_value(&conn(1));
    let ok = raw(kind::RECORDS, 1, &c);
    assert!(decode(&ok, &k).is_ok());
    // body_len disagreeing with the datagram.
    let mut bad = ok[..ok.len() - MAC_LEN].to_vec();
    bad[7] += 1;
    let tag = k.mac(&bad);
    bad.extend_from_slice(&tag);
    assert_eq!(decode(&bad, &k), Err(SyncError::Malformed("body length")));
    // Count mismatch, both ways.
    assert_eq!(
        decode(&raw(kind::RECORDS, 2, &c), &k),
        Err(SyncError::Malformed("record count"))
    );
    assert_eq!(
        decode(&raw(kind::RECORDS, 0, &c), &k),
        Err(SyncError::Malformed("record count"))
    );
    // A count no body could hold is refused before allocating.
    assert_eq!(
        decode(&raw(kind::RECORDS, u16::MAX, &c), &k),
        Err(SyncError::Malformed("record count"))
    );
    // Record running past the body.
    assert_eq!(
        decode(&raw(kind::RECORDS, 1, &c[..20]), &k),
        Err(SyncError::Malformed("record overruns body"))
    );
    // A lone type byte.
    let mut odd = c.clone();
    odd.push(1);
    assert_eq!(
        decode(&raw(kind::RECORDS, 2, &odd), &k),
        Err(SyncError::Malformed("record header"))
    );
    // Known types shorter than this version's size.
    assert_eq!(
        decode(&raw(kind::RECORDS, 1, &[1, 2, 0, 0]), &k),
        Err(SyncError::Malformed("short conn record"))
    );
    assert_eq!(
        decode(&raw(kind::RECORDS, 1, &[2, 0]), &k),
        Err(SyncError::Malformed("short template record"))
    );
    // Control bodies of the wrong size.
    assert_eq!(
        decode(&raw(kind::BULK_REQUEST, 0, &[0; 9]), &k),
        Err(SyncError::Malformed("bulk request length"))
    );
    assert_eq!(
        decode(&raw(kind::BULK_END, 0, &[0; 8]), &k),
        Err(SyncError::Malformed("bulk end length"))
    );
    assert_eq!(decode(&raw(9, 0, &[]), &k), Err(SyncError::UnknownKind(9)));
}

#[test]
fn unknown_record_types_and_longer_records_are_skipped_forward_compatibly() {
    let k = key();
    let mut body = Vec::new();
    body.extend_from_slice(&[200, 3, 0xAA, 0xBB, 0xCC]); // a future record type
                                                         // conn(1) with 4 extra bytes appended by a "later version".
    let mut c = conn_value(&conn(1));
    c[1] = 30;
    c.extend_from_slice(&[9, 9, 9, 9]);
    body.extend_from_slice(&c);
    body.extend_from_slice(&[201, 0]); // empty future record
    body.extend_from_slice(&conn_value(&template(5)));
    let m = decode(&raw(kind::RECORDS, 4, &body), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn(1), template(5)]));
    assert_eq!((m.sender, m.boot, m.seq), (A, 7, 9));
}

/// A full-NAT record: the conn layout, `len` 32, the local tuple
/// appended; one without it (an older sender's) decodes with none; one
/// message holds 39 of them.
#[test]
fn fnat_record_appends_the_local_tuple() {
    let k = key();
    let v = conn_value(&fnat_conn(1));
    let mut plain = conn_value(&conn(1));
    plain[1] = 32;
    plain[4] = 3; // method fnat
    assert_eq!(v[..28], plain[..], "the first 26 bytes as for any method");
    assert_eq!(v[28..], [198, 19, 0, 2, 0x04, 0x01], "laddr:lport 1025");
    assert_eq!(v.len(), 2 + CONN_FNAT_LEN);
    let m = decode(&raw(kind::RECORDS, 1, &v), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![fnat_conn(1)]));
    // Without the tuple (len 26): none.
    let mut old = v[..28].to_vec();
    old[1] = 26;
    let m = decode(&raw(kind::RECORDS, 1, &old), &k).unwrap();
    let Body::Records(rs) = m.body else { panic!() };
    let Record::Conn(c) = rs[0] else { panic!() };
    assert_eq!((c.method, c.local), (3, None));
    let many = msg(Body::Records((0..50).map(fnat_conn).collect()));
    match decode(&encode(&many, &k), &k).unwrap().body {
        Body::Records(rs) => {
            assert_eq!(rs.len(), 39, "(1400 - 64) / 34");
            assert_eq!(rs[..], (0..39).map(fnat_conn).collect::<Vec<_>>()[..]);
        }
        other => panic!("{other:?}"),
    }
}

/// An IPv6 connection: type 3, `len` 62, the conn fields with 16-byte
/// addresses; 20 fit one message; a shorter value is refused, a longer
/// one's tail ignored.
#[test]
fn conn6_record_layout_and_round_trip() {
    let k = key();
    let v = conn_value(&conn6(0x0001_0002));
    assert_eq!(v.len(), 2 + CONN6_LEN);
    assert_eq!(
        v[..6],
        [3, 62, 6, 1, 0, 0],
        "type len proto state method flags"
    );
    assert_eq!(
        v[6..22],
        [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2],
        "client"
    );
    assert_eq!(
        v[22..24],
        45538u16.to_be_bytes(),
        "cport 40000 + 65538 % 20000"
    );
    assert_eq!(
        v[24..40],
        "2001:db8:1::100".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(v[40..42], [0, 80], "vport");
    assert_eq!(
        v[42..58],
        "2001:db8:0:2::11".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(v[58..60], 8080u16.to_be_bytes(), "sport");
    assert_eq!(
        v[60..64],
        (900_000u32 - 0x0001_0002).to_be_bytes(),
        "timeout"
    );
    let m = decode(&raw(kind::RECORDS, 1, &v), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn6(0x0001_0002)]));
    // A later version's longer record: the tail is ignored.
    let mut longer = v.clone();
    longer[1] = 66;
    longer.extend_from_slice(&[7, 7, 7, 7]);
    let m = decode(&raw(kind::RECORDS, 1, &longer), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn6(0x0001_0002)]));
    // Shorter than 62: malformed.
    let mut short = v[..2 + CONN6_LEN - 1].to_vec();
    short[1] = (CONN6_LEN - 1) as u8;
    assert_eq!(
        decode(&raw(kind::RECORDS, 1, &short), &k),
        Err(SyncError::Malformed("short conn6 record"))
    );
    let many = msg(Body::Records((0..30).map(conn6).collect()));
    match decode(&encode(&many, &k), &k).unwrap().body {
        Body::Records(rs) => {
            assert_eq!(rs.len(), 20, "(1400 - 64) / 64");
            assert_eq!(rs[..], (0..20).map(conn6).collect::<Vec<_>>()[..]);
        }
        other => panic!("{other:?}"),
    }
}

/// A peer that predates type 3 skips an IPv6 record whole by its length
/// (as any unknown type) and reads the IPv4 records around it: emulated
/// by renumbering the type to one this decoder does not know either.
#[test]
fn an_older_peer_skips_conn6_records_and_keeps_the_rest() {
    let k = key();
    let mixed = msg(Body::Records(vec![
        conn(1),
        conn6(2),
        template(3),
        conn6(4),
    ]));
    let mut b = encode(&mixed, &k);
    assert_eq!(decode(&b, &k).unwrap(), mixed);
    // Records start after the header: conn (28 bytes), conn6 at 28.
    let first6 = HEADER_LEN + 2 + CONN_LEN;
    assert_eq!(b[first6], record_type::CONN6);
    b[first6] = 250;
    let last6 = first6 + 2 + CONN6_LEN + 2 + TEMPLATE_LEN;
    assert_eq!(b[last6], record_type::CONN6);
    b[last6] = 251;
    let n = b.len() - MAC_LEN;
    let tag = k.mac(&b[..n]);
    b[n..].copy_from_slice(&tag);
    let m = decode(&b, &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn(1), template(3)]));
}

/// A NAT64 connection: type 4, `len` 56, IPv6 client and VIP, the IPv4
/// server and local tuple; 23 fit one message; shorter is refused, a
/// longer value's tail ignored.
#[test]
fn conn64_record_layout_and_round_trip() {
    let k = key();
    let v = conn_value(&conn64(0x0001_0002));
    assert_eq!(v.len(), 2 + CONN64_LEN);
    assert_eq!(
        v[..6],
        [4, 56, 6, 1, 3, 0],
        "type len proto state method flags"
    );
    assert_eq!(
        v[6..22],
        [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2],
        "client"
    );
    assert_eq!(v[22..24], 45538u16.to_be_bytes(), "cport");
    assert_eq!(
        v[24..40],
        "2001:db8:1::100".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(v[40..42], [0, 80], "vport");
    assert_eq!(v[42..46], [198, 19, 0, 11], "IPv4 server");
    assert_eq!(v[46..48], 8080u16.to_be_bytes(), "sport");
    assert_eq!(v[48..52], (900_000u32 - 0x0001_0002).to_be_bytes());
    assert_eq!(v[52..56], [198, 19, 0, 1], "laddr");
    assert_eq!(v[56..58], 2002u16.to_be_bytes(), "lport");
    let m = decode(&raw(kind::RECORDS, 1, &v), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn64(0x0001_0002)]));
    let mut longer = v.clone();
    longer[1] = 60;
    longer.extend_from_slice(&[7, 7, 7, 7]);
    let m = decode(&raw(kind::RECORDS, 1, &longer), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn64(0x0001_0002)]));
    let mut short = v[..2 + CONN64_LEN - 1].to_vec();
    short[1] = (CONN64_LEN - 1) as u8;
    assert_eq!(
        decode(&raw(kind::RECORDS, 1, &short), &k),
        Err(SyncError::Malformed("short conn64 record"))
    );
    let many = msg(Body::Records((0..30).map(conn64).collect()));
    match decode(&encode(&many, &k), &k).unwrap().body {
        Body::Records(rs) => {
            assert_eq!(rs.len(), 23, "(1400 - 64) / 58");
            assert_eq!(rs[..], (0..23).map(conn64).collect::<Vec<_>>()[..]);
        }
        other => panic!("{other:?}"),
    }
}

/// An IPv6 template: type 5, `len` 58, the client prefix and its length;
/// 22 fit one message; shorter is refused, a longer value's tail ignored.
#[test]
fn template6_record_layout_and_round_trip() {
    let k = key();
    let v = conn_value(&template6(9));
    assert_eq!(v.len(), 2 + TEMPLATE6_LEN);
    assert_eq!(v[..3], [5, 58, 6], "type len proto");
    assert_eq!(
        v[3..19],
        "2001:db8:1::100".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(v[19..21], 443u16.to_be_bytes(), "vport");
    assert_eq!(v[21], 64, "prefix length");
    assert_eq!(
        v[22..38],
        [0x20, 0x01, 0x0d, 0xb8, 0, 7, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0],
        "client prefix"
    );
    assert_eq!(
        v[38..54],
        "2001:db8:0:2::12".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(v[54..56], 8443u16.to_be_bytes(), "sport");
    assert_eq!(v[56..60], 300_000u32.to_be_bytes(), "timeout");
    let m = decode(&raw(kind::RECORDS, 1, &v), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![template6(9)]));
    let mut longer = v.clone();
    longer[1] = 59;
    longer.push(1);
    let m = decode(&raw(kind::RECORDS, 1, &longer), &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![template6(9)]));
    let mut short = v[..2 + TEMPLATE6_LEN - 1].to_vec();
    short[1] = (TEMPLATE6_LEN - 1) as u8;
    assert_eq!(
        decode(&raw(kind::RECORDS, 1, &short), &k),
        Err(SyncError::Malformed("short template6 record"))
    );
    let many = msg(Body::Records((0..30).map(template6).collect()));
    match decode(&encode(&many, &k), &k).unwrap().body {
        Body::Records(rs) => {
            assert_eq!(rs.len(), 22, "(1400 - 64) / 60");
            assert_eq!(rs[..], (0..22).map(template6).collect::<Vec<_>>()[..]);
        }
        other => panic!("{other:?}"),
    }
}

/// A peer that predates types 4 and 5 skips them whole by their length
/// and reads every record around them (emulated by renumbering them to
/// types this decoder does not know either).
#[test]
fn an_older_peer_skips_conn64_and_template6_records_and_keeps_the_rest() {
    let k = key();
    let mixed = msg(Body::Records(vec![
        conn(1),
        conn64(2),
        template(3),
        template6(4),
        conn6(5),
    ]));
    let mut b = encode(&mixed, &k);
    assert_eq!(decode(&b, &k).unwrap(), mixed);
    let at64 = HEADER_LEN + 2 + CONN_LEN;
    assert_eq!(b[at64], record_type::CONN64);
    b[at64] = 250;
    let at_t6 = at64 + 2 + CONN64_LEN + 2 + TEMPLATE_LEN;
    assert_eq!(b[at_t6], record_type::TEMPLATE6);
    b[at_t6] = 251;
    let n = b.len() - MAC_LEN;
    let tag = k.mac(&b[..n]);
    b[n..].copy_from_slice(&tag);
    let m = decode(&b, &k).unwrap();
    assert_eq!(m.body, Body::Records(vec![conn(1), template(3), conn6(5)]));
}

#[test]
fn encode_never_exceeds_max_datagram() {
    let k = key();
    let many = msg(Body::Records((0..100).map(conn).collect()));
    let b = encode(&many, &k);
    assert!(b.len() <= MAX_DATAGRAM);
    match decode(&b, &k).unwrap().body {
        Body::Records(rs) => {
            assert_eq!(rs.len(), 47, "(1400 - 64) / 28");
            assert_eq!(rs[..], (0..47).map(conn).collect::<Vec<_>>()[..]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(try_encode(&many, &k), Err(SyncError::TooLarge));
    let fits = msg(Body::Records((0..47).map(conn).collect()));
    assert_eq!(try_encode(&fits, &k).unwrap(), encode(&fits, &k));
    let t = msg(Body::Records((0..58).map(template).collect()));
    assert_eq!(try_encode(&t, &k).unwrap().len(), 64 + 58 * 23);
}

#[test]
fn batcher_packs_without_loss_and_within_limit() {
    let k = key();
    let mut b = Batcher::new(B, 99);
    let pushed: Vec<Record> = (0..1000)
        .map(|i| if i % 3 == 0 { template(i) } else { conn(i) })
        .collect();
    let mut grams = Vec::new();
    for r in &pushed {
        if let Some(g) = b.push(*r, &k) {
            grams.push(g);
        }
    }
    assert!(b.pending() > 0);
    grams.extend(b.flush(&k));
    assert_eq!(b.pending(), 0);
    assert_eq!(b.flush(&k), None);
    let mut got = Vec::new();
    let mut last_seq = 0;
    for g in &grams {
        assert!(g.len() <= MAX_DATAGRAM);
        let m = decode(g, &k).unwrap();
        assert_eq!((m.sender, m.boot), (B, 99));
        assert_eq!(m.seq, last_seq + 1);
        last_seq = m.seq;
        match m.body {
            Body::Records(rs) => got.extend(rs),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, pushed);
    // Every datagram but the last was filled: the next record did not fit.
    for g in &grams[..grams.len() - 1] {
        assert!(g.len() + 28 > MAX_DATAGRAM, "{}", g.len());
    }
    // Control messages take the next seq.
    let end = b.control(
        Body::BulkEnd {
            id: 1,
            records: 1000,
        },
        &k,
    );
    assert_eq!(decode(&end, &k).unwrap().seq, last_seq + 1);
    assert_eq!(b.next_seq(), last_seq + 2);
}

#[test]
fn batcher_returns_full_datagram_on_the_record_that_does_not_fit() {
    let k = key();
    let mut b = Batcher::new(A, 1);
    for i in 0..47 {
        assert_eq!(b.push(conn(i), &k), None);
    }
    assert_eq!(b.pending(), 47);
    let g = b.push(conn(47), &k).expect("48th does not fit");
    assert_eq!(b.pending(), 1);
    match decode(&g, &k).unwrap().body {
        Body::Records(rs) => assert_eq!(rs.len(), 47),
        other => panic!("{other:?}"),
    }
}

#[test]
fn replay_guard_rejects_replays_and_accepts_a_new_boot() {
    let mut g = ReplayGuard::new();
    let m = |sender, boot, seq| Message {
        sender,
        boot,
        seq,
        body: Body::BulkRequest { id: 0 },
    };
    assert!(g.accept(&m(A, 1, 5)));
    assert!(!g.accept(&m(A, 1, 5)), "replay");
    assert!(!g.accept(&m(A, 1, 4)), "older");
    assert!(g.accept(&m(A, 1, 6)));
    assert!(g.accept(&m(A, 1, 100)), "gaps are fine");
    // Another sender has its own sequence.
    assert!(g.accept(&m(B, 1, 1)));
    // A restart: new boot, seq starts again.
    assert!(g.accept(&m(A, 2, 1)));
    assert!(!g.accept(&m(A, 2, 1)));
    assert!(g.accept(&m(A, 2, 2)));
    // A replay from the previous life is refused.
    assert!(!g.accept(&m(A, 1, 101)));
    assert!(g.accept(&m(A, 2, 3)));
}

#[test]
fn replay_guard_is_bounded() {
    let mut g = ReplayGuard::new();
    let m = |i: u32, seq| Message {
        sender: Ipv4Addr::from(i),
        boot: 1,
        seq,
        body: Body::BulkRequest { id: 0 },
    };
    for i in 0..100 {
        assert!(g.accept(&m(i, 10)));
        assert!(g.senders() <= REPLAY_SENDERS);
    }
    // The most recent senders are still remembered.
    for i in 84..100 {
        assert!(!g.accept(&m(i, 10)), "{i}");
    }
    // Keeping sender 99 busy keeps it remembered while others churn.
    for i in 200..300 {
        assert!(g.accept(&m(99, u64::from(i))));
        assert!(g.accept(&m(i, 1)));
    }
    assert!(!g.accept(&m(99, 299)));
}

fn arb_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn arb_record() -> impl Strategy<Value = Record> {
    let c = (
        any::<[u8; 4]>(),
        arb_addr(),
        any::<u16>(),
        arb_addr(),
        any::<u16>(),
        arb_addr(),
        any::<u16>(),
        any::<u32>(),
        proptest::option::of((arb_addr(), any::<u16>())),
    )
        .prop_map(
            |(b, client, cport, vip, vport, server, sport, timeout_ms, local)| {
                Record::Conn(ConnRecord {
                    proto: b[0],
                    state: b[1],
                    method: b[2],
                    flags: b[3],
                    client,
                    cport,
                    vip,
                    vport,
                    server,
                    sport,
                    timeout_ms,
                    local,
                })
            },
        );
    let t = (
        any::<u8>(),
        arb_addr(),
        any::<u16>(),
        arb_addr(),
        arb_addr(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(
            |(proto, vip, vport, client_net, server, sport, timeout_ms)| {
                Record::Template(TemplateRecord {
                    proto,
                    vip,
                    vport,
                    client_net,
                    server,
                    sport,
                    timeout_ms,
                })
            },
        );
    let c6 = (
        any::<[u8; 4]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(
            |(b, client, cport, vip, vport, server, sport, timeout_ms)| {
                Record::Conn6(Conn6Record {
                    proto: b[0],
                    state: b[1],
                    method: b[2],
                    flags: b[3],
                    client: client.into(),
                    cport,
                    vip: vip.into(),
                    vport,
                    server: server.into(),
                    sport,
                    timeout_ms,
                })
            },
        );
    let c64 = (
        any::<[u8; 4]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        arb_addr(),
        any::<u16>(),
        any::<u32>(),
        (arb_addr(), any::<u16>()),
    )
        .prop_map(
            |(b, client, cport, vip, vport, server, sport, timeout_ms, local)| {
                Record::Conn64(Conn64Record {
                    proto: b[0],
                    state: b[1],
                    method: b[2],
                    flags: b[3],
                    client: client.into(),
                    cport,
                    vip: vip.into(),
                    vport,
                    server,
                    sport,
                    timeout_ms,
                    local,
                })
            },
        );
    let t6 = (
        any::<[u8; 2]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(|(b, vip, vport, client_net, server, sport, timeout_ms)| {
            Record::Template6(Template6Record {
                proto: b[0],
                vip: vip.into(),
                vport,
                prefix_len: b[1],
                client_net: client_net.into(),
                server: server.into(),
                sport,
                timeout_ms,
            })
        });
    prop_oneof![c, t, c6, c64, t6]
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        // 20 records of the largest kind (IPv6 conn) always fit.
        proptest::collection::vec(arb_record(), 0..=20).prop_map(Body::Records),
        any::<u64>().prop_map(|id| Body::BulkRequest { id }),
        (any::<u64>(), any::<u64>()).prop_map(|(id, records)| Body::BulkEnd { id, records }),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (arb_addr(), any::<u64>(), any::<u64>(), arb_body()).prop_map(|(sender, boot, seq, body)| {
        Message {
            sender,
            boot,
            seq,
            body,
        }
    })
}

proptest! {
    #[test]
    fn prop_messages_round_trip(m in arb_message()) {
        let k = key();
        let b = try_encode(&m, &k).unwrap();
        prop_assert!(b.len() <= MAX_DATAGRAM);
        prop_assert_eq!(decode(&b, &k), Ok(m));
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = decode(&b, &key());
    }

    /// Arbitrary bodies under a valid header and MAC reach the record
    /// parser: still no panic, and what decodes re-encodes to itself.
    #[test]
    fn prop_signed_garbage_never_panics(
        kind_ in 0u8..5,
        count in any::<u16>(),
        small_count in 0u16..8,
        use_small in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let k = key();
        let b = raw(kind_, if use_small { small_count } else { count }, &body);
        if let Ok(m) = decode(&b, &k) {
            prop_assert_eq!(decode(&encode(&m, &k), &k), Ok(m));
        }
    }

    #[test]
    fn prop_batcher_never_loses_or_overflows(rs in proptest::collection::vec(arb_record(), 0..300)) {
        let k = key();
        let mut bat = Batcher::new(A, 5);
        let mut grams = Vec::new();
        for r in &rs {
            grams.extend(bat.push(*r, &k));
        }
        grams.extend(bat.flush(&k));
        let mut got = Vec::new();
        for g in &grams {
            prop_assert!(g.len() <= MAX_DATAGRAM);
            match decode(g, &k).unwrap().body {
                Body::Records(v) => got.extend(v),
                _ => prop_assert!(false),
            }
        }
        prop_assert_eq!(got, rs);
    }
}
