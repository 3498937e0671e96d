//! The scripting service: what EVAL and FUNCTION keep between commands, and the state of the
//! script running now. It knows nothing of the commands, the dispatcher or the connections:
//! a script's `redis.call` reaches the server through the `magpie_lua::Host` the execution
//! layer hands in.
//!
//! - **The script cache** (SCRIPT LOAD, EVAL): SHA1 -> body, shared by every thread. Compiled
//!   scripts live in each thread's own Lua state (see `engines`), compiled from the cache the
//!   first time a thread needs one; SCRIPT FLUSH empties the cache and moves a version that
//!   tells every thread to drop its state.
//! - **The function libraries** (`functions`): the registry of libraries (name, code, their
//!   functions and flags) with a version; each thread's function engine loads the libraries
//!   again when the version moved.
//! - **The running script** (`running`): what SCRIPT KILL, FUNCTION KILL, FUNCTION STATS and
//!   the `-BUSY` replies need to know about it.
//!
//! Lua states are not `Send`, so each thread that runs scripts keeps its own pair of engines,
//! built from one [`Options`] (one `math.random` generator for the whole server, as Redis has
//! one per process). Scripts run one at a time anyway (the gate is held exclusively), so the
//! per-thread states cost memory, not consistency; in exchange a script runs on the thread
//! that decoded it, with no hand-off to another thread and back.

mod engines;
mod functions;
mod running;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use magpie_lua::{Host, Options, Outcome, ScriptFlags};
use magpie_protocol::Reply;

pub(crate) use engines::log_script;
pub(crate) use functions::{LibraryInfo, RestorePolicy, err_parts};
pub(crate) use running::{RunInfo, Running};

use super::gate::Gate;
use crate::core::error::Error;
use functions::Registry;

/// Redis's NOSCRIPT reply.
pub(crate) const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// Gives each service instance its own id, so that a thread's engines are never used for
/// another server (tests run several in one process).
static INSTANCES: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Scripting {
    id: u64,
    opts: Options,
    /// SHA1 (lowercase hex) -> body of every script loaded (SCRIPT LOAD, EVAL); foldhash, as
    /// the keyspace's tables.
    scripts: RwLock<HashMap<String, Arc<[u8]>, foldhash::fast::RandomState>>,
    /// Moved by SCRIPT FLUSH: threads whose engine is older drop it.
    scripts_version: AtomicU64,
    functions: RwLock<Registry>,
    running: Running,
}

impl Scripting {
    pub(crate) fn new(gate: Arc<Gate>) -> Scripting {
        Scripting {
            id: INSTANCES.fetch_add(1, Ordering::Relaxed),
            opts: Options::default(),
            scripts: RwLock::new(HashMap::default()),
            scripts_version: AtomicU64::new(1),
            functions: RwLock::new(Registry::default()),
            running: Running::new(gate),
        }
    }

    /// The script running now, if any (SCRIPT KILL, FUNCTION STATS, the `-BUSY` replies).
    pub(crate) fn running(&self) -> &Running {
        &self.running
    }

    // ---- EVAL scripts -------------------------------------------------------------------

    /// EVAL's first step and SCRIPT LOAD (`luaCreateFunction`): compiles `body` on this thread
    /// (unless it is compiled already) and keeps it in the cache. Returns its SHA1 and flags,
    /// or the compilation error.
    pub(crate) fn load_script(&self, body: &[u8]) -> Result<(String, ScriptFlags), Error> {
        let (script, new_here) = engines::with_eval(self, |e| {
            let before = e.len();
            e.load(body).map(|s| (s, e.len() != before))
        })?
        .map_err(|e| Error::bytes(e.0))?;
        if new_here && !self.scripts.read().contains_key(&script.sha) {
            self.scripts.write().entry(script.sha.clone()).or_insert_with(|| body.into());
        }
        Ok((script.sha, script.flags))
    }

    /// EVALSHA's first step: the script's SHA1 in lowercase and its flags, compiling it on this
    /// thread from the cache if another thread loaded it. `None`: no such script (NOSCRIPT).
    pub(crate) fn find_script(&self, sha: &[u8]) -> Result<Option<(Sha, ScriptFlags)>, Error> {
        // Lowercased on the stack: a script this thread compiled is found without allocating.
        let Some(sha) = Sha::parse(sha) else { return Ok(None) };
        if let Some(flags) = engines::with_eval(self, |e| e.script(sha.as_str()))? {
            return Ok(Some((sha, flags)));
        }
        let Some(body) = self.scripts.read().get(sha.as_str()).cloned() else { return Ok(None) };
        let (_, flags) = self.load_script(&body)?;
        Ok(Some((sha, flags)))
    }

