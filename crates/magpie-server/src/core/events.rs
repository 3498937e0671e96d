//! Keyspace events: the classes of Redis's `notify-keyspace-events` (Redis's own bit values), and
//! the setting's letters. A command raises an event for a key it changed (`Ctx::notify`); pub/sub
//! delivers it on `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>` when the class is on.

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub(crate) const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub(crate) const KEYEVENT: u32 = 1 << 1;
/// `g`: DEL, EXPIRE, RENAME, ... (commands that apply to any type).
pub(crate) const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub(crate) const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub(crate) const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub(crate) const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub(crate) const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands.
pub(crate) const ZSET: u32 = 1 << 7;
/// `x`: a key removed because it expired.
pub(crate) const EXPIRED: u32 = 1 << 8;
/// `e`: a key evicted for maxmemory.
pub(crate) const EVICTED: u32 = 1 << 9;
/// `t`: stream commands.
pub(crate) const STREAM: u32 = 1 << 10;
/// `m`: a key looked up and not found.
pub(crate) const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (accepted for compatibility).
pub(crate) const MODULE: u32 = 1 << 13;
/// `n`: a new key (not part of `A`).
pub(crate) const NEW: u32 = 1 << 14;
/// `A`: `g$lshzxetd`.
pub(crate) const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses `notify-keyspace-events` as Redis does; None for an unknown letter.
pub(crate) fn parse_events(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Formats the flags as Redis's `CONFIG GET notify-keyspace-events` does.
pub(crate) fn format_events(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_flags_parse_and_print_as_redis() {
        let show = |s: &str| parse_events(s).map(format_events);
        assert_eq!(show("KEA").as_deref(), Some("AKE"));
        assert_eq!(show("Kx$").as_deref(), Some("$xK"));
        assert_eq!(show("").as_deref(), Some(""));
        assert_eq!(show("mK").as_deref(), Some("Km"));
        assert_eq!(show("Agn").as_deref(), Some("A"));
        assert_eq!(show("glshzxetd$KE").as_deref(), Some("AKE"));
        assert_eq!(show("n").as_deref(), Some("n"));
        assert_eq!(parse_events("Kq"), None);
    }
}
