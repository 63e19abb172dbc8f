#![no_main]
//! Fuzzes RESTORE and FUNCTION RESTORE payloads: `kura::fuzzing::rdb_restore`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::rdb_restore(data));
