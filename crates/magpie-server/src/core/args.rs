//! A cursor over a command's arguments, for commands with keyword options (`SET k v NX EX 10`,
//! `SCAN 0 MATCH p COUNT 10`): one place that says how an argument is taken, compared and
//! converted, with Redis's errors, instead of index arithmetic in every command.

use magpie_protocol::Args;

use super::error::{self, Error};

/// Reads arguments in order. Keywords compare as Redis compares them (`strcasecmp` of C
/// strings: any case, up to a NUL byte).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    args: Args<'a>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at argument `from` (1 is the first after the command's name).
    pub(crate) fn new(args: Args<'a>, from: usize) -> Cursor<'a> {
        Cursor { args, pos: from.min(args.len()) }
    }

    /// Whether every argument has been taken.
    pub(crate) fn is_done(&self) -> bool {
        self.pos >= self.args.len()
    }

    /// Arguments not taken yet.
    pub(crate) fn remaining(&self) -> usize {
        self.args.len() - self.pos
    }

    /// The next argument, without taking it.
    pub(crate) fn peek(&self) -> Option<&'a [u8]> {
        (self.pos < self.args.len()).then(|| self.args.get(self.pos))
    }

    /// Takes the next argument; a syntax error if there is none (an option missing its value).
    pub(crate) fn next_bytes(&mut self) -> Result<&'a [u8], Error> {
        self.next().ok_or_else(error::syntax)
    }

    /// Takes the next argument as an integer (Redis's `getLongLongFromObjectOrReply`).
    pub(crate) fn next_int(&mut self) -> Result<i64, Error> {
        error::int_arg(self.next_bytes()?)
    }

    /// Takes the next argument if it is `keyword`.
    pub(crate) fn eat(&mut self, keyword: &str) -> bool {
        match self.peek() {
            Some(arg) if error::is(arg, keyword) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Takes the next argument if it is one of `keywords`, and says which (its index).
    pub(crate) fn eat_any(&mut self, keywords: &[&str]) -> Option<usize> {
        let arg = self.peek()?;
        let found = keywords.iter().position(|k| error::is(arg, k))?;
        self.pos += 1;
        Some(found)
    }

    /// A syntax error unless every argument has been taken.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.is_done() { Ok(()) } else { Err(error::syntax()) }
    }
}

/// Takes the arguments one by one.
impl<'a> Iterator for Cursor<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let arg = self.peek()?;
        self.pos += 1;
        Some(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_protocol::ArgVec;

    #[test]
    fn keywords_values_and_the_end() {
        let v = ArgVec::from_slices(["SCAN", "0", "match", "a*", "COUNT", "10", "x\0y"]);
        let mut c = Cursor::new(v.args(), 1);
        assert_eq!(c.next_int(), Ok(0));
        assert!(!c.eat("count") && c.eat("MATCH"));
        assert_eq!(c.next_bytes(), Ok(&b"a*"[..]));
        assert_eq!(c.eat_any(&["type", "count"]), Some(1));
        assert_eq!(c.next_int(), Ok(10));
        assert_eq!(c.finish(), Err(error::syntax()));
        assert!(c.eat("X")); // compared as a C string: up to the NUL
        assert!(c.finish().is_ok() && c.next().is_none());
        assert_eq!(c.next_bytes(), Err(error::syntax()));
        let mut bad = Cursor::new(v.args(), 2);
        assert_eq!(bad.next_int(), Err(error::NOT_INTEGER.into()));
    }
}
