#![no_main]
//! Fuzzes RESP requests, arrays and inline, pipelined and in pieces: `kura::fuzzing::resp_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::resp_request(data));
