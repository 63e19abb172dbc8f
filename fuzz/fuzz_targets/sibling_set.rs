#![no_main]
//! Fuzzes a stored sibling set and the values of every type in it: `kura::fuzzing::sibling_set`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::sibling_set(data));
