#![no_main]
//! Fuzzes a key stored in parts (header and member records) and patches: `kura::fuzzing::stored_parts`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::stored_parts(data));
