//! Key specs: where a command's keys are among its arguments and what it does with them, as
//! Redis 7.0 describes them (`commands/*.json`'s `key_specs`, COMMAND INFO's 9th field).
//! Everything that needs a call's keys reads them from here: ACL key permissions, COMMAND
//! GETKEYS, the statistics, an interactive transaction copying the keys a command touches.

use magpie_protocol::{Args, parse_i64};

use super::flags::KeyFlags;

/// Where the search for the spec's first key begins. (Keyword and unknown begins come with
/// the commands that have them: SORT ... STORE, XREAD ... STREAMS, MIGRATE.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Begin {
    /// At this argument (1: the first after the name).
    Index(i32),
    /// After `keyword`, searched from argument `start` (negative: from the end, backwards).
    Keyword {
        keyword: &'static str,
        start: i32,
    },
    Unknown,
}

/// Which keys follow the beginning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum Find {
    /// Keys up to `last` (relative to the first; negative: counted from the end of the
    /// arguments), every `step`; with `limit` > 1 (and `last` = -1), only the first part of
    /// the remaining arguments: 1/limit of them.
    Range {
        last: i32,
        step: i32,
        limit: i32,
    },
    /// The argument at `index` (relative to the beginning) counts the keys; they start at
    /// `first` (also relative), every `step`.
    Keynum {
        index: i32,
        first: i32,
        step: i32,
    },
    Unknown,
}

/// A call's arguments contradict its command's key specs (a count that is not a number, keys
/// past the end): it has no reliable keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadKeys;

/// One key spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySpec {
    pub flags: KeyFlags,
    pub begin: Begin,
    pub find: Find,
    /// Redis's explanation, shown by COMMAND INFO.
    pub notes: Option<&'static str>,
}

impl KeySpec {
    pub(crate) const fn new(flags: KeyFlags, begin: Begin, find: Find) -> KeySpec {
        KeySpec { flags, begin, find, notes: None }
    }

    /// The key at argument `pos`.
    pub(crate) const fn one(pos: i32, flags: KeyFlags) -> KeySpec {
        KeySpec::new(flags, Begin::Index(pos), Find::Range { last: 0, step: 1, limit: 0 })
    }

    /// Keys from argument `pos` to `last` (relative; negative from the end) every `step`.
    pub(crate) const fn range(pos: i32, last: i32, step: i32, flags: KeyFlags) -> KeySpec {
        KeySpec::new(flags, Begin::Index(pos), Find::Range { last, step, limit: 0 })
    }

    /// Keys counted by the argument at `pos + index`, starting at `pos + first`.
    pub(crate) const fn keynum(pos: i32, index: i32, first: i32, step: i32, flags: KeyFlags) -> KeySpec {
        KeySpec::new(flags, Begin::Index(pos), Find::Keynum { index, first, step })
    }

    pub(crate) const fn notes(mut self, notes: &'static str) -> KeySpec {
        self.notes = Some(notes);
        self
    }

