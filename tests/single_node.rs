//! One real kura node, driven through real sockets: the `redis` crate (RESP2 and RESP3) and raw
//! TCP for byte-exact replies and malformed input.

use crate::harness;

use std::io::Write;
use std::net::Ipv4Addr;

use harness::{dget, dput, err_of, q, raw_line, read_to_close, resp_cmd, text, wait_until, Node};
use redis::Value;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn qerr(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    err_of(c.query(con))
}

#[test]
fn everyday_commands_over_resp2() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn();
    assert_eq!(text(&q(&mut con, &["PING"])), "PONG");
    assert_eq!(text(&q(&mut con, &["PING", "hi"])), "hi");
    assert_eq!(text(&q(&mut con, &["ECHO", "a b"])), "a b");
    assert_eq!(q(&mut con, &["GET", "nope"]), Value::Nil);
    assert_eq!(q(&mut con, &["SET", "k", "v1"]), Value::Okay);
    assert_eq!(text(&q(&mut con, &["GET", "k"])), "v1");
    // SET options as Redis has them.
    assert_eq!(q(&mut con, &["SET", "k", "v2", "NX"]), Value::Nil);
    assert_eq!(text(&q(&mut con, &["SET", "k", "v2", "XX", "GET"])), "v1");
    assert_eq!(q(&mut con, &["SET", "fresh", "x", "XX"]), Value::Nil);
    assert_eq!(q(&mut con, &["SET", "fresh", "x", "NX", "EX", "100"]), Value::Okay);
    assert_eq!(q(&mut con, &["SET", "gone", "x", "PXAT", "1"]), Value::Okay);
    assert_eq!(q(&mut con, &["GET", "gone"]), Value::Nil, "a value that expired in the past reads as missing");
    assert_eq!(q(&mut con, &["SET", "k", "v3", "GET"]), Value::BulkString(b"v2".to_vec()));
    assert_eq!(qerr(&mut con, &["SET", "k", "v", "NX", "XX"]), "ERR syntax error");
    assert_eq!(qerr(&mut con, &["SET", "k", "v", "EX", "0"]), "ERR invalid expire time in 'set' command");
    assert_eq!(qerr(&mut con, &["SET", "k", "v", "EX", "abc"]), "ERR value is not an integer or out of range");
    // The older spellings client libraries still send.
    assert_eq!(q(&mut con, &["SETEX", "sx", "100", "v"]), Value::Okay);
    assert!(matches!(q(&mut con, &["TTL", "sx"]), Value::Int(99..=100)));
    assert_eq!(q(&mut con, &["PSETEX", "sx", "100000", "w"]), Value::Okay);
    assert!(matches!(q(&mut con, &["PTTL", "sx"]), Value::Int(99_000..=100_000)));
    assert_eq!(qerr(&mut con, &["SETEX", "sx", "0", "v"]), "ERR invalid expire time in 'setex' command");
    assert_eq!(q(&mut con, &["SETNX", "sx", "again"]), Value::Int(0));
    assert_eq!(q(&mut con, &["SETNX", "snx", "first"]), Value::Int(1));
    assert_eq!(text(&q(&mut con, &["GET", "sx"])), "w");
    assert_eq!(q(&mut con, &["DEL", "sx", "snx"]), Value::Int(2));
    // Multi-key commands.
    assert_eq!(q(&mut con, &["MSET", "a", "1", "b", "2"]), Value::Okay);
    let got = q(&mut con, &["MGET", "a", "nope", "b"]);
    assert_eq!(got, Value::Array(vec![Value::BulkString(b"1".to_vec()), Value::Nil, Value::BulkString(b"2".to_vec())]));
    assert_eq!(q(&mut con, &["EXISTS", "a", "a", "nope", "b"]), Value::Int(3));
    assert_eq!(q(&mut con, &["DBSIZE"]), Value::Int(4), "k, fresh, a, b");
    assert_eq!(q(&mut con, &["DEL", "a", "nope", "b"]), Value::Int(2));
    assert_eq!(q(&mut con, &["EXISTS", "a", "b"]), Value::Int(0));
    assert_eq!(q(&mut con, &["DBSIZE"]), Value::Int(2));
    assert_eq!(qerr(&mut con, &["MSET", "a", "1", "b"]), "ERR wrong number of arguments for 'mset' command");
    // Connection and server commands.
    assert_eq!(q(&mut con, &["SELECT", "0"]), Value::Okay);
    // Databases 0..15 (issue 12: `--databases`, default 16).
    assert_eq!(q(&mut con, &["SELECT", "1"]), Value::Okay);
    assert_eq!(q(&mut con, &["DBSIZE"]), Value::Int(0), "database 1 is another namespace");
    assert_eq!(q(&mut con, &["SELECT", "0"]), Value::Okay);
    assert_eq!(qerr(&mut con, &["SELECT", "16"]), "ERR DB index is out of range");
    assert_eq!(q(&mut con, &["CLIENT", "SETNAME", "tester"]), Value::Okay);
    assert_eq!(text(&q(&mut con, &["CLIENT", "GETNAME"])), "tester");
    assert!(matches!(q(&mut con, &["CLIENT", "ID"]), Value::Int(id) if id > 0));
    assert!(text(&q(&mut con, &["CLIENT", "INFO"])).contains("name=tester"));
    let Value::Array(config) = q(&mut con, &["CONFIG", "GET", "append*"]) else { panic!("CONFIG GET") };
    let mut pairs: Vec<(String, String)> = config.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect();
    pairs.sort();
    assert_eq!(pairs, vec![("appendfsync".into(), "everysec".into()), ("appendonly".into(), "yes".into())]);
    let Value::Int(count) = q(&mut con, &["COMMAND", "COUNT"]) else { panic!("COMMAND COUNT") };
    let Value::Array(all) = q(&mut con, &["COMMAND"]) else { panic!("COMMAND") };
    assert_eq!(all.len() as i64, count);
    let Value::Array(info) = q(&mut con, &["COMMAND", "INFO", "get", "dput", "nope"]) else { panic!("COMMAND INFO") };
    assert_eq!(info.len(), 3);
    assert_eq!(info[2], Value::Nil);
    let Value::Array(get_info) = &info[0] else { panic!("COMMAND INFO get") };
    assert_eq!((text(&get_info[0]), &get_info[1]), ("get".to_string(), &Value::Int(2)));
    assert!(matches!(q(&mut con, &["COMMAND", "DOCS", "set"]), Value::Array(a) if a.len() == 2));
    let info = text(&q(&mut con, &["INFO"]));
    for section in ["# Server", "# Clients", "# Persistence", "# Stats", "# Keyspace", "# Cluster"] {
        assert!(info.contains(section), "INFO lacks {section}:\n{info}");
    }
    assert!(info.contains("db0:keys=2"), "{info}");
    let server_only = text(&q(&mut con, &["INFO", "server"]));
    assert!(server_only.contains("redis_version:") && !server_only.contains("# Clients"));
    assert_eq!(q(&mut con, &["QUIT"]), Value::Okay);
    assert!(redis::cmd("PING").query::<Value>(&mut con).is_err(), "QUIT closes the connection");
}

