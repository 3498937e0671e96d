//! The command families. Adding a command: one entry in its family's table (here for the core
//! groups, in the family's module for the data types) and one function in that module. The
//! execution layer assembles the tables into `crate::exec::TABLE`.

pub(crate) mod acl;
mod bitmaps;
mod clients;
mod connection;
mod dump;
mod geo;
mod hashes;
mod hyperloglog;
mod info;
mod introspection;
mod keys;
mod lists;
mod memory;
mod operator;
mod pubsub;
mod scripting;
mod server;
mod sets;
mod sort;
mod streams;
mod strings;
mod zsets;

use magpie_store::ShardWrite;

pub(crate) use connection::REDIS_VERSION;

use crate::model::command::{self, Command};
use crate::model::{Ctx, KeySpec};
use crate::{acl, flags, key_flags};

/// The data types' tables, in table order (after [`CONNECTION`], the transaction commands and
/// [`CORE`]).
pub(crate) static FAMILIES: [&[Command]; 15] = [
    lists::COMMANDS,
    hashes::COMMANDS,
    sets::COMMANDS,
    zsets::COMMANDS,
    pubsub::COMMANDS,
    acl::COMMANDS,
    bitmaps::COMMANDS,
    hyperloglog::COMMANDS,
    dump::COMMANDS,
    geo::COMMANDS,
    sort::COMMANDS,
    operator::COMMANDS,
    streams::COMMANDS,
    scripting::COMMANDS,
    memory::COMMANDS,
];

