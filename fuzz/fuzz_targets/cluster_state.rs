#![no_main]
//! Fuzzes the cluster state, as saved and as gossip carries it: `kura::fuzzing::cluster_state`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kura::fuzzing::cluster_state(data));
