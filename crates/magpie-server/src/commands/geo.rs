//! Geo commands on sorted sets whose scores are Redis's 52-bit geohashes
//! (`magpie_store::geohash`): GEOADD (as ZADD, as Redis does it), GEOPOS, GEODIST, GEOHASH,
//! and one generic search for GEORADIUS, GEORADIUSBYMEMBER, their _RO forms, GEOSEARCH and
//! GEOSEARCHSTORE (`georadiusGeneric`), which looks in the same nine boxes as Redis, in the
//! same order, so results (and COUNT ANY's choice) agree.

use magpie_protocol::{ArgVec, Args, Reply, Resp};
use magpie_store::geohash::{self, Shape};
use magpie_store::zset::{ScoreBound, ScoreRange};
use magpie_store::{Value, ValueRef, ZSet};

use super::zsets::float_arg;
use crate::core::error::{self, CmdResult, Error, int_arg, is, wrongtype};
use crate::core::events as notify;
use crate::model::{Begin, Command, Ctx, Find, KeySpec};
use crate::{flags, key_flags};

const GROUP: &str = "geo";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("geoadd", -5, flags![WRITE, DENYOOM], GROUP, "3.2.0", "Add one or more geospatial items in the geospatial index represented using a sorted set",
        "key [NX|XX] [CH] (longitude:double latitude:double member) ...", geoadd)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("geodist", -4, flags![READONLY], GROUP, "3.2.0", "Returns the distance between two members of a geospatial index",
        "key member1 member2 [M|KM|FT|MI]", geodist)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("geohash", -2, flags![READONLY], GROUP, "3.2.0", "Returns members of a geospatial index as standard geohash strings",
        "key [member ...]", geohash_)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("geopos", -2, flags![READONLY], GROUP, "3.2.0", "Returns longitude and latitude of members of a geospatial index",
        "key [member ...]", geopos)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("georadius", -6, flags![WRITE, DENYOOM], GROUP, "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point",
        "key longitude:double latitude:double radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count:integer [ANY]] [ASC|DESC] [STORE key] [STOREDIST key]", georadius)
        .keys(&[
            KeySpec::one(1, key_flags![RO, ACCESS]),
            KeySpec::new(key_flags![OW, UPDATE], Begin::Keyword { keyword: "STORE", start: 6 }, Find::Range { last: 0, step: 1, limit: 0 }),
            KeySpec::new(key_flags![OW, UPDATE], Begin::Keyword { keyword: "STOREDIST", start: 6 }, Find::Range { last: 0, step: 1, limit: 0 }),
        ]),
    Command::new("georadius_ro", -6, flags![READONLY], GROUP, "3.2.10", "A read-only variant for GEORADIUS",
        "key longitude:double latitude:double radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count:integer [ANY]] [ASC|DESC]", georadius_ro)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("georadiusbymember", -5, flags![WRITE, DENYOOM], GROUP, "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member",
        "key member radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count:integer [ANY]] [ASC|DESC] [STORE key] [STOREDIST key]", georadiusbymember)
        .keys(&[
            KeySpec::one(1, key_flags![RO, ACCESS]),
            KeySpec::new(key_flags![OW, UPDATE], Begin::Keyword { keyword: "STORE", start: 5 }, Find::Range { last: 0, step: 1, limit: 0 }),
            KeySpec::new(key_flags![OW, UPDATE], Begin::Keyword { keyword: "STOREDIST", start: 5 }, Find::Range { last: 0, step: 1, limit: 0 }),
        ]),
    Command::new("georadiusbymember_ro", -5, flags![READONLY], GROUP, "3.2.10", "A read-only variant for GEORADIUSBYMEMBER",
        "key member radius:double (M|KM|FT|MI) [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count:integer [ANY]] [ASC|DESC]", georadiusbymember_ro)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("geosearch", -7, flags![READONLY], GROUP, "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle.",
        "key (FROMMEMBER member|FROMLONLAT longitude:double latitude:double) (BYRADIUS radius:double (M|KM|FT|MI)|BYBOX width:double height:double (M|KM|FT|MI)) [ASC|DESC] [COUNT count:integer [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]", geosearch)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("geosearchstore", -8, flags![WRITE, DENYOOM], GROUP, "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.",
        "destination source (FROMMEMBER member|FROMLONLAT longitude:double latitude:double) (BYRADIUS radius:double (M|KM|FT|MI)|BYBOX width:double height:double (M|KM|FT|MI)) [ASC|DESC] [COUNT count:integer [ANY]] [STOREDIST]", geosearchstore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::one(2, key_flags![RO, ACCESS])]),
];

