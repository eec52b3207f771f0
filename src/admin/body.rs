//! JSON request bodies that refuse duplicate keys.
//!
//! serde_json keeps the last of two equal keys without a word, and DNS folds case, so `{"A":
//! [...], "a": [...]}` would silently lose one list. [`JsonBody`] refuses a body in which any
//! object holds two keys that are equal ignoring case, with 400 and the key's path as `field`.

use super::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

/// A JSON body (`Content-Type: application/json`, at most [`super::MAX_BODY`] bytes) without
/// duplicate keys, deserialized into `T` (`serde_json::Value` for any document). Rejections
/// are `ApiError`s: 415 (field `Content-Type`), 413, 400 (field `body`, or the duplicate key's
/// path such as `records.www.a`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with `Content-Type: application/json`",
            )
            .field("Content-Type"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), format!("body: {}", e.body_text())).field("body"))?;
        let value = parse_unique(&bytes).map_err(BodyError::into_api)?;
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("body: {e}")).field("body"))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")))
}

/// Why a body is not one JSON document with unique keys.
#[derive(Debug)]
pub enum BodyError {
    /// Two keys of one object are equal ignoring case; `field` is the second one's path.
    Duplicate { field: String, message: String },
    /// Not JSON.
    Syntax(String),
}

impl BodyError {
    pub fn into_api(self) -> ApiError {
        match self {
            BodyError::Duplicate { field, message } => ApiError::bad_request(message).field(field),
            BodyError::Syntax(m) => ApiError::bad_request(format!("body: {m}")).field("body"),
        }
    }
}

/// Parses `bytes` as one JSON document, refusing duplicate keys (ignoring case) in any object.
pub fn parse_unique(bytes: &[u8]) -> Result<Value, BodyError> {
    let dup = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Unique {
        path: String::new(),
        dup: &dup,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match (parsed, dup.into_inner()) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some((field, message))) => Err(BodyError::Duplicate { field, message }),
        (Err(e), None) => Err(BodyError::Syntax(e.to_string())),
    }
}

/// Builds a `Value` like serde_json does, noting the first duplicate key in `dup`.
struct Unique<'a> {
    path: String,
    dup: &'a RefCell<Option<(String, String)>>,
}

impl Unique<'_> {
    fn child(&self, key: &str) -> Self {
        Unique {
            path: if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            },
            dup: self.dup,
        }
    }
    fn index(&self, i: usize) -> Self {
        Unique {
            path: format!("{}[{i}]", self.path),
            dup: self.dup,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.index(out.len()))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if let Some(first) = seen.get(&key.to_lowercase()) {
                let message = format!(
                    "duplicate key `{key}` in the body (at {}): it repeats `{first}`, and keys are \
                     compared ignoring case",
                    child.path
                );
                *self.dup.borrow_mut() = Some((child.path, message.clone()));
                return Err(de::Error::custom(message));
            }
            seen.insert(key.to_lowercase(), key.clone());
            let value = map.next_value_seed(child)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup_field(text: &str) -> Option<String> {
        match parse_unique(text.as_bytes()) {
            Err(BodyError::Duplicate { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        assert_eq!(dup_field(r#"{"A": [1], "a": [2]}"#).as_deref(), Some("a"));
        assert_eq!(dup_field(r#"{"a": 1, "a": 2}"#).as_deref(), Some("a"));
        assert_eq!(
            dup_field(r#"{"records": {"www": {"AAAA": [], "aaaa": []}}}"#).as_deref(),
            Some("records.www.aaaa")
        );
        assert_eq!(
            dup_field(r#"{"x": [{"k": 1}, {"K": 1, "k": 2}]}"#).as_deref(),
            Some("x[1].k")
        );
        assert_eq!(dup_field(r#"{"A": {"a": 1}, "b": {"A": 2}}"#), None);
    }

    #[test]
    fn unique_documents_parse_as_serde_json_does() {
        for text in [
            r#"{"a": 1, "b": [true, null, 1.5, -3, "x"], "c": {"d": {}}}"#,
            r#"[1, 2, {"a": "b"}]"#,
            r#""s""#,
            "18446744073709551615",
        ] {
            let ours = parse_unique(text.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        assert!(matches!(parse_unique(b"{\"a\": 1"), Err(BodyError::Syntax(_))));
        assert!(matches!(parse_unique(b"{} {}"), Err(BodyError::Syntax(_))));
        assert!(matches!(parse_unique(b""), Err(BodyError::Syntax(_))));
    }
}
