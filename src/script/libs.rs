//! The libraries Redis gives scripts, as Rust functions with the C libraries' behaviour and
//! error texts: `cjson` (lua-cjson), `cmsgpack` (lua-cmsgpack), `bit` (LuaBitOp), `struct`
//! (lua_struct.c: the format logic is `lua_struct.rs`, the argument handling here).

use mlua::{Lua, MultiValue, Table, Value};

use super::convert::format_number;
use super::{check_number, lifted};

pub fn register(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    raw.set("cjson_encode", lifted(lua, |lua, args| cjson_encode(lua, &args))?)?;
    raw.set("cjson_decode", lifted(lua, |lua, args| cjson_decode(lua, &args))?)?;
    raw.set("msgpack_pack", lifted(lua, |lua, args| msgpack_pack(lua, &args))?)?;
    raw.set("msgpack_unpack", lifted(lua, |lua, args| msgpack_unpack(lua, &args))?)?;
    raw.set("struct_pack", lifted(lua, |lua, args| struct_pack(lua, &args))?)?;
    raw.set("struct_unpack", lifted(lua, |lua, args| struct_unpack(lua, &args))?)?;
    raw.set("struct_size", lifted(lua, |_, args| struct_size(&args))?)?;
    type BitFn = fn(&Lua, &MultiValue) -> Result<Value, String>;
    let bits: [(&str, BitFn); 12] = [
        ("tobit", |_, a| Ok(num(bitarg(a, 0, "tobit")?))),
        ("bnot", |_, a| Ok(num(!bitarg(a, 0, "bnot")?))),
        ("band", |_, a| fold(a, "band", |x, y| x & y)),
        ("bor", |_, a| fold(a, "bor", |x, y| x | y)),
        ("bxor", |_, a| fold(a, "bxor", |x, y| x ^ y)),
        ("lshift", |_, a| shift(a, "lshift", |x, n| ((x as u32) << n) as i32)),
        ("rshift", |_, a| shift(a, "rshift", |x, n| ((x as u32) >> n) as i32)),
        ("arshift", |_, a| shift(a, "arshift", |x, n| x >> n)),
        ("rol", |_, a| shift(a, "rol", |x, n| (x as u32).rotate_left(n) as i32)),
        ("ror", |_, a| shift(a, "ror", |x, n| (x as u32).rotate_right(n) as i32)),
        ("bswap", |_, a| Ok(num((bitarg(a, 0, "bswap")? as u32).swap_bytes() as i32))),
        ("tohex", tohex),
    ];
    for (name, f) in bits {
        raw.set(format!("bit_{name}"), lifted(lua, move |lua, args| f(lua, &args).map(|v| vec![v]))?)?;
    }
    Ok(())
}

// ---- struct ----------------------------------------------------------------------------

/// `luaL_checklstring`: a string, or a number as Lua prints it.
fn check_lstring(args: &MultiValue, i: usize, fname: &str) -> Result<Vec<u8>, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(n)) => Ok(format_number(*n).into_bytes()),
        Some(Value::Integer(n)) => Ok(format_number(*n as f64).into_bytes()),
        other => Err(format!(
            "bad argument #{} to '{fname}' (string expected, got {})",
            i + 1,
            other.map_or("no value", |v| if matches!(v, Value::Nil) { "nil" } else { v.type_name() })
        )),
    }
}

/// An error of the struct library as Lua shows it.
fn struct_error(e: super::lua_struct::StructError, fname: &str) -> String {
    e.text(fname)
}

fn struct_pack(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    use super::lua_struct::StructError;
    let fmt = check_lstring(args, 0, "pack")?;
    // b_pack pushes a nil after its arguments (a mark before its buffer): the first missing
    // argument is that nil.
    let mut args = args.clone();
    args.push_back(Value::Nil);
    let number = |i: usize| check_number(&args, i - 1, "pack").map_err(StructError::Plain);
    let string = |i: usize| check_lstring(&args, i - 1, "pack").map_err(StructError::Plain);
    let packed = super::lua_struct::pack(&fmt, &number, &string).map_err(|e| struct_error(e, "pack"))?;
    Ok(vec![lua_string(lua, &packed)?])
}