    /// The positions of this spec's keys in a call of `args`, as Redis's
    /// `getKeysUsingKeySpecs`: `Ok(None)` when the call has no keys for it (a keyword that is
    /// not there), `Err` when the arguments contradict it (a bad count, keys past the end).
    fn positions(&self, args: Args<'_>, lenient: bool) -> Result<Option<(usize, usize, usize)>, BadKeys> {
        let argc = i64::try_from(args.len()).map_err(|_| BadKeys)?;
        let first: i64 = match self.begin {
            Begin::Index(pos) => i64::from(pos),
            Begin::Keyword { keyword, start } => {
                let (from, to) = if start > 0 { (i64::from(start), argc - 1) } else { (argc + i64::from(start), 1) };
                let mut i = from;
                let mut found = 0;
                while i != to {
                    if i >= argc || i < 1 {
                        break;
                    }
                    let arg = args.get(usize::try_from(i).map_err(|_| BadKeys)?);
                    if crate::core::error::is(arg, keyword) {
                        found = i + 1;
                        break;
                    }
                    i = if from <= to { i + 1 } else { i - 1 };
                }
                if found == 0 {
                    return Ok(None);
                }
                found
            }
            Begin::Unknown => return Err(BadKeys),
        };
        let (first, last, step) = match self.find {
            Find::Range { last, step, limit } => {
                let last = if last >= 0 {
                    first + i64::from(last)
                } else if limit == 0 {
                    argc + i64::from(last)
                } else {
                    first + ((argc - first) / i64::from(limit) + i64::from(last))
                };
                (first, last, i64::from(step))
            }
            Find::Keynum { index, first: offset, step } => {
                let at = first + i64::from(index);
                if at >= argc || at < 0 {
                    return Err(BadKeys);
                }
                let count = parse_i64(args.get(usize::try_from(at).map_err(|_| BadKeys)?)).ok_or(BadKeys)?;
                if count < 0 {
                    return Err(BadKeys);
                }
                let first = first + i64::from(offset);
                let last = first.saturating_add(count).saturating_sub(1);
                // Leniently, a count past the arguments there are names those that are there.
                (first, if lenient { last.min(argc - 1) } else { last }, i64::from(step))
            }
            Find::Unknown => return Err(BadKeys),
        };
        if last >= argc || last < first || first >= argc || step <= 0 {
            return Err(BadKeys);
        }
        let to = |n: i64| usize::try_from(n).map_err(|_| BadKeys);
        Ok(Some((to(first)?, to(last)?, to(step)?)))
    }
}

/// The positions of a call's keys, with the flags of the spec each comes from, as Redis's
/// `getKeysFromCommandWithSpecs`: specs that are not keys (`NOT_KEY`) are left out; `Err` when
/// the arguments contradict a spec (then the call has no reliable keys).
pub(crate) fn key_positions(
    specs: &[KeySpec],
    args: Args<'_>,
    each: impl FnMut(usize, KeyFlags),
) -> Result<(), BadKeys> {
    walk(specs, args, false, each)
}

/// [`key_positions`], but a count of keys past the end of the arguments names the keys that
/// are there (what statistics count, and what an interactive transaction copies, for a call
/// that will fail anyway).
pub(crate) fn key_positions_lenient(
    specs: &[KeySpec],
    args: Args<'_>,
    each: impl FnMut(usize, KeyFlags),
) -> Result<(), BadKeys> {
    walk(specs, args, true, each)
}

fn walk(
    specs: &[KeySpec],
    args: Args<'_>,
    lenient: bool,
    mut each: impl FnMut(usize, KeyFlags),
) -> Result<(), BadKeys> {
    for spec in specs {
        if spec.flags.contains(KeyFlags::NOT_KEY) {
            continue;
        }
        let Some((first, last, step)) = spec.positions(args, lenient)? else { continue };
        let mut i = first;
        while i <= last {
            each(i, spec.flags);
            i += step;
        }
        if spec.flags.contains(KeyFlags::INCOMPLETE) {
            return Err(BadKeys);
        }
    }
    Ok(())
}

/// Redis's "legacy" key range of COMMAND INFO (first key, last key, step), and whether the
/// specs need parsing the arguments to find the keys (`movablekeys`), as Redis's
/// `populateCommandLegacyRangeSpec` derives them.
pub(crate) const fn legacy_range(specs: &[KeySpec]) -> ((i32, i32, i32), bool) {
    if specs.is_empty() {
        return ((0, 0, 0), false);
    }
    if specs.len() == 1
        && let (Begin::Index(pos), Find::Range { last, step, .. }) = (specs[0].begin, specs[0].find)
    {
        let last = if last >= 0 { last + pos } else { last };
        let movable = specs[0].flags.contains(KeyFlags::INCOMPLETE);
        return ((pos, last, step), movable);
    }
    let (mut first_key, mut last_key, mut prev_last) = (i32::MAX, 0i32, 0i32);
    let mut movable = false;
    let mut i = 0;
    while i < specs.len() {
        let spec = specs[i];
        i += 1;
        let (Begin::Index(pos), Find::Range { last, step, .. }) = (spec.begin, spec.find) else {
            movable = true;
            continue;
        };
        if step != 1 || (prev_last != 0 && prev_last != pos - 1) {
            movable = true;
            continue;
        }
        if spec.flags.contains(KeyFlags::INCOMPLETE) {
            movable = true;
        }
        if pos < first_key {
            first_key = pos;
        }
        let abs = if last >= 0 { last + pos } else { last };
        // Redis compares as unsigned, so a negative (from the end) last key wins.
        if (abs as u32) > (last_key as u32) {
            last_key = abs;
        }
        prev_last = last_key;
    }
    if first_key == i32::MAX {
        return ((0, 0, 0), true);
    }
    ((first_key, last_key, 1), movable)
}

