//! The format against payloads redis-server 7.0.15 made, hostile payloads, and round trips.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// `body` with the version and CRC a DUMP payload ends with.
fn seal(body: &[u8], version: u16) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    let crc = CRC.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

const BIG: usize = 1 << 30;

/// DUMP payloads from redis-server 7.0.15 (Debian's, `rdbcompression yes`, default encoding
/// settings unless noted), made by running the command on an empty server and then `DUMP`,
/// printed as hex by redis-py; and the object each holds.
fn fixtures() -> Vec<(&'static str, &'static str, Object, Encodings)> {
    let d = Encodings::default();
    let s = |x: &str| Object::String(b(x));
    vec![
        ("SET k 12", "00c00c0a003c2af8515c04bcd5", s("12"), d),
        ("SET k -300", "00c1d4fe0a00c6c48623febede2e", s("-300"), d),
        ("SET k 2147483647", "00c2ffffff7f0a002c74e59ee02eada1", s("2147483647"), d),
        (
            "SET k 9223372036854775807",
            "0013393232333337323033363835343737353830370a003a657e9481e85f22",
            s("9223372036854775807"),
            d,
        ),
        ("SET k hello", "000568656c6c6f0a006372df766534200a", s("hello"), d),
        ("SET k <50 a's>", "00c30932016161e025000161610a0009ac48b9ab15fbc9", s(&"a".repeat(50)), d),
        (
            "SET k abcdefghijklmnopqrstuvwxyz0123456789abcdefghij (incompressible)",
            "002e6162636465666768696a6b6c6d6e6f707172737475767778797a303132333435363738396162636465666768696a0a00d487cdf44dcf4da6",
            s("abcdefghijklmnopqrstuvwxyz0123456789abcdefghij"),
            d,
        ),
        ("SET k 007", "00033030370a007258e27b4c69bad9", s("007"), d),
        (
            "PFADD k a b c (Redis's sparse encoding: a string)",
            "001b48594c4c01000000000000000000008060f38050b1844bfb80425a0a009f590c06b6497049",
            Object::String(Bytes::from(hex("48594c4c01000000000000000000008060f38050b1844bfb80425a"))),
            d,
        ),
        (
            "RPUSH k a 1 hello -5 100000",
            "1201021b1b000000050081610201018568656c6c6f06dffb02f2a0860104ff0a001dcd1b8ea10dc6b8",
            Object::List(["a", "1", "hello", "-5", "100000"].map(b).to_vec()),
            d,
        ),
        (
            "RPUSH k 0 1 ... 9 with list-max-listpack-size 3 (four nodes)",
            "1204020d0d0000000300000101010201ff020d0d0000000300030104010501ff020d0d0000000300060107010801ff02090900000001000901ff0a00d834607aeba9cdfe",
            Object::List((0..10).map(|i| b(&i.to_string())).collect()),
            Encodings { list_max_listpack_size: 3, ..d },
        ),
        ("SADD k 3 1 2", "0b0e02000000030000000100020003000a00a5025ce26d6e4d1b", Object::Set(["1", "2", "3"].map(b).to_vec()), d),
        (
            "SADD k 70000 1 -2",
            "0b140400000003000000feffffff01000000701101000a0030527df8cc311f3b",
            Object::Set(["-2", "1", "70000"].map(b).to_vec()),
            d,
        ),
        ("SADD k a", "020101610a006296e97e44d21a6d", Object::Set(vec![b("a")]), d),
        (
            "HSET k a 1 b x",
            "10121200000004008161020101816202817802ff0a0078074c6bd9d7051f",
            Object::Hash(vec![(b("a"), b("1")), (b("b"), b("x"))]),
            d,
        ),
        (
            "HSET k f v with hash-max-listpack-entries 0",
            "0401016601760a00adf24356b1860efc",
            Object::Hash(vec![(b("f"), b("v"))]),
            Encodings { hash_max_listpack_entries: 0, ..d },
        ),
        (
            "ZADD k 1 a 2.5 b -0 c 1e17 d inf e (-0 is written as 0)",
            "112e2e0000000a008163020001816102010181620283322e3504816402f400008a5d784563010981650283696e6604ff0a00ec46df424e274ed9",
            Object::ZSet(vec![(b("c"), 0.0), (b("a"), 1.0), (b("b"), 2.5), (b("d"), 1e17), (b("e"), f64::INFINITY)]),
            d,
        ),
        (
            "ZADD k 1 a 2 b with zset-max-listpack-entries 1",
            "0502016200000000000000400161000000000000f03f0a007b299e12ce9408d4",
            // From the greatest score down.
            Object::ZSet(vec![(b("b"), 2.0), (b("a"), 1.0)]),
            Encodings { zset_max_listpack_entries: 1, ..d },
        ),
    ]
}

