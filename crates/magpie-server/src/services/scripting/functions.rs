//! FUNCTION libraries (functions.c): the registry every thread shares, and loading, deleting,
//! restoring and calling with Redis's checks and error texts.
//!
//! The registry holds what FUNCTION LIST, DUMP and STATS show and what FCALL checks (names,
//! descriptions, flags, code); the Lua functions themselves live in each thread's engine
//! (`engines`), which loads every library again when the registry's version moved.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use magpie_lua::{Host, Outcome, ScriptFlags, library_meta, valid_name};
use magpie_protocol::Reply;
use magpie_store::glob_match;

use super::Scripting;
use super::engines::{self, LoadHost, Local};
use crate::core::error::Error;

const BAD_NAME: &str =
    "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// A function of a library, as FUNCTION LIST shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FunctionInfo {
    pub name: Vec<u8>,
    pub description: Option<Vec<u8>>,
    pub flags: ScriptFlags,
}

/// A library: its name, its code (as loaded, first line included) and its functions in the
/// order they were registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LibraryInfo {
    pub name: Vec<u8>,
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
}

/// FUNCTION RESTORE's policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestorePolicy {
    /// Delete every library first.
    Flush,
    /// Add; fail on a library that exists already.
    Append,
    /// Add, replacing libraries of the same name.
    Replace,
}

#[derive(Debug)]
pub(super) struct Registry {
    /// By name (case-sensitive, as Redis's library dictionary).
    libraries: BTreeMap<Vec<u8>, LibraryInfo>,
    /// Lowercase function name -> its library (function names are case-insensitive, as in
    /// Redis's function dictionary).
    functions: HashMap<Vec<u8>, Vec<u8>>,
    /// Moved by every change; the threads' engines compare theirs with it.
    version: u64,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry { libraries: BTreeMap::new(), functions: HashMap::new(), version: 1 }
    }
}

impl Registry {
    pub(super) fn list(&self, pattern: Option<&[u8]>) -> Vec<LibraryInfo> {
        self.libraries.values().filter(|l| pattern.is_none_or(|p| glob_match(p, &l.name, true))).cloned().collect()
    }

    pub(super) fn codes(&self) -> Vec<Vec<u8>> {
        self.libraries.values().map(|l| l.code.clone()).collect()
    }

    pub(super) fn counts(&self) -> (usize, usize) {
        (self.libraries.len(), self.functions.len())
    }

    pub(super) fn function(&self, name: &[u8]) -> Option<(Vec<u8>, ScriptFlags)> {
        let lower = name.to_ascii_lowercase();
        let lib = self.libraries.get(self.functions.get(&lower)?)?;
        lib.functions.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| (f.name.clone(), f.flags))
    }

    /// The first function of `lib` whose name is taken by a library other than `except`.
    fn collision(&self, lib: &LibraryInfo, except: Option<&[u8]>) -> Option<Vec<u8>> {
        lib.functions
            .iter()
            .find(|f| {
                self.functions.get(&f.name.to_ascii_lowercase()).is_some_and(|owner| Some(owner.as_slice()) != except)
            })
            .map(|f| f.name.clone())
    }

    fn unlink(&mut self, name: &[u8]) -> Option<LibraryInfo> {
        let lib = self.libraries.remove(name)?;
        for f in &lib.functions {
            self.functions.remove(&f.name.to_ascii_lowercase());
        }
        Some(lib)
    }

    fn link(&mut self, lib: LibraryInfo) {
        for f in &lib.functions {
            // Two names of one library that differ only in case: Redis keeps the first.
            self.functions.entry(f.name.to_ascii_lowercase()).or_insert_with(|| lib.name.clone());
        }
        self.libraries.insert(lib.name.clone(), lib);
    }
}