fn double_arg(arg: &[u8], msg: &'static str) -> Result<f64, Error> {
    float_arg(arg).ok_or_else(|| msg.into())
}

/// A longitude and latitude (`extractLongLatOrReply`).
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Error> {
    let x = double_arg(lon, error::NOT_FLOAT)?;
    let y = double_arg(lat, error::NOT_FLOAT)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&x) || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&y) {
        return Err(Error::msg(format!("ERR invalid longitude,latitude pair {x:.6},{y:.6}")));
    }
    Ok((x, y))
}

/// Meters per unit (`extractUnitOrReply`).
fn unit(arg: &[u8]) -> Result<f64, Error> {
    if is(arg, "m") {
        Ok(1.0)
    } else if is(arg, "km") {
        Ok(1000.0)
    } else if is(arg, "ft") {
        Ok(0.3048)
    } else if is(arg, "mi") {
        Ok(1609.34)
    } else {
        Err("ERR unsupported unit provided. please use M, KM, FT, MI".into())
    }
}

/// A distance with its unit: (value, meters per unit).
fn distance_arg(value: &[u8], unit_arg: &[u8]) -> Result<(f64, f64), Error> {
    let d = double_arg(value, "ERR need numeric radius")?;
    if d < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((d, unit(unit_arg)?))
}

/// A distance as Redis prints one: fixed point, 4 decimals (`fixedpoint_d2string`).
fn fixed4(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10000.0).round_ties_even() as i64;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10000, a % 10000)
}

/// A coordinate as Redis prints one (`addReplyHumanLongDouble`: `%.17Lf`, trailing zeros
/// trimmed): a bulk string in RESP2, a double in RESP3.
fn human_double(out: &mut Reply, d: f64) {
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    match out.proto {
        Resp::V2 => out.bulk(s.as_bytes()),
        Resp::V3 => {
            out.raw(b",");
            out.raw(s.as_bytes());
            out.raw(b"\r\n");
        }
    }
}

/// The sorted set at `key`, if any (WRONGTYPE for other types).
fn zset_of(value: Option<ValueRef<'_>>) -> Result<Option<&ZSet>, Error> {
    match value.map(ValueRef::boxed) {
        None => Ok(None),
        Some(Some(Value::ZSet(z))) => Ok(Some(z)),
        Some(_) => Err(wrongtype()),
    }
}

/// GEOADD key [NX | XX] [CH] longitude latitude member [...]: ZADD of the geohashes.
fn geoadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut first = 2;
    let (mut nx, mut xx) = (false, false);
    while first < args.len() {
        let opt = args.get(first);
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if !is(opt, "ch") {
            break;
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (xx && nx) {
        return Err(error::syntax());
    }
    // As Redis: ZADD key [options] score member ..., with the geohashes as scores.
    let mut zadd_args = ArgVec::new();
    zadd_args.push(b"zadd");
    for a in args.iter().take(first).skip(1) {
        zadd_args.push(a);
    }
    for t in 0..(args.len() - first) / 3 {
        let at = first + t * 3;
        let (x, y) = lon_lat(args.get(at), args.get(at + 1))?;
        let bits = geohash::encode(x, y, geohash::STEP_MAX).map_or(0, |h| h.align52());
        zadd_args.push(itoa::Buffer::new().format(bits).as_bytes());
        zadd_args.push(args.get(at + 2));
    }
    super::zsets::zadd(ctx, zadd_args.args())
}

/// GEOPOS key [member ...]
fn geopos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let z = zset_of(found.map(|e| e.value))?;
    let out = ctx.out();
    out.array(args.len() - 2);
    for member in args.iter().skip(2) {
        match z.and_then(|z| z.score(member)).and_then(geohash::decode_score) {
            None => out.null_array(),
            Some((x, y)) => {
                out.array(2);
                human_double(out, x);
                human_double(out, y);
            }
        }
    }
    Ok(())
}

