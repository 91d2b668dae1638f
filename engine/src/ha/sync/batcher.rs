//! Packing a stream of records into sync datagrams.

use std::net::Ipv4Addr;

use super::*;

/// Packs a stream of records into datagrams of at most [`MAX_DATAGRAM`]
/// bytes, numbering every message it builds (records and control alike)
/// from seq 1.
#[derive(Debug)]
pub struct Batcher {
    sender: Ipv4Addr,
    boot: u64,
    next_seq: u64,
    pending: Vec<Record>,
    body_len: usize,
}

impl Batcher {
    pub fn new(sender: Ipv4Addr, boot: u64) -> Batcher {
        Batcher {
            sender,
            boot,
            next_seq: 1,
            pending: Vec::new(),
            body_len: 0,
        }
    }

    /// Queues `r`. When it does not fit the current datagram, returns that
    /// datagram (full) and `r` starts the next one.
    pub fn push(&mut self, r: Record, key: &SyncKey) -> Option<Vec<u8>> {
        let full = if self.body_len + r.wire_len() > MAX_BODY {
            self.flush(key)
        } else {
            None
        };
        self.body_len += r.wire_len();
        self.pending.push(r);
        full
    }

    /// The pending records as one datagram, if there are any.
    pub fn flush(&mut self, key: &SyncKey) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            return None;
        }
        let seq = self.take_seq();
        let body = Body::Records(std::mem::take(&mut self.pending));
        let (out, n) = encode_counted(self.sender, self.boot, seq, &body, key);
        if let Body::Records(mut v) = body {
            // push() never lets the body grow past MAX_BODY.
            debug_assert_eq!(n, v.len());
            v.clear();
            self.pending = v; // keep the allocation
        }
        self.body_len = 0;
        Some(out)
    }

    /// A control message (`BulkRequest`, `BulkEnd`) with the next seq.
    /// Pending records are not flushed: call [`flush`](Self::flush) first
    /// when the control message must follow them (a `BulkEnd`).
    pub fn control(&mut self, body: Body, key: &SyncKey) -> Vec<u8> {
        let seq = self.take_seq();
        encode_counted(self.sender, self.boot, seq, &body, key).0
    }

    /// Records queued and not yet returned in a datagram.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The seq the next message will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }
}
