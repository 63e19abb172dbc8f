//! The bodies of the fuzz targets (issue 24, point 6): `fuzz/` runs each under cargo-fuzz, and
//! `tests/fuzz_corpus.rs` runs each over its seeds and a few thousand pseudo-random and mutated
//! inputs in every `cargo test`. A body hands arbitrary bytes to one decoder (a client's
//! request, a DPUT context, a stored sibling set and the types in it, a DUMP payload, a peer's
//! frames and handshake, the gossip state, the config file) and panics when the decoder panics
//! or what it decoded breaks an invariant: it encodes again to what decodes to itself, a
//! parser takes no more than it was given and the same whatever pieces it is given in, a
//! stranger never passes the handshake. What a node does with a decoded value next (resolve a
//! set, count a HyperLogLog, route a key on a ring) is done too: a value that decodes must not
//! make it panic either. Nothing here is used by the server.

use std::future::Future;
use std::net::SocketAddr;
use std::task::{Poll, Waker};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cluster::View;
use crate::config::{Config, ServerArgs};
use crate::membership::{ClusterState, Member, Status};
use crate::peer::{PeerRequest, PeerResponse, Request, Response};
use crate::rdb::{self, Object};
use crate::resp::{Limits, Parser};
use crate::rpc::{frame, handshake, Envelope, Identity};
use crate::version::{
    Actor, Context, ContextError, ContextKey, Counter, Cursor, Dot, Elem, Field, Group, Hll, OrHash, OrList, OrSet,
    Sibling, SiblingSet, Stream, StreamId, Value, VersionVector, ZSet,
};

/// A target's body: it panics on what it finds.
pub type Body = fn(&[u8]);

/// Every target: its name (its file in `fuzz/fuzz_targets/`, its seeds in `fuzz/seeds/`) and
/// its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("resp_request", resp_request),
    ("resp_inline", resp_inline),
    ("context", context),
    ("sibling_set", sibling_set),
    ("stored_parts", stored_parts),
    ("hll_redis", hll_redis),
    ("rdb_restore", rdb_restore),
    ("peer_frame", peer_frame),
    ("handshake", handshake),
    ("cluster_state", cluster_state),
    ("config", config),
];

/// A time for reads of decoded sets (ms since the Unix epoch, in 2023).
const NOW: u64 = 1_700_000_000_000;

/// RESP requests (arrays and inline commands, pipelined). The first byte chooses whether the
/// client authenticated and the limits (the default ones, or small ones that a few KiB of
/// input reach), the second the size of the pieces the rest arrives in. The requests are the
/// same, and the same bytes are left over, whether the input comes whole or in pieces; each
/// request encoded as an array parses back to itself; the bytes looked at stay linear in the
/// bytes received.
pub fn resp_request(data: &[u8]) {
    let [control, piece, input @ ..] = data else { return };
    let authenticated = control & 1 == 1;
    let limits = if control & 2 == 0 {
        Limits::default()
    } else {
        let n = usize::from(control >> 2);
        Limits { max_request_bytes: 16 + 32 * n, max_args: 1 + n / 4, max_inline_bytes: 8 + 16 * n }
    };
    let whole = parse_requests(input, input.len().max(1), limits, authenticated);
    let pieces = parse_requests(input, usize::from(*piece) + 1, limits, authenticated);
    assert_eq!(whole, pieces, "the same requests whether they arrive whole or in pieces");
    for request in whole.map(|(requests, _)| requests).unwrap_or_default() {
        let mut array = format!("*{}\r\n", request.len()).into_bytes();
        for arg in &request {
            array.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            array.extend_from_slice(arg);
            array.extend_from_slice(b"\r\n");
        }
        let again = parse_requests(&array, array.len(), Limits::default(), true);
        assert_eq!(again, Ok((vec![request], BytesMut::new())), "a request encoded as an array parses back to itself");
    }
}

type Requests = Result<(Vec<Vec<Bytes>>, BytesMut), crate::resp::ProtocolError>;

