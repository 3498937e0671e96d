//! What every HTTP request passes before an endpoint sees it:
//!
//! 1. **Host** must be one of the server's names: `localhost`, a loopback address, the
//!    address the request arrived on, a `bind` address, or one of `http-allowed-hosts`
//!    (421 otherwise). A web page that rebinds its own domain name to 127.0.0.1 (DNS
//!    rebinding) sends its own name as Host and is refused.
//! 2. **Origin**, when a browser sends one (every cross-origin request and every POST), must
//!    be one of `http-cors-origins` (403 otherwise), so a page cannot write to a local Magpie;
//!    `Sec-Fetch-Site: cross-site` without an allowed Origin is refused likewise. Allowed
//!    origins get CORS headers and preflights.
//! 3. **Protected mode**, as on the RESP port: while the default user has no password, only
//!    clients on the loopback interface are served (403).
//! 4. **Credentials**: `Authorization: Basic` (any ACL user) or `Bearer <password>` (the
//!    default user). Required when the default user has a password (401); wrong ones are 401
//!    and go to the ACL LOG like a failed AUTH.
//! 5. A body whose declared length is over `proto-max-bulk-len` is refused (413) before a
//!    byte of it is read.
//!
//! The probes (`/healthz`, `/readyz`) and the OpenAPI document skip 3 and 4: they tell
//! nothing about the data.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::Http;
use super::codec::{Format, Val};
use crate::services::acl::{Account, Context, LogEntry, Reason};

/// The connection a request arrived on (put in each request's extensions).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conn {
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub tls: bool,
}

/// A user the request's credentials opened, and its name.
pub(crate) type LoggedIn = (Arc<Account>, Vec<u8>);

/// Who sent the request: its connection, and the user its credentials opened (none: the
/// default user, which needs no password).
#[derive(Clone)]
pub(crate) struct Caller {
    pub conn: Conn,
    pub user: Option<LoggedIn>,
}

/// Paths that need no credentials (and answer while loading).
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/v1/openapi.json")
}

/// The middleware: checks, then the endpoint, then counts the answer's status.
pub(super) async fn check(State(http): State<Arc<Http>>, mut req: Request, next: Next) -> Response {
    let format = answer_format(req.headers(), None);
    let mut resp = match admit(&http, &mut req, format) {
        Ok(Admitted::Go(cors)) => {
            let mut resp = next.run(req).await;
            if let Some(origin) = cors {
                resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
            }
            resp
        }
        Ok(Admitted::Preflight(origin)) => preflight(origin),
        Err(resp) => resp,
    };
    if !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    http.metrics.count_request(resp.status().as_u16());
    resp
}

enum Admitted {
    /// Serve it; with the origin to allow in the answer's CORS headers, if any.
    Go(Option<HeaderValue>),
    /// A CORS preflight from an allowed origin.
    Preflight(HeaderValue),
}

fn admit(http: &Http, req: &mut Request, format: Format) -> Result<Admitted, Response> {
    let Some(conn) = req.extensions().get::<Conn>().copied() else {
        return Err(error(format, StatusCode::INTERNAL_SERVER_ERROR, "no connection"));
    };
    let server = &http.server;
    let settings = server.settings();
    check_host(http, req, conn).map_err(|(status, msg)| error(format, status, &msg))?;
    let origin = check_origin(http, req.headers()).map_err(|msg| error(format, StatusCode::FORBIDDEN, &msg))?;
    if let Some(o) = &origin
        && req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return Ok(Admitted::Preflight(o.clone()));
    }
    let path = req.uri().path();
    if is_probe(path) {
        return Ok(Admitted::Go(origin));
    }
    let acl = server.acl();
    if settings.protected_mode() && !is_loopback(conn.addr.ip()) && acl.default_nopass() {
        return Err(error(format, StatusCode::FORBIDDEN, PROTECTED));
    }
    if !http.is_ready() && path != "/metrics" {
        return Err(error(format, StatusCode::SERVICE_UNAVAILABLE, "LOADING Magpie is loading the dataset in memory"));
    }
    let user = authenticate(http, req.headers(), conn, format)?;
    if let Some(len) = declared_length(req.headers())
        && len > settings.proto_max_bulk_len() as u64
    {
        return Err(error(
            format,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is {len} bytes, over proto-max-bulk-len ({})", settings.proto_max_bulk_len()),
        ));
    }
    req.extensions_mut().insert(Caller { conn, user });
    Ok(Admitted::Go(origin))
}

/// Host must name this server (see the module's documentation).
fn check_host(http: &Http, req: &Request, conn: Conn) -> Result<(), (StatusCode, String)> {
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().map_err(|_| (StatusCode::BAD_REQUEST, "the Host header is not text".to_owned()))?,
        None => match req.uri().authority() {
            Some(a) => a.as_str(),
            None => return Err((StatusCode::BAD_REQUEST, "a request needs a Host header".to_owned())),
        },
    };
    let name = host_name(host).to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let own = match bare.parse::<IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() || ip == conn.laddr.ip().to_canonical() || bound(http, ip)
        }
        Err(_) => name == "localhost",
    };
    if own || http.server.settings().http_allowed_hosts().iter().any(|h| h.trim_end_matches('.') == name) {
        return Ok(());
    }
    Err((
        StatusCode::MISDIRECTED_REQUEST,
        format!("Host '{}' is not one of this server's names (see http-allowed-hosts)", host.escape_debug()),
    ))
}

