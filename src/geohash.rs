//! The geohash math of Redis 7.0's GEO commands (its `geohash.c`, `geohash_helper.c`, the
//! helpers of `geo.c` and the two sorts those commands use), ported operation for operation
//! so that every score, coordinate and distance is the double Redis computes (pure).
//!
//! A position is a 52-bit score: 26 bits of latitude (in -85.05112878..85.05112878, Web
//! Mercator's range) and 26 of longitude, interleaved. A score decodes to the centre of its
//! cell, clamped to the ranges; any double decodes (a sorted set's score that GEOADD did not
//! write too), converted to an integer as x86-64 C converts one. A search by radius or box
//! visits the score ranges of at most nine cells (the centre's and its neighbours', at the
//! precision the radius suggests) and keeps the members within the shape.

use std::f64::consts::PI;

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// The precision of a stored position: 26 bits a coordinate.
pub const STEP_MAX: u8 = 26;
/// Redis's earth radius (WGS-84's quadratic mean radius).
pub const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = PI / 180.0;

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// A cell: interleaved bits (latitude in the even bits, longitude in the odd ones) at a
/// precision of `step` bits a coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    /// An excluded neighbour (`GZERO`).
    const ZERO: HashBits = HashBits { bits: 0, step: 0 };

    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell's first score (`geohashAlign52Bits`).
    pub fn align52(self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

#[derive(Clone, Copy, Debug)]
struct Range {
    min: f64,
    max: f64,
}

const LONG_RANGE: Range = Range { min: LONG_MIN, max: LONG_MAX };
const LAT_RANGE: Range = Range { min: LAT_MIN, max: LAT_MAX };

#[derive(Clone, Copy, Debug)]
struct Area {
    longitude: Range,
    latitude: Range,
}

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] =
        [0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (u64::from(xlo), u64::from(ylo));
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let (mut x, mut y) = (interleaved, interleaved >> 1);
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// C's conversion of a double to `uint32_t` for the offsets (in 0 ..= 2^step).
fn offset_bits(offset: f64) -> u32 {
    offset as i64 as u32
}

/// `geohashEncode`: the cell of a position at `step` bits, or `None` outside the ranges
/// (C's comparisons, which a NaN passes).
#[allow(clippy::manual_range_contains)]
fn encode(long_range: Range, lat_range: Range, longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    if step > 32 || step == 0 {
        return None;
    }
    if longitude > LONG_MAX || longitude < LONG_MIN || latitude > LAT_MAX || latitude < LAT_MIN {
        return None;
    }
    if latitude < lat_range.min || latitude > lat_range.max || longitude < long_range.min || longitude > long_range.max
    {
        return None;
    }
    let mut lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min);
    let mut long_offset = (longitude - long_range.min) / (long_range.max - long_range.min);
    lat_offset *= (1u64 << step) as f64;
    long_offset *= (1u64 << step) as f64;
    Some(HashBits { bits: interleave64(offset_bits(lat_offset), offset_bits(long_offset)), step })
}

/// `geohashDecode` over the WGS-84 ranges: the cell's bounds.
fn decode(hash: HashBits) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let long_scale = LONG_RANGE.max - LONG_RANGE.min;
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let div = (1u64 << hash.step) as f64;
    // `ilato + 1` is C's unsigned arithmetic: it wraps.
    let at = |min: f64, i: u32, scale: f64| min + (f64::from(i) / div) * scale;
    Some(Area {
        latitude: Range {
            min: at(LAT_RANGE.min, ilato, lat_scale),
            max: at(LAT_RANGE.min, ilato.wrapping_add(1), lat_scale),
        },
        longitude: Range {
            min: at(LONG_RANGE.min, ilono, long_scale),
            max: at(LONG_RANGE.min, ilono.wrapping_add(1), long_scale),
        },
    })
}

/// The centre of a cell, clamped to the ranges (`geohashDecodeToLongLatWGS84`).
fn decode_to_lon_lat(hash: HashBits) -> Option<[f64; 2]> {
    let area = decode(hash)?;
    let x = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let y = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some([x, y])
}

