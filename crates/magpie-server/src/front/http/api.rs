//! The endpoints (documented for clients in `openapi.json`, served at `/v1/openapi.json`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use magpie_protocol::{ArgVec, Frame};

use super::codec::{self, Format, Val};
use super::guard::{Caller, answer, answer_format, error};
use super::session::HttpSession;
use super::{BODY_TIMEOUT, Http};

/// A request's trouble: the answer to give instead.
pub(super) type Refused = Response;

/// The path's tail after `prefix`, percent-decoded into bytes (any byte string can be a key).
pub(super) fn path_tail(uri: &Uri, prefix: &str) -> Vec<u8> {
    let raw = uri.path().strip_prefix(prefix).unwrap_or("");
    percent_encoding::percent_decode(raw.as_bytes()).collect()
}

/// The query's parameters, percent-decoded; only `allowed` names may appear, each once.
pub(super) fn query(uri: &Uri, allowed: &[&str], format: Format) -> Result<Vec<(String, String)>, Refused> {
    let mut params = Vec::new();
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |s: &str| percent_encoding::percent_decode(s.replace('+', " ").as_bytes()).decode_utf8_lossy().into_owned();
        let (name, value) = (decode(name), decode(value));
        if !allowed.contains(&name.as_str()) {
            return Err(error(format, StatusCode::BAD_REQUEST, &format!("unknown query parameter '{name}'")));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(error(format, StatusCode::BAD_REQUEST, &format!("query parameter '{name}' given twice")));
        }
        params.push((name, value));
    }
    Ok(params)
}

/// A yes/no query flag, as openapi.json's enum lists it: `1`, `true` or nothing (`?nx`) are
/// yes; `0`, `false` are no; anything else is refused.
fn flag(params: &[(String, String)], name: &str, format: Format) -> Result<bool, Refused> {
    match params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()) {
        None => Ok(false),
        Some("" | "1" | "true") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(v) => Err(error(format, StatusCode::BAD_REQUEST, &format!("'{name}' must be 1 or 0, not '{v}'"))),
    }
}

/// The database a request names with `?db=N` (default 0).
fn database(http: &Http, params: &[(String, String)], format: Format) -> Result<usize, Refused> {
    match params.iter().find(|(n, _)| n == "db") {
        None => Ok(0),
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|&db| db < http.server.keyspace().db_count())
            .ok_or_else(|| error(format, StatusCode::BAD_REQUEST, "ERR DB index is out of range")),
    }
}

/// The format of the request's body, from its Content-Type (JSON when it has none).
pub(super) fn body_format(headers: &HeaderMap) -> Result<Format, Refused> {
    match headers.get(header::CONTENT_TYPE) {
        None => Ok(Format::Json),
        Some(ct) => ct.to_str().ok().and_then(Format::of_media_type).ok_or_else(|| {
            error(
                answer_format(headers, None),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be sent as Content-Type: application/json or application/msgpack (curl: -H 'Content-Type: application/json')",
            )
        }),
    }
}

/// Reads the whole body, at most `proto-max-bulk-len` bytes, within [`BODY_TIMEOUT`].
pub(super) async fn read_body(http: &Http, body: Body, format: Format) -> Result<bytes::Bytes, Refused> {
    let limit = http.server.settings().proto_max_bulk_len();
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_big = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_big {
                Err(error(format, StatusCode::PAYLOAD_TOO_LARGE, "the body is over proto-max-bulk-len"))
            } else {
                Err(error(format, StatusCode::BAD_REQUEST, &format!("could not read the body: {e}")))
            }
        }
        Err(_) => Err(error(format, StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time")),
    }
}

/// Reads and decodes a JSON or MessagePack body; also the format to answer in.
pub(super) async fn read_value(http: &Http, headers: &HeaderMap, body: Body) -> Result<(Val, Format), Refused> {
    let format = body_format(headers)?;
    let answer_in = answer_format(headers, Some(format));
    let bytes = read_body(http, body, answer_in).await?;
    let v = codec::decode(format, &bytes).map_err(|e| error(answer_in, StatusCode::BAD_REQUEST, &e))?;
    Ok((v, answer_in))
}

