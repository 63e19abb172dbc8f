//! Replies as commands build them, encoded for the connection's protocol version.

use bytes::{Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::{resp2, resp3};

/// The protocol a connection speaks (HELLO switches it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// A reply, independent of the protocol version.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+text`.
    Simple(&'static str),
    /// `+text` of a text made at run time (a script's `status_reply`; CR and LF already
    /// replaced).
    Status(Bytes),
    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2 (a script's `true` under RESP3).
    Bool(bool),
    /// `-text`: the text starts with the error code (`ERR`, `NOAUTH`, `NOQUORUM`, ...).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// The null array (`*-1` in RESP2, `_` in RESP3): an EXEC that WATCH aborted.
    NilArray,
    Array(Vec<Reply>),
    /// A map in RESP3, a flat array of pairs in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set in RESP3 (SMEMBERS), an array in RESP2.
    Set(Vec<Reply>),
    /// An array of two-element arrays in RESP3, a flat array in RESP2 (HRANDFIELD WITHVALUES).
    Pairs(Vec<(Reply, Reply)>),
    /// Free text (INFO): a verbatim string in RESP3, a bulk string in RESP2.
    Text(String),
    /// A score (ZSCORE, ZRANGE WITHSCORES ...): a bulk string in RESP2, a double in RESP3,
    /// formatted as Redis 7.0 formats doubles (`%.17g`, `inf`, `-inf`).
    Double(f64),
    /// A double already formatted as its command formats it (GEOPOS's coordinates, `%.17Lf`
    /// trimmed): a bulk string in RESP2, a double in RESP3.
    DoubleText(Bytes),
    /// No reply at all: SHUTDOWN, whose client sees the connection close.
    Nothing,
    /// An out-of-band message (pub/sub's `message`, `subscribe` ...): a push in RESP3, an
    /// array in RESP2.
    Push(Vec<Reply>),
    /// Several replies in a row (SUBSCRIBE answers one push per channel); inside EXEC's array
    /// they count as one element, as Redis writes them.
    Seq(Vec<Reply>),
    /// An error that echoes a client's bytes as they were sent (an unknown command's name may
    /// not be UTF-8): `-` and the bytes, with CR and LF turned into spaces as Redis does.
    RawError(Bytes),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK")
    }

    pub fn bulk(s: impl Into<Bytes>) -> Reply {
        Reply::Bulk(s.into())
    }

    /// Encodes the reply at the end of `out`.
    ///
    /// The scalar replies of the hot path (`+OK`, a bulk value, nil, an integer) are written
    /// directly: they are the same bytes in both protocols but nil, and building a crate frame
    /// for them costs an allocation and a zero-filled copy per reply. Everything else goes
    /// through `redis-protocol`'s encoders.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Simple(s) => return put_line(out, b'+', s.as_bytes()),
            Reply::Int(i) => return put_line(out, b':', itoa::Buffer::new().format(*i).as_bytes()),
            Reply::Status(s) => return put_line(out, b'+', s),
            Reply::Bool(b) if protocol == Protocol::Resp2 => return put_line(out, b':', if *b { b"1" } else { b"0" }),
            Reply::Bool(b) => return out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Nil if protocol == Protocol::Resp2 => return out.extend_from_slice(b"$-1\r\n"),
            Reply::Nil => return out.extend_from_slice(b"_\r\n"),
            Reply::NilArray if protocol == Protocol::Resp2 => return out.extend_from_slice(b"*-1\r\n"),
            Reply::NilArray => return out.extend_from_slice(b"_\r\n"),
            Reply::Nothing => return,
            Reply::RawError(b) => {
                let clean: Vec<u8> = b.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
                return put_line(out, b'-', &clean);
            }
            Reply::Bulk(b) => {
                put_line(out, b'$', itoa::Buffer::new().format(b.len()).as_bytes());
                out.reserve(b.len() + 2);
                out.extend_from_slice(b);
                return out.extend_from_slice(b"\r\n");
            }
            Reply::Double(d) if protocol == Protocol::Resp2 => {
                return Reply::Bulk(format_double(*d)).encode(protocol, out)
            }
            Reply::Double(d) => return put_line(out, b',', &format_double(*d)),
            Reply::DoubleText(t) if protocol == Protocol::Resp2 => return Reply::Bulk(t.clone()).encode(protocol, out),
            Reply::DoubleText(t) => return put_line(out, b',', t),
            Reply::Seq(replies) => return replies.iter().for_each(|r| r.encode(protocol, out)),
            Reply::Push(items) => {
                let kind = if protocol == Protocol::Resp3 { b'>' } else { b'*' };
                put_line(out, kind, itoa::Buffer::new().format(items.len()).as_bytes());
                return items.iter().for_each(|r| r.encode(protocol, out));
            }
            // Aggregates are written here too, so a double inside one is written as above.
            Reply::Array(items) => {
                put_line(out, b'*', itoa::Buffer::new().format(items.len()).as_bytes());
                return items.iter().for_each(|r| r.encode(protocol, out));
            }
            // Maps and sets in the order given (the crate's RESP3 frames hold them in hash
            // tables, which would reorder them: Redis writes its maps in a fixed order).
            Reply::Map(pairs) => {
                match protocol {
                    Protocol::Resp2 => put_line(out, b'*', itoa::Buffer::new().format(pairs.len() * 2).as_bytes()),
                    Protocol::Resp3 => put_line(out, b'%', itoa::Buffer::new().format(pairs.len()).as_bytes()),
                }
                return pairs.iter().for_each(|(k, v)| {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                });
            }
            Reply::Set(items) => {
                let kind = if protocol == Protocol::Resp3 { b'~' } else { b'*' };
                put_line(out, kind, itoa::Buffer::new().format(items.len()).as_bytes());
                return items.iter().for_each(|r| r.encode(protocol, out));
            }
            Reply::Pairs(pairs) if protocol == Protocol::Resp2 => {
                put_line(out, b'*', itoa::Buffer::new().format(pairs.len() * 2).as_bytes());
                return pairs.iter().for_each(|(k, v)| {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                });
            }
            Reply::Pairs(pairs) => {
                put_line(out, b'*', itoa::Buffer::new().format(pairs.len()).as_bytes());
                return pairs.iter().for_each(|(k, v)| {
                    out.extend_from_slice(b"*2\r\n");
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                });
            }
            _ => {}
        }
        let result = match protocol {
            Protocol::Resp2 => resp2::encode::extend_encode(out, &self.to_resp2(), false),
            Protocol::Resp3 => resp3::encode::complete::extend_encode(out, &self.to_resp3(), false),
        };
        // The frames built here are always well-formed, so encoding cannot fail; if the crate
        // ever disagrees, the client gets an error rather than a half-written frame.
        if let Err(e) = result {
            tracing::error!("reply encoding failed: {e}");
            out.extend_from_slice(b"-ERR internal error encoding reply\r\n");
        }
    }

    fn to_resp2(&self) -> resp2::types::BytesFrame {
        use resp2::types::BytesFrame as F;
        match self {
            Reply::Simple(s) => F::SimpleString(Bytes::from_static(s.as_bytes())),
            Reply::Error(e) => F::Error(Str::from(e.as_str())),
            Reply::RawError(e) => F::Error(Str::from(String::from_utf8_lossy(e).replace(['\r', '\n'], " "))),
            Reply::Int(i) => F::Integer(*i),
            Reply::Status(s) => F::SimpleString(s.clone()),
            Reply::Bool(b) => F::Integer(i64::from(*b)),
            Reply::Bulk(b) => F::BulkString(b.clone()),
            Reply::Double(d) => F::BulkString(format_double(*d)),
            Reply::DoubleText(t) => F::BulkString(t.clone()),
            Reply::Nil | Reply::NilArray | Reply::Nothing => F::Null,
            Reply::Array(items) | Reply::Push(items) | Reply::Seq(items) => {
                F::Array(items.iter().map(Reply::to_resp2).collect())
            }
            Reply::Map(pairs) | Reply::Pairs(pairs) => {
                F::Array(pairs.iter().flat_map(|(k, v)| [k.to_resp2(), v.to_resp2()]).collect())
            }
            Reply::Set(items) => F::Array(items.iter().map(Reply::to_resp2).collect()),
            Reply::Text(t) => F::BulkString(Bytes::copy_from_slice(t.as_bytes())),
        }
    }

    fn to_resp3(&self) -> resp3::types::BytesFrame {
        use resp3::types::BytesFrame as F;
        match self {
            Reply::Simple(s) => F::SimpleString { data: Bytes::from_static(s.as_bytes()), attributes: None },
            Reply::Error(e) => F::SimpleError { data: Str::from(e.as_str()), attributes: None },
            Reply::RawError(e) => F::SimpleError {
                data: Str::from(String::from_utf8_lossy(e).replace(['\r', '\n'], " ")),
                attributes: None,
            },
            Reply::Int(i) => F::Number { data: *i, attributes: None },
            Reply::Status(s) => F::SimpleString { data: s.clone(), attributes: None },
            Reply::Bool(b) => F::Boolean { data: *b, attributes: None },
            Reply::Bulk(b) => F::BlobString { data: b.clone(), attributes: None },
            Reply::Double(d) => F::Double { data: *d, attributes: None },
            Reply::DoubleText(t) => F::Double {
                data: std::str::from_utf8(t).ok().and_then(|t| t.parse().ok()).unwrap_or(0.0),
                attributes: None,
            },
            Reply::Nil | Reply::NilArray | Reply::Nothing => F::Null,
            Reply::Array(items) | Reply::Seq(items) => {
                F::Array { data: items.iter().map(Reply::to_resp3).collect(), attributes: None }
            }
            Reply::Push(items) => F::Push { data: items.iter().map(Reply::to_resp3).collect(), attributes: None },
            Reply::Map(pairs) => {
                F::Map { data: pairs.iter().map(|(k, v)| (k.to_resp3(), v.to_resp3())).collect(), attributes: None }
            }
            Reply::Set(items) => F::Set { data: items.iter().map(Reply::to_resp3).collect(), attributes: None },
            Reply::Pairs(pairs) => F::Array {
                data: pairs
                    .iter()
                    .map(|(k, v)| F::Array { data: vec![k.to_resp3(), v.to_resp3()], attributes: None })
                    .collect(),
                attributes: None,
            },
            Reply::Text(t) => F::VerbatimString {
                data: Bytes::copy_from_slice(t.as_bytes()),
                format: resp3::types::VerbatimStringFormat::Text,
                attributes: None,
            },
        }
    }
}