/// `(uint64_t)score` as gcc compiles it for x86-64: `cvttsd2si` below 2^63 (out of range:
/// 2^63), the same of `score - 2^63` with the top bit flipped above.
pub fn score_bits(score: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    let cvt = |x: f64| if (-TWO63..TWO63).contains(&x) { x as i64 } else { i64::MIN };
    if score < TWO63 {
        cvt(score) as u64
    } else {
        (cvt(score - TWO63) as u64) ^ (1 << 63)
    }
}

/// The position a sorted-set score stands for (`decodeGeohash`): longitude, latitude.
pub fn decode_score(score: f64) -> Option<[f64; 2]> {
    decode_to_lon_lat(HashBits { bits: score_bits(score), step: STEP_MAX })
}

/// Whether GEOADD accepts a position (C's comparisons, which a NaN passes).
#[allow(clippy::manual_range_contains)]
pub fn valid(longitude: f64, latitude: f64) -> bool {
    !(longitude < LONG_MIN || longitude > LONG_MAX || latitude < LAT_MIN || latitude > LAT_MAX)
}

/// The score GEOADD writes for a valid position (the 52-bit cell, as ZADD parses its decimal
/// text).
pub fn score_of(longitude: f64, latitude: f64) -> f64 {
    let hash = encode(LONG_RANGE, LAT_RANGE, longitude, latitude, STEP_MAX).unwrap_or(HashBits::ZERO);
    hash.align52() as f64
}

/// GEOHASH's 11 characters: the decoded position encoded again with the standard latitude
/// range (-90..90), its 52 bits in base 32, and a last character for bits it does not have.
pub fn geohash_string(xy: [f64; 2]) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let standard = |max: f64| Range { min: -max, max };
    let bits = encode(standard(180.0), standard(90.0), xy[0], xy[1], STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

/// The distance along a meridian.
fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// The haversine distance in meters (with Redis 7.0's shortcut when the longitudes agree).
pub fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// What a search covers: a circle or an axis-aligned box, in the unit `conversion` meters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Extent {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search's shape: its centre (longitude, latitude), its area, its unit in meters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub xy: [f64; 2],
    pub area: Extent,
    pub conversion: f64,
}

impl Shape {
    /// The position a score stands for and its distance from the centre in meters, when it
    /// is within the shape (`geoWithinShape`).
    pub fn within(&self, score: f64) -> Option<([f64; 2], f64)> {
        let xy = decode_score(score)?;
        let [x1, y1] = self.xy;
        let d = match self.area {
            Extent::Radius(r) => {
                let d = distance(x1, y1, xy[0], xy[1]);
                if d > r * self.conversion {
                    return None;
                }
                d
            }
            Extent::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                if lat_distance(xy[1], y1) > height_m / 2.0 {
                    return None;
                }
                if distance(xy[0], xy[1], x1, xy[1]) > width_m / 2.0 {
                    return None;
                }
                distance(x1, y1, xy[0], xy[1])
            }
        };
        Some((xy, d))
    }

    /// `geohashBoundingBox`: min longitude, min latitude, max longitude, max latitude.
    fn bounding_box(&self) -> [f64; 4] {
        let (height, width) = match self.area {
            Extent::Radius(r) => (self.conversion * r, self.conversion * r),
            Extent::Box { width, height } => (self.conversion * (height / 2.0), self.conversion * (width / 2.0)),
        };
        let [longitude, latitude] = self.xy;
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
        let long_delta_bottom = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
        let long_delta = if latitude < 0.0 { long_delta_bottom } else { long_delta_top };
        [longitude - long_delta, latitude - lat_delta, longitude + long_delta, latitude + lat_delta]
    }

    /// The score ranges (`[min, max)`) of the cells a search visits, in Redis's order (the
    /// centre's cell, then north, south, east, west, north-east, north-west, south-east,
    /// south-west), without the neighbours that cannot hold a match and without a cell equal
    /// to the one visited just before it (`geohashCalculateAreasByShapeWGS84`,
    /// `membersOfAllNeighbors`).
    pub fn score_ranges(&self) -> Vec<(f64, f64)> {
        let cells = self.cells();
        let mut out = Vec::with_capacity(9);
        let mut last = 0;
        for (i, cell) in cells.iter().enumerate() {
            if cell.is_zero() || (last != 0 && *cell == cells[last]) {
                continue;
            }
            let next = HashBits { bits: cell.bits + 1, step: cell.step };
            out.push((cell.align52() as f64, next.align52() as f64));
            last = i;
        }
        out
    }

    fn cells(&self) -> [HashBits; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let [longitude, latitude] = self.xy;
        let radius_meters = match self.area {
            Extent::Radius(r) => r,
            Extent::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps_by_radius(radius_meters, latitude);
        let at = |steps: u8| {
            let hash =
                encode(LONG_RANGE, LAT_RANGE, longitude, latitude, steps).unwrap_or(HashBits { bits: 0, step: steps });
            (hash, neighbors(hash), decode(hash))
        };
        let (mut hash, mut n, mut area) = at(steps);
        let bounds = |h: HashBits| decode(h).map(|a| (a.longitude, a.latitude));
        // A neighbour too near to cover the whole area: one step coarser.
        let short = bounds(n[0]).is_some_and(|(_, lat)| lat.max < max_lat)
            || bounds(n[1]).is_some_and(|(_, lat)| lat.min > min_lat)
            || bounds(n[2]).is_some_and(|(lon, _)| lon.max < max_lon)
            || bounds(n[3]).is_some_and(|(lon, _)| lon.min > min_lon);
        if steps > 1 && short {
            steps -= 1;
            (hash, n, area) = at(steps);
        }
        // Neighbours the area does not reach.
        if let Some(area) = area.filter(|_| steps >= 2) {
            let [north, south, east, west, north_east, north_west, south_east, south_west] = [0, 1, 2, 3, 4, 5, 6, 7];
            let mut zero = |cells: [usize; 3]| cells.iter().for_each(|&i| n[i] = HashBits::ZERO);
            if area.latitude.min < min_lat {
                zero([south, south_west, south_east]);
            }
            if area.latitude.max > max_lat {
                zero([north, north_east, north_west]);
            }
            if area.longitude.min < min_lon {
                zero([west, south_west, north_west]);
            }
            if area.longitude.max > max_lon {
                zero([east, south_east, north_east]);
            }
        }
        [hash, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]
    }
}

