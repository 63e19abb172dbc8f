//! Redis's conversions between Lua values and replies (`script_lua.c`): a script's return
//! value becomes a reply (`lua_to_reply`), and a command's reply becomes a Lua value
//! (`reply_to_lua`), by the protocol the script chose with `redis.setresp` (2 by default).

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::resp::{format_double, Reply};

/// Nesting deeper than this (a table that contains itself) is answered with an error, as
/// Redis does when the Lua stack runs out.
const MAX_DEPTH: usize = 1000;

/// C's `(long long)` of a double as x86-64 computes it: truncation, and the minimum for NaN
/// and values out of range.
pub fn lua_number_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Lua 5.1's `tostring` of a number (`%.14g`).
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    crate::resp::format_g(n, 14)
}

/// A script's return value as the reply Redis gives (`luaReplyToRedisReply`).
pub fn lua_to_reply(v: &Value, resp: u8) -> Reply {
    to_reply(v, resp, 0)
}

fn to_reply(v: &Value, resp: u8, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::Error("ERR reached lua stack limit".into());
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp == 2 => {
            if *b {
                Reply::Int(1)
            } else {
                Reply::Nil
            }
        }
        Value::Boolean(b) => Reply::Bool(*b),
        Value::Number(n) => Reply::Int(lua_number_to_i64(*n)),
        Value::Integer(i) => Reply::Int(*i),
        Value::Table(t) => table_to_reply(t, resp, depth),
        _ => Reply::Nil,
    }
}

fn table_to_reply(t: &Table, resp: u8, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        let text: Vec<u8> = e.as_bytes().iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
        return Reply::RawError(Bytes::from(text));
    }
    if let Value::String(s) = field("ok") {
        let text: Vec<u8> = s.as_bytes().iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
        return Reply::Status(Bytes::from(text));
    }
    match field("double") {
        Value::Number(d) => return Reply::Double(d),
        Value::Integer(i) => return Reply::Double(i as f64),
        _ => {}
    }
    if let Value::String(s) = field("big_number") {
        let text: Vec<u8> = s.as_bytes().iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect();
        return Reply::Bulk(Bytes::from(text));
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let (Ok(Value::String(_)), Ok(Value::String(s))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            return Reply::Text(s.to_string_lossy());
        }
    }
    if let Value::Table(m) = field("map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (to_reply(&k, resp, depth + 1), to_reply(&v, resp, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let members =
            s.pairs::<Value, Value>().filter_map(Result::ok).map(|(k, _)| to_reply(&k, resp, depth + 1)).collect();
        return Reply::Set(members);
    }
    let mut items = Vec::new();
    let mut i = 1;
    loop {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_reply(&v, resp, depth + 1)),
        }
        i += 1;
    }
    Reply::Array(items)
}

