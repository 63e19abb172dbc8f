//! Every test on real processes, in one binary: `cargo test --profile ci --test suite <module>::`
//! runs one file of them. One binary links once, where one binary per file linked 27 times
//! (most of a CI build). `tests/<name>.rs` is the module `<name>`, `compat/<name>.rs` is
//! `compat_<name>`.

mod harness;

mod always_writable;
mod antientropy;
mod blocking;
mod cluster;
#[path = "../compat/apps.rs"]
mod compat_apps;
#[path = "../compat/redis_benchmark.rs"]
mod compat_redis_benchmark;
#[path = "../compat/redis_cli.rs"]
mod compat_redis_cli;
#[path = "../compat/redis_client.rs"]
mod compat_redis_client;
mod convergent;
mod differential;
mod disk_trouble;
mod dump_restore;
mod elastic;
mod fuzz_corpus;
mod hostile_requests;
mod identity_and_transfers;
mod nemesis;
mod no_lost_writes;
mod one_hop;
mod partition_window;
mod pubsub;
mod redis_surface;
mod scans_and_expiry;
mod scripting;
mod single_node;
mod streams;
mod tls;
mod upgrade;
