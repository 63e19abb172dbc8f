//! The `redis` crate as an application uses it: async multiplexed connections on tokio, typed
//! commands, pipelines, RESP2 and RESP3.

use crate::harness;

use std::net::Ipv4Addr;

use harness::Node;
use redis::AsyncCommands;

async fn exercise(client: redis::Client) {
    let mut con = client.get_multiplexed_tokio_connection().await.expect("async connection");
    let _: () = con.set("user:1", "ada").await.unwrap();
    let name: String = con.get("user:1").await.unwrap();
    assert_eq!(name, "ada");
    let missing: Option<String> = con.get("user:2").await.unwrap();
    assert_eq!(missing, None);
    let _: () = con.set_ex("session", "token", 300).await.unwrap();
    let ttl: i64 = con.ttl("session").await.unwrap();
    assert!((299..=300).contains(&ttl), "{ttl}");
    let _: () = con.mset(&[("x", 1), ("y", 2)]).await.unwrap();
    let xy: Vec<i64> = con.mget(&["x", "y"]).await.unwrap();
    assert_eq!(xy, vec![1, 2]);
    let n: i64 = con.exists(&["x", "y", "z"]).await.unwrap();
    assert_eq!(n, 2);
    let deleted: i64 = con.del(&["x", "y"]).await.unwrap();
    assert_eq!(deleted, 2);
    // A pipeline of 100 commands, and concurrent requests on one multiplexed connection.
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.set(format!("p{i}"), i).ignore();
    }
    pipe.get("p99");
    let (last,): (i64,) = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(last, 99);
    let reads = (0..100).map(|i| {
        let mut c = con.clone();
        async move { c.get::<_, i64>(format!("p{i}")).await.unwrap() }
    });
    let got = futures_join_all(reads).await;
    assert_eq!(got, (0..100).collect::<Vec<i64>>());
    // DGET/DPUT through the generic command API.
    let ctx: String = redis::cmd("DPUT").arg("cart").arg("").arg("tea").query_async(&mut con).await.unwrap();
    let _: String = redis::cmd("DPUT").arg("cart").arg("").arg("jam").query_async(&mut con).await.unwrap();
    let (ctx2, mut values): (String, Vec<String>) = redis::cmd("DGET").arg("cart").query_async(&mut con).await.unwrap();
    values.sort();
    assert_eq!(values, vec!["jam", "tea"]);
    assert_ne!(ctx, ctx2);
    let _: String = redis::cmd("DPUT").arg("cart").arg(&ctx2).arg("jam,tea").query_async(&mut con).await.unwrap();
    let (_, values): (String, Vec<String>) = redis::cmd("DGET").arg("cart").query_async(&mut con).await.unwrap();
    assert_eq!(values, vec!["jam,tea"]);
}

/// Awaits futures one after another after starting them all (the multiplexer runs them
/// concurrently); avoids a dependency on the futures crate.
async fn futures_join_all<F: std::future::Future<Output = i64> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<i64> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn async_client_resp2() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    exercise(node.client("")).await;
}

#[tokio::test]
async fn async_client_resp3() {
    let node = Node::start(Ipv4Addr::LOCALHOST, &[]);
    exercise(node.client("?protocol=resp3")).await;
}
