//! `magpie-lazyfs BACKING MOUNTPOINT --control SOCKET`: serves BACKING at MOUNTPOINT, keeping
//! unsynced writes in memory, until unmounted. See the library's documentation for the
//! control commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// A FUSE filesystem that keeps writes in memory until they are fsynced, and drops them on a
/// simulated power loss.
#[derive(Parser)]
#[command(
    version,
    after_help = "Control commands, one per line on the socket (e.g. `echo power-loss | socat - UNIX:SOCKET`):\n  \
                  power-loss   drop every write and directory change not fsynced; then every request fails\n  \
                               with EIO (the machine is down) until power-on\n  \
                  power-on     serve requests again\n  \
                  stats        fsync counters, and what a power loss would drop now\n  \
                  reset-stats  zero the counters\n  \
                  sync         make everything durable (sync(2))\n  \
                  unmount      unmount and exit (as `umount MOUNTPOINT` does)\n\n\
                  Needs root (or fusermount3) and /dev/fuse. A clean unmount makes everything durable first;\n\
                  killing the process instead leaves BACKING as a power loss would."
)]
struct Args {
    /// Directory whose files are served (and that holds what is durable).
    backing: PathBuf,
    /// Where to mount.
    mountpoint: PathBuf,
    /// Unix socket for control commands.
    #[arg(long)]
    control: Option<PathBuf>,
    /// Milliseconds each fsync takes, as a disk's flush would.
    #[arg(long, default_value_t = 0.0)]
    fsync_delay_ms: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options =
        magpie_lazyfs::Options { fsync_delay: Duration::from_secs_f64(args.fsync_delay_ms.max(0.0) / 1000.0) };
    eprintln!(
        "magpie-lazyfs: serving {} at {}{}",
        args.backing.display(),
        args.mountpoint.display(),
        args.control.as_ref().map(|c| format!(", control socket {}", c.display())).unwrap_or_default()
    );
    match magpie_lazyfs::serve(&args.backing, &args.mountpoint, args.control.as_deref(), &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("magpie-lazyfs: {e}");
            ExitCode::from(2)
        }
    }
}
