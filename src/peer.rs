//! What peers say to each other: the requests and responses that travel over `rpc/`, each
//! stamped with the sender's ring version so that a node with an older ring learns of the
//! newer one from the next message it exchanges (the version-check routing of DynamoDB's
//! request routers, seeds/003). `node.rs` answers them.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::{ClusterState, Member};
use crate::resp::Reply;
use crate::rmw::{Outcome, Rmw, RmwError};
use crate::rpc::RpcError;
use crate::storage::Patch;
use crate::version::{SiblingSet, VersionVector};
pub use crate::version::{Write, WriteContext};

/// Every message names the cluster its sender belongs to (`ClusterState::cluster_id`, 0 while
/// the sender has none): a node answers a node of another cluster only with a refusal, and
/// takes nothing from it (Cassandra refuses gossip across cluster names, Riak across ring
/// names). Only `Join` crosses clusters: it is how a node moves into another one.
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerRequest {
    pub ring_version: u64,
    pub cluster: u64,
    /// The sender's cluster address (for the refusal's log and INFO).
    pub sender: SocketAddr,
    /// When the sender gives up on it (wall clock, ms since the Unix epoch; 0: never). A
    /// message that carries state (a replica's copy, a patch, a transfer batch, an AAE push)
    /// and arrives after it is refused unapplied ([`Request::expires`]).
    pub deadline_ms: u64,
    pub body: Request,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PeerResponse {
    pub ring_version: u64,
    pub cluster: u64,
    pub body: Response,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Heartbeat.
    Ping,
    /// A gossip round: here is my view; answer with yours after merging mine.
    Gossip(Box<ClusterState>),
    /// A new node asks to be added to the cluster.
    Join(Member),
    /// This node's stored sibling set of a key.
    Read { key: Bytes },
    /// As `Read`, but answer `Same` when your copy holds nothing the reader's does not: its
    /// digest is `digest` (the same version), or the reader has `seen` every event your copy
    /// has (an older version: merging it would change nothing). A read-modify-write's decider
    /// reads a large set it holds itself without moving it. `flushed_to` is the reader's
    /// flush cutoff for the key: a copy a later flush has dropped values from is never `Same`
    /// (its clock still covers them, so the reader would keep them and write over them).
    /// With `exact` (a plain read, which repairs the replicas that differ) only the same
    /// version is `Same`.
    ReadUnlessSame { key: Bytes, digest: u64, seen: VersionVector, flushed_to: u64, exact: bool },
    /// A write of a set or a hash as a patch of the version before it: apply it when your
    /// copy is that version (`Ack`), else answer `Stale` and get the whole set.
    Patch { key: Bytes, patch: Patch },
    /// Merge this sibling set into your copy (replication of a write, read repair, hinted
    /// handoff); with `hint_for`, keep it as a hint for that owner (you are its stand-in).
    Replicate { key: Bytes, set: SiblingSet, hint_for: Option<String> },
    /// Coordinate this write: you are in the key's preference list, I am not. Answer by
    /// `deadline_ms` (wall clock, ms since the Unix epoch: when the client's request gives up);
    /// a request that arrives later (held up by a partition, then retransmitted) is refused
    /// unapplied, since its sender already answered without it.
    Put { key: Bytes, context: WriteContext, write: Write, w: Option<usize>, deadline_ms: u64 },
    /// Run this read-modify-write: you are the key's first owner that is up, I am not an
    /// owner. Never re-sent elsewhere: it may have been applied. `deadline_ms` as for `Put`.
    /// `from_script`: a script's call (it does not wait for the keys another script holds
    /// there: scripts never wait for each other once they run, so they cannot deadlock).
    Modify { key: Bytes, op: Rmw, deadline_ms: u64, from_script: bool },
    /// Run this script (EVAL, EVALSHA, FCALL and their `_RO` forms: the client's request as
    /// sent, its database `db`): you are the deciding owner of its first key. Answered with
    /// its reply (`Script`) whenever it ends; never re-sent elsewhere once sent.
    Script { db: u32, args: Vec<Bytes> },
    /// Run this transaction (EXEC of `requests`, or one command Redis runs atomically over
    /// several keys: MSET, RENAME ...) in database `db`, replies in RESP3's shapes if `resp3`:
    /// you are the deciding owner of its first key. Abort it (a nil reply) if a `watched` key's
    /// version is not the one given. Answered (`Script`) with EXEC's reply; never re-sent
    /// elsewhere once sent.
    Transaction { db: u32, resp3: bool, watched: Vec<(Bytes, u64)>, requests: Vec<Vec<Bytes>> },
    /// SCRIPT KILL (`functions` false) or FUNCTION KILL sent to the node a script was
    /// forwarded to; answered with the reply the command gives there (`Script`).
    ScriptKill { functions: bool },
    /// A batch of a partition's data during a transfer: merge each set (never overwrite).
    TransferBatch { partition: u32, entries: Vec<(Bytes, SiblingSet)> },
    /// To the claimant: the transfer of `partition` to `to` finished.
    TransferDone { partition: u32, to: String },
    /// Anti-entropy: the root of partition `partition` of a ring of `q`.
    AaeRoot { partition: u32, q: u32 },
    /// Anti-entropy: the inner hashes of a partition's tree.
    AaeInner { partition: u32, q: u32 },
    /// Anti-entropy: the leaves under inner node `group`.
    AaeGroup { partition: u32, q: u32, group: u32 },
    /// Anti-entropy: the keys and digests of one leaf.
    AaeKeys { leaf: u32 },
    /// Anti-entropy: these keys' sets.
    AaeFetch { keys: Vec<Bytes> },
    /// Anti-entropy: merge these sets.
    AaePush { entries: Vec<(Bytes, SiblingSet)> },
    /// Live keys of this node's data with ring prefix in `from..=to` (SCAN, KEYS, DBSIZE).
    Keys { from: u64, to: u64, limit: u32 },
    /// Drop this key if its set still has `digest`: every replica holds the same tombstones.
    Reap { key: Bytes, digest: u64 },
    /// A client of mine is blocked on these keys: tell me (`Touched`) of the next write of
    /// each that you store (once; I ask again to hear of the one after).
    Watch { keys: Vec<Bytes> },
    /// A key you watched was written here: wake your clients blocked on it.
    Touched { key: Bytes },
    /// Pub/sub: deliver these messages to your subscribers, in this order, and answer how many
    /// received each (`Delivered`). `stream` names the sending process and `seq` numbers its
    /// batches to you: a batch not newer than the last one you took from that stream is a
    /// duplicate or a straggler and is dropped, so a message is delivered at most once and
    /// never after one published later.
    Publish { stream: u64, seq: u64, messages: Vec<Published> },
    /// Pub/sub: what your subscribers are (PUBSUB CHANNELS, NUMSUB, NUMPAT and the shard forms).
    PubsubQuery(PubsubQuery),
    /// Protocol 15: several requests to this node at once, each one of those
    /// [`Request::batchable`] says (replication and quorum reads of the keys of a pipeline,
    /// or of several connections' requests made in the same moment), answered by
    /// `Response::Batch` in the same order after one journal flush for all of them.
    Batch(Vec<Request>),
}

/// A message published through a node (PUBLISH, or SPUBLISH when `sharded`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub channel: Bytes,
    pub message: Bytes,
    pub sharded: bool,
}