/// The requests one parser takes off `input` arriving `piece` bytes at a time, and the bytes
/// left over.
fn parse_requests(input: &[u8], piece: usize, limits: Limits, authenticated: bool) -> Requests {
    let mut parser = Parser::new(limits);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            let Some(request) = parser.next_command(&mut buf, authenticated)? else { break };
            assert!(buf.len() < before, "a request takes bytes off the buffer");
            assert!(!request.is_empty(), "empty requests are skipped");
            requests.push(request);
        }
    }
    // A header is looked at again (at most 32 bytes of it) each time more of it arrives.
    assert!(parser.scanned() <= 64 * input.len() as u64 + 64, "{} bytes scanned for {}", parser.scanned(), input.len());
    Ok((requests, buf))
}

/// One inline command (the input as one line). The line is one command, and its arguments
/// written back in double quotes with every byte escaped give the same arguments; a line
/// without quotes splits on whitespace.
pub fn resp_inline(data: &[u8]) {
    let mut line = vec![b' ']; // never taken for an array
    line.extend(data.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    line.extend_from_slice(b"\r\n");
    let Ok(args) = parse_line(&line) else { return };
    if !data.contains(&b'"') && !data.contains(&b'\'') {
        let split: Vec<&[u8]> =
            line.split(|b| b.is_ascii_whitespace() || *b == b'\n').filter(|w| !w.is_empty()).collect();
        assert_eq!(args, split, "a line without quotes splits on whitespace");
    }
    if args.is_empty() {
        return;
    }
    let mut quoted = Vec::new();
    for arg in &args {
        quoted.push(b'"');
        for b in arg {
            quoted.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
        quoted.extend_from_slice(b"\" ");
    }
    quoted.extend_from_slice(b"\r\n");
    assert_eq!(parse_line(&quoted), Ok(args), "quoted back, the arguments are the same");
}

/// The arguments of the one command `line` holds (none for a blank line).
fn parse_line(line: &[u8]) -> Result<Vec<Bytes>, crate::resp::ProtocolError> {
    let mut buf = BytesMut::from(line);
    let args = Parser::new(Limits::default()).next_command(&mut buf, false)?;
    assert!(buf.is_empty(), "one line is one command");
    Ok(args.unwrap_or_default())
}

/// DGET/DPUT contexts: the input as a client's context, and as the body of one this cluster
/// signed (so that the version vector's decoding behind the checksum is reached). A context
/// that decodes is a normalised vector (sorted by actor, no zeros) that encodes to a context
/// decoding to itself.
pub fn context(data: &[u8]) {
    let key = ContextKey::derive(b"fuzz");
    if let Ok(vv) = Context::decode(data, &key) {
        check_context(&vv, &key);
    }
    let mut raw = vec![1]; // the format byte
    raw.extend_from_slice(data);
    let tag = key.tag(&raw);
    raw.extend_from_slice(&tag);
    match Context::decode(URL_SAFE_NO_PAD.encode(&raw).as_bytes(), &key) {
        Ok(vv) => {
            check_context(&vv, &key);
            let claimed: VersionVector = postcard::from_bytes(data).expect("what decoded is a version vector");
            assert_eq!(vv, VersionVector::from_entries(claimed.entries().to_vec()));
        }
        Err(e) => assert!(matches!(e, ContextError::Malformed | ContextError::TooLong), "{e}"),
    }
}

fn check_context(vv: &VersionVector, key: &ContextKey) {
    let entries = vv.entries();
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "sorted by actor, once each");
    assert!(entries.iter().all(|&(_, n)| n > 0), "no zeros");
    assert_eq!(Context::decode(Context::encode(vv, key).as_bytes(), key).as_ref(), Ok(vv));
}

/// A stored sibling set (any of its formats) and every type a sibling holds: a set that
/// decodes encodes to one that decodes to itself, comes apart into a header and member
/// records and back as storage keeps it, and reads, merges and takes a write without panics.
pub fn sibling_set(data: &[u8]) {
    if let Ok(set) = SiblingSet::decode(data) {
        exercise_set(&set);
    }
}

/// What storage and a node do with a decoded set.
fn exercise_set(set: &SiblingSet) {
    let again = SiblingSet::decode(&set.encode()).expect("an encoded set decodes");
    assert_eq!(&again, set, "a set encodes to itself");
    if let Some(collection) = set.collection() {
        let records = collection.records().unwrap_or_default();
        let parts = set.without_members().with_members(records.iter().map(|(m, r)| (m.clone(), &r[..])));
        assert_eq!(parts.as_ref(), Ok(set), "a set stored in parts reads back as itself");
    }
    for now in [0, NOW, u64::MAX] {
        let _ = (set.resolve(now), set.is_dead(now));
    }
    // GET (a HyperLogLog's is its 12 KiB encoding: once).
    let _ = (set.get(NOW), set.live_values(NOW));
    let _ = (set.context(), set.counter(), set.observed_set(), set.holds_counter(), set.winner(), set.len());
    let _ = (set.flushed(0), set.flushed(NOW), set.flushed(u64::MAX));
    let _ = set.resets_for(None, NOW, Actor(7));
    assert_eq!(&set.sync(&SiblingSet::new()), set, "merging nothing changes nothing");
    let _ = set.sync(set);
    let _ = set.less(set);
    let sibling = Sibling {
        value: Some(Value::Bytes(Bytes::from_static(b"v"))),
        written_ms: NOW,
        origin: Actor(7),
        expires_ms: None,
        resets: Vec::new(),
        flush_seen: None,
    };
    let _ = set.update(&set.context(), sibling.clone());
    let _ = set.update(&VersionVector::default(), sibling);
    for (_, sibling) in set.dotted() {
        sibling.value.iter().chain(&sibling.resets).for_each(exercise_value);
    }
}

/// What commands do with a value of each type.
fn exercise_value(value: &Value) {
    let _ = (value.kind(), value.type_name(), value.exists(), value.size(), value.size_hint());
    let _ = (value.header(), value.cleared(), value.has_member(b"a"));
    if let Some(records) = value.records() {
        let rebuilt = value.cleared().map(|v| v.with_records(records.iter().map(|(m, r)| (m.clone(), &r[..]))));
        if let Some(rebuilt) = rebuilt {
            assert!(rebuilt.is_ok(), "a value's own records decode");
        }
    }
    match value {
        Value::Bytes(_) => {}
        Value::Counter(c) => {
            let _ = (c.value(), c.exists(), c.join(c), c.can_add(1), c.size());
            let mut c = c.clone();
            if c.can_add(-1) {
                c.add(Dot { actor: Actor(7), counter: 1 }, -1);
            }
        }
        Value::Hll(h) => exercise_hll(h),
        Value::Set(s) => exercise_map(s),
        Value::Hash(h) => {
            exercise_map(h);
            h.iter().for_each(|(_, f)| drop((f.bytes(), f.counter(), f.text_stamp())));
        }
        Value::List(l) => {
            exercise_map(l);
            let (first, last) = (l.members().next(), l.members().next_back());
            let _ = crate::version::positions(last.map(|b| &b[..]), None, 2, Dot { actor: Actor(7), counter: 1 });
            let _ = crate::version::positions(None, first.map(|b| &b[..]), 2, Dot { actor: Actor(7), counter: 2 });
            let _ = crate::version::positions(
                first.map(|b| &b[..]),
                last.map(|b| &b[..]),
                1,
                Dot { actor: Actor(7), counter: 3 },
            );
        }
        Value::ZSet(z) => {
            let _ = (z.join(z), z.len(), z.size(), z.by_score().count(), z.by_score_rev().next());
            let _ = (z.at_rank(z.len() / 2), z.from_rank(1).next(), z.down_from_rank(1).next());
            let _ = (z.count_below(0.0, true), z.from_score(f64::NEG_INFINITY).count(), z.down_from_score(1.0).next());
            for (_, member) in z.by_score().take(4) {
                let _ = (z.rank(member), z.score(member));
            }
        }
        Value::Stream(s) => {
            let _ = (s.join(s), s.len(), s.size(), s.last_id(), s.entries_added(), s.first(), s.last());
            let _ = s.range(StreamId::default(), StreamId { ms: u64::MAX, seq: u64::MAX }, false).count();
            let _ = s.range(StreamId::default(), StreamId { ms: u64::MAX, seq: u64::MAX }, true).next();
            for (_, group) in s.groups() {
                let _ = group.pending_of(None).count();
            }
        }
    }
}

fn exercise_map<V: crate::version::Join + Serialize + DeserializeOwned>(map: &crate::version::OrMap<V>) {
    let _ = (map.join(map), map.len(), map.iter().count(), map.iter().next_back(), map.clock());
    if let Some(member) = map.members().next() {
        let _ = (map.get(member), map.dots_of(member).count(), map.contains(member));
    }
}

/// PFCOUNT of a stored HyperLogLog (its encodings are `hll_redis`'s; each walks every one of
/// the 16,384 registers, which is most of what a fuzzer spends on a set holding one).
fn exercise_hll(h: &Hll) {
    let _ = (h.count(), h.size());
}

/// A key stored in parts: its header (a sibling set) and member records, and a patch of one
/// version into the next (a header and changed records, as a peer sends it). The input is
/// pieces, each after its length (2 bytes, little-endian): the header, a base version, then
/// member and record pairs (an empty record is a removal in the patch).
pub fn stored_parts(data: &[u8]) {
    let pieces = length_prefixed(data);
    let [header, base, records @ ..] = &pieces[..] else { return };
    let Ok(header) = SiblingSet::decode(header) else { return };
    let records: Vec<(Bytes, &[u8])> = records.chunks_exact(2).map(|p| (Bytes::copy_from_slice(p[0]), p[1])).collect();
    if let Ok(set) = header.clone().with_members(records.iter().cloned()) {
        exercise_set(&set);
    }
    let Ok(base) = SiblingSet::decode(base) else { return };
    let changes = records.iter().map(|(m, r)| (m.clone(), (!r.is_empty()).then_some(*r)));
    if let Ok(Some(set)) = base.patched(&header, changes) {
        exercise_set(&set);
    }
}

/// Pieces of `data`, each after its length (2 bytes, little-endian); the last one may be short.
fn length_prefixed(mut data: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    while let [lo, hi, rest @ ..] = data {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
        pieces.push(&rest[..len]);
        data = &rest[len..];
    }
    pieces
}

/// Redis's encodings of a HyperLogLog (what SET can store and PFADD, PFCOUNT, PFMERGE then
/// read): one that reads encodes (dense) to what reads as the same registers. A dense one
/// shorter than its 12,304 bytes is padded with zero registers (so that inputs of a few KiB
/// reach its decoding).
pub fn hll_redis(data: &[u8]) {
    let mut input = data.to_vec();
    if input.len() >= 16 && input.starts_with(b"HYLL") && input[4] == 0 {
        input.resize(input.len().max(16 + 12288), 0);
    }
    let Some(mut h) = Hll::from_redis(&input) else { return };
    let dense = h.to_redis();
    if input[4] == 0 {
        assert_eq!(dense[16..], input[16..], "the same registers");
    } else {
        assert_eq!(Hll::from_redis(&dense).as_ref(), Some(&h), "the same registers");
    }
    let _ = h.count();
    h.add(b"fuzz");
}

/// RESTORE and FUNCTION RESTORE payloads. The first byte chooses which, and whether the rest
/// is a whole payload or its body (the version and CRC are then added, so that the object's
/// decoding is reached). An object that restores dumps to a payload that restores to it.
pub fn rdb_restore(data: &[u8]) {
    const BUDGET: usize = 1 << 20;
    let Some((&control, body)) = data.split_first() else { return };
    let payload = if control & 1 == 0 { body.to_vec() } else { with_footer(body) };
    if control & 2 == 0 {
        let Ok(object) = rdb::restore(&payload, BUDGET) else { return };
        let dumped = rdb::dump(&object, &rdb::Encodings::default());
        let again = rdb::restore(&dumped, usize::MAX).expect("a dumped object restores");
        assert_eq!(sorted(again), sorted(object), "an object dumps to itself");
    } else {
        let Ok(codes) = rdb::restore_functions(&payload, BUDGET) else { return };
        let dumped = rdb::dump_functions(codes.iter().map(|c| &c[..]));
        assert_eq!(rdb::restore_functions(&dumped, usize::MAX), Ok(codes), "libraries dump to themselves");
    }
}

/// `body` with DUMP's footer: the RDB version and the CRC.
fn with_footer(body: &[u8]) -> Vec<u8> {
    let mut payload = body.to_vec();
    payload.extend_from_slice(&rdb::VERSION.to_le_bytes());
    let crc = crc::Crc::<u64>::new(&crc::CRC_64_REDIS).checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    payload
}

/// An object with its members in one order (DUMP writes sets of integers as intsets, in
/// numeric order, and sorted sets by score).
fn sorted(object: Object) -> Object {
    match object {
        Object::Set(mut m) => {
            m.sort();
            Object::Set(m)
        }
        Object::Hash(mut m) => {
            m.sort();
            Object::Hash(m)
        }
        Object::ZSet(mut m) => {
            m.sort_by(|a, b| a.0.cmp(&b.0));
            Object::ZSet(m)
        }
        other => other,
    }
}

/// Peer frames: messages (requests, or responses when the first byte is odd) one after another
/// as a connection reads them, in frames of at most a size the first byte chooses. A message
/// that decodes encodes to frames that decode to a message encoding the same; the sibling sets
/// and cluster states it carries are used as a node uses them.
pub fn peer_frame(data: &[u8]) {
    let Some((&control, mut input)) = data.split_first() else { return };
    let limit = 16 + 64 * usize::from(control >> 1);
    while !input.is_empty() {
        let carried = if control & 1 == 0 {
            let Some(env) = peer_message::<PeerRequest>(&mut input, limit) else { return };
            request_carries(env.body.body)
        } else {
            let Some(env) = peer_message::<PeerResponse>(&mut input, limit) else { return };
            response_carries(env.body.body)
        };
        carried.0.iter().for_each(exercise_set);
        carried.1.iter().for_each(exercise_state);
    }
}

/// The sibling sets and the cluster state a request carries (a batch's parts' included).
fn request_carries(req: Request) -> (Vec<SiblingSet>, Option<ClusterState>) {
    match req {
        Request::Gossip(state) => (vec![], Some(*state)),
        Request::Replicate { set, .. } => (vec![set], None),
        Request::TransferBatch { entries, .. } | Request::AaePush { entries } => {
            (entries.into_iter().map(|(_, s)| s).collect(), None)
        }
        Request::Patch { patch, .. } => (vec![patch.header], None),
        Request::Batch(parts) => (parts.into_iter().flat_map(|p| request_carries(p).0).collect(), None),
        _ => (vec![], None),
    }
}

/// The sibling sets and the cluster state a response carries (a batch's parts' included).
fn response_carries(resp: Response) -> (Vec<SiblingSet>, Option<ClusterState>) {
    match resp {
        Response::State(state) => (vec![], Some(*state)),
        Response::Value(set) => (set.into_iter().collect(), None),
        Response::Written(set) => (vec![set], None),
        Response::Sets(sets) => (sets.into_iter().filter_map(|(_, s)| s).collect(), None),
        Response::Batch(parts) => (parts.into_iter().flat_map(|p| response_carries(p).0).collect(), None),
        _ => (vec![], None),
    }
}

/// The next message off `input`, checked to encode to itself.
fn peer_message<T: Serialize + DeserializeOwned>(input: &mut &[u8], limit: usize) -> Option<Envelope<T>> {
    let env: Envelope<T> = ready(frame::read_limited(input, limit, 4 * limit)).ok()?;
    let bytes = frame::encode_limited(&env, limit).expect("a decoded message encodes");
    let again: Envelope<T> =
        ready(frame::read_limited(&mut &bytes[..], limit, usize::MAX)).expect("an encoded message decodes");
    assert_eq!(frame::encode_limited(&again, limit).ok(), Some(bytes), "a message encodes to itself");
    Some(env)
}

/// The output of a future that never waits (reads from memory).
fn ready<F: Future>(future: F) -> F::Output {
    match std::pin::pin!(future).poll(&mut std::task::Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("reading from memory never waits"),
    }
}

/// The handshake, both sides, with the input as what the other side says: a stranger (who
/// does not hold the cluster secret) never passes it.
pub fn handshake(data: &[u8]) {
    let me = Identity::new("fuzz-node", "fuzz-cluster", Some("secret"));
    let server = ready(handshake::server(&mut tokio::io::join(data, tokio::io::sink()), &me));
    assert!(server.is_err(), "a stranger passed the server's handshake as {server:?}");
    let client = ready(handshake::client(&mut tokio::io::join(data, tokio::io::sink()), &me));
    assert!(client.is_err(), "a stranger passed the client's handshake as {client:?}");
}

/// The cluster state, as saved (any of its formats) and as gossip carries it. A state that
/// decodes encodes to itself, merging it into itself changes nothing, and a node can take it
/// as its view: route keys with its ring and run the claimant's step.
pub fn cluster_state(data: &[u8]) {
    if let Ok(state) = ClusterState::decode(data) {
        exercise_state(&state);
    }
    if let Ok(state) = postcard::from_bytes::<ClusterState>(data) {
        exercise_state(&state);
    }
}

fn exercise_state(state: &ClusterState) {
    let bytes = state.encode();
    assert_eq!(ClusterState::decode(&bytes).as_ref(), Ok(state), "a state encodes to itself");
    let untagged = postcard::to_stdvec(state).expect("a state encodes");
    assert_eq!(ClusterState::decode(&untagged).as_ref(), Ok(state), "an untagged state (before 0.1.0) decodes");
    assert!(!state.clone().merge(state), "merging a state into itself changes nothing");
    let mut ours = seed_state();
    ours.context_seed = state.context_seed;
    ours.merge(state);
    // Rings of up to 64 partitions: walks and claims take time quadratic in the ring's size
    // (each partition's walk visits the ring), which a fuzzer's thousands of partitions
    // spend its time on.
    for s in [state, &ours].into_iter().filter(|s| s.ring.size() <= 64) {
        let view = View::new(Some(s.clone()), 3);
        for key in [&b"a"[..], b"key", b"{tag}x"] {
            let _ = (view.preference_list(key), view.walk(key));
        }
        let _ = (s.claimant(), s.placeable(), s.pending_transfers(3), s.cluster_id());
        let _ = s.next(3, &|_| true);
        let _ = s.transfer_source(0, 3, &|_| true);
    }
}

/// The config file: one that resolves is a valid configuration.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = toml::from_str::<ServerArgs>(text) else { return };
    let Ok(config) = Config::resolve_over(ServerArgs::default(), file) else { return };
    assert!(config.r <= config.n && config.w <= config.n && config.partitions.is_power_of_two());
}