#[test]
fn resp3_hello_and_replies() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn3();
    // The redis crate already sent HELLO 3; send it again to look at the reply.
    let Value::Map(hello) = q(&mut con, &["HELLO", "3"]) else { panic!("HELLO 3 is a map in RESP3") };
    let proto = hello.iter().find(|(k, _)| text(k) == "proto").map(|(_, v)| v.clone());
    assert_eq!(proto, Some(Value::Int(3)));
    assert_eq!(q(&mut con, &["GET", "missing"]), Value::Nil);
    assert_eq!(q(&mut con, &["SET", "k", "v"]), Value::Okay);
    assert_eq!(text(&q(&mut con, &["GET", "k"])), "v");
    assert!(matches!(q(&mut con, &["CONFIG", "GET", "appendonly"]), Value::Map(m) if m.len() == 1));
    assert!(matches!(q(&mut con, &["INFO", "server"]), Value::VerbatimString { .. }));
    let ctx = dput(&mut con, "cart", "", "a");
    dput(&mut con, "cart", "", "b");
    let (ctx2, values) = dget(&mut con, "cart");
    assert_eq!(values, vec!["a", "b"]);
    assert_ne!(ctx, ctx2);
    assert_eq!(qerr(&mut con, &["HELLO", "4"]), "NOPROTO unsupported protocol version");
    // Back to RESP2 on the same connection: a map becomes a flat array.
    assert!(matches!(q(&mut con, &["HELLO", "2"]), Value::Array(a) if a.len() == 14));
}

