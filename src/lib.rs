//! kura: a Dynamo-style, always-writable key-value store with a Redis face.
//!
//! Layers, bottom up (see `docs/architecture.md`):
//! - [`version`]: clocks, sibling sets, contexts (pure);
//! - [`storage`]: fjall keyspaces for data, hints and ring state;
//! - [`replica`]: this node's copy of the data, the one owner of its writes and actors;
//!   [`admission`]: the foreground's latency and the gate of background work on it (pure
//!   decisions, paper 6.5);
//! - [`ring`]: partitions, ownership and preference lists (pure);
//! - [`rpc`]: peer connections, framing, handshake; [`peer`]: what peers say (the messages);
//! - [`membership`]: members and ring as gossip carries them, the claimant's steps (pure);
//! - [`cluster`]: gossip, failure detection, bootstrap, ring changes;
//! - [`coordinator`]: get/put at N/R/W over the preference list (local writes via [`replica`]);
//! - [`handoff`]: delivery of hinted copies to their owners, partition transfers;
//! - [`antientropy`]: Merkle trees per partition and the exchanges that repair replicas;
//! - [`script`]: Lua scripting (the sandbox, the libraries, reply conversions);
//! - [`pubsub`]: this node's subscriptions and the fan-out of messages to the other nodes;
//!   [`notify`]: keyspace notifications to this node's subscribers;
//! - [`command`]: one file per Redis command ([`geohash`]: the GEO commands' math, [`glob`]:
//!   Redis's patterns, both pure; [`rdb`]: DUMP and RESTORE's serialization, pure);
//! - [`resp`] and [`server`]: connections and RESP2/RESP3 framing;
//! - [`metrics`]: Prometheus names and the exporter.

pub mod admission;
pub mod antientropy;
pub mod clients;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod config;
pub mod coordinator;
pub mod flushes;
pub mod fuzzing;
pub mod geohash;
pub mod glob;
pub mod handoff;
pub mod histogram;
pub mod keyspace;
pub mod longdouble;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod peer;
pub mod pubsub;
pub mod random;
pub mod rdb;
pub mod replica;
pub mod resp;
pub mod ring;
pub mod rmw;
pub mod rounds;
pub mod rpc;
pub mod scale;
pub mod script;
pub mod server;
#[cfg(test)]
mod sim;
pub mod slowlog;
pub mod storage;
pub mod tls;
pub mod version;
pub mod wakeups;
