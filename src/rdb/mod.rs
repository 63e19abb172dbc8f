//! Redis's serialization of one value (the RDB object format), as DUMP makes it and RESTORE
//! reads it: `<type byte><object><RDB version, u16 LE><CRC-64 (Jones, Redis's), LE>`, the CRC
//! over everything before it. Pure: no sockets, no storage.
//!
//! [`dump`] writes what redis-server 7.0 writes for the same contents when the value was
//! written afresh, under the encoding settings CONFIG SET gave ([`Encodings`]): strings with
//! Redis's integer encodings and LZF compression (`rdbcompression yes`), small hashes and sorted
//! sets as listpacks, lists as quicklists of listpack nodes (filled as RPUSH fills them), small
//! sets of integers as intsets, the rest as Redis's plain forms. Where Redis's order is its
//! hash table's (large sets and hashes) or its insertion order (small hashes), kura writes
//! members in the order it is given (byte order: see docs/differences.md).
//!
//! [`restore`] reads every type and encoding redis-server 2.6 to 7.2 writes (strings with
//! integer and LZF encodings; lists as linked lists, ziplists, quicklists of ziplists or of
//! listpacks; sets, intsets and 7.2's listpack sets; hashes as zipmaps, ziplists, listpacks or
//! plain; sorted sets as ziplists, listpacks or plain with string or binary scores), RDB
//! versions up to 11 (Redis 7.2). It checks every blob as Redis's deep sanitization does
//! (`sanitize-dump-payload yes`), never panics on a payload, and allocates only what the
//! payload's own bytes account for, within a [`Budget`]. Streams and module values are refused.

mod listpack;
mod lzf;
mod ziplist;

use bytes::Bytes;

pub use listpack::as_int;

/// The RDB version DUMP writes (Redis 7.0's).
pub const VERSION: u16 = 10;
/// The newest RDB version RESTORE reads (Redis 7.2's).
pub const MAX_VERSION: u16 = 11;

const CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

// Object types (rdb.h).
const STRING: u8 = 0;
const LIST: u8 = 1;
const SET: u8 = 2;
const ZSET: u8 = 3;
const HASH: u8 = 4;
const ZSET_2: u8 = 5;
const MODULE: u8 = 6;
const MODULE_2: u8 = 7;
const HASH_ZIPMAP: u8 = 9;
const LIST_ZIPLIST: u8 = 10;
const SET_INTSET: u8 = 11;
const ZSET_ZIPLIST: u8 = 12;
const HASH_ZIPLIST: u8 = 13;
const LIST_QUICKLIST: u8 = 14;
const STREAM_LISTPACKS: u8 = 15;
const HASH_LISTPACK: u8 = 16;
const ZSET_LISTPACK: u8 = 17;
const LIST_QUICKLIST_2: u8 = 18;
const STREAM_LISTPACKS_2: u8 = 19;
const SET_LISTPACK: u8 = 20;
const STREAM_LISTPACKS_3: u8 = 21;

/// Quicklist node containers (quicklist.h).
const PLAIN: u64 = 1;
const PACKED: u64 = 2;

/// Why a payload was refused; the texts are Redis's (`-ERR ...`), except for what kura lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdbError {
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("Bad data format")]
    BadFormat,
    /// A stream or a module's value: a valid payload of a type kura does not have.
    #[error("Bad data format: kura does not restore {0}")]
    Unsupported(&'static str),
    /// The payload decodes to more than the budget allows.
    #[error("Bad data format: the value would take more than {0} bytes")]
    TooLarge(usize),
}

/// A value as Redis sees it: its type and its contents.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    String(Bytes),
    /// Elements from head to tail.
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    /// Fields and values.
    Hash(Vec<(Bytes, Bytes)>),
    /// Members and scores, in any order (DUMP sorts them).
    ZSet(Vec<(Bytes, f64)>),
}

/// Redis's encoding settings (CONFIG SET), which decide the encodings DUMP writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encodings {
    pub hash_max_listpack_entries: i64,
    pub hash_max_listpack_value: i64,
    pub set_max_intset_entries: i64,
    pub zset_max_listpack_entries: i64,
    pub zset_max_listpack_value: i64,
    pub list_max_listpack_size: i64,
}

