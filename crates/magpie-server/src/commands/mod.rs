//! The command families. Adding a command: one entry in its family's table (here for the core
//! groups, in the family's module for the data types) and one function in that module. The
//! execution layer assembles the tables into `crate::exec::TABLE`.

mod connection;
mod hashes;
mod info;
mod introspection;
mod keys;
mod lists;
mod pubsub;
mod server;
mod sets;
mod strings;
mod zsets;

use magpie_store::Shard;
use parking_lot::RwLockWriteGuard;

pub use connection::{REDIS_VERSION, reset_connection};

use crate::model::Ctx;
use crate::model::command::{self, Command};
use crate::model::flags::{
    ADMIN, DENYOOM, FAST, LOADING, NO_ASYNC_LOADING, NO_AUTH, NO_MULTI, NOSCRIPT, READONLY, STALE, WRITE,
};

pub const NONE: (i32, i32, i32) = (0, 0, 0);
pub const KEY1: (i32, i32, i32) = (1, 1, 1);
pub const KEYS: (i32, i32, i32) = (1, -1, 1);
pub const TWO: (i32, i32, i32) = (1, 2, 1);

pub const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST;
const W: u32 = WRITE;
const WD: u32 = WRITE | DENYOOM;
const WDF: u32 = WRITE | DENYOOM | FAST;
const WF: u32 = WRITE | FAST;
const RF: u32 = READONLY | FAST;

/// The data types' tables, in table order (after [`CONNECTION`], the transaction commands and
/// [`CORE`]).
pub static FAMILIES: [&[Command]; 5] =
    [lists::COMMANDS, hashes::COMMANDS, sets::COMMANDS, zsets::COMMANDS, pubsub::COMMANDS];

/// The connection commands.
#[rustfmt::skip]
pub static CONNECTION: &[Command] = &[
    // connection
    Command::new("ping", -1, FAST, NONE, "connection", "1.0.0", "Returns the server's liveliness response.", "[message]", connection::ping),
    Command::new("echo", 2, FAST, NONE, "connection", "1.0.0", "Returns the given string.", "message", connection::echo),
    Command::new("select", 2, CONN, NONE, "connection", "2.0.0", "Changes the selected database.", "index:integer", connection::select),
    Command::new("quit", -1, CONN | NO_AUTH, NONE, "connection", "1.0.0", "Closes the connection.", "", connection::quit),
    Command::new("hello", -1, CONN | NO_AUTH, NONE, "connection", "6.0.0", "Handshakes with the Redis server.",
        "[protover:integer [AUTH username password] [SETNAME clientname]]", connection::hello),
    Command::new("reset", 1, CONN | NO_AUTH, NONE, "connection", "6.2.0", "Resets the connection.", "", connection::reset),
    Command::new("client", -2, 0, NONE, "connection", "2.4.0", "A container for client connection commands.", "", command::container)
        .with_subcommands(&[
            Command::new("client|id", 2, CONN, NONE, "connection", "5.0.0", "Returns the unique client ID of the connection.", "", connection::client_id),
            Command::new("client|setname", 3, CONN, NONE, "connection", "2.6.9", "Sets the connection name.", "connection-name", connection::client_setname),
            Command::new("client|getname", 2, CONN, NONE, "connection", "2.6.9", "Returns the name of the connection.", "", connection::client_getname),
            Command::new("client|setinfo", 4, CONN, NONE, "connection", "7.2.0", "Sets information specific to the client or connection.",
                "(LIB-NAME libname|LIB-VER libver)", connection::client_setinfo),
            Command::new("client|list", -2, ADMIN | NOSCRIPT | LOADING | STALE, NONE, "connection", "2.4.0", "Lists open connections.",
                "[TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id:integer ...]", connection::client_list),
            Command::new("client|info", 2, CONN, NONE, "connection", "6.2.0", "Returns information about the connection.", "", connection::client_info),
        ]),
];

