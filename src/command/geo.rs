//! The geo commands of Redis 7.0 on sorted sets: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and their `_RO` forms.
//!
//! A position is a member's score (the 52-bit geohash of `crate::geohash`): GEOADD is a ZADD
//! of the computed scores (so positions converge as scores do), the searches read the sorted
//! set's score order over the score ranges of at most nine cells (never the whole set), and
//! the STORE forms write their result as ZRANGESTORE does. Checks, errors, the order of the
//! results (including Redis's partial sort for COUNT) and the replies' formats are Redis
//! 7.0's (`geo.c`).

use bytes::Bytes;

use super::collection::{bounded, view, View};
use super::zsets::parse_score;
use super::{parse_i64, CmdResult, CommandError};
use crate::geohash::{self, Extent, Shape};
use crate::node::Node;
use crate::notify::Class;
use crate::resp::Reply;
use crate::rmw::{Copied, Rmw, ZAddFlags};
use crate::version::ZSet;

async fn read(node: &Node, key: &[u8]) -> Result<View<ZSet>, CommandError> {
    view(node, key).await
}

fn err(text: &str) -> CommandError {
    CommandError::Other(text.to_owned())
}

/// A double argument as Redis's `getDoubleFromObjectOrReply` takes it, with its error text.
fn double(arg: &[u8], error: &str) -> Result<f64, CommandError> {
    parse_score(arg).ok_or_else(|| err(error))
}

/// A longitude and a latitude (`extractLongLatOrReply`).
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<[f64; 2], CommandError> {
    let x = double(lon, "value is not a valid float")?;
    let y = double(lat, "value is not a valid float")?;
    if !geohash::valid(x, y) {
        return Err(CommandError::Other(format!(
            "invalid longitude,latitude pair {},{}",
            geohash::c_fixed(x, 6),
            geohash::c_fixed(y, 6)
        )));
    }
    Ok([x, y])
}

/// A unit's meters (`extractUnitOrReply`).
fn unit(arg: &[u8]) -> Result<f64, CommandError> {
    match arg.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(err("unsupported unit provided. please use M, KM, FT, MI")),
    }
}

