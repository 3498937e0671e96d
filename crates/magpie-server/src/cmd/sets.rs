//! The set commands.

use crate::command::Command;

#[rustfmt::skip]
pub static COMMANDS: &[Command] = &[
];