/// A question about one node's subscriptions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PubsubQuery {
    /// The channels (or shard channels) with a subscriber, those matching `pattern` if given.
    Channels { pattern: Option<Bytes>, sharded: bool },
    /// The subscribers of each channel (or shard channel).
    NumSub { channels: Vec<Bytes>, sharded: bool },
    /// The patterns with a subscriber.
    Patterns,
}

/// A node's answer to a [`PubsubQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PubsubAnswer {
    Names(Vec<Bytes>),
    Counts(Vec<u64>),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Pong,
    State(Box<ClusterState>),
    Value(Option<SiblingSet>),
    /// The copy read is the version the reader has (`ReadUnlessSame`).
    Same,
    /// The patch's base is not the version held here (`Patch`).
    Stale,
    Ack,
    Written(SiblingSet),
    /// A read-modify-write's outcome.
    Modified(Outcome),
    /// Keys with their ring prefixes, and where to go on from (`None`: the range is done).
    Keys {
        keys: Vec<(u64, Bytes)>,
        next: Option<u64>,
    },
    Hashes(Vec<u64>),
    Leaves(Vec<(u32, u64)>),
    Digests(Vec<(Bytes, u64)>),
    Sets(Vec<(Bytes, Option<SiblingSet>)>),
    /// How many subscribers received each message of a `Publish`.
    Delivered(Vec<u32>),
    /// A script's reply, to relay to its client (`Script`, `ScriptKill`).
    Script(WireReply),
    Pubsub(PubsubAnswer),
    Error(RemoteError),
    /// The answers to a `Request::Batch`, in its order.
    Batch(Vec<Response>),
}