/// `radius unit` (`extractDistanceOrReply`): the radius and the unit's meters.
fn radius(args: &[Bytes]) -> Result<(f64, f64), CommandError> {
    let r = double(&args[0], "need numeric radius")?;
    if r < 0.0 {
        return Err(err("radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// `width height unit` (`extractBoxOrReply`).
fn box_args(args: &[Bytes]) -> Result<(f64, f64, f64), CommandError> {
    let w = double(&args[0], "need numeric width")?;
    let h = double(&args[1], "need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(err("height or width cannot be negative"));
    }
    Ok((w, h, unit(&args[2])?))
}

/// A member's position, if it is in the set.
fn position(z: &ZSet, member: &[u8]) -> Option<[f64; 2]> {
    z.score(member).and_then(geohash::decode_score)
}

fn coordinates(xy: [f64; 2]) -> Reply {
    Reply::Array(xy.iter().map(|&c| Reply::DoubleText(Bytes::from(geohash::format_coordinate(c)))).collect())
}

/// `GEOADD key [NX|XX] [CH] longitude latitude member [...]`: a ZADD of the positions' scores.
pub async fn geoadd(node: &Node, args: &[Bytes]) -> CmdResult {
    let mut flags = ZAddFlags::default();
    let mut i = 2;
    while let Some(a) = args.get(i) {
        match a.to_ascii_lowercase().as_slice() {
            b"nx" => flags.nx = true,
            b"xx" => flags.xx = true,
            b"ch" => flags.ch = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &args[i..];
    // No position at all: ZADD's own syntax error.
    if !rest.len().is_multiple_of(3) || (flags.nx && flags.xx) || rest.is_empty() {
        return Err(CommandError::Syntax);
    }
    let mut members = Vec::with_capacity(rest.len() / 3);
    for triple in rest.chunks_exact(3) {
        let [x, y] = lon_lat(&triple[0], &triple[1])?;
        members.push((geohash::score_of(x, y), super::value_to_store(node, &triple[2])?));
    }
    Ok(Reply::Int(super::modify(node, &args[1], Rmw::ZAdd { members, flags }).await?.int))
}

/// `GEOPOS key member [...]`: each member's position, or a null array.
pub async fn geopos(node: &Node, args: &[Bytes]) -> CmdResult {
    let z = read(node, &args[1]).await?;
    Ok(Reply::Array(args[2..].iter().map(|m| position(&z, m).map_or(Reply::NilArray, coordinates)).collect()))
}

/// `GEOHASH key member [...]`: each member's 11-character geohash, or nil.
pub async fn geohash(node: &Node, args: &[Bytes]) -> CmdResult {
    let z = read(node, &args[1]).await?;
    Ok(Reply::Array(
        args[2..]
            .iter()
            .map(|m| {
                position(&z, m)
                    .map_or(Reply::Nil, |xy| Reply::Bulk(Bytes::copy_from_slice(&geohash::geohash_string(xy))))
            })
            .collect(),
    ))
}

/// `GEODIST key member1 member2 [M|KM|FT|MI]`.
pub async fn geodist(node: &Node, args: &[Bytes]) -> CmdResult {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(CommandError::Syntax),
    };
    let z = read(node, &args[1]).await?;
    Ok(match (position(&z, &args[2]), position(&z, &args[3])) {
        (Some(a), Some(b)) => {
            Reply::Bulk(Bytes::from(geohash::format_distance(geohash::distance(a[0], a[1], b[0], b[1]) / to_meters)))
        }
        _ => Reply::Nil,
    })
}

/// Which search command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Radius,
    RadiusRo,
    ByMember,
    ByMemberRo,
    Search,
    SearchStore,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A match: the member, its score, its position and its distance from the centre (meters).
struct Found {
    member: Bytes,
    score: f64,
    xy: [f64; 2],
    dist: f64,
}

/// GEORADIUS, GEORADIUSBYMEMBER, their `_RO` forms, GEOSEARCH and GEOSEARCHSTORE
/// (`georadiusGeneric`).
pub async fn search(node: &Node, args: &[Bytes], kind: Kind) -> CmdResult {
    let geosearch = matches!(kind, Kind::Search | Kind::SearchStore);
    // The keyspace event of a STORE (GEORADIUSBYMEMBER's too is Redis's `georadiusstore`).
    let event = if geosearch { "geosearchstore" } else { "georadiusstore" };
    let nostore = matches!(kind, Kind::RadiusRo | Kind::ByMemberRo);
    let source = if kind == Kind::SearchStore { 2 } else { 1 };
    // Redis looks the key up (and checks its type) before it reads any argument.
    let z = read(node, &args[source]).await?;
    let exists = !z.is_empty();
    let mut store: Option<&Bytes> = (kind == Kind::SearchStore).then(|| &args[1]);
    let mut storedist = false;
    let mut center: Option<[f64; 2]> = None;
    let mut extent: Option<(Extent, f64)> = None;
    let base = match kind {
        Kind::Radius | Kind::RadiusRo => {
            center = Some(lon_lat(&args[2], &args[3])?);
            let (r, conversion) = radius(&args[4..6])?;
            extent = Some((Extent::Radius(r), conversion));
            6
        }
        Kind::ByMember | Kind::ByMemberRo if !exists => 5,
        Kind::ByMember | Kind::ByMemberRo => {
            center = Some(position(&z, &args[2]).ok_or_else(|| err("could not decode requested zset member"))?);
            let (r, conversion) = radius(&args[3..5])?;
            extent = Some((Extent::Radius(r), conversion));
            5
        }
        Kind::Search => 2,
        Kind::SearchStore => 3,
    };
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let opts = &args[base..];
    let remaining = opts.len();
    let mut i = 0;
    while i < remaining {
        let arg = opts[i].to_ascii_lowercase();
        match arg.as_slice() {
            b"withdist" => withdist = true,
            b"withhash" => withhash = true,
            b"withcoord" => withcoord = true,
            b"any" => any = true,
            b"asc" => sort = Sort::Asc,
            b"desc" => sort = Sort::Desc,
            b"count" if i + 1 < remaining => {
                count = parse_i64(&opts[i + 1])?;
                if count <= 0 {
                    return Err(err("COUNT must be > 0"));
                }
                i += 1;
            }
            b"store" | b"storedist" if i + 1 < remaining && !nostore && !geosearch => {
                store = Some(&opts[i + 1]);
                storedist = arg == b"storedist";
                i += 1;
            }
            b"storedist" if kind == Kind::SearchStore => storedist = true,
            b"frommember" if i + 1 < remaining && geosearch && !fromloc => {
                // Without the key, the arguments are still read (and the reply is empty).
                if exists {
                    center =
                        Some(position(&z, &opts[i + 1]).ok_or_else(|| err("could not decode requested zset member"))?);
                }
                frommember = true;
                i += 1;
            }
            b"fromlonlat" if i + 2 < remaining && geosearch && !frommember => {
                center = Some(lon_lat(&opts[i + 1], &opts[i + 2])?);
                fromloc = true;
                i += 2;
            }
            b"byradius" if i + 2 < remaining && geosearch && !bybox => {
                let (r, conversion) = radius(&opts[i + 1..i + 3])?;
                extent = Some((Extent::Radius(r), conversion));
                byradius = true;
                i += 2;
            }
            b"bybox" if i + 3 < remaining && geosearch && !byradius => {
                let (width, height, conversion) = box_args(&opts[i + 1..i + 4])?;
                extent = Some((Extent::Box { width, height }, conversion));
                bybox = true;
                i += 3;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        let what = if kind == Kind::SearchStore { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(CommandError::Other(format!(
            "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(&args[0]);
    if geosearch && !(frommember || fromloc) {
        return Err(CommandError::Other(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if geosearch && !(byradius || bybox) {
        return Err(CommandError::Other(format!("exactly one of BYRADIUS and BYBOX can be specified for {name}")));
    }
    if any && count == 0 {
        return Err(err("the ANY argument requires COUNT argument"));
    }
    let (Some(xy), Some((area, conversion)), true) = (center, extent, exists) else {
        // No such key: the destination is deleted, or the reply is empty.
        return match store {
            Some(dst) => {
                super::store_result(node, dst, Copied::ZSet(Vec::new()), 0, Class::Zset, event).await?;
                Ok(Reply::Int(0))
            }
            None => Ok(Reply::Array(Vec::new())),
        };
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape { xy, area, conversion };
    let limit = if any { usize::try_from(count).unwrap_or(usize::MAX) } else { 0 };
    let full = |found: &Vec<Found>| limit != 0 && found.len() >= limit;
    let mut found: Vec<Found> = Vec::new();
    for (min, max) in shape.score_ranges() {
        if full(&found) {
            break;
        }
        for (score, member) in z.from_score(min).take_while(|(s, _)| *s < max) {
            if let Some((xy, dist)) = shape.within(score) {
                found.push(Found { member: member.clone(), score, xy, dist });
            }
            if full(&found) {
                break;
            }
        }
    }
    let returned = match usize::try_from(count) {
        Ok(c) if c > 0 && c < found.len() => c,
        _ => found.len(),
    };
    if sort != Sort::None {
        let sign = if sort == Sort::Asc { 1 } else { -1 };
        // qsort's comparator of geo.c: 1, 0 or -1 by distance (NaN compares as less).
        let cmp = |a: &usize, b: &usize| {
            let (a, b) = (found[*a].dist, found[*b].dist);
            sign * if a > b {
                1
            } else if a == b {
                0
            } else {
                -1
            }
        };
        let mut order: Vec<usize> = (0..found.len()).collect();
        if returned == found.len() {
            geohash::c_qsort(&mut order, &cmp);
        } else {
            geohash::pqsort(&mut order, &cmp, 0, returned - 1);
        }
        let mut slots: Vec<Option<Found>> = found.into_iter().map(Some).collect();
        found = order.into_iter().filter_map(|i| slots[i].take()).collect();
    }
    found.truncate(returned);
    if let Some(dst) = store {
        let items =
            found.into_iter().map(|f| (f.member, if storedist { f.dist / conversion } else { f.score })).collect();
        super::store_result(node, dst, Copied::ZSet(items), returned, Class::Zset, event).await?;
        return Ok(Reply::Int(returned as i64));
    }
    bounded(node, returned)?;
    let options = usize::from(withdist) + usize::from(withhash) + usize::from(withcoord);
    Ok(Reply::Array(
        found
            .into_iter()
            .map(|f| {
                if options == 0 {
                    return Reply::Bulk(f.member);
                }
                let mut item = Vec::with_capacity(options + 1);
                item.push(Reply::Bulk(f.member));
                if withdist {
                    item.push(Reply::Bulk(Bytes::from(geohash::format_distance(f.dist / conversion))));
                }
                if withhash {
                    item.push(Reply::Int(f.score as i64));
                }
                if withcoord {
                    item.push(coordinates(f.xy));
                }
                Reply::Array(item)
            })
            .collect(),
    ))
}
