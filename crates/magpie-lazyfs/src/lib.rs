//! magpie-lazyfs: a FUSE filesystem for power-loss tests, in the spirit of Jepsen's LazyFS.
//!
//! It serves the files of a backing directory, but what programs write stays in memory until
//! they make it durable: `fsync`/`fdatasync` of a file for its bytes, `fsync` of a directory
//! for its entries (creates, renames, unlinks, mkdirs). On command it loses power: every
//! write and every directory change not made durable is dropped, as if the machine had lost
//! power, and programs started afterwards see only what survived. It also counts the fsyncs
//! programs asked for, so a test can check group commit (fsyncs per acknowledged write).
//! [`model`] states the exact rules.
//!
//! Control it in-process through a [`Mount`] (tests), or from outside through the unix
//! socket of the `magpie-lazyfs` binary: one command per line, one line back.
//!
//! | command | effect | answer |
//! |---|---|---|
//! | `power-loss` | drop every unsynced write and directory change; fail every request with EIO from now on | `ok files=F bytes=B entries=E` (what was dropped) |
//! | `power-on` | serve requests again (kill the programs that were using the mount first) | `ok` |
//! | `stats` | | `ok fsyncs=N fdatasyncs=N dir_fsyncs=N writes=N bytes_written=N power_losses=N unsynced_files=F unsynced_bytes=B unsynced_entries=E` |
//! | `reset-stats` | zero the counters | `ok` |
//! | `sync` | make everything durable, as sync(2) | `ok` |
//! | `unmount` | unmount (the binary then exits) | `ok` |
//!
//! Mounting needs root (or fusermount3) and /dev/fuse.

pub mod model;

mod fs;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, SessionUnmounter};

pub use model::{Dropped, Stats};

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How long each fsync takes, as a real disk's flush would (default: none). It makes
    /// durable what the file held when it began, once the delay has passed; a power loss
    /// during the delay makes nothing durable. Other requests go on meanwhile.
    pub fsync_delay: Duration,
}

/// A handle on a mounted filesystem's state, to simulate faults and read counters.
#[derive(Clone)]
pub struct Control {
    shared: Arc<fs::Shared>,
}

impl Control {
    /// Drops every write and directory change not made durable, and returns what was
    /// dropped. An fsync in flight does not complete, and until [`Control::power_on`] every
    /// request fails with EIO: kill the programs using the mount, then power on.
    pub fn power_loss(&self) -> Dropped {
        self.shared.lock().power_loss()
    }

    /// Serves requests again after a power loss (the machine rebooted).
    pub fn power_on(&self) {
        self.shared.lock().power_on();
    }

    /// Counters since the mount (or the last reset).
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats
    }

    pub fn reset_stats(&self) {
        self.shared.lock().stats = Stats::default();
    }

    /// What a power loss would drop now.
    pub fn unsynced(&self) -> Dropped {
        self.shared.lock().unsynced()
    }

    /// Makes everything durable (sync(2)); not counted as fsyncs.
    pub fn sync(&self) -> io::Result<()> {
        self.shared.sync_all().map_err(|e| io::Error::other(format!("{e:?}")))
    }

    /// Runs one command of the control protocol (see the crate's documentation).
    pub fn command(&self, line: &str) -> String {
        match line.trim() {
            "power-loss" => {
                let d = self.power_loss();
                format!("ok files={} bytes={} entries={}", d.files, d.bytes, d.entries)
            }
            "stats" => {
                let s = self.stats();
                let u = self.unsynced();
                format!(
                    "ok fsyncs={} fdatasyncs={} dir_fsyncs={} writes={} bytes_written={} power_losses={} \
                     unsynced_files={} unsynced_bytes={} unsynced_entries={}",
                    s.fsyncs,
                    s.fdatasyncs,
                    s.dir_fsyncs,
                    s.writes,
                    s.bytes_written,
                    s.power_losses,
                    u.files,
                    u.bytes,
                    u.entries
                )
            }
            "power-on" => {
                self.power_on();
                "ok".into()
            }
            "reset-stats" => {
                self.reset_stats();
                "ok".into()
            }
            "sync" => match self.sync() {
                Ok(()) => "ok".into(),
                Err(e) => format!("error {e}"),
            },
            other => {
                format!("error unknown command {other:?} (power-loss, power-on, stats, reset-stats, sync, unmount)")
            }
        }
    }
}

/// The filesystem mounted in this process (a background thread serves it). Dropping it
/// unmounts, after making everything durable as a clean unmount does.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    control: Control,
    mountpoint: PathBuf,
}

fn config(threads: usize) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![MountOption::FSName("magpie-lazyfs".into()), MountOption::Subtype("magpie-lazyfs".into())];
    c.n_threads = Some(threads);
    c
}

fn start(backing: &Path, options: &Options) -> io::Result<(fs::LazyFs, Control)> {
    let model = model::Model::load(backing)?;
    let shared = Arc::new(fs::Shared::new(model, options.fsync_delay));
    Ok((fs::LazyFs { shared: shared.clone() }, Control { shared }))
}

impl Mount {
    /// Mounts `backing` at `mountpoint` (both existing directories).
    pub fn new(backing: &Path, mountpoint: &Path, options: &Options) -> io::Result<Mount> {
        let (fs, control) = start(backing, options)?;
        let session = fuser::spawn_mount(fs, mountpoint, &config(2))?;
        Ok(Mount { session: Some(session), control, mountpoint: mountpoint.to_owned() })
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the serving thread.
    pub fn unmount(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Mounts in the foreground and serves until unmounted (`umount MOUNTPOINT`, or `unmount` on
/// the control socket), answering control commands on `socket` meanwhile.
pub fn serve(backing: &Path, mountpoint: &Path, socket: Option<&Path>, options: &Options) -> io::Result<()> {
    let (fs, control) = start(backing, options)?;
    let mut session = fuser::Session::new(fs, mountpoint, &config(2))?;
    if let Some(socket) = socket {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let unmounter = session.unmount_callable();
        std::thread::Builder::new().name("lazyfs-control".into()).spawn(move || {
            control_loop(listener, control, unmounter);
        })?;
    }
    session.run()
}

fn control_loop(listener: UnixListener, control: Control, unmounter: SessionUnmounter) {
    let unmounter = Arc::new(std::sync::Mutex::new(unmounter));
    for stream in listener.incoming().flatten() {
        let (control, unmounter) = (control.clone(), unmounter.clone());
        // One thread per client: a client that never reads must not block the others.
        let _ = std::thread::Builder::new().name("lazyfs-client".into()).spawn(move || {
            let _ = serve_client(stream, &control, &unmounter);
        });
    }
}

fn serve_client(
    stream: UnixStream,
    control: &Control,
    unmounter: &std::sync::Mutex<SessionUnmounter>,
) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let answer = if line.trim() == "unmount" {
            let mut u = unmounter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match u.unmount() {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("error {e}"),
            }
        } else {
            control.command(&line)
        };
        writeln!(out, "{answer}")?;
    }
    Ok(())
}

/// Sends one command to a control socket and returns the answer line.
pub fn send_command(socket: &Path, command: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(stream, "{command}")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer.trim_end().to_string())
}
