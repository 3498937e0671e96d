//! SORT and SORT_RO (`sort.c`): lists, sets and sorted sets, numerically or ALPHA, BY a
//! pattern (or `nosort`), GET patterns (`#`, `key*`, `hash*->field`), LIMIT, ASC/DESC, and STORE
//! into a list.
//!
//! The keys that BY and GET patterns name are known only from the elements, so the command
//! locks the source, works out the keys its patterns name, and then locks all of them together
//! with the source (and the STORE key), checking that the source still names the same keys; it
//! is therefore atomic, as Redis's is.

use std::collections::BTreeSet;

use magpie_protocol::{Args, Reply};
use magpie_store::{List, MultiWrite, Value};

use super::zsets::strtod;
use crate::core::error::{self, CmdResult, Error, int_arg, is, wrongtype};
use crate::core::events as notify;
use crate::model::{Begin, Command, Ctx, Find, KeySpec};
use crate::{acl, flags, key_flags};

const GROUP: &str = "generic";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("sort", -2, flags![WRITE, DENYOOM], GROUP, "1.0.0", "Sort the elements in a list, set or sorted set",
        "key [BY pattern:pattern] [LIMIT offset:integer count:integer] [GET pattern:pattern ...] [ASC|DESC] [ALPHA] [STORE destination]", sort)
        .acl(acl![SET, SORTEDSET, LIST, DANGEROUS])
        .keys(&[
            KeySpec::one(1, key_flags![RO, ACCESS]),
            KeySpec::new(key_flags![RO, ACCESS], Begin::Unknown, Find::Unknown).notes("For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort"),
            KeySpec::new(key_flags![OW, UPDATE], Begin::Unknown, Find::Unknown).notes("For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array"),
        ]),
    Command::new("sort_ro", -2, flags![READONLY], GROUP, "7.0.0", "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
        "key [BY pattern:pattern] [LIMIT offset:integer count:integer] [GET pattern:pattern ...] [ASC|DESC] [ALPHA]", sort_ro)
        .acl(acl![SET, SORTEDSET, LIST, DANGEROUS])
        .keys(&[
            KeySpec::one(1, key_flags![RO, ACCESS]),
            KeySpec::new(key_flags![RO, ACCESS], Begin::Unknown, Find::Unknown).notes("For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort"),
        ]),
];

fn sort(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    sort_generic(ctx, args, true)
}

/// The options of a SORT.
struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    by: Option<&'a [u8]>,
    /// BY names no key (`nosort` or any pattern without `*`): keep the source's order.
    dont_sort: bool,
    gets: Vec<&'a [u8]>,
    store: Option<&'a [u8]>,
}

fn parse<'a>(args: Args<'a>, readonly: bool) -> Result<Options<'a>, Error> {
    let mut o =
        Options { desc: false, alpha: false, limit: None, by: None, dont_sort: false, gets: Vec::new(), store: None };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = args.get(j);
        if is(a, "asc") {
            o.desc = false;
        } else if is(a, "desc") {
            o.desc = true;
        } else if is(a, "alpha") {
            o.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            o.limit = Some((int_arg(args.get(j + 1))?, int_arg(args.get(j + 2))?));
            j += 2;
        } else if !readonly && is(a, "store") && left >= 1 {
            o.store = Some(args.get(j + 1));
            j += 1;
        } else if is(a, "by") && left >= 1 {
            let p = args.get(j + 1);
            o.by = Some(p);
            o.dont_sort = !error::c_str(p).contains(&b'*');
            j += 1;
        } else if is(a, "get") && left >= 1 {
            o.gets.push(args.get(j + 1));
            j += 1;
        } else {
            return Err(error::syntax());
        }
        j += 1;
    }
    Ok(o)
}

