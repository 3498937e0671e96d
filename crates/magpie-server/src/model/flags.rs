//! The typed sets a table entry carries: command flags (Redis 7.0's, and Magpie's own), ACL
//! categories, and key-spec flags, with the names COMMAND INFO and ACL print.
//!
//! Table entries are `static`s, so the sets are built in constant expressions with the
//! [`flags!`](crate::flags), [`acl!`](crate::acl) and [`key_flags!`](crate::key_flags) macros.

use bitflags::bitflags;

bitflags! {
    /// What a command is and how dispatch must treat it. The first group are Redis 7.0's
    /// flags, with its names; the rest are Magpie's own and never shown to clients.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Flags: u64 {
        const WRITE = 1;
        const READONLY = 1 << 1;
        const DENYOOM = 1 << 2;
        const ADMIN = 1 << 3;
        const PUBSUB = 1 << 4;
        const NOSCRIPT = 1 << 5;
        const BLOCKING = 1 << 6;
        const LOADING = 1 << 7;
        const STALE = 1 << 8;
        const SKIP_MONITOR = 1 << 9;
        const SKIP_SLOWLOG = 1 << 10;
        const ASKING = 1 << 11;
        const FAST = 1 << 12;
        const NO_AUTH = 1 << 13;
        /// Hidden, as in Redis.
        const MAY_REPLICATE = 1 << 14;
        const NO_MANDATORY_KEYS = 1 << 15;
        /// Hidden, as in Redis: refused unless `enable-protected-configs`/`enable-debug-command`
        /// allow it.
        const PROTECTED = 1 << 16;
        const NO_ASYNC_LOADING = 1 << 17;
        const NO_MULTI = 1 << 18;
        /// Set by the table from the key specs (see `KeySpec`), never by hand.
        const MOVABLEKEYS = 1 << 19;
        const ALLOW_BUSY = 1 << 20;

        // Magpie's own.
        /// Runs with no other command running (EXEC, COMMIT): see `services::gate`.
        const RUNS_ALONE = 1 << 24;
        /// Runs at once inside MULTI instead of being queued (as Redis's EXEC, DISCARD, MULTI,
        /// WATCH, QUIT, RESET), and as itself inside BEGIN, not on the transaction's copy.
        const NOT_QUEUED = 1 << 25;
        /// Runs as itself inside BEGIN, not on the transaction's copy, though MULTI queues it
        /// (UNWATCH).
        const BEGIN_CONTROL = 1 << 26;
        /// May run while a RESP2 client is subscribed (the subscription commands, PING, QUIT,
        /// RESET).
        const SUBSCRIBED_OK = 1 << 27;
        /// Waits on the network (MIGRATE): runs without the gate, so no transaction waits for
        /// its round trip, and takes the gate itself around its steps on the keyspace.
        const NETWORK = 1 << 28;
        /// Logs the effects of what it runs itself (EVAL, FCALL: one record of the commands the
        /// script called), so dispatch does not log the command as it does other
        /// `MAY_REPLICATE` ones.
        const LOGS_EFFECTS = 1 << 29;
        /// Leaves CLIENT CACHING's choice for the command after it (Redis's CLIENT
        /// subcommands: `call` keeps the flag when the command was CLIENT).
        const KEEPS_CACHING = 1 << 30;
        /// Touches keys its key specs do not name (MOVE and COPY: the key in another
        /// database), so a transaction that queues it cannot hold only its keys' shards.
        const UNDECLARED_KEYS = 1 << 31;
        /// `RUNS_ALONE`, unless every command of the transaction it runs names every key it
        /// touches: then it holds only those keys' shards, and commands on other shards run
        /// meanwhile (EXEC: see `exec::multi`).
        const MAY_HOLD_KEYS = 1 << 32;
    }
}

