//! Untrusted store rows: whatever bytes a damaged or crafted database file holds (with a valid
//! checksum, so that they reach the parsers), each row decoder either refuses them or returns
//! a value that encodes and decodes back to itself. Never a panic: a panic at load would stop
//! the engine from opening, or cross into Python.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u64, Vec<u8>)| {
    let (kind, key, body) = input;
    sessionward_core::fuzzing::decode_row(kind, key, &body);
});
