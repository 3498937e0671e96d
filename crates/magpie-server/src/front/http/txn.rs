//! Interactive transactions over HTTP: `POST /v1/txn` opens one (BEGIN, through the
//! dispatcher, in a session the service keeps), `POST /v1/txn/{id}/command` runs a command
//! in it, `/commit` and `/rollback` end it (COMMIT and ROLLBACK). The session lives in a
//! registry between requests; one left idle for `txn-timeout` seconds is rolled back and
//! forgotten, and so is one whose caller never comes back. Ids are random (128 bits), and a
//! transaction answers only to the user that opened it: anyone else gets 404, as for an id
//! that does not exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use parking_lot::Mutex;

use magpie_protocol::{ArgVec, Frame};

use super::Http;
use super::api::{command_answer, command_args, read_value};
use super::codec::Val;
use super::guard::{Caller, answer, answer_format, error};
use super::session::HttpSession;
use crate::model::Mode;
use crate::services::Server;

/// One open transaction.
struct Txn {
    session: HttpSession,
    /// The user that opened it (`None`: the default user without credentials).
    owner: Option<Vec<u8>>,
    last_used: Instant,
}

/// The open transactions, by id.
#[derive(Default)]
pub(super) struct Registry {
    open: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Txn>>>>,
}

/// Open transactions at most (each holds a private copy of what it touched).
const MAX_OPEN: usize = 10_000;

impl Registry {
    /// Forgets the transactions idle for longer than `txn-timeout` (their sessions end, which
    /// rolls them back). A transaction in use right now is not idle.
    pub(super) fn sweep(&self, server: &Server) {
        let idle = Duration::from_secs(server.settings().txn_timeout());
        let expired: Vec<_> = {
            let mut open = self.open.lock();
            let ids: Vec<String> = open
                .iter()
                .filter(|(_, t)| t.try_lock().is_ok_and(|t| t.last_used.elapsed() > idle))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| open.remove(id)).collect()
        };
        drop(expired); // outside the registry's lock: ending a session touches the keyspace
    }

    /// Forgets every transaction (shutdown).
    pub(super) fn clear(&self) {
        let all = std::mem::take(&mut *self.open.lock());
        drop(all);
    }

    fn get(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Txn>>> {
        self.open.lock().get(id).cloned()
    }

    fn remove(&self, id: &str) {
        let gone = self.open.lock().remove(id);
        drop(gone);
    }
}

fn owner_of(caller: &Caller) -> Option<Vec<u8>> {
    caller.user.as_ref().map(|(_, name)| name.clone())
}

/// `POST /v1/txn`: BEGIN in a new session kept by the service; answers its id.
pub(super) async fn begin(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let format = answer_format(&headers, None);
    if http.txns.open.lock().len() >= MAX_OPEN {
        return error(format, StatusCode::SERVICE_UNAVAILABLE, "too many open transactions");
    }
    let mut session = HttpSession::new(&http.server, &caller);
    // Its commands never wait: a transaction is not left hanging by a blocking command.
    session.session.wait.mode = Mode::NoBlock;
    match session.run(&ArgVec::from_slices(["BEGIN"])).await {
        Frame::Simple(_) => {}
        Frame::Error(e) => return super::api::reply_error(format, &e),
        other => return answer(format, StatusCode::OK, &Val::from_frame(other)),
    }
    let id = match crate::services::acl::random_hex(32) {
        Ok(id) => id,
        Err(e) => return error(format, StatusCode::INTERNAL_SERVER_ERROR, &format!("no random id: {e}")),
    };
    let txn = Txn { session, owner: owner_of(&caller), last_used: Instant::now() };
    http.txns.open.lock().insert(id.clone(), Arc::new(tokio::sync::Mutex::new(txn)));
    answer(format, StatusCode::OK, &Val::map([("id", Val::str(&id))]))
}

/// The transaction `id` if the caller may use it, locked (requests on one transaction run one
/// at a time).
async fn find(
    http: &Http,
    id: &str,
    caller: &Caller,
) -> Option<(Arc<tokio::sync::Mutex<Txn>>, tokio::sync::OwnedMutexGuard<Txn>)> {
    let txn = http.txns.get(id)?;
    let mut guard = txn.clone().lock_owned().await;
    let idle = Duration::from_secs(http.server.settings().txn_timeout());
    if guard.owner != owner_of(caller) {
        return None;
    }
    if guard.last_used.elapsed() > idle {
        drop(guard);
        http.txns.remove(id);
        return None;
    }
    guard.last_used = Instant::now();
    // Older than the age limit: rolled back now, so the command gets the reason (as RESP's
    // connection does when the deadline passes).
    let settings = http.server.settings();
    if guard.session.session.txn().deadline(settings).is_some_and(|at| Instant::now() >= at) {
        let ks = http.server.keyspace();
        guard.session.session.txn.expire(ks, settings);
    }
    Some((txn, guard))
}

/// The transaction id in the request's path (`/v1/txn/{id}/...`), percent-decoded. Read here
/// rather than with axum's `Path`, whose rejection of bytes that are not UTF-8 is a text/plain
/// answer instead of the API's error; such an id names no transaction (ids are hex).
fn txn_id(uri: &Uri) -> String {
    let raw = uri.path().strip_prefix("/v1/txn/").unwrap_or("");
    let raw = raw.split('/').next().unwrap_or("");
    percent_encoding::percent_decode(raw.as_bytes()).decode_utf8_lossy().into_owned()
}

fn unknown(headers: &HeaderMap) -> Response {
    error(answer_format(headers, None), StatusCode::NOT_FOUND, "no such transaction (unknown, ended or expired)")
}

/// `POST /v1/txn/{id}/command`: a command inside the transaction.
pub(super) async fn command(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = txn_id(&uri);
    let (v, format) = match read_value(&http, &headers, body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let args = match command_args(&v) {
        Ok(a) => a,
        Err(msg) => return error(format, StatusCode::BAD_REQUEST, &msg),
    };
    let Some((_txn, mut guard)) = find(&http, &id, &caller).await else { return unknown(&headers) };
    let frame = guard.session.run(&args).await;
    if guard.session.session.txn().interactive.is_none() {
        // Ended by the command itself (COMMIT or ROLLBACK sent as a command).
        drop(guard);
        http.txns.remove(&id);
    }
    answer(format, StatusCode::OK, &command_answer(&args, frame))
}

/// `POST /v1/txn/{id}/commit`: COMMIT; 409 on a conflict (nothing applied).
pub(super) async fn commit(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    end(&http, &caller, &txn_id(&uri), &headers, "COMMIT").await
}

/// `POST /v1/txn/{id}/rollback`: ROLLBACK.
pub(super) async fn rollback(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    end(&http, &caller, &txn_id(&uri), &headers, "ROLLBACK").await
}

async fn end(http: &Http, caller: &Caller, id: &str, headers: &HeaderMap, command: &str) -> Response {
    let format = answer_format(headers, None);
    let Some((_txn, mut guard)) = find(http, id, caller).await else { return unknown(headers) };
    let frame = guard.session.run(&ArgVec::from_slices([command])).await;
    drop(guard);
    http.txns.remove(id);
    match frame {
        // A conflict, or a transaction the server rolled back (too old, too big).
        Frame::Error(e) => error(format, StatusCode::CONFLICT, &String::from_utf8_lossy(&e)),
        _ => answer(format, StatusCode::OK, &Val::map([("status", Val::str("OK"))])),
    }
}
