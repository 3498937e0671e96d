//! Access control, as Redis 7.0 has it: users with passwords (kept as SHA-256 only) and
//! selectors of command, key and channel permissions; the default user (`requirepass` sets its
//! password); the ACL LOG of refusals; the ACL file.
//!
//! The service knows nothing of the command table: the commands layer describes it once as a
//! [`CommandIndex`] (names, ids, categories), through which rules are resolved. Checks read a
//! session's [`Login`], which caches its user's rules and refreshes them only when a global
//! version moved (one relaxed load per command when nothing changed).

pub(crate) mod file;
pub(crate) mod log;
pub(crate) mod user;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use parking_lot::{Mutex, RwLock};

pub(crate) use log::{Context, LogEntry, Reason};
pub(crate) use user::{RuleError, Selector, User};

/// What access control needs to know of the command table: every command and subcommand by
/// id, with its full name, categories and parent, and the categories' names.
pub(crate) struct CommandIndex {
    pub(crate) names: Vec<&'static str>,
    pub(crate) categories: Vec<u32>,
    pub(crate) parent: Vec<Option<usize>>,
    pub(crate) children: Vec<Vec<usize>>,
    /// Every id, each command followed by its subcommands (the order Redis walks its table).
    pub(crate) order: Vec<usize>,
    pub(crate) category_names: Vec<(u32, &'static str)>,
    by_name: HashMap<String, usize>,
}

impl CommandIndex {
    /// `entries` by id: (full name, categories, parent id).
    pub(crate) fn new(
        entries: Vec<(&'static str, u32, Option<usize>)>,
        category_names: Vec<(u32, &'static str)>,
    ) -> CommandIndex {
        let n = entries.len();
        let mut children = vec![Vec::new(); n];
        for (id, (_, _, parent)) in entries.iter().enumerate() {
            if let Some(p) = parent {
                children[*p].push(id);
            }
        }
        let mut order = Vec::with_capacity(n);
        for (id, (_, _, parent)) in entries.iter().enumerate() {
            if parent.is_none() {
                order.push(id);
                order.extend(&children[id]);
            }
        }
        CommandIndex {
            by_name: entries.iter().enumerate().map(|(id, (name, _, _))| (name.to_ascii_lowercase(), id)).collect(),
            names: entries.iter().map(|e| e.0).collect(),
            categories: entries.iter().map(|e| e.1).collect(),
            parent: entries.iter().map(|e| e.2).collect(),
            children,
            order,
            category_names,
        }
    }

    /// A command (`get`) or subcommand (`config|get`) by name, any case.
    pub(crate) fn lookup(&self, name: &[u8]) -> Option<usize> {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        self.by_name.get(&name).copied()
    }

    /// A category's bit, by name, any case.
    pub(crate) fn category(&self, name: &[u8]) -> Option<u32> {
        self.category_names.iter().find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(name)).map(|(bit, _)| *bit)
    }
}

/// Before the commands layer has described the table: rules that name commands fail.
static NO_COMMANDS: LazyLock<CommandIndex> = LazyLock::new(|| CommandIndex::new(Vec::new(), Vec::new()));

/// A user as sessions hold it: its current rules, replaced whole by `ACL SETUSER`, and whether
/// it was deleted (its sessions are then closed).
pub(crate) struct Account {
    rules: RwLock<Arc<User>>,
    deleted: AtomicBool,
}

impl Account {
    fn new(user: User) -> Arc<Account> {
        Arc::new(Account { rules: RwLock::new(Arc::new(user)), deleted: AtomicBool::new(false) })
    }

    pub(crate) fn rules(&self) -> Arc<User> {
        self.rules.read().clone()
    }
}

/// A session's user: who it is, whether it authenticated, and that user's rules as of the
/// last change the session saw.
pub(crate) struct Login {
    account: Arc<Account>,
    user: Arc<User>,
    seen: u64,
    authenticated: bool,
    /// The server's own sessions (log replay): no checks.
    internal: bool,
}

impl Login {
    /// The server's own session: allowed everything.
    pub(crate) fn internal() -> Login {
        static INTERNAL: LazyLock<Arc<Account>> = LazyLock::new(|| Account::new(User::new_default()));
        let account = INTERNAL.clone();
        Login { user: account.rules(), account, seen: 0, authenticated: true, internal: true }
    }

