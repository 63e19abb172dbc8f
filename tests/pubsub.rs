//! Pub/sub on real processes (docs/pubsub.md): a subscriber and a publisher on separate
//! connections answered byte for byte as redis-server 7 answers them, in RESP2 and RESP3; a
//! 3-node cluster where every node's subscribers (channel and pattern, RESP2 and RESP3) get
//! each of 1,000 messages published through one node exactly once and in order, with
//! PUBLISH counting the receivers of every node; and a subscriber that never reads, which
//! neither stops the publisher nor the other subscribers, and is closed at the pubsub output
//! buffer limit.

use crate::harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use harness::{metric, resp_cmd, wait_until, Cluster, Node, RedisServer};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A reply as it came off the wire (RESP2 or RESP3), parsed enough to compare and read.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Line(u8, String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    /// `*`, `>`, `~` and `%` (a map's keys and values in a row), by their type byte.
    Agg(u8, Vec<V>),
    Null,
}

impl V {
    /// A bulk string's text (panics on anything else).
    fn text(&self) -> String {
        match self {
            V::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }
}

struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connecting");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
        Conn { r: BufReader::new(s) }
    }

    fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.r.get_mut().write_all(&resp_cmd(&args)).expect("sending");
    }

    /// The next reply and its bytes.
    fn frame(&mut self) -> (V, Vec<u8>) {
        let mut raw = Vec::new();
        let v = parse(&mut self.r, &mut raw);
        (v, raw)
    }

    fn next(&mut self) -> V {
        self.frame().0
    }

    fn call(&mut self, args: &[&str]) -> V {
        self.send(args);
        self.next()
    }
}

fn parse(r: &mut BufReader<TcpStream>, raw: &mut Vec<u8>) -> V {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("a reply line");
    assert!(line.ends_with(b"\r\n"), "a reply line ends with CRLF: {:?}", String::from_utf8_lossy(&line));
    raw.extend_from_slice(&line);
    line.truncate(line.len() - 2);
    let (kind, rest) = (line[0], String::from_utf8_lossy(&line[1..]).into_owned());
    let n = || rest.parse::<i64>().expect("a length");
    match kind {
        b':' => V::Int(n()),
        b'_' => V::Null,
        b'$' if n() < 0 => V::Bulk(None),
        b'$' | b'=' => {
            let mut buf = vec![0; n() as usize + 2];
            r.read_exact(&mut buf).expect("a bulk body");
            raw.extend_from_slice(&buf);
            buf.truncate(buf.len() - 2);
            if kind == b'=' {
                buf.drain(..4.min(buf.len())); // a verbatim string's `txt:`
            }
            V::Bulk(Some(buf))
        }
        b'*' if n() < 0 => V::Null,
        b'*' | b'>' | b'~' => V::Agg(kind, (0..n()).map(|_| parse(r, raw)).collect()),
        b'%' => V::Agg(kind, (0..2 * n()).map(|_| parse(r, raw)).collect()),
        _ => V::Line(kind, rest),
    }
}

/// One step of a scripted exchange: who sends what (nothing: only read), how many replies
/// follow, and whether their bytes are compared (HELLO's name the server).
struct Step<'a> {
    conn: usize,
    args: &'a [&'a str],
    replies: usize,
    compare: bool,
}