#[test]
fn payloads_of_redis_7_0_decode_and_are_made_byte_for_byte() {
    for (what, payload, object, enc) in fixtures() {
        let payload = hex(payload);
        assert_eq!(restore(&payload, BIG).as_ref(), Ok(&object), "{what}: restore");
        assert_eq!(hex_of(&dump(&object, &enc)), hex_of(&payload), "{what}: dump");
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_footer_is_checked_first() {
    let good = hex("000568656c6c6f0a006372df766534200a");
    assert!(restore(&good, BIG).is_ok());
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().expect("bytes") ^= 1;
    assert_eq!(restore(&bad_crc, BIG), Err(RdbError::VersionOrChecksum));
    // Version 12 (Redis 7.4) is newer than kura reads; 11 (7.2) and older are read.
    let body = &good[..good.len() - 10];
    assert_eq!(restore(&seal(body, 12), BIG), Err(RdbError::VersionOrChecksum));
    assert_eq!(restore(&seal(body, 11), BIG), Ok(Object::String(b("hello"))));
    assert_eq!(restore(&seal(body, 6), BIG), Ok(Object::String(b("hello"))));
    for n in 0..10 {
        assert_eq!(restore(&good[..n], BIG), Err(RdbError::VersionOrChecksum));
    }
}

/// As redis-server reads them: the object is read from the whole payload, so a string whose
/// length runs into the footer takes the footer's bytes, and bytes after the object are ignored.
#[test]
fn the_object_is_read_as_redis_reads_it() {
    let into_footer = seal(&[STRING, 3, b'a'], 10);
    assert_eq!(restore(&into_footer, BIG), Ok(Object::String(Bytes::from_static(b"a\n\x00"))));
    let trailing = seal(&[STRING, 1, b'a', 9, 9], 10);
    assert_eq!(restore(&trailing, BIG), Ok(Object::String(b("a"))));
}

#[test]
fn what_redis_refuses_kura_refuses() {
    let cases: &[(&str, &[u8])] = &[
        ("an empty set", &[SET, 0]),
        ("an empty quicklist", &[LIST_QUICKLIST_2, 0]),
        ("an empty listpack hash", &[HASH_LISTPACK, 7, 7, 0, 0, 0, 0, 0, 0xff]),
        ("a member twice", &[SET, 2, 1, b'a', 1, b'a']),
        ("a field twice", &[HASH, 2, 1, b'a', 1, b'b', 1, b'a', 1, b'c']),
        ("type 8", &[8, 0]),
        ("type 22", &[22, 0]),
        ("a length encoding 0x82", &[STRING, 0x82, 0, 0, 0, 0]),
        ("a string encoding 4", &[STRING, 0xc4, 1]),
        ("a NaN score", &[ZSET_2, 1, 1, b'a', 0, 0, 0, 0, 0, 0, 0xf8, 0x7f]),
        ("a quicklist container 3", &[LIST_QUICKLIST_2, 1, 3, 1, b'a']),
        ("a text score that is no number", &[ZSET, 1, 1, b'a', 3, b'a', b'b', b'c']),
        ("an intset out of order", &[SET_INTSET, 12, 2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0]),
        ("an intset with a value twice", &[SET_INTSET, 12, 2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 5, 0]),
    ];
    for (what, body) in cases {
        assert_eq!(restore(&seal(body, 10), BIG), Err(RdbError::BadFormat), "{what}");
    }
    assert_eq!(restore(&seal(&[STREAM_LISTPACKS, 0], 10), BIG), Err(RdbError::Unsupported("streams")));
    assert_eq!(restore(&seal(&[MODULE_2, 0], 10), BIG), Err(RdbError::Unsupported("modules")));
}

#[test]
fn what_redis_accepts_kura_accepts() {
    // A PLAIN quicklist node (Redis 7 makes one for an element of 1 GiB or more).
    let plain = seal(&[LIST_QUICKLIST_2, 1, 1, 3, b'a', b'b', b'c'], 10);
    assert_eq!(restore(&plain, BIG), Ok(Object::List(vec![b("abc")])));
    // An LZF string of length 0.
    assert_eq!(restore(&seal(&[STRING, 0xc3, 0, 0], 10), BIG), Ok(Object::String(Bytes::new())));
    // Old sorted sets: scores as text.
    let old = seal(&[ZSET, 1, 1, b'a', 3, b'1', b'.', b'5'], 10);
    assert_eq!(restore(&old, BIG), Ok(Object::ZSet(vec![(b("a"), 1.5)])));
    // A listpack score that is no number reads as 0, as Redis's strtod reads it.
    let mut lp = listpack::encode([&b"a"[..], b"abc"]);
    let mut body = vec![ZSET_LISTPACK, lp.len() as u8];
    body.append(&mut lp);
    assert_eq!(restore(&seal(&body, 10), BIG), Ok(Object::ZSet(vec![(b("a"), 0.0)])));
    // Redis 7.2's listpack set, in a version 11 payload.
    let mut lp = listpack::encode([&b"a"[..], b"7"]);
    let mut body = vec![SET_LISTPACK, lp.len() as u8];
    body.append(&mut lp);
    assert_eq!(restore(&seal(&body, 11), BIG), Ok(Object::Set(vec![b("a"), b("7")])));
}

/// The forms Redis 2.6 to 6.2 wrote, built after their C sources (ziplists, zipmaps, linked
/// lists, text scores): what kura reads of them.
#[test]
fn older_forms_decode() {
    let zl = |elements: &[&[u8]]| -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 10;
        for e in elements {
            tail = 10 + body.len();
            let start = body.len();
            body.push(prev as u8);
            body.push(e.len() as u8); // strings under 64 bytes
            body.extend_from_slice(e);
            prev = body.len() - start;
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        out.extend_from_slice(&(tail as u32).to_le_bytes());
        out.extend_from_slice(&(elements.len() as u16).to_le_bytes());
        out.extend(body);
        out.push(0xff);
        out
    };
    let with_blob = |ty: u8, blob: &[u8]| -> Vec<u8> {
        let mut body = vec![ty];
        put_string(&mut body, blob);
        seal(&body, 9)
    };
    let list = zl(&[b"a", b"bc"]);
    assert_eq!(restore(&with_blob(LIST_ZIPLIST, &list), BIG), Ok(Object::List(vec![b("a"), b("bc")])));
    let hash = zl(&[b"f", b"v"]);
    assert_eq!(restore(&with_blob(HASH_ZIPLIST, &hash), BIG), Ok(Object::Hash(vec![(b("f"), b("v"))])));
    let zset = zl(&[b"m", b"2.5"]);
    assert_eq!(restore(&with_blob(ZSET_ZIPLIST, &zset), BIG), Ok(Object::ZSet(vec![(b("m"), 2.5)])));
    let zipmap = [1u8, 1, b'f', 1, 0, b'v', 0xff];
    assert_eq!(restore(&with_blob(HASH_ZIPMAP, &zipmap), BIG), Ok(Object::Hash(vec![(b("f"), b("v"))])));
    // A quicklist of ziplists (Redis 3.2 to 6.2): two nodes.
    let mut body = vec![LIST_QUICKLIST, 2];
    put_string(&mut body, &zl(&[b"a"]));
    put_string(&mut body, &zl(&[b"b", b"c"]));
    assert_eq!(restore(&seal(&body, 9), BIG), Ok(Object::List(["a", "b", "c"].map(b).to_vec())));
    // A linked list and a hash table set, element by element.
    let linked = seal(&[LIST, 2, 1, b'x', 0xc0, 7], 6);
    assert_eq!(restore(&linked, BIG), Ok(Object::List(vec![b("x"), b("7")])));
}

/// Every prefix of every payload, and every payload with one byte changed (the CRC made
/// right again), decodes or is refused: never a panic.
#[test]
fn hostile_payloads_are_refused_without_panicking() {
    for (_, payload, _, _) in fixtures() {
        let payload = hex(payload);
        let body = &payload[..payload.len() - 10];
        for cut in 0..body.len() {
            let _ = restore(&seal(&body[..cut], 10), BIG);
        }
        for at in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff, 0x3f, 0x40] {
                let mut changed = body.to_vec();
                changed[at] ^= flip;
                let _ = restore(&seal(&changed, 10), 1 << 20);
            }
        }
    }
}

