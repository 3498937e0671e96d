//! The `magpie-lazyfs` binary mounted for real, driven through the kernel with ordinary file
//! calls and controlled through its socket: what a program sees, and what survives a power
//! loss. Needs root and /dev/fuse, so `#[ignore]`d; `.ci/run` runs it:
//! `cargo test -p magpie-lazyfs -- --ignored`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use magpie_lazyfs::send_command;

struct Mounted {
    child: Option<Child>,
    root: PathBuf,
    mnt: PathBuf,
    backing: PathBuf,
    socket: PathBuf,
}

impl Mounted {
    fn new(name: &str, extra: &[&str]) -> Mounted {
        let root = std::env::temp_dir().join(format!("magpie-lazyfs-mount-{name}-{}", std::process::id()));
        let (backing, mnt, socket) = (root.join("backing"), root.join("mnt"), root.join("control.sock"));
        let _ = Command::new("umount").arg("-l").arg(&mnt).stderr(Stdio::null()).status();
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&backing).expect("create the backing directory");
        fs::create_dir_all(&mnt).expect("create the mount point");
        let child = Command::new(env!("CARGO_BIN_EXE_magpie-lazyfs"))
            .arg(&backing)
            .arg(&mnt)
            .arg("--control")
            .arg(&socket)
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("start magpie-lazyfs");
        let m = Mounted { child: Some(child), root, mnt, backing, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !m.mounted() || send_command(&m.socket, "stats").is_err() {
            assert!(Instant::now() < deadline, "magpie-lazyfs did not mount (root and /dev/fuse needed)");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn mounted(&self) -> bool {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mnt = self.mnt.to_string_lossy();
        mounts.lines().any(|l| l.split(' ').nth(1) == Some(&*mnt))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn command(&self, cmd: &str) -> String {
        let answer = send_command(&self.socket, cmd).expect("control socket");
        assert!(answer.starts_with("ok"), "{cmd}: {answer}");
        answer
    }

    /// A power loss with nothing running, and the power back.
    fn crash(&self) -> String {
        let dropped = self.command("power-loss");
        self.command("power-on");
        dropped
    }

    fn stat(&self, key: &str) -> u64 {
        let stats = self.command("stats");
        stats
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = send_command(&self.socket, "unmount");
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).stderr(Stdio::null()).status();
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn fsync_dir(path: &Path) {
    File::open(path).and_then(|d| d.sync_all()).expect("fsync a directory");
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it with --ignored"]
fn what_a_program_does_and_what_survives_a_power_loss() {
    let m = Mounted::new("ops", &[]);
    // mkdir, create, write, append, pwrite, truncate, readdir.
    fs::create_dir(m.path("appendonlydir")).unwrap();
    fsync_dir(&m.mnt);
    let log = m.path("appendonlydir/log.1");
    let mut f = OpenOptions::new().create_new(true).write(true).open(&log).unwrap();
    f.write_all(b"header|").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&m.path("appendonlydir"));
    let mut a = OpenOptions::new().append(true).open(&log).unwrap();
    a.write_all(b"rec1|").unwrap();
    a.sync_data().unwrap();
    a.write_all(b"rec2|").unwrap(); // never synced
    assert_eq!(fs::read(&log).unwrap(), b"header|rec1|rec2|");
    let p = OpenOptions::new().write(true).open(&log).unwrap();
    p.write_all_at(b"HEADER", 0).unwrap(); // pwrite, never synced
    assert_eq!(fs::read(&log).unwrap(), b"HEADER|rec1|rec2|");
    let names: Vec<String> =
        fs::read_dir(m.path("appendonlydir")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["log.1"]);

    // Atomic replacement: write a temporary file, fsync it, rename it over, fsync the dir.
    fs::write(m.path("manifest"), b"v1").unwrap();
    File::open(m.path("manifest")).unwrap().sync_all().unwrap();
    fsync_dir(&m.mnt);
    fs::write(m.path("manifest.tmp"), b"v2").unwrap();
    File::open(m.path("manifest.tmp")).unwrap().sync_all().unwrap();
    fs::rename(m.path("manifest.tmp"), m.path("manifest")).unwrap();
    // Not yet durable: the directory was not fsynced after the rename.
    fs::write(m.path("scratch"), b"never synced").unwrap();
    assert!(m.stat("unsynced_entries") >= 2);

    let dropped = m.crash();
    // The log's last bytes and scratch's; manifest's new name and scratch's.
    assert!(dropped.contains("files=2") && dropped.contains("entries=2"), "{dropped}");
    assert_eq!(fs::read(&log).unwrap(), b"header|rec1|");
    assert_eq!(fs::read(m.path("manifest")).unwrap(), b"v1");
    assert!(!m.path("manifest.tmp").exists());
    assert!(!m.path("scratch").exists());
    // The backing directory holds what survived, as files.
    assert_eq!(fs::read(m.backing.join("appendonlydir/log.1")).unwrap(), b"header|rec1|");

    // After the directory's fsync the rename is durable; truncation is durable after fsync.
    fs::write(m.path("manifest.tmp"), b"v3").unwrap();
    File::open(m.path("manifest.tmp")).unwrap().sync_all().unwrap();
    fs::rename(m.path("manifest.tmp"), m.path("manifest")).unwrap();
    fsync_dir(&m.mnt);
    let t = OpenOptions::new().write(true).open(&log).unwrap();
    t.set_len(7).unwrap();
    t.sync_all().unwrap();
    let mut r = File::open(&log).unwrap();
    r.seek(SeekFrom::Start(3)).unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "der|");
    m.crash();
    assert_eq!(fs::read(m.path("manifest")).unwrap(), b"v3");
    assert_eq!(fs::read(&log).unwrap(), b"header|");

    // unlink and rmdir, durable once the directory is fsynced.
    fs::remove_file(&log).unwrap();
    fs::remove_dir(m.path("appendonlydir")).unwrap();
    m.crash();
    assert!(log.exists(), "an unlink not fsynced survived the power loss");
    fs::remove_file(&log).unwrap();
    fs::remove_dir(m.path("appendonlydir")).unwrap();
    fsync_dir(&m.mnt);
    m.crash();
    assert!(!m.path("appendonlydir").exists());
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it with --ignored"]
fn counters_and_the_powered_off_state() {
    let m = Mounted::new("counters", &["--fsync-delay-ms", "1"]);
    let mut f = File::create(m.path("f")).unwrap();
    for i in 0..10 {
        f.write_all(format!("{i}").as_bytes()).unwrap();
        if i % 2 == 0 {
            f.sync_data().unwrap();
        } else {
            f.sync_all().unwrap();
        }
    }
    fsync_dir(&m.mnt);
    assert_eq!((m.stat("fdatasyncs"), m.stat("fsyncs"), m.stat("dir_fsyncs")), (5, 5, 1));
    assert_eq!(m.stat("writes"), 10);
    m.command("reset-stats");
    assert_eq!(m.stat("fsyncs"), 0);

    // While the power is off, every call fails; afterwards the synced bytes are there.
    f.write_all(b"lost").unwrap();
    m.command("power-loss");
    assert!(f.write_all(b"x").is_err() || f.sync_all().is_err(), "the filesystem served while powered off");
    assert!(fs::read(m.path("f")).is_err());
    m.command("power-on");
    assert_eq!(fs::read(m.path("f")).unwrap(), b"0123456789");
    assert!(m.command("stats").contains("power_losses=1"));

    // `sync` makes everything durable; a clean unmount too.
    fs::write(m.path("g"), b"synced by the command").unwrap();
    m.command("sync");
    m.crash();
    assert_eq!(fs::read(m.path("g")).unwrap(), b"synced by the command");
    assert!(send_command(&m.socket, "bogus").unwrap().starts_with("error"));
}