/// The HTTP status for an error reply of a REST endpoint, from its code.
pub(super) fn status_of(message: &[u8]) -> StatusCode {
    let code = message.split(|&b| b == b' ').next().unwrap_or(b"");
    match code {
        b"NOAUTH" | b"WRONGPASS" => StatusCode::UNAUTHORIZED,
        b"NOPERM" => StatusCode::FORBIDDEN,
        b"WRONGTYPE" | b"CONFLICT" => StatusCode::CONFLICT,
        b"LOADING" | b"MISCONF" | b"BUSY" | b"MASTERDOWN" => StatusCode::SERVICE_UNAVAILABLE,
        b"OOM" => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// An error reply of a REST endpoint as an answer.
pub(super) fn reply_error(format: Format, message: &[u8]) -> Response {
    error(format, status_of(message), &String::from_utf8_lossy(message))
}

/// Runs one command in a fresh session for `caller`, in database `db`.
pub(super) async fn run_once(http: &Arc<Http>, caller: &Caller, db: usize, args: &ArgVec) -> Frame {
    let mut session = HttpSession::new(&http.server, caller);
    session.session.select(db);
    session.run(args).await
}

pub(super) async fn get_key(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let format = answer_format(&headers, None);
    let key = path_tail(&uri, "/v1/keys/");
    let result = async {
        let params = query(&uri, &["db"], format)?;
        let db = database(&http, &params, format)?;
        Ok::<_, Refused>(run_once(&http, &caller, db, &ArgVec::from_slices([&b"GET"[..], &key])).await)
    };
    match result.await {
        Err(resp) => resp,
        Ok(Frame::Bulk(value)) => {
            let mut resp = (StatusCode::OK, value).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            resp
        }
        Ok(Frame::Null) => error(format, StatusCode::NOT_FOUND, "no such key"),
        Ok(Frame::Error(e)) => reply_error(format, &e),
        Ok(other) => answer(format, StatusCode::OK, &Val::from_frame(other)),
    }
}

pub(super) async fn put_key(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = answer_format(&headers, None);
    let result = async {
        let params = query(&uri, &["db", "ex", "px", "nx", "xx"], format)?;
        let db = database(&http, &params, format)?;
        let (nx, xx) = (flag(&params, "nx", format)?, flag(&params, "xx", format)?);
        let value = read_body(&http, body, format).await?;
        let mut args = ArgVec::from_slices([&b"SET"[..], &path_tail(&uri, "/v1/keys/"), &value]);
        for (name, opt) in [("ex", "EX"), ("px", "PX")] {
            if let Some((_, v)) = params.iter().find(|(n, _)| n == name) {
                args.extend([opt.as_bytes(), v.as_bytes()]);
            }
        }
        if nx {
            args.push(b"NX");
        }
        if xx {
            args.push(b"XX");
        }
        Ok::<_, Refused>((run_once(&http, &caller, db, &args).await, nx))
    };
    match result.await {
        Err(resp) => resp,
        Ok((Frame::Null, true)) => error(format, StatusCode::CONFLICT, "the key exists (nx)"),
        Ok((Frame::Null, false)) => error(format, StatusCode::NOT_FOUND, "no such key (xx)"),
        Ok((Frame::Error(e), _)) => reply_error(format, &e),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
    }
}

pub(super) async fn delete_key(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let format = answer_format(&headers, None);
    let result = async {
        let params = query(&uri, &["db"], format)?;
        let db = database(&http, &params, format)?;
        let args = ArgVec::from_slices([&b"DEL"[..], &path_tail(&uri, "/v1/keys/")]);
        Ok::<_, Refused>(run_once(&http, &caller, db, &args).await)
    };
    deleted(format, result.await)
}

fn deleted(format: Format, result: Result<Frame, Refused>) -> Response {
    match result {
        Err(resp) => resp,
        Ok(Frame::Integer(n)) => answer(format, StatusCode::OK, &Val::map([("deleted", Val::Int(n))])),
        Ok(Frame::Error(e)) => reply_error(format, &e),
        Ok(other) => answer(format, StatusCode::OK, &Val::from_frame(other)),
    }
}

/// `{"keys": [...]}`: the keys, as arguments.
fn keys_of(v: &Val, format: Format) -> Result<Vec<Vec<u8>>, Refused> {
    let bad =
        || error(format, StatusCode::BAD_REQUEST, "the body must be {\"keys\": [\"key\", ...]} with at least one key");
    let Val::Map(pairs) = v else { return Err(bad()) };
    if pairs.len() != 1 {
        return Err(bad());
    }
    let Some(Val::Array(keys)) = v.get("keys") else { return Err(bad()) };
    if keys.is_empty() {
        return Err(bad());
    }
    keys.iter().map(|k| k.to_arg().ok_or_else(bad)).collect()
}

pub(super) async fn mset(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (v, format) = read_value(&http, &headers, body).await?;
        let params = query(&uri, &["db", "nx"], format)?;
        let db = database(&http, &params, format)?;
        let nx = flag(&params, "nx", format)?;
        let bad = || {
            error(format, StatusCode::BAD_REQUEST, "the body must be an object of keys and string values, not empty")
        };
        let Val::Map(pairs) = &v else { return Err(bad()) };
        if pairs.is_empty() {
            return Err(bad());
        }
        let mut args = ArgVec::from_slices([if nx { &b"MSETNX"[..] } else { b"MSET" }]);
        for (k, v) in pairs {
            args.push(&k.to_arg().ok_or_else(bad)?);
            args.push(&v.to_arg().ok_or_else(bad)?);
        }
        Ok((run_once(&http, &caller, db, &args).await, format))
    };
    match result.await {
        Err(resp) => resp,
        Ok((Frame::Integer(0), format)) => {
            error(format, StatusCode::CONFLICT, "a key exists: nothing was written (nx)")
        }
        Ok((Frame::Error(e), format)) => reply_error(format, &e),
        Ok((_, format)) => answer(format, StatusCode::OK, &Val::map([("status", Val::str("OK"))])),
    }
}

pub(super) async fn mget(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (v, format) = read_value(&http, &headers, body).await?;
        let params = query(&uri, &["db"], format)?;
        let db = database(&http, &params, format)?;
        let mut args = ArgVec::from_slices([&b"MGET"[..]]);
        for k in keys_of(&v, format)? {
            args.push(&k);
        }
        Ok((run_once(&http, &caller, db, &args).await, format))
    };
    match result.await {
        Err(resp) => resp,
        Ok((Frame::Error(e), format)) => reply_error(format, &e),
        Ok((frame, format)) => answer(format, StatusCode::OK, &Val::map([("values", Val::from_frame(frame))])),
    }
}