/// The precision (bits a coordinate) of the nine cells of a search of that radius
/// (`geohashEstimateStepsByRadius`).
fn estimate_steps_by_radius(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let (mut range, mut step) = (range_meters, 1i32);
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

fn move_x(hash: &mut HashBits, d: i8) {
    let shift = 64 - u32::from(hash.step) * 2;
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaa >> shift;
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    let shift = 64 - u32::from(hash.step) * 2;
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555 >> shift;
    hash.bits = x | y;
}

/// The eight neighbours: north, south, east, west, north-east, north-west, south-east,
/// south-west (wrapping around at the ranges' ends).
fn neighbors(hash: HashBits) -> [HashBits; 8] {
    let moved = |dx: i8, dy: i8| {
        let mut h = hash;
        if dx != 0 {
            move_x(&mut h, dx);
        }
        if dy != 0 {
            move_y(&mut h, dy);
        }
        h
    };
    [moved(0, 1), moved(0, -1), moved(1, 0), moved(-1, 0), moved(1, 1), moved(-1, 1), moved(1, -1), moved(-1, -1)]
}

/// C's `printf("%.*f")` (glibc: the exact value rounded half to even, `inf`, `-nan`).
pub fn c_fixed(d: f64, precision: usize) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    format!("{d:.precision$}")
}

/// A distance as Redis replies one: `%.4f`.
pub fn format_distance(d: f64) -> String {
    c_fixed(d, 4)
}

/// A coordinate as Redis replies one (`addReplyHumanLongDouble`: `%.17Lf` of the double, its
/// trailing zeros and a trailing point dropped, `-0` as `0`).
pub fn format_coordinate(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let mut s = c_fixed(d, 17);
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    if s == "-0" {
        s = "0".to_owned();
    }
    s
}

/// glibc 2.36's `qsort` (a merge sort, `msort_with_tmp`): the left run's element first when
/// `cmp` answers `<= 0`.
pub fn c_qsort<T: Copy>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    c_qsort(&mut v[..n1], cmp);
    c_qsort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    v[..merged.len()].copy_from_slice(&merged);
}

/// Redis 7.0's `pqsort` (NetBSD's quicksort, without its switch to an insertion sort after a
/// partition that swapped nothing, that only sorts the partitions overlapping the elements
/// `lrange..=rrange`).
pub fn pqsort<T: Copy>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, lrange: usize, rrange: usize) {
    pqsort_at(v, 0, v.len(), cmp, lrange, rrange);
}

