//! A user and its selectors: the rules of `ACL SETUSER` applied one at a time, the checks the
//! execution layer asks of them, and the description `ACL LIST` and `ACL GETUSER` print, all
//! as Redis 7.0's `acl.c` does them.
//!
//! Command permissions are a bitset over the command table's ids (a command and each of its
//! subcommands has one); categories and names are resolved through a [`CommandIndex`] when a
//! rule is applied, so checking a command is reading one bit.

use magpie_store::glob_match;
use sha2::{Digest, Sha256};

use super::CommandIndex;

/// Bits in a command bitset: every command id is below [`FUTURE`].
pub(crate) const BITS: usize = 512;
const WORDS: usize = BITS / 64;
/// Set only by `+@all` (and `allcommands`): the user may run commands added later. Redis keeps
/// the same reserved bit; `ACL LIST` starts from `+@all` when it is set.
const FUTURE: usize = BITS - 1;

/// Why a rule was refused (Redis's `errno` values in `ACLSetUser`), with Redis's texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleError {
    /// EINVAL
    Syntax,
    /// ENOENT
    Unknown,
    /// EEXIST
    AfterAllKeys,
    /// EISDIR
    AfterAllChannels,
    /// ENODEV
    NoSuchPassword,
    /// EBADMSG
    BadHash,
    /// ECHILD
    FirstArgOfSubcommand,
}

impl RuleError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::AfterAllKeys => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any \
                 effect. Try 'resetkeys' to start with an empty list of patterns"
            }
            RuleError::AfterAllChannels => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have \
                 any effect. Try 'resetchannels' to start with an empty list of channels"
            }
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
            }
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// A key pattern with the access it grants (`~p`: both, `%R~p`, `%W~p`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPattern {
    pub read: bool,
    pub write: bool,
    pub pattern: Box<[u8]>,
    matcher: Matcher,
}

/// How a pattern is matched: the common shapes (`app:*`, `*`, a plain name) without running
/// the glob matcher, which costs a few hundred instructions a key on every command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Matcher {
    /// No special characters: the key itself.
    Exact,
    /// One `*`, at the end: keys starting with the rest (a `*` matches no empty key, as in
    /// Redis's matcher).
    Prefix,
    Glob,
}

impl Matcher {
    fn of(pattern: &[u8]) -> Matcher {
        let special = |c: &u8| matches!(c, b'*' | b'?' | b'[' | b'\\');
        match pattern.iter().position(special) {
            None => Matcher::Exact,
            Some(i) if i == pattern.len() - 1 && pattern[i] == b'*' => Matcher::Prefix,
            Some(_) => Matcher::Glob,
        }
    }
}

impl KeyPattern {
    fn new(read: bool, write: bool, pattern: &[u8]) -> KeyPattern {
        KeyPattern { read, write, pattern: pattern.into(), matcher: Matcher::of(pattern) }
    }

    /// Whether `key` matches, exactly as `glob_match` would answer.
    #[inline]
    fn matches(&self, key: &[u8]) -> bool {
        match self.matcher {
            Matcher::Exact => *key == *self.pattern,
            Matcher::Prefix => {
                // A plain loop: prefixes are short, and a call to memcmp costs more.
                let prefix = self.pattern.split_last().map_or(&[][..], |(_, p)| p);
                let Some(head) = key.get(..prefix.len()) else { return false };
                let mut i = 0;
                while i < head.len() {
                    if head[i] != prefix[i] {
                        return false;
                    }
                    i += 1;
                }
                !key.is_empty()
            }
            Matcher::Glob => glob_match(&self.pattern, key, false),
        }
    }
}

/// One set of permissions: the root selector (the rules outside parentheses) or one of the
/// user's `(...)` selectors. A command is allowed when any selector allows it whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selector {
    root: bool,
    allkeys: bool,
    allchannels: bool,
    allcommands: bool,
    commands: [u64; WORDS],
    /// Allowed first arguments of commands whose bit is not set (`+select|0`): (id, args).
    firstargs: Vec<(usize, Vec<Box<[u8]>>)>,
    keys: Vec<KeyPattern>,
    channels: Vec<Box<[u8]>>,
}

