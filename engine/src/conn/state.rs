//! TCP state tracking and timeouts, with the semantics of Linux IPVS
//! (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`).
//!
//! IPVS does not follow the TCP state machine of an endpoint: it keeps one
//! coarse state per connection, driven by three transition tables chosen by
//! where the segment was seen:
//!
//! * **input**: client -> server, on a connection whose replies also cross
//!   the director (NAT);
//! * **output**: server -> client (NAT replies);
//! * **input-only**: client -> server on a connection whose replies bypass
//!   the director (DR, TUN). IPVS marks such connections `NOOUTPUT`; if a
//!   reply is ever seen the mark is dropped and the input table is used from
//!   then on. We do the same.
//!
//! Each segment selects one row by its flags, in the priority order of
//! IPVS's `tcp_state_idx`: RST, then SYN, then FIN, then ACK. A segment with
//! none of those four flags moves the connection to CLOSE (IPVS's default
//! `new_state`). Every segment, whether or not the state changes, re-arms the
//! expiry to the timeout of the (new) state.
//!
//! The tables below are the kernel's current `tcp_states` (the ones in force
//! since "ack on NONE -> ESTABLISHED" for input and input-only); the
//! `secure_tcp` (DoS) variant is not implemented.

use super::{Dir, PROTO_TCP};

/// TCP flag bits as they appear in byte 13 of the TCP header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// Connection states, numbered as IPVS numbers them (`IP_VS_TCP_S_*`), so
/// that a value can travel in a sync message unchanged. UDP (and any other
/// protocol) connections stay in `None`.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

impl TcpState {
    /// Every state, in numeric order.
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state with IPVS number `v`, if any.
    #[inline]
    pub fn from_u8(v: u8) -> Option<TcpState> {
        // A match rather than `ALL.get(v)`: a compare and no load on the
        // state-changing paths (every arm is its own number).
        Some(match v {
            0 => TcpState::None,
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait,
            5 => TcpState::TimeWait,
            6 => TcpState::Close,
            7 => TcpState::CloseWait,
            8 => TcpState::LastAck,
            9 => TcpState::Listen,
            10 => TcpState::SynAck,
            _ => return None,
        })
    }

    /// The name `ipvsadm -L -c` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

impl std::fmt::Display for TcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Does a connection in `state` count as *active* for the schedulers
/// (SPEC §6)? TCP: ESTABLISHED and the opening states SYN_SENT, SYN_RECV and
/// SYNACK, as modern kernels count them (`tcp_state_active_table`); every
/// other TCP state is inactive, and every non-TCP connection is inactive.
#[inline]
pub fn is_active(proto: u8, state: TcpState) -> bool {
    proto == PROTO_TCP && tcp_active(state)
}

/// The active TCP states, one bit each (a shift and a test, where a
/// `matches!` of four states compiled to a jump table on the
/// state-changing paths).
const ACTIVE: u16 = 1 << TcpState::Established as u16
    | 1 << TcpState::SynSent as u16
    | 1 << TcpState::SynRecv as u16
    | 1 << TcpState::SynAck as u16;

/// Which row of a table a segment selects: IPVS's `tcp_state_idx` order,
/// RST before SYN before FIN before ACK. `None` when no such flag is set.
#[inline]
pub(crate) const fn flag_row(flags: u8) -> Option<usize> {
    if flags & tcp_flags::RST != 0 {
        Some(ROW_RST)
    } else if flags & tcp_flags::SYN != 0 {
        Some(ROW_SYN)
    } else if flags & tcp_flags::FIN != 0 {
        Some(ROW_FIN)
    } else if flags & tcp_flags::ACK != 0 {
        Some(ROW_ACK)
    } else {
        None
    }
}

const ROW_SYN: usize = 0;
const ROW_FIN: usize = 1;
const ROW_ACK: usize = 2;
const ROW_RST: usize = 3;

/// The three transition tables a segment can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Input,
    Output,
    InputOnly,
}

impl Table {
    /// The table for a segment seen in `dir` on a connection that does
    /// (`no_output == false`) or does not expect replies through us.
    #[inline]
    pub(crate) fn pick(dir: Dir, no_output: bool) -> Table {
        match dir {
            Dir::Reply => Table::Output,
            Dir::Inbound if no_output => Table::InputOnly,
            Dir::Inbound => Table::Input,
        }
    }
}

use TcpState as S;