fn struct_unpack(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    use super::lua_struct::Item;
    let fmt = check_lstring(args, 0, "unpack")?;
    let data = check_lstring(args, 1, "unpack")?;
    // `luaL_optinteger(L, 3, 1)`: absent or nil is 1; a number is truncated as C casts it.
    let pos = match args.get(2) {
        None | Some(Value::Nil) => 1,
        _ => super::convert::lua_number_to_i64(check_number(args, 2, "unpack")?),
    };
    let items = super::lua_struct::unpack(&fmt, &data, pos).map_err(|e| struct_error(e, "unpack"))?;
    items
        .into_iter()
        .map(|item| match item {
            Item::Number(n) => Ok(Value::Number(n)),
            Item::Bytes(b) => lua_string(lua, &b),
        })
        .collect()
}

fn struct_size(args: &MultiValue) -> Result<Vec<Value>, String> {
    let fmt = check_lstring(args, 0, "size")?;
    let size = super::lua_struct::size(&fmt).map_err(|e| struct_error(e, "size"))?;
    Ok(vec![Value::Number(size as f64)])
}

fn num(x: i32) -> Value {
    Value::Number(f64::from(x))
}

/// LuaBitOp's `barg`: the number's low 32 bits after rounding (the 2^52 + 2^51 trick).
fn bitarg(args: &MultiValue, i: usize, fname: &str) -> Result<i32, String> {
    let n = check_number(args, i, fname)?;
    Ok((n + 6_755_399_441_055_744.0).to_bits() as u32 as i32)
}

fn fold(args: &MultiValue, fname: &str, op: fn(i32, i32) -> i32) -> Result<Value, String> {
    let mut acc = bitarg(args, 0, fname)?;
    for i in 1..args.len() {
        acc = op(acc, bitarg(args, i, fname)?);
    }
    Ok(num(acc))
}

fn shift(args: &MultiValue, fname: &str, op: fn(i32, u32) -> i32) -> Result<Value, String> {
    let x = bitarg(args, 0, fname)?;
    let n = (bitarg(args, 1, fname)? & 31) as u32;
    Ok(num(op(x, n)))
}

fn tohex(lua: &Lua, args: &MultiValue) -> Result<Value, String> {
    let x = bitarg(args, 0, "tohex")? as u32;
    let mut n = if args.len() > 1 && !matches!(args.get(1), Some(Value::Nil)) { bitarg(args, 1, "tohex")? } else { 8 };
    let upper = n < 0;
    if upper {
        n = n.wrapping_neg();
    }
    let n = (n as u32).min(8) as usize;
    let text = if upper { format!("{x:08X}") } else { format!("{x:08x}") };
    lua_string(lua, &text.as_bytes()[8 - n..])
}

fn lua_string(lua: &Lua, b: &[u8]) -> Result<Value, String> {
    lua.create_string(b).map(Value::String).map_err(|e| e.to_string())
}

fn is_null(v: &Value) -> bool {
    matches!(v, Value::LightUserData(p) if p.0.is_null())
}

// ---- cjson ----------------------------------------------------------------------------

const JSON_MAX_DEPTH: usize = 1000;

fn cjson_encode(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    if args.len() != 1 {
        return Err("bad argument #1 to 'encode' (expected 1 argument)".into());
    }
    let mut out = Vec::new();
    json_value(&args[0], 0, &mut out)?;
    Ok(vec![lua_string(lua, &out)?])
}

