//! The FUSE side: each request becomes one call on the [`Model`], under one lock.
//!
//! The kernel is told to cache nothing: entries and attributes live for zero seconds and
//! files are opened with `FOPEN_DIRECT_IO`, so every read, write and lookup reaches the model
//! and a power loss is seen at once by the next program that looks (the kernel's page cache
//! would otherwise keep serving the bytes the model dropped).

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::model::{self, Attr, Ino, Kind, Model};

/// Nothing is cached by the kernel.
const TTL: Duration = Duration::ZERO;

/// The model, or the request fails with EIO while the power is off.
macro_rules! live {
    ($self:ident, $reply:ident) => {
        match $self.shared.live() {
            Some(m) => m,
            None => return $reply.error(Errno::EIO),
        }
    };
}

/// What the filesystem and its controls share.
pub(crate) struct Shared {
    pub(crate) model: Mutex<Model>,
    /// How long an fsync takes (a real disk's flush), outside the model's lock.
    pub(crate) fsync_delay: Duration,
    /// Held across both halves of an fsync: one at a time, as [`Model::begin_sync`] needs.
    sync_lock: Mutex<()>,
    next_fh: AtomicU64,
}

impl Shared {
    pub(crate) fn new(model: Model, fsync_delay: Duration) -> Shared {
        Shared { model: Mutex::new(model), fsync_delay, sync_lock: Mutex::new(()), next_fh: AtomicU64::new(1) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Model> {
        // A panic under the lock leaves a model that is still whole for our purposes.
        self.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The model, unless the power is off (after a power loss, until power-on): then
    /// nothing can be read or written, as on a machine that is down.
    pub(crate) fn live(&self) -> Option<MutexGuard<'_, Model>> {
        Some(self.lock()).filter(|m| m.powered())
    }

    /// An fsync of `ino`: what it holds now becomes durable once the delay (the disk's
    /// flush) has passed, unless the power is lost meanwhile. Other requests go on during
    /// the delay; other fsyncs wait.
    pub(crate) fn fsync(&self, ino: Ino, datasync: bool) -> Result<(), model::Error> {
        let _one_at_a_time = self.sync_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pending = self.lock().begin_sync(ino, datasync)?;
        if !self.fsync_delay.is_zero() {
            std::thread::sleep(self.fsync_delay);
        }
        self.lock().finish_sync(pending)
    }

    /// sync(2): everything becomes durable.
    pub(crate) fn sync_all(&self) -> Result<(), model::Error> {
        let _one_at_a_time = self.sync_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.lock().sync_all()
    }
}

pub(crate) struct LazyFs {
    pub(crate) shared: Arc<Shared>,
}

fn errno(e: model::Error) -> Errno {
    match e {
        model::Error::NotFound => Errno::ENOENT,
        model::Error::Exists => Errno::EEXIST,
        model::Error::NotDir => Errno::ENOTDIR,
        model::Error::IsDir => Errno::EISDIR,
        model::Error::NotEmpty => Errno::ENOTEMPTY,
        model::Error::Invalid => Errno::EINVAL,
        model::Error::Io => Errno::EIO,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: match a.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl LazyFs {
    fn fh(&self) -> FileHandle {
        FileHandle(self.shared.next_fh.fetch_add(1, Ordering::Relaxed))
    }

    /// Replies with the entry of `ino`, counting the reference the kernel takes.
    fn entry(&self, m: &mut Model, ino: Ino, reply: ReplyEntry) {
        match m.attr(ino) {
            Ok(a) => {
                m.remember(ino);
                reply.entry(&TTL, &file_attr(&a), Generation(0));
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for LazyFs {
    fn destroy(&mut self) {
        // A clean unmount writes everything back, as a real filesystem does.
        let _ = self.shared.sync_all();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut m = live!(self, reply);
        match m.lookup(parent.0, name) {
            Ok(ino) => self.entry(&mut m, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = live!(self, reply);
        match m.attr(ino.0) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = live!(self, reply);
        let result = (|| {
            if let Some(size) = size {
                m.truncate(ino.0, size)?;
            }
            let perm = mode.map(|m| (m & 0o7777) as u16);
            m.set_meta(ino.0, perm, uid, gid, atime.map(time), mtime.map(time))?;
            m.attr(ino.0)
        })();
        match result {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM); // only regular files are served
        }
        let mut m = live!(self, reply);
        match m.create(parent.0, name, (mode & !umask & 0o7777) as u16, req.uid(), req.gid()) {
            Ok(ino) => self.entry(&mut m, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut m = live!(self, reply);
        match m.mkdir(parent.0, name, (mode & !umask & 0o7777) as u16, req.uid(), req.gid()) {
            Ok(ino) => self.entry(&mut m, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut m = live!(self, reply);
        match m.unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut m = live!(self, reply);
        match m.rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let mut m = live!(self, reply);
        match m.rename(parent.0, name, newparent.0, newname, noreplace) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut m = live!(self, reply);
        let result = match m.attr(ino.0) {
            Ok(a) if a.kind == Kind::Dir => Err(model::Error::IsDir),
            Ok(_) if flags.0 & libc::O_TRUNC != 0 => m.truncate(ino.0, 0),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => reply.opened(self.fh(), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = live!(self, reply);
        let ino = match m.lookup(parent.0, name) {
            // The name appeared since the kernel looked: open it, as open(2) would.
            Ok(_) if flags & libc::O_EXCL != 0 => Err(model::Error::Exists),
            Ok(ino) => {
                if flags & libc::O_TRUNC != 0 {
                    m.truncate(ino, 0).map(|()| ino)
                } else {
                    Ok(ino)
                }
            }
            Err(_) => m.create(parent.0, name, (mode & !umask & 0o7777) as u16, req.uid(), req.gid()),
        };
        match ino.and_then(|ino| m.attr(ino)) {
            Ok(a) => {
                m.remember(a.ino);
                reply.created(&TTL, &file_attr(&a), Generation(0), self.fh(), FopenFlags::FOPEN_DIRECT_IO);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let m = live!(self, reply);
        match m.read(ino.0, offset, size as usize) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let append = flags.0 & libc::O_APPEND != 0;
        let mut m = live!(self, reply);
        match m.write(ino.0, offset, data, append) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok(); // close(2) makes nothing durable
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        match self.shared.fsync(ino.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let m = live!(self, reply);
        match m.attr(ino.0) {
            Ok(a) if a.kind == Kind::Dir => reply.opened(self.fh(), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let m = live!(self, reply);
        let (entries, parent) = match (m.entries(ino.0), m.lookup(ino.0, OsStr::new(".."))) {
            (Ok(e), Ok(p)) => (e, p),
            (Err(e), _) | (_, Err(e)) => return reply.error(errno(e)),
        };
        drop(m);
        let all = [(ino.0, Kind::Dir, ".".into()), (parent, Kind::Dir, "..".into())].into_iter().chain(entries);
        // An entry's offset is the position of the next one, as the kernel expects.
        for (i, (ino, kind, name)) in all.enumerate().skip(usize::try_from(offset).unwrap_or(usize::MAX)) {
            let kind = if kind == Kind::Dir { FileType::Directory } else { FileType::RegularFile };
            if reply.add(INodeNo(ino), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.shared.fsync(ino.0, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough for any test: 64 GiB in 4 KiB blocks.
        let blocks = 16 * 1024 * 1024;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}