/// A command's reply as the Lua value a script gets (`redisProtocolToLuaType`), in the
/// protocol the script chose.
///
/// # Errors
/// Out of Lua memory.
pub fn reply_to_lua(lua: &Lua, r: &Reply, resp: u8) -> mlua::Result<Value> {
    let resp3 = resp == 3;
    let string = |b: &[u8]| -> mlua::Result<Value> { Ok(Value::String(lua.create_string(b)?)) };
    let single = |name: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(name, v)?;
        Ok(Value::Table(t))
    };
    let array = |items: &mut dyn Iterator<Item = mlua::Result<Value>>| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for (i, v) in items.enumerate() {
            t.raw_set(i + 1, v?)?;
        }
        Ok(Value::Table(t))
    };
    Ok(match r {
        Reply::Simple(s) => single("ok", string(s.as_bytes())?)?,
        Reply::Status(s) => single("ok", string(s)?)?,
        Reply::Error(e) => {
            let mut raw = b"-".to_vec();
            raw.extend_from_slice(e.as_bytes());
            single("err", string(&super::error_text(&raw))?)?
        }
        Reply::RawError(e) => {
            let mut raw = b"-".to_vec();
            raw.extend_from_slice(e);
            single("err", string(&super::error_text(&raw))?)?
        }
        Reply::Int(i) => Value::Number(*i as f64),
        Reply::Bulk(b) => string(b)?,
        Reply::Nil | Reply::NilArray | Reply::Nothing => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Bool(b) if resp3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Number(if *b { 1.0 } else { 0.0 }),
        Reply::Array(items) | Reply::Push(items) | Reply::Seq(items) => {
            array(&mut items.iter().map(|r| reply_to_lua(lua, r, resp)))?
        }
        Reply::Set(items) if resp3 => {
            let t = lua.create_table()?;
            for item in items {
                t.raw_set(reply_to_lua(lua, item, resp)?, true)?;
            }
            single("set", Value::Table(t))?
        }
        Reply::Set(items) => array(&mut items.iter().map(|r| reply_to_lua(lua, r, resp)))?,
        Reply::Map(pairs) if resp3 => {
            let t = lua.create_table()?;
            for (k, v) in pairs {
                t.raw_set(reply_to_lua(lua, k, resp)?, reply_to_lua(lua, v, resp)?)?;
            }
            single("map", Value::Table(t))?
        }
        Reply::Map(pairs) => {
            array(&mut pairs.iter().flat_map(|(k, v)| [reply_to_lua(lua, k, resp), reply_to_lua(lua, v, resp)]))?
        }
        Reply::Pairs(pairs) if resp3 => array(&mut pairs.iter().map(|(k, v)| {
            let t = lua.create_table()?;
            t.raw_set(1, reply_to_lua(lua, k, resp)?)?;
            t.raw_set(2, reply_to_lua(lua, v, resp)?)?;
            Ok(Value::Table(t))
        }))?,
        Reply::Pairs(pairs) => {
            array(&mut pairs.iter().flat_map(|(k, v)| [reply_to_lua(lua, k, resp), reply_to_lua(lua, v, resp)]))?
        }
        Reply::Text(t) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", "txt")?;
            v.raw_set("string", lua.create_string(t)?)?;
            single("verbatim_string", Value::Table(v))?
        }
        Reply::Text(t) => string(t.as_bytes())?,
        Reply::Double(d) if resp3 => single("double", Value::Number(*d))?,
        Reply::Double(d) => string(&format_double(*d))?,
        Reply::DoubleText(t) if resp3 => {
            single("double", Value::Number(std::str::from_utf8(t).ok().and_then(|t| t.parse().ok()).unwrap_or(0.0)))?
        }
        Reply::DoubleText(t) => string(t)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(lua: &Lua, code: &str) -> Value {
        lua.load(code).eval().expect("lua")
    }

    #[test]
    fn lua_values_become_redis_replies() {
        let lua = Lua::new();
        let r = |code: &str| lua_to_reply(&eval(&lua, code), 2);
        assert_eq!(r("return 1.9"), Reply::Int(1));
        assert_eq!(r("return -1.9"), Reply::Int(-1));
        assert_eq!(r("return 1e20"), Reply::Int(i64::MIN));
        assert_eq!(r("return 0/0"), Reply::Int(i64::MIN));
        assert_eq!(r("return false"), Reply::Nil);
        assert_eq!(r("return true"), Reply::Int(1));
        assert_eq!(r("return nil"), Reply::Nil);
        assert_eq!(r("return 'x'"), Reply::bulk("x"));
        assert_eq!(r("return {1,2,nil,3}"), Reply::Array(vec![Reply::Int(1), Reply::Int(2)]));
        assert_eq!(
            r("return {1,{2,'x'},false}"),
            Reply::Array(vec![Reply::Int(1), Reply::Array(vec![Reply::Int(2), Reply::bulk("x")]), Reply::Nil])
        );
        assert_eq!(r("return {ok='fine'}"), Reply::Status(Bytes::from("fine")));
        assert_eq!(r("return {err='bad\\r\\nthing'}"), Reply::RawError(Bytes::from("bad  thing")));
        assert_eq!(r("return {err=3}"), Reply::Array(vec![]));
        assert_eq!(r("return {double=3.5}"), Reply::Double(3.5));
        assert_eq!(r("return {1,{err='inner'}}"), Reply::Array(vec![Reply::Int(1), Reply::RawError("inner".into())]));
        assert_eq!(lua_to_reply(&eval(&lua, "return true"), 3), Reply::Bool(true));
        assert_eq!(
            lua_to_reply(&eval(&lua, "return {map={a=1}}"), 3),
            Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))])
        );
        assert!(matches!(r("local t = {} t[1] = t return t"), Reply::Array(_)));
    }

    #[test]
    fn replies_become_lua_values() {
        let lua = Lua::new();
        let to = |r: &Reply, resp: u8| {
            let v = reply_to_lua(&lua, r, resp).expect("convert");
            lua.globals().set("v", v).expect("set");
            lua.load("return type(v) == 'table' and (v.ok or v.err or v.double or #v) or v")
                .eval::<Value>()
                .expect("eval")
        };
        assert!(matches!(to(&Reply::Nil, 2), Value::Boolean(false)));
        assert!(matches!(to(&Reply::Nil, 3), Value::Nil));
        assert!(matches!(to(&Reply::NilArray, 2), Value::Boolean(false)));
        // mlua reads an integral Lua 5.1 number back as an integer.
        let num = |v: Value| match v {
            Value::Number(n) => Some(n),
            Value::Integer(i) => Some(i as f64),
            _ => None,
        };
        assert_eq!(num(to(&Reply::Int(7), 2)), Some(7.0));
        let ok = to(&Reply::ok(), 2);
        assert_eq!(ok.as_string().map(|s| s.to_string_lossy()), Some("OK".into()));
        let err = to(&Reply::Error("WRONGTYPE Operation".into()), 2);
        assert_eq!(err.as_string().map(|s| s.to_string_lossy()), Some("WRONGTYPE Operation".into()));
        let err = to(&Reply::Error("NOSPACE".into()), 2);
        assert_eq!(err.as_string().map(|s| s.to_string_lossy()), Some("ERR NOSPACE".into()));
        let d = to(&Reply::Double(1.5), 2);
        assert_eq!(d.as_string().map(|s| s.to_string_lossy()), Some("1.5".into()));
        assert_eq!(num(to(&Reply::Double(1.5), 3)), Some(1.5));
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(num(to(&map, 2)), Some(2.0));
    }

    #[test]
    fn numbers_print_as_lua_prints_them() {
        assert_eq!(format_number(3.5), "3.5");
        assert_eq!(format_number(1e15), "1e+15");
        assert_eq!(format_number(100.0), "100");
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(1e14), "1e+14");
        assert_eq!(format_number(123456789012.0), "123456789012");
    }
}