fn json_number(n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if n.is_nan() || n.is_infinite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(format_number(n).as_bytes());
    Ok(())
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            c if c < 32 || c == 127 => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn json_value(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Number(n) => json_number(*n, out)?,
        Value::Integer(i) => json_number(*i as f64, out)?,
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        v if is_null(v) => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > JSON_MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            json_table(t, depth, out)?;
        }
        other => return Err(format!("Cannot serialise {}: type not supported", other.type_name())),
    }
    Ok(())
}

/// lua-cjson's array test: every key a positive integer; the largest is the length (an
/// excessively sparse array is an error). `None`: an object.
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    let mut max = 0usize;
    let mut items = 0usize;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match k {
            Value::Number(n) => n,
            Value::Integer(i) => i as f64,
            _ => return Ok(None),
        };
        if n < 1.0 || n.floor() != n {
            return Ok(None);
        }
        max = max.max(n as usize);
        items += 1;
    }
    if max > 10 && max > items * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok((max > 0).then_some(max))
}

fn json_table(t: &Table, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if let Some(len) = array_length(t)? {
        out.push(b'[');
        for i in 1..=len {
            if i > 1 {
                out.push(b',');
            }
            let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            json_value(&v, depth, out)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    let mut first = true;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        if !first {
            out.push(b',');
        }
        first = false;
        match &k {
            Value::String(s) => json_string(&s.as_bytes(), out),
            Value::Number(n) => json_string(format_number(*n).as_bytes(), out),
            Value::Integer(i) => json_string(format_number(*i as f64).as_bytes(), out),
            _ => return Err("Cannot serialise table: table key must be a number or string".into()),
        }
        out.push(b':');
        json_value(&v, depth, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn cjson_decode(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    if args.len() != 1 {
        return Err("bad argument #1 to 'decode' (expected 1 argument)".into());
    }
    let text = match &args[0] {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(n) => format_number(*n).into_bytes(),
        other => return Err(format!("bad argument #1 to 'decode' (string expected, got {})", other.type_name())),
    };
    let mut p = JsonParser { lua, s: &text, i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    if p.i < p.s.len() {
        let found = p.token_name();
        return Err(format!("Expected the end but found {found} at character {}", p.i + 1));
    }
    Ok(vec![v])
}

struct JsonParser<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    /// How lua-cjson names the token at the current position in its errors.
    fn token_name(&self) -> &'static str {
        match self.s.get(self.i) {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b'"') => "T_STRING",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            Some(b't' | b'f') if self.s[self.i..].starts_with(b"true") || self.s[self.i..].starts_with(b"false") => {
                "T_BOOLEAN"
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => "T_NULL",
            _ => "invalid token",
        }
    }

    fn expected(&self, what: &str) -> String {
        format!("Expected {what} but found {} at character {}", self.token_name(), self.i + 1)
    }

    fn err<T>(&self, e: String) -> Result<T, String> {
        Err(e)
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        let lua = self.lua;
        let Some(&c) = self.s.get(self.i) else { return self.err(self.expected("value")) };
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                let s = self.string()?;
                lua_string(lua, &s)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match text.parse::<f64>() {
                    Ok(n) => Ok(Value::Number(n)),
                    Err(_) => {
                        self.i = start;
                        Err(format!("Expected value but found invalid number at character {}", start + 1))
                    }
                }
            }
            b't' if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())))
            }
            _ => self.err(self.expected("value")),
        }
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > JSON_MAX_DEPTH {
            return Err(format!("Found too many nested data structures ({}) at character {}", self.depth, self.i + 1));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Value, String> {
        self.nest()?;
        self.i += 1;
        let t = self.lua.create_table().map_err(|e| e.to_string())?;
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err(self.expected("object key string"));
            }
            let key = self.string()?;
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return self.err(self.expected("colon"));
            }
            self.i += 1;
            let v = self.value()?;
            let key = self.lua.create_string(&key).map_err(|e| e.to_string())?;
            t.raw_set(key, v).map_err(|e| e.to_string())?;
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return self.err(self.expected("comma or object end")),
            }
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    fn array(&mut self) -> Result<Value, String> {
        self.nest()?;
        self.i += 1;
        let t = self.lua.create_table().map_err(|e| e.to_string())?;
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(Value::Table(t));
        }
        let mut n = 1;
        loop {
            let v = self.value()?;
            t.raw_set(n, v).map_err(|e| e.to_string())?;
            n += 1;
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                _ => return self.err(self.expected("comma or array end")),
            }
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                self.i = start;
                return Err(format!("Expected value but found unexpected end of string at character {}", start + 1));
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else { continue };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.s[self.i..].starts_with(b"\\u") {
                                self.i += 2;
                                let low = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            return Err(format!(
                                "Expected value but found invalid escape code at character {}",
                                start + 1
                            ))
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.i..self.i + 4).and_then(|d| std::str::from_utf8(d).ok());
        let cp = digits.and_then(|d| u32::from_str_radix(d, 16).ok());
        match cp {
            Some(cp) => {
                self.i += 4;
                Ok(cp)
            }
            None => Err(format!("Expected value but found invalid unicode escape code at character {}", self.i + 1)),
        }
    }
}

