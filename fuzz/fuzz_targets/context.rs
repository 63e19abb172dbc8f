#![no_main]
//! Fuzzes DGET/DPUT contexts, and the version vector behind their checksum: `kura::fuzzing::context`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::context(data));