#[test]
fn huge_declared_lengths_allocate_nothing() {
    // A set of 2^62 members, a string of 2^40 bytes, a hash of 2^32 - 1 fields.
    let mut set = vec![SET, 0x81];
    set.extend_from_slice(&(1u64 << 62).to_be_bytes());
    assert_eq!(restore(&seal(&set, 10), BIG), Err(RdbError::BadFormat));
    let mut string = vec![STRING, 0x81];
    string.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert_eq!(restore(&seal(&string, 10), BIG), Err(RdbError::BadFormat));
    let hash = [HASH, 0x80, 0xff, 0xff, 0xff, 0xff, 1, b'a'];
    assert_eq!(restore(&seal(&hash, 10), BIG), Err(RdbError::BadFormat));
    // LZF claiming 2^40 bytes: refused by the budget before anything is allocated.
    let mut lzf = vec![STRING, 0xc3, 2];
    put_len(&mut lzf, 1 << 40);
    lzf.extend_from_slice(&[0x00, b'a']);
    assert_eq!(restore(&seal(&lzf, 10), BIG), Err(RdbError::TooLarge(BIG)));
    // And one that honestly expands past the budget (a run of 264 bytes per 2 input bytes).
    let mut stream = vec![0x00, b'a'];
    for _ in 0..2000 {
        stream.extend_from_slice(&[0xe0, 0xff, 0x00]);
    }
    let mut lzf = vec![STRING, 0xc3];
    put_len(&mut lzf, stream.len() as u64);
    put_len(&mut lzf, 1 + 2000 * 264);
    lzf.extend_from_slice(&stream);
    assert_eq!(restore(&seal(&lzf, 10), 100_000), Err(RdbError::TooLarge(100_000)));
    assert_eq!(restore(&seal(&lzf, 10), BIG), Ok(Object::String(Bytes::from(vec![b'a'; 1 + 2000 * 264]))));
}

