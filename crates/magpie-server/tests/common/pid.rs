//! Which process answers on a port: shared by the test harnesses of magpie-server and
//! magpie-cli (included with `#[path]`), which start servers on ports found free, and must
//! tell their own server from another process that took the port first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The `process_id` of the server answering on `port` (from `INFO server`).
pub(super) fn process_id_on(port: u16) -> Option<u32> {
    process_id_on_as(port, None)
}

/// [`process_id_on`] for a server that wants the default user's `password` first.
pub(super) fn process_id_on_as(port: u16, password: Option<&str>) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    if let Some(p) = password {
        stream.write_all(format!("AUTH {p}\r\n").as_bytes()).ok()?;
    }
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    if password.is_some() {
        reader.read_line(&mut header).ok()?;
        header.clear();
    }
    reader.read_line(&mut header).ok()?;
    let len: usize = header.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|v| v.trim().parse().ok())
}