/// Redis's flag names, in the order COMMAND INFO lists them (hidden flags left out).
pub(crate) const FLAG_NAMES: &[(Flags, &str)] = &[
    (Flags::WRITE, "write"),
    (Flags::READONLY, "readonly"),
    (Flags::DENYOOM, "denyoom"),
    (Flags::ADMIN, "admin"),
    (Flags::PUBSUB, "pubsub"),
    (Flags::NOSCRIPT, "noscript"),
    (Flags::BLOCKING, "blocking"),
    (Flags::LOADING, "loading"),
    (Flags::STALE, "stale"),
    (Flags::SKIP_MONITOR, "skip_monitor"),
    (Flags::SKIP_SLOWLOG, "skip_slowlog"),
    (Flags::ASKING, "asking"),
    (Flags::FAST, "fast"),
    (Flags::NO_AUTH, "no_auth"),
    (Flags::NO_MANDATORY_KEYS, "no_mandatory_keys"),
    (Flags::NO_ASYNC_LOADING, "no_async_loading"),
    (Flags::NO_MULTI, "no_multi"),
    (Flags::MOVABLEKEYS, "movablekeys"),
    (Flags::ALLOW_BUSY, "allow_busy"),
];

bitflags! {
    /// ACL categories (Redis's bit order, from `server.h`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Acl: u32 {
        const KEYSPACE = 1;
        const READ = 1 << 1;
        const WRITE = 1 << 2;
        const SET = 1 << 3;
        const SORTEDSET = 1 << 4;
        const LIST = 1 << 5;
        const HASH = 1 << 6;
        const STRING = 1 << 7;
        const BITMAP = 1 << 8;
        const HYPERLOGLOG = 1 << 9;
        const GEO = 1 << 10;
        const STREAM = 1 << 11;
        const PUBSUB = 1 << 12;
        const ADMIN = 1 << 13;
        const FAST = 1 << 14;
        const SLOW = 1 << 15;
        const BLOCKING = 1 << 16;
        const DANGEROUS = 1 << 17;
        const CONNECTION = 1 << 18;
        const TRANSACTION = 1 << 19;
        const SCRIPTING = 1 << 20;
    }
}

/// The categories' names, in Redis's order (`ACL CAT`, COMMAND INFO).
pub(crate) const ACL_NAMES: &[(Acl, &str)] = &[
    (Acl::KEYSPACE, "keyspace"),
    (Acl::READ, "read"),
    (Acl::WRITE, "write"),
    (Acl::SET, "set"),
    (Acl::SORTEDSET, "sortedset"),
    (Acl::LIST, "list"),
    (Acl::HASH, "hash"),
    (Acl::STRING, "string"),
    (Acl::BITMAP, "bitmap"),
    (Acl::HYPERLOGLOG, "hyperloglog"),
    (Acl::GEO, "geo"),
    (Acl::STREAM, "stream"),
    (Acl::PUBSUB, "pubsub"),
    (Acl::ADMIN, "admin"),
    (Acl::FAST, "fast"),
    (Acl::SLOW, "slow"),
    (Acl::BLOCKING, "blocking"),
    (Acl::DANGEROUS, "dangerous"),
    (Acl::CONNECTION, "connection"),
    (Acl::TRANSACTION, "transaction"),
    (Acl::SCRIPTING, "scripting"),
];

impl Acl {
    /// The categories Redis derives from a command's flags (`setImplicitACLCategories`),
    /// added to the ones its entry names.
    pub(crate) const fn with_implicit(self, flags: Flags) -> Acl {
        let mut acl = self.bits();
        if flags.contains(Flags::WRITE) {
            acl |= Acl::WRITE.bits();
        }
        if flags.contains(Flags::READONLY) && acl & Acl::SCRIPTING.bits() == 0 {
            acl |= Acl::READ.bits();
        }
        if flags.contains(Flags::ADMIN) {
            acl |= Acl::ADMIN.bits() | Acl::DANGEROUS.bits();
        }
        if flags.contains(Flags::PUBSUB) {
            acl |= Acl::PUBSUB.bits();
        }
        if flags.contains(Flags::FAST) {
            acl |= Acl::FAST.bits();
        }
        if flags.contains(Flags::BLOCKING) {
            acl |= Acl::BLOCKING.bits();
        }
        if acl & Acl::FAST.bits() == 0 {
            acl |= Acl::SLOW.bits();
        }
        Acl::from_bits_retain(acl)
    }