// ---- cmsgpack -------------------------------------------------------------------------

const MSGPACK_MAX_NESTING: usize = 16;

fn msgpack_pack(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    if args.is_empty() {
        return Err("MessagePack pack needs input.".into());
    }
    let mut out = Vec::new();
    for v in args.iter() {
        mp_encode(v, 0, &mut out)?;
    }
    Ok(vec![lua_string(lua, &out)?])
}

fn mp_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        let u = i as u64;
        if u <= 127 {
            out.push(u as u8);
        } else if u <= 0xff {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= -128 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn mp_len(len: usize, fix: u8, fix_max: usize, codes: [u8; 3], out: &mut Vec<u8>) {
    if len < fix_max {
        out.push(fix | len as u8);
    } else if codes[0] != 0 && len <= 0xff {
        out.extend_from_slice(&[codes[0], len as u8]);
    } else if len <= 0xffff {
        out.push(codes[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(codes[2]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn mp_encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            mp_len(b.len(), 0xa0, 32, [0xd9, 0xda, 0xdb], out);
            out.extend_from_slice(&b);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(*i, out),
        Value::Number(n) => {
            let n = *n;
            if !n.is_infinite() && !n.is_nan() && (n as i64) as f64 == n {
                mp_int(n as i64, out);
            } else if (n as f32) as f64 == n || n.is_nan() {
                out.push(0xca);
                out.extend_from_slice(&(n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::Table(t) if depth < MSGPACK_MAX_NESTING => {
            // An array: keys 1..n with no holes.
            let mut max = 0usize;
            let mut count = 0usize;
            let mut array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair.map_err(|e| e.to_string())?;
                count += 1;
                match k {
                    Value::Number(n) if n >= 1.0 && n.floor() == n => max = max.max(n as usize),
                    Value::Integer(i) if i >= 1 => max = max.max(i as usize),
                    _ => array = false,
                }
            }
            if array && max == count {
                mp_len(count, 0x90, 16, [0, 0xdc, 0xdd], out);
                for i in 1..=count {
                    let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    mp_encode(&v, depth + 1, out)?;
                }
            } else {
                mp_len(count, 0x80, 16, [0, 0xde, 0xdf], out);
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair.map_err(|e| e.to_string())?;
                    mp_encode(&k, depth + 1, out)?;
                    mp_encode(&v, depth + 1, out)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

fn msgpack_unpack(lua: &Lua, args: &MultiValue) -> Result<Vec<Value>, String> {
    let data = match args.front() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        other => {
            return Err(format!(
                "bad argument #1 to 'unpack' (string expected, got {})",
                other.map_or("no value", |v| v.type_name())
            ))
        }
    };
    let mut i = 0;
    let mut out = Vec::new();
    while i < data.len() {
        out.push(mp_decode(lua, &data, &mut i)?);
    }
    Ok(out)
}

fn mp_take<'a>(data: &'a [u8], i: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let s = data.get(*i..*i + n).ok_or_else(|| "Missing bytes in input.".to_owned())?;
    *i += n;
    Ok(s)
}

fn mp_decode(lua: &Lua, data: &[u8], i: &mut usize) -> Result<Value, String> {
    let c = mp_take(data, i, 1)?[0];
    let be = |b: &[u8]| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    let string = |lua: &Lua, b: &[u8]| lua_string(lua, b);
    Ok(match c {
        0x00..=0x7f => Value::Number(f64::from(c)),
        0x80..=0x8f => mp_map(lua, data, i, usize::from(c & 0x0f))?,
        0x90..=0x9f => mp_array(lua, data, i, usize::from(c & 0x0f))?,
        0xa0..=0xbf => {
            let b = mp_take(data, i, usize::from(c & 0x1f))?;
            string(lua, b)?
        }
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xc4 | 0xd9 => {
            let n = usize::from(mp_take(data, i, 1)?[0]);
            string(lua, mp_take(data, i, n)?)?
        }
        0xc5 | 0xda => {
            let n = be(mp_take(data, i, 2)?) as usize;
            string(lua, mp_take(data, i, n)?)?
        }
        0xc6 | 0xdb => {
            let n = be(mp_take(data, i, 4)?) as usize;
            string(lua, mp_take(data, i, n)?)?
        }
        0xca => Value::Number(f64::from(f32::from_bits(be(mp_take(data, i, 4)?) as u32))),
        0xcb => Value::Number(f64::from_bits(be(mp_take(data, i, 8)?))),
        0xcc => Value::Number(be(mp_take(data, i, 1)?) as f64),
        0xcd => Value::Number(be(mp_take(data, i, 2)?) as f64),
        0xce => Value::Number(be(mp_take(data, i, 4)?) as f64),
        0xcf => Value::Number(be(mp_take(data, i, 8)?) as f64),
        0xd0 => Value::Number(f64::from(be(mp_take(data, i, 1)?) as u8 as i8)),
        0xd1 => Value::Number(f64::from(be(mp_take(data, i, 2)?) as u16 as i16)),
        0xd2 => Value::Number(f64::from(be(mp_take(data, i, 4)?) as u32 as i32)),
        0xd3 => Value::Number(be(mp_take(data, i, 8)?) as i64 as f64),
        0xdc => {
            let n = be(mp_take(data, i, 2)?) as usize;
            mp_array(lua, data, i, n)?
        }
        0xdd => {
            let n = be(mp_take(data, i, 4)?) as usize;
            mp_array(lua, data, i, n)?
        }
        0xde => {
            let n = be(mp_take(data, i, 2)?) as usize;
            mp_map(lua, data, i, n)?
        }
        0xdf => {
            let n = be(mp_take(data, i, 4)?) as usize;
            mp_map(lua, data, i, n)?
        }
        0xe0..=0xff => Value::Number(f64::from(c as i8)),
        _ => return Err("Bad data format in input.".into()),
    })
}

fn mp_array(lua: &Lua, data: &[u8], i: &mut usize, n: usize) -> Result<Value, String> {
    let t = lua.create_table().map_err(|e| e.to_string())?;
    for k in 1..=n {
        let v = mp_decode(lua, data, i)?;
        t.raw_set(k, v).map_err(|e| e.to_string())?;
    }
    Ok(Value::Table(t))
}

fn mp_map(lua: &Lua, data: &[u8], i: &mut usize, n: usize) -> Result<Value, String> {
    let t = lua.create_table().map_err(|e| e.to_string())?;
    for _ in 0..n {
        let k = mp_decode(lua, data, i)?;
        let v = mp_decode(lua, data, i)?;
        if !matches!(k, Value::Nil) {
            t.raw_set(k, v).map_err(|e| e.to_string())?;
        }
    }
    Ok(Value::Table(t))
}
