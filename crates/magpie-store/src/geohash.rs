//! Redis's geohash (`geohash.c`, `geohash_helper.c`): positions as 52-bit interleaved
//! scores of a sorted set, the distance formula, and the boxes a search looks in, computed as
//! Redis computes them so that searches find the same members.

pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// 26 steps: 52 bits.
pub const STEP_MAX: u8 = 26;
/// Earth's quadratic mean radius for WGS-84 (Redis's `EARTH_RADIUS_IN_METERS`).
pub const EARTH_RADIUS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

/// A geohash of `step * 2` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The bits aligned to 52 (a sorted-set score).
    pub fn align52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }
}

/// A box in degrees.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Area {
    pub long_min: f64,
    pub long_max: f64,
    pub lat_min: f64,
    pub lat_max: f64,
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

/// Encodes a position within the given ranges (`geohashEncode`); `None` out of range.
pub fn encode_in(
    long_range: (f64, f64),
    lat_range: (f64, f64),
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<Hash> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.0 || latitude > lat_range.1 || longitude < long_range.0 || longitude > long_range.1 {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.0) / (lat_range.1 - lat_range.0) * scale;
    let long_offset = (longitude - long_range.0) / (long_range.1 - long_range.0) * scale;
    // C converts the doubles to uint32 (truncation).
    Some(Hash { bits: interleave64(lat_offset as u32, long_offset as u32), step })
}

/// Encodes a position in Redis's ranges (±180, ±85.05112878).
pub fn encode(longitude: f64, latitude: f64, step: u8) -> Option<Hash> {
    encode_in((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX), longitude, latitude, step)
}

/// The box of a hash (`geohashDecode`).
pub fn decode(hash: Hash) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let sep = deinterleave64(hash.bits);
    let lat_scale = LAT_MAX - LAT_MIN;
    let long_scale = LONG_MAX - LONG_MIN;
    let ilat = sep as u32;
    let ilon = (sep >> 32) as u32;
    let div = (1u64 << hash.step) as f64;
    Some(Area {
        lat_min: LAT_MIN + (f64::from(ilat) * 1.0 / div) * lat_scale,
        lat_max: LAT_MIN + ((f64::from(ilat) + 1.0) * 1.0 / div) * lat_scale,
        long_min: LONG_MIN + (f64::from(ilon) * 1.0 / div) * long_scale,
        long_max: LONG_MIN + ((f64::from(ilon) + 1.0) * 1.0 / div) * long_scale,
    })
}

