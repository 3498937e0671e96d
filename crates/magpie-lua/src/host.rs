//! What the server gives a running script: the [`Host`].

use magpie_protocol::{Args, Reply};

/// `redis.log` levels (`LL_DEBUG` .. `LL_WARNING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
}

/// What the server answers when asked whether a script may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// SCRIPT KILL / FUNCTION KILL: the script stops with
    /// `ERR Script killed by user with SCRIPT KILL...`.
    Kill,
}

/// Replication flags of `redis.set_repl` (`PROPAGATE_AOF` | `PROPAGATE_REPL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repl(pub u8);

impl Repl {
    pub const NONE: Repl = Repl(0);
    pub const AOF: Repl = Repl(1);
    pub const REPLICA: Repl = Repl(2);
    pub const ALL: Repl = Repl(3);
}

/// The server, as a script sees it. Only called from inside [`crate::EvalEngine::run`],
/// [`crate::FunctionEngine::call`] and [`crate::FunctionEngine::load`] (for `redis.log`), and
/// never while one of its own methods runs: a host that ran a script on the same engine from
/// inside [`Host::call`] would find that script's `redis.call` failing (`can only be called
/// inside a script invocation`), not a second reference to itself.
pub trait Host {
    /// `redis.call` / `redis.pcall`: runs one command. The script's protocol (2 unless it called
    /// `redis.setresp(3)`) is `reply.proto`; write the command's reply into `reply` and return
    /// `Ok`, or return `Err(message)` when the scripting layer refuses to run the command
    /// (Redis's `scriptCall` errors, such as `Unknown Redis command called from script`, `Wrong
    /// number of args calling Redis command from script`, `This Redis command is not allowed
    /// from script`, `-NOPERM ...`, `Write commands are not allowed from read-only scripts.`).
    /// A message starting with `-CODE ` keeps that code, anything else gets `ERR`.
    fn call(&mut self, args: Args<'_>, reply: &mut Reply) -> Result<(), Vec<u8>>;

    /// `redis.log(level, ...)`: the message, its parts joined by spaces. Filtering by the
    /// server's verbosity is the host's business.
    fn log(&mut self, level: LogLevel, message: &[u8]) {
        let _ = (level, message);
    }

    /// Called every 100,000 Lua instructions (Redis's count hook): the place to notice that the
    /// script passed `busy-reply-threshold` (`lua-time-limit`) and whether someone sent SCRIPT
    /// KILL or FUNCTION KILL.
    fn check(&mut self) -> Control {
        Control::Continue
    }

    /// `redis.set_repl(flags)`.
    fn set_repl(&mut self, flags: Repl) {
        let _ = flags;
    }

    /// `redis.acl_check_cmd(...)`: whether the calling user may run the command, or `None` if
    /// there is no such command.
    fn acl_check_cmd(&mut self, args: &[&[u8]]) -> Option<bool> {
        let _ = args;
        Some(true)
    }
}