#[cfg(test)]
mod tests {
    use magpie_protocol::ArgVec;

    use super::*;
    use crate::key_flags;

    fn keys(specs: &[KeySpec], line: &str) -> Result<Vec<String>, BadKeys> {
        let args = ArgVec::from_slices(line.split(' '));
        let mut found = Vec::new();
        key_positions(specs, args.args(), |i, _| found.push(String::from_utf8_lossy(args.args().get(i)).into()))?;
        Ok(found)
    }

    #[test]
    fn specs_find_keys_as_redis_does() {
        let rw = key_flags![RW];
        assert_eq!(keys(&[KeySpec::one(1, rw)], "get k"), Ok(vec!["k".into()]));
        assert_eq!(keys(&[KeySpec::range(1, -1, 2, rw)], "mset a 1 b 2"), Ok(vec!["a".into(), "b".into()]));
        let lmpop = [KeySpec::keynum(1, 0, 1, 1, rw)];
        assert_eq!(keys(&lmpop, "lmpop 2 a b LEFT"), Ok(vec!["a".into(), "b".into()]));
        assert_eq!(keys(&lmpop, "lmpop x a LEFT"), Err(BadKeys));
        assert_eq!(keys(&lmpop, "lmpop 5 a LEFT"), Err(BadKeys));
        assert_eq!(keys(&lmpop, "lmpop 9223372036854775807 a LEFT"), Err(BadKeys));
        let blpop = [KeySpec::range(1, -2, 1, rw)];
        assert_eq!(keys(&blpop, "blpop a b 0"), Ok(vec!["a".into(), "b".into()]));
        let store = [KeySpec::new(
            key_flags![OW, UPDATE],
            Begin::Keyword { keyword: "STORE", start: 1 },
            Find::Range { last: 0, step: 1, limit: 0 },
        )];
        assert_eq!(keys(&store, "sort k BY x STORE d"), Ok(vec!["d".into()]));
        assert_eq!(keys(&store, "sort k"), Ok(vec![]));
    }

    #[test]
    fn legacy_ranges_follow_redis() {
        let rw = key_flags![RW];
        assert_eq!(legacy_range(&[]), ((0, 0, 0), false));
        assert_eq!(legacy_range(&[KeySpec::one(1, rw)]), ((1, 1, 1), false));
        assert_eq!(legacy_range(&[KeySpec::range(1, -1, 2, rw)]), ((1, -1, 2), false));
        // RENAME: two consecutive one-key specs.
        assert_eq!(legacy_range(&[KeySpec::one(1, rw), KeySpec::one(2, rw)]), ((1, 2, 1), false));
        // LMOVE's and BLPOP's shapes; LMPOP is movable.
        assert_eq!(legacy_range(&[KeySpec::range(1, -2, 1, rw)]), ((1, -2, 1), false));
        assert_eq!(legacy_range(&[KeySpec::keynum(1, 0, 1, 1, rw)]), ((0, 0, 0), true));
        // ZUNIONSTORE: a destination, then keys by count: the first only, movable.
        assert_eq!(legacy_range(&[KeySpec::one(1, rw), KeySpec::keynum(2, 0, 1, 1, rw)]), ((1, 1, 1), true));
    }
}