#[test]
fn siblings_merge_with_dget_and_dput() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn();
    // A missing key: an empty list and a context that is valid to write with.
    let (ctx0, values) = dget(&mut con, "cart");
    assert!(values.is_empty());
    assert!(!ctx0.is_empty());
    // Two writes with no history are concurrent: two siblings.
    dput(&mut con, "cart", "", "apple");
    dput(&mut con, "cart", &ctx0, "pear");
    let (ctx, values) = dget(&mut con, "cart");
    assert_eq!(values, vec!["apple", "pear"]);
    // Plain GET picks one deterministic winner (the newest).
    let winner = text(&q(&mut con, &["GET", "cart"]));
    assert_eq!(winner, "pear");
    for _ in 0..5 {
        assert_eq!(text(&q(&mut con, &["GET", "cart"])), winner);
    }
    // A write with the DGET context replaces both.
    let merged_ctx = dput(&mut con, "cart", &ctx, "apple,pear");
    assert_eq!(dget(&mut con, "cart").1, vec!["apple,pear"]);
    // A write with a stale context (it saw only the two old siblings) becomes a sibling of
    // the merge: nothing is lost.
    dput(&mut con, "cart", &ctx, "apple,plum");
    let (ctx3, values) = dget(&mut con, "cart");
    assert_eq!(values, vec!["apple,pear", "apple,plum"]);
    assert_ne!(merged_ctx, ctx3);
    // SET supersedes everything.
    dput(&mut con, "cart", "", "another");
    assert_eq!(dget(&mut con, "cart").1.len(), 3);
    assert_eq!(q(&mut con, &["SET", "cart", "final"]), Value::Okay);
    assert_eq!(dget(&mut con, "cart").1, vec!["final"]);
    // DDEL with a context deletes what it saw.
    let (ctx, _) = dget(&mut con, "cart");
    assert_eq!(q(&mut con, &["DDEL", "cart", &ctx]), Value::Okay);
    assert_eq!(q(&mut con, &["GET", "cart"]), Value::Nil);
    assert!(dget(&mut con, "cart").1.is_empty());
    assert_eq!(q(&mut con, &["EXISTS", "cart"]), Value::Int(0));
    // DDEL with a stale context leaves the write it did not see.
    let (stale, _) = dget(&mut con, "cart");
    dput(&mut con, "cart", &stale, "new");
    assert_eq!(q(&mut con, &["DDEL", "cart", &stale]), Value::Okay);
    assert_eq!(dget(&mut con, "cart").1, vec!["new"]);
    // Per-request quorum options are accepted on one node, and checked.
    assert!(matches!(q(&mut con, &["DGET", "cart", "R", "1"]), Value::Array(_)));
    assert_eq!(qerr(&mut con, &["DGET", "cart", "R", "9"]), "ERR R must be between 1 and N (3)");
    assert_eq!(qerr(&mut con, &["DGET", "cart", "X", "1"]), "ERR syntax error");
    assert!(matches!(q(&mut con, &["DPUT", "cart", "", "v", "W", "1"]), Value::BulkString(_)));
}

/// Siblings, plain values and deletes; checked after every restart.
fn write_history(con: &mut redis::Connection, round: usize) {
    dput(con, &format!("cart{round}"), "", "a");
    dput(con, &format!("cart{round}"), "", "b");
    for i in 0..200 {
        assert_eq!(q(con, &["SET", &format!("k{round}:{i}"), &format!("v{i}")]), Value::Okay);
    }
    assert_eq!(q(con, &["DEL", &format!("k{round}:0")]), Value::Int(1));
}

fn check_history(con: &mut redis::Connection, round: usize) {
    assert_eq!(dget(con, &format!("cart{round}")).1, vec!["a", "b"], "siblings of round {round}");
    assert_eq!(q(con, &["GET", &format!("k{round}:0")]), Value::Nil, "the delete of round {round}");
    for i in 1..200 {
        assert_eq!(text(&q(con, &["GET", &format!("k{round}:{i}")])), format!("v{i}"), "key {i} of round {round}");
    }
}

