//! SSCAN and HSCAN while the set changes (a member present for the whole scan is returned), and
//! the reap index (one entry per key whatever its history; keys still expire and are reaped,
//! also after a restart). One real node over real sockets.

use crate::harness;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use harness::{metric, q, text, wait_until, Node};
use redis::Value;

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A SSCAN/HSCAN reply: the next cursor and the listed items.
fn scan_reply(v: &Value) -> (String, Vec<String>) {
    let Value::Array(parts) = v else { panic!("a scan reply is an array: {v:?}") };
    assert_eq!(parts.len(), 2, "{v:?}");
    let Value::Array(items) = &parts[1] else { panic!("a scan's items are an array: {v:?}") };
    (text(&parts[0]), items.iter().map(text).collect())
}

/// Scans `key` with `scan` (SSCAN or HSCAN) COUNT 100; after the first page, `between` removes
/// members of it. Returns every item listed (members, or field/value pairs) and the pages.
fn scan_removing(
    con: &mut redis::Connection,
    scan: &str,
    key: &str,
    mut between: impl FnMut(&mut redis::Connection, &[String]),
) -> (Vec<String>, usize) {
    let (mut cursor, mut all, mut pages) = ("0".to_string(), Vec::new(), 0);
    loop {
        let (next, items) = scan_reply(&q(con, &[scan, key, &cursor, "COUNT", "100"]));
        pages += 1;
        if pages == 1 {
            assert_ne!(next, "0", "300 members are scanned in pages");
            between(con, &items);
        }
        all.extend(items);
        if next == "0" {
            return (all, pages);
        }
        assert!(next.parse::<u64>().is_ok(), "the cursor is an unsigned 64-bit integer: {next}");
        assert!(pages < 1000, "the scan ends");
        cursor = next;
    }
}

/// SADD 300 members, SSCAN 0 COUNT 100, SREM 10 of the members it returned, scan on: every
/// member never removed is returned (Redis's guarantee; an index cursor skipped 10 of them).
#[test]
fn sscan_returns_every_member_present_throughout() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn();
    let members: Vec<String> = (0..300).map(|i| format!("member:{i}")).collect();
    let mut sadd = vec!["SADD", "s"];
    sadd.extend(members.iter().map(String::as_str));
    assert_eq!(q(&mut con, &sadd), Value::Int(300));
    let mut removed = HashSet::new();
    let (returned, pages) = scan_removing(&mut con, "SSCAN", "s", |con, first| {
        assert!(first.len() >= 10, "the first page lists members: {first:?}");
        for m in first.iter().take(10) {
            assert_eq!(q(con, &["SREM", "s", m]), Value::Int(1));
            removed.insert(m.clone());
        }
    });
    assert!(pages >= 3, "COUNT 100 over 290..300 members: {pages} pages");
    let returned: HashSet<&String> = returned.iter().collect();
    let missed: Vec<&String> = members.iter().filter(|m| !removed.contains(*m) && !returned.contains(m)).collect();
    assert!(missed.is_empty(), "{} members present throughout never returned: {missed:?}", missed.len());
}

/// The same with HSET and HDEL: every field never removed is returned, with its value.
#[test]
fn hscan_returns_every_field_present_throughout() {
    let node = Node::start(LOCAL, &[]);
    let mut con = node.conn();
    let fields: Vec<(String, String)> = (0..300).map(|i| (format!("field:{i}"), format!("value:{i}"))).collect();
    let mut hset = vec!["HSET", "h"];
    for (f, v) in &fields {
        hset.push(f);
        hset.push(v);
    }
    assert_eq!(q(&mut con, &hset), Value::Int(300));
    let mut removed = HashSet::new();
    let (returned, pages) = scan_removing(&mut con, "HSCAN", "h", |con, first| {
        assert!(first.len() >= 20, "the first page lists fields: {first:?}");
        for f in first.chunks(2).take(10).map(|pair| &pair[0]) {
            assert_eq!(q(con, &["HDEL", "h", f]), Value::Int(1));
            removed.insert(f.clone());
        }
    });
    assert!(pages >= 3, "COUNT 100 over 290..300 fields: {pages} pages");
    assert_eq!(returned.len() % 2, 0, "field/value pairs");
    let returned: std::collections::HashMap<&String, &String> =
        returned.chunks(2).map(|pair| (&pair[0], &pair[1])).collect();
    let missed: Vec<&String> =
        fields.iter().map(|(f, _)| f).filter(|f| !removed.contains(*f) && !returned.contains_key(f)).collect();
    assert!(missed.is_empty(), "{} fields present throughout never returned: {missed:?}", missed.len());
    for (f, v) in &fields {
        if let Some(got) = returned.get(f) {
            assert_eq!(*got, v, "{f}'s value");
        }
    }
}

