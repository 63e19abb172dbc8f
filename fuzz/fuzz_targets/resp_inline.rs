#![no_main]
//! Fuzzes one inline command and its quoting: `kura::fuzzing::resp_inline`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::resp_inline(data));