fn survives_restarts(fsync: &str) {
    let mut node = Node::start(LOCAL, &["--fsync", fsync]);
    write_history(&mut node.conn(), 0);
    // A clean shutdown and restart.
    node.terminate();
    node.spawn();
    check_history(&mut node.conn(), 0);
    // kill -9 right after the last acknowledgement: every acknowledged write is in the journal.
    write_history(&mut node.conn(), 1);
    node.kill9();
    node.spawn();
    let mut con = node.conn();
    check_history(&mut con, 0);
    check_history(&mut con, 1);
    // The node keeps its identity (and so its context key): an old context still decodes.
    let (ctx, _) = dget(&mut con, "cart0");
    node.kill9();
    node.spawn();
    let mut con = node.conn();
    dput(&mut con, "cart0", &ctx, "merged");
    assert_eq!(dget(&mut con, "cart0").1, vec!["merged"]);
}

#[test]
fn acknowledged_writes_survive_kill9_fsync_everysec() {
    survives_restarts("everysec");
}

#[test]
fn acknowledged_writes_survive_kill9_fsync_always() {
    survives_restarts("always");
}

#[test]
fn bad_input_gets_a_clear_error_and_loses_nothing() {
    let node = Node::start(LOCAL, &["--max-value-bytes", "1024"]);
    let mut bystander = node.conn();
    assert_eq!(q(&mut bystander, &["SET", "precious", "data"]), Value::Okay);
    let still_fine = |con: &mut redis::Connection| {
        assert_eq!(text(&q(con, &["GET", "precious"])), "data");
    };
    // Exact Redis texts for arity and unknown commands, and the connection goes on.
    let mut s = node.raw();
    assert_eq!(raw_line(&mut s, &resp_cmd(&[b"GET"])), "-ERR wrong number of arguments for 'get' command\r\n");
    assert_eq!(
        raw_line(&mut s, &resp_cmd(&[b"FOO", b"a", b"b"])),
        "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        raw_line(&mut s, &resp_cmd(&[b"CLIENT", b"NOPE"])),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    );
    assert_eq!(raw_line(&mut s, &resp_cmd(&[b"PING"])), "+PONG\r\n");
    // Corrupt and forged contexts.
    let mut con = node.conn();
    let (ctx, _) = dget(&mut con, "precious");
    let mut corrupt = ctx.clone().into_bytes();
    let mid = corrupt.len() / 2;
    corrupt[mid] = if corrupt[mid] == b'A' { b'B' } else { b'A' };
    let corrupt = String::from_utf8(corrupt).unwrap();
    assert!(qerr(&mut con, &["DPUT", "precious", &corrupt, "x"]).starts_with("ERR invalid context"));
    assert!(qerr(&mut con, &["DDEL", "precious", "bm90LWEtY29udGV4dA"]).starts_with("ERR invalid context"));
    assert!(qerr(&mut con, &["DPUT", "precious", "%%%", "x"]).starts_with("ERR invalid context"));
    still_fine(&mut con);
    // A value over --max-value-bytes, alone or inside an MSET.
    let big = "x".repeat(1025);
    assert_eq!(qerr(&mut con, &["SET", "precious", &big]), "ERR value is too large (1025 bytes, max 1024)");
    assert!(qerr(&mut con, &["MSET", "other", "1", "precious", &big]).starts_with("ERR value is too large"));
    assert_eq!(q(&mut con, &["EXISTS", "other"]), Value::Int(0), "MSET checks every value before writing any");
    assert!(qerr(&mut con, &["DPUT", "precious", "", &big]).starts_with("ERR value is too large"));
    assert_eq!(q(&mut con, &["SET", "edge", &"y".repeat(1024)]), Value::Okay);
    still_fine(&mut con);
    // Malformed RESP: a Redis-style protocol error, then the server closes that connection.
    for garbage in [&b"*1\r\n:5\r\n"[..], b"*2\r\n$3\r\nGET\r\n$1\r\nkk\r\n", b"*x\r\n", b"SET \"unbalanced\r\n"] {
        let mut s = node.raw();
        s.write_all(garbage).unwrap();
        let reply = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
        assert!(reply.starts_with("-ERR Protocol error"), "{garbage:?} got {reply:?}");
    }
    // A 512 MiB bulk length header is refused before any buffer grows toward it.
    let mut s = node.raw();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n").unwrap();
    let reply = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    assert_eq!(reply, "-ERR Protocol error: invalid bulk length\r\n");
    // The node is up, other connections are unaffected, nothing was lost.
    still_fine(&mut bystander);
    still_fine(&mut node.conn());
    assert_eq!(q(&mut bystander, &["DBSIZE"]), Value::Int(2));
}

#[test]
fn pipelining_inline_commands_and_many_clients() {
    let node = Node::start(LOCAL, &[]);
    // 1000 commands in one write; the replies come back in order.
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend(resp_cmd(&[b"SET", format!("p{i}").as_bytes(), format!("{i}").as_bytes()]));
        batch.extend(resp_cmd(&[b"GET", format!("p{i}").as_bytes()]));
    }
    let mut s = node.raw();
    s.write_all(&batch).unwrap();
    let mut expected = Vec::new();
    for i in 0..500 {
        expected.extend_from_slice(b"+OK\r\n");
        let v = i.to_string();
        expected.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    let mut got = vec![0u8; expected.len()];
    std::io::Read::read_exact(&mut s, &mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected));
    // Inline commands, as typed into telnet, with Redis's quoting.
    let mut s = node.raw();
    assert_eq!(raw_line(&mut s, b"PING\r\n"), "+PONG\r\n");
    assert_eq!(raw_line(&mut s, b"SET inline \"a b\"\r\n"), "+OK\r\n");
    s.write_all(b"GET inline\r\n").unwrap();
    let mut reply = [0u8; 9];
    std::io::Read::read_exact(&mut s, &mut reply).unwrap();
    assert_eq!(&reply, b"$3\r\na b\r\n");
    // Many concurrent clients.
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let url = node.url();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                for i in 0..50 {
                    let key = format!("c{t}:{i}");
                    assert_eq!(q(&mut con, &["SET", &key, &key]), Value::Okay);
                    assert_eq!(text(&q(&mut con, &["GET", &key])), key);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(q(&mut node.conn(), &["DBSIZE"]), Value::Int(500 + 1 + 32 * 50));
}

#[test]
fn requirepass_guards_every_command() {
    let node = Node::start(LOCAL, &["--requirepass", "s3cret"]);
    let mut s = node.raw();
    assert_eq!(raw_line(&mut s, &resp_cmd(&[b"GET", b"k"])), "-NOAUTH Authentication required.\r\n");
    assert_eq!(
        raw_line(&mut s, &resp_cmd(&[b"AUTH", b"wrong"])),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(raw_line(&mut s, &resp_cmd(&[b"AUTH", b"s3cret"])), "+OK\r\n");
    assert_eq!(raw_line(&mut s, &resp_cmd(&[b"SET", b"k", b"v"])), "+OK\r\n");
    // HELLO with AUTH, and a client library with a password in its URL.
    let mut s = node.raw();
    let hello = raw_line(&mut s, &resp_cmd(&[b"HELLO", b"3", b"AUTH", b"default", b"s3cret"]));
    assert!(hello.starts_with('%'), "{hello}");
    let mut con = redis::Client::open(format!("redis://:s3cret@{}/", node.addr())).unwrap().get_connection().unwrap();
    assert_eq!(text(&q(&mut con, &["GET", "k"])), "v");
}

#[test]
fn metrics_and_info_show_latency_percentiles() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn();
    for i in 0..100 {
        q(&mut con, &["SET", &format!("m{i}"), "v"]);
        q(&mut con, &["GET", &format!("m{i}")]);
    }
    dput(&mut con, "s", "", "1");
    dput(&mut con, "s", "", "2");
    dget(&mut con, "s");
    let _ = qerr(&mut con, &["GET"]);
    let text_metrics = node.metrics();
    let get_count = harness::metric(&text_metrics, "kura_commands_total{command=\"get\"}");
    assert_eq!(get_count, Some(100.0), "{text_metrics}");
    for series in [
        "kura_command_duration_seconds{command=\"get\",quantile=\"0.999\"}",
        "kura_command_duration_seconds{command=\"set\",quantile=\"0.99\"}",
        "kura_command_errors_total{command=\"get\"}",
        "kura_siblings_per_read{quantile=\"0.999\"}",
        "kura_connected_clients",
    ] {
        assert!(harness::metric(&text_metrics, series).is_some(), "missing {series} in:\n{text_metrics}");
    }
    assert_eq!(harness::metric(&text_metrics, "kura_siblings_per_read_count"), Some(101.0));
    let info = text(&q(&mut con, &["INFO", "latencystats", "commandstats"]));
    assert!(info.contains("latency_percentiles_usec_get:p50="), "{info}");
    assert!(info.contains("p99.9="), "{info}");
    assert!(info.contains("cmdstat_get:calls=100,"), "{info}");
    // As in Redis, CONFIG RESETSTAT starts commandstats and latencystats over.
    assert_eq!(q(&mut con, &["CONFIG", "RESETSTAT"]), Value::Okay);
    q(&mut con, &["GET", "m1"]);
    let info = text(&q(&mut con, &["INFO", "commandstats", "latencystats"]));
    assert!(info.contains("cmdstat_get:calls=1,"), "{info}");
    assert!(!info.contains("cmdstat_set:"), "{info}");
    assert!(!info.contains("latency_percentiles_usec_set:"), "{info}");
    // The storage gauges are published by the background task.
    wait_until("storage gauges", std::time::Duration::from_secs(20), || {
        harness::metric(&node.metrics(), "kura_storage_disk_bytes").filter(|v| *v > 0.0)
    });
}

#[test]
fn expired_values_read_as_missing() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn();
    assert_eq!(q(&mut con, &["SET", "short", "v", "PX", "50"]), Value::Okay);
    assert_eq!(q(&mut con, &["SET", "long", "v", "EX", "100000"]), Value::Okay);
    wait_until("the short-lived key to expire", std::time::Duration::from_secs(10), || {
        (q(&mut con, &["GET", "short"]) == Value::Nil).then_some(())
    });
    assert_eq!(q(&mut con, &["EXISTS", "short", "long"]), Value::Int(1));
    assert!(dget(&mut con, "short").1.is_empty());
    assert_eq!(q(&mut con, &["TTL", "short"]), Value::Int(-2));
    assert_eq!(q(&mut con, &["PTTL", "nope"]), Value::Int(-2));
    let Value::Int(ttl) = q(&mut con, &["TTL", "long"]) else { panic!("TTL") };
    assert!((99_990..=100_000).contains(&ttl), "{ttl}");
    // KEEPTTL keeps the expiry; a plain SET drops it.
    assert_eq!(q(&mut con, &["SET", "long", "w", "KEEPTTL"]), Value::Okay);
    assert_eq!(text(&q(&mut con, &["GET", "long"])), "w");
    let Value::Int(pttl) = q(&mut con, &["PTTL", "long"]) else { panic!("PTTL") };
    assert!((99_990_000..=100_000_000).contains(&pttl), "{pttl}");
    assert_eq!(q(&mut con, &["SET", "long", "x"]), Value::Okay);
    assert_eq!(q(&mut con, &["TTL", "long"]), Value::Int(-1));
}

