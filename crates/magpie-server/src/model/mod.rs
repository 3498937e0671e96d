//! The command model: what a command is (its table entry: name, arity, flags, keys, docs and
//! function), the table of them all, the context a command runs in and the session it runs
//! for. It sits on the services, because a command's context is made of them; the command
//! families, the execution layer and the front ends sit on it.

pub mod command;
pub mod docs;
pub mod flags;
pub mod keyspec;
pub mod session;
pub mod wait;

pub use command::ctx::{Ctx, Executor};
pub use command::{Command, Handler, Table};
pub use flags::{Acl, Flags, KeyFlags};
pub use keyspec::{Begin, Find, KeySpec};
pub use session::Effects;
pub use session::Session;
pub use wait::{Mode, Timeout, Wait};
