//! `subscribe`, `psubscribe` and `publish`: listening to channels and posting to them; and
//! `monitor`, listening to every command.

use magpie_client::Frame;
use serde_json::json;

use crate::format::{self, bytes_json, quoted};
use crate::{Exit, Failure, Mode, Out, Session, note};

type Result<T> = std::result::Result<T, Failure>;

/// SUBSCRIBE or PSUBSCRIBE, then prints each message as it arrives until Ctrl-C, a closed
/// pipe, or `count` messages.
pub(crate) async fn subscribe(
    session: &mut Session,
    out: &mut Out,
    command: &str,
    names: Vec<Vec<u8>>,
    count: Option<u64>,
) -> Result<Exit> {
    let client = session.client().await?;
    let mut cmd = vec![command.as_bytes().to_vec()];
    cmd.extend(names.iter().cloned());
    // One confirmation per name; the first is the command's reply.
    let mut reply = client.cmd(&cmd).await?;
    for i in 0..names.len() {
        if i > 0 {
            reply = client.read_frame().await?;
        }
        match &reply {
            Frame::Array(parts) | Frame::Push(parts) if parts.len() == 3 => {}
            _ => return Err(Failure::unexpected(reply, command)),
        }
    }
    let listed: Vec<String> = names.iter().map(|n| format::key(n)).collect();
    if out.mode == Mode::Human {
        note(&format!("listening on {} (Ctrl-C to stop)", listed.join(", ")));
    }
    // Listened to from here on, so that a Ctrl-C while a message is printed is not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut seen = 0;
    while count.is_none_or(|n| seen < n) {
        let frame = tokio::select! {
            frame = client.read_frame() => frame?,
            _ = &mut ctrl_c => break,
        };
        let parts = match &frame {
            Frame::Array(parts) | Frame::Push(parts) => parts,
            _ => return Err(Failure::unexpected(frame, command)),
        };
        let bytes: Vec<&[u8]> = parts.iter().filter_map(Frame::as_bytes).collect();
        let (pattern, channel, message) = match bytes.as_slice() {
            [b"message", channel, message] => (None, *channel, *message),
            [b"pmessage", pattern, channel, message] => (Some(*pattern), *channel, *message),
            _ => continue, // anything else a server might push
        };
        print_message(out, pattern, channel, message)?;
        // Each message as it arrives: a closed pipe shows at once, and ends the run quietly.
        out.flush()?;
        seen += 1;
    }
    Ok(Exit::Ok)
}

fn print_message(out: &mut Out, pattern: Option<&[u8]>, channel: &[u8], message: &[u8]) -> std::io::Result<()> {
    match out.mode {
        Mode::Raw => {
            out.write(message)?;
            out.write(b"\n")
        }
        Mode::Json => {
            let mut obj = json!({ "channel": bytes_json(channel), "message": bytes_json(message) });
            if let Some(p) = pattern {
                obj["pattern"] = bytes_json(p);
            }
            out.json(&obj)
        }
        Mode::Human => {
            let shown = if format::is_printable(message) && !message.contains(&b'\n') {
                String::from_utf8_lossy(message).into_owned()
            } else {
                quoted(message)
            };
            match pattern {
                Some(p) => out.line(&format!("{} ({}): {shown}", format::key(channel), format::key(p))),
                None => out.line(&format!("{}: {shown}", format::key(channel))),
            }
        }
    }
}

/// PUBLISH channel message: prints how many subscribers received it.
pub(crate) async fn publish(session: &mut Session, out: &mut Out, channel: Vec<u8>, message: Vec<u8>) -> Result<Exit> {
    let reply = session.client().await?.cmd(&[b"PUBLISH".as_slice(), &channel, &message]).await?;
    let n = match reply {
        Frame::Integer(n) => n,
        other => return Err(Failure::unexpected(other, "PUBLISH")),
    };
    match out.mode {
        Mode::Json => out.json(&json!({ "channel": bytes_json(&channel), "receivers": n }))?,
        Mode::Raw => out.line(&n.to_string())?,
        Mode::Human => match n {
            1 => out.line("delivered to 1 subscriber")?,
            0 => out.line(&format!("delivered to 0 subscribers (nobody listens on {})", format::key(&channel)))?,
            n => out.line(&format!("delivered to {n} subscribers"))?,
        },
    }
    Ok(Exit::Ok)
}

