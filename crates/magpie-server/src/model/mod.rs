//! The command model: what a command is (its table entry: name, arity, flags, keys, docs and
//! function), the table of them all, the context a command runs in and the session it runs
//! for. It sits on the services, because a command's context is made of them; the command
//! families, the execution layer and the front ends sit on it.

pub mod command;
pub mod ctx;
pub mod docs;
pub mod session;
pub mod wait;

pub use command::{Command, Handler, Table, flags};
pub use ctx::{Ctx, Effects, Executor};
pub use session::Session;
pub use wait::{Mode, Timeout, Wait};