/// GEOHASH key [member ...]
fn geohash_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let z = zset_of(found.map(|e| e.value))?;
    let out = ctx.out();
    out.array(args.len() - 2);
    for member in args.iter().skip(2) {
        match z.and_then(|z| z.score(member)).and_then(geohash::standard_string) {
            None => out.null(),
            Some(s) => out.bulk(&s),
        }
    }
    Ok(())
}

/// GEODIST key member1 member2 [M | KM | FT | MI]
fn geodist(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let to_meter = match args.len() {
        5 => unit(args.get(4))?,
        4 => 1.0,
        _ => return Err(error::syntax()),
    };
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(z) = zset_of(found.map(|e| e.value))? else {
        ctx.out().null();
        return Ok(());
    };
    let a = z.score(args.get(2)).and_then(geohash::decode_score);
    let b = z.score(args.get(3)).and_then(geohash::decode_score);
    let (Some((x1, y1)), Some((x2, y2))) = (a, b) else {
        ctx.out().null();
        return Ok(());
    };
    let d = geohash::distance(x1, y1, x2, y2) / to_meter;
    ctx.out().bulk(fixed4(d).as_bytes());
    Ok(())
}

/// Which search command runs [`search`].
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// GEORADIUS (`store` when STORE/STOREDIST are allowed).
    Coords { store: bool },
    /// GEORADIUSBYMEMBER.
    Member { store: bool },
    /// GEOSEARCH and (`store`) GEOSEARCHSTORE.
    Search { store: bool },
}

fn georadius(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Kind::Coords { store: true })
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Kind::Coords { store: false })
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Kind::Member { store: true })
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Kind::Member { store: false })
}

fn geosearch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Kind::Search { store: false })
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search(ctx, args, Kind::Search { store: true })
}

