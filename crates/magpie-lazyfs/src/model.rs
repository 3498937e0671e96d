//! The filesystem's state, with no FUSE in it: what programs see now, and what a power loss
//! would leave.
//!
//! Every inode has two versions. A file has its current bytes and its durable bytes; a
//! directory has its current entries and its durable entries. Programs read and change the
//! current versions. `fsync`/`fdatasync` of a file makes its current bytes durable (its size
//! included, the directory entry that names it not); `fsync` of a directory makes its current
//! entries durable (not the files' bytes). A power loss puts every inode back to its durable
//! version; inodes that no durable entry reaches any more are gone. This is the POSIX
//! contract a careful program writes for, stricter than ext4 in practice (where an fsync of a
//! new file usually carries its directory entry along in the same journal commit), and
//! stricter than LazyFS, which caches only file data and applies create, rename and unlink to
//! the backing filesystem at once.
//!
//! The backing directory always holds the durable version (written as fsyncs happen), so a
//! remount after a power loss, or after this process was killed, sees what survived.
//! Metadata other than sizes and names (modes, owners, times) is not modelled: it is
//! durable at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub type Ino = u64;

/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// Why an operation failed (mapped to an errno by the FUSE layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    Invalid,
    /// The backing directory could not be written: the fsync fails, as a disk error would.
    Io,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Counters of what programs asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// `fsync` of files.
    pub fsyncs: u64,
    /// `fdatasync` of files.
    pub fdatasyncs: u64,
    /// `fsync` (or `fdatasync`) of directories.
    pub dir_fsyncs: u64,
    /// `write` calls on files, and the bytes they carried.
    pub writes: u64,
    pub bytes_written: u64,
    /// Power losses simulated.
    pub power_losses: u64,
}

/// What a power loss threw away.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Files whose bytes went back to their last fsync.
    pub files: usize,
    /// Bytes written (or cut) since those fsyncs, counted from the first one changed.
    pub bytes: u64,
    /// Directory entries created, removed or replaced since their directory's last fsync.
    pub entries: usize,
}

/// An fsync begun and not finished (see [`Model::begin_sync`]).
#[derive(Debug)]
pub struct Pending {
    ino: Ino,
    epoch: u64,
    what: PendingWhat,
}

#[derive(Debug)]
enum PendingWhat {
    Nothing,
    /// The file's bytes from `from` on, as they were when the fsync began.
    File {
        from: usize,
        tail: Vec<u8>,
    },
    /// The directory's entries when the fsync began.
    Dir(BTreeMap<OsString, Ino>),
}

/// The kind of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// An inode's attributes, as `stat` shows them.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

#[derive(Debug)]
struct FileData {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// The first byte that may differ from `durable` (None: none does).
    dirty_from: Option<u64>,
}

#[derive(Debug)]
struct DirData {
    entries: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
    /// The directory that currently holds this one (itself for the root).
    parent: Ino,
}

#[derive(Debug)]
enum Content {
    File(FileData),
    Dir(DirData),
}

#[derive(Debug)]
struct Node {
    content: Content,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// References the kernel holds (FUSE's lookup count): such an inode stays, reachable or not.
    lookups: u64,
}

