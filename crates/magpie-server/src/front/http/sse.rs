//! Pub/Sub as Server-Sent Events: `GET /v1/subscribe/{channel}` and
//! `GET /v1/psubscribe/{pattern}` subscribe a session through the dispatcher (SUBSCRIBE,
//! PSUBSCRIBE: the same ACL channel checks as RESP) and stream what arrives in its mailbox,
//! as `front/resp.rs` writes it to a RESP subscriber. Events:
//!
//! - `subscribe` / `psubscribe`: `{"channel": ..., "count": n}` once subscribed;
//! - `message`: `{"channel": ..., "message": ...}`;
//! - `pmessage`: `{"pattern": ..., "channel": ..., "message": ...}`.
//!
//! Strings that are not UTF-8 take JSON's lossless form (`{"$base64": ...}`). The stream ends
//! when the client goes away (the session then unsubscribes), when the subscriber goes over
//! `client-output-buffer-limit pubsub`, or at shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use magpie_protocol::{ArgVec, Frame, FrameDecoder, FrameLimits, Reply, Resp};

use super::Http;
use super::api::{path_tail, reply_error};
use super::codec::{self, Format, Val};
use super::guard::{Caller, answer_format, error};
use super::session::HttpSession;
use crate::services::stats;

pub(super) async fn subscribe(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    start(http, caller, path_tail(&uri, "/v1/subscribe/"), "SUBSCRIBE", &headers).await
}

pub(super) async fn psubscribe(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    start(http, caller, path_tail(&uri, "/v1/psubscribe/"), "PSUBSCRIBE", &headers).await
}

/// A subscriber's stream: its session, the events decoded and not yet sent.
struct Subscriber {
    http: Arc<Http>,
    session: HttpSession,
    events: VecDeque<Event>,
    out: Reply,
    stop: tokio::sync::watch::Receiver<bool>,
}

async fn start(http: Arc<Http>, caller: Caller, name: Vec<u8>, command: &str, headers: &HeaderMap) -> Response {
    let format = answer_format(headers, None);
    if name.is_empty() {
        return error(format, StatusCode::BAD_REQUEST, "a channel name is required");
    }
    let mut session = HttpSession::new(&http.server, &caller);
    let frame = session.run(&ArgVec::from_slices([command.as_bytes(), &name])).await;
    let first = match frame {
        Frame::Error(e) => return reply_error(format, &e),
        Frame::Push(items) | Frame::Array(items) => event_of(items),
        other => Some(Event::default().event("reply").data(json(&Val::from_frame(other)))),
    };
    let stop = http.server.shutdown_signal();
    let sub = Subscriber { http, session, events: first.into_iter().collect(), out: Reply::new(Resp::V3), stop };
    let events = stream::unfold(sub, |mut sub| async move {
        let event = next_event(&mut sub).await?;
        Some((Ok::<_, Infallible>(event), sub))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// The next event to send; `None` ends the stream.
async fn next_event(sub: &mut Subscriber) -> Option<Event> {
    loop {
        if let Some(e) = sub.events.pop_front() {
            return Some(e);
        }
        let info = sub.session.session.info().clone();
        let mailbox = &info.pubsub.mailbox;
        if mailbox.overflowed() || !info.pubsub.active() {
            return None;
        }
        let size = mailbox.take_into(&mut sub.out);
        if sub.out.is_empty() {
            tokio::select! {
                () = mailbox.notify.notified() => {}
                () = super::stopped(&mut sub.stop) => return None,
            }
            continue;
        }
        stats::local().wrote(sub.out.len());
        decode_all(sub.out.as_bytes(), &mut sub.events);
        sub.out.clear();
        mailbox.release(size, &sub.http.server.pubsub().limits);
    }
}

/// Every message in `bytes` (RESP3 pushes, as the mailbox holds them), as events.
fn decode_all(mut bytes: &[u8], events: &mut VecDeque<Event>) {
    let mut decoder = FrameDecoder::new(FrameLimits { max_bulk_len: usize::MAX, ..FrameLimits::default() });
    while !bytes.is_empty() {
        match decoder.decode(bytes) {
            Ok((used, Some(Frame::Push(items) | Frame::Array(items)))) => {
                events.extend(event_of(items));
                bytes = &bytes[used..];
            }
            Ok((used, Some(_))) => bytes = &bytes[used..],
            Ok((_, None)) | Err(_) => break,
        }
    }
}

/// The event of one pushed message (or subscription confirmation).
fn event_of(items: Vec<Frame>) -> Option<Event> {
    let mut items = items.into_iter().map(Val::from_frame);
    let kind = match items.next()? {
        Val::Bytes(k) => String::from_utf8_lossy(&k).into_owned(),
        _ => return None,
    };
    let rest: Vec<Val> = items.collect();
    let data = match (kind.as_str(), &rest[..]) {
        ("message" | "smessage", [channel, message]) => {
            Val::map([("channel", channel.clone()), ("message", message.clone())])
        }
        ("pmessage", [pattern, channel, message]) => {
            Val::map([("pattern", pattern.clone()), ("channel", channel.clone()), ("message", message.clone())])
        }
        ("subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe", [channel, count]) => {
            Val::map([("channel", channel.clone()), ("count", count.clone())])
        }
        _ => Val::Array(rest),
    };
    Some(Event::default().event(kind).data(json(&data)))
}

fn json(v: &Val) -> String {
    String::from_utf8_lossy(&codec::encode(Format::Json, v)).into_owned()
}
