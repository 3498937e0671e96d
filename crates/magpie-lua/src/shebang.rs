//! The `#!` first line of scripts and libraries: `#!lua flags=no-writes,allow-oom` on EVAL
//! scripts (`evalExtractShebangFlags`) and `#!lua name=mylib` on FUNCTION libraries
//! (`functionExtractLibMetaData`), with Redis 7.0's error texts.

use magpie_protocol::split_line;

/// Flags a script or function declares (`scripts_flags_def` in script.c).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    pub const NO_WRITES: ScriptFlags = ScriptFlags(1);
    pub const ALLOW_OOM: ScriptFlags = ScriptFlags(1 << 1);
    pub const ALLOW_STALE: ScriptFlags = ScriptFlags(1 << 2);
    pub const NO_CLUSTER: ScriptFlags = ScriptFlags(1 << 3);
    pub const ALLOW_CROSS_SLOT_KEYS: ScriptFlags = ScriptFlags(1 << 4);
    /// An EVAL script without a shebang: Redis's backward-compatible mode, where the command's
    /// own flags apply (`SCRIPT_FLAG_EVAL_COMPAT_MODE`).
    pub const EVAL_COMPAT_MODE: ScriptFlags = ScriptFlags(1 << 5);

    /// Flag names in Redis's order (FUNCTION LIST prints them in this order).
    pub const NAMES: [(&'static str, ScriptFlags); 5] = [
        ("no-writes", ScriptFlags::NO_WRITES),
        ("allow-oom", ScriptFlags::ALLOW_OOM),
        ("allow-stale", ScriptFlags::ALLOW_STALE),
        ("no-cluster", ScriptFlags::NO_CLUSTER),
        ("allow-cross-slot-keys", ScriptFlags::ALLOW_CROSS_SLOT_KEYS),
    ];

    pub const fn empty() -> Self {
        ScriptFlags(0)
    }

    pub const fn contains(self, other: ScriptFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: ScriptFlags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: ScriptFlags) {
        self.0 &= !other.0;
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The names of the declared flags, in Redis's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        ScriptFlags::NAMES.into_iter().filter(move |(_, f)| self.contains(*f)).map(|(n, _)| n)
    }

    /// A flag by its exact name (EVAL shebangs compare with `strcmp`).
    pub fn from_name(name: &[u8]) -> Option<ScriptFlags> {
        ScriptFlags::NAMES.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, f)| *f)
    }

    /// A flag by name ignoring ASCII case (`redis.register_function` uses `strcasecmp`).
    pub fn from_name_nocase(name: &[u8]) -> Option<ScriptFlags> {
        ScriptFlags::NAMES.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name)).map(|(_, f)| *f)
    }
}

/// The bytes up to the first NUL: what C's string functions see of an sds.
pub(crate) fn c_str(b: &[u8]) -> &[u8] {
    match memchr(0, b) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn memchr(c: u8, b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == c)
}

/// The first line of `body` when it starts with `#!` and has a line feed (as C's `strchr` finds
/// it: not past a NUL byte). `Some(None)` when it starts with `#!` but has no line feed.
fn shebang_line(body: &[u8]) -> Option<Option<&[u8]>> {
    if !body.starts_with(b"#!") {
        return None;
    }
    Some(memchr(b'\n', c_str(body)).map(|end| &body[..end]))
}

/// `evalExtractShebangFlags`: the flags an EVAL script declares, and the length of its shebang
/// line (the script is compiled from there on, keeping the line feed so line numbers stay).
pub fn eval_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), Vec<u8>> {
    let Some(line) = shebang_line(body) else {
        return Ok((ScriptFlags::EVAL_COMPAT_MODE, 0));
    };
    let Some(line) = line else {
        return Err("Invalid script shebang".into());
    };
    let parts = match split_line(line) {
        Some(parts) if !parts.is_empty() => parts,
        _ => return Err("Invalid engine in script shebang".into()),
    };
    if c_str(&parts[0]) != b"#!lua" {
        return Err([&b"Unexpected engine in script shebang: "[..], c_str(&parts[0])].concat());
    }
    let mut flags = ScriptFlags::empty();
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err([&b"Unknown lua shebang option: "[..], c_str(part)].concat());
        };
        // `sdssplitlen(..., ",")`: an empty list has no parts; empty parts between commas are
        // unknown flags.
        if list.is_empty() {
            continue;
        }
        for name in list.split(|&c| c == b',') {
            match ScriptFlags::from_name(c_str(name)) {
                Some(f) => flags.insert(f),
                None => return Err([&b"Unexpected flag in script shebang: "[..], c_str(name)].concat()),
            }
        }
    }
    Ok((flags, line.len()))
}