/// The connection commands.
#[rustfmt::skip]
pub(crate) static CONNECTION: &[Command] = &[
    // connection
    Command::new("ping", -1, flags![FAST, SUBSCRIBED_OK], "connection", "1.0.0", "Returns the server's liveliness response.",
        "[message]", connection::ping)
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    Command::new("echo", 2, flags![LOADING, STALE, FAST], "connection", "1.0.0", "Returns the given string.",
        "message", connection::echo),
    Command::new("select", 2, flags![LOADING, STALE, FAST], "connection", "2.0.0", "Changes the selected database.",
        "index:integer", connection::select),
    Command::new("quit", -1, flags![ALLOW_BUSY, NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, NOT_QUEUED, SUBSCRIBED_OK], "connection", "1.0.0", "Closes the connection.",
        "", connection::quit),
    Command::new("hello", -1, flags![NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, ALLOW_BUSY], "connection", "6.0.0", "Handshakes with the Redis server.",
        "[protover:integer [AUTH username password] [SETNAME clientname]]", connection::hello),
    acl::AUTH,
    Command::new("reset", 1, flags![NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, ALLOW_BUSY, NOT_QUEUED, SUBSCRIBED_OK], "connection", "6.2.0", "Resets the connection.",
        "", connection::reset),
    Command::new("client", -2, flags![], "connection", "2.4.0", "A container for client connection commands.",
        "", command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("client|id", 2, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "5.0.0", "Returns the unique client ID of the connection.",
                "", connection::client_id),
            Command::new("client|setname", 3, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "2.6.9", "Sets the connection name.",
                "connection-name", connection::client_setname),
            Command::new("client|getname", 2, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "2.6.9", "Returns the name of the connection.",
                "", connection::client_getname),
            Command::new("client|setinfo", 4, flags![NOSCRIPT, LOADING, STALE, FAST, KEEPS_CACHING], "connection", "7.2.0", "Sets information specific to the client or connection.",
                "(LIB-NAME libname|LIB-VER libver)", connection::client_setinfo),
            Command::new("client|list", -2, flags![ADMIN, NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "2.4.0", "Lists open connections.",
                "[TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id:integer ...]", connection::client_list)
                .tips(&["nondeterministic_output"]),
            Command::new("client|info", 2, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "6.2.0", "Returns information about the connection.",
                "", connection::client_info)
                .tips(&["nondeterministic_output"]),
            Command::new("client|kill", -3, flags![ADMIN, NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "2.4.0", "Kill the connection of a client",
                "(ip:port|(ID client-id:integer|TYPE client-type|USER username|ADDR ip:port|LADDR ip:port|SKIPME yes/no) ...)", clients::client_kill),
            Command::new("client|pause", -3, flags![ADMIN, NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "2.9.50", "Stop processing commands from clients for some time",
                "timeout:integer [WRITE|ALL]", clients::client_pause),
            Command::new("client|unpause", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "6.2.0", "Resume processing of clients that were paused",
                "", clients::client_unpause),
            Command::new("client|unblock", -3, flags![ADMIN, NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "5.0.0", "Unblock a client blocked in a blocking command from a different connection",
                "client-id:integer [TIMEOUT|ERROR]", clients::client_unblock),
            Command::new("client|reply", 3, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "3.2.0", "Instruct the server whether to reply to commands",
                "ON|OFF|SKIP", clients::client_reply),
            Command::new("client|no-evict", 3, flags![ADMIN, NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "7.0.0", "Set client eviction mode for the current connection",
                "ON|OFF", clients::client_no_evict),
            Command::new("client|tracking", -3, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "6.0.0", "Enable or disable server assisted client side caching support",
                "ON|OFF [REDIRECT client-id:integer] [PREFIX prefix [PREFIX prefix ...]] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]", clients::client_tracking),
            Command::new("client|caching", 3, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "6.0.0", "Instruct the server about tracking or not keys in the next request",
                "YES|NO", clients::client_caching),
            Command::new("client|getredir", 2, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "6.0.0", "Get tracking notifications redirection client ID if any",
                "", clients::client_getredir),
            Command::new("client|trackinginfo", 2, flags![NOSCRIPT, LOADING, STALE, KEEPS_CACHING], "connection", "6.2.0", "Return information about server assisted client side caching for the current connection",
                "", clients::client_trackinginfo),
        ]),
];

/// Strings, keys, expiry and the server commands (after the transaction commands, which the
/// execution layer contributes).
#[rustfmt::skip]
pub(crate) static CORE: &[Command] = &[
    // strings
    Command::new("get", 2, flags![READONLY, FAST], "string", "1.0.0", "Returns the string value of a key.",
        "key", strings::get)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("set", -3, flags![WRITE, DENYOOM], "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        "key value [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|KEEPTTL]", strings::set)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE, VARIABLE_FLAGS]).notes("RW and ACCESS due to the optional `GET` argument")]),
    Command::new("setnx", 3, flags![WRITE, DENYOOM, FAST], "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.",
        "key value", strings::setnx)
        .keys(&[KeySpec::one(1, key_flags![OW, INSERT])]),
    Command::new("setex", 4, flags![WRITE, DENYOOM], "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        "key seconds:integer value", strings::setex)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE])]),
    Command::new("psetex", 4, flags![WRITE, DENYOOM], "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        "key milliseconds:integer value", strings::psetex)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE])]),
    Command::new("getset", 3, flags![WRITE, DENYOOM, FAST], "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.",
        "key value", strings::getset)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("getdel", 2, flags![WRITE, FAST], "string", "6.2.0", "Returns the string value of a key after deleting the key.",
        "key", strings::getdel)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE])])
        .deletes(),
    Command::new("getex", -2, flags![WRITE, FAST], "string", "6.2.0", "Returns the string value of a key after setting its expiration time.",
        "key [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|PERSIST]", strings::getex)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE]).notes("RW and UPDATE because it changes the TTL")]),
    Command::new("mget", -2, flags![READONLY, FAST], "string", "1.0.0", "Atomically returns the string values of one or more keys.",
        "key [key ...]", strings::mget)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO, ACCESS])])
        .tips(&["request_policy:multi_shard"]),
    Command::new("mset", -3, flags![WRITE, DENYOOM], "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.",
        "(key value) ...", strings::mset)
        .keys(&[KeySpec::range(1, -1, 2, key_flags![OW, UPDATE])])
        .tips(&["request_policy:multi_shard", "response_policy:all_succeeded"]),
    Command::new("msetnx", -3, flags![WRITE, DENYOOM], "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        "(key value) ...", strings::msetnx)
        .keys(&[KeySpec::range(1, -1, 2, key_flags![OW, INSERT])])
        .tips(&["request_policy:multi_shard", "response_policy:agg_min"]),
    Command::new("append", 3, flags![WRITE, DENYOOM, FAST], "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        "key value", strings::append)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("strlen", 2, flags![READONLY, FAST], "string", "2.2.0", "Returns the length of a string value.",
        "key", strings::strlen)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("getrange", 4, flags![READONLY], "string", "2.4.0", "Returns a substring of the string stored at a key.",
        "key start:integer end:integer", strings::getrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("substr", 4, flags![READONLY], "string", "1.0.0", "Returns a substring from a string value.",
        "key start:integer end:integer", strings::getrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("setrange", 4, flags![WRITE, DENYOOM], "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        "key offset:integer value", strings::setrange)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("incr", 2, flags![WRITE, DENYOOM, FAST], "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        "key", strings::incr)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("decr", 2, flags![WRITE, DENYOOM, FAST], "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        "key", strings::decr)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("incrby", 3, flags![WRITE, DENYOOM, FAST], "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "key increment:integer", strings::incrby)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("decrby", 3, flags![WRITE, DENYOOM, FAST], "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        "key decrement:integer", strings::decrby)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("incrbyfloat", 3, flags![WRITE, DENYOOM, FAST], "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "key increment:double", strings::incrbyfloat)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("lcs", -3, flags![READONLY], "string", "7.0.0", "Find longest common substring",
        "key1 key2 [LEN] [IDX] [MINMATCHLEN len:integer] [WITHMATCHLEN]", strings::lcs)
        .keys(&[KeySpec::range(1, 1, 1, key_flags![RO, ACCESS])]),
    // keys
    Command::new("del", -2, flags![WRITE], "generic", "1.0.0", "Deletes one or more keys.",
        "key [key ...]", keys::del)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RM, DELETE])])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .deletes(),
    Command::new("unlink", -2, flags![WRITE, FAST], "generic", "4.0.0", "Asynchronously deletes one or more keys.",
        "key [key ...]", keys::del)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RM, DELETE])])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
        .deletes(),
    Command::new("exists", -2, flags![READONLY, FAST], "generic", "1.0.0", "Determines whether one or more keys exist.",
        "key [key ...]", keys::exists)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO])])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    Command::new("touch", -2, flags![READONLY, FAST], "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        "key [key ...]", keys::touch)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO])])
        .tips(&["request_policy:multi_shard", "response_policy:agg_sum"]),
    Command::new("type", 2, flags![READONLY, FAST], "generic", "1.0.0", "Determines the type of value stored at a key.",
        "key", keys::type_)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("keys", 2, flags![READONLY], "generic", "1.0.0", "Returns all key names that match a pattern.",
        "pattern:pattern", keys::keys)
        .acl(acl![KEYSPACE, DANGEROUS])
        .tips(&["request_policy:all_shards", "nondeterministic_output_order"]),
    Command::new("scan", -2, flags![READONLY], "generic", "2.8.0", "Iterates over the key names in the database.",
        "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]", keys::scan)
        .tips(&["nondeterministic_output", "request_policy:special"]),
    Command::new("randomkey", 1, flags![READONLY], "generic", "1.0.0", "Returns a random key name from the database.",
        "", keys::randomkey)
        .tips(&["request_policy:all_shards", "nondeterministic_output"]),
    Command::new("rename", 3, flags![WRITE], "generic", "1.0.0", "Renames a key and overwrites the destination.",
        "key newkey", keys::rename)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![OW, UPDATE])]),
    Command::new("renamenx", 3, flags![WRITE, FAST], "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.",
        "key newkey", keys::renamenx)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![OW, INSERT])]),
    Command::new("copy", -3, flags![WRITE, DENYOOM, UNDECLARED_KEYS], "generic", "6.2.0", "Copies the value of a key to a new key.",
        "source destination [DB destination-db:integer] [REPLACE]", keys::copy)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS]), KeySpec::one(2, key_flags![OW, UPDATE])]),
    Command::new("move", 3, flags![WRITE, FAST, UNDECLARED_KEYS], "generic", "1.0.0", "Move a key to another database",
        "key db:integer", keys::move_)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("swapdb", 3, flags![WRITE, FAST], "server", "4.0.0", "Swaps two Redis databases",
        "index1:integer index2:integer", keys::swapdb)
        .acl(acl![KEYSPACE, DANGEROUS]),
    Command::new("object", -2, flags![], "generic", "2.2.3", "A container for object introspection commands.",
        "", command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("object|encoding", 3, flags![READONLY], "generic", "2.2.3", "Returns the internal encoding of a Redis object.",
                "key", keys::object_encoding)
                .keys(&[KeySpec::one(2, key_flags![RO])])
                .tips(&["nondeterministic_output"]),
            Command::new("object|refcount", 3, flags![READONLY], "generic", "2.2.3", "Get the number of references to the value of the key",
                "key", keys::object_refcount)
                .keys(&[KeySpec::one(2, key_flags![RO])])
                .tips(&["nondeterministic_output"]),
            Command::new("object|freq", 3, flags![READONLY], "generic", "4.0.0", "Get the logarithmic access frequency counter of a Redis object",
                "key", keys::object_freq)
                .keys(&[KeySpec::one(2, key_flags![RO])])
                .tips(&["nondeterministic_output"]),
            Command::new("object|idletime", 3, flags![READONLY], "generic", "2.2.3", "Get the time since a Redis object was last accessed",
                "key", keys::object_idletime)
                .keys(&[KeySpec::one(2, key_flags![RO])])
                .tips(&["nondeterministic_output"]),
        ]),
    // expiry
    Command::new("expire", -3, flags![WRITE, FAST], "generic", "1.0.0", "Sets the expiration time of a key in seconds.",
        "key seconds:integer [NX|XX|GT|LT]", keys::expire)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("pexpire", -3, flags![WRITE, FAST], "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.",
        "key milliseconds:integer [NX|XX|GT|LT]", keys::pexpire)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("expireat", -3, flags![WRITE, FAST], "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.",
        "key unix-time-seconds:unix-time [NX|XX|GT|LT]", keys::expireat)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("pexpireat", -3, flags![WRITE, FAST], "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "key unix-time-milliseconds:unix-time [NX|XX|GT|LT]", keys::pexpireat)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("ttl", 2, flags![READONLY, FAST], "generic", "1.0.0", "Returns the expiration time in seconds of a key.",
        "key", keys::ttl)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("pttl", 2, flags![READONLY, FAST], "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.",
        "key", keys::pttl)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("expiretime", 2, flags![READONLY, FAST], "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.",
        "key", keys::expiretime)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("pexpiretime", 2, flags![READONLY, FAST], "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        "key", keys::pexpiretime)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("persist", 2, flags![WRITE, FAST], "generic", "2.2.0", "Removes the expiration time of a key.",
        "key", keys::persist)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    // server
    Command::new("dbsize", 1, flags![READONLY, FAST], "server", "1.0.0", "Returns the number of keys in the database.",
        "", server::dbsize)
        .acl(acl![KEYSPACE])
        .tips(&["request_policy:all_shards", "response_policy:agg_sum"]),
    Command::new("flushdb", -1, flags![WRITE], "server", "1.0.0", "Removes all keys from the current database.",
        "[ASYNC|SYNC]", server::flushdb)
        .acl(acl![KEYSPACE, DANGEROUS])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    Command::new("flushall", -1, flags![WRITE], "server", "1.0.0", "Removes all keys from all databases.",
        "[ASYNC|SYNC]", server::flushall)
        .acl(acl![KEYSPACE, DANGEROUS])
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
    Command::new("time", 1, flags![LOADING, STALE, FAST], "server", "2.6.0", "Returns the server time.",
        "", server::time)
        .tips(&["nondeterministic_output"]),
    Command::new("save", 1, flags![NO_ASYNC_LOADING, ADMIN, NOSCRIPT, NO_MULTI], "server", "1.0.0", "Synchronously saves the database(s) to disk.",
        "", server::save),
    Command::new("bgsave", -1, flags![NO_ASYNC_LOADING, ADMIN, NOSCRIPT], "server", "1.0.0", "Asynchronously saves the database(s) to disk.",
        "[SCHEDULE]", server::bgsave),
    Command::new("bgrewriteaof", 1, flags![NO_ASYNC_LOADING, ADMIN, NOSCRIPT], "server", "1.0.0", "Asynchronously rewrites the append-only file to disk.",
        "", server::bgrewriteaof),
    Command::new("lastsave", 1, flags![LOADING, STALE, FAST], "server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk.",
        "", server::lastsave)
        .acl(acl![ADMIN, DANGEROUS])
        .tips(&["nondeterministic_output"]),
    Command::new("shutdown", -1, flags![ADMIN, NOSCRIPT, LOADING, STALE, NO_MULTI, ALLOW_BUSY, RUNS_ALONE], "server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]", server::shutdown),
    Command::new("config", -2, flags![], "server", "2.0.0", "A container for server configuration commands.",
        "", command::container)
        .with_subcommands(&[
            Command::new("config|get", -3, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.0.0", "Returns the effective values of configuration parameters.",
                "parameter [parameter ...]", server::config_get),
            Command::new("config|set", -4, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.0.0", "Sets configuration parameters in-flight.",
                "(parameter value) ...", server::config_set)
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            Command::new("config|resetstat", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.0.0", "Resets the server's statistics.",
                "", server::config_resetstat),
        ]),
    Command::new("info", -1, flags![LOADING, STALE], "server", "1.0.0", "Returns information and statistics about the server.",
        "[section ...]", server::info)
        .acl(acl![DANGEROUS])
        .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
    Command::new("command", -1, flags![LOADING, STALE], "server", "2.8.13", "Returns detailed information about all commands.",
        "", introspection::command)
        .acl(acl![CONNECTION])
        .tips(&["nondeterministic_output_order"])
        .with_subcommands(&[
            Command::new("command|count", 2, flags![LOADING, STALE], "server", "2.8.13", "Returns a count of commands.",
                "", introspection::command_count)
                .acl(acl![CONNECTION]),
            Command::new("command|info", -2, flags![LOADING, STALE], "server", "2.8.13", "Returns information about one, multiple or all commands.",
                "[command-name ...]", introspection::command_info)
                .acl(acl![CONNECTION])
                .tips(&["nondeterministic_output_order"]),
            Command::new("command|docs", -2, flags![LOADING, STALE], "server", "7.0.0", "Returns documentary information about one, multiple or all commands.",
                "[command-name ...]", introspection::command_docs)
                .acl(acl![CONNECTION])
                .tips(&["nondeterministic_output_order"]),
            Command::new("command|list", -2, flags![LOADING, STALE], "server", "7.0.0", "Returns a list of command names.",
                "", introspection::command_list)
                .acl(acl![CONNECTION])
                .tips(&["nondeterministic_output_order"]),
            Command::new("command|getkeys", -4, flags![LOADING, STALE], "server", "2.8.13", "Extracts the key names from an arbitrary command.",
                "command arg [arg ...]", introspection::command_getkeys)
                .acl(acl![CONNECTION]),
        ]),
];