/// A value of each type survives DUMP and RESTORE (members compared in DUMP's order), under
/// the default settings and under settings that force the large forms.
#[test]
fn values_round_trip() {
    let long = "x".repeat(100);
    let many: Vec<Bytes> = (0..1000).map(|i| b(&format!("member{i}"))).collect();
    let objects = vec![
        Object::String(b("")),
        Object::String(b("-2147483648")),
        Object::String(b("-2147483649")),
        Object::String(Bytes::from(vec![b'z'; 100_000])),
        Object::List(many.clone()),
        Object::List(vec![b(""), b(&long), b("12")]),
        Object::Set(many.clone()),
        Object::Set((0..700).map(|i| b(&(i * 7 - 1000).to_string())).collect()),
        Object::Set(vec![b("9223372036854775807"), b("-9223372036854775808")]),
        Object::Hash(many.iter().map(|m| (m.clone(), b(&long))).collect()),
        Object::Hash(vec![(b("a"), b("1")), (b("b"), b(""))]),
        Object::ZSet(many.iter().enumerate().map(|(i, m)| (m.clone(), i as f64 / 3.0)).collect()),
        Object::ZSet(vec![(b("a"), 1.5e300), (b("b"), -0.25), (b("c"), f64::NEG_INFINITY), (b("d"), 4e18)]),
    ];
    let small = Encodings::default();
    let large = Encodings {
        hash_max_listpack_entries: 0,
        set_max_intset_entries: 0,
        zset_max_listpack_entries: 0,
        list_max_listpack_size: 1,
        ..small
    };
    for object in objects {
        for enc in [small, large] {
            let back = restore(&dump(&object, &enc), BIG).expect("restores");
            let normal = |o: &Object| match o {
                Object::Set(m) => {
                    let mut m = m.clone();
                    m.sort();
                    Object::Set(m)
                }
                Object::ZSet(m) => {
                    let mut m = m.clone();
                    m.sort_by(|a, b| a.0.cmp(&b.0));
                    Object::ZSet(m)
                }
                o => o.clone(),
            };
            assert_eq!(normal(&back), normal(&object), "{enc:?}");
        }
    }
}

