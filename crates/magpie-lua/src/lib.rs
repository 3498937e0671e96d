//! Redis 7.0's Lua scripting for Magpie, without the server: the sandbox exactly as Redis
//! builds it (Lua 5.1 through mlua, vendored), the `redis` API, the `cjson`, `cmsgpack`, `bit`
//! and `struct` libraries, and the conversions between Lua values and RESP replies.
//!
//! - [`EvalEngine`]: EVAL scripts (`SCRIPT LOAD`, `EVAL`, `EVALSHA`): compile with
//!   [`EvalEngine::load`], run with [`EvalEngine::run`].
//! - [`FunctionEngine`]: FUNCTION libraries: [`FunctionEngine::load`] runs a library's body and
//!   returns its functions, [`FunctionEngine::call`] runs one (FCALL).
//! - [`Host`]: what the server provides to a running script (`redis.call`, `redis.log`, the
//!   periodic check behind `busy-reply-threshold` and SCRIPT KILL). A run lends it to the Lua
//!   state's `Link` (`link.rs`); `redis.call` (`call.rs`) is a C function on Lua's API that
//!   calls it directly.
//!
//! The script cache, atomicity, ACL, the library registry and the commands themselves are the
//! server's.

mod bit;
mod call;
mod cjson;
mod cmsgpack;
mod convert;
mod engine;
mod errors;
pub mod fuzzing;
mod handler;
mod host;
mod link;
mod lstack;
mod lstruct;
mod numfmt;
mod rand48;
mod redis_api;
mod sandbox;
mod shebang;
mod state;

pub use convert::ReplyLimits;
pub use engine::{
    ErrorReply, EvalEngine, FunctionDef, FunctionEngine, LOAD_TIMEOUT, Library, Options, Outcome, Script, SharedRng,
};
pub use host::{Control, Host, LogLevel, Repl};
pub use rand48::Rand48;
pub use shebang::{LibraryMeta, ScriptFlags, eval_shebang, library_meta, valid_name};

/// SHA1 of `data` as 40 lowercase hex digits (script ids, `redis.sha1hex`).
pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(data);
    let mut s = String::with_capacity(40);
    for b in digest {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}
