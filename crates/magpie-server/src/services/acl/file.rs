//! The ACL file (`aclfile`): one `user <name> <rules...>` line per user, as `ACL LIST` prints
//! them. Loaded at start and by ACL LOAD (all or nothing: one bad line keeps the users as they
//! were), written by ACL SAVE (to a temporary file, then renamed over the old one).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::user::{User, has_spaces, merge_selectors};
use super::{Acl, RuleError};

impl Acl {
    /// Loads the ACL file, replacing every user (Redis's `ACLLoadFromFile`, with its messages).
    /// Nothing changes if any line is wrong; the error lists every problem found.
    pub(crate) fn load_file(&self) -> Result<(), String> {
        let Some(path) = self.file() else { return Ok(()) };
        let text = std::fs::read(path)
            .map_err(|e| format!("Error loading ACLs, opening file '{}': {}", path.display(), strerror(&e)))?;
        let users = parse(&text, &path.display().to_string(), self)?;
        self.replace_all(users);
        Ok(())
    }

    /// Writes every user to the ACL file (ACL SAVE).
    pub(crate) fn save_file(&self) -> Result<(), String> {
        let Some(path) = self.file() else { return Err("no aclfile".into()) };
        let mut text = Vec::new();
        for user in self.users() {
            text.extend_from_slice(b"user ");
            text.extend_from_slice(user.name());
            text.push(b' ');
            text.extend_from_slice(&user.describe(self.index()));
            text.push(b'\n');
        }
        write_atomically(path, &text).map_err(|e| {
            tracing::warn!("ACL SAVE: writing {}: {e}", path.display());
            e.to_string()
        })
    }
}

fn write_atomically(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}-{}", std::process::id(), magpie_store::now_ms()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The text C's `strerror` gives (what Redis prints), without Rust's " (os error N)".
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Parses the file's lines into users, collecting Redis's error messages.
fn parse(text: &[u8], name: &str, acl: &Acl) -> Result<BTreeMap<Box<[u8]>, User>, String> {
    let idx = acl.index();
    let mut errors = String::new();
    let mut users: BTreeMap<Box<[u8]>, User> = BTreeMap::new();
    for (i, line) in text.split(|&c| c == b'\n').enumerate() {
        let linenum = i + 1;
        let line = trim(line, b" \t\r\n");
        if line.is_empty() {
            continue;
        }
        let argv: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
        if argv[0] != b"user" || argv.len() < 2 {
            errors.push_str(&format!("{name}:{linenum} should start with user keyword followed by the username. "));
            continue;
        }
        let username = argv[1];
        if has_spaces(username) {
            errors.push_str(&format!(
                "'{name}:{linenum}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(username)
            ));
            continue;
        }
        if users.contains_key(username) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{}' found on line {linenum}. ",
                String::from_utf8_lossy(username)
            ));
            continue;
        }
        let mut user = User::new(username);
        let rules = match merge_selectors(argv[2..].iter().copied()) {
            Ok(rules) => rules,
            Err(_) => {
                errors.push_str(&format!("{name}:{linenum}: Unmatched parenthesis in selector definition."));
                Vec::new()
            }
        };
        let mut syntax_error = false;
        for rule in &rules {
            let rule = trim(rule, b"\t\r\n");
            match user.apply(rule, idx) {
                Ok(()) => {}
                Err(RuleError::Unknown) => errors.push_str(&format!(
                    "{name}:{linenum}: Error in applying operation '{}': {}. ",
                    String::from_utf8_lossy(rule),
                    RuleError::Unknown.message()
                )),
                Err(e) if !syntax_error => {
                    errors.push_str(&format!("{name}:{linenum}: {}. ", e.message()));
                    syntax_error = true;
                }
                Err(_) => {}
            }
        }
        users.insert(username.into(), user);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str("WARNING: ACL errors detected, no change to the previously active ACL rules was performed");
        Err(errors)
    }
}

fn trim<'a>(mut s: &'a [u8], set: &[u8]) -> &'a [u8] {
    while let [first, rest @ ..] = s
        && set.contains(first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && set.contains(last)
    {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl_with(text: &str) -> (Acl, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("magpie-aclfile-{}-{}", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        (Acl::new(Some(path.clone()), None, 128), path)
    }

    #[test]
    fn loads_all_or_nothing_with_redis_messages() {
        let (acl, path) = acl_with("user alice on >a ~* &* +@all\n\nuser default on nopass ~* &* +@all\n");
        acl.load_file().unwrap();
        assert!(acl.check_credentials(b"alice", b"a").is_some());
        let name = path.display().to_string();
        std::fs::write(&path, "user bob on bogus\n# comment\nuser alice on\nuser alice off\n").unwrap();
        let err = acl.load_file().unwrap_err();
        assert_eq!(
            err,
            format!(
                "{name}:1: Syntax error. {name}:2 should start with user keyword followed by the username. \
                 WARNING: Duplicate user 'alice' found on line 4. WARNING: ACL errors detected, no change to the \
                 previously active ACL rules was performed"
            )
        );
        assert!(acl.check_credentials(b"alice", b"a").is_some(), "nothing changed");
        acl.save_file().unwrap();
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(saved.starts_with("user alice on #ca978112"), "{saved}");
        assert!(saved.ends_with("user default on nopass ~* &* +@all\n"), "{saved}");
        std::fs::remove_file(&path).unwrap();
        let err = acl.load_file().unwrap_err();
        assert!(err.starts_with("Error loading ACLs, opening file '") && err.ends_with("': No such file or directory"));
    }
}