impl Selector {
    fn new(root: bool) -> Selector {
        Selector {
            root,
            allkeys: false,
            allchannels: false,
            allcommands: false,
            commands: [0; WORDS],
            firstargs: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    fn bit(&self, id: usize) -> bool {
        id < BITS && self.commands[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if id >= BITS {
            return;
        }
        if on {
            self.commands[id / 64] |= 1 << (id % 64);
        } else {
            self.commands[id / 64] &= !(1 << (id % 64));
            self.allcommands = false;
        }
    }

    /// Allows or blocks a command; a container's subcommands follow it.
    fn change(&mut self, idx: &CommandIndex, id: usize, on: bool) {
        self.set_bit(id, on);
        self.firstargs.retain(|(i, _)| *i != id);
        for &sub in &idx.children[id] {
            self.set_bit(sub, on);
        }
    }

    fn set_category(&mut self, idx: &CommandIndex, category: u32, on: bool) {
        for &id in &idx.order {
            if idx.categories[id] & category != 0 {
                self.change(idx, id, on);
            }
        }
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    pub(crate) fn apply(&mut self, op: &[u8], idx: &CommandIndex) -> Result<(), RuleError> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if is("allkeys") || is("~*") {
            self.allkeys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.keys.clear();
        } else if is("allchannels") || is("&*") {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.commands = [u64::MAX; WORDS];
            self.allcommands = true;
            self.firstargs.clear();
        } else if is("nocommands") || is("-@all") {
            self.commands = [0; WORDS];
            self.allcommands = false;
            self.firstargs.clear();
        } else if op.first() == Some(&b'~') || op.first() == Some(&b'%') {
            if self.allkeys {
                return Err(RuleError::AfterAllKeys);
            }
            let (mut read, mut write, mut offset) = (false, false, 1);
            if op[0] == b'%' {
                while offset < op.len() {
                    match op[offset] {
                        b'r' | b'R' if !read => read = true,
                        b'w' | b'W' if !write => write = true,
                        b'~' => {
                            offset += 1;
                            break;
                        }
                        _ => return Err(RuleError::Syntax),
                    }
                    offset += 1;
                }
                if !read && !write {
                    // Redis accepts `%~p` and then crashes describing it: refused here.
                    return Err(RuleError::Syntax);
                }
            } else {
                (read, write) = (true, true);
            }
            let pattern = &op[offset.min(op.len())..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|k| *k.pattern == *pattern) {
                Some(existing) => {
                    existing.read |= read;
                    existing.write |= write;
                }
                None => self.keys.push(KeyPattern::new(read, write, pattern)),
            }
            self.allkeys = false;
        } else if op.first() == Some(&b'&') {
            if self.allchannels {
                return Err(RuleError::AfterAllChannels);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| **c == *pattern) {
                self.channels.push(pattern.into());
            }
            self.allchannels = false;
        } else if op.first() == Some(&b'+') && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&c| c == b'|') {
                None => {
                    let id = idx.lookup(name).ok_or(RuleError::Unknown)?;
                    self.change(idx, id, true);
                }
                Some(bar) => {
                    let (base, sub) = (&name[..bar], &name[bar + 1..]);
                    let id = idx.lookup(base).ok_or(RuleError::Unknown)?;
                    if idx.parent[id].is_some() {
                        return Err(RuleError::FirstArgOfSubcommand);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if idx.children[id].is_empty() {
                        // A first argument of a command without subcommands (`+select|0`).
                        let allowed = match self.firstargs.iter_mut().find(|(i, _)| *i == id) {
                            Some((_, list)) => list,
                            None => {
                                self.firstargs.push((id, Vec::new()));
                                let last = self.firstargs.len() - 1;
                                &mut self.firstargs[last].1
                            }
                        };
                        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                            allowed.push(sub.into());
                        }
                    } else {
                        let sub_id = idx.lookup(name).ok_or(RuleError::Unknown)?;
                        self.change(idx, sub_id, true);
                    }
                }
            }
        } else if op.first() == Some(&b'-') && op.get(1) != Some(&b'@') {
            let id = idx.lookup(&op[1..]).ok_or(RuleError::Unknown)?;
            self.change(idx, id, false);
        } else if matches!(op.first(), Some(b'+' | b'-')) && op.get(1) == Some(&b'@') {
            let category = idx.category(&op[2..]).ok_or(RuleError::Unknown)?;
            self.set_category(idx, category, op[0] == b'+');
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// Whether this selector lets `id` run by itself (commands that need no authentication
    /// always may); if not, [`Selector::allows_first_arg`] may still allow the call.
    #[inline]
    pub(crate) fn allows_command(&self, id: usize, no_auth: bool) -> bool {
        self.allcommands || no_auth || self.bit(id)
    }

    /// Whether `id` is allowed with this first argument (`+select|0`).
    pub(crate) fn allows_first_arg(&self, id: usize, first: &[u8]) -> bool {
        self.firstargs.iter().any(|(i, args)| *i == id && args.iter().any(|a| a.eq_ignore_ascii_case(first)))
    }

    pub(crate) fn all_keys(&self) -> bool {
        self.allkeys
    }

    pub(crate) fn all_channels(&self) -> bool {
        self.allchannels
    }

    /// Whether a key may be touched with this access (Redis's `ACLSelectorCheckKey`).
    #[inline]
    pub(crate) fn allows_key(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.allkeys || self.keys.iter().any(|k| (k.read || !read) && (k.write || !write) && k.matches(key))
    }

    /// Whether a channel (or, with `pattern`, a PSUBSCRIBE pattern, compared literally) is
    /// allowed.
    pub(crate) fn allows_channel(&self, channel: &[u8], pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|c| if pattern { **c == *channel } else { glob_match(c, channel, false) })
    }

    /// The key patterns as `ACL GETUSER` shows them.
    fn keys_text(&self) -> Vec<u8> {
        if self.allkeys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            k.write_to(&mut out);
        }
        out
    }

    fn channels_text(&self) -> Vec<u8> {
        if self.allchannels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// Keys, channels and commands, as `ACL LIST` shows a selector (`ACLDescribeSelector`).
    fn describe(&self, idx: &CommandIndex) -> Vec<u8> {
        let mut out = Vec::new();
        if self.allkeys {
            out.extend_from_slice(b"~* ");
        } else {
            for k in &self.keys {
                k.write_to(&mut out);
                out.push(b' ');
            }
        }
        if self.allchannels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.command_rules(idx).as_bytes());
        out
    }

    /// The command rules that rebuild this selector's bitset, as Redis's
    /// `ACLDescribeSelectorCommandRules`: `+@all` or `-@all`, then the categories that fit best
    /// (each agreeing with more commands than it disagrees with), then single commands.
    pub(crate) fn command_rules(&self, idx: &CommandIndex) -> String {
        let additive = !self.bit(FUTURE);
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new(false);
        fake.commands = if additive { [0; WORDS] } else { [u64::MAX; WORDS] };
        let mut temp = Selector::new(false);
        temp.commands = self.commands;
        let mut applied = vec![false; idx.category_names.len()];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (j, &(category, _)) in idx.category_names.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (mut on, mut off) = (0, 0);
                for &id in &idx.order {
                    if idx.categories[id] & category != 0 {
                        if temp.bit(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some(j);
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some(j) = best else { break };
            let (category, name) = idx.category_names[j];
            fake.set_category(idx, category, additive);
            temp.set_category(idx, category, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(name);
            rules.push(' ');
            applied[j] = true;
        }
        for &id in &idx.order {
            let (user, faked) = (self.bit(id), fake.bit(id));
            if user != faked {
                rules.push(if user { '+' } else { '-' });
                rules.push_str(idx.names[id]);
                rules.push(' ');
                fake.change(idx, id, user);
            }
            if !user && let Some((_, args)) = self.firstargs.iter().find(|(i, _)| *i == id) {
                for arg in args {
                    rules.push('+');
                    rules.push_str(idx.names[id]);
                    rules.push('|');
                    rules.push_str(&String::from_utf8_lossy(arg));
                    rules.push(' ');
                }
            }
        }
        rules.pop();
        if fake.commands != self.commands {
            tracing::warn!("ACL rules do not rebuild the user's commands exactly: '{rules}'");
        }
        rules
    }
}

impl KeyPattern {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match (self.read, self.write) {
            (true, true) => b"~".as_slice(),
            (true, false) => b"%R~",
            _ => b"%W~",
        });
        out.extend_from_slice(&self.pattern);
    }
}

/// Redis's `ACLStringHasSpaces`: user names and patterns may not hold spaces or NUL bytes.
pub(crate) fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&c| c == 0 || c.is_ascii_whitespace() || c == 0x0b)
}