/// Seeds of target `name`: valid inputs made with kura's own encoders (`fuzz/seeds/` holds
/// them as files, `tests/fuzz_corpus.rs` writes them there).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "resp_request" => [
            &b"\x01\x00*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..],
            b"\x00\x02*1\r\n$4\r\nAUTH\r\n*0\r\n*-1\r\nECHO 'a b' \"c\\x41\\n\"\r\n\r\n",
            b"\x1b\x04*2\r\n$3\r\nGET\r\n$20\r\naaaaaaaaaaaaaaaaaaaa\r\nSET k v\r\n",
            b"\x00\x07*11\r\n$16385\r\n",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect(),
        "resp_inline" => vec![b"SET k \"a b\\x41\\n\\\"\" 'c\\'d' e".to_vec(), b"  PING  ".to_vec()],
        "context" => {
            let vv = VersionVector::from_entries(vec![(Actor(1), 3), (Actor(u64::MAX), 1)]);
            let mut body = postcard::to_stdvec(&vv).expect("encodes");
            body.push(0);
            vec![Context::encode(&vv, &ContextKey::derive(b"fuzz")).into_bytes(), body]
        }
        "sibling_set" => sample_sets().iter().map(SiblingSet::encode).collect(),
        "stored_parts" => sample_sets()
            .iter()
            .filter(|s| s.collection().is_some())
            .map(|set| {
                let records = set.collection().and_then(Value::records).unwrap_or_default();
                let mut pieces = vec![set.without_members().encode(), SiblingSet::new().encode()];
                for (member, record) in records {
                    pieces.push(member.to_vec());
                    pieces.push(record);
                }
                let mut out = Vec::new();
                for piece in pieces {
                    out.extend_from_slice(&(piece.len() as u16).to_le_bytes());
                    out.extend_from_slice(&piece);
                }
                out
            })
            .collect(),
        "hll_redis" => {
            let mut h = Hll::default();
            h.add(b"a");
            h.add(b"b");
            // Redis's sparse encoding: XZERO 16384 registers, and one with a VAL opcode.
            let mut sparse = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
            sparse.extend_from_slice(&[0x7f, 0xff]);
            let mut one = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
            one.extend_from_slice(&[0x00, 0x84, 0x7f, 0xfc]);
            let mut dense = h.to_redis();
            dense.truncate(64); // padded back by the body
            vec![dense, sparse, one]
        }
        "rdb_restore" => {
            let objects = [
                Object::String(Bytes::from_static(b"hello")),
                Object::String(Bytes::from(vec![b'a'; 200])),
                Object::String(Bytes::from_static(b"12345")),
                Object::List((0..5).map(|i| Bytes::from(format!("e{i}"))).collect()),
                Object::Set(vec![Bytes::from_static(b"1"), Bytes::from_static(b"20")]),
                Object::Set(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]),
                Object::Hash(vec![(Bytes::from_static(b"f"), Bytes::from_static(b"v"))]),
                Object::ZSet(vec![(Bytes::from_static(b"m"), 1.5), (Bytes::from_static(b"n"), -2.0)]),
            ];
            let mut out: Vec<Vec<u8>> = objects
                .iter()
                .map(|o| {
                    let payload = rdb::dump(o, &rdb::Encodings::default());
                    let mut seed = vec![1];
                    seed.extend_from_slice(&payload[..payload.len() - 10]);
                    seed
                })
                .collect();
            let functions = rdb::dump_functions([&b"#!lua name=lib\nredis.register_function('f', function() end)"[..]]);
            out.push([&[3][..], &functions[..functions.len() - 10]].concat());
            out.push([&[2][..], &functions[..]].concat());
            out
        }
        "peer_frame" => {
            let sets = sample_sets();
            let request = |body| {
                let req = PeerRequest { ring_version: 3, cluster: 9, sender: addr(7379), deadline_ms: NOW, body };
                frame::encode_limited(&Envelope { id: 1, body: req }, 1 << 20).expect("encodes")
            };
            let response = |body| {
                let resp = PeerResponse { ring_version: 3, cluster: 9, body };
                frame::encode_limited(&Envelope { id: 2, body: resp }, 1 << 20).expect("encodes")
            };
            let mut requests = vec![0xfe];
            requests.extend(request(Request::Ping));
            requests.extend(request(Request::Read { key: Bytes::from_static(b"k") }));
            requests.extend(request(Request::Replicate {
                key: Bytes::from_static(b"k"),
                set: sets[1].clone(),
                hint_for: Some("n2".into()),
            }));
            requests.extend(request(Request::Gossip(Box::new(seed_state()))));
            requests.extend(request(Request::Batch(vec![
                Request::Replicate { key: Bytes::from_static(b"a"), set: sets[2].clone(), hint_for: None },
                Request::Read { key: Bytes::from_static(b"b") },
            ])));
            let mut responses = vec![0xff];
            responses.extend(response(Response::Pong));
            responses.extend(response(Response::Value(Some(sets[2].clone()))));
            responses.extend(response(Response::State(Box::new(seed_state()))));
            responses.extend(response(Response::Batch(vec![
                Response::Ack,
                Response::Value(Some(sets[1].clone())),
                Response::Same,
            ])));
            // A message in frames of 16 bytes.
            let mut split = vec![0x00];
            split.extend(
                frame::encode_limited(
                    &Envelope { id: 3, body: PeerRequest {
                        ring_version: 1,
                        cluster: 0,
                        sender: addr(7379),
                        deadline_ms: 0,
                        body: Request::AaeFetch { keys: vec![Bytes::from_static(b"a key"), Bytes::from_static(b"b")] },
                    } },
                    16,
                )
                .expect("encodes"),
            );
            vec![requests, responses, split]
        }
        "handshake" => {
            // What a client says first (its Hello), then a proof; what a server answers.
            let me = Identity::new("fuzz-node", "fuzz-cluster", Some("secret"));
            let mut hello = Vec::new();
            let _ = ready(handshake::client(&mut tokio::io::join(&b""[..], &mut hello), &me));
            let mut welcome = Vec::new();
            let _ = ready(handshake::server(&mut tokio::io::join(&hello[..], &mut welcome), &me));
            let mut proof = hello.clone();
            proof.extend_from_slice(&[0, 0, 0, 33, 2]);
            proof.extend_from_slice(&[0x5a; 32]);
            vec![hello, proof, welcome]
        }
        "cluster_state" => {
            let mut moving = seed_state();
            moving.upsert(member("n2", 2, Status::Joining));
            moving.upsert(member("n3", 3, Status::Leaving));
            let next = moving.next(3, &|_| true).unwrap_or_else(|| moving.clone());
            let mut flushed = next.clone();
            flushed.flushes.mark(Some(2), NOW);
            flushed.flushes.mark(None, NOW + 1);
            // As saved since 0.1.0 (tagged with its format) and as gossip carries it (untagged).
            let states = [seed_state(), next, flushed];
            let tagged = states.iter().map(ClusterState::encode);
            tagged.chain(states.iter().map(|s| postcard::to_stdvec(s).expect("encodes"))).collect()
        }
        "config" => vec![b"listen = \"127.0.0.1:6380\"\nn = 3\nr = 2\nw = 2\npartitions = 64\nseed = [\"127.0.0.1:7380\"]\nfsync = \"always\"\nclient-output-buffer-limit = \"normal 0 0 0 pubsub 32mb 8mb 60\"\nzone = \"a\"\n".to_vec()],
        _ => Vec::new(),
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn member(id: &str, n: u16, status: Status) -> Member {
    Member {
        id: id.into(),
        addr: addr(7378 + n),
        client: addr(6378 + n),
        zone: n.is_multiple_of(2).then(|| "z".to_string()),
        status,
        version: 1,
        holds_hints: false,
    }
}