fn pqsort_at<T: Copy>(
    v: &mut [T],
    mut a: usize,
    mut n: usize,
    cmp: &impl Fn(&T, &T) -> i32,
    lrange: usize,
    rrange: usize,
) {
    let c = |v: &[T], x: usize, y: usize| cmp(&v[x], &v[y]);
    let med3 = |v: &[T], a: usize, b: usize, d: usize| {
        if c(v, a, b) < 0 {
            if c(v, b, d) < 0 {
                b
            } else if c(v, a, d) < 0 {
                d
            } else {
                a
            }
        } else if c(v, b, d) > 0 {
            b
        } else if c(v, a, d) < 0 {
            a
        } else {
            d
        }
    };
    let insertion = |v: &mut [T], a: usize, n: usize| {
        for pm in a + 1..a + n {
            let mut pl = pm;
            while pl > a && c(v, pl - 1, pl) > 0 {
                v.swap(pl, pl - 1);
                pl -= 1;
            }
        }
    };
    let vecswap = |v: &mut [T], x: usize, y: usize, n: usize| (0..n).for_each(|i| v.swap(x + i, y + i));
    // Whether the partition a..a+len holds none of the wanted elements.
    let outside = |a: usize, len: usize| (lrange < a && rrange < a) || (lrange >= a + len && rrange >= a + len);
    loop {
        if n < 7 {
            insertion(v, a, n);
            return;
        }
        let mut pm = a + n / 2;
        if n > 7 {
            let mut pl = a;
            let mut pn = a + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d);
                pm = med3(v, pm - d, pm, pm + d);
                pn = med3(v, pn - 2 * d, pn - d, pn);
            }
            pm = med3(v, pl, pm, pn);
        }
        v.swap(a, pm);
        let (mut pa, mut pb) = (a + 1, a + 1);
        let (mut pc, mut pd) = (a + n - 1, a + n - 1);
        loop {
            while pb <= pc {
                let r = c(v, pb, a);
                if r > 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let r = c(v, pc, a);
                if r < 0 {
                    break;
                }
                if r == 0 {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let pn = a + n;
        let s = (pa - a).min(pb - pa);
        vecswap(v, a, pb - s, s);
        let s = (pd - pc).min(pn - pd - 1);
        vecswap(v, pb, pn - s, s);
        let s = pb - pa;
        if s > 1 && !outside(a, s) {
            pqsort_at(v, a, s, cmp, lrange, rrange);
        }
        let s = pd - pc;
        if s > 1 {
            a = pn - s;
            n = s;
            if !outside(a, s) {
                continue;
            }
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PALERMO: (f64, f64) = (13.361389, 38.115556);
    const CATANIA: (f64, f64) = (15.087269, 37.502669);

    fn stored(p: (f64, f64)) -> [f64; 2] {
        decode_score(score_of(p.0, p.1)).unwrap()
    }

    #[test]
    fn scores_and_positions_are_redis_s() {
        assert_eq!(score_of(PALERMO.0, PALERMO.1), 3479099956230698.0);
        assert_eq!(score_of(CATANIA.0, CATANIA.1), 3479447370796909.0);
        let [x, y] = stored(PALERMO);
        assert_eq!(
            (format_coordinate(x), format_coordinate(y)),
            ("13.36138933897018433".into(), "38.11555639549629859".into())
        );
        let [x, y] = stored(CATANIA);
        assert_eq!(
            (format_coordinate(x), format_coordinate(y)),
            ("15.08726745843887329".into(), "37.50266842333162032".into())
        );
        // The ranges' ends: a longitude of 180 sets a bit above the 52.
        assert_eq!(score_of(180.0, LAT_MAX), 13510798882111488.0);
        assert_eq!(score_of(-180.0, LAT_MIN), 0.0);
        assert_eq!(score_of(180.0, 0.0), 10133099161583616.0);
        assert!(!valid(200.0, 100.0) && !valid(0.0, 85.06) && valid(-180.0, -85.05112878));
    }

    #[test]
    fn distances_and_hashes_are_redis_s() {
        let ([x1, y1], [x2, y2]) = (stored(PALERMO), stored(CATANIA));
        assert_eq!(format_distance(distance(x1, y1, x2, y2)), "166274.1516");
        assert_eq!(format_distance(distance(x1, y1, x2, y2) / 1000.0), "166.2742");
        assert_eq!(&geohash_string(stored(PALERMO)), b"sqc8b49rny0");
        assert_eq!(&geohash_string(stored(CATANIA)), b"sqdtr74hyu0");
        assert_eq!(&geohash_string(stored((180.0, 0.0))), b"80000000000");
        assert_eq!(&geohash_string(stored((0.0, LAT_MAX))), b"up05b5048p0");
    }

    #[test]
    fn any_score_decodes_as_c_converts_it() {
        assert_eq!(score_bits(-1.0), u64::MAX);
        assert_eq!(score_bits(2.5), 2);
        assert_eq!(score_bits(-0.5), 0);
        assert_eq!(score_bits(f64::INFINITY), 0);
        assert_eq!(score_bits(1e300), 0);
        assert_eq!(score_bits(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(score_bits(1e19), 10_000_000_000_000_000_000);
        let text = |s: f64| decode_score(s).map(|[x, y]| (format_coordinate(x), format_coordinate(y))).unwrap();
        assert_eq!(text(-1.0), ("180".into(), "85.0511287799999991".into()));
        assert_eq!(text(0.0), ("-179.99999731779098511".into(), "-85.05112751263942528".into()));
        assert_eq!(text(2.5), ("-179.99999195337295532".into(), "-85.05112751263942528".into()));
        assert_eq!(text(f64::NEG_INFINITY), ("180".into(), "-85.05112751263942528".into()));
    }

    #[test]
    fn searches_visit_the_cells_redis_visits() {
        let shape = Shape { xy: [15.0, 37.0], area: Extent::Radius(200.0), conversion: 1000.0 };
        let ranges = shape.score_ranges();
        let palermo = score_of(PALERMO.0, PALERMO.1);
        assert!(ranges.iter().any(|&(lo, hi)| lo <= palermo && palermo < hi));
        let (_, d) = shape.within(palermo).unwrap();
        assert_eq!(format_distance(d / 1000.0), "190.4424");
        let tight = Shape { xy: [15.0, 37.0], area: Extent::Box { width: 1.0, height: 1.0 }, conversion: 1000.0 };
        assert!(tight.within(palermo).is_none());
        // A radius as large as the earth: step 1, no cell visited twice.
        let huge = Shape { xy: [0.0, 0.0], area: Extent::Radius(50000.0), conversion: 1000.0 };
        let r = huge.score_ranges();
        assert!(r.iter().all(|x| r.iter().filter(|y| *y == x).count() == 1));
        assert_eq!(estimate_steps_by_radius(0.0, 0.0), 26);
        assert_eq!(estimate_steps_by_radius(f64::INFINITY, 0.0), 1);
    }

    #[test]
    fn the_sorts_are_c_s() {
        let cmp = |a: &(f64, u8), b: &(f64, u8)| {
            if a.0 > b.0 {
                1
            } else if a.0 == b.0 {
                0
            } else {
                -1
            }
        };
        let items: Vec<(f64, u8)> = [3.0, 1.0, 2.0, 1.0, 5.0, 0.5, 2.0, 9.0, 1.0, 4.0, 7.0, 2.0]
            .iter()
            .enumerate()
            .map(|(i, &d)| (d, i as u8))
            .collect();
        let mut merged = items.clone();
        c_qsort(&mut merged, &cmp);
        let mut stable = items.clone();
        stable.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(merged, stable, "a merge sort keeps ties in order");
        for k in 1..items.len() {
            let mut partial = items.clone();
            pqsort(&mut partial, &cmp, 0, k - 1);
            let firsts: Vec<f64> = partial[..k].iter().map(|p| p.0).collect();
            let want: Vec<f64> = stable[..k].iter().map(|p| p.0).collect();
            assert_eq!(firsts, want, "the first {k}");
        }
        assert_eq!(format_coordinate(-0.000000000000000001), "0");
        assert_eq!(c_fixed(-0.0, 6), "-0.000000");
        assert_eq!(c_fixed(f64::NAN.copysign(-1.0), 4), "-nan");
        assert_eq!(c_fixed(f64::INFINITY, 6), "inf");
    }
}