/// The key a pattern names for an element, and the hash field after `->` if any
/// (`lookupKeyByPattern`); `None` for `#` (the element itself) and for patterns without `*`.
fn pattern_key(pattern: &[u8], element: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    // Redis reads the pattern as a C string up to '*', then as sds.
    let star = error::c_str(pattern).iter().position(|&c| c == b'*')?;
    let rest = &pattern[star + 1..];
    let (postfix, field) = match rest.windows(2).position(|w| w == b"->") {
        Some(f) if f + 2 < rest.len() && rest[f + 2] != 0 => (&rest[..f], Some(rest[f + 2..].to_vec())),
        _ => (rest, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    Some((key, field))
}

fn is_hash_pattern(pattern: &[u8]) -> bool {
    pattern == b"#"
}

/// Looks up what a pattern names for `element`: the element (`#`), a string value, or a
/// hash field; `None` for anything else. Counts keyspace hits and misses as Redis's lookups do.
fn lookup(ctx: &Ctx<'_>, locked: &MultiWrite<'_>, db: usize, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if is_hash_pattern(pattern) {
        return Some(element.to_vec());
    }
    let (key, field) = pattern_key(pattern, element)?;
    let found = locked.shard_ref(db, &key).get(&key, ctx.now());
    ctx.hit(found.is_some());
    let value = found?.value;
    match (field, &*value) {
        (Some(f), Value::Hash(h)) => h.get(&f).map(<[u8]>::to_vec),
        (None, v @ (Value::Str(_) | Value::Int(_))) => v.str_bytes(&mut itoa::Buffer::new()).map(<[u8]>::to_vec),
        _ => None,
    }
}

/// The elements to sort, in the source's order (a sorted set's by score).
fn elements(value: Option<&Value>) -> Result<Vec<Vec<u8>>, Error> {
    Ok(match value {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().map(<[u8]>::to_vec).collect(),
        Some(Value::Set(s)) => {
            let mut v = Vec::with_capacity(s.len());
            s.for_each(|m| v.push(m.to_vec()));
            v
        }
        Some(Value::ZSet(z)) => z.iter().map(|(m, _)| m.to_vec()).collect(),
        Some(_) => return Err(wrongtype()),
    })
}

/// The keys the BY and GET patterns name for these elements.
fn pattern_keys(o: &Options<'_>, elements: &[Vec<u8>]) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    let by = o.by.filter(|_| !o.dont_sort);
    for p in by.iter().chain(o.gets.iter()) {
        if is_hash_pattern(p) {
            continue;
        }
        for e in elements {
            if let Some((k, _)) = pattern_key(p, e) {
                keys.insert(k);
            }
        }
    }
    keys
}

/// One element being sorted.
struct Item {
    obj: Vec<u8>,
    score: f64,
    cmp: Option<Vec<u8>>,
}

const CONVERSION_ERROR: &str = "ERR One or more scores can't be converted into double";

/// Compares as C's `strcoll` in the C locale: bytes up to a NUL.
fn coll(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    error::c_str(a).cmp(error::c_str(b))
}

fn sort_generic(ctx: &mut Ctx<'_>, args: Args<'_>, readonly: bool) -> CmdResult {
    let mut o = parse(args, readonly)?;
    if ctx.in_interactive()
        && (o.store.is_some() || o.gets.iter().any(|g| !is_hash_pattern(g)) || (o.by.is_some() && !o.dont_sort))
    {
        // Those keys are not known before the command runs, so a private copy cannot hold them.
        return Err("ERR SORT with BY or GET patterns or STORE is not allowed inside BEGIN".into());
    }
    let db = ctx.db_index();
    let src = args.get(1);
    let mut known: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut first = true;
    loop {
        let keys = std::iter::once(src).chain(o.store).chain(known.iter().map(Vec::as_slice)).map(|k| (db, k));
        let locked = ctx.keyspace().lock_write(keys.collect::<Vec<_>>());
        let found = locked.shard_ref(db, src).get(src, ctx.now());
        if first {
            ctx.hit(found.is_some());
        }
        let source = found.map(|e| e.value);
        let elems = elements(source.as_deref())?;
        let needed = pattern_keys(&o, &elems);
        if !needed.is_subset(&known) {
            known = needed;
            first = false;
            continue;
        }
        let kind = source.as_deref().map(Value::type_name);
        return run(ctx, &mut o, locked, db, elems, kind);
    }
}

fn run(
    ctx: &mut Ctx<'_>,
    o: &mut Options<'_>,
    mut locked: MultiWrite<'_>,
    db: usize,
    elems: Vec<Vec<u8>>,
    kind: Option<&'static str>,
) -> CmdResult {
    let is_set = kind == Some("set");
    // A set has no order of its own: for STORE Redis sorts it (ALPHA) so the result is the same
    // everywhere.
    if o.dont_sort && is_set && o.store.is_some() {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let total = elems.len() as i64;
    let (limit_start, limit_count) = o.limit.unwrap_or((0, -1));
    let mut start = limit_start.max(0).min(total);
    let count = limit_count.max(-1).min(total);
    let mut end = if count < 0 { total - 1 } else { start + count - 1 };
    if start >= total {
        start = total - 1;
        end = total - 2;
    }
    if end >= total {
        end = total - 1;
    }
    let mut items: Vec<Item>;
    if o.dont_sort && matches!(kind, Some("list") | Some("zset")) {
        // Only the range is taken, from the end for DESC.
        let take = if end >= start { (end - start + 1) as usize } else { 0 };
        let iter: Box<dyn Iterator<Item = Vec<u8>>> = if o.desc {
            Box::new(elems.into_iter().rev().skip(start.max(0) as usize).take(take))
        } else {
            Box::new(elems.into_iter().skip(start.max(0) as usize).take(take))
        };
        items = iter.map(|obj| Item { obj, score: 0.0, cmp: None }).collect();
        end -= start;
        start = 0;
    } else {
        items = elems.into_iter().map(|obj| Item { obj, score: 0.0, cmp: None }).collect();
    }
    let mut conversion_error = false;
    if !o.dont_sort {
        for it in &mut items {
            let by_value = match o.by {
                Some(p) => match lookup(ctx, &locked, db, p, &it.obj) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    it.cmp = Some(by_value);
                }
            } else {
                let r = strtod(&by_value);
                let stop = by_value.get(r.end).copied().unwrap_or(0);
                it.score = r.value;
                if stop != 0 || r.out_of_range || r.value.is_nan() {
                    conversion_error = true;
                }
            }
        }
        if conversion_error {
            // Before sorting: a NaN score makes the order inconsistent, on which Rust's sort
            // may panic (Redis sorts, then answers this error all the same).
            return Err(CONVERSION_ERROR.into());
        }
        let (alpha, by, store, desc) = (o.alpha, o.by.is_some(), o.store.is_some(), o.desc);
        let cmp = |a: &Item, b: &Item| {
            let c = if !alpha {
                a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.obj.cmp(&b.obj))
            } else if by {
                match (&a.cmp, &b.cmp) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) if store => x.cmp(y),
                    (Some(x), Some(y)) => coll(x, y),
                }
            } else if store {
                a.obj.cmp(&b.obj)
            } else {
                coll(&a.obj, &b.obj)
            };
            if desc { c.reverse() } else { c }
        };
        items.sort_by(cmp);
    }
    let chosen = if end >= start { items.get(start as usize..=end as usize).unwrap_or(&[]) } else { &[] };
    let gets = o.gets.len();
    let output = if gets > 0 { gets * chosen.len() } else { chosen.len() };
    let Some(dest) = o.store else {
        let mut out = Reply::new(ctx.protocol());
        out.array(output);
        for it in chosen {
            if gets == 0 {
                out.bulk(&it.obj);
            }
            for g in &o.gets {
                match lookup(ctx, &locked, db, g, &it.obj) {
                    Some(v) => out.bulk(&v),
                    None => out.null(),
                }
            }
        }
        drop(locked);
        ctx.out().raw(out.as_bytes());
        return Ok(());
    };
    let mut list = List::new();
    for it in chosen {
        if gets == 0 {
            list.push_back(&it.obj);
        }
        for g in &o.gets {
            list.push_back(&lookup(ctx, &locked, db, g, &it.obj).unwrap_or_default());
        }
    }
    let now = ctx.now();
    if output > 0 {
        locked.shard(db, dest).insert(dest, Value::List(list), None, now);
        drop(locked);
        ctx.notify(notify::LIST, "sortstore", dest);
    } else {
        let removed = locked.shard(db, dest).remove(dest, now).is_some();
        drop(locked);
        if removed {
            ctx.notify(notify::GENERIC, "del", dest);
        }
    }
    ctx.out().int(output as i64);
    Ok(())
}
