//! Each thread's Lua states: an [`EvalEngine`] for EVAL scripts and a [`FunctionEngine`] with
//! the function libraries loaded, rebuilt when the shared state they mirror moved on (SCRIPT
//! FLUSH, a library loaded or deleted on another thread).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

use magpie_lua::{EvalEngine, FunctionDef, FunctionEngine, Host, LogLevel};

use super::Scripting;
use crate::core::error::Error;

/// One thread's engines, for the service instance `owner`.
pub(super) struct Local {
    owner: u64,
    eval: Option<EvalEngine>,
    /// The cache version `eval` was built for.
    eval_version: u64,
    pub(super) functions: Option<FunctionEngine>,
    /// The registry version `functions` and `defs` reflect (0: none).
    pub(super) fn_version: u64,
    /// The functions of every library, by lowercase name.
    pub(super) defs: HashMap<Vec<u8>, FunctionDef>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's engines for `s` (made or reset as needed).
pub(super) fn with_local<R>(s: &Scripting, f: impl FnOnce(&mut Local) -> R) -> Result<R, Error> {
    LOCAL.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            // A script never runs FUNCTION or EVAL (they are `noscript`); this is a bug, not
            // something to crash on.
            return Err(Error::from("ERR the scripting engine is in use"));
        };
        if slot.as_ref().is_none_or(|l| l.owner != s.id) {
            *slot = Some(Local {
                owner: s.id,
                eval: None,
                eval_version: 0,
                functions: None,
                fn_version: 0,
                defs: HashMap::new(),
            });
        }
        match slot.as_mut() {
            Some(local) => Ok(f(local)),
            None => Err(Error::from("ERR the scripting engine is in use")),
        }
    })
}

/// Runs `f` with this thread's EVAL engine, new if SCRIPT FLUSH ran since it was made.
pub(super) fn with_eval<R>(s: &Scripting, f: impl FnOnce(&mut EvalEngine) -> R) -> Result<R, Error> {
    with_local(s, |local| {
        let version = s.scripts_version.load(Ordering::Acquire);
        if local.eval_version != version || local.eval.is_none() {
            local.eval = None; // the old state goes first: both would be in memory otherwise
            local.eval = Some(EvalEngine::new(s.opts.clone()).map_err(|e| Error::bytes(e.0))?);
            local.eval_version = version;
        }
        match local.eval.as_mut() {
            Some(e) => Ok(f(e)),
            None => Err(Error::from("ERR the scripting engine is in use")),
        }
    })?
}

/// Drops this thread's EVAL engine (SCRIPT FLUSH frees its memory at once).
pub(super) fn drop_eval(s: &Scripting) {
    let _ = with_local(s, |local| local.eval = None);
}

/// The host a library's body sees while it loads: only `redis.log` reaches it.
pub(super) struct LoadHost {
    /// Log what the library logs (FUNCTION LOAD), or not (a thread loading the libraries
    /// again: the first load logged already).
    pub(super) quiet: bool,
}

impl Host for LoadHost {
    fn call(&mut self, _args: magpie_protocol::Args<'_>, _reply: &mut magpie_protocol::Reply) -> Result<(), Vec<u8>> {
        // The load-time sandbox has no redis.call.
        Err(b"redis.call is not available while a library loads".to_vec())
    }

    fn log(&mut self, level: LogLevel, message: &[u8]) {
        if !self.quiet {
            log_script(level, message);
        }
    }
}

/// `redis.log` into the server's log.
pub(crate) fn log_script(level: LogLevel, message: &[u8]) {
    let text = String::from_utf8_lossy(message);
    match level {
        LogLevel::Warning => tracing::warn!(target: "script", "{text}"),
        LogLevel::Notice => tracing::info!(target: "script", "{text}"),
        LogLevel::Verbose | LogLevel::Debug => tracing::debug!(target: "script", "{text}"),
    }
}

/// Makes this thread's function engine mirror the registry (version `version`, libraries'
/// `codes`): a new engine with every library loaded again, when it is older.
pub(super) fn sync_functions(
    s: &Scripting,
    local: &mut Local,
    version: u64,
    codes: impl FnOnce() -> Vec<Vec<u8>>,
) -> Result<(), Error> {
    if local.fn_version == version && local.functions.is_some() {
        return Ok(());
    }
    local.functions = None;
    local.defs.clear();
    let mut engine = FunctionEngine::new(s.opts.clone()).map_err(|e| Error::bytes(e.0))?;
    for code in codes() {
        // Loaded once already, when it was registered: its errors were reported then. Without
        // a time limit, as Redis loads libraries from a file.
        match engine.load(&mut LoadHost { quiet: true }, &code, None) {
            Ok(lib) => {
                for def in lib.functions {
                    local.defs.insert(def.name.to_ascii_lowercase(), def);
                }
            }
            Err(e) => tracing::warn!("a function library failed to load again on this thread: {e}"),
        }
    }
    local.functions = Some(engine);
    local.fn_version = version;
    Ok(())
}
