//! Bearer tokens: `read` may read, `admin` may also write. Writes always need an admin token;
//! with no tokens configured, reads are open (the API listens on loopback by default) and writes
//! are refused with a message saying how to configure one.
//!
//! Handlers take [`ReadAccess`] or [`AdminAccess`] as their first argument: the check is part
//! of the signature, so it cannot be forgotten, and it runs before any body is read (401 before
//! 400, 413 or 415).

use super::ApiError;
use crate::config::{AdminToken, Role};
use crate::control::Control;
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// A caller that may read; holds the token's name (`anonymous` with no tokens configured).
#[derive(Debug)]
pub struct ReadAccess(pub String);

/// A caller holding an admin token; holds the token's name.
#[derive(Debug)]
pub struct AdminAccess(pub String);

/// The name of the token in `parts` that grants `role` under the running configuration.
fn caller<S>(parts: &Parts, state: &S, role: Role) -> Result<String, ApiError>
where
    Arc<Control>: FromRef<S>,
{
    check(&parts.headers, &Arc::<Control>::from_ref(state).tokens(), role)
}

impl<S: Send + Sync> FromRequestParts<S> for ReadAccess
where
    Arc<Control>: FromRef<S>,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        caller(parts, state, Role::Read).map(ReadAccess)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminAccess
where
    Arc<Control>: FromRef<S>,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        caller(parts, state, Role::Admin).map(AdminAccess)
    }
}

/// The credentials of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who is calling, for event reasons.
pub fn check(headers: &HeaderMap, tokens: &[AdminToken], need: Role) -> Result<String, ApiError> {
    let presented = bearer(headers);
    if tokens.is_empty() {
        return match need {
            Role::Read => Ok("anonymous".into()),
            Role::Admin => Err(ApiError::forbidden(
                "writes need an admin token, and none is configured: add `admin.tokens: [{ name: ops, role: admin, \
                 token_file: secrets/ops.token }]` to meridian.yaml, put a secret of 16 or more characters in that \
                 file, and reload (send SIGHUP)",
            )),
        };
    }
    let Some(presented) = presented else {
        return Err(ApiError::unauthorized(
            "missing bearer token (Authorization: Bearer <token>)",
        ));
    };
    // Every token is compared, in constant time, so timing tells nothing about which one
    // (or how much of one) matched.
    let mut found: Option<&AdminToken> = None;
    for t in tokens {
        if constant_time_eq(t.secret.as_bytes(), presented.as_bytes()) {
            found = Some(t);
        }
    }
    let Some(t) = found else {
        return Err(ApiError::unauthorized("invalid bearer token"));
    };
    if need == Role::Admin && t.role != Role::Admin {
        return Err(ApiError::forbidden(format!(
            "token `{}` is read-only; this needs an admin token",
            t.name
        )));
    }
    Ok(t.name.clone())
}

// === Host check (DNS rebinding) ===

/// While no tokens are configured, reads are open to whoever reaches the listener: a web page
/// whose name an attacker re-points at 127.0.0.1 (DNS rebinding) would be such a reader, with
/// its own name in `Host`. So without tokens only loopback names (`localhost`, `*.localhost`),
/// IP literals and `admin.allowed_hosts` are served. With tokens the check is off: every route
/// with data needs a token, which a rebinding page does not have, and operators may reach the
/// API under any name.
pub async fn check_host(State(ctl): State<Arc<Control>>, req: Request, next: Next) -> Response {
    let refused = {
        let admin = ctl.admin_settings();
        if admin.tokens.is_empty() {
            host_of(&req)
                .filter(|h| !host_allowed(h, &admin.allowed_hosts))
                .map(str::to_string)
        } else {
            None
        }
    };
    match refused {
        None => next.run(req).await,
        Some(host) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host `{host}` is not served: with no admin.tokens configured, the API answers only \
                 to loopback names (localhost) and IP addresses, so that a web page cannot read it \
                 through DNS rebinding. Add `admin.allowed_hosts: [{}]` to meridian.yaml (then \
                 reload), or configure admin.tokens",
                strip_port(&host)
            ),
        )
        .field("Host")
        .into_response(),
    }
}

/// The host the request names: its `Host` header, or the URI's authority (HTTP/2). A request
/// naming none comes from no browser, so it is not checked.
fn host_of(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Whether `host` (a Host header value, port included) is a loopback name, an IP literal or a
/// name in `allowed` (`*.suffix` for any name below `suffix`).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let bare = strip_port(host.trim());
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    allowed.iter().any(|a| match a.strip_prefix("*.") {
        Some(suffix) => name
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => *a == name,
    })
}

/// Equality that takes the same time for every input of a given length pair.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc", "bEaReR\tabc "] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&h), Some("abc"), "{value:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn hosts_allowed_without_tokens() {
        let allowed = vec!["meridian.internal".to_string(), "*.ops.example".to_string()];
        for ok in [
            "localhost",
            "localhost:8053",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1:8053",
            "10.1.2.3",
            "[::1]:8053",
            "[2001:db8::1]",
            "meridian.internal:8053",
            "a.ops.example",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8053",
            "localhost.evil.example",
            "ops.example",
            "xops.example",
            "meridian.internal.evil",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }
}
