//! ZUNION, ZINTER, ZDIFF, ZINTERCARD and the STORE forms: one body, as Redis's
//! `zunionInterDiffGenericCommand`. Inputs may be sorted sets or sets (members of a set score
//! 1). Every key is locked at once, so the result is one consistent view, and a STORE form
//! writes its destination under the same locks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use magpie_protocol::Args;
use magpie_store::{Key, Set, Shard, Value, ZSet, zset};

use super::parse::float_arg;
use super::{ranged_arg, store};
use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, is, wrongtype};
use crate::model::Ctx;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Redis's `zunionInterAggregate`: a sum that is NaN (inf - inf) counts as 0.
fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value;
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value;
            }
        }
    }
}

/// One input: its key, what it holds, its weight.
struct Source<'a> {
    key: &'a [u8],
    value: Input<'a>,
    weight: f64,
}

enum Input<'a> {
    Missing,
    ZSet(&'a ZSet),
    Set(&'a Set),
}

impl<'a> Input<'a> {
    fn len(&self) -> usize {
        match self {
            Input::Missing => 0,
            Input::ZSet(z) => z.len(),
            Input::Set(s) => s.len(),
        }
    }

    /// Calls `f` with each member and score (1 for a set's members). A sorted set lends its
    /// members for as long as the lock is held; a set's are copied.
    fn for_each(&self, mut f: impl FnMut(Cow<'a, [u8]>, f64)) {
        match self {
            Input::Missing => {}
            Input::ZSet(z) => z.iter().for_each(|(m, s)| f(Cow::Borrowed(m), s)),
            Input::Set(s) => s.for_each(|m| f(Cow::Owned(m.to_vec()), 1.0)),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Input::Missing => None,
            Input::ZSet(z) => z.score(member),
            Input::Set(s) => s.contains(member).then_some(1.0),
        }
    }
}

/// The command's options after the keys.
struct Options {
    how: Aggregate,
    withscores: bool,
    /// ZINTERCARD's LIMIT (0: none).
    limit: usize,
}

/// Reads WEIGHTS, AGGREGATE, WITHSCORES and LIMIT, as each command allows them.
fn parse_options(
    args: Args<'_>,
    from: usize,
    sources: &mut [Source<'_>],
    store: bool,
    op: Op,
    card: bool,
) -> Result<Options, Error> {
    let mut o = Options { how: Aggregate::Sum, withscores: false, limit: 0 };
    let mut options = Cursor::new(args, from);
    while let Some(opt) = options.next() {
        let remaining = options.remaining() + 1; // with the option itself
        if op != Op::Diff && !card && remaining > sources.len() && is(opt, "weights") {
            for src in sources.iter_mut() {
                let w = options.next_bytes()?;
                src.weight = float_arg(w).ok_or_else(|| Error::from("ERR weight value is not a float"))?;
            }
        } else if op != Op::Diff && !card && remaining >= 2 && is(opt, "aggregate") {
            let how = options.next_bytes()?;
            o.how = if is(how, "sum") {
                Aggregate::Sum
            } else if is(how, "min") {
                Aggregate::Min
            } else if is(how, "max") {
                Aggregate::Max
            } else {
                return Err(error::syntax());
            };
        } else if !store && !card && is(opt, "withscores") {
            o.withscores = true;
        } else if card && remaining >= 2 && is(opt, "limit") {
            o.limit = ranged_arg(options.next_bytes()?, 0, "ERR LIMIT can't be negative")?;
        } else {
            return Err(error::syntax());
        }
    }
    Ok(o)
}

/// Members with their scores, lent by the sources where they can be.
type Entries<'a> = Vec<(Cow<'a, [u8]>, f64)>;

/// The result: members with their scores, sorted; or only their number (ZINTERCARD).
fn compute<'a>(sources: &mut [Source<'a>], op: Op, o: &Options, card: bool) -> (Entries<'a>, usize) {
    if op != Op::Diff {
        // Smallest first, as Redis orders them (a stable sort: equal sizes keep their order).
        sources.sort_by_key(|s| s.value.len());
    }
    let mut out: Entries<'a> = Vec::new();
    let mut count = 0;
    match op {
        Op::Union => {
            let largest = sources.last().map_or(0, |s| s.value.len());
            let mut acc: HashMap<Cow<'a, [u8]>, f64, foldhash::fast::RandomState> =
                HashMap::with_capacity_and_hasher(largest, Default::default());
            for src in sources.iter() {
                src.value.for_each(|m, s| {
                    let mut score = src.weight * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.entry(m) {
                        Entry::Vacant(e) => {
                            e.insert(score);
                        }
                        Entry::Occupied(mut e) => aggregate(e.get_mut(), score, o.how),
                    }
                });
            }
            out = acc.into_iter().collect();
        }
        Op::Inter => {
            let Some((first, rest)) = sources.split_first() else { return (out, 0) };
            let mut done = false;
            first.value.for_each(|m, s| {
                if done {
                    return;
                }
                let mut score = first.weight * s;
                if score.is_nan() {
                    score = 0.0;
                }
                for other in rest {
                    // The same key twice is the same set: its own score counts again.
                    let value = if other.key == first.key { Some(s) } else { other.value.score(&m) };
                    match value {
                        Some(v) => aggregate(&mut score, v * other.weight, o.how),
                        None => return,
                    }
                }
                if card {
                    count += 1;
                    done = o.limit > 0 && count >= o.limit;
                } else {
                    out.push((m, score));
                }
            });
        }
        Op::Diff => {
            let Some((first, rest)) = sources.split_first() else { return (out, 0) };
            if rest.iter().any(|other| other.key == first.key) {
                return (out, 0);
            }
            first.value.for_each(|m, s| {
                if !rest.iter().any(|other| other.value.score(&m).is_some()) {
                    out.push((m, s));
                }
            });
        }
    }
    if card {
        return (out, count);
    }
    out.sort_unstable_by(|a, b| zset::cmp(a.1, &a.0, b.1, &b.0));
    let n = out.len();
    (out, n)
}