/// What a FUNCTION library declares on its first line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryMeta {
    /// The engine named after `#!` (`lua`).
    pub engine: Vec<u8>,
    pub name: Vec<u8>,
    /// Where the code starts: at the first line's line feed, which is kept so that line
    /// numbers in error messages count from the shebang.
    pub code_start: usize,
}

/// `functionExtractLibMetaData`.
/// Errors are Redis's texts, with the bytes of the metadata as they are.
pub fn library_meta(code: &[u8]) -> Result<LibraryMeta, Vec<u8>> {
    let Some(line) = shebang_line(code) else {
        return Err("Missing library metadata".into());
    };
    let Some(line) = line else {
        return Err("Invalid library metadata".into());
    };
    let parts = match split_line(line) {
        Some(parts) if !parts.is_empty() => parts,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = c_str(&parts[0]).get(2..).unwrap_or_default().to_vec();
    let mut name: Option<Vec<u8>> = None;
    for part in &parts[1..] {
        let p = c_str(part);
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err("Invalid metadata value, name argument was given multiple times".into());
            }
            name = Some(p[5..].to_vec());
            continue;
        }
        return Err([&b"Invalid metadata value given: "[..], p].concat());
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok(LibraryMeta { engine, name, code_start: line.len() })
}

/// `functionsVerifyName`: `[a-zA-Z0-9_]+`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_shebangs() {
        assert_eq!(eval_shebang(b"return 1"), Ok((ScriptFlags::EVAL_COMPAT_MODE, 0)));
        let (flags, len) = eval_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(flags.contains(ScriptFlags::NO_WRITES) && flags.contains(ScriptFlags::ALLOW_OOM));
        assert!(!flags.contains(ScriptFlags::EVAL_COMPAT_MODE));
        assert_eq!(len, 31);
        assert_eq!(eval_shebang(b"#!lua\nreturn 1"), Ok((ScriptFlags::empty(), 5)));
        assert_eq!(eval_shebang(b"#!lua flags=\nreturn 1"), Ok((ScriptFlags::empty(), 12)));
        assert_eq!(eval_shebang(b"#!lua"), Err("Invalid script shebang".into()));
        assert_eq!(eval_shebang(b"#!py\n"), Err("Unexpected engine in script shebang: #!py".into()));
        assert_eq!(eval_shebang(b"#!lua x=y\n"), Err("Unknown lua shebang option: x=y".into()));
        assert_eq!(eval_shebang(b"#!lua flags=no-writes,,\n"), Err("Unexpected flag in script shebang: ".into()));
        assert_eq!(
            eval_shebang(b"#!lua flags=NO-WRITES\n"),
            Err("Unexpected flag in script shebang: NO-WRITES".into())
        );
        assert_eq!(eval_shebang(b"#!\"lua\n"), Err("Invalid engine in script shebang".into()));
    }

    #[test]
    fn library_metadata() {
        let m = library_meta(b"#!lua name=mylib\nreturn").unwrap();
        assert_eq!((m.engine.as_slice(), m.name.as_slice(), m.code_start), (&b"lua"[..], &b"mylib"[..], 16));
        assert_eq!(library_meta(b"return"), Err("Missing library metadata".into()));
        assert_eq!(library_meta(b"#!lua name=x"), Err("Invalid library metadata".into()));
        assert_eq!(library_meta(b"#!lua\n"), Err("Library name was not given".into()));
        assert_eq!(
            library_meta(b"#!lua NAME=a name=b\n"),
            Err("Invalid metadata value, name argument was given multiple times".into())
        );
        assert_eq!(library_meta(b"#!lua foo=bar\n"), Err("Invalid metadata value given: foo=bar".into()));
        assert!(valid_name(b"ab_1") && !valid_name(b"") && !valid_name(b"a-b"));
    }
}
