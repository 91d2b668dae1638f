//! Replay protection for authenticated sync messages.

use std::net::Ipv4Addr;

use super::Message;

/// Senders remembered by [`ReplayGuard`].
pub const REPLAY_SENDERS: usize = 16;
/// Superseded boots remembered per sender.
pub const RETIRED_BOOTS: usize = 4;

#[derive(Debug, Clone)]
struct Peer {
    sender: Ipv4Addr,
    boot: u64,
    last_seq: u64,
    /// Boots this sender has moved on from: a message carrying one is a
    /// replay from an earlier life, refused.
    retired: [Option<u64>; RETIRED_BOOTS],
    retired_next: usize,
    /// Recency stamp for eviction.
    used: u64,
}

/// Replay protection for authenticated messages (call it after
/// [`decode`]).
///
/// Per sender: messages of its current boot are accepted only with a seq
/// above the last accepted one (so a reordered older datagram is dropped
/// too); a different boot means the sender restarted, and resets the
/// sequence, unless it is one of the last [`RETIRED_BOOTS`] boots the sender
/// has already moved on from. At most [`REPLAY_SENDERS`] senders are
/// tracked; the least recently heard one is forgotten to make room.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    peers: Vec<Peer>,
    clock: u64,
}

impl ReplayGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `m` is fresh (and records it as the last seen).
    pub fn accept(&mut self, m: &Message) -> bool {
        self.clock += 1;
        let now = self.clock;
        if let Some(p) = self.peers.iter_mut().find(|p| p.sender == m.sender) {
            if m.boot == p.boot {
                if m.seq <= p.last_seq {
                    return false;
                }
            } else if p.retired.contains(&Some(m.boot)) {
                return false;
            } else {
                p.retired[p.retired_next] = Some(p.boot);
                p.retired_next = (p.retired_next + 1) % RETIRED_BOOTS;
                p.boot = m.boot;
            }
            p.last_seq = m.seq;
            p.used = now;
            return true;
        }
        if self.peers.len() >= REPLAY_SENDERS {
            if let Some(i) = self
                .peers
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.used)
                .map(|(i, _)| i)
            {
                self.peers.swap_remove(i);
            }
        }
        self.peers.push(Peer {
            sender: m.sender,
            boot: m.boot,
            last_seq: m.seq,
            retired: [None; RETIRED_BOOTS],
            retired_next: 0,
            used: now,
        });
        true
    }

    /// Senders currently tracked.
    pub fn senders(&self) -> usize {
        self.peers.len()
    }
}
