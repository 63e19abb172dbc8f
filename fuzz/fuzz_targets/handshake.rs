#![no_main]
//! Fuzzes the peer handshake, both sides: `kura::fuzzing::handshake`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::handshake(data));
