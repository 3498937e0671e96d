//! The script running now (script.c's `curr_run_ctx`), as other clients see it: once it has
//! run past `busy-reply-threshold` it is *timed out*: the gate is marked busy (other clients'
//! commands answer `-BUSY`), and SCRIPT KILL, FUNCTION KILL and FUNCTION STATS, which get
//! through the gate then, look here.
//!
//! Scripts run one at a time (the gate is held exclusively), so there is one of these per
//! server. The script's own thread writes it; the flags it reads on every check are atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::core::error::Error;
use crate::services::gate::Gate;

const BUSY_EVAL: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// What FUNCTION STATS shows of a timed-out script.
#[derive(Clone, Debug)]
pub(crate) struct RunInfo {
    /// The script's SHA1 or the function's name.
    pub name: Vec<u8>,
    /// The command that runs it (EVAL, FCALL, ...), with its arguments.
    pub command: Vec<Vec<u8>>,
    pub started: Instant,
}

pub(crate) struct Running {
    gate: Arc<Gate>,
    /// The running script is an EVAL script (not a function).
    eval: AtomicBool,
    /// It has called a write command (Redis's `SCRIPT_WRITE_DIRTY`): it cannot be killed.
    dirty: AtomicBool,
    /// SCRIPT KILL or FUNCTION KILL asked it to stop.
    kill: AtomicBool,
    /// Set once it is timed out, until it ends.
    info: Mutex<Option<RunInfo>>,
}

impl Running {
    pub(crate) fn new(gate: Arc<Gate>) -> Running {
        Running {
            gate,
            eval: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            info: Mutex::new(None),
        }
    }

    /// A script starts (its thread holds the gate exclusively).
    pub(crate) fn begin(&self, eval: bool) {
        self.eval.store(eval, Ordering::Relaxed);
        self.dirty.store(false, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
    }

    /// The script called a write command.
    pub(crate) fn wrote(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// The script passed `busy-reply-threshold`: from now on other clients get `-BUSY` and
    /// may kill it.
    pub(crate) fn time_out(&self, info: RunInfo) {
        *self.info.lock() = Some(info);
        self.gate.set_busy(true);
    }

    /// Whether SCRIPT KILL / FUNCTION KILL asked the script to stop.
    pub(crate) fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }

    /// The script ended (before its thread lets the gate go).
    pub(crate) fn end(&self) {
        if self.gate.is_busy() {
            *self.info.lock() = None;
            self.gate.set_busy(false);
        }
    }

    /// Whether a timed-out script is running.
    pub(crate) fn timed_out(&self) -> bool {
        self.info.lock().is_some()
    }

    /// `-BUSY` for a command refused while a script is timed out, naming the kill command
    /// that applies.
    pub(crate) fn busy_error(&self) -> Error {
        if self.eval.load(Ordering::Relaxed) { BUSY_EVAL.into() } else { BUSY_FUNCTION.into() }
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL (`scriptKill`).
    pub(crate) fn kill(&self, eval: bool) -> Result<(), Error> {
        let info = self.info.lock();
        if info.is_none() {
            return Err("NOTBUSY No scripts in execution right now.".into());
        }
        if self.dirty.load(Ordering::SeqCst) {
            return Err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can \
                        either wait the script termination or kill the server in a hard way using the SHUTDOWN \
                        NOSAVE command."
                .into());
        }
        let running_eval = self.eval.load(Ordering::Relaxed);
        if eval && !running_eval {
            return Err(BUSY_FUNCTION.into());
        }
        if !eval && running_eval {
            return Err(BUSY_EVAL.into());
        }
        self.kill.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The timed-out script, for FUNCTION STATS: `Err` with `-BUSY` if it is an EVAL script
    /// (Redis shows only functions), `Ok(None)` if none runs.
    pub(crate) fn stats(&self) -> Result<Option<RunInfo>, Error> {
        let info = self.info.lock();
        match &*info {
            Some(_) if self.eval.load(Ordering::Relaxed) => Err(BUSY_EVAL.into()),
            other => Ok(other.clone()),
        }
    }
}
