#![no_main]
//! Fuzzes peer frames and the messages in them: `kura::fuzzing::peer_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::peer_frame(data));