/// A password as kept: its SHA-256, never the text.
pub(crate) type PasswordHash = [u8; 32];

pub(crate) fn hash_password(password: &[u8]) -> PasswordHash {
    Sha256::digest(password).into()
}

/// A hash written as Redis shows it: 64 lowercase hex digits.
pub(crate) fn hex(hash: &PasswordHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a `#<hash>` rule's 64 lowercase hex digits.
fn parse_hex(text: &[u8]) -> Option<PasswordHash> {
    if text.len() != 64 || !text.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(text.chunks(2)) {
        let digit = |c: u8| if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 };
        *o = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Some(out)
}

/// Redis's payload sanitizing flags (RESTORE): shown when set, never used by Magpie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sanitize {
    Unset,
    Skip,
    Always,
}

/// A user: whether it is enabled, its passwords (SHA-256 only), and its selectors (the root
/// first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    name: Box<[u8]>,
    enabled: bool,
    nopass: bool,
    sanitize: Sanitize,
    passwords: Vec<PasswordHash>,
    selectors: Vec<Selector>,
    /// The root selector allows every command, key and channel: no check needed.
    unrestricted: bool,
}

impl User {
    /// A new user, as `ACL SETUSER` creates it: off, no passwords, no permissions.
    pub(crate) fn new(name: &[u8]) -> User {
        User {
            name: name.into(),
            enabled: false,
            nopass: false,
            sanitize: Sanitize::Unset,
            passwords: Vec::new(),
            selectors: vec![Selector::new(true)],
            unrestricted: false,
        }
    }