/// MONITOR, then prints each command's line as it arrives until Ctrl-C, a closed pipe, or
/// `count` lines.
pub(crate) async fn monitor(session: &mut Session, out: &mut Out, count: Option<u64>) -> Result<Exit> {
    let client = session.client().await?;
    let reply = client.cmd(&[b"MONITOR".to_vec()]).await?;
    if !matches!(&reply, Frame::Simple(ok) if ok == b"OK") {
        return Err(Failure::unexpected(reply, "MONITOR"));
    }
    if out.mode == Mode::Human {
        note("watching every command (Ctrl-C to stop)");
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut seen = 0;
    while count.is_none_or(|n| seen < n) {
        let frame = tokio::select! {
            frame = client.read_frame() => frame?,
            _ = &mut ctrl_c => break,
        };
        let Frame::Simple(line) = &frame else {
            return Err(Failure::unexpected(frame, "MONITOR"));
        };
        match out.mode {
            Mode::Json => match parse_monitor_line(line) {
                Some(m) => out.json(&json!({
                    "time": m.time,
                    "db": m.db,
                    "client": m.client,
                    "args": m.args.iter().map(|a| bytes_json(a)).collect::<Vec<_>>(),
                }))?,
                None => out.json(&json!({ "line": bytes_json(line) }))?,
            },
            _ => {
                out.write(line)?;
                out.write(b"\n")?;
            }
        }
        out.flush()?;
        seen += 1;
    }
    Ok(Exit::Ok)
}

/// One MONITOR line, taken apart.
#[derive(Debug, PartialEq)]
struct MonitorLine {
    time: f64,
    db: u64,
    client: String,
    args: Vec<Vec<u8>>,
}

/// `1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`: the time, the database, the client
/// and the arguments (unquoted from Redis's `sdscatrepr`).
fn parse_monitor_line(line: &[u8]) -> Option<MonitorLine> {
    let open = line.iter().position(|&c| c == b'[')?;
    let close = open + line[open..].iter().position(|&c| c == b']')?;
    let time: f64 = std::str::from_utf8(&line[..open]).ok()?.trim().parse().ok()?;
    let inside = std::str::from_utf8(&line[open + 1..close]).ok()?;
    let (db, client) = inside.split_once(' ')?;
    let mut args = Vec::new();
    let mut rest = &line[close + 1..];
    loop {
        while rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
        if rest.is_empty() {
            break;
        }
        if rest[0] != b'"' {
            return None;
        }
        let mut arg = Vec::new();
        let mut i = 1;
        loop {
            match *rest.get(i)? {
                b'"' => break,
                b'\\' => {
                    let c = *rest.get(i + 1)?;
                    i += 2;
                    match c {
                        b'n' => arg.push(b'\n'),
                        b'r' => arg.push(b'\r'),
                        b't' => arg.push(b'\t'),
                        b'a' => arg.push(7),
                        b'b' => arg.push(8),
                        b'x' => {
                            let hex = std::str::from_utf8(rest.get(i..i + 2)?).ok()?;
                            arg.push(u8::from_str_radix(hex, 16).ok()?);
                            i += 2;
                        }
                        other => arg.push(other),
                    }
                }
                c => {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(arg);
        rest = &rest[i + 1..];
    }
    Some(MonitorLine { time, db: db.parse().ok()?, client: client.to_owned(), args })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_come_apart() {
        let line = br#"1339518083.107412 [3 127.0.0.1:60866] "set" "a b" "x\"\n\xff\\""#;
        let m = parse_monitor_line(line).expect("parsed");
        assert_eq!(m.db, 3);
        assert_eq!(m.client, "127.0.0.1:60866");
        assert!((m.time - 1_339_518_083.107_412).abs() < 1e-6);
        assert_eq!(m.args, [b"set".to_vec(), b"a b".to_vec(), b"x\"\n\xff\\".to_vec()]);
        let lua = parse_monitor_line(br#"1.5 [0 lua] "get" "k""#).expect("lua");
        assert_eq!(lua.client, "lua");
        assert!(parse_monitor_line(b"garbage").is_none());
        assert!(parse_monitor_line(br#"1.0 [0 x] "unterminated"#).is_none());
    }
}