impl Default for Encodings {
    /// Redis 7.0's defaults.
    fn default() -> Encodings {
        Encodings {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
        }
    }
}

impl Encodings {
    /// The settings read by their Redis 7 names (`hash-max-listpack-entries` ...).
    pub fn from_settings(setting: impl Fn(&str) -> i64) -> Encodings {
        Encodings {
            hash_max_listpack_entries: setting("hash-max-listpack-entries"),
            hash_max_listpack_value: setting("hash-max-listpack-value"),
            set_max_intset_entries: setting("set-max-intset-entries"),
            zset_max_listpack_entries: setting("zset-max-listpack-entries"),
            zset_max_listpack_value: setting("zset-max-listpack-value"),
            list_max_listpack_size: setting("list-max-listpack-size"),
        }
    }
}

/// How many bytes a payload may decode to: each element costs its length plus [`Budget::ELEMENT`].
#[derive(Debug)]
pub struct Budget {
    max: usize,
    left: usize,
}

impl Budget {
    /// What an element costs besides its bytes (what holding it costs, roughly).
    pub const ELEMENT: usize = 16;

    pub fn new(max: usize) -> Budget {
        Budget { max, left: max }
    }

    fn spend(&mut self, bytes: usize) -> Result<(), RdbError> {
        let cost = bytes.saturating_add(Self::ELEMENT);
        self.left = self.left.checked_sub(cost).ok_or(RdbError::TooLarge(self.max))?;
        Ok(())
    }
}

/// A cursor over a payload; every read past its end is [`RdbError::BadFormat`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    fn pos(&self) -> usize {
        self.pos
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if n > self.left() {
            return Err(RdbError::BadFormat);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16_le(&mut self) -> Result<u16, RdbError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32_le(&mut self) -> Result<u32, RdbError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
}

// ---- writing ----