/// `reap_index_keys` of `INFO kura`.
fn reap_index(con: &mut redis::Connection) -> u64 {
    let info = text(&q(con, &["INFO", "kura"]));
    info.lines()
        .find_map(|l| l.strip_prefix("reap_index_keys:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reap_index_keys in INFO kura:\n{info}"))
}

fn reaped(node: &Node) -> f64 {
    metric(&node.metrics(), "kura_reaped_keys_total").unwrap_or(0.0)
}

/// The reap index holds one entry per key that will die, whatever the key's history: a key
/// written 1,000 times with EX 3600 has one, a key whose expiry a SET without one or PERSIST
/// removed has none, a key whose expiry moved earlier is reaped then and leaves nothing behind;
/// after a restart the index is loaded from the store (where it is kept) and still reaps.
#[test]
fn the_reap_index_holds_one_entry_per_key() {
    let mut node = Node::start(LOCAL, &["--reap-grace-ms", "0"]);
    let mut con = node.conn();
    assert_eq!(reap_index(&mut con), 0);
    for i in 0..1000 {
        q(&mut con, &["SET", "k", &format!("v{i}"), "EX", "3600"]);
    }
    assert_eq!(reap_index(&mut con), 1, "SET k v EX 3600 written 1,000 times");
    for round in 0..5 {
        for i in 0..100 {
            q(&mut con, &["SET", &format!("many{i}"), &format!("v{round}"), "EX", "3600"]);
        }
    }
    assert_eq!(reap_index(&mut con), 101, "100 keys written 5 times each with an expiry");
    q(&mut con, &["SET", "many0", "plain"]);
    assert_eq!(q(&mut con, &["PERSIST", "many1"]), Value::Int(1));
    assert_eq!(reap_index(&mut con), 99, "a SET without expiry and a PERSIST drop the key's entry");
    // Expiries moved earlier: the keys die then, are reaped, and leave no entry.
    for i in 0..50 {
        q(&mut con, &["SET", &format!("short{i}"), "v", "EX", "3600"]);
        q(&mut con, &["SET", &format!("short{i}"), "v", "PX", "300"]);
    }
    q(&mut con, &["SET", "moved", "v", "EX", "3600"]);
    assert_eq!(q(&mut con, &["PEXPIRE", "moved", "300"]), Value::Int(1));
    assert_eq!(reap_index(&mut con), 150);
    wait_until("the reaper to reap the 51 keys that expired", Duration::from_secs(30), || {
        (reaped(&node) >= 51.0 && reap_index(&mut con) == 99).then_some(())
    });
    assert_eq!(reaped(&node), 51.0, "only what died");
    assert_eq!(q(&mut con, &["DBSIZE"]), Value::Int(101), "k, many0..many99");
    // After a restart (kill -9) the index is loaded from the store: the same 99 keys, plus one
    // that expires soon and is reaped.
    q(&mut con, &["SET", "late", "v", "PX", "5000"]);
    assert_eq!(reap_index(&mut con), 100);
    node.restart();
    let mut con = node.conn();
    assert_eq!(reap_index(&mut con), 100, "kept on disk, loaded at startup");
    wait_until("the reaper to reap the key that expired after the restart", Duration::from_secs(30), || {
        (reaped(&node) >= 1.0 && reap_index(&mut con) == 99).then_some(())
    });
    assert_eq!(q(&mut con, &["EXISTS", "late"]), Value::Int(0));
    assert_eq!(q(&mut con, &["DBSIZE"]), Value::Int(101));
    let ttl = match q(&mut con, &["TTL", "k"]) {
        Value::Int(t) => t,
        other => panic!("TTL: {other:?}"),
    };
    assert!((3000..=3600).contains(&ttl), "k keeps its expiry: {ttl}");
}