#[test]
fn scores_print_as_redis_7_0_prints_them_in_listpacks() {
    assert_eq!(score_text(-0.0), b("0"));
    assert_eq!(score_text(1e17), b("100000000000000000"));
    assert_eq!(score_text(4e18), b("4000000000000000000"));
    assert_eq!(score_text(5e18), b("5e+18"));
    assert_eq!(score_text(2.5), b("2.5"));
    assert_eq!(score_text(f64::INFINITY), b("inf"));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn bytes() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80).prop_map(Bytes::from),
            (-100_000i64..100_000).prop_map(|v| Bytes::from(v.to_string())),
            any::<i64>().prop_map(|v| Bytes::from(v.to_string())),
            (1usize..400, any::<u8>()).prop_map(|(n, c)| Bytes::from(vec![c; n])),
        ]
    }

    fn object() -> impl Strategy<Value = Object> {
        let distinct = |v: Vec<Bytes>| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter().filter(|m| seen.insert(m.clone())).collect::<Vec<_>>()
        };
        prop_oneof![
            bytes().prop_map(Object::String),
            prop::collection::vec(bytes(), 1..40).prop_map(Object::List),
            prop::collection::vec(bytes(), 1..40).prop_map(move |v| Object::Set(distinct(v))),
            prop::collection::vec((bytes(), bytes()), 1..40).prop_map(|v| {
                let mut seen = std::collections::HashSet::new();
                Object::Hash(v.into_iter().filter(|(f, _)| seen.insert(f.clone())).collect())
            }),
            prop::collection::vec((bytes(), -1e20f64..1e20), 1..40).prop_map(|v| {
                let mut seen = std::collections::HashSet::new();
                Object::ZSet(v.into_iter().filter(|(m, _)| seen.insert(m.clone())).collect())
            }),
        ]
    }

    fn encodings() -> impl Strategy<Value = Encodings> {
        (0i64..20, 0i64..100, 0i64..20, 0i64..20, 0i64..100, -6i64..6).prop_map(|(he, hv, si, ze, zv, l)| Encodings {
            hash_max_listpack_entries: he,
            hash_max_listpack_value: hv,
            set_max_intset_entries: si,
            zset_max_listpack_entries: ze,
            zset_max_listpack_value: zv,
            list_max_listpack_size: l,
        })
    }

    /// Members in one order, to compare values whatever order DUMP wrote them in.
    fn normal(o: Object) -> Object {
        match o {
            Object::Set(mut m) => {
                m.sort();
                Object::Set(m)
            }
            Object::Hash(mut f) => {
                f.sort();
                Object::Hash(f)
            }
            Object::ZSet(mut m) => {
                m.sort_by(|a, b| a.0.cmp(&b.0));
                Object::ZSet(m)
            }
            o => o,
        }
    }

    proptest! {
        /// Any value under any settings survives DUMP and RESTORE.
        #[test]
        fn any_value_round_trips(object in object(), enc in encodings()) {
            let back = restore(&dump(&object, &enc), BIG).expect("restores");
            prop_assert_eq!(normal(back), normal(object));
        }

        /// Any bytes after any type byte, with a right CRC: a value or an error, never a panic,
        /// and never more decoded than the budget.
        #[test]
        fn any_payload_is_read_or_refused(ty in 0u8..24, body in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut all = vec![ty];
            all.extend(body);
            let _ = restore(&seal(&all, 10), 4096);
        }

        /// A valid payload with one byte changed (the CRC made right): never a panic.
        #[test]
        fn changed_payloads_are_read_or_refused(object in object(), at in any::<prop::sample::Index>(), to in any::<u8>()) {
            let payload = dump(&object, &Encodings::default());
            let mut body = payload[..payload.len() - 10].to_vec();
            let i = at.index(body.len());
            body[i] = to;
            let _ = restore(&seal(&body, 10), 1 << 16);
        }
    }
}

/// FUNCTION DUMP of one library is redis-server 7.0's bytes (its code LZF-compressed), and
/// FUNCTION RESTORE reads them back; a bad footer, another type or a pre-GA library is refused
/// with Redis's texts.
#[test]
fn function_payloads_are_redis_bytes() {
    let code = "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)";
    let redis = hex(
        "f5c34056405b1f23216c7561206e616d653d6d796c69620a72656469732e72656769737465725f0b66756e6374696f6e28276d79400b\
         02272c2040066012116b6579732c2061726773292072657475726e600c075b315d20656e64290a008d5936adc6e707da",
    );
    assert_eq!(dump_functions([code.as_bytes()]), redis);
    assert_eq!(restore_functions(&redis, 1 << 20), Ok(vec![b(code)]));
    let two = dump_functions([b"a".as_slice(), b"12".as_slice()]);
    assert_eq!(restore_functions(&two, 1 << 20), Ok(vec![b("a"), b("12")]));
    assert_eq!(restore_functions(&dump_functions([]), 1 << 20), Ok(vec![]));
    let mut bad = redis.clone();
    bad[5] ^= 1;
    assert_eq!(restore_functions(&bad, 1 << 20), Err(FunctionsPayloadError::VersionOrChecksum));
    assert_eq!(restore_functions(b"short", 1 << 20), Err(FunctionsPayloadError::VersionOrChecksum));
    assert_eq!(restore_functions(&seal(&[0, 1, b'x'], 10), 1 << 20), Err(FunctionsPayloadError::NotAFunction));
    assert_eq!(restore_functions(&seal(&[246, 1, b'x'], 10), 1 << 20), Err(FunctionsPayloadError::PreGa));
    assert_eq!(restore_functions(&seal(&[245, 5, b'x'], 10), 1 << 20), Err(FunctionsPayloadError::BadLibrary));
    assert_eq!(restore_functions(&redis, 10), Err(FunctionsPayloadError::BadLibrary), "past the budget");
}