/// `NEXT[table][row][state]` = the state after a segment. Rows are SYN, FIN,
/// ACK, RST; columns follow `TcpState` numbering (NONE, ESTABLISHED,
/// SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK,
/// LISTEN, SYNACK).
#[rustfmt::skip]
const NEXT: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // input: client -> server, replies seen too
    [
        // SYN
        [S::SynRecv, S::Established, S::Established, S::SynRecv, S::SynRecv, S::SynRecv,
         S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv],
        // FIN
        [S::Close, S::CloseWait, S::SynSent, S::TimeWait, S::TimeWait, S::TimeWait,
         S::Close, S::CloseWait, S::LastAck, S::Listen, S::TimeWait],
        // ACK
        [S::Established, S::Established, S::SynSent, S::Established, S::FinWait, S::TimeWait,
         S::Close, S::CloseWait, S::Close, S::Listen, S::Established],
        // RST
        [S::Close, S::Close, S::Close, S::SynRecv, S::Close, S::Close,
         S::Close, S::Close, S::LastAck, S::Listen, S::SynRecv],
    ],
    // output: server -> client
    [
        // SYN
        [S::SynSent, S::Established, S::SynSent, S::SynRecv, S::SynSent, S::SynSent,
         S::SynSent, S::SynSent, S::SynSent, S::Listen, S::SynRecv],
        // FIN
        [S::TimeWait, S::FinWait, S::SynSent, S::TimeWait, S::FinWait, S::TimeWait,
         S::Close, S::TimeWait, S::LastAck, S::Listen, S::TimeWait],
        // ACK
        [S::Established, S::Established, S::SynSent, S::Established, S::FinWait, S::TimeWait,
         S::Close, S::CloseWait, S::LastAck, S::Established, S::Established],
        // RST
        [S::Close, S::Close, S::SynSent, S::Close, S::Close, S::TimeWait,
         S::Close, S::Close, S::Close, S::Close, S::Close],
    ],
    // input-only: client -> server, replies bypass us (DR, TUN)
    [
        // SYN
        [S::SynRecv, S::Established, S::Established, S::SynRecv, S::SynRecv, S::SynRecv,
         S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv],
        // FIN
        [S::Close, S::FinWait, S::SynSent, S::TimeWait, S::FinWait, S::TimeWait,
         S::Close, S::CloseWait, S::LastAck, S::Listen, S::TimeWait],
        // ACK
        [S::Established, S::Established, S::SynSent, S::Established, S::FinWait, S::TimeWait,
         S::Close, S::CloseWait, S::Close, S::Listen, S::Established],
        // RST
        [S::Close, S::Close, S::Close, S::SynRecv, S::Close, S::Close,
         S::Close, S::Close, S::LastAck, S::Listen, S::Close],
    ],
];

/// `NEXT` by the flag byte's low five bits rather than by row:
/// `BY_FLAGS[table][flags & 0x1f][state]`, the rows' priority order (and a
/// segment with none of the four flags moving to CLOSE) folded in when the
/// table is built, so that a transition is one load and no branch on the
/// flags. (URG and above pick no row; PSH, bit 3, picks none either and
/// is in the index only so that it needs no masking out.)
static BY_FLAGS: [[[TcpState; TCP_STATES]; 32]; 3] = {
    let mut t = [[[TcpState::Close; TCP_STATES]; 32]; 3];
    let mut table = 0;
    while table < 3 {
        let mut low = 0;
        while low < 32 {
            // IPVS: a segment without RST/SYN/FIN/ACK sends the connection
            // to CLOSE (the initial value).
            if let Some(row) = flag_row(low as u8) {
                t[table][low] = NEXT[table][row];
            }
            low += 1;
        }
        table += 1;
    }
    t
};

/// The state after a segment with `flags` in `table` from `from`: one
/// load (`BY_FLAGS`), where the row's choice was four tests and branches.
#[inline(always)]
pub(crate) fn next_state(table: Table, from: TcpState, flags: u8) -> TcpState {
    BY_FLAGS[table as usize][usize::from(flags & 0x1f)][from as usize]
}

/// [`is_active`] for a TCP connection (the caller knows the protocol).
#[inline(always)]
pub(crate) fn tcp_active(state: TcpState) -> bool {
    ACTIVE >> (state as u16) & 1 != 0
}

