//! Command errors and the argument parsers that produce Redis's exact error texts.

use std::borrow::Cow;

use magpie_protocol::parse_i64;

/// An error reply: the text after `-`, starting with its code (`ERR`, `WRONGTYPE`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Error(pub Cow<'static, [u8]>);

pub(crate) type CmdResult = Result<(), Error>;

impl Error {
    pub(crate) fn msg(text: String) -> Error {
        Error(Cow::Owned(text.into_bytes()))
    }

    pub(crate) fn bytes(text: Vec<u8>) -> Error {
        Error(Cow::Owned(text))
    }
}

impl From<&'static str> for Error {
    fn from(s: &'static str) -> Error {
        Error(Cow::Borrowed(s.as_bytes()))
    }
}

pub(crate) const SYNTAX: &str = "ERR syntax error";
/// A command that may add memory, refused over `maxmemory`.
pub(crate) const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub(crate) const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub(crate) const NOT_FLOAT: &str = "ERR value is not a valid float";
pub(crate) const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub(crate) const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub(crate) const NO_SUCH_KEY: &str = "ERR no such key";
pub(crate) const DB_RANGE: &str = "ERR DB index is out of range";
pub(crate) const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

pub(crate) fn wrongtype() -> Error {
    WRONGTYPE.into()
}

pub(crate) fn syntax() -> Error {
    SYNTAX.into()
}

/// `ERR invalid expire time in 'set' command`.
pub(crate) fn invalid_expire(command: &str) -> Error {
    Error::msg(format!("ERR invalid expire time in '{command}' command"))
}

/// Parses an integer argument (Redis's `getLongLongFromObjectOrReply`).
pub(crate) fn int_arg(arg: &[u8]) -> Result<i64, Error> {
    parse_i64(arg).ok_or_else(|| NOT_INTEGER.into())
}

/// Parses an integer argument that must lie within `range` (Redis's
/// `getRangeLongFromObjectOrReply`, which also serves `getIntFromObjectOrReply`).
pub(crate) fn int_arg_in(arg: &[u8], range: std::ops::RangeInclusive<i64>) -> Result<i64, Error> {
    let n = int_arg(arg)?;
    if !range.contains(&n) {
        return Err(Error::msg(format!(
            "ERR value is out of range, value must between {} and {}",
            range.start(),
            range.end()
        )));
    }
    Ok(n)
}

/// An argument as Redis prints it in an error (`%s` of a C string): up to its first NUL byte.
pub(crate) fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&c| c == 0).map_or(arg, |nul| &arg[..nul])
}

/// Case-insensitive comparison of an argument with an ASCII keyword. Redis compares options
/// as C strings (`strcasecmp`), so an argument ends at its first NUL byte: `"XX\0junk"` is XX.
pub(crate) fn is(arg: &[u8], keyword: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(keyword.as_bytes())
}