/// `rdbSaveLen`.
fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&[((len >> 8) as u8) | 0x40, len as u8]);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// `rdbSaveRawString` with `rdbcompression yes`: a canonical integer of 32 bits in 2 to 5
/// bytes, a string over 20 bytes LZF-compressed when that saves at least 4 bytes, else the
/// length and the bytes.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        match as_int(s) {
            Some(v @ -128..=127) => return out.extend_from_slice(&[0xc0, v as u8]),
            Some(v @ -32768..=32767) => {
                out.push(0xc1);
                return out.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v @ -2_147_483_648..=2_147_483_647) => {
                out.push(0xc2);
                return out.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {}
        }
    }
    if s.len() > 20 {
        if let Some(compressed) = lzf::compress(s, s.len() - 4) {
            out.push(0xc3);
            put_len(out, compressed.len() as u64);
            put_len(out, s.len() as u64);
            return out.extend_from_slice(&compressed);
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A sorted set's score in a listpack, as Redis 7.0's `d2string` prints it: an integral value
/// within ±2^62 as an integer (`-0` too: as `0`), else `%.17g`.
fn score_text(score: f64) -> Bytes {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if (-LIMIT..=LIMIT).contains(&score) && (score as i64) as f64 == score {
        return Bytes::copy_from_slice(itoa::Buffer::new().format(score as i64).as_bytes());
    }
    crate::resp::format_double(score)
}

/// The listpack nodes of a list as RPUSH fills them (Redis 7.0.15's `_quicklistNodeAllowInsert`:
/// a node takes an element while its size plus the element's plus 8 stays within the limit
/// `fill` names, or, for a positive `fill`, while it has fewer than `fill` elements and that
/// size stays within 8 KiB).
fn quicklist_nodes(elements: &[Bytes], fill: i64) -> Vec<Vec<u8>> {
    const LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    let fill = fill.clamp(-5, 1 << 15);
    let allow = |node: &listpack::Builder, sz: usize| {
        let new_sz = node.size() + sz + 8;
        if fill < 0 {
            new_sz <= LEVELS[(-fill - 1) as usize]
        } else {
            new_sz <= 8192 && (node.count() as i64) < fill
        }
    };
    let mut nodes = Vec::new();
    let mut node: Option<listpack::Builder> = None;
    for e in elements {
        match node.as_mut() {
            Some(n) if allow(n, e.len()) => n.push(e),
            _ => {
                nodes.extend(node.take().map(listpack::Builder::finish));
                let mut n = listpack::Builder::new();
                n.push(e);
                node = Some(n);
            }
        }
    }
    nodes.extend(node.map(listpack::Builder::finish));
    nodes
}

/// The DUMP payload of `object`, as redis-server 7.0 makes it for a value written afresh
/// under the settings `enc`. Members go in the order given, except that sorted sets are
/// sorted (by score, then member) and intsets by value, as Redis keeps them.
pub fn dump(object: &Object, enc: &Encodings) -> Vec<u8> {
    let mut out = Vec::new();
    match object {
        Object::String(s) => {
            out.push(STRING);
            put_string(&mut out, s);
        }
        Object::List(elements) => {
            out.push(LIST_QUICKLIST_2);
            let nodes = quicklist_nodes(elements, enc.list_max_listpack_size);
            put_len(&mut out, nodes.len() as u64);
            for node in nodes {
                put_len(&mut out, PACKED);
                put_string(&mut out, &node);
            }
        }
        Object::Set(members) => {
            let ints: Option<Vec<i64>> = members.iter().map(|m| as_int(m)).collect();
            match ints {
                Some(mut ints) if (ints.len() as i64) <= enc.set_max_intset_entries => {
                    ints.sort_unstable();
                    out.push(SET_INTSET);
                    put_string(&mut out, &ziplist::encode_intset(&ints));
                }
                _ => {
                    out.push(SET);
                    put_len(&mut out, members.len() as u64);
                    for m in members {
                        put_string(&mut out, m);
                    }
                }
            }
        }
        Object::Hash(pairs) => {
            let longest = pairs.iter().map(|(f, v)| f.len().max(v.len())).max().unwrap_or(0);
            if (pairs.len() as i64) <= enc.hash_max_listpack_entries && (longest as i64) <= enc.hash_max_listpack_value
            {
                out.push(HASH_LISTPACK);
                let lp = listpack::encode(pairs.iter().flat_map(|(f, v)| [&f[..], &v[..]]));
                put_string(&mut out, &lp);
            } else {
                out.push(HASH);
                put_len(&mut out, pairs.len() as u64);
                for (f, v) in pairs {
                    put_string(&mut out, f);
                    put_string(&mut out, v);
                }
            }
        }
        Object::ZSet(items) => {
            let mut items: Vec<&(Bytes, f64)> = items.iter().collect();
            items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            let longest = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
            if (items.len() as i64) <= enc.zset_max_listpack_entries && (longest as i64) <= enc.zset_max_listpack_value
            {
                out.push(ZSET_LISTPACK);
                let scores: Vec<Bytes> = items.iter().map(|(_, s)| score_text(*s)).collect();
                let lp = listpack::encode(items.iter().zip(&scores).flat_map(|((m, _), s)| [&m[..], &s[..]]));
                put_string(&mut out, &lp);
            } else {
                // From the greatest to the smallest, as Redis walks its skiplist backwards.
                out.push(ZSET_2);
                put_len(&mut out, items.len() as u64);
                for (m, s) in items.iter().rev() {
                    put_string(&mut out, m);
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
        }
    }
    out.extend_from_slice(&VERSION.to_le_bytes());
    let crc = CRC.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

// ---- reading ----

/// A length, or the special encoding of a string (`11xxxxxx`).
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// `rdbLoadLen`.
fn get_len(r: &mut Reader<'_>) -> Result<Len, RdbError> {
    let first = r.u8()?;
    Ok(match first >> 6 {
        0 => Len::Plain(u64::from(first & 0x3f)),
        1 => Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(r.u8()?)),
        3 => Len::Encoded(first & 0x3f),
        _ => match first {
            0x80 => Len::Plain(u64::from(u32::from_be_bytes(r.array()?))),
            0x81 => Len::Plain(u64::from_be_bytes(r.array()?)),
            _ => return Err(RdbError::BadFormat),
        },
    })
}

/// A length that is not a string's special encoding.
fn get_plain_len(r: &mut Reader<'_>) -> Result<u64, RdbError> {
    match get_len(r)? {
        Len::Plain(n) => Ok(n),
        Len::Encoded(_) => Err(RdbError::BadFormat),
    }
}

/// A count of things that follow, each at least one byte: never more than the bytes left.
fn get_count(r: &mut Reader<'_>) -> Result<usize, RdbError> {
    let n = get_plain_len(r)?;
    if n > r.left() as u64 {
        return Err(RdbError::BadFormat);
    }
    Ok(n as usize)
}

/// Room for `n` decoded elements, at most a few thousand ahead: the vector grows with what
/// the payload really holds (each element charged to the budget), not with what it claims.
fn room<T>(n: usize) -> Vec<T> {
    Vec::with_capacity(n.min(4096))
}

/// `rdbGenericLoadStringObject`: raw, an integer of 8, 16 or 32 bits, or LZF.
fn get_string(r: &mut Reader<'_>, budget: &mut Budget) -> Result<Bytes, RdbError> {
    let s = match get_len(r)? {
        Len::Plain(n) => {
            let n = usize::try_from(n).map_err(|_| RdbError::BadFormat)?;
            Bytes::copy_from_slice(r.take(n)?)
        }
        Len::Encoded(0) => int(i64::from(r.u8()? as i8)),
        Len::Encoded(1) => int(i64::from(i16::from_le_bytes(r.array()?))),
        Len::Encoded(2) => int(i64::from(i32::from_le_bytes(r.array()?))),
        Len::Encoded(3) => {
            let clen = usize::try_from(get_plain_len(r)?).map_err(|_| RdbError::BadFormat)?;
            let len = usize::try_from(get_plain_len(r)?).map_err(|_| RdbError::BadFormat)?;
            let compressed = r.take(clen)?;
            // Charged before it is made: the claimed length may be anything.
            budget.spend(len)?;
            Bytes::from(lzf::decompress(compressed, len).ok_or(RdbError::BadFormat)?)
        }
        Len::Encoded(_) => return Err(RdbError::BadFormat),
    };
    Ok(s)
}

fn int(v: i64) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(v).as_bytes())
}

/// A string element of a collection, charged to the budget.
fn get_element(r: &mut Reader<'_>, budget: &mut Budget) -> Result<Bytes, RdbError> {
    let s = get_string(r, budget)?;
    budget.spend(s.len())?;
    Ok(s)
}

/// What C's `strtod` reads of `text` (the longest prefix that is a number, after leading
/// spaces), or `None` when it reads nothing. Hexadecimal floats are not read.
fn strtod(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let b = text.as_bytes();
    let signed = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let negative = b.first() == Some(&b'-');
    let word = text[signed..].to_ascii_lowercase();
    if word.starts_with("inf") {
        return Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if word.starts_with("nan") {
        return Some(f64::NAN);
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let whole = digits(signed);
    let mut end = signed + whole;
    let mut fraction = 0;
    if b.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        end += 1 + fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let exp = digits(end + 1 + sign);
        if exp > 0 {
            end += 1 + sign + exp;
        }
    }
    text[..end].parse().ok()
}

/// A score in a ziplist or a listpack: Redis reads it with `strtod`, so text that is no
/// number reads as 0 (as Redis 7.0 reads it, `sanitize-dump-payload yes` or not).
fn listed_score(text: &[u8]) -> f64 {
    strtod(text).unwrap_or(0.0)
}

/// `rdbLoadDoubleValue`: a length byte (253 NaN, 254 +inf, 255 -inf) and the text.
fn get_text_score(r: &mut Reader<'_>) -> Result<f64, RdbError> {
    match r.u8()? {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        // `sscanf("%lg")`: a prefix that is a number, or the payload is refused.
        n => strtod(r.take(usize::from(n))?).ok_or(RdbError::BadFormat),
    }
}

fn pairs(elements: Vec<Bytes>) -> Result<Vec<(Bytes, Bytes)>, RdbError> {
    if !elements.len().is_multiple_of(2) {
        return Err(RdbError::BadFormat);
    }
    let mut it = elements.into_iter();
    let mut out = Vec::with_capacity(it.len() / 2);
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn scored(pairs: Vec<(Bytes, Bytes)>) -> Vec<(Bytes, f64)> {
    pairs.into_iter().map(|(m, s)| (m, listed_score(&s))).collect()
}

/// Checks what Redis's loader checks of a collection: not empty (Redis 7 refuses an empty key),
/// no member twice, no NaN score.
fn checked(object: Object) -> Result<Object, RdbError> {
    fn distinct<'a>(members: impl Iterator<Item = &'a Bytes>) -> bool {
        let mut seen = std::collections::HashSet::new();
        members.into_iter().all(|m| seen.insert(m))
    }
    let ok = match &object {
        Object::String(_) => true,
        Object::List(e) => !e.is_empty(),
        Object::Set(m) => !m.is_empty() && distinct(m.iter()),
        Object::Hash(p) => !p.is_empty() && distinct(p.iter().map(|(f, _)| f)),
        Object::ZSet(m) => !m.is_empty() && distinct(m.iter().map(|(m, _)| m)) && m.iter().all(|(_, s)| !s.is_nan()),
    };
    if ok {
        Ok(object)
    } else {
        Err(RdbError::BadFormat)
    }
}

/// The object of type `ty` at `r`.
fn get_object(ty: u8, r: &mut Reader<'_>, budget: &mut Budget) -> Result<Object, RdbError> {
    let object = match ty {
        STRING => Object::String(get_string(r, budget)?),
        LIST | SET => {
            let n = get_count(r)?;
            let mut elements = room(n);
            for _ in 0..n {
                elements.push(get_element(r, budget)?);
            }
            if ty == LIST {
                Object::List(elements)
            } else {
                Object::Set(elements)
            }
        }
        ZSET | ZSET_2 => {
            let n = get_count(r)?;
            let mut items = room(n);
            for _ in 0..n {
                let member = get_element(r, budget)?;
                let score = if ty == ZSET { get_text_score(r)? } else { f64::from_le_bytes(r.array()?) };
                items.push((member, score));
            }
            Object::ZSet(items)
        }
        HASH => {
            let n = get_count(r)?;
            let mut fields = room(n);
            for _ in 0..n {
                fields.push((get_element(r, budget)?, get_element(r, budget)?));
            }
            Object::Hash(fields)
        }
        HASH_ZIPMAP => Object::Hash(ziplist::decode_zipmap(&get_string(r, budget)?, budget)?),
        LIST_ZIPLIST => Object::List(ziplist::decode(&get_string(r, budget)?, budget)?),
        SET_INTSET => Object::Set(ziplist::decode_intset(&get_string(r, budget)?, budget)?),
        ZSET_ZIPLIST => Object::ZSet(scored(pairs(ziplist::decode(&get_string(r, budget)?, budget)?)?)),
        HASH_ZIPLIST => Object::Hash(pairs(ziplist::decode(&get_string(r, budget)?, budget)?)?),
        HASH_LISTPACK => Object::Hash(pairs(listpack::decode(&get_string(r, budget)?, budget)?)?),
        ZSET_LISTPACK => Object::ZSet(scored(pairs(listpack::decode(&get_string(r, budget)?, budget)?)?)),
        SET_LISTPACK => Object::Set(listpack::decode(&get_string(r, budget)?, budget)?),
        LIST_QUICKLIST | LIST_QUICKLIST_2 => {
            let nodes = get_count(r)?;
            let mut elements = Vec::new();
            for _ in 0..nodes {
                let container = if ty == LIST_QUICKLIST_2 { get_plain_len(r)? } else { PACKED };
                let blob = get_string(r, budget)?;
                match container {
                    PLAIN => {
                        budget.spend(blob.len())?;
                        elements.push(blob);
                    }
                    PACKED if ty == LIST_QUICKLIST => elements.extend(ziplist::decode(&blob, budget)?),
                    PACKED => elements.extend(listpack::decode(&blob, budget)?),
                    _ => return Err(RdbError::BadFormat),
                }
            }
            Object::List(elements)
        }
        MODULE | MODULE_2 => return Err(RdbError::Unsupported("modules")),
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => return Err(RdbError::Unsupported("streams")),
        _ => return Err(RdbError::BadFormat),
    };
    checked(object)
}

/// The value a DUMP payload holds.
///
/// As Redis does, the version (at most [`MAX_VERSION`]) and the CRC come first, and the object
/// is then read from the payload's start, footer included: bytes between the object and the
/// footer are ignored, as Redis ignores them.
///
/// # Errors
/// [`RdbError::VersionOrChecksum`] for a payload under 10 bytes, of a newer version or with a
/// wrong CRC; [`RdbError::BadFormat`] for one that does not decode; [`RdbError::Unsupported`]
/// for a stream or a module's value; [`RdbError::TooLarge`] past the budget.
pub fn restore(payload: &[u8], budget: usize) -> Result<Object, RdbError> {
    let Some(body) = payload.len().checked_sub(10) else { return Err(RdbError::VersionOrChecksum) };
    let footer = &payload[body..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if version > MAX_VERSION || CRC.checksum(&payload[..body + 2]) != u64::from_le_bytes(crc) {
        return Err(RdbError::VersionOrChecksum);
    }
    let mut r = Reader::new(payload);
    let mut budget = Budget::new(budget);
    let ty = r.u8()?;
    get_object(ty, &mut r, &mut budget)
}

/// `RDB_OPCODE_FUNCTION2`: a function library (its code) in FUNCTION DUMP's payload.
const FUNCTION2: u8 = 245;
/// `RDB_OPCODE_FUNCTION_PRE_GA`: the libraries of Redis 7.0's release candidates.
const FUNCTION_PRE_GA: u8 = 246;

/// Why a FUNCTION RESTORE payload was refused (Redis's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionsPayloadError {
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    #[error("can not read data type")]
    NoType,
    #[error("Pre-GA function format not supported")]
    PreGa,
    #[error("given type is not a function")]
    NotAFunction,
    #[error("Failed loading library payload")]
    BadLibrary,
}

/// FUNCTION DUMP's payload: each library's code after the `FUNCTION2` opcode (as
/// `rdbSaveFunctions` writes them), then the RDB version and the CRC, as DUMP's.
pub fn dump_functions<'a>(codes: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(FUNCTION2);
        put_string(&mut out, code);
    }
    out.extend_from_slice(&VERSION.to_le_bytes());
    let crc = CRC.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The libraries' codes a FUNCTION DUMP payload holds (FUNCTION RESTORE), within `budget`
/// bytes of decompressed code.
///
/// # Errors
/// A payload whose footer is wrong, or whose body is not a sequence of libraries.
pub fn restore_functions(payload: &[u8], budget: usize) -> Result<Vec<Bytes>, FunctionsPayloadError> {
    let Some(body) = payload.len().checked_sub(10) else { return Err(FunctionsPayloadError::VersionOrChecksum) };
    let footer = &payload[body..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if version > MAX_VERSION || CRC.checksum(&payload[..body + 2]) != u64::from_le_bytes(crc) {
        return Err(FunctionsPayloadError::VersionOrChecksum);
    }
    let mut r = Reader::new(&payload[..body]);
    let mut budget = Budget::new(budget);
    let mut codes = Vec::new();
    while r.left() > 0 {
        match r.u8().map_err(|_| FunctionsPayloadError::NoType)? {
            FUNCTION2 => {}
            FUNCTION_PRE_GA => return Err(FunctionsPayloadError::PreGa),
            _ => return Err(FunctionsPayloadError::NotAFunction),
        }
        codes.push(get_string(&mut r, &mut budget).map_err(|_| FunctionsPayloadError::BadLibrary)?);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests;