    /// The default user as Redis creates it: `on nopass ~* &* +@all`.
    pub(crate) fn new_default() -> User {
        let mut u = User::new(b"default");
        let root = &mut u.selectors[0];
        root.commands = [u64::MAX; WORDS];
        root.allcommands = true;
        root.allkeys = true;
        root.allchannels = true;
        u.enabled = true;
        u.nopass = true;
        u.refresh();
        u
    }

    pub(crate) fn name(&self) -> &[u8] {
        &self.name
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn nopass(&self) -> bool {
        self.nopass
    }

    /// Whether every command, key and channel is allowed (the default user's rules).
    #[inline]
    pub(crate) fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    pub(crate) fn selectors(&self) -> &[Selector] {
        &self.selectors
    }

    fn refresh(&mut self) {
        let root = &self.selectors[0];
        self.unrestricted = root.allcommands && root.allkeys && root.allchannels;
    }

    /// Whether `password` opens this user (enabled, and nopass or a matching hash). Every
    /// password is compared in full whatever matched, so the time taken says nothing about
    /// which bytes were right.
    pub(crate) fn check_password(&self, password: &[u8]) -> bool {
        let hash = hash_password(password);
        let mut matched = false;
        for p in &self.passwords {
            let diff = p.iter().zip(&hash).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            matched |= diff == 0;
        }
        self.enabled && (self.nopass || matched)
    }

    /// Applies one rule (Redis's `ACLSetUser`).
    pub(crate) fn apply(&mut self, op: &[u8], idx: &CommandIndex) -> Result<(), RuleError> {
        let result = self.apply_inner(op, idx);
        self.refresh();
        result
    }

    fn apply_inner(&mut self, op: &[u8], idx: &CommandIndex) -> Result<(), RuleError> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if op.is_empty() {
            return Ok(());
        }
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Sanitize::Skip;
        } else if is("sanitize-payload") {
            self.sanitize = Sanitize::Always;
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash =
                if op[0] == b'>' { hash_password(&op[1..]) } else { parse_hex(&op[1..]).ok_or(RuleError::BadHash)? };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash =
                if op[0] == b'<' { hash_password(&op[1..]) } else { parse_hex(&op[1..]).ok_or(RuleError::BadHash)? };
            let at = self.passwords.iter().position(|p| *p == hash).ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut selector = Selector::new(false);
            for rule in op[1..op.len() - 1].split(u8::is_ascii_whitespace).filter(|r| !r.is_empty()) {
                selector.apply(rule, idx)?;
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            let root = &mut self.selectors[0];
            for rule in ["resetkeys", "resetchannels", "-@all"] {
                root.apply(rule.as_bytes(), idx)?;
            }
            self.enabled = false;
            self.sanitize = Sanitize::Always;
            self.selectors.truncate(1);
        } else {
            self.selectors[0].apply(op, idx)?;
        }
        Ok(())
    }

