//! The command table: the families' tables and the execution layer's own transaction
//! commands, assembled in order.

use std::sync::LazyLock;

use super::{interactive, multi};
use crate::model::{Command, KeySpec, Table};
use crate::{flags, key_flags};

/// The transaction commands, which the execution layer runs itself.
#[rustfmt::skip]
static TRANSACTIONS: &[Command] = &[
    // transactions
    Command::new("multi", 1, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, NOT_QUEUED], "transactions", "1.2.0", "Starts a transaction.",
        "", multi::multi),
    Command::new("exec", 1, flags![NOSCRIPT, LOADING, STALE, SKIP_SLOWLOG, RUNS_ALONE, MAY_HOLD_KEYS, NOT_QUEUED], "transactions", "1.2.0", "Executes all commands in a transaction.",
        "", multi::exec),
    Command::new("discard", 1, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, NOT_QUEUED], "transactions", "2.0.0", "Discards a transaction.",
        "", multi::discard),
    Command::new("watch", -2, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, NOT_QUEUED], "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction.",
        "key [key ...]", multi::watch)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO])]),
    Command::new("unwatch", 1, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, BEGIN_CONTROL], "transactions", "2.2.0", "Forgets about watched keys of a transaction.",
        "", multi::unwatch),
    // interactive transactions (Magpie's own)
    Command::new("begin", 1, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, NOT_QUEUED], "transactions", "0.1.0", "Starts an interactive transaction: commands run at once on a private copy; COMMIT applies them all or none.",
        "", interactive::begin),
    Command::new("start", 1, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, NOT_QUEUED], "transactions", "0.1.0", "An alias of BEGIN.",
        "", interactive::begin),
    Command::new("commit", 1, flags![NOSCRIPT, LOADING, STALE, SKIP_SLOWLOG, RUNS_ALONE, NOT_QUEUED], "transactions", "0.1.0", "Applies an interactive transaction if nothing it touched was changed meanwhile; otherwise fails with CONFLICT.",
        "", interactive::commit),
    Command::new("rollback", 1, flags![NOSCRIPT, LOADING, STALE, FAST, ALLOW_BUSY, NOT_QUEUED], "transactions", "0.1.0", "Discards an interactive transaction.",
        "", interactive::rollback),
];

/// The command table: connection, transactions, the core groups, then each data type.
pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut all: Vec<&'static Command> = Vec::new();
    for family in
        [crate::commands::CONNECTION, TRANSACTIONS, crate::commands::CORE].into_iter().chain(crate::commands::FAMILIES)
    {
        all.extend(family.iter());
    }
    Table::new(all)
});

#[cfg(test)]
mod tests {
    use magpie_protocol::ArgVec;

    use super::*;
    use crate::model::docs::{DocArg, parse_syntax};
    use crate::services::stats::KeyOp;

    #[test]
    fn every_command_is_well_formed() {
        for &cmd in TABLE.commands() {
            assert_eq!(cmd.name, cmd.name.to_lowercase());
            assert!(TABLE.lookup(cmd.name.as_bytes()).is_some(), "{}", cmd.name);
            assert!(cmd.arity != 0, "{}", cmd.name);
            assert!(!cmd.summary.is_empty(), "{}", cmd.name);
            parse_syntax(cmd.syntax);
            for sub in cmd.subcommands {
                assert!(sub.arity.unsigned_abs() >= 2, "{}", sub.name);
                assert!(sub.name.starts_with(&format!("{}|", cmd.name)), "{}", sub.name);
                parse_syntax(sub.syntax);
            }
        }
        assert!(TABLE.lookup(b"GeT").is_some());
        assert!(TABLE.lookup(&[b'a'; 40]).is_none());
    }

    /// The fewest arguments a documented argument takes.
    fn min_words(arg: &DocArg) -> i32 {
        if arg.optional {
            return 0;
        }
        let own = match arg.kind {
            "oneof" => arg.children.iter().map(min_words).min().unwrap_or(0),
            "block" => arg.children.iter().map(min_words).sum(),
            "pure-token" => 0,
            _ => 1,
        };
        own + i32::from(arg.token.is_some())
    }

    #[test]
    fn docs_take_as_many_arguments_as_the_arity_asks() {
        // `LEFT|RIGHT` outside a group would make the whole syntax the alternatives: LMOVE's
        // docs ended at `LEFT`. The arity and the documented arguments must agree.
        for cmd in TABLE.commands().iter().flat_map(|c| std::iter::once(*c).chain(c.subcommands)) {
            if cmd.syntax.is_empty() {
                continue;
            }
            let words = if cmd.name.contains('|') { 2 } else { 1 };
            let documented: i32 = parse_syntax(cmd.syntax).iter().map(min_words).sum();
            assert_eq!(documented + words, cmd.arity.abs(), "{}: {:?}", cmd.name, cmd.syntax);
        }
    }