/// A failure the remote node reports (rather than a failure to reach it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    #[error("{op} needed {needed} replicas, {got} answered")]
    NoQuorum { op: String, needed: usize, got: usize },
    #[error("the node has not joined its cluster yet")]
    NotReady,
    /// The sender's ring is older than this node's, which does not replicate the key.
    #[error("stale ring: this node does not replicate the key any more")]
    StaleRing,
    /// A read-modify-write's own error (nothing was written).
    #[error(transparent)]
    Rmw(#[from] RmwError),
    /// A read-modify-write waited for its key, held by a script, until its deadline (nothing
    /// was written).
    #[error("the key is held by a running script")]
    Busy,
    /// A forwarded write that arrived after its deadline: not applied.
    #[error("the request arrived after its deadline")]
    Expired,
    /// The sender belongs to another cluster than this node (`PeerRequest::cluster`).
    #[error("this node belongs to another cluster ({ours:016x})")]
    OtherCluster { ours: u64 },
    #[error("{0}")]
    Failed(String),
    /// A write refused unapplied: this node's disk is in trouble (`storage/health.rs`). The
    /// sender treats the node as failed for it (a stand-in, the next owner, the next decider).
    #[error("the node's disk refuses writes: {0}")]
    DiskRefused(String),
    /// A write refused for the siblings it would leave (`replica::WriteError::Siblings`).
    #[error("too many siblings ({kept} of at most {max})")]
    TooManySiblings { kept: usize, max: usize },
}

/// A reply as it travels between nodes (a script run at another node than its client's):
/// `resp::Reply` without what only a connection makes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum WireReply {
    Status(Bytes),
    Bool(bool),
    Error(String),
    RawError(Bytes),
    Int(i64),
    Bulk(Bytes),
    Nil,
    NilArray,
    Array(Vec<WireReply>),
    Map(Vec<(WireReply, WireReply)>),
    Set(Vec<WireReply>),
    Pairs(Vec<(WireReply, WireReply)>),
    Text(String),
    Double(f64),
    DoubleText(Bytes),
    Push(Vec<WireReply>),
    Seq(Vec<WireReply>),
}

/// How deep a [`WireReply`] a node decodes: a script's reply nests at most 1,000 deep
/// (`script::convert`), a transaction's a few more. Decoding recurses: a deeper one from a
/// peer is refused, not allowed to run the reading task off its stack.
const MAX_REPLY_DEPTH: usize = 1100;