    /// The category a command of `group` belongs to unless its entry says otherwise.
    pub(crate) const fn of_group(group: &str) -> Acl {
        match group.as_bytes() {
            b"string" => Acl::STRING,
            b"list" => Acl::LIST,
            b"hash" => Acl::HASH,
            b"set" => Acl::SET,
            b"sorted-set" => Acl::SORTEDSET,
            b"generic" => Acl::KEYSPACE,
            b"connection" => Acl::CONNECTION,
            b"transactions" => Acl::TRANSACTION,
            b"pubsub" => Acl::PUBSUB,
            b"bitmap" => Acl::BITMAP,
            b"hyperloglog" => Acl::HYPERLOGLOG,
            b"geo" => Acl::GEO,
            b"stream" => Acl::STREAM,
            b"scripting" => Acl::SCRIPTING,
            _ => Acl::empty(),
        }
    }
}

bitflags! {
    /// What a command does with the keys of one key spec (Redis's `CMD_KEY_*`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct KeyFlags: u16 {
        /// Read-only access to the key's value.
        const RO = 1;
        /// Read and write.
        const RW = 1 << 1;
        /// Overwrite: the old value is not read.
        const OW = 1 << 2;
        /// Remove the key.
        const RM = 1 << 3;
        const ACCESS = 1 << 4;
        const UPDATE = 1 << 5;
        const INSERT = 1 << 6;
        const DELETE = 1 << 7;
        const NOT_KEY = 1 << 8;
        const INCOMPLETE = 1 << 9;
        const VARIABLE_FLAGS = 1 << 10;
    }
}

/// The key-spec flags' names, in Redis's order.
pub(crate) const KEY_FLAG_NAMES: &[(KeyFlags, &str)] = &[
    (KeyFlags::RO, "RO"),
    (KeyFlags::RW, "RW"),
    (KeyFlags::OW, "OW"),
    (KeyFlags::RM, "RM"),
    (KeyFlags::ACCESS, "access"),
    (KeyFlags::UPDATE, "update"),
    (KeyFlags::INSERT, "insert"),
    (KeyFlags::DELETE, "delete"),
    (KeyFlags::NOT_KEY, "not_key"),
    (KeyFlags::INCOMPLETE, "incomplete"),
    (KeyFlags::VARIABLE_FLAGS, "variable_flags"),
];

/// A set of command flags in a constant expression: `flags![WRITE, DENYOOM, FAST]`.
#[macro_export]
macro_rules! flags {
    ($($f:ident),* $(,)?) => {
        $crate::model::flags::Flags::from_bits_retain(0 $(| $crate::model::flags::Flags::$f.bits())*)
    };
}

/// A set of ACL categories in a constant expression: `acl![KEYSPACE, DANGEROUS]`.
#[macro_export]
macro_rules! acl {
    ($($f:ident),* $(,)?) => {
        $crate::model::flags::Acl::from_bits_retain(0 $(| $crate::model::flags::Acl::$f.bits())*)
    };
}

/// A set of key-spec flags in a constant expression: `key_flags![RW, ACCESS, UPDATE]`.
#[macro_export]
macro_rules! key_flags {
    ($($f:ident),* $(,)?) => {
        $crate::model::flags::KeyFlags::from_bits_retain(0 $(| $crate::model::flags::KeyFlags::$f.bits())*)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implicit_categories_follow_redis() {
        let get = Acl::STRING.with_implicit(flags![READONLY, FAST]);
        assert_eq!(get, acl![STRING, READ, FAST]);
        let config = Acl::empty().with_implicit(flags![ADMIN, NOSCRIPT, LOADING, STALE]);
        assert_eq!(config, acl![ADMIN, DANGEROUS, SLOW]);
        assert_eq!(Acl::of_group("sorted-set"), Acl::SORTEDSET);
        assert_eq!(Acl::of_group("server"), Acl::empty());
        assert_eq!(ACL_NAMES.len(), Acl::all().iter().count());
    }
}