/// INFO cluster's `kura_*` line `name`.
fn info_cluster(con: &mut redis::Connection, name: &str) -> String {
    let info = text(&q(con, &["INFO", "cluster"]));
    let prefix = format!("{name}:");
    info.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().to_owned()).unwrap_or_default()
}

/// Admission control's foreground side (paper 6.5): client commands on keys are measured (the
/// trailing p99 that background work is held to), blocking and keyless ones are not.
#[test]
fn commands_on_keys_feed_the_foreground_latency_that_background_work_yields_to() {
    let node = Node::start(LOCAL, &["--background-p99-ms", "7"]);
    let mut con = node.conn();
    assert_eq!(info_cluster(&mut con, "kura_background_p99_target_ms"), "7");
    // PING, INFO and the like are no foreground work on the store: still idle after 300.
    for _ in 0..300 {
        q(&mut con, &["PING"]);
    }
    assert_eq!(info_cluster(&mut con, "kura_foreground_p99_us"), "idle");
    // 300 SETs, then the p99 of the trailing second is a figure (again, should the machine
    // have been so slow that the second passed before INFO).
    wait_until("the foreground p99 measured", std::time::Duration::from_secs(60), || {
        let mut pipe = redis::pipe();
        for i in 0..300 {
            pipe.cmd("SET").arg(format!("k{i}")).arg("v").ignore();
        }
        pipe.query::<()>(&mut con).unwrap();
        info_cluster(&mut con, "kura_foreground_p99_us").parse::<u64>().ok()
    });
    assert_eq!(info_cluster(&mut con, "kura_background_waits"), "0", "nothing ran in the background");
}