/// A one-node cluster of 8 partitions.
fn seed_state() -> ClusterState {
    let mut state = ClusterState::found(member("n1", 1, Status::Valid), 8);
    state.context_seed = [7; 32];
    state
}

/// A set of each kind of value, and of siblings.
fn sample_sets() -> Vec<SiblingSet> {
    let dot = |counter| Dot { actor: Actor(5), counter };
    let stamp = (NOW, Actor(5), 1);
    let bytes = |s: &'static str| Bytes::from_static(s.as_bytes());
    let mut counter = Counter::default();
    counter.add(dot(1), 5);
    counter.add(dot(2), -2);
    let mut hll = Hll::default();
    hll.add(b"x");
    let mut stream = Stream::default();
    stream.add(StreamId { ms: 1, seq: 0 }, vec![bytes("f"), bytes("v")], dot(1));
    stream.put_group(
        bytes("g"),
        dot(2),
        Group::new(Cursor { stamp, last_id: StreamId { ms: 1, seq: 0 }, entries_read: Some(1) }),
    );
    let list_positions = crate::version::positions(None, None, 2, dot(1)).unwrap_or_default();
    let values = [
        Value::Bytes(bytes("v")),
        Value::Counter(counter),
        Value::Hll(hll),
        Value::Set(OrSet::from_members([(bytes("a"), ()), (bytes("b"), ())], dot(1))),
        Value::Hash(OrHash::from_members([(bytes("f"), Field::text(stamp, bytes("v")))], dot(1))),
        Value::List(OrList::from_members(
            list_positions.into_iter().map(|p| (p, Elem { stamp, value: bytes("e") })),
            dot(1),
        )),
        Value::ZSet(ZSet::from_members([(bytes("m"), 1.5), (bytes("n"), -1.0)], dot(1), stamp)),
        Value::Stream(stream),
    ];
    let sibling = |value: Option<Value>, origin| Sibling {
        value,
        written_ms: NOW,
        origin: Actor(origin),
        expires_ms: (origin == 2).then_some(NOW + 1000),
        resets: Vec::new(),
        flush_seen: Some(NOW - 1),
    };
    let none = VersionVector::default();
    let mut sets: Vec<SiblingSet> =
        values.into_iter().map(|v| SiblingSet::new().update(&none, sibling(Some(v), 1)).0).collect();
    // Siblings: two concurrent writes and a tombstone.
    let (two, _) = sets[0].update(&none, sibling(Some(Value::Bytes(bytes("w"))), 2));
    let (three, _) = two.update(&none, sibling(None, 3));
    sets.push(three);
    sets
}
