//! Failover and connection sync: the parts that decide, without the parts
//! that wait.
//!
//! * [`advert`]: the VRRPv3 advertisement codec (RFC 5798, IPv4), wire
//!   compatible with keepalived so either can be the peer.
//! * [`vrrp`]: the RFC 5798 §6.4 state machine. Time is the caller's
//!   `now_ms`; it returns [`Action`]s instead of sending anything.
//! * [`sync`]: the authenticated (HMAC-SHA256) connection-sync messages,
//!   the batcher that packs records into datagrams and the replay guard.
//!
//! Everything here is pure: no sockets, no clock reads, no DPDK, no
//! threads. That is what lets every transition be pinned by a unit test on
//! a fake clock, every codec be property-tested and fuzzed, and the
//! runtime stay a thin loop. `control::ha` owns the sockets (raw IP
//! protocol 112 for adverts, UDP `sync_port` for sync, both through the
//! exception path), the timers (it sleeps until [`Vrrp::next_deadline`]),
//! the addresses and gratuitous ARP, and the hand-off of received records
//! to the workers' tables.

pub mod advert;
pub mod sync;
pub mod vrrp;

pub use advert::{Advert, AdvertError};
pub use sync::{
    Batcher, Body, ConnRecord, Message, Record, ReplayGuard, SyncError, SyncKey, TemplateRecord,
};
pub use vrrp::{Action, State, Vrrp, VrrpConfig, VrrpCounters};
