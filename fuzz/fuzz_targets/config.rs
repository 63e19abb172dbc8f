#![no_main]
//! Fuzzes the config file: `kura::fuzzing::config`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::config(data));
