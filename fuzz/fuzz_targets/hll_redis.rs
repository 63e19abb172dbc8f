#![no_main]
//! Fuzzes Redis's encodings of a HyperLogLog (SET, then PFADD/PFCOUNT): `kura::fuzzing::hll_redis`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::hll_redis(data));