/// Timeouts in seconds, one per TCP state plus one for UDP (and any other
/// non-TCP protocol). `Default` gives the IPVS defaults. The data plane maps
/// the configuration's `[timeouts]` onto this (`tcp_established` ->
/// `established`, `tcp_fin` -> `fin_wait`, `udp` -> `udp`, as `ipvsadm --set`
/// does) and hands it to [`ConnTable::set_timeouts`](super::ConnTable::set_timeouts).
///
/// The NONE state (a connection created but not yet given its first
/// segment) uses IPVS's fixed 2 s, [`NONE_TIMEOUT_S`]. A table under
/// pressure arms SYN_RECV with at most
/// [`PRESSURE_SYN_RECV_S`](super::PRESSURE_SYN_RECV_S) (module docs,
/// "Pressure").
///
/// Values above [`MAX_TIMEOUT_S`] are clamped to it (see the module notes on
/// the expiry clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub established: u32,
    pub syn_sent: u32,
    pub syn_recv: u32,
    pub fin_wait: u32,
    pub time_wait: u32,
    pub close: u32,
    pub close_wait: u32,
    pub last_ack: u32,
    pub listen: u32,
    pub synack: u32,
    pub udp: u32,
}

/// Timeout of the NONE state, seconds (IPVS `tcp_timeouts[NONE]`).
pub const NONE_TIMEOUT_S: u32 = 2;

/// Largest timeout the table stores, in seconds (about 11.6 days). The
/// expiry clock is a wrapping 32-bit millisecond counter; timeouts stay far
/// below its half range (24.8 days).
pub const MAX_TIMEOUT_S: u32 = 1_000_000;

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            established: 900,
            syn_sent: 120,
            syn_recv: 60,
            fin_wait: 120,
            time_wait: 120,
            close: 10,
            close_wait: 60,
            last_ack: 30,
            listen: 120,
            synack: 120,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// Timeout of a TCP `state`, seconds (unclamped).
    pub fn tcp(&self, state: TcpState) -> u32 {
        match state {
            TcpState::None => NONE_TIMEOUT_S,
            TcpState::Established => self.established,
            TcpState::SynSent => self.syn_sent,
            TcpState::SynRecv => self.syn_recv,
            TcpState::FinWait => self.fin_wait,
            TcpState::TimeWait => self.time_wait,
            TcpState::Close => self.close,
            TcpState::CloseWait => self.close_wait,
            TcpState::LastAck => self.last_ack,
            TcpState::Listen => self.listen,
            TcpState::SynAck => self.synack,
        }
    }

    /// Per-state timeouts in milliseconds (clamped): what the table keeps.
    pub(crate) fn to_ms(self) -> TimeoutsMs {
        let ms = |s: u32| s.min(MAX_TIMEOUT_S) * 1000;
        let mut tcp = [0u32; TCP_STATES];
        for st in TcpState::ALL {
            tcp[st as usize] = ms(self.tcp(st));
        }
        TimeoutsMs {
            tcp,
            udp: ms(self.udp),
        }
    }
}

/// Timeouts as the hot path wants them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeoutsMs {
    pub(crate) tcp: [u32; TCP_STATES],
    pub(crate) udp: u32,
}

impl TimeoutsMs {
    #[inline]
    pub(crate) fn of(&self, proto: u8, state: TcpState) -> u32 {
        if proto == PROTO_TCP {
            self.tcp[state as usize]
        } else {
            self.udp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-load table (`BY_FLAGS`) against the rule it folds in, for
    /// every flag byte, table and state: the row of the highest-priority
    /// flag (RST, SYN, FIN, ACK), CLOSE when none of the four is set.
    #[test]
    fn next_state_by_flags_matches_rows_for_every_flag_byte() {
        for (ti, table) in [Table::Input, Table::Output, Table::InputOnly]
            .into_iter()
            .enumerate()
        {
            for from in TcpState::ALL {
                for flags in 0..=255u8 {
                    let want = match flag_row(flags) {
                        Some(row) => NEXT[ti][row][from as usize],
                        None => TcpState::Close,
                    };
                    assert_eq!(
                        next_state(table, from, flags),
                        want,
                        "{table:?} {from} {flags:#x}"
                    );
                }
            }
        }
    }

    /// `from_u8` as a match: every IPVS number to its state, nothing else.
    #[test]
    fn from_u8_every_byte() {
        for v in 0..=255u8 {
            let want = TcpState::ALL.get(usize::from(v)).copied();
            assert_eq!(TcpState::from_u8(v), want, "{v}");
        }
        for s in TcpState::ALL {
            assert_eq!(tcp_active(s), is_active(PROTO_TCP, s));
            assert!(!is_active(17, s));
        }
    }
}