    /// The user's rules (as last refreshed by [`Acl::current`]).
    pub(crate) fn user(&self) -> &User {
        &self.user
    }

    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    fn is(&self, account: &Arc<Account>) -> bool {
        Arc::ptr_eq(&self.account, account)
    }
}

/// The session's user was deleted (or replaced by ACL LOAD): the connection must close.
#[derive(Debug)]
pub(crate) struct Gone;

/// Refusals counted for INFO (Redis 7.2's `acl_access_denied_*`).
#[derive(Default)]
pub(crate) struct Denials {
    pub auth: AtomicU64,
    pub cmd: AtomicU64,
    pub key: AtomicU64,
    pub channel: AtomicU64,
}

/// Every user, the ACL LOG, and the ACL file's name.
pub(crate) struct Acl {
    users: RwLock<BTreeMap<Box<[u8]>, Arc<Account>>>,
    default: Arc<Account>,
    /// Moves on every change to any user: sessions refresh their cached rules when it did.
    version: AtomicU64,
    /// The default user is on and needs no password: new connections start authenticated.
    default_open: AtomicBool,
    index: OnceLock<CommandIndex>,
    log: Mutex<log::Log>,
    /// `acllog-max-len`.
    pub(crate) log_max: AtomicUsize,
    pub(crate) denied: Denials,
    /// `aclfile`, if set.
    file: Option<PathBuf>,
}

impl Acl {
    pub(crate) fn new(file: Option<PathBuf>, requirepass: Option<&[u8]>, log_max: usize) -> Acl {
        let default = Account::new(User::new_default());
        let acl = Acl {
            users: RwLock::new(BTreeMap::from([(b"default".to_vec().into_boxed_slice(), default.clone())])),
            default,
            version: AtomicU64::new(1),
            default_open: AtomicBool::new(true),
            index: OnceLock::new(),
            log: Mutex::new(log::Log::default()),
            log_max: AtomicUsize::new(log_max),
            denied: Denials::default(),
            file,
        };
        if requirepass.is_some() {
            acl.set_requirepass(requirepass);
        }
        acl
    }

    /// Describes the command table, once (the commands layer calls it before rules are used).
    pub(crate) fn set_index(&self, make: impl FnOnce() -> CommandIndex) -> &CommandIndex {
        self.index.get_or_init(make)
    }

    pub(crate) fn index(&self) -> &CommandIndex {
        self.index.get().unwrap_or(&NO_COMMANDS)
    }

    pub(crate) fn file(&self) -> Option<&PathBuf> {
        self.file.as_ref()
    }

    /// A new connection's login: the default user, authenticated if it needs no password.
    pub(crate) fn login(&self) -> Login {
        let mut login = Login {
            account: self.default.clone(),
            user: self.default.rules(),
            seen: 0,
            authenticated: false,
            internal: false,
        };
        self.reset_login(&mut login);
        login
    }

    /// Back to the default user (RESET), authenticated only if it needs no password.
    pub(crate) fn reset_login(&self, login: &mut Login) {
        if login.internal {
            return;
        }
        login.seen = self.version.load(Ordering::Acquire);
        login.account = self.default.clone();
        login.user = self.default.rules();
        login.authenticated = self.default_open.load(Ordering::Relaxed);
    }

    /// Whether the session must authenticate before running anything but `no_auth` commands.
    #[inline]
    pub(crate) fn auth_required(&self, login: &Login) -> bool {
        !login.authenticated && !self.default_open.load(Ordering::Relaxed)
    }

    /// The session's user with its current rules; `Gone` when the user was deleted.
    #[inline]
    pub(crate) fn current<'a>(&self, login: &'a mut Login) -> Result<&'a User, Gone> {
        let version = self.version.load(Ordering::Acquire);
        if version != login.seen && !login.internal {
            self.refresh(login, version)?;
        }
        Ok(&login.user)
    }

