//! The state a run shares between the engines and the `redis` table's functions: the shared
//! random generator and the run's bookkeeping in the Lua state's app data (the host and what
//! `redis.call` needs on every call are in the state's [`crate::link::Link`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mlua::Function;

use crate::rand48::Rand48;
use crate::shebang::ScriptFlags;

/// Redis's `math.random` generator, shared by every engine of a server (Redis has one for the
/// whole process).
#[derive(Clone, Default, Debug)]
pub struct SharedRng(Arc<Mutex<Rand48>>);

impl SharedRng {
    pub(crate) fn next(&self) -> i32 {
        match self.0.lock() {
            Ok(mut r) => r.next_i32(),
            Err(p) => p.into_inner().next_i32(),
        }
    }

    pub(crate) fn seed(&self, seed: i32) {
        match self.0.lock() {
            Ok(mut r) => r.seed(seed),
            Err(p) => p.into_inner().seed(seed),
        }
    }
}

/// Per-state bookkeeping of a library's load, in the Lua state's app data (what every run
/// reads, the kill and the hook's pace, is in the state's `Link`: a field rather than a
/// lookup of the app data by type, twice a run).
#[derive(Default)]
pub(crate) struct RunState {
    /// FUNCTION LOAD in progress: its deadline, and the functions registered so far.
    pub loading: Option<Loading>,
}

pub(crate) struct Loading {
    pub(crate) deadline: Option<Instant>,
    pub(crate) functions: Vec<FunctionDef>,
}

/// A function registered by a library.
#[derive(Clone, Debug)]
pub struct FunctionDef {
    pub name: Vec<u8>,
    pub description: Option<Vec<u8>>,
    pub flags: ScriptFlags,
    pub(crate) callback: Function,
}