    /// Runs a script found by [`Scripting::load_script`] or [`Scripting::find_script`] on this
    /// thread, writing its reply (or error) into `out`.
    pub(crate) fn run_script(
        &self,
        host: &mut dyn Host,
        sha: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        out: &mut Reply,
    ) -> Result<Outcome, Error> {
        engines::with_eval(self, |e| e.run(host, sha, keys, args, out))?.ok_or_else(|| NOSCRIPT.into())
    }

    /// SCRIPT EXISTS: whether a script with this SHA1 (any case) is cached.
    pub(crate) fn script_exists(&self, sha: &[u8]) -> bool {
        let Ok(sha) = std::str::from_utf8(sha) else { return false };
        self.scripts.read().contains_key(&sha.to_ascii_lowercase())
    }

    /// SCRIPT FLUSH: forgets every script. This thread's Lua state goes now; the other
    /// threads' go when they next run a script (a Lua state cannot move between threads).
    pub(crate) fn flush_scripts(&self) {
        let old = std::mem::take(&mut *self.scripts.write());
        self.scripts_version.fetch_add(1, Ordering::SeqCst);
        engines::drop_eval(self);
        drop(old);
    }

    /// How many scripts are cached (INFO's `number_of_cached_scripts`).
    pub(crate) fn script_count(&self) -> usize {
        self.scripts.read().len()
    }

    // ---- FUNCTION libraries -------------------------------------------------------------

    /// FUNCTION LOAD [REPLACE] (`functionsCreateWithLibraryCtx`): checks the library's
    /// metadata, runs its body on this thread (at most `timeout`), and registers it. Returns
    /// the library's name.
    pub(crate) fn load_library(
        &self,
        code: &[u8],
        replace: bool,
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<u8>, Error> {
        functions::load(self, code, replace, timeout)
    }

    /// FUNCTION DELETE.
    pub(crate) fn delete_library(&self, name: &[u8]) -> Result<(), Error> {
        functions::delete(self, name)
    }

    /// FUNCTION FLUSH.
    pub(crate) fn flush_functions(&self) {
        functions::flush(self);
    }

    /// FUNCTION RESTORE (and loading a snapshot): the libraries' code, each checked and run,
    /// then joined to the registry as `policy` says.
    pub(crate) fn restore_libraries(&self, codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), Error> {
        functions::restore(self, codes, policy)
    }

    /// The libraries whose name matches `pattern` (glob, any case; all without one), in
    /// name order (FUNCTION LIST).
    pub(crate) fn libraries(&self, pattern: Option<&[u8]>) -> Vec<LibraryInfo> {
        self.functions.read().list(pattern)
    }

    /// Every library's code, in name order (FUNCTION DUMP, snapshots).
    pub(crate) fn library_codes(&self) -> Vec<Vec<u8>> {
        self.functions.read().codes()
    }

    /// (libraries, functions) registered (FUNCTION STATS).
    pub(crate) fn function_counts(&self) -> (usize, usize) {
        self.functions.read().counts()
    }

    /// A function by name (any case): its registered name and flags.
    pub(crate) fn function(&self, name: &[u8]) -> Option<(Vec<u8>, ScriptFlags)> {
        self.functions.read().function(name)
    }

    /// FCALL: runs a function found by [`Scripting::function`] on this thread.
    pub(crate) fn call_function(
        &self,
        host: &mut dyn Host,
        name: &[u8],
        keys: &[&[u8]],
        args: &[&[u8]],
        out: &mut Reply,
    ) -> Result<Outcome, Error> {
        functions::call(self, host, name, keys, args, out)
    }
}

/// A script's SHA1 as 40 lowercase hex digits, kept on the stack (EVALSHA's lookup).
#[derive(Clone, Copy)]
pub(crate) struct Sha([u8; 40]);

impl Sha {
    /// `sha` in lowercase, if it is 40 hex digits (no script has another name).
    pub(crate) fn parse(sha: &[u8]) -> Option<Sha> {
        let mut hex = [0u8; 40];
        if sha.len() != hex.len() {
            return None;
        }
        let mut valid = true;
        for (h, c) in hex.iter_mut().zip(sha) {
            *h = c.to_ascii_lowercase();
            valid &= c.is_ascii_hexdigit();
        }
        valid.then_some(Sha(hex))
    }

    pub(crate) fn as_str(&self) -> &str {
        // Hex digits only (see `parse`): always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}