    #[cold]
    fn refresh(&self, login: &mut Login, version: u64) -> Result<(), Gone> {
        login.seen = version;
        if login.account.deleted.load(Ordering::Acquire) {
            // As Redis, the connection ends; should it go on, it is the default user's again.
            login.account = self.default.clone();
            login.user = self.default.rules();
            login.authenticated = false;
            return Err(Gone);
        }
        login.user = login.account.rules();
        Ok(())
    }

    /// Checks a user name and password (Redis's `ACLCheckUserCredentials`). The password is
    /// hashed even for an unknown user, so a refusal costs what a success costs.
    pub(crate) fn check_credentials(&self, name: &[u8], password: &[u8]) -> Option<Arc<Account>> {
        let account = self.users.read().get(name).cloned();
        match account {
            Some(account) if account.rules().check_password(password) => Some(account),
            Some(_) => None,
            None => {
                std::hint::black_box(user::hash_password(password));
                None
            }
        }
    }

    /// Makes `login` the given user's, authenticated (AUTH, HELLO AUTH).
    pub(crate) fn log_in(&self, login: &mut Login, account: Arc<Account>) {
        login.seen = self.version.load(Ordering::Acquire);
        login.user = account.rules();
        login.account = account;
        login.authenticated = true;
    }

    /// Whether the default user needs no password (`AUTH <password>` is then an error).
    pub(crate) fn default_nopass(&self) -> bool {
        self.default.rules().nopass()
    }

    /// `requirepass`: the default user's only password, or none (nopass) when empty.
    pub(crate) fn set_requirepass(&self, password: Option<&[u8]>) {
        let mut user = (*self.default.rules()).clone();
        let idx = self.index();
        let _ = user.apply(b"resetpass", idx);
        let rule = match password {
            Some(p) if !p.is_empty() => [b">".as_slice(), p].concat(),
            _ => b"nopass".to_vec(),
        };
        let _ = user.apply(&rule, idx);
        self.store(&self.default, user);
    }

    fn store(&self, account: &Arc<Account>, user: User) {
        if Arc::ptr_eq(account, &self.default) {
            self.default_open.store(user.enabled() && user.nopass(), Ordering::Relaxed);
        }
        *account.rules.write() = Arc::new(user);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// A user's current rules.
    pub(crate) fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().get(name).map(|a| a.rules())
    }

