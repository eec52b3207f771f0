//! Bearer tokens: `read` may read, `admin` may also write. Writes always need an admin token;
//! with no tokens configured, reads are open (the API listens on loopback by default) and writes
//! are refused with a message saying how to configure one.

use super::ApiError;
use crate::config::{Role, Token};
use axum::http::HeaderMap;

/// Who is calling, for event reasons.
pub fn check(headers: &HeaderMap, tokens: &[Token], need: Role) -> Result<String, ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if tokens.is_empty() {
        return match need {
            Role::Read => Ok("anonymous".into()),
            Role::Admin => Err(ApiError::forbidden(
                "writes need an admin token, and none is configured: add `admin.tokens: [{ name: ops, role: admin, \
                 token_file: secrets/ops.token }]` to meridian.yaml, put a secret of 16 or more characters in that \
                 file, and restart",
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
    let mut found: Option<&Token> = None;
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
}