    /// The user's rules as `ACL LIST` shows them after `user <name> ` (Redis's
    /// `ACLDescribeUser`).
    pub(crate) fn describe(&self, idx: &CommandIndex) -> Vec<u8> {
        let mut out = Vec::new();
        for flag in self.flags() {
            out.extend_from_slice(flag.as_bytes());
            out.push(b' ');
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(hex(p).as_bytes());
            out.push(b' ');
        }
        for s in &self.selectors {
            let text = s.describe(idx);
            if s.root {
                out.extend_from_slice(&text);
            } else {
                out.extend_from_slice(b" (");
                out.extend_from_slice(&text);
                out.push(b')');
            }
        }
        out
    }

    /// The flags, in Redis's order.
    pub(crate) fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Sanitize::Skip => flags.push("skip-sanitize-payload"),
            Sanitize::Always => flags.push("sanitize-payload"),
            Sanitize::Unset => {}
        }
        flags
    }

    /// The password hashes, in hex.
    pub(crate) fn password_hashes(&self) -> Vec<String> {
        self.passwords.iter().map(hex).collect()
    }
}

/// One selector's three fields of `ACL GETUSER`: its command rules, keys and channels.
pub(crate) fn selector_fields(s: &Selector, idx: &CommandIndex) -> [(&'static str, Vec<u8>); 3] {
    [("commands", s.command_rules(idx).into_bytes()), ("keys", s.keys_text()), ("channels", s.channels_text())]
}

/// Joins rules given as separate arguments into whole selectors: `(~a` `+get)` becomes
/// `(~a +get)`, as Redis's `ACLMergeSelectorArguments`. `Err` names the argument that opened a
/// parenthesis never closed.
pub(crate) fn merge_selectors<'a>(args: impl Iterator<Item = &'a [u8]>) -> Result<Vec<Vec<u8>>, Vec<u8>> {
    let mut merged = Vec::new();
    let mut open: Option<(Vec<u8>, Vec<u8>)> = None;
    for op in args {
        if let Some((start, mut selector)) = open.take() {
            selector.push(b' ');
            selector.extend_from_slice(op);
            if op.last() == Some(&b')') {
                merged.push(selector);
            } else {
                open = Some((start, selector));
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((op.to_vec(), op.to_vec()));
            continue;
        }
        merged.push(op.to_vec());
    }
    match open {
        Some((start, _)) => Err(start),
        None => Ok(merged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small table: get (string read fast), set (string write), config (container: get, set),
    /// select (connection).
    pub(crate) fn index() -> CommandIndex {
        const STRING: u32 = 1;
        const READ: u32 = 2;
        const WRITE: u32 = 4;
        const ADMIN: u32 = 8;
        const SLOW: u32 = 16;
        CommandIndex::new(
            vec![
                ("get", STRING | READ, None),
                ("set", STRING | WRITE | SLOW, None),
                ("config", SLOW, None),
                ("select", SLOW, None),
                ("config|get", ADMIN | SLOW, Some(2)),
                ("config|set", ADMIN | SLOW, Some(2)),
            ],
            vec![(STRING, "string"), (READ, "read"), (WRITE, "write"), (ADMIN, "admin"), (SLOW, "slow")],
        )
    }

    fn user(rules: &str) -> Result<User, RuleError> {
        let idx = index();
        let mut u = User::new(b"u");
        let merged = merge_selectors(rules.split(' ').filter(|r| !r.is_empty()).map(str::as_bytes)).unwrap();
        for r in merged {
            u.apply(&r, &idx)?;
        }
        Ok(u)
    }

    fn describe(rules: &str) -> String {
        String::from_utf8(user(rules).unwrap().describe(&index())).unwrap()
    }

    #[test]
    fn descriptions_follow_redis() {
        assert_eq!(describe(""), "off resetchannels -@all");
        assert_eq!(describe("reset"), "off sanitize-payload resetchannels -@all");
        assert_eq!(describe("on nopass ~* &* +@all"), "on nopass ~* &* +@all");
        assert_eq!(describe("on +@all -set"), "on resetchannels +@all -@write");
        assert_eq!(describe("on +@all -config|set"), "on resetchannels +@all -config|set");
        assert_eq!(describe("+@read"), "off resetchannels -@all +@read");
        assert_eq!(describe("+get +set"), "off resetchannels -@all +@string");
        assert_eq!(describe("+config|get ~a* %R~b &c"), "off ~a* %R~b resetchannels &c -@all +config|get");
        assert_eq!(describe("+config"), "off resetchannels -@all +@admin +config");
        assert_eq!(describe("+select|0 +select|1"), "off resetchannels -@all +select|0 +select|1");
        let d = describe(">pw (+get ~k)");
        assert!(d.starts_with("off #"), "{d}");
        assert!(d.ends_with(" resetchannels -@all (~k resetchannels -@all +@read)"), "{d}");
    }

    #[test]
    fn rule_errors_follow_redis() {
        assert_eq!(user("~* ~a").unwrap_err(), RuleError::AfterAllKeys);
        assert_eq!(user("&* &a").unwrap_err(), RuleError::AfterAllChannels);
        assert_eq!(user("+nope").unwrap_err(), RuleError::Unknown);
        assert_eq!(user("+@nope").unwrap_err(), RuleError::Unknown);
        assert_eq!(user("+config|get|x").unwrap_err(), RuleError::FirstArgOfSubcommand);
        assert_eq!(user("+config|nope").unwrap_err(), RuleError::Unknown);
        assert_eq!(user("+select|").unwrap_err(), RuleError::Syntax);
        assert_eq!(user("#abc").unwrap_err(), RuleError::BadHash);
        assert_eq!(user("<nope").unwrap_err(), RuleError::NoSuchPassword);
        assert_eq!(user("bogus").unwrap_err(), RuleError::Syntax);
        assert_eq!(user("%X~a").unwrap_err(), RuleError::Syntax);
    }

    #[test]
    fn checks() {
        let u = user("on >secret ~app:* %R~ro:* &news.* +get +config|get +select|0").unwrap();
        let root = &u.selectors()[0];
        assert!(u.check_password(b"secret"));
        assert!(!u.check_password(b"Secret"));
        assert!(root.allows_command(0, false));
        assert!(!root.allows_command(1, false));
        assert!(root.allows_command(1, true), "no_auth commands are always allowed");
        assert!(root.allows_command(4, false));
        assert!(!root.allows_command(5, false));
        assert!(!root.allows_command(3, false));
        assert!(root.allows_first_arg(3, b"0"));
        assert!(!root.allows_first_arg(3, b"1"));
        assert!(root.allows_key(b"app:1", true, true));
        assert!(root.allows_key(b"ro:1", true, false));
        assert!(!root.allows_key(b"ro:1", false, true));
        assert!(!root.allows_key(b"other", false, false));
        assert!(root.allows_channel(b"news.today", false));
        assert!(!root.allows_channel(b"news.*x", true));
        assert!(root.allows_channel(b"news.*", true));
        let off = user(">secret").unwrap();
        assert!(!off.check_password(b"secret"), "a user that is off cannot log in");
        assert!(!user("on >a <a").unwrap().check_password(b"a"));
        assert!(user("on nopass").unwrap().check_password(b"anything"));
        let h = hex(&hash_password(b"x"));
        assert!(user(&format!("on #{h}")).unwrap().check_password(b"x"));
    }

    #[test]
    fn pattern_shortcuts_agree_with_the_glob_matcher() {
        let patterns = ["*", "app:*", "app:", "", "a*b", "a?", "[ab]*", "x\\*", "**", "app:**"];
        let keys = ["", "a", "app:", "app:1", "ap", "ab", "axb", "x*", "xy", "b", "app:**"];
        for p in patterns {
            let k = KeyPattern::new(true, true, p.as_bytes());
            for key in keys {
                assert_eq!(k.matches(key.as_bytes()), glob_match(p.as_bytes(), key.as_bytes(), false), "{p:?} {key:?}");
            }
        }
    }

    /// Random rules (known words, names, categories, patterns, and random bytes) never panic,
    /// and a user's description, applied to a new user, gives back the same permissions: what
    /// ACL LIST prints, ACL SETUSER and the ACL file read back.
    #[test]
    fn random_rules_round_trip_through_their_description() {
        let idx = index();
        let words = [
            "on",
            "off",
            "nopass",
            "resetpass",
            "reset",
            ">pw",
            "<pw",
            "#x",
            "+get",
            "-get",
            "+set",
            "-set",
            "+config",
            "-config",
            "+config|get",
            "-config|set",
            "+select|0",
            "+select|1",
            "+@all",
            "-@all",
            "+@read",
            "-@write",
            "+@admin",
            "-@slow",
            "+@string",
            "~k*",
            "%R~r*",
            "%W~w*",
            "%RW~x",
            "~*",
            "allkeys",
            "resetkeys",
            "&c*",
            "&*",
            "allchannels",
            "resetchannels",
            "allcommands",
            "nocommands",
            "(+get ~a*)",
            "(-@all +@admin)",
            "clearselectors",
            "sanitize-payload",
            "skip-sanitize-payload",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut u = User::new(b"u");
            for _ in 0..(next() % 12) {
                let r = next();
                let rule: Vec<u8> = if r % 7 == 0 {
                    (0..(r >> 8) % 6).map(|i| (r >> (8 * (i + 1))) as u8).collect()
                } else {
                    words[(r >> 8) as usize % words.len()].as_bytes().to_vec()
                };
                let _ = u.apply(&rule, &idx);
            }
            let described = u.describe(&idx);
            let text = String::from_utf8_lossy(&described).into_owned();
            let mut again = User::new(b"u");
            for rule in merge_selectors(described.split(|&c| c == b' ')).unwrap() {
                again
                    .apply(&rule, &idx)
                    .unwrap_or_else(|e| panic!("{text}: {:?} {e:?}", String::from_utf8_lossy(&rule)));
            }
            assert_eq!(again.describe(&idx), u.describe(&idx), "{text}");
            for (a, b) in again.selectors.iter().zip(&u.selectors) {
                assert_eq!((a.commands, &a.keys, &a.channels), (b.commands, &b.keys, &b.channels), "{text}");
            }
        }
    }

    #[test]
    fn selectors_merge_across_arguments() {
        let args: Vec<&[u8]> = vec![b"on", b"(~a", b"+get)", b"(+set)", b"off"];
        let merged = merge_selectors(args.into_iter()).unwrap();
        assert_eq!(merged, vec![b"on".to_vec(), b"(~a +get)".to_vec(), b"(+set)".to_vec(), b"off".to_vec()]);
        let args: Vec<&[u8]> = vec![b"(~a", b"+get"];
        assert_eq!(merge_selectors(args.into_iter()).unwrap_err(), b"(~a".to_vec());
    }
}