fn step<'a>(conn: usize, args: &'a [&'a str], replies: usize) -> Step<'a> {
    Step { conn, args, replies, compare: true }
}

/// Runs `steps` on two connections (0: the subscriber, 1: the publisher) to each server
/// and compares every reply's bytes.
fn same_exchange(redis: SocketAddr, kura: SocketAddr, steps: &[Step]) {
    let mut servers: Vec<[Conn; 2]> = [redis, kura].iter().map(|&a| [Conn::open(a), Conn::open(a)]).collect();
    for (i, s) in steps.iter().enumerate() {
        let mut got: Vec<Vec<u8>> = Vec::new();
        for conns in &mut servers {
            let c = &mut conns[s.conn];
            if !s.args.is_empty() {
                c.send(s.args);
            }
            got.push((0..s.replies).flat_map(|_| c.frame().1).collect());
        }
        if s.compare {
            assert_eq!(
                String::from_utf8_lossy(&got[1]),
                String::from_utf8_lossy(&got[0]),
                "step {i}: {:?} on connection {} (kura, then redis)",
                s.args,
                s.conn
            );
        }
    }
}

/// A subscriber and a publisher on separate connections, byte for byte as redis-server 7:
/// confirmations and their counts, PUBSUB's answers, `message`, `pmessage` and `smessage` in
/// the order Redis writes them, PING and other commands on the subscribed connection (an
/// error in RESP2, run in RESP3), unsubscribing by name and all at once. Then a subscriber
/// that disconnects is unsubscribed.
#[test]
fn a_subscriber_and_a_publisher_are_answered_as_redis_answers_them() {
    let redis = RedisServer::start();
    let node = Node::start(LOCAL, &[]);
    let redis_addr = SocketAddr::from((LOCAL, redis.port));
    for hello in ["2", "3"] {
        let script = [
            Step { conn: 0, args: &["HELLO", hello], replies: 1, compare: false },
            step(0, &["SUBSCRIBE", "news", "events"], 2),
            step(0, &["PSUBSCRIBE", "n*"], 1),
            step(0, &["SSUBSCRIBE", "orders"], 1),
            step(1, &["PUBSUB", "NUMSUB", "news", "events", "none"], 1),
            step(1, &["PUBSUB", "NUMPAT"], 1),
            step(1, &["PUBSUB", "SHARDNUMSUB", "orders", "news"], 1),
            step(1, &["PUBSUB", "CHANNELS", "n*"], 1),
            step(1, &["PUBSUB", "SHARDCHANNELS"], 1),
            step(1, &["PUBLISH", "news", "hello"], 1),
            step(0, &[], 2),
            step(1, &["PUBLISH", "events", "e1"], 1),
            step(0, &[], 1),
            step(1, &["SPUBLISH", "orders", "o1"], 1),
            step(0, &[], 1),
            step(1, &["PUBLISH", "nothing", "x"], 1),
            step(0, &[], 1),
            step(1, &["PUBLISH", "zzz", "x"], 1),
            step(0, &["PING"], 1),
            step(0, &["PING", "are you there"], 1),
            step(0, &["GET", "k"], 1),
            step(0, &["UNSUBSCRIBE", "news", "never"], 2),
            step(1, &["PUBLISH", "news", "bye"], 1),
            step(0, &[], 1),
            step(0, &["UNSUBSCRIBE"], 1),
            step(0, &["PUNSUBSCRIBE"], 1),
            step(0, &["SUNSUBSCRIBE"], 1),
            step(0, &["UNSUBSCRIBE"], 1),
            step(0, &["PING"], 1),
            step(1, &["PUBSUB", "NUMSUB", "news", "events"], 1),
            step(1, &["PUBSUB", "NUMPAT"], 1),
            step(1, &["PUBLISH", "news", "nobody"], 1),
        ];
        same_exchange(redis_addr, node.addr(), &script);
    }
    // A subscriber that goes away is unsubscribed.
    let mut sub = Conn::open(node.addr());
    assert_eq!(sub.call(&["SUBSCRIBE", "gone"]), V::Agg(b'*', vec![bulk("subscribe"), bulk("gone"), V::Int(1)]));
    let mut other = Conn::open(node.addr());
    assert_eq!(other.call(&["PUBSUB", "NUMSUB", "gone"]), V::Agg(b'*', vec![bulk("gone"), V::Int(1)]));
    drop(sub);
    wait_until("a closed subscriber to be unsubscribed", Duration::from_secs(10), || {
        (other.call(&["PUBSUB", "NUMSUB", "gone"]) == V::Agg(b'*', vec![bulk("gone"), V::Int(0)])).then_some(())
    });
    assert_eq!(other.call(&["PUBLISH", "gone", "x"]), V::Int(0));

    // CLIENT LIST and INFO show a connection's subscriptions (`sub`, `psub`, `ssub`, flag P),
    // TYPE pubsub picks subscribed connections, and CLIENT KILL TYPE pubsub closes them.
    let mut sub = Conn::open(node.addr());
    assert!(matches!(sub.call(&["HELLO", "3"]), V::Agg(b'%', _)));
    sub.send(&["SUBSCRIBE", "c1"]);
    sub.send(&["PSUBSCRIBE", "p1", "p2"]);
    sub.send(&["SSUBSCRIBE", "s1"]);
    for _ in 0..4 {
        assert!(matches!(sub.next(), V::Agg(b'>', _)));
    }
    let info = sub.call(&["CLIENT", "INFO"]).text();
    assert!(info.contains(" flags=P ") && info.contains(" sub=1 psub=2 ssub=1 "), "{info}");
    let list = other.call(&["CLIENT", "LIST", "TYPE", "pubsub"]).text();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(" sub=1 psub=2 ssub=1 "), "{list}");
    assert_eq!(other.call(&["CLIENT", "LIST", "TYPE", "normal"]).text().lines().count(), 1, "the asking one");
    assert_eq!(other.call(&["CLIENT", "KILL", "TYPE", "pubsub"]), V::Int(1));
    let mut rest = Vec::new();
    assert!(sub.r.read_to_end(&mut rest).is_ok(), "the killed subscriber's connection ends");
    wait_until("the killed subscriber to be unsubscribed", Duration::from_secs(10), || {
        (other.call(&["PUBSUB", "NUMPAT"]) == V::Int(0)).then_some(())
    });
}

