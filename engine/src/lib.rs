//! rvs engine: the library that owns every decision and every rewrite.
//!
//! `packet`, `sched`, `conn` and `forward` are plain Rust over byte slices and
//! plain structs: unit-tested and fuzzed without DPDK. `dataplane` is the only
//! module that touches DPDK; it adapts mbufs to slices in place.

pub mod config;
pub mod conn;
pub mod forward;
pub mod ha;
pub mod packet;
pub mod sched;

pub mod control;
pub mod dataplane;