/// `ERR ` and the parts, bytes as they are (Redis formats names with `%s`/`%S`), CR and LF
/// made spaces and none cut at the ends (Redis sends these with `addReplyErrorSds`).
pub(crate) fn err_parts(parts: &[&[u8]]) -> Error {
    let mut msg = b"ERR ".to_vec();
    for p in parts {
        msg.extend(p.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
    }
    Error::bytes(msg)
}

/// The checks of `functionsCreateWithLibraryCtx` before the library's body runs: its first
/// line, its name, its engine, and (unless `replace`) that no library of that name is in
/// `exists`.
fn check_meta(code: &[u8], replace: bool, exists: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, Error> {
    let meta = library_meta(code).map_err(|e| err_parts(&[&e]))?;
    if !valid_name(&meta.name) {
        return Err(BAD_NAME.into());
    }
    if !meta.engine.eq_ignore_ascii_case(b"lua") {
        return Err(err_parts(&[b"Engine '", &meta.engine, b"' not found"]));
    }
    if !replace && exists(&meta.name) {
        return Err(err_parts(&[b"Library '", &meta.name, b"' already exists"]));
    }
    Ok(meta.name)
}

/// Runs a library's body in this thread's engine: its functions, or Redis's error.
fn run_body(
    local: &mut Local,
    code: &[u8],
    timeout: Option<Duration>,
) -> Result<(LibraryInfo, Vec<magpie_lua::FunctionDef>), Error> {
    let Some(engine) = local.functions.as_mut() else { return Err("ERR the function engine is missing".into()) };
    let lib = engine.load(&mut LoadHost { quiet: false }, code, timeout).map_err(|e| Error::bytes(e.0))?;
    let info = LibraryInfo {
        name: lib.name.clone(),
        code: code.to_vec(),
        functions: lib
            .functions
            .iter()
            .map(|f| FunctionInfo { name: f.name.clone(), description: f.description.clone(), flags: f.flags })
            .collect(),
    };
    Ok((info, lib.functions))
}

pub(super) fn load(s: &Scripting, code: &[u8], replace: bool, timeout: Option<Duration>) -> Result<Vec<u8>, Error> {
    engines::with_local(s, |local| {
        {
            let reg = s.functions.read();
            check_meta(code, replace, |name| reg.libraries.contains_key(name))?;
            engines::sync_functions(s, local, reg.version, || reg.codes())?;
        }
        let (info, defs) = run_body(local, code, timeout)?;
        let mut reg = s.functions.write();
        if let Some(name) = reg.collision(&info, Some(&info.name)) {
            return Err(err_parts(&[b"Function ", &name, b" already exists"]));
        }
        if let Some(old) = reg.unlink(&info.name) {
            for f in &old.functions {
                local.defs.remove(&f.name.to_ascii_lowercase());
            }
        }
        let name = info.name.clone();
        reg.link(info);
        reg.version += 1;
        for def in defs {
            local.defs.entry(def.name.to_ascii_lowercase()).or_insert(def);
        }
        local.fn_version = reg.version;
        Ok(name)
    })?
}

pub(super) fn delete(s: &Scripting, name: &[u8]) -> Result<(), Error> {
    let mut reg = s.functions.write();
    let Some(old) = reg.unlink(name) else { return Err("ERR Library not found".into()) };
    let before = reg.version;
    reg.version += 1;
    let now = reg.version;
    drop(reg);
    let _ = engines::with_local(s, |local| {
        if local.fn_version == before {
            for f in &old.functions {
                local.defs.remove(&f.name.to_ascii_lowercase());
            }
            local.fn_version = now;
        }
    });
    Ok(())
}

pub(super) fn flush(s: &Scripting) {
    let mut reg = s.functions.write();
    let old = std::mem::take(&mut reg.libraries);
    reg.functions.clear();
    reg.version += 1;
    drop(reg);
    // This thread's engine goes now; the others' when they next run a function.
    let _ = engines::with_local(s, |local| {
        local.functions = None;
        local.defs.clear();
        local.fn_version = 0;
    });
    drop(old);
}

pub(super) fn restore(s: &Scripting, codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), Error> {
    // Every library is created first, on its own (as `rdbFunctionLoad` into a new context,
    // without a time limit), then joined to the registry.
    let mut fresh = Registry::default();
    engines::with_local(s, |local| -> Result<(), Error> {
        {
            let reg = s.functions.read();
            engines::sync_functions(s, local, reg.version, || reg.codes())?;
        }
        for code in codes {
            check_meta(code, false, |name| fresh.libraries.contains_key(name))?;
            let (info, _defs) = run_body(local, code, None)?;
            if let Some(name) = fresh.collision(&info, None) {
                return Err(err_parts(&[b"Function ", &name, b" already exists"]));
            }
            fresh.link(info);
        }
        // What this engine loaded is mirrored nowhere: load again when next needed.
        local.fn_version = 0;
        Ok(())
    })??;
    let mut reg = s.functions.write();
    match policy {
        RestorePolicy::Flush => {
            fresh.version = reg.version + 1;
            *reg = fresh;
        }
        RestorePolicy::Append | RestorePolicy::Replace => {
            // `libraryJoin`: replaced libraries come back if a function collides.
            let mut unlinked = Vec::new();
            for name in fresh.libraries.keys() {
                if reg.libraries.contains_key(name) {
                    if policy == RestorePolicy::Append {
                        return Err(err_parts(&[b"Library ", name, b" already exists"]));
                    }
                    unlinked.extend(reg.unlink(name));
                }
            }
            let collision = fresh.libraries.values().find_map(|lib| reg.collision(lib, None));
            if let Some(name) = collision {
                for lib in unlinked {
                    reg.link(lib);
                }
                return Err(err_parts(&[b"Function ", &name, b" already exists"]));
            }
            for (_, lib) in std::mem::take(&mut fresh.libraries) {
                reg.link(lib);
            }
            reg.version += 1;
        }
    }
    Ok(())
}

pub(super) fn call(
    s: &Scripting,
    host: &mut dyn Host,
    name: &[u8],
    keys: &[&[u8]],
    args: &[&[u8]],
    out: &mut Reply,
) -> Result<Outcome, Error> {
    let reg = s.functions.read();
    engines::with_local(s, |local| {
        // Nothing changes the registry while a function runs (both run alone); the codes are
        // copied only when this thread must load the libraries again.
        engines::sync_functions(s, local, reg.version, || reg.codes())?;
        let def =
            local.defs.get(&name.to_ascii_lowercase()).cloned().ok_or_else(|| Error::from("ERR Function not found"))?;
        match local.functions.as_mut() {
            Some(engine) => Ok(engine.call(host, &def, keys, args, out)),
            None => Err(Error::from("ERR the function engine is missing")),
        }
    })?
}
