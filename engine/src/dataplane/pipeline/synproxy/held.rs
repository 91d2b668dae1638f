//! The client's first data segments, kept while the server's handshake is
//! under way: a Linux client sends its request right after its ACK, before
//! the server can have answered our SYN; dropped, it would cost the client
//! a retransmission timeout (200 ms at least) on every connection.
//!
//! A small ring of frame copies per worker, allocated once: a new segment
//! takes the oldest slot (whoever held it loses it and retransmits, as it
//! would have without the ring), so nothing needs freeing when a
//! connection ends, and a slot is only given back to the connection (and
//! cookie) that put it there.

/// Slots per worker: handshakes in flight at once that keep their data.
const SLOTS: usize = 64;
/// The largest frame kept (a standard Ethernet frame); bigger ones are not
/// kept (the client retransmits them).
pub const MAX_FRAME: usize = 1514;

#[derive(Clone, Copy, Default)]
struct Meta {
    owner: u32,
    tag: u32,
    len: u16,
}

pub struct Held {
    bytes: Vec<u8>,
    meta: Vec<Meta>,
    next: usize,
}

impl Held {
    /// No slots (before the synproxy is first used): keeps nothing.
    pub fn empty() -> Held {
        Held {
            bytes: Vec::new(),
            meta: Vec::new(),
            next: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    pub fn new() -> Held {
        Held {
            bytes: vec![0; SLOTS * MAX_FRAME],
            meta: vec![Meta::default(); SLOTS],
            next: 0,
        }
    }

    /// Keeps a copy of `frame` for connection `owner` (with `tag`, its
    /// cookie); returns the slot's handle (never 0).
    pub fn put(&mut self, owner: u32, tag: u32, frame: &[u8]) -> Option<u16> {
        if frame.len() > MAX_FRAME || frame.is_empty() || self.meta.is_empty() {
            return None;
        }
        let i = self.next;
        self.next = (i + 1) % SLOTS;
        self.bytes[i * MAX_FRAME..i * MAX_FRAME + frame.len()].copy_from_slice(frame);
        self.meta[i] = Meta {
            owner,
            tag,
            len: frame.len() as u16,
        };
        Some(i as u16 + 1)
    }

    /// The frame kept under `handle` for `owner` and `tag`, if it is still
    /// there; the slot is free again afterwards.
    pub fn take(&mut self, handle: u16, owner: u32, tag: u32) -> Option<&[u8]> {
        let i = usize::from(handle).checked_sub(1)?;
        let m = self.meta.get_mut(i)?;
        if m.len == 0 || m.owner != owner || m.tag != tag {
            return None;
        }
        let len = usize::from(m.len);
        m.len = 0;
        Some(&self.bytes[i * MAX_FRAME..i * MAX_FRAME + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_for_its_owner_until_overwritten() {
        let mut h = Held::new();
        let a = h.put(7, 99, b"frame a").unwrap();
        assert_eq!(h.take(a, 8, 99), None);
        assert_eq!(h.take(a, 7, 98), None);
        assert_eq!(h.take(a, 7, 99), Some(&b"frame a"[..]));
        assert_eq!(h.take(a, 7, 99), None, "taken once");
        let b = h.put(1, 1, b"b").unwrap();
        for i in 0..SLOTS as u32 {
            h.put(100 + i, 0, b"x").unwrap();
        }
        assert_eq!(h.take(b, 1, 1), None, "the ring came round");
        assert_eq!(h.put(1, 1, &[0; MAX_FRAME + 1]), None);
    }
}