thread_local! {
    /// The depth of the [`WireReply`] being decoded on this thread.
    static REPLY_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<'de> Deserialize<'de> for WireReply {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<WireReply, D::Error> {
        let depth = REPLY_DEPTH.get();
        if depth >= MAX_REPLY_DEPTH {
            return Err(serde::de::Error::custom("a reply nested too deeply"));
        }
        REPLY_DEPTH.set(depth + 1);
        let reply = WireReplyForm::deserialize(d);
        REPLY_DEPTH.set(depth);
        Ok(match reply? {
            WireReplyForm::Status(s) => WireReply::Status(s),
            WireReplyForm::Bool(b) => WireReply::Bool(b),
            WireReplyForm::Error(e) => WireReply::Error(e),
            WireReplyForm::RawError(e) => WireReply::RawError(e),
            WireReplyForm::Int(i) => WireReply::Int(i),
            WireReplyForm::Bulk(b) => WireReply::Bulk(b),
            WireReplyForm::Nil => WireReply::Nil,
            WireReplyForm::NilArray => WireReply::NilArray,
            WireReplyForm::Array(items) => WireReply::Array(items),
            WireReplyForm::Map(items) => WireReply::Map(items),
            WireReplyForm::Set(items) => WireReply::Set(items),
            WireReplyForm::Pairs(items) => WireReply::Pairs(items),
            WireReplyForm::Text(t) => WireReply::Text(t),
            WireReplyForm::Double(d) => WireReply::Double(d),
            WireReplyForm::DoubleText(t) => WireReply::DoubleText(t),
            WireReplyForm::Push(items) => WireReply::Push(items),
            WireReplyForm::Seq(items) => WireReply::Seq(items),
        })
    }
}

/// [`WireReply`]'s encoding, decoded one level at a time (its items are `WireReply`s again,
/// so every level counts toward [`MAX_REPLY_DEPTH`]).
#[derive(Deserialize)]
enum WireReplyForm {
    Status(Bytes),
    Bool(bool),
    Error(String),
    RawError(Bytes),
    Int(i64),
    Bulk(Bytes),
    Nil,
    NilArray,
    Array(Vec<WireReply>),
    Map(Vec<(WireReply, WireReply)>),
    Set(Vec<WireReply>),
    Pairs(Vec<(WireReply, WireReply)>),
    Text(String),
    Double(f64),
    DoubleText(Bytes),
    Push(Vec<WireReply>),
    Seq(Vec<WireReply>),
}

impl From<&Reply> for WireReply {
    fn from(r: &Reply) -> WireReply {
        let all = |items: &[Reply]| items.iter().map(WireReply::from).collect();
        let pairs = |items: &[(Reply, Reply)]| items.iter().map(|(k, v)| (k.into(), v.into())).collect();
        match r {
            Reply::Simple(s) => WireReply::Status(Bytes::from_static(s.as_bytes())),
            Reply::Status(s) => WireReply::Status(s.clone()),
            Reply::Bool(b) => WireReply::Bool(*b),
            Reply::Error(e) => WireReply::Error(e.clone()),
            Reply::RawError(e) => WireReply::RawError(e.clone()),
            Reply::Int(i) => WireReply::Int(*i),
            Reply::Bulk(b) => WireReply::Bulk(b.clone()),
            Reply::Nil | Reply::Nothing => WireReply::Nil,
            Reply::NilArray => WireReply::NilArray,
            Reply::Array(items) => WireReply::Array(all(items)),
            Reply::Map(items) => WireReply::Map(pairs(items)),
            Reply::Set(items) => WireReply::Set(all(items)),
            Reply::Pairs(items) => WireReply::Pairs(pairs(items)),
            Reply::Text(t) => WireReply::Text(t.clone()),
            Reply::Double(d) => WireReply::Double(*d),
            Reply::DoubleText(t) => WireReply::DoubleText(t.clone()),
            Reply::Push(items) => WireReply::Push(all(items)),
            Reply::Seq(items) => WireReply::Seq(all(items)),
        }
    }
}

impl From<WireReply> for Reply {
    fn from(r: WireReply) -> Reply {
        let all = |items: Vec<WireReply>| items.into_iter().map(Reply::from).collect();
        let pairs = |items: Vec<(WireReply, WireReply)>| items.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        match r {
            WireReply::Status(s) => Reply::Status(s),
            WireReply::Bool(b) => Reply::Bool(b),
            WireReply::Error(e) => Reply::Error(e),
            WireReply::RawError(e) => Reply::RawError(e),
            WireReply::Int(i) => Reply::Int(i),
            WireReply::Bulk(b) => Reply::Bulk(b),
            WireReply::Nil => Reply::Nil,
            WireReply::NilArray => Reply::NilArray,
            WireReply::Array(items) => Reply::Array(all(items)),
            WireReply::Map(items) => Reply::Map(pairs(items)),
            WireReply::Set(items) => Reply::Set(all(items)),
            WireReply::Pairs(items) => Reply::Pairs(pairs(items)),
            WireReply::Text(t) => Reply::Text(t),
            WireReply::Double(d) => Reply::Double(d),
            WireReply::DoubleText(t) => Reply::DoubleText(t),
            WireReply::Push(items) => Reply::Push(all(items)),
            WireReply::Seq(items) => Reply::Seq(all(items)),
        }
    }
}

impl Request {
    /// Whether this request is refused when it arrives after its sender gave up on it: those
    /// that carry a copy of a key. A late one is a copy from the past, and its sender counted
    /// it as failed: applied after the key's tombstone was reaped everywhere, it would bring
    /// the deleted value back (TCP delivers what a partition held up once it heals, seconds
    /// later). `Put` and `Modify` carry the client's own deadline.
    pub fn expires(&self) -> bool {
        match self {
            Request::Batch(requests) => requests.iter().any(Request::expires),
            r => matches!(
                r,
                Request::Replicate { .. }
                    | Request::Patch { .. }
                    | Request::TransferBatch { .. }
                    | Request::AaePush { .. }
            ),
        }
    }

    /// Whether this request may travel in a `Batch`: one answered at once, without waiting
    /// for anything but the journal flush the batch ends with (a replica's copy of a key, a
    /// quorum read's). A patch may wait for its base, a forwarded write for its replicas:
    /// those go alone, so that no request in a batch waits behind another.
    pub fn batchable(&self) -> bool {
        matches!(self, Request::Replicate { .. } | Request::Read { .. } | Request::ReadUnlessSame { .. })
    }
}

/// The first protocol version with `Request::Batch`.
pub const BATCH_PROTOCOL: u16 = 15;

impl crate::rpc::Message for PeerRequest {
    fn protocol(&self) -> u16 {
        match self.body {
            Request::Batch(_) => BATCH_PROTOCOL,
            _ => 0,
        }
    }
}

/// The wall-clock deadline to send with a forwarded request whose sender gives up at `deadline`.
pub fn deadline_ms(deadline: tokio::time::Instant) -> u64 {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    crate::clock::now_ms().saturating_add(left.as_millis() as u64)
}

/// What is left until a forwarded request's `deadline_ms`; `None` once it has passed.
pub fn budget_until(deadline_ms: u64) -> Option<std::time::Duration> {
    let left = deadline_ms.saturating_sub(crate::clock::now_ms());
    (left > 0).then(|| std::time::Duration::from_millis(left))
}

pub type PeerClient = crate::rpc::Client<PeerRequest, PeerResponse>;

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// How this node's messages reach the node at an address: TCP connections ([`PeerClient`]) in
/// a real node, a simulated network in `sim.rs` (delays, losses, partitions, crashes).
pub trait Transport: Send + Sync + 'static {
    /// Sends `req` to `addr` (to node `to` there, when known: another node there is refused)
    /// and waits at most `timeout` for the response.
    fn call<'a>(
        &'a self,
        addr: SocketAddr,
        to: Option<&'a str>,
        req: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<PeerResponse, RpcError>>;
}

