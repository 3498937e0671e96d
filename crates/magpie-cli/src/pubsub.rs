//! `subscribe`, `psubscribe` and `publish`: listening to channels and posting to them.

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