/// Write-locks the shard of `key` to take elements from it (a pop, a removal), after clients
/// blocked on it have been served what was added for them (see [`Ctx::waiters_first`]).
/// Shared by the list and sorted-set commands.
fn lock_to_take<'a>(ctx: &Ctx<'a>, key: &[u8]) -> ShardWrite<'a> {
    loop {
        let shard = ctx.db().write(key);
        if !ctx.waiters_first(key) {
            return shard;
        }
        drop(shard);
        ctx.serve_waiters();
    }
}

/// Writes `n` independent random draws (HRANDFIELD, ZRANDMEMBER with a negative count), `draw`
/// writing as many as it is asked for at a time. The count is the client's, not the data's:
/// a reply that cannot fit in `max_reply` bytes (each element takes at least `min_element`) is
/// refused at once, and one that outgrows it is taken back and refused with `too_large`, where
/// Redis would keep writing until memory runs out.
fn random_draws(
    out: &mut magpie_protocol::Reply,
    n: usize,
    min_element: usize,
    max_reply: usize,
    too_large: &'static str,
    header: impl FnOnce(&mut magpie_protocol::Reply),
    mut draw: impl FnMut(&mut magpie_protocol::Reply, usize),
) -> crate::core::error::CmdResult {
    if n.saturating_mul(min_element) > max_reply {
        return Err(too_large.into());
    }
    let start = out.len();
    header(out);
    let mut left = n;
    while left > 0 {
        let draws = left.min(1024);
        draw(out, draws);
        left -= draws;
        if out.len() - start > max_reply {
            out.truncate(start);
            return Err(too_large.into());
        }
    }
    Ok(())
}

/// Redis's `addReplyHelp`: "`container` <subcommand> ... Subcommands are:", the lines, and
/// HELP's own two.
fn reply_help(ctx: &mut Ctx<'_>, container: &str, lines: &[&str]) -> crate::core::error::CmdResult {
    let out = ctx.out();
    out.array(lines.len() + 3);
    out.simple(&format!("{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"));
    for line in lines {
        out.simple(line);
    }
    out.simple("HELP");
    out.simple("    Prints this help.");
    Ok(())
}