/// A double as Redis 7.0 replies it: C's `%.17g` (17 significant digits, trailing zeros
/// dropped, an exponent of two digits or more outside 1e-4 ..< 1e17), `inf`, `-inf`.
pub fn format_double(d: f64) -> Bytes {
    Bytes::from(format_g(d, 17))
}

/// C's `%.<digits>g` of a number that is not NaN (`inf`, `-0`, exponents of two digits or more).
pub fn format_g(d: f64, digits: i32) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{d:.*e}", (digits - 1) as usize);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..digits).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{d:.*}", (digits - 1 - exp) as usize))
    }
}

/// `<kind><text>\r\n`.
fn put_line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> Vec<u8> {
        let mut b = BytesMut::new();
        r.encode(p, &mut b);
        b.to_vec()
    }

    #[test]
    fn doubles_read_as_printf_17g() {
        let cases: [(f64, &str); 10] = [
            (1.1, "1.1000000000000001"),
            (0.1, "0.10000000000000001"),
            (1e-5, "1.0000000000000001e-05"),
            (1e20, "1e+20"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (3.0, "3"),
            (0.30000000000000004, "0.30000000000000004"),
            (-2.5, "-2.5"),
            (1e-4, "0.0001"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (d, text) in cases {
            assert_eq!(format_double(d), Bytes::from(text), "{d}");
        }
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp3), b",1.5\r\n");
        assert_eq!(enc(&Reply::DoubleText(Bytes::from("13.5")), Protocol::Resp3), b",13.5\r\n");
        assert_eq!(enc(&Reply::DoubleText(Bytes::from("13.5")), Protocol::Resp2), b"$4\r\n13.5\r\n");
        assert_eq!(enc(&Reply::Array(vec![Reply::Double(2.0)]), Protocol::Resp2), b"*1\r\n$1\r\n2\r\n");
    }

    #[test]
    fn exact_bytes_in_both_protocols() {
        assert_eq!(enc(&Reply::ok(), Protocol::Resp2), b"+OK\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Protocol::Resp3), b"_\r\n");
        assert_eq!(enc(&Reply::NilArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(enc(&Reply::Error("ERR x".into()), Protocol::Resp3), b"-ERR x\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, Protocol::Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Protocol::Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
        // In the order given, as Redis writes its maps (the crate's frames would reorder them).
        let keys = ["zeta", "alpha", "mid", "beta", "omega", "a", "b", "c"];
        let map = Reply::Map(keys.iter().map(|k| (Reply::bulk(*k), Reply::Nil)).collect());
        let want: String = keys.iter().map(|k| format!("${}\r\n{k}\r\n_\r\n", k.len())).collect();
        assert_eq!(enc(&map, Protocol::Resp3), format!("%8\r\n{want}").into_bytes());
        let set = Reply::Set(keys.iter().map(|k| Reply::Simple(k)).collect());
        let want: String = keys.iter().map(|k| format!("+{k}\r\n")).collect();
        assert_eq!(enc(&set, Protocol::Resp3), format!("~8\r\n{want}").into_bytes());
        assert_eq!(enc(&Reply::Text("hi".into()), Protocol::Resp3), b"=6\r\ntxt:hi\r\n");
        // The direct scalar encodings agree with the crate's.
        for r in [Reply::ok(), Reply::Int(-42), Reply::bulk("v\r\nx"), Reply::bulk(""), Reply::Nil] {
            for p in [Protocol::Resp2, Protocol::Resp3] {
                let mut crate_bytes = BytesMut::new();
                match p {
                    Protocol::Resp2 => resp2::encode::extend_encode(&mut crate_bytes, &r.to_resp2(), false),
                    Protocol::Resp3 => resp3::encode::complete::extend_encode(&mut crate_bytes, &r.to_resp3(), false),
                }
                .unwrap();
                assert_eq!(enc(&r, p), crate_bytes.to_vec(), "{r:?} in {p:?}");
            }
        }
    }
}