/// The sources named by the arguments, looked up in locked shards (counting hits and misses,
/// as Redis's `lookupKeyRead`); WRONGTYPE for anything but sorted sets and sets.
fn sources<'a>(ctx: &Ctx<'_>, keys: Args<'a>, shard: impl Fn(&[u8]) -> &'a Shard) -> Result<Vec<Source<'a>>, Error> {
    keys.iter()
        .map(|key| {
            let found = shard(key).get(key, ctx.now());
            ctx.hit(found.is_some());
            let value = match found.map(|e| e.value.boxed()) {
                None => Input::Missing,
                Some(Some(Value::ZSet(z))) => Input::ZSet(z),
                Some(Some(Value::Set(s))) => Input::Set(s),
                Some(_) => return Err(wrongtype()),
            };
            Ok(Source { key, value, weight: 1.0 })
        })
        .collect()
}

/// ZUNION/ZINTER/ZDIFF/ZINTERCARD numkeys key ... and ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE
/// destination numkeys key ...: `name` for the error text, `dst` for the STORE forms, `card`
/// for ZINTERCARD. As Redis: numkeys is checked, then the keys are looked up (and their types
/// checked), then the options are read.
pub(crate) fn run(ctx: &mut Ctx<'_>, args: Args<'_>, name: &str, dst: Option<&[u8]>, op: Op, card: bool) -> CmdResult {
    let at = if dst.is_some() { 2 } else { 1 };
    let numkeys = int_arg(args.get(at))?;
    if numkeys < 1 {
        return Err(Error::msg(format!("ERR at least 1 input key is needed for '{name}' command")));
    }
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.len() - at - 1 {
        return Err(error::syntax());
    }
    let all = args.skip(at + 1);
    let keys = Args::new(all.buf(), &all.spans()[..numkeys]);
    let db = ctx.db_index();
    let ks = ctx.keyspace();
    let Some(dst) = dst else {
        let locked = ks.lock_read(keys.iter().map(|k| (db, k)));
        let mut sources = sources(ctx, keys, |k| locked.shard(db, k))?;
        let o = parse_options(args, at + 1 + numkeys, &mut sources, false, op, card)?;
        let (entries, n) = compute(&mut sources, op, &o, card);
        let out = &mut *ctx.out();
        if card {
            out.int(n as i64);
        } else if o.withscores {
            out.pairs(n);
            for (m, s) in &entries {
                out.pair();
                out.bulk(m);
                out.double(*s);
            }
        } else {
            out.array(n);
            for (m, _) in &entries {
                out.bulk(m);
            }
        }
        return Ok(());
    };
    let locked = ks.lock_write(keys.iter().chain([dst]).map(|k| (db, k)));
    let result = {
        let locked = &locked;
        let mut sources = sources(ctx, keys, |k| locked.shard_ref(db, k))?;
        let o = parse_options(args, at + 1 + numkeys, &mut sources, true, op, false)?;
        let (entries, _) = compute(&mut sources, op, &o, false);
        entries.into_iter().map(|(m, s)| (Key::new(&m), s)).collect::<Vec<_>>()
    };
    let event = match op {
        Op::Union => "zunionstore",
        Op::Inter => "zinterstore",
        Op::Diff => "zdiffstore",
    };
    // The encoding Redis would give the result (small when it fits).
    store(ctx, locked, dst, ZSet::from_sorted(result), event);
    Ok(())
}
