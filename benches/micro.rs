//! Micro-benchmarks of the pieces on every request's path: context encode/decode, sibling-set
//! merge and update, and a storage write/read. `cargo bench --bench micro`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use kura::storage::{FsyncPolicy, Storage, StorageError};
use kura::version::{Actor, Context, ContextKey, Sibling, SiblingSet, VersionVector};

fn sibling(value: &'static str, t: u64, actor: u64) -> Sibling {
    Sibling {
        value: Some(Bytes::from_static(value.as_bytes()).into()),
        written_ms: t,
        origin: Actor(actor),
        expires_ms: None,
        resets: Vec::new(),
        flush_seen: None,
    }
}

/// A set written by `actors` coordinators, each twice, then merged: a realistic clock.
fn busy_set(actors: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    for a in 1..=actors {
        let ctx = set.context();
        set = set.update(&ctx, sibling("value", a, a)).0;
        set = set.update(&VersionVector::default(), sibling("other", a + 100, a)).0;
    }
    set
}

fn context(c: &mut Criterion) {
    let key = ContextKey::derive(b"bench");
    let vv = busy_set(5).context();
    let text = Context::encode(&vv, &key);
    c.bench_function("context_encode_5_actors", |b| b.iter(|| Context::encode(black_box(&vv), &key)));
    c.bench_function("context_decode_5_actors", |b| b.iter(|| Context::decode(black_box(text.as_bytes()), &key)));
}

fn clocks(c: &mut Criterion) {
    let a = busy_set(5);
    let mut b_set = a.clone();
    b_set = b_set.update(&VersionVector::default(), sibling("diverged", 500, 9)).0;
    c.bench_function("sibling_set_sync_5_actors", |b| b.iter(|| black_box(&a).sync(black_box(&b_set))));
    let ctx = a.context();
    c.bench_function("sibling_set_update_with_context", |b| {
        b.iter(|| black_box(&a).update(black_box(&ctx), sibling("new", 1000, 3)))
    });
    let encoded = a.encode();
    c.bench_function("sibling_set_decode", |b| b.iter(|| SiblingSet::decode(black_box(&encoded))));
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(dir.path(), FsyncPolicy::Never).expect("storage");
    let keys: Vec<Vec<u8>> = (0..100_000u32).map(|i| format!("key:{i:012}").into_bytes()).collect();
    let mut i = 0usize;
    c.bench_function("storage_put_overwrite_100k_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            storage
                .update::<StorageError>(&keys[i], |cur| {
                    let cur = cur.cloned().unwrap_or_default();
                    let ctx = cur.context();
                    Ok(cur.update(&ctx, sibling("xxx", 1, 1)).0)
                })
                .expect("put")
        })
    });
    storage.commit().expect("commit");
    c.bench_function("storage_get_cached", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            storage.get(black_box(&keys[i])).expect("get")
        })
    });
    // One write and the journal flush that precedes its acknowledgement (fsync never).
    c.bench_function("storage_put_then_commit", |b| {
        b.iter(|| {
            storage.merge(&keys[0], &SiblingSet::new()).expect("write");
            storage.commit().expect("commit")
        })
    });
}

criterion_group!(benches, context, clocks, storage);
criterion_main!(benches);
