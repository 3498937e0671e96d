//! The command model: what a command is (its table entry: name, arity, flags, keys, docs and
//! function), the table of them all, the context a command runs in and the session it runs
//! for. It sits on the services, because a command's context is made of them; the command
//! families, the execution layer and the front ends sit on it.

pub(crate) mod access;
pub(crate) mod command;
pub(crate) mod docs;
pub(crate) mod flags;
pub(crate) mod keyspec;
pub(crate) mod session;
pub(crate) mod wait;

pub(crate) use command::ctx::{Ctx, Executor, ScriptBody, ScriptRun};
pub(crate) use command::{Command, Table};
pub(crate) use flags::Flags;
pub(crate) use keyspec::{Begin, Find, KeySpec};
pub(crate) use session::Session;
pub(crate) use wait::{Mode, Timeout};
