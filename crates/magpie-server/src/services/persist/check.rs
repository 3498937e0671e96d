//! `--check-aof PATH [--fix]` and `--check-snapshot PATH`: the repair tools named in the
//! errors a damaged file gives at start.

use std::path::{Path, PathBuf};

use magpie_persist::log::{Manifest, Tail};
use magpie_store::now_ms;

/// `--check-aof PATH [--fix]` and `--check-snapshot PATH`: prints what it finds; the exit code
/// is 0 for a sound file (or one repaired), 1 otherwise.
pub fn check_tool(aof: Option<&Path>, snapshot: Option<&Path>, fix: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    if let Some(path) = snapshot {
        return match magpie_persist::snapshot::check(path) {
            Ok((n, len)) => {
                println!("{}: OK, {n} keys, {len} bytes", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{e}");
                println!("a damaged snapshot cannot be repaired; restore an older copy or start from the log");
                ExitCode::from(1)
            }
        };
    }
    let Some(path) = aof else { return ExitCode::SUCCESS };
    // A manifest: check every file it names.
    if path.extension().is_some_and(|e| e == "manifest") {
        let m = match Manifest::read(path) {
            Ok(Some(m)) => m,
            Ok(None) => {
                println!("{}: no such file", path.display());
                return ExitCode::from(1);
            }
            Err(e) => {
                println!("{e}");
                return ExitCode::from(1);
            }
        };
        let dir = magpie_persist::snapshot::parent_dir(path);
        let mut code = ExitCode::SUCCESS;
        if let Some(b) = &m.base
            && check_tool(None, Some(&dir.join(b)), false) != ExitCode::SUCCESS
        {
            code = ExitCode::from(1);
        }
        for i in &m.incrs {
            if check_tool(Some(&dir.join(i)), None, fix) != ExitCode::SUCCESS {
                code = ExitCode::from(1);
            }
        }
        return code;
    }
    match magpie_persist::log::check(path) {
        Ok((n, Tail::Clean)) => {
            println!("{}: OK, {n} records", path.display());
            ExitCode::SUCCESS
        }
        Ok((n, Tail::Zeros { zeros, .. })) => {
            println!("{}: OK, {n} records, then {zeros} bytes preallocated (zeros)", path.display());
            ExitCode::SUCCESS
        }
        Ok((n, Tail::Torn { offset, dropped, reason })) => {
            println!(
                "{}: {n} good records, then a torn tail at offset {offset} ({reason}): {dropped} bytes",
                path.display()
            );
            repair(path, offset, fix)
        }
        Err(e) => {
            println!("{e}");
            match magpie_persist::log::last_good_offset(path) {
                Ok(offset) => repair(path, offset, fix),
                Err(e) => {
                    println!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn repair(path: &Path, offset: u64, fix: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    if !fix {
        println!(
            "run with --fix to cut the file at offset {offset}, dropping {} bytes (a backup is kept)",
            len - offset
        );
        return ExitCode::from(1);
    }
    let mut backup = path.as_os_str().to_owned();
    backup.push(format!(".bak-{}", now_ms() / 1000));
    let backup = PathBuf::from(backup);
    let result = std::fs::copy(path, &backup).and_then(|_| {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(offset)?;
        f.sync_all()
    });
    match result {
        Ok(()) => {
            println!(
                "repaired: cut at offset {offset} ({} bytes dropped); the original is kept as {}",
                len - offset,
                backup.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("repair failed: {e}");
            ExitCode::from(1)
        }
    }
}