    #[test]
    fn ids_number_every_command_and_subcommand_once() {
        let total: usize = TABLE.commands().iter().map(|c| 1 + c.subcommands.len()).sum();
        assert_eq!(TABLE.names().len(), total);
        for (i, cmd) in TABLE.commands().iter().enumerate() {
            assert_eq!(TABLE.names()[i], cmd.name);
            assert_eq!(TABLE.by_id(i).map(|c| c.name), Some(cmd.name));
            for sub in cmd.subcommands {
                let id = TABLE.names().iter().position(|n| *n == sub.name).expect("numbered");
                assert_eq!(TABLE.by_id(id).map(|c| c.name), Some(sub.name));
            }
        }
    }

    #[test]
    fn key_counts_follow_key_positions() {
        let count = |line: &str| {
            let args = ArgVec::from_slices(line.split(' '));
            TABLE.lookup(args.args().get(0)).unwrap().key_count_in(args.args())
        };
        assert_eq!(count("get a"), 1);
        assert_eq!(count("mget a b c"), 3);
        assert_eq!(count("mset a 1 b 2 c 3"), 3);
        assert_eq!(count("del a"), 1);
        assert_eq!(count("rename a b"), 2);
        assert_eq!(count("ping"), 0);
        assert_eq!(TABLE.lookup(b"del").unwrap().op, KeyOp::Del);
        assert_eq!(TABLE.lookup(b"getdel").unwrap().op, KeyOp::Del);
        assert_eq!(TABLE.lookup(b"exists").unwrap().op, KeyOp::Get);
        assert_eq!(TABLE.lookup(b"incr").unwrap().op, KeyOp::Set);
        // Commands with numkeys count the keys they name.
        let keys_of = |line: &str| {
            let words: Vec<&str> = line.split(' ').collect();
            let args = ArgVec::from_slices(&words);
            TABLE.lookup(words[0].as_bytes()).unwrap().key_count_in(args.args())
        };
        assert_eq!(keys_of("lmpop 2 a b LEFT"), 2);
        assert_eq!(keys_of("blmpop 0 3 a b c RIGHT COUNT 2"), 3);
        assert_eq!(keys_of("lmpop 5 a LEFT"), 2);
        assert_eq!(keys_of("lmpop x a LEFT"), 0);
        assert_eq!(keys_of("blpop a b 0"), 2);
    }

    #[test]
    fn names_are_found_in_any_case_and_remembered_exactly() {
        let index = |name: &[u8]| TABLE.lookup_index(name).map(|(i, c)| (i, c.name));
        let get = index(b"get").expect("get");
        // Twice each, so that the second lookup of every spelling is served from memory.
        for _ in 0..2 {
            assert_eq!(index(b"get"), Some(get));
            assert_eq!(index(b"GET"), Some(get));
            assert_eq!(index(b"gEt"), Some(get));
            assert_eq!(index(b"get\0"), None);
            assert_eq!(index(b"ge"), None);
            assert_eq!(index(b""), None);
            assert_eq!(index(b"getrange"), Some(index(b"GETRANGE").expect("getrange")));
            assert_eq!(index(b"zrangebyscore").map(|(_, n)| n), Some("zrangebyscore"));
            assert_eq!(index(b"ZRANGEBYSCORE").map(|(_, n)| n), Some("zrangebyscore"));
            assert_eq!(index(b"nosuchcmd"), None);
        }
        // Every command, in both cases, several times over (names that share a slot of the
        // thread's memory replace each other there).
        for _ in 0..3 {
            for (i, &cmd) in TABLE.commands().iter().enumerate() {
                assert_eq!(index(cmd.name.as_bytes()), Some((i, cmd.name)));
                assert_eq!(index(cmd.name.to_uppercase().as_bytes()), Some((i, cmd.name)));
            }
        }
        // Another table (its own indices) is not answered from this one's memory.
        let other = Table::new(TABLE.commands().iter().rev().copied().collect());
        let n = TABLE.commands().len();
        for _ in 0..2 {
            let (i, name) = other.lookup_index(b"get").map(|(i, c)| (i, c.name)).expect("get");
            assert_eq!((i, name), (n - 1 - get.0, "get"));
            assert_eq!(index(b"get"), Some(get));
        }
    }
}