/// A member found by a search.
struct Point {
    member: Vec<u8>,
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

/// What a search asks for.
#[derive(Default)]
struct Query {
    center: Option<(f64, f64)>,
    /// The shape in its unit, and meters per unit.
    shape: Option<(Shape, f64)>,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    any: bool,
    count: i64,
    /// 0 none, 1 ascending, 2 descending.
    sort: u8,
    store: Option<usize>,
    store_dist: bool,
}

/// `georadiusGeneric`.
fn search(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let src_index = if kind == (Kind::Search { store: true }) { 2 } else { 1 };
    let src = args.get(src_index);
    let db = ctx.db_index();
    // The store key is known only once the options are read; lock the source first to read
    // it as Redis does (type check before the arguments), then everything needed.
    let exists_and_type = {
        let shard = ctx.db().read(src);
        let found = shard.get(src, ctx.now());
        ctx.hit(found.is_some());
        zset_of(found.map(|e| e.value))?;
        found.is_some()
    };
    let mut q = Query::default();
    let base = match kind {
        Kind::Coords { .. } => {
            q.center = Some(lon_lat(args.get(2), args.get(3))?);
            let (r, conv) = distance_arg(args.get(4), args.get(5))?;
            q.shape = Some((Shape::Radius(r), conv));
            6
        }
        Kind::Member { .. } => {
            // Read before the options, when the key exists (Redis's order of errors).
            if exists_and_type {
                q.center = Some(member_position(ctx, src, args.get(2))?);
                let (r, conv) = distance_arg(args.get(3), args.get(4))?;
                q.shape = Some((Shape::Radius(r), conv));
            }
            5
        }
        Kind::Search { store } => {
            if store {
                q.store = Some(1);
                3
            } else {
                2
            }
        }
    };
    let (mut from_member, mut from_loc, mut by_radius, mut by_box) = (None::<&[u8]>, false, false, false);
    let remaining = args.len().saturating_sub(base);
    let mut i = 0;
    let arg = |k: usize| args.get(base + k);
    let searching = matches!(kind, Kind::Search { .. });
    let store_allowed = matches!(kind, Kind::Coords { store: true } | Kind::Member { store: true });
    while i < remaining {
        let a = arg(i);
        if is(a, "withdist") {
            q.with_dist = true;
        } else if is(a, "withhash") {
            q.with_hash = true;
        } else if is(a, "withcoord") {
            q.with_coord = true;
        } else if is(a, "any") {
            q.any = true;
        } else if is(a, "asc") {
            q.sort = 1;
        } else if is(a, "desc") {
            q.sort = 2;
        } else if is(a, "count") && i + 1 < remaining {
            q.count = int_arg(arg(i + 1))?;
            if q.count <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            i += 1;
        } else if is(a, "store") && i + 1 < remaining && store_allowed {
            q.store = Some(base + i + 1);
            q.store_dist = false;
            i += 1;
        } else if is(a, "storedist") && i + 1 < remaining && store_allowed {
            q.store = Some(base + i + 1);
            q.store_dist = true;
            i += 1;
        } else if is(a, "storedist") && kind == (Kind::Search { store: true }) {
            q.store_dist = true;
        } else if is(a, "frommember") && i + 1 < remaining && searching && !from_loc {
            from_member = Some(arg(i + 1));
            i += 1;
        } else if is(a, "fromlonlat") && i + 2 < remaining && searching && from_member.is_none() {
            q.center = Some(lon_lat(arg(i + 1), arg(i + 2))?);
            from_loc = true;
            i += 2;
        } else if is(a, "byradius") && i + 2 < remaining && searching && !by_box {
            let (r, conv) = distance_arg(arg(i + 1), arg(i + 2))?;
            q.shape = Some((Shape::Radius(r), conv));
            by_radius = true;
            i += 2;
        } else if is(a, "bybox") && i + 3 < remaining && searching && !by_radius {
            let w = double_arg(arg(i + 1), "ERR need numeric width")?;
            let h = double_arg(arg(i + 2), "ERR need numeric height")?;
            if h < 0.0 || w < 0.0 {
                return Err("ERR height or width cannot be negative".into());
            }
            let conv = unit(arg(i + 3))?;
            q.shape = Some((Shape::Box { width: w, height: h }, conv));
            by_box = true;
            i += 3;
        } else {
            return Err(error::syntax());
        }
        // FROMMEMBER's member is decoded where Redis decodes it: while reading the options,
        // when the key exists.
        if let (Some(m), true, None) = (from_member, exists_and_type, q.center) {
            q.center = Some(member_position(ctx, src, m)?);
        }
        i += 1;
    }
    if q.store.is_some() && (q.with_dist || q.with_hash || q.with_coord) {
        let what = if kind == (Kind::Search { store: true }) { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(Error::msg(format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")));
    }
    if searching && from_member.is_none() && !from_loc {
        return Err(Error::msg(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            String::from_utf8_lossy(args.get(0))
        )));
    }
    if searching && !by_radius && !by_box {
        return Err(Error::msg(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {}",
            String::from_utf8_lossy(args.get(0))
        )));
    }
    if q.any && q.count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    if q.count != 0 && q.sort == 0 && !q.any {
        q.sort = 1;
    }
    run_search(ctx, args, db, src, q, matches!(kind, Kind::Search { .. }))
}

/// The position of `member` in the sorted set at `key` (which exists and is a sorted set).
fn member_position(ctx: &Ctx<'_>, key: &[u8], member: &[u8]) -> Result<(f64, f64), Error> {
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    zset_of(found.map(|e| e.value))?
        .and_then(|z| z.score(member))
        .and_then(geohash::decode_score)
        .ok_or_else(|| "ERR could not decode requested zset member".into())
}

/// Finds the members and replies (or stores them).
fn run_search(ctx: &mut Ctx<'_>, args: Args<'_>, db: usize, src: &[u8], q: Query, geosearch: bool) -> CmdResult {
    let now = ctx.now();
    let Some(dest) = q.store.map(|i| args.get(i)) else {
        // A plain search reads its one key under a read lock.
        let shard = ctx.db().read(src);
        let points = match zset_of(shard.get(src, now).map(|e| e.value))? {
            Some(z) => found_points(z, &q)?,
            None => Vec::new(),
        };
        drop(shard);
        reply_points(ctx.out(), &points, &q);
        return Ok(());
    };
    let mut locked = ctx.keyspace().lock_write([(db, src), (db, dest)]);
    let points = match zset_of(locked.shard_ref(db, src).get(src, now).map(|e| e.value))? {
        Some(z) => found_points(z, &q)?,
        None => Vec::new(),
    };
    let n = points.len();
    if n > 0 {
        let mut zs = ZSet::with_capacity(n);
        for p in &points {
            zs.insert(&p.member, if q.store_dist { p.dist } else { p.score });
        }
        locked.shard(db, dest).insert(dest, Value::ZSet(Box::new(zs)), None, now);
        drop(locked);
        ctx.notify(notify::ZSET, if geosearch { "geosearchstore" } else { "georadiusstore" }, dest);
    } else {
        let removed = locked.shard(db, dest).remove(dest, now).is_some();
        drop(locked);
        if removed {
            ctx.notify(notify::GENERIC, "del", dest);
        }
    }
    ctx.out().int(n as i64);
    Ok(())
}

/// The members a search returns, sorted, limited to COUNT, distances in the query's unit.
fn found_points(z: &ZSet, q: &Query) -> Result<Vec<Point>, Error> {
    let (Some((cx, cy)), Some((shape, conv))) = (q.center, q.shape) else {
        return Err(error::syntax());
    };
    let in_meters = match shape {
        Shape::Radius(r) => Shape::Radius(r * conv),
        Shape::Box { width, height } => Shape::Box { width: width * conv, height: height * conv },
    };
    let limit = if q.any { q.count as usize } else { 0 };
    let mut points = collect(z, in_meters, cx, cy, limit);
    let returned = if q.count == 0 { points.len() } else { points.len().min(q.count as usize) };
    match q.sort {
        1 => points.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        2 => points.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        _ => {}
    }
    points.truncate(returned);
    for p in &mut points {
        p.dist /= conv;
    }
    Ok(points)
}

fn reply_points(out: &mut Reply, points: &[Point], q: &Query) {
    let options = usize::from(q.with_dist) + usize::from(q.with_hash) + usize::from(q.with_coord);
    out.array(points.len());
    for p in points {
        if options > 0 {
            out.array(options + 1);
        }
        out.bulk(&p.member);
        if q.with_dist {
            out.bulk(fixed4(p.dist).as_bytes());
        }
        if q.with_hash {
            out.int(p.score as i64);
        }
        if q.with_coord {
            out.array(2);
            human_double(out, p.lon);
            human_double(out, p.lat);
        }
    }
}

/// The members within `shape` around (x, y), box by box in Redis's order (`membersOfAllNeighbors`),
/// stopping at `limit` when it is not 0 (COUNT ... ANY).
fn collect(z: &ZSet, shape: Shape, x: f64, y: f64, limit: usize) -> Vec<Point> {
    let boxes = geohash::search_boxes(shape, x, y);
    let mut points = Vec::new();
    let mut last: usize = 0;
    for i in 0..boxes.len() {
        let b = boxes[i];
        if b.is_zero() {
            continue;
        }
        if last != 0 && b == boxes[last] {
            continue;
        }
        if limit != 0 && points.len() >= limit {
            break;
        }
        let min = b.align52() as f64;
        let max = geohash::Hash { bits: b.bits + 1, step: b.step }.align52() as f64;
        let range = ScoreRange {
            min: ScoreBound { value: min, exclusive: false },
            max: ScoreBound { value: max, exclusive: true },
        };
        let span = z.score_span(&range);
        for (member, score) in z.iter_from(span.start, false).take(span.len()) {
            if let Some((px, py)) = geohash::decode_score(score)
                && let Some(dist) = geohash::within(shape, x, y, px, py)
            {
                points.push(Point { member: member.to_vec(), lon: px, lat: py, dist, score });
            }
            if limit != 0 && points.len() >= limit {
                break;
            }
        }
        last = i;
    }
    points
}