/// Strings, keys, expiry and the server commands (after the transaction commands, which the
/// execution layer contributes).
#[rustfmt::skip]
pub static CORE: &[Command] = &[
    // strings
    Command::new("get", 2, RF, KEY1, "string", "1.0.0", "Returns the string value of a key.", "key", strings::get),
    Command::new("set", -3, WD, KEY1, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        "key value [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|KEEPTTL]", strings::set),
    Command::new("setnx", 3, WDF, KEY1, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", "key value", strings::setnx),
    Command::new("setex", 4, WD, KEY1, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        "key seconds:integer value", strings::setex),
    Command::new("psetex", 4, WD, KEY1, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        "key milliseconds:integer value", strings::psetex),
    Command::new("getset", 3, WDF, KEY1, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", "key value", strings::getset),
    Command::new("getdel", 2, WF, KEY1, "string", "6.2.0", "Returns the string value of a key after deleting the key.", "key", strings::getdel).deletes(),
    Command::new("getex", -2, WF, KEY1, "string", "6.2.0", "Returns the string value of a key after setting its expiration time.",
        "key [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|PERSIST]", strings::getex),
    Command::new("mget", -2, RF, KEYS, "string", "1.0.0", "Atomically returns the string values of one or more keys.", "key [key ...]", strings::mget),
    Command::new("mset", -3, WD, (1, -1, 2), "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", "(key value) ...", strings::mset),
    Command::new("msetnx", -3, WD, (1, -1, 2), "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        "(key value) ...", strings::msetnx),
    Command::new("append", 3, WDF, KEY1, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", "key value", strings::append),
    Command::new("strlen", 2, RF, KEY1, "string", "2.2.0", "Returns the length of a string value.", "key", strings::strlen),
    Command::new("getrange", 4, READONLY, KEY1, "string", "2.4.0", "Returns a substring of the string stored at a key.", "key start:integer end:integer", strings::getrange),
    Command::new("substr", 4, READONLY, KEY1, "string", "1.0.0", "Returns a substring from a string value.", "key start:integer end:integer", strings::getrange),
    Command::new("setrange", 4, WD, KEY1, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        "key offset:integer value", strings::setrange),
    Command::new("incr", 2, WDF, KEY1, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "key", strings::incr),
    Command::new("decr", 2, WDF, KEY1, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "key", strings::decr),
    Command::new("incrby", 3, WDF, KEY1, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "key increment:integer", strings::incrby),
    Command::new("decrby", 3, WDF, KEY1, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        "key decrement:integer", strings::decrby),
    Command::new("incrbyfloat", 3, WDF, KEY1, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        "key increment:double", strings::incrbyfloat),
    // keys
    Command::new("del", -2, W, KEYS, "generic", "1.0.0", "Deletes one or more keys.", "key [key ...]", keys::del).deletes(),
    Command::new("unlink", -2, WF, KEYS, "generic", "4.0.0", "Asynchronously deletes one or more keys.", "key [key ...]", keys::del).deletes(),
    Command::new("exists", -2, RF, KEYS, "generic", "1.0.0", "Determines whether one or more keys exist.", "key [key ...]", keys::exists),
    Command::new("touch", -2, RF, KEYS, "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        "key [key ...]", keys::exists),
    Command::new("type", 2, RF, KEY1, "generic", "1.0.0", "Determines the type of value stored at a key.", "key", keys::type_),
    Command::new("keys", 2, READONLY, NONE, "generic", "1.0.0", "Returns all key names that match a pattern.", "pattern:pattern", keys::keys),
    Command::new("scan", -2, READONLY, NONE, "generic", "2.8.0", "Iterates over the key names in the database.",
        "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]", keys::scan),
    Command::new("randomkey", 1, READONLY, NONE, "generic", "1.0.0", "Returns a random key name from the database.", "", keys::randomkey),
    Command::new("rename", 3, W, TWO, "generic", "1.0.0", "Renames a key and overwrites the destination.", "key newkey", keys::rename),
    Command::new("renamenx", 3, WF, TWO, "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.", "key newkey", keys::renamenx),
    Command::new("copy", -3, WD, TWO, "generic", "6.2.0", "Copies the value of a key to a new key.",
        "source destination [DB destination-db:integer] [REPLACE]", keys::copy),
    Command::new("object", -2, 0, NONE, "generic", "2.2.3", "A container for object introspection commands.", "", command::container)
        .with_subcommands(&[
            Command::new("object|encoding", 3, READONLY, (2, 2, 1), "generic", "2.2.3", "Returns the internal encoding of a Redis object.", "key", keys::object_encoding),
        ]),
    // expiry
    Command::new("expire", -3, WF, KEY1, "generic", "1.0.0", "Sets the expiration time of a key in seconds.", "key seconds:integer [NX|XX|GT|LT]", keys::expire),
    Command::new("pexpire", -3, WF, KEY1, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", "key milliseconds:integer [NX|XX|GT|LT]", keys::pexpire),
    Command::new("expireat", -3, WF, KEY1, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.",
        "key unix-time-seconds:unix-time [NX|XX|GT|LT]", keys::expireat),
    Command::new("pexpireat", -3, WF, KEY1, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "key unix-time-milliseconds:unix-time [NX|XX|GT|LT]", keys::pexpireat),
    Command::new("ttl", 2, RF, KEY1, "generic", "1.0.0", "Returns the expiration time in seconds of a key.", "key", keys::ttl),
    Command::new("pttl", 2, RF, KEY1, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", "key", keys::pttl),
    Command::new("expiretime", 2, RF, KEY1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", "key", keys::expiretime),
    Command::new("pexpiretime", 2, RF, KEY1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", "key", keys::pexpiretime),
    Command::new("persist", 2, WF, KEY1, "generic", "2.2.0", "Removes the expiration time of a key.", "key", keys::persist),
    // server
    Command::new("dbsize", 1, RF, NONE, "server", "1.0.0", "Returns the number of keys in the database.", "", server::dbsize),
    Command::new("flushdb", -1, W, NONE, "server", "1.0.0", "Removes all keys from the current database.", "[ASYNC|SYNC]", server::flushdb),
    Command::new("flushall", -1, W, NONE, "server", "1.0.0", "Removes all keys from all databases.", "[ASYNC|SYNC]", server::flushall),
    Command::new("time", 1, LOADING | STALE | FAST, NONE, "server", "2.6.0", "Returns the server time.", "", server::time),
    Command::new("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NONE, "server", "1.0.0", "Synchronously saves the database(s) to disk.", "", server::save),
    Command::new("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, NONE, "server", "1.0.0", "Asynchronously saves the database(s) to disk.", "[SCHEDULE]", server::bgsave),
    Command::new("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, NONE, "server", "1.0.0", "Asynchronously rewrites the append-only file to disk.", "", server::bgrewriteaof),
    Command::new("lastsave", 1, LOADING | STALE | FAST, NONE, "server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk.", "", server::lastsave),
    Command::new("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE, NONE, "server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]", server::shutdown),
    Command::new("config", -2, 0, NONE, "server", "2.0.0", "A container for server configuration commands.", "", command::container)
        .with_subcommands(&[
            Command::new("config|get", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, "server", "2.0.0", "Returns the effective values of configuration parameters.",
                "parameter [parameter ...]", server::config_get),
            Command::new("config|set", -4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, "server", "2.0.0", "Sets configuration parameters in-flight.",
                "(parameter value) ...", server::config_set),
            Command::new("config|resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE, NONE, "server", "2.0.0", "Resets the server's statistics.", "",
                server::config_resetstat),
        ]),
    Command::new("info", -1, LOADING | STALE, NONE, "server", "1.0.0", "Returns information and statistics about the server.", "[section ...]", server::info),
    Command::new("command", -1, LOADING | STALE, NONE, "server", "2.8.13", "Returns detailed information about all commands.", "", introspection::command)
        .with_subcommands(&[
            Command::new("command|count", 2, LOADING | STALE, NONE, "server", "2.8.13", "Returns a count of commands.", "", introspection::command_count),
            Command::new("command|info", -2, LOADING | STALE, NONE, "server", "2.8.13", "Returns information about one, multiple or all commands.",
                "[command-name ...]", introspection::command_info),
            Command::new("command|docs", -2, LOADING | STALE, NONE, "server", "7.0.0", "Returns documentary information about one, multiple or all commands.",
                "[command-name ...]", introspection::command_docs),
            Command::new("command|list", -2, LOADING | STALE, NONE, "server", "7.0.0", "Returns a list of command names.", "", introspection::command_list),
            Command::new("command|getkeys", -4, LOADING | STALE, NONE, "server", "2.8.13", "Extracts the key names from an arbitrary command.",
                "command arg [arg ...]", introspection::command_getkeys),
        ]),
];

/// Write-locks the shard of `key` to take elements from it (a pop, a removal), after clients
/// blocked on it have been served what was added for them (see [`Ctx::waiters_first`]).
/// Shared by the list and sorted-set commands.
fn lock_to_take<'a>(ctx: &Ctx<'a>, key: &[u8]) -> RwLockWriteGuard<'a, Shard> {
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
