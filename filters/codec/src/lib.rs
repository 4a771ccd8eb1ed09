//! Sans-IO, zero-copy codecs for the protocols Meltemi manages: Dubbo 2, Thrift, TARS, Kafka,
//! ZooKeeper, Redis (RESP2/RESP3), MySQL/MariaDB and PostgreSQL v3.
//!
//! Every codec has the same decode shape: given `&[u8]`, it returns either a borrowed view of
//! exactly one frame plus the number of bytes that frame used ([`Decoded::Frame`]), or
//! [`Decoded::NeedMore`] with the total frame length when the length prefix is already known
//! (Kafka, Dubbo, TARS, ZooKeeper, framed Thrift) or a lower bound otherwise (RESP, unframed Thrift).
//! A caller waits until it holds that many bytes before calling again, so a frame is never
//! re-parsed from zero for every arriving byte.
//!
//! What this crate deliberately does not do: I/O, buffering, allocation on the decode path,
//! or decoding bodies that routing, policy and metrics do not need. Bodies are skipped by
//! length and the original bytes are forwarded untouched by the caller.
//!
//! Trade-off: the parsers are hand-written over a tiny bounds-checked cursor ([`wire`]) rather
//! than `nom`, because every frame header is a handful of fixed-width fields and the benchmark
//! targets (10M small frames/s/core) leave no room for combinator overhead.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(missing_docs))]

pub mod wire;

pub mod dubbo;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod sql;
pub mod tars;
pub mod thrift;
pub mod zookeeper;

/// How much more input a decoder needs before it can make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The frame's total length is known: call again once at least this many bytes are held.
    Exact(usize),
    /// The frame's length is not known yet: at least this many bytes in total are needed.
    AtLeast(usize),
}

impl Need {
    /// The number of bytes (counted from the start of the frame) to wait for. Never zero.
    #[inline]
    pub fn bytes(self) -> usize {
        match self {
            Need::Exact(n) | Need::AtLeast(n) => n,
        }
    }
}

/// The outcome of one decode call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<F> {
    /// One whole frame; `used` bytes of the input belong to it.
    Frame {
        /// The borrowed view of the frame.
        frame: F,
        /// How many bytes of the input the frame occupies.
        used: usize,
    },
    /// Not enough input yet.
    NeedMore(Need),
}

impl<F> Decoded<F> {
    /// The frame, if one was decoded.
    pub fn frame(self) -> Option<(F, usize)> {
        match self {
            Decoded::Frame { frame, used } => Some((frame, used)),
            Decoded::NeedMore(_) => None,
        }
    }
}

/// A whole-frame decode from a head decode: a frame longer than `held` bytes needs them all.
#[inline]
pub(crate) fn whole<F>(d: Decoded<F>, held: usize) -> Decoded<F> {
    match d {
        Decoded::Frame { used, .. } if used > held => Decoded::NeedMore(Need::Exact(used)),
        d => d,
    }
}

/// Size limits shared by every codec. Checked before anything waits, allocates or recurses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, in bytes (header included).
    pub max_frame: usize,
    /// Deepest nesting accepted (RESP aggregates, Thrift structs, Hessian2 containers).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 64 * 1024 * 1024,
            max_depth: 32,
        }
    }
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    Request,
    /// Server to client.
    Response,
}