impl Node {
    fn new(content: Content, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node { content, perm, uid, gid, atime: now, mtime: now, ctime: now, lookups: 0 }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// The whole filesystem.
#[derive(Debug)]
pub struct Model {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    backing: PathBuf,
    /// Power losses so far: an fsync that began before one does not complete.
    epoch: u64,
    /// False from a power loss until [`Model::power_on`].
    powered: bool,
    pub stats: Stats,
}

impl Model {
    /// The filesystem as `backing` holds it: current and durable versions alike.
    pub fn load(backing: &Path) -> io::Result<Model> {
        let meta = fs::metadata(backing)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", backing.display()),
            ));
        }
        let mut m = Model {
            nodes: HashMap::new(),
            next_ino: ROOT + 1,
            backing: backing.to_owned(),
            epoch: 0,
            powered: true,
            stats: Stats::default(),
        };
        let root = DirData { entries: BTreeMap::new(), durable: BTreeMap::new(), parent: ROOT };
        m.nodes.insert(ROOT, Node::new(Content::Dir(root), (meta.permissions().mode() & 0o7777) as u16, 0, 0));
        m.load_dir(ROOT, backing)?;
        Ok(m)
    }

    fn load_dir(&mut self, dir: Ino, path: &Path) -> io::Result<()> {
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let perm = (meta.permissions().mode() & 0o7777) as u16;
            let ino = self.alloc();
            if meta.is_dir() {
                let d = DirData { entries: BTreeMap::new(), durable: BTreeMap::new(), parent: dir };
                self.nodes.insert(ino, Node::new(Content::Dir(d), perm, 0, 0));
                self.load_dir(ino, &entry.path())?;
            } else if meta.is_file() {
                let data = fs::read(entry.path())?;
                let f = FileData { durable: data.clone(), data, dirty_from: None };
                self.nodes.insert(ino, Node::new(Content::File(f), perm, 0, 0));
            } else {
                continue; // symlinks and special files are not served
            }
            if let Some(Content::Dir(d)) = self.nodes.get_mut(&dir).map(|n| &mut n.content) {
                d.entries.insert(entry.file_name(), ino);
                d.durable.insert(entry.file_name(), ino);
            }
        }
        Ok(())
    }

    fn alloc(&mut self) -> Ino {
        // Never reused: the kernel may still name an inode that a power loss removed.
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn node(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or(Error::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Error::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<&DirData> {
        match &self.node(ino)?.content {
            Content::Dir(d) => Ok(d),
            Content::File(_) => Err(Error::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirData> {
        match &mut self.node_mut(ino)?.content {
            Content::Dir(d) => Ok(d),
            Content::File(_) => Err(Error::NotDir),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileData> {
        match &mut self.node_mut(ino)?.content {
            Content::File(f) => Ok(f),
            Content::Dir(_) => Err(Error::IsDir),
        }
    }

    // -----------------------------------------------------------------------------------------
    // What programs see

    pub fn attr(&self, ino: Ino) -> Result<Attr> {
        let n = self.node(ino)?;
        let (kind, size, nlink) = match &n.content {
            Content::File(f) => (Kind::File, f.data.len() as u64, 1),
            Content::Dir(d) => {
                let subdirs = d.entries.values().filter(|i| self.dir(**i).is_ok()).count() as u32;
                (Kind::Dir, 4096, 2 + subdirs)
            }
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: n.perm,
            nlink,
            uid: n.uid,
            gid: n.gid,
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
        })
    }

    /// The inode `name` in `parent` names now.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino> {
        let d = self.dir(parent)?;
        if name == "." {
            return Ok(parent);
        }
        if name == ".." {
            return Ok(d.parent);
        }
        d.entries.get(name).copied().filter(|i| self.nodes.contains_key(i)).ok_or(Error::NotFound)
    }

    /// The kernel took a reference to `ino` (every entry it was given).
    pub fn remember(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups += 1;
        }
    }

    /// The kernel dropped `count` references to `ino`.
    pub fn forget(&mut self, ino: Ino, count: u64) {
        let gone = match self.nodes.get_mut(&ino) {
            Some(n) => {
                n.lookups = n.lookups.saturating_sub(count);
                n.lookups == 0
            }
            None => false,
        };
        if gone {
            self.collect();
        }
    }

    /// The entries of a directory, sorted by name: (inode, kind, name).
    pub fn entries(&self, dir: Ino) -> Result<Vec<(Ino, Kind, OsString)>> {
        let d = self.dir(dir)?;
        Ok(d.entries
            .iter()
            .filter_map(|(name, &ino)| {
                let kind = match self.nodes.get(&ino)?.content {
                    Content::File(_) => Kind::File,
                    Content::Dir(_) => Kind::Dir,
                };
                Some((ino, kind, name.clone()))
            })
            .collect())
    }

    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> Result<&[u8]> {
        match &self.node(ino)?.content {
            Content::File(f) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(f.data.len());
                let end = start.saturating_add(size).min(f.data.len());
                Ok(&f.data[start..end])
            }
            Content::Dir(_) => Err(Error::IsDir),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Changes (to the current version only)

    fn check_name(name: &OsStr) -> Result<()> {
        if name.is_empty() || name == "." || name == ".." || name.as_encoded_bytes().contains(&b'/') {
            return Err(Error::Invalid);
        }
        Ok(())
    }

    fn link_new(&mut self, parent: Ino, name: &OsStr, content: Content, perm: u16, uid: u32, gid: u32) -> Result<Ino> {
        Model::check_name(name)?;
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Error::Exists);
        }
        let ino = self.alloc();
        self.nodes.insert(ino, Node::new(content, perm, uid, gid));
        let p = self.node_mut(parent)?;
        p.touch();
        if let Content::Dir(d) = &mut p.content {
            d.entries.insert(name.to_owned(), ino);
        }
        Ok(ino)
    }

    /// A new, empty file (not durable: neither its bytes nor its name).
    pub fn create(&mut self, parent: Ino, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Ino> {
        let f = FileData { data: Vec::new(), durable: Vec::new(), dirty_from: None };
        self.link_new(parent, name, Content::File(f), perm, uid, gid)
    }

    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Ino> {
        self.dir(parent)?;
        let d = DirData { entries: BTreeMap::new(), durable: BTreeMap::new(), parent };
        self.link_new(parent, name, Content::Dir(d), perm, uid, gid)
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        if self.dir(ino).is_ok() {
            return Err(Error::IsDir);
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.node_mut(parent)?.touch();
        self.collect();
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<()> {
        let ino = self.lookup(parent, name)?;
        if !self.dir(ino)?.entries.is_empty() {
            return Err(Error::NotEmpty);
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.node_mut(parent)?.touch();
        self.collect();
        Ok(())
    }

    /// rename(2), with RENAME_NOREPLACE (`noreplace`). RENAME_EXCHANGE is not supported.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        noreplace: bool,
    ) -> Result<()> {
        Model::check_name(new_name)?;
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        let moving_dir = self.dir(ino).is_ok();
        if moving_dir {
            // A directory cannot move into itself or below itself.
            let mut at = new_parent;
            loop {
                if at == ino {
                    return Err(Error::Invalid);
                }
                if at == ROOT {
                    break;
                }
                at = self.dir(at)?.parent;
            }
        }
        if let Some(&target) = self.dir(new_parent)?.entries.get(new_name) {
            if target == ino {
                return Ok(()); // the same file: nothing to do
            }
            if noreplace {
                return Err(Error::Exists);
            }
            match (moving_dir, self.dir(target)) {
                (true, Ok(t)) if !t.entries.is_empty() => return Err(Error::NotEmpty),
                (true, Err(_)) => return Err(Error::NotDir),
                (false, Ok(_)) => return Err(Error::IsDir),
                _ => {}
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(new_parent)?.entries.insert(new_name.to_owned(), ino);
        if let Ok(d) = self.dir_mut(ino) {
            d.parent = new_parent;
        }
        self.node_mut(parent)?.touch();
        self.node_mut(new_parent)?.touch();
        self.node_mut(ino)?.ctime = SystemTime::now();
        self.collect();
        Ok(())
    }

    /// Writes `data` at `offset` (at the end with `append`); returns the bytes written.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8], append: bool) -> Result<usize> {
        let f = self.file_mut(ino)?;
        let old_len = f.data.len();
        let start = if append { old_len } else { usize::try_from(offset).map_err(|_| Error::Invalid)? };
        let end = start.checked_add(data.len()).ok_or(Error::Invalid)?;
        if end > f.data.len() {
            f.data.resize(end, 0);
        }
        f.data[start..end].copy_from_slice(data);
        // Bytes between the old end and `start` became zeros: they changed too.
        let changed_from = start.min(old_len) as u64;
        f.dirty_from = Some(f.dirty_from.map_or(changed_from, |d| d.min(changed_from)));
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        self.node_mut(ino)?.touch();
        Ok(data.len())
    }

    pub fn truncate(&mut self, ino: Ino, size: u64) -> Result<()> {
        let f = self.file_mut(ino)?;
        let size_usize = usize::try_from(size).map_err(|_| Error::Invalid)?;
        let changed_from = size.min(f.data.len() as u64);
        if size_usize != f.data.len() {
            f.data.resize(size_usize, 0);
            f.dirty_from = Some(f.dirty_from.map_or(changed_from, |d| d.min(changed_from)));
        }
        self.node_mut(ino)?.touch();
        Ok(())
    }

    /// chmod, chown, utimes: applied at once (not modelled).
    pub fn set_meta(
        &mut self,
        ino: Ino,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<()> {
        let n = self.node_mut(ino)?;
        n.perm = perm.unwrap_or(n.perm);
        n.uid = uid.unwrap_or(n.uid);
        n.gid = gid.unwrap_or(n.gid);
        n.atime = atime.unwrap_or(n.atime);
        n.mtime = mtime.unwrap_or(n.mtime);
        n.ctime = SystemTime::now();
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Durability

    /// fsync (`datasync` false) or fdatasync of a file: its bytes become durable. On a
    /// directory, the same as [`Model::fsync_dir`].
    pub fn fsync(&mut self, ino: Ino, datasync: bool) -> Result<()> {
        let pending = self.begin_sync(ino, datasync)?;
        self.finish_sync(pending)
    }

    /// fsync of a directory: its entries (names and the inodes they lead to) become durable.
    pub fn fsync_dir(&mut self, ino: Ino) -> Result<()> {
        self.dir(ino)?;
        let pending = self.begin_sync(ino, false)?;
        self.finish_sync(pending)
    }

    /// The first half of an fsync that takes time: what it will make durable is what the
    /// inode holds now, but it becomes durable only at [`Model::finish_sync`], and not at all
    /// if the power is lost in between. The caller must not begin another sync before this
    /// one finishes (the FUSE layer holds a lock across both halves).
    pub fn begin_sync(&mut self, ino: Ino, datasync: bool) -> Result<Pending> {
        if !self.powered {
            return Err(Error::Io);
        }
        let epoch = self.epoch;
        let what = match &mut self.node_mut(ino)?.content {
            Content::Dir(d) => PendingWhat::Dir(d.entries.clone()),
            Content::File(f) => match f.dirty_from.take() {
                Some(from) => {
                    let from = usize::try_from(from).unwrap_or(usize::MAX).min(f.data.len());
                    PendingWhat::File { from, tail: f.data[from..].to_vec() }
                }
                None => PendingWhat::Nothing,
            },
        };
        match (&what, datasync) {
            (PendingWhat::Dir(_), _) => self.stats.dir_fsyncs += 1,
            (_, true) => self.stats.fdatasyncs += 1,
            (_, false) => self.stats.fsyncs += 1,
        }
        Ok(Pending { ino, epoch, what })
    }

    /// The second half of an fsync: its bytes or entries become durable, unless the power was
    /// lost since it began (then it fails with [`Error::Io`], as the caller's would).
    pub fn finish_sync(&mut self, pending: Pending) -> Result<()> {
        if pending.epoch != self.epoch {
            return Err(Error::Io);
        }
        let ino = pending.ino;
        match pending.what {
            PendingWhat::Nothing => Ok(()),
            PendingWhat::File { from, tail } => {
                let f = self.file_mut(ino)?;
                f.durable.truncate(from);
                f.durable.extend_from_slice(&tail);
                // Mirror the change wherever the durable tree names this file.
                let paths = self.durable_paths(ino);
                if let Content::File(f) = &self.node(ino)?.content {
                    for path in paths {
                        write_tail(&path, &f.durable, from as u64).map_err(|_| Error::Io)?;
                    }
                }
                Ok(())
            }
            PendingWhat::Dir(entries) => {
                let d = self.dir_mut(ino)?;
                let old = std::mem::replace(&mut d.durable, entries);
                let new = d.durable.clone();
                let paths = self.durable_paths(ino);
                let mut result = Ok(());
                for path in paths {
                    for (name, ino) in &old {
                        if new.get(name) != Some(ino) {
                            remove_any(&path.join(name)).unwrap_or_else(|_| result = Err(Error::Io));
                        }
                    }
                    for (name, ino) in &new {
                        if old.get(name) != Some(ino) {
                            self.materialize(*ino, &path.join(name), &mut HashSet::new())
                                .unwrap_or_else(|_| result = Err(Error::Io));
                        }
                    }
                }
                self.collect();
                result
            }
        }
    }

    /// Writes the durable version of `ino` (and of everything below it) at `path`.
    fn materialize(&self, ino: Ino, path: &Path, above: &mut HashSet<Ino>) -> io::Result<()> {
        let Some(node) = self.nodes.get(&ino) else { return Ok(()) };
        match &node.content {
            Content::File(f) => {
                let mut temp = path.as_os_str().to_owned();
                temp.push(".lazyfs-temp");
                fs::write(&temp, &f.durable)?;
                fs::rename(&temp, path)
            }
            Content::Dir(d) => {
                if !above.insert(ino) {
                    return Ok(()); // a cycle of durable entries (a directory moved into its child)
                }
                fs::create_dir_all(path)?;
                for (name, child) in &d.durable {
                    self.materialize(*child, &path.join(name), above)?;
                }
                above.remove(&ino);
                Ok(())
            }
        }
    }

    /// Every path of the backing directory where the durable tree holds `target`.
    fn durable_paths(&self, target: Ino) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, self.backing.clone(), vec![ROOT])];
        while let Some((ino, path, above)) = stack.pop() {
            if ino == target {
                out.push(path.clone());
            }
            if let Some(Node { content: Content::Dir(d), .. }) = self.nodes.get(&ino) {
                for (name, &child) in &d.durable {
                    if !above.contains(&child) {
                        let mut chain = above.clone();
                        chain.push(child);
                        stack.push((child, path.join(name), chain));
                    }
                }
            }
        }
        out
    }

    /// Bytes and entries that a power loss would drop now.
    pub fn unsynced(&self) -> Dropped {
        let mut d = Dropped::default();
        for node in self.nodes.values() {
            match &node.content {
                Content::File(f) => {
                    // An fsync still in flight has taken the dirty mark: compare the bytes.
                    if f.data != f.durable {
                        d.files += 1;
                        let same = f.data.iter().zip(&f.durable).take_while(|(a, b)| a == b).count();
                        d.bytes += (f.data.len().max(f.durable.len()) - same) as u64;
                    }
                }
                Content::Dir(dir) => {
                    let names: HashSet<&OsString> = dir.entries.keys().chain(dir.durable.keys()).collect();
                    d.entries += names.into_iter().filter(|k| dir.entries.get(*k) != dir.durable.get(*k)).count();
                }
            }
        }
        d
    }

    /// Whether the power is on.
    pub fn powered(&self) -> bool {
        self.powered
    }

    /// The machine comes back after a power loss.
    pub fn power_on(&mut self) {
        self.powered = true;
    }

    /// The machine loses power: every file goes back to its bytes at its last fsync, every
    /// directory to its entries at its last fsync, and what no entry reaches is gone. An
    /// fsync in flight does not complete. Until [`Model::power_on`], the FUSE layer fails
    /// every request with EIO, so the programs still running (the test kills them next)
    /// can change nothing.
    pub fn power_loss(&mut self) -> Dropped {
        let dropped = self.unsynced();
        for node in self.nodes.values_mut() {
            match &mut node.content {
                Content::File(f) => {
                    f.data.clone_from(&f.durable);
                    f.dirty_from = None;
                }
                Content::Dir(d) => d.entries.clone_from(&d.durable),
            }
        }
        // After a reboot no program holds anything, and the kernel's inodes from before must
        // not be reused: an inode it saw removed (an rmdir undone by the power loss) stays dead
        // in its caches. So every surviving inode gets a new number.
        for (&ino, node) in &mut self.nodes {
            if ino != ROOT {
                node.lookups = 0;
            }
        }
        self.collect();
        let mut renumbered: HashMap<Ino, Ino> = HashMap::new();
        let mut old: Vec<Ino> = self.nodes.keys().copied().filter(|&i| i != ROOT).collect();
        old.sort_unstable();
        for ino in old {
            let new = self.alloc();
            renumbered.insert(ino, new);
        }
        let new_number = |ino: Ino| renumbered.get(&ino).copied().unwrap_or(ino);
        for (ino, mut node) in std::mem::take(&mut self.nodes) {
            if let Content::Dir(d) = &mut node.content {
                d.entries.values_mut().for_each(|i| *i = new_number(*i));
                d.durable.values_mut().for_each(|i| *i = new_number(*i));
            }
            self.nodes.insert(new_number(ino), node);
        }
        // Parents as the surviving tree has them.
        let mut stack = vec![ROOT];
        let mut seen = HashSet::new();
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            let children: Vec<Ino> = self.dir(ino).map(|d| d.entries.values().copied().collect()).unwrap_or_default();
            for child in children {
                if let Ok(d) = self.dir_mut(child) {
                    d.parent = ino;
                    stack.push(child);
                }
            }
        }
        self.stats.power_losses += 1;
        self.epoch += 1;
        self.powered = false;
        dropped
    }

    /// sync(2): everything becomes durable.
    pub fn sync_all(&mut self) -> Result<()> {
        if !self.powered {
            return Err(Error::Io);
        }
        let stats = self.stats;
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for (&ino, node) in &self.nodes {
            match node.content {
                Content::File(_) => files.push(ino),
                Content::Dir(_) => dirs.push(ino),
            }
        }
        let mut result = Ok(());
        for ino in files {
            if let Err(e) = self.fsync(ino, true) {
                result = Err(e);
            }
        }
        for ino in dirs {
            if let Err(e) = self.fsync_dir(ino) {
                result = Err(e);
            }
        }
        self.stats = stats; // not the programs' fsyncs
        result
    }

    /// Drops inodes that neither the current tree nor the durable one reaches and that the
    /// kernel no longer names.
    fn collect(&mut self) {
        let mut live = HashSet::new();
        for durable in [false, true] {
            let mut stack = vec![ROOT];
            while let Some(ino) = stack.pop() {
                if !live.insert((ino, durable)) {
                    continue;
                }
                if let Some(Node { content: Content::Dir(d), .. }) = self.nodes.get(&ino) {
                    stack.extend(if durable { d.durable.values() } else { d.entries.values() });
                }
            }
        }
        let live: HashSet<Ino> = live.into_iter().map(|(i, _)| i).collect();
        self.nodes.retain(|ino, n| live.contains(ino) || n.lookups > 0);
    }

    /// Inodes held (for tests).
    pub fn inode_count(&self) -> usize {
        self.nodes.len()
    }
}

/// Makes the file at `path` equal `bytes`, given that it already equals them before `from`.
fn write_tail(path: &Path, bytes: &[u8], from: u64) -> io::Result<()> {
    let f = fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    f.write_all_at(&bytes[start..], start as u64)?;
    f.set_len(bytes.len() as u64)
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        m: Model,
        backing: PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.backing);
        }
    }

    fn fixture(name: &str) -> Fixture {
        let backing = std::env::temp_dir().join(format!("magpie-lazyfs-model-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&backing);
        fs::create_dir_all(&backing).unwrap();
        Fixture { m: Model::load(&backing).unwrap(), backing }
    }

    /// A power loss, and the power back on.
    fn crash(m: &mut Model) -> Dropped {
        let dropped = m.power_loss();
        assert!(!m.powered());
        assert_eq!(m.sync_all(), Err(Error::Io), "nothing becomes durable while the power is off");
        m.power_on();
        dropped
    }

    fn n(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn content(m: &Model, dir: Ino, name: &str) -> Option<Vec<u8>> {
        let ino = m.lookup(dir, n(name)).ok()?;
        Some(m.read(ino, 0, usize::MAX).unwrap().to_vec())
    }

    #[test]
    fn unsynced_bytes_are_lost_and_synced_ones_kept() {
        let mut fx = fixture("bytes");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let f = m.create(ROOT, n("log"), 0o644, 0, 0).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.write(f, 0, b"hello ", false).unwrap();
        m.fsync(f, true).unwrap();
        m.write(f, 6, b"world", false).unwrap();
        assert_eq!(content(m, ROOT, "log").unwrap(), b"hello world");
        assert_eq!(fs::read(backing.join("log")).unwrap(), b"hello ");
        let dropped = crash(m);
        assert_eq!(dropped, Dropped { files: 1, bytes: 5, entries: 0 });
        assert_eq!(content(m, ROOT, "log").unwrap(), b"hello ");
        assert_eq!(m.stats.fdatasyncs, 1);
        assert_eq!(m.stats.dir_fsyncs, 1);
    }

    #[test]
    fn a_new_file_needs_its_directory_synced() {
        let mut fx = fixture("entry");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let f = m.create(ROOT, n("a"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"data", false).unwrap();
        m.fsync(f, false).unwrap();
        // The bytes are durable but no durable entry names the file.
        assert!(!backing.join("a").exists());
        let dropped = crash(m);
        assert_eq!(dropped.entries, 1);
        assert_eq!(m.lookup(ROOT, n("a")), Err(Error::NotFound));
        assert_eq!(m.inode_count(), 1, "the lost file's inode is freed");

        let f = m.create(ROOT, n("b"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"data", false).unwrap();
        m.fsync_dir(ROOT).unwrap();
        // The name is durable, the bytes are not: an empty file survives.
        assert_eq!(fs::read(backing.join("b")).unwrap(), b"");
        crash(m);
        assert_eq!(content(m, ROOT, "b").unwrap(), b"");
    }

    #[test]
    fn rename_over_a_file_is_atomic_and_durable_after_the_directory_fsync() {
        let mut fx = fixture("rename");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let old = m.create(ROOT, n("manifest"), 0o644, 0, 0).unwrap();
        m.write(old, 0, b"v1", false).unwrap();
        m.fsync(old, false).unwrap();
        m.fsync_dir(ROOT).unwrap();
        let temp = m.create(ROOT, n("manifest.tmp"), 0o644, 0, 0).unwrap();
        m.write(temp, 0, b"v2", false).unwrap();
        m.fsync(temp, false).unwrap();
        m.rename(ROOT, n("manifest.tmp"), ROOT, n("manifest"), false).unwrap();
        assert_eq!(content(m, ROOT, "manifest").unwrap(), b"v2");
        // Before the directory's fsync, a power loss brings the old one back.
        crash(m);
        assert_eq!(content(m, ROOT, "manifest").unwrap(), b"v1");
        assert_eq!(m.lookup(ROOT, n("manifest.tmp")), Err(Error::NotFound));

        let temp = m.create(ROOT, n("manifest.tmp"), 0o644, 0, 0).unwrap();
        m.write(temp, 0, b"v3", false).unwrap();
        m.fsync(temp, false).unwrap();
        m.rename(ROOT, n("manifest.tmp"), ROOT, n("manifest"), false).unwrap();
        m.fsync_dir(ROOT).unwrap();
        assert_eq!(fs::read(backing.join("manifest")).unwrap(), b"v3");
        assert!(!backing.join("manifest.tmp").exists());
        crash(m);
        assert_eq!(content(m, ROOT, "manifest").unwrap(), b"v3");
    }

    #[test]
    fn bytes_written_after_the_fsync_and_before_the_link_are_not_durable() {
        let mut fx = fixture("late");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let f = m.create(ROOT, n("f"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"synced", false).unwrap();
        m.fsync(f, false).unwrap();
        m.write(f, 6, b"+late", false).unwrap();
        m.fsync_dir(ROOT).unwrap();
        assert_eq!(fs::read(backing.join("f")).unwrap(), b"synced");
        crash(m);
        assert_eq!(content(m, ROOT, "f").unwrap(), b"synced");
    }

    #[test]
    fn an_unlink_not_synced_is_undone() {
        let mut fx = fixture("unlink");
        let m = &mut fx.m;
        let f = m.create(ROOT, n("old"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"keep", false).unwrap();
        m.fsync(f, false).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.unlink(ROOT, n("old")).unwrap();
        assert_eq!(m.lookup(ROOT, n("old")), Err(Error::NotFound));
        crash(m);
        assert_eq!(content(m, ROOT, "old").unwrap(), b"keep");
        m.unlink(ROOT, n("old")).unwrap();
        m.fsync_dir(ROOT).unwrap();
        crash(m);
        assert_eq!(m.lookup(ROOT, n("old")), Err(Error::NotFound));
        assert_eq!(m.inode_count(), 1);
    }

    #[test]
    fn directories_and_their_files() {
        let mut fx = fixture("dirs");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let d = m.mkdir(ROOT, n("appendonlydir"), 0o755, 0, 0).unwrap();
        let f = m.create(d, n("log.1"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"header", false).unwrap();
        m.fsync(f, true).unwrap();
        m.fsync_dir(d).unwrap();
        // The directory's own entry in the root is not durable yet: all of it is lost.
        crash(m);
        assert_eq!(m.lookup(ROOT, n("appendonlydir")), Err(Error::NotFound));

        let d = m.mkdir(ROOT, n("appendonlydir"), 0o755, 0, 0).unwrap();
        m.fsync_dir(ROOT).unwrap();
        let f = m.create(d, n("log.1"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"header", false).unwrap();
        m.fsync(f, true).unwrap();
        m.fsync_dir(d).unwrap();
        m.write(f, 6, b"record", false).unwrap();
        m.fsync(f, true).unwrap();
        m.write(f, 12, b"lost", false).unwrap();
        assert_eq!(fs::read(backing.join("appendonlydir/log.1")).unwrap(), b"headerrecord");
        crash(m);
        // After the power loss every inode has a new number: the kernel's are stale.
        assert_eq!(m.attr(d).map(|_| ()), Err(Error::NotFound));
        let d = m.lookup(ROOT, n("appendonlydir")).unwrap();
        assert_eq!(content(m, d, "log.1").unwrap(), b"headerrecord");

        // rmdir needs an empty directory.
        assert_eq!(m.rmdir(ROOT, n("appendonlydir")), Err(Error::NotEmpty));
        // The backing directory loads back as the durable version.
        let again = Model::load(&backing).unwrap();
        let d2 = again.lookup(ROOT, n("appendonlydir")).unwrap();
        assert_eq!(content(&again, d2, "log.1").unwrap(), b"headerrecord");
    }

    #[test]
    fn truncation_and_holes_are_tracked() {
        let mut fx = fixture("trunc");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let f = m.create(ROOT, n("f"), 0o644, 0, 0).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.write(f, 0, b"0123456789", false).unwrap();
        m.fsync(f, true).unwrap();
        m.truncate(f, 4).unwrap();
        m.write(f, 6, b"xy", false).unwrap(); // a hole of two zero bytes
        assert_eq!(content(m, ROOT, "f").unwrap(), b"0123\0\0xy");
        m.fsync(f, true).unwrap();
        assert_eq!(fs::read(backing.join("f")).unwrap(), b"0123\0\0xy");
        m.truncate(f, 2).unwrap();
        m.write(f, 0, b"z", true).unwrap(); // O_APPEND writes at the end
        assert_eq!(content(m, ROOT, "f").unwrap(), b"01z");
        crash(m);
        assert_eq!(content(m, ROOT, "f").unwrap(), b"0123\0\0xy");
    }

    #[test]
    fn renames_check_what_they_replace() {
        let mut fx = fixture("rename-rules");
        let m = &mut fx.m;
        let d = m.mkdir(ROOT, n("d"), 0o755, 0, 0).unwrap();
        m.create(ROOT, n("f"), 0o644, 0, 0).unwrap();
        m.create(d, n("inner"), 0o644, 0, 0).unwrap();
        assert_eq!(m.rename(ROOT, n("f"), ROOT, n("d"), false), Err(Error::IsDir));
        assert_eq!(m.rename(ROOT, n("d"), ROOT, n("f"), false), Err(Error::NotDir));
        assert_eq!(m.rename(ROOT, n("d"), d, n("self"), false), Err(Error::Invalid));
        let e = m.mkdir(ROOT, n("e"), 0o755, 0, 0).unwrap();
        assert_eq!(m.rename(ROOT, n("e"), ROOT, n("d"), false), Err(Error::NotEmpty));
        m.create(ROOT, n("g"), 0o644, 0, 0).unwrap();
        assert_eq!(m.rename(ROOT, n("f"), ROOT, n("g"), true), Err(Error::Exists));
        m.rename(ROOT, n("e"), d, n("e2"), false).unwrap();
        assert_eq!(m.lookup(d, n("e2")), Ok(e));
        assert_eq!(m.lookup(e, n("..")), Ok(d));
        assert_eq!(m.create(ROOT, n("a/b"), 0o644, 0, 0), Err(Error::Invalid));
    }

    #[test]
    fn sync_all_makes_everything_durable_without_counting() {
        let mut fx = fixture("sync");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let d = m.mkdir(ROOT, n("d"), 0o755, 0, 0).unwrap();
        let f = m.create(d, n("f"), 0o644, 0, 0).unwrap();
        m.write(f, 0, b"all of it", false).unwrap();
        m.sync_all().unwrap();
        assert_eq!(m.stats.fsyncs + m.stats.fdatasyncs + m.stats.dir_fsyncs, 0);
        assert_eq!(m.unsynced(), Dropped::default());
        assert_eq!(fs::read(backing.join("d/f")).unwrap(), b"all of it");
        crash(m);
        let d = m.lookup(ROOT, n("d")).unwrap();
        assert_eq!(content(m, d, "f").unwrap(), b"all of it");
    }

    #[test]
    fn an_fsync_counts_only_when_it_finishes_before_the_power_loss() {
        let mut fx = fixture("slow");
        let (m, backing) = (&mut fx.m, fx.backing.clone());
        let f = m.create(ROOT, n("f"), 0o644, 0, 0).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.write(f, 0, b"first", false).unwrap();
        // Bytes written while the fsync is in flight are not part of it.
        let pending = m.begin_sync(f, true).unwrap();
        m.write(f, 5, b"+during", false).unwrap();
        assert_eq!(m.unsynced().bytes, 12);
        m.finish_sync(pending).unwrap();
        assert_eq!(fs::read(backing.join("f")).unwrap(), b"first");
        assert_eq!(m.unsynced(), Dropped { files: 1, bytes: 7, entries: 0 });
        // An fsync the power loss interrupts makes nothing durable, and fails.
        let pending = m.begin_sync(f, true).unwrap();
        crash(m);
        assert_eq!(m.finish_sync(pending), Err(Error::Io));
        assert_eq!(content(m, ROOT, "f").unwrap(), b"first");
        assert_eq!(fs::read(backing.join("f")).unwrap(), b"first");
        assert_eq!(m.stats.fdatasyncs, 2);
    }

    #[test]
    fn open_unlinked_files_stay_while_the_kernel_holds_them() {
        let mut fx = fixture("held");
        let m = &mut fx.m;
        let f = m.create(ROOT, n("f"), 0o644, 0, 0).unwrap();
        m.remember(f);
        m.unlink(ROOT, n("f")).unwrap();
        m.write(f, 0, b"still writable", false).unwrap();
        assert_eq!(m.read(f, 0, 100).unwrap(), b"still writable");
        m.forget(f, 1);
        assert_eq!(m.read(f, 0, 100), Err(Error::NotFound));
    }
}
