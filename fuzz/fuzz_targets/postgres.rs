#![no_main]
//! PostgreSQL codec fuzz target (the shared body and its invariants: `sql_common.rs`).
use libfuzzer_sys::fuzz_target;
use meltemi_codec::postgres::{decode_message as decode_packet, Connection};
use meltemi_codec::{Decoded, Limits};

include!("sql_common.rs");