impl Transport for PeerClient {
    fn call<'a>(
        &'a self,
        addr: SocketAddr,
        to: Option<&'a str>,
        req: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<PeerResponse, RpcError>> {
        Box::pin(async move { crate::rpc::Client::call_to(self, addr, to, &req, timeout).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding of `depth` arrays of one item each around a nil.
    fn nested(depth: usize) -> Vec<u8> {
        let mut bytes = [8, 1].repeat(depth);
        bytes.push(6);
        bytes
    }

    /// Found with the fuzz target `peer_frame` in mind (`fuzz/`; its inputs of a few KiB do
    /// not nest deeply enough): a script's reply from a peer nested a million deep decoded
    /// recursively and overflowed the reading task's stack, which aborts the node. A reply
    /// deeper than any script or transaction makes is refused.
    #[test]
    fn a_reply_nested_too_deeply_is_refused() {
        let two = WireReply::Array(vec![WireReply::Array(vec![WireReply::Nil])]);
        assert_eq!(nested(2), postcard::to_stdvec(&two).unwrap());
        // On a thread with a runtime worker's stack (2 MiB; more for a build without
        // optimizations, whose frames are larger).
        let stack = if cfg!(debug_assertions) { 16 << 20 } else { 2 << 20 };
        let decode = |depth| postcard::from_bytes::<WireReply>(&nested(depth)).map(|_| ());
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                assert_eq!(decode(MAX_REPLY_DEPTH - 1), Ok(()));
                assert!(decode(MAX_REPLY_DEPTH).is_err());
                assert!(decode(1_000_000).is_err());
                assert_eq!(decode(3), Ok(()), "the depth is counted again from the top");
            })
            .expect("a thread")
            .join()
            .expect("no overflow");
    }
}