/// Whether `ip` is one of the `bind` addresses.
fn bound(http: &Http, ip: IpAddr) -> bool {
    http.server.settings().config.bind.iter().any(|b| {
        b.trim_start_matches('-').parse::<IpAddr>().is_ok_and(|a| !a.is_unspecified() && a.to_canonical() == ip)
    })
}

/// The host part of a Host header (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.contains(':') => name,
        _ => host,
    }
}

/// The allowed origin of a cross-origin request (for its CORS headers), `None` for a request
/// that is not cross-origin; an error for an origin not allowed.
fn check_origin(http: &Http, headers: &HeaderMap) -> Result<Option<HeaderValue>, String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
            return Err("cross-site requests are refused (see http-cors-origins)".to_owned());
        }
        return Ok(None);
    };
    let text = origin.to_str().unwrap_or("");
    let allowed = http.server.settings().http_cors_origins();
    if !text.is_empty() && text != "null" && allowed.iter().any(|a| a.eq_ignore_ascii_case(text)) {
        return Ok(Some(origin.clone()));
    }
    Err(format!("Origin '{}' is not allowed (see http-cors-origins)", text.escape_debug()))
}

fn preflight(origin: HeaderValue) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, PUT, POST, DELETE"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type, Accept"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// The user the request's credentials open; `None` for the default user without a password.
#[allow(clippy::result_large_err)]
fn authenticate(http: &Http, headers: &HeaderMap, conn: Conn, format: Format) -> Result<Option<LoggedIn>, Response> {
    let acl = http.server.acl();
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        if acl.auth_required(&acl.login()) {
            return Err(unauthorized(format, "NOAUTH Authentication required."));
        }
        return Ok(None);
    };
    let (user, password) = parse_credentials(value.as_bytes())
        .ok_or_else(|| unauthorized(format, "the Authorization header must be Basic or Bearer"))?;
    match acl.check_credentials(&user, &password) {
        Some(account) => Ok(Some((account, user))),
        None => {
            let mut client_info = format!("addr={} laddr={} http", conn.addr, conn.laddr).into_bytes();
            client_info.extend_from_slice(if conn.tls { b" tls" } else { b"" });
            acl.log_denial(LogEntry {
                count: 1,
                reason: Reason::Auth,
                context: Context::Toplevel,
                object: b"http".to_vec(),
                username: user,
                ctime: magpie_store::now_ms(),
                client_info,
            });
            Err(unauthorized(format, "WRONGPASS invalid username-password pair or user is disabled."))
        }
    }
}

/// (user, password) of `Basic base64(user:password)` or `Bearer password` (the default user).
fn parse_credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&value[..space], value[space + 1..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        Some((b"default".to_vec(), rest.to_vec()))
    } else {
        None
    }
}

fn unauthorized(format: Format, msg: &str) -> Response {
    let mut resp = error(format, StatusCode::UNAUTHORIZED, msg);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"magpie\""));
    resp
}

/// Content-Length, if the request declares one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Redis's `islocalClient`: the loopback addresses.
fn is_loopback(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
    }
}

/// The format to answer in: what `Accept` asks for, else the request's, else JSON.
pub(super) fn answer_format(headers: &HeaderMap, request: Option<Format>) -> Format {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .and_then(Format::of_accept)
        .or(request)
        .unwrap_or(Format::Json)
}

/// An answer: `v` encoded in `format`.
pub(super) fn answer(format: Format, status: StatusCode, v: &Val) -> Response {
    let body = super::codec::encode(format, v);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    resp
}

/// An error answer: `{"status": "Error", "message": msg}`.
pub(super) fn error(format: Format, status: StatusCode, msg: &str) -> Response {
    answer(format, status, &Val::map([("status", Val::str("Error")), ("message", Val::str(msg))]))
}

/// Protected mode's refusal (Redis's text, shortened to what applies to HTTP).
const PROTECTED: &str = "DENIED Magpie is running in protected mode because protected mode is enabled and no password \
is set for the default user. In this mode connections are only accepted from the loopback interface. Set a password \
for the default user (requirepass), or disable protected mode ('CONFIG SET protected-mode no' from the loopback \
interface), or restart the server with '--protected-mode no'.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_found_in_host_headers() {
        assert_eq!(host_name("localhost:7379"), "localhost");
        assert_eq!(host_name("[::1]:7379"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("::1"), "::1");
    }

    #[test]
    fn credentials_are_parsed() {
        assert_eq!(parse_credentials(b"Basic YWxpY2U6cHc6eA=="), Some((b"alice".to_vec(), b"pw:x".to_vec())));
        assert_eq!(parse_credentials(b"bearer  s3cret "), Some((b"default".to_vec(), b"s3cret".to_vec())));
        assert_eq!(parse_credentials(b"Basic !!!"), None);
        assert_eq!(parse_credentials(b"Digest x"), None);
        assert_eq!(parse_credentials(b"Basic"), None);
    }
}