pub(super) async fn del(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (v, format) = match read_value(&http, &headers, body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let result = async {
        let params = query(&uri, &["db"], format)?;
        let db = database(&http, &params, format)?;
        let mut args = ArgVec::from_slices([&b"DEL"[..]]);
        for k in keys_of(&v, format)? {
            args.push(&k);
        }
        Ok(run_once(&http, &caller, db, &args).await)
    };
    deleted(format, result.await)
}

/// The command a `/v1/command` body asks for: `{"args": [...]}`, or the request shape
/// `{"command", "key", "offset", "value", "message"}` (arguments in that order; INCR and DECR
/// with an offset are INCRBY and DECRBY, INCR with a fractional one INCRBYFLOAT).
pub(super) fn command_args(v: &Val) -> Result<ArgVec, String> {
    let Val::Map(pairs) = v else {
        return Err("the body must be an object: {\"args\": [...]} or {\"command\": ..., \"key\": ..., ...}".to_owned());
    };
    let field = |name: &str| v.get(name);
    let string = |name: &str, x: &Val| x.to_arg().ok_or_else(|| format!("'{name}' must be a string or a number"));
    if let Some(args) = field("args") {
        if pairs.len() != 1 {
            return Err("'args' goes alone: no other field with it".to_owned());
        }
        let Val::Array(items) = args else { return Err("'args' must be an array of strings".to_owned()) };
        if items.is_empty() {
            return Err("'args' needs at least the command's name".to_owned());
        }
        let mut out = ArgVec::new();
        for (i, a) in items.iter().enumerate() {
            out.push(&a.to_arg().ok_or_else(|| format!("args[{i}] must be a string or a number"))?);
        }
        return Ok(out);
    }
    const FIELDS: [&str; 5] = ["command", "key", "offset", "value", "message"];
    for (k, _) in pairs {
        match k {
            Val::Bytes(name) if FIELDS.iter().any(|f| f.as_bytes() == name.as_slice()) => {}
            other => {
                let name = other.to_arg().map(|n| String::from_utf8_lossy(&n).into_owned()).unwrap_or_default();
                return Err(format!("unknown field '{name}' (fields: args, or {})", FIELDS.join(", ")));
            }
        }
    }
    let Some(command) = field("command") else { return Err("'command' or 'args' is required".to_owned()) };
    let mut name = string("command", command)?;
    let offset = field("offset").map(|o| string("offset", o)).transpose()?;
    if let Some(off) = &offset {
        let fractional = std::str::from_utf8(off).is_ok_and(|s| s.parse::<i64>().is_err() && s.parse::<f64>().is_ok());
        if name.eq_ignore_ascii_case(b"incr") {
            name = if fractional { b"INCRBYFLOAT".to_vec() } else { b"INCRBY".to_vec() };
        } else if name.eq_ignore_ascii_case(b"decr") {
            name = b"DECRBY".to_vec();
        }
    }
    let mut out = ArgVec::from_slices([&name]);
    if let Some(k) = field("key") {
        out.push(&string("key", k)?);
    }
    if let Some(off) = &offset {
        out.push(off);
    }
    for f in ["value", "message"] {
        if let Some(x) = field(f) {
            out.push(&string(f, x)?);
        }
    }
    Ok(out)
}

/// `/v1/command`'s answer for a reply: `{"status": "OK", "value": ...}`, `{"status": "OK"}`
/// for `+OK`, `{"status": "OK", "message": ...}` for ECHO, `{"status": "Error", "message":
/// ...}` for an error reply.
pub(super) fn command_answer(args: &ArgVec, frame: Frame) -> Val {
    match frame {
        Frame::Error(e) => Val::map([("status", Val::str("Error")), ("message", Val::Bytes(e))]),
        Frame::Simple(s) if s == b"OK" => Val::map([("status", Val::str("OK"))]),
        frame if args.args().get(0).eq_ignore_ascii_case(b"echo") => {
            Val::map([("status", Val::str("OK")), ("message", Val::from_frame(frame))])
        }
        frame => Val::map([("status", Val::str("OK")), ("value", Val::from_frame(frame))]),
    }
}

pub(super) async fn command(
    State(http): State<Arc<Http>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (v, format) = match read_value(&http, &headers, body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let params = match query(&uri, &["db"], format) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let db = match database(&http, &params, format) {
        Ok(db) => db,
        Err(resp) => return resp,
    };
    let args = match command_args(&v) {
        Ok(a) => a,
        Err(msg) => return error(format, StatusCode::BAD_REQUEST, &msg),
    };
    let frame = run_once(&http, &caller, db, &args).await;
    answer(format, StatusCode::OK, &command_answer(&args, frame))
}

pub(super) async fn healthz(headers: HeaderMap) -> Response {
    answer(answer_format(&headers, None), StatusCode::OK, &Val::map([("status", Val::str("OK"))]))
}

pub(super) async fn readyz(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let format = answer_format(&headers, None);
    if http.is_ready() {
        return answer(format, StatusCode::OK, &Val::map([("status", Val::str("OK"))]));
    }
    let why = if http.server.is_shutting_down() { "shutting down" } else { "loading" };
    error(format, StatusCode::SERVICE_UNAVAILABLE, why)
}

/// The OpenAPI document of every endpoint.
const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn openapi() -> Response {
    let mut resp = OPENAPI.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(super) async fn not_found(headers: HeaderMap) -> Response {
    error(answer_format(&headers, None), StatusCode::NOT_FOUND, "no such endpoint (see /v1/openapi.json)")
}

pub(super) async fn method_not_allowed(headers: HeaderMap) -> Response {
    error(answer_format(&headers, None), StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str) -> Result<Vec<String>, String> {
        let v = codec::decode(Format::Json, json.as_bytes()).unwrap();
        command_args(&v).map(|a| a.args().iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect())
    }

    #[test]
    fn request_shapes_become_commands() {
        assert_eq!(args(r#"{"command":"SET","key":"story","value":"x"}"#).unwrap(), ["SET", "story", "x"]);
        assert_eq!(args(r#"{"command":"ECHO","message":"hello"}"#).unwrap(), ["ECHO", "hello"]);
        assert_eq!(args(r#"{"command":"INCR","key":"n","offset":5}"#).unwrap(), ["INCRBY", "n", "5"]);
        assert_eq!(args(r#"{"command":"incr","key":"n","offset":"1.5"}"#).unwrap(), ["INCRBYFLOAT", "n", "1.5"]);
        assert_eq!(args(r#"{"command":"DECR","key":"n","offset":2}"#).unwrap(), ["DECRBY", "n", "2"]);
        assert_eq!(
            args(r#"{"command":"SETRANGE","key":"k","offset":3,"value":"ab"}"#).unwrap(),
            ["SETRANGE", "k", "3", "ab"]
        );
        assert_eq!(args(r#"{"args":["HSET","h","f",{"$base64":"AAE="}]}"#).unwrap()[..3], ["HSET", "h", "f"]);
        assert!(args(r#"{"args":[]}"#).is_err());
        assert!(args(r#"{"args":["GET"],"key":"x"}"#).is_err());
        assert!(args(r#"{"command":"GET","keys":"x"}"#).unwrap_err().contains("unknown field 'keys'"));
        assert!(args(r#"{"key":"x"}"#).is_err());
        assert!(args(r#"["GET","x"]"#).is_err());
        assert!(args(r#"{"command":["GET"]}"#).is_err());
    }

    #[test]
    fn answers_have_the_documented_shapes() {
        let a = |argv: &[&str], f: Frame| {
            String::from_utf8(codec::encode(Format::Json, &command_answer(&ArgVec::from_slices(argv), f))).unwrap()
        };
        assert_eq!(a(&["SET", "k", "v"], Frame::Simple(b"OK".to_vec())), r#"{"status":"OK"}"#);
        assert_eq!(a(&["ECHO", "hello"], Frame::Bulk(b"hello".to_vec())), r#"{"status":"OK","message":"hello"}"#);
        assert_eq!(a(&["GET", "k"], Frame::Null), r#"{"status":"OK","value":null}"#);
        assert_eq!(
            a(&["GET", "h"], Frame::Error(b"WRONGTYPE Operation".to_vec())),
            r#"{"status":"Error","message":"WRONGTYPE Operation"}"#
        );
        assert_eq!(a(&["PING"], Frame::Simple(b"PONG".to_vec())), r#"{"status":"OK","value":"PONG"}"#);
    }
}
