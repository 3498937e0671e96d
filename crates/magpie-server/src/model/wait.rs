//! What a blocking command asks of its connection (see `crate::services::blocking` for how
//! waiting clients are served).

use magpie_protocol::ArgVec;

use crate::core::error::Error;

/// Whether a blocking command may make its client wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A plain call: wait when there is nothing to serve.
    #[default]
    MayBlock,
    /// Inside MULTI (or a script): never wait; reply as if the timeout had passed.
    NoBlock,
    /// Run again for a waiting client: serve it, or leave it waiting without a reply.
    Retry,
}

/// How long a blocked client waits: `None` forever, else milliseconds.
pub(crate) type Timeout = Option<u64>;

/// What a blocking command asked of its connection through [`Ctx::block`].
#[derive(Debug, Default)]
pub(crate) struct Wait {
    pub mode: Mode,
    /// Set by `Ctx::block` when the command did not serve.
    pub requested: bool,
    /// The keys to wait on (in the client's database), without duplicates, in order.
    pub keys: Vec<Box<[u8]>>,
    pub timeout: Timeout,
    /// The type of value it waits for (`"list"`, `"zset"`).
    pub wants: &'static str,
    /// The command's id in the statistics (set by dispatch when it waits).
    pub id: usize,
    /// The command to run again in place of the one that asked to wait, when it rewrote
    /// itself (XREAD with `$`: the ID it stood for then).
    pub rerun: Option<ArgVec>,
    /// In `Retry` mode, the key whose change is being served (`None`: any of the command's
    /// keys). XREAD and XREADGROUP then answer for that key alone, as Redis serves them.
    pub ready: Option<Box<[u8]>>,
}

impl Wait {
    pub(crate) fn clear(&mut self) {
        self.requested = false;
        self.keys.clear();
        self.timeout = None;
        self.rerun = None;
        self.ready = None;
    }
}

/// Parses a timeout in seconds as Redis 7.0 does: a long double (`strtold`: decimals,
/// exponents, hex), times 1000, rounded up to whole milliseconds; 0 means forever.
pub(crate) fn timeout_arg(arg: &[u8]) -> Result<Timeout, Error> {
    let ms =
        crate::core::float::timeout_ms(arg).ok_or_else(|| Error::from("ERR timeout is not a float or out of range"))?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    Ok(u64::try_from(ms).ok().filter(|&ms| ms > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_redis_does() {
        assert_eq!(timeout_arg(b"0"), Ok(None));
        assert_eq!(timeout_arg(b"-0"), Ok(None));
        assert_eq!(timeout_arg(b"1"), Ok(Some(1000)));
        assert_eq!(timeout_arg(b"0.0001"), Ok(Some(1))); // rounded up
        assert_eq!(timeout_arg(b"1.5"), Ok(Some(1500)));
        assert_eq!(timeout_arg(b"0x10"), Ok(Some(16_000)));
        assert_eq!(timeout_arg(b"1e3"), Ok(Some(1_000_000)));
        let negative = Err(Error::from("ERR timeout is negative"));
        for s in ["-1", "-0.5", "inf", "1e30", "9.3e15"] {
            assert_eq!(timeout_arg(s.as_bytes()), negative, "{s}");
        }
        let bad = Err(Error::from("ERR timeout is not a float or out of range"));
        for s in ["", "abc", "nan", " 1", "1 ", "1s"] {
            assert_eq!(timeout_arg(s.as_bytes()), bad, "{s:?}");
        }
    }
}