    /// Every user, in name order.
    pub(crate) fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().map(|a| a.rules()).collect()
    }

    /// `ACL SETUSER name rules...`: every rule is applied to a copy first, so an error changes
    /// nothing. The error is Redis's text (without `ERR `).
    pub(crate) fn set_user<'a>(&self, name: &[u8], rules: impl Iterator<Item = &'a [u8]>) -> Result<(), Vec<u8>> {
        let merged = user::merge_selectors(rules).map_err(|start| {
            let mut msg = b"Unmatched parenthesis in acl selector starting at '".to_vec();
            msg.extend_from_slice(&start);
            msg.extend_from_slice(b"'.");
            msg
        })?;
        let idx = self.index();
        let mut users = self.users.write();
        let existing = users.get(name).cloned();
        let mut user = match &existing {
            Some(a) => (*a.rules()).clone(),
            None => User::new(name),
        };
        for rule in &merged {
            if let Err(e) = user.apply(rule, idx) {
                let mut msg = b"Error in ACL SETUSER modifier '".to_vec();
                msg.extend_from_slice(rule);
                msg.extend_from_slice(b"': ");
                msg.extend_from_slice(e.message().as_bytes());
                return Err(msg);
            }
        }
        match existing {
            Some(account) => self.store(&account, user),
            None => {
                users.insert(name.into(), Account::new(user));
                self.version.fetch_add(1, Ordering::Release);
            }
        }
        Ok(())
    }

    /// `ACL DELUSER`: removes the users named (never `default`), whose sessions then close.
    /// Returns how many existed, and whether `login` was one of them.
    pub(crate) fn del_users<'a>(
        &self,
        names: impl Iterator<Item = &'a [u8]> + Clone,
        login: &Login,
    ) -> Result<(usize, bool), &'static str> {
        if names.clone().any(|n| n == b"default") {
            return Err("ERR The 'default' user cannot be removed");
        }
        let mut users = self.users.write();
        let (mut deleted, mut own) = (0, false);
        for name in names {
            if let Some(account) = users.remove(name) {
                account.deleted.store(true, Ordering::Release);
                own |= login.is(&account);
                deleted += 1;
            }
        }
        self.version.fetch_add(1, Ordering::Release);
        Ok((deleted, own))
    }

    /// Replaces every user at once (ACL LOAD, the file at start). Sessions of the users
    /// replaced close; the default user is changed in place, as in Redis.
    fn replace_all(&self, new: BTreeMap<Box<[u8]>, User>) {
        let mut users = self.users.write();
        let mut fresh = BTreeMap::new();
        let mut default = None;
        for (name, user) in new {
            if &*name == b"default" {
                default = Some(user);
            } else {
                fresh.insert(name, Account::new(user));
            }
        }
        self.store(&self.default, default.unwrap_or_else(User::new_default));
        fresh.insert(b"default".to_vec().into_boxed_slice(), self.default.clone());
        for (name, account) in users.iter() {
            if &**name != b"default" {
                account.deleted.store(true, Ordering::Release);
            }
        }
        *users = fresh;
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Adds a refusal to the ACL LOG (see [`log::Log::add`]) and counts it.
    pub(crate) fn log_denial(&self, entry: LogEntry) {
        let counter = match entry.reason {
            Reason::Auth => &self.denied.auth,
            Reason::Command => &self.denied.cmd,
            Reason::Key => &self.denied.key,
            Reason::Channel => &self.denied.channel,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.log.lock().add(entry, self.log_max.load(Ordering::Relaxed));
    }

    /// The newest `count` entries of the ACL LOG, newest first.
    pub(crate) fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log.lock().entries.iter().take(count).cloned().collect()
    }

    pub(crate) fn log_reset(&self) {
        self.log.lock().entries.clear();
    }

    /// Trims the log to `acllog-max-len` after it was lowered.
    pub(crate) fn set_log_max(&self, max: usize) {
        self.log_max.store(max, Ordering::Relaxed);
        self.log.lock().entries.truncate(max);
    }
}

/// Random bytes from the kernel, as hex (ACL GENPASS): `chars` hex digits.
pub(crate) fn random_hex(chars: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_follow_changes_to_their_user() {
        let acl = Acl::new(None, None, 128);
        let mut login = acl.login();
        assert!(login.authenticated() && !acl.auth_required(&login));
        acl.set_requirepass(Some(b"pw"));
        // Connected before the password was set: still authenticated, as in Redis.
        assert!(!acl.auth_required(&login));
        let fresh = acl.login();
        assert!(acl.auth_required(&fresh));
        assert!(acl.check_credentials(b"default", b"nope").is_none());
        assert!(acl.check_credentials(b"nobody", b"pw").is_none());
        acl.set_user(b"alice", [b"on".as_slice(), b">a", b"+@all", b"~*"].into_iter()).unwrap();
        let alice = acl.check_credentials(b"alice", b"a").expect("alice");
        acl.log_in(&mut login, alice);
        assert_eq!(acl.current(&mut login).unwrap().name(), b"alice");
        acl.set_user(b"alice", [b"-@all".as_slice()].into_iter()).unwrap();
        assert_eq!(
            acl.current(&mut login).unwrap().describe(acl.index()),
            b"on #ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb ~* resetchannels -@all".to_vec()
        );
        assert_eq!(acl.del_users([b"alice".as_slice()].into_iter(), &login).unwrap(), (1, true));
        assert!(acl.current(&mut login).is_err());
        assert!(acl.del_users([b"default".as_slice()].into_iter(), &login).is_err());
        let err = acl.set_user(b"bob", [b"on".as_slice(), b"bogus"].into_iter()).unwrap_err();
        assert_eq!(err, b"Error in ACL SETUSER modifier 'bogus': Syntax error".to_vec());
        assert!(acl.user(b"bob").is_none(), "a failed SETUSER creates nothing");
    }
}