fn bulk(s: &str) -> V {
    V::Bulk(Some(s.as_bytes().to_vec()))
}

/// A subscriber's next message: (kind, pattern, channel, payload); any reply other than a
/// message push fails the test.
fn message(c: &mut Conn) -> (String, Option<String>, String, String) {
    match c.next() {
        V::Agg(b'*' | b'>', items) if items.len() == 3 => (items[0].text(), None, items[1].text(), items[2].text()),
        V::Agg(b'*' | b'>', items) if items.len() == 4 => {
            (items[0].text(), Some(items[1].text()), items[2].text(), items[3].text())
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Issue 22, item 3: subscribers on every node of a 3-node cluster (SUBSCRIBE in RESP2 and
/// RESP3, PSUBSCRIBE) get every one of 1,000 messages published through one node (half one by
/// one, half in one pipeline) exactly once and in publish order; each PUBLISH counts the
/// subscribers of every node (every peer answers within the count's deadline here); PUBSUB's
/// answers cover the cluster through any node.
#[test]
fn every_nodes_subscribers_get_each_message_once_in_order() {
    // A generous count deadline: the counts are exact whenever every peer answers in time.
    let cluster = Cluster::start(3, &["--request-timeout-ms", "6000", "--sloppy-after-ms", "4000"]);
    let mut subs: Vec<(String, Conn)> = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut channel = Conn::open(node.addr());
        let resp3 = i == 1;
        if resp3 {
            assert!(matches!(channel.call(&["HELLO", "3"]), V::Agg(b'%', _)));
        }
        let kind = if resp3 { b'>' } else { b'*' };
        assert_eq!(
            channel.call(&["SUBSCRIBE", "news"]),
            V::Agg(kind, vec![bulk("subscribe"), bulk("news"), V::Int(1)])
        );
        subs.push((format!("channel subscriber on node {}", i + 1), channel));
        let mut pattern = Conn::open(node.addr());
        assert_eq!(
            pattern.call(&["PSUBSCRIBE", "n*s"]),
            V::Agg(b'*', vec![bulk("psubscribe"), bulk("n*s"), V::Int(1)])
        );
        subs.push((format!("pattern subscriber on node {}", i + 1), pattern));
    }
    for node in &cluster.nodes {
        let mut c = Conn::open(node.addr());
        assert_eq!(c.call(&["PUBSUB", "NUMSUB", "news"]), V::Agg(b'*', vec![bulk("news"), V::Int(3)]));
        assert_eq!(c.call(&["PUBSUB", "NUMPAT"]), V::Int(1));
        assert_eq!(c.call(&["PUBSUB", "CHANNELS"]), V::Agg(b'*', vec![bulk("news")]));
    }
    let mut publisher = Conn::open(cluster.nodes[0].addr());
    const N: usize = 1000;
    let mut counts = Vec::with_capacity(N);
    for i in 0..N / 2 {
        counts.push(publisher.call(&["PUBLISH", "news", &i.to_string()]));
    }
    let mut pipeline = Vec::new();
    for i in N / 2..N {
        pipeline.extend(resp_cmd(&[b"PUBLISH", b"news", i.to_string().as_bytes()]));
    }
    publisher.r.get_mut().write_all(&pipeline).expect("sending the pipeline");
    counts.extend((N / 2..N).map(|_| publisher.next()));
    let wrong: Vec<(usize, &V)> = counts.iter().enumerate().filter(|(_, c)| **c != V::Int(6)).collect();
    assert!(wrong.is_empty(), "PUBLISH counts 6 receivers (3 nodes x 2): {wrong:?}");
    for (who, sub) in &mut subs {
        for i in 0..N {
            let (kind, pattern, channel, payload) = message(sub);
            assert_eq!(channel, "news", "{who}");
            if pattern.is_some() {
                assert_eq!((kind.as_str(), pattern.as_deref()), ("pmessage", Some("n*s")), "{who}");
            } else {
                assert_eq!(kind, "message", "{who}");
            }
            assert_eq!(payload, i.to_string(), "{who}: message {i} in publish order, once");
        }
        // Nothing more is queued before PING's answer: no message came twice.
        sub.send(&["PING"]);
        match sub.next() {
            V::Agg(b'*', items) => assert_eq!(items, vec![bulk("pong"), bulk("")], "{who}"),
            V::Line(b'+', pong) => assert_eq!(pong, "PONG", "{who}"),
            other => panic!("{who}: expected PING's answer, got {other:?}"),
        }
    }
    // Subscribers that leave are gone from every node's answers.
    drop(subs);
    let mut c = Conn::open(cluster.nodes[2].addr());
    wait_until("closed subscribers to be unsubscribed everywhere", Duration::from_secs(10), || {
        (c.call(&["PUBSUB", "NUMSUB", "news"]) == V::Agg(b'*', vec![bulk("news"), V::Int(0)])).then_some(())
    });
    assert_eq!(c.call(&["PUBSUB", "NUMPAT"]), V::Int(0));
    assert_eq!(c.call(&["PUBLISH", "news", "nobody"]), V::Int(0));
}

/// A subscriber that never reads does not hold up the publisher or the other subscribers:
/// its node closes it once its queue passes `client-output-buffer-limit pubsub` (lowered to
/// 1 MB there), while a reading subscriber on another node (no limit there) gets every
/// message in order.
#[test]
fn a_subscriber_that_never_reads_is_closed_and_stalls_no_one() {
    let cluster = Cluster::start(3, &[]);
    for (node, limit) in cluster.nodes[1..].iter().zip(["pubsub 1mb 0 0", "pubsub 0 0 0"]) {
        let mut c = Conn::open(node.addr());
        assert_eq!(c.call(&["CONFIG", "SET", "client-output-buffer-limit", limit]), V::Line(b'+', "OK".into()));
        let V::Agg(_, pair) = c.call(&["CONFIG", "GET", "client-output-buffer-limit"]) else { panic!("CONFIG GET") };
        assert!(pair[1].text().ends_with(if limit.contains("1mb") { "pubsub 1048576 0 0" } else { "pubsub 0 0 0" }));
    }
    let mut slow = Conn::open(cluster.nodes[1].addr());
    assert_eq!(slow.call(&["SUBSCRIBE", "feed"]), V::Agg(b'*', vec![bulk("subscribe"), bulk("feed"), V::Int(1)]));
    const N: usize = 2000;
    let payload = "x".repeat(16 * 1024);
    let mut reader = Conn::open(cluster.nodes[2].addr());
    assert_eq!(reader.call(&["SUBSCRIBE", "feed"]), V::Agg(b'*', vec![bulk("subscribe"), bulk("feed"), V::Int(1)]));
    let reading = std::thread::spawn(move || {
        for i in 0..N {
            let (_, _, channel, body) = message(&mut reader);
            assert_eq!((channel.as_str(), body.len()), ("feed", 16 * 1024));
            assert!(body.starts_with(&format!("{i}:")), "message {i} in order");
        }
        reader
    });
    let mut publisher = Conn::open(cluster.nodes[0].addr());
    let started = Instant::now();
    for i in 0..N {
        let mut body = format!("{i}:");
        body.push_str(&payload[body.len()..]);
        let V::Int(n) = publisher.call(&["PUBLISH", "feed", &body]) else { panic!("PUBLISH answers an integer") };
        assert!(n <= 2, "at most the two subscribers: {n}");
    }
    let took = started.elapsed();
    let _reader = reading.join().expect("the reading subscriber got every message in order");
    // The slow subscriber's node closed it: it is unsubscribed, counted, and its socket ends
    // after what the kernel had buffered (far fewer than all messages).
    let mut c = Conn::open(cluster.nodes[1].addr());
    wait_until("the slow subscriber to be closed", Duration::from_secs(30), || {
        (c.call(&["PUBSUB", "NUMSUB", "feed"]) == V::Agg(b'*', vec![bulk("feed"), V::Int(1)])).then_some(())
    });
    let closed = metric(&cluster.nodes[1].metrics(), "kura_pubsub_subscribers_closed_total");
    assert_eq!(closed, Some(1.0), "one subscriber closed at the limit");
    let mut rest = Vec::new();
    let end = slow.r.read_to_end(&mut rest);
    assert!(
        end.is_ok() || end.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the slow subscriber's connection ends: {end:?}"
    );
    assert!(rest.len() < N * payload.len() / 2, "it got {} bytes of {} published", rest.len(), N * payload.len());
    println!("{N} messages of 16 KiB published in {took:?} past a subscriber that never read");
}

/// A subscriber's messages up to the marker `marker` (published after the writes looked at:
/// a node queues a write's notifications before it answers the write, and the marker after
/// its PUBLISH, so whatever a write notified here comes before it): (channel, payload).
fn until_marker(sub: &mut Conn, marker: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let (_, _, channel, payload) = message(sub);
        if channel == marker {
            return out;
        }
        out.push((channel, payload));
    }
}

/// Keyspace notifications in a 3-node cluster (docs/pubsub.md): a write through node A is
/// notified to A's subscribers only (B's and C's see nothing of it), one through B to B's; a
/// key's expiry is notified once, by the node that decides the key (its first owner), to
/// that node's subscribers.
#[test]
fn keyspace_notifications_go_to_the_subscribers_of_the_node_written_through() {
    let cluster = Cluster::start(3, &[]);
    let mut subs = Vec::new();
    for node in &cluster.nodes {
        let mut c = Conn::open(node.addr());
        assert_eq!(c.call(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]), V::Line(b'+', "OK".into()));
        let mut sub = Conn::open(node.addr());
        assert_eq!(
            sub.call(&["PSUBSCRIBE", "__key*__:*"]),
            V::Agg(b'*', vec![bulk("psubscribe"), bulk("__key*__:*"), V::Int(1)])
        );
        subs.push(sub);
    }
    let mut markers = 0;
    // The messages each node's subscriber got, up to a marker published through node 0 (it
    // reaches every node's subscribers, after what that node notified before).
    let mut collect = |subs: &mut Vec<Conn>| -> Vec<Vec<(String, String)>> {
        markers += 1;
        let marker = format!("__keysync__:{markers}");
        let mut publisher = Conn::open(cluster.nodes[0].addr());
        assert_eq!(publisher.call(&["PUBLISH", &marker, "x"]), V::Int(3));
        subs.iter_mut().map(|s| until_marker(s, &marker)).collect()
    };
    let pair = |event: &str, key: &str| {
        vec![(format!("__keyspace@0__:{key}"), event.to_owned()), (format!("__keyevent@0__:{event}"), key.to_owned())]
    };

    let mut a = Conn::open(cluster.nodes[0].addr());
    assert_eq!(a.call(&["SET", "k", "v"]), V::Line(b'+', "OK".into()));
    assert_eq!(a.call(&["RPUSH", "l", "x"]), V::Int(1));
    assert_eq!(a.call(&["RPOP", "l"]), bulk("x"));
    let got = collect(&mut subs);
    let expected: Vec<_> = [pair("set", "k"), pair("rpush", "l"), pair("rpop", "l"), pair("del", "l")].concat();
    assert_eq!(got[0], expected, "node 1's subscriber: the writes through node 1");
    assert_eq!((&got[1], &got[2]), (&vec![], &vec![]), "nodes 2 and 3: nothing of node 1's writes");

    let mut b = Conn::open(cluster.nodes[1].addr());
    assert_eq!(b.call(&["INCR", "n"]), V::Int(1));
    let got = collect(&mut subs);
    assert_eq!(got, vec![vec![], pair("incrby", "n"), vec![]], "node 2's write, to node 2's subscriber");

    // Keys each node decides (its first owner), given short TTLs through node 1: every
    // expiry is notified by its decider alone. Each node's probe expires after its other
    // key, and a node looks at what died in the order it died: once its probe is notified,
    // so is anything else it would ever notify of these keys.
    let decided_by = |node: usize, skip: usize| {
        (0..1000)
            .map(|i| format!("e{i}"))
            .filter(|k| cluster.preflist(0, k).first() == Some(&node))
            .nth(skip)
            .expect("a key each node is the first owner of")
    };
    let keys: Vec<(String, String)> = (0..3).map(|n| (decided_by(n, 0), decided_by(n, 1))).collect();
    for (key, _) in &keys {
        assert_eq!(a.call(&["SET", key, "v", "PX", "200"]), V::Line(b'+', "OK".into()));
    }
    for (_, probe) in &keys {
        assert_eq!(a.call(&["SET", probe, "v", "PX", "400"]), V::Line(b'+', "OK".into()));
    }
    let mut got: Vec<Vec<(String, String)>> = Vec::new();
    for (sub, (_, probe)) in subs.iter_mut().zip(&keys) {
        let mut seen = Vec::new();
        loop {
            let (_, _, channel, payload) = message(sub);
            let done = channel == "__keyevent@0__:expired" && payload == *probe;
            seen.push((channel, payload));
            if done {
                break;
            }
        }
        got.push(seen);
    }
    for (i, rest) in collect(&mut subs).into_iter().enumerate() {
        got[i].extend(rest);
    }
    let mut writes: Vec<(String, String)> = Vec::new();
    for (key, _) in &keys {
        writes.extend([pair("set", key), pair("expire", key)].concat());
    }
    for (_, probe) in &keys {
        writes.extend([pair("set", probe), pair("expire", probe)].concat());
    }
    for (i, (key, probe)) in keys.iter().enumerate() {
        // (A slow machine may expire a key before the last SET is notified: the expiries
        // and the writes are compared apart, each in order.)
        let expiry = |(c, p): &(String, String)| c.ends_with("__:expired") || p == "expired";
        let (expired, written): (Vec<_>, Vec<_>) = got[i].iter().cloned().partition(expiry);
        assert_eq!(written, if i == 0 { writes.clone() } else { Vec::new() }, "node {}: writes through node 1", i + 1);
        let expected = [pair("expired", key), pair("expired", probe)].concat();
        assert_eq!(expired, expected, "node {}'s subscriber: the keys it decides, once", i + 1);
    }
    assert_eq!(a.call(&["EXISTS", &keys[1].0]), V::Int(0));
}