/// The position a sorted-set score stands for (`decodeGeohash`): the centre of its box.
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    let area = decode(Hash { bits: score as u64, step: STEP_MAX })?;
    let x = ((area.long_min + area.long_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let y = ((area.lat_min + area.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((x, y))
}

fn move_x(hash: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> (64 - u32::from(hash.step) * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> (64 - u32::from(hash.step) * 2);
    hash.bits = x | y;
}

fn move_y(hash: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> (64 - u32::from(hash.step) * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555555555555555u64 >> (64 - u32::from(hash.step) * 2);
    hash.bits = x | y;
}

fn neighbor(hash: Hash, dx: i8, dy: i8) -> Hash {
    let mut h = hash;
    move_x(&mut h, dx);
    move_y(&mut h, dy);
    h
}

/// Haversine distance in meters between two positions (`geohashGetDistance`).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (lon1 * D_R, lon2 * D_R);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (lat1 * D_R, lat2 * D_R);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (lat2 * D_R - lat1 * D_R).abs()
}

/// What a search covers, in meters (the unit's conversion applied).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// Whether the point (x2, y2) is inside `shape` centred at (x1, y1); its distance if so
/// (`geoWithinShape`).
pub fn within(shape: Shape, x1: f64, y1: f64, x2: f64, y2: f64) -> Option<f64> {
    match shape {
        Shape::Radius(r) => {
            let d = distance(x1, y1, x2, y2);
            (d <= r).then_some(d)
        }
        Shape::Box { width, height } => {
            if lat_distance(y2, y1) > height / 2.0 {
                return None;
            }
            if distance(x2, y2, x1, y2) > width / 2.0 {
                return None;
            }
            Some(distance(x1, y1, x2, y2))
        }
    }
}

fn estimate_steps(mut range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
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

/// The nine boxes a search around (x, y) looks in, in Redis's order (centre, N, S, E, W, NE,
/// NW, SE, SW); zero hashes for those left out (`geohashCalculateAreasByShapeWGS84`).
pub fn search_boxes(shape: Shape, x: f64, y: f64) -> [Hash; 9] {
    let (half_h, half_w) = match shape {
        Shape::Radius(r) => (r, r),
        Shape::Box { width, height } => (height / 2.0, width / 2.0),
    };
    let lat_delta = (half_h / EARTH_RADIUS) / D_R;
    let long_delta_top = (half_w / EARTH_RADIUS / ((y + lat_delta) * D_R).cos()) / D_R;
    let long_delta_bottom = (half_w / EARTH_RADIUS / ((y - lat_delta) * D_R).cos()) / D_R;
    let south = y < 0.0;
    let min_lon = if south { x - long_delta_bottom } else { x - long_delta_top };
    let max_lon = if south { x + long_delta_bottom } else { x + long_delta_top };
    let (min_lat, max_lat) = (y - lat_delta, y + lat_delta);
    let radius = match shape {
        Shape::Radius(r) => r,
        Shape::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
    };
    let mut steps = estimate_steps(radius, y);
    let around = |steps: u8| {
        let hash = encode(x, y, steps).unwrap_or_default();
        let n = [
            neighbor(hash, 0, 1),   // north
            neighbor(hash, 0, -1),  // south
            neighbor(hash, 1, 0),   // east
            neighbor(hash, -1, 0),  // west
            neighbor(hash, 1, 1),   // north east
            neighbor(hash, -1, 1),  // north west
            neighbor(hash, 1, -1),  // south east
            neighbor(hash, -1, -1), // south west
        ];
        (hash, n)
    };
    let (mut hash, mut n) = around(steps);
    let dec = |h: Hash| decode(h).unwrap_or_default();
    let decrease = dec(n[0]).lat_max < max_lat
        || dec(n[1]).lat_min > min_lat
        || dec(n[2]).long_max < max_lon
        || dec(n[3]).long_min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        (hash, n) = around(steps);
    }
    let area = dec(hash);
    if steps >= 2 {
        let zero = Hash::default();
        if area.lat_min < min_lat {
            n[1] = zero;
            n[7] = zero;
            n[6] = zero;
        }
        if area.lat_max > max_lat {
            n[0] = zero;
            n[4] = zero;
            n[5] = zero;
        }
        if area.long_min < min_lon {
            n[3] = zero;
            n[7] = zero;
            n[5] = zero;
        }
        if area.long_max > max_lon {
            n[2] = zero;
            n[6] = zero;
            n[4] = zero;
        }
    }
    [hash, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]
}

/// The 11-character standard geohash (latitude range ±90) of a score, as GEOHASH prints it.
pub fn standard_string(score: f64) -> Option<[u8; 11]> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (x, y) = decode_score(score)?;
    let hash = encode_in((-180.0, 180.0), (-90.0, 90.0), x, y, 26)?;
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((hash.bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for (a, b) in [(0u32, 0u32), (1, 2), (0xffff_ffff, 0), (0x1234_5678, 0x9abc_def0)] {
            let i = interleave64(a, b);
            let d = deinterleave64(i);
            assert_eq!((d as u32, (d >> 32) as u32), (a, b));
        }
    }

    #[test]
    fn palermo_as_redis_stores_it() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" stores score 3479099956230698.
        let h = encode(13.361389, 38.115556, STEP_MAX).unwrap();
        assert_eq!(h.align52(), 3479099956230698);
        let (x, y) = decode_score(3479099956230698.0).unwrap();
        assert!((x - 13.361389).abs() < 1e-5 && (y - 38.115556).abs() < 1e-5);
        // GEODIST Sicily Palermo Catania: 166274.1516 m.
        let (cx, cy) = decode_score(3479447370796909.0).unwrap();
        assert_eq!(format!("{:.4}", distance(x, y, cx, cy)), "166274.1516");
        assert_eq!(&standard_string(3479099956230698.0).unwrap(), b"sqc8b49rny0");
    }
}
