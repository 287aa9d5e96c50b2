//! Reading a request body: the size cap first, then the content type, then
//! the JSON, with the field that failed named in the 422.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

/// Reads at most `limit` bytes of `body`. A `Content-Length` above the cap
/// is refused before a byte is read; a body without one (chunked) is read
/// until it passes the cap, then refused, so a huge body is never held whole.
pub async fn read_capped(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        if is_length_limit(&err) {
            Error::PayloadTooLarge { limit }
        } else {
            Error::UnreadableBody
        }
    })
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Refuses a `Content-Type` that is not JSON (`application/json`, or any
/// `+json` type). A request without one is read as JSON: partners' senders
/// do not always set it, and the body is parsed strictly anyway.
pub fn require_json(headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .map_err(|_| Error::UnsupportedMediaType)?
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(Error::UnsupportedMediaType)
    }
}

/// Parses a JSON body, naming the field that failed in the 422 `detail`.
pub fn parse_body<T: DeserializeOwned>(raw: &[u8]) -> Result<T, Error> {
    // serde would also take a struct as an array of its fields.
    if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::Validation(
            if serde_json::from_slice::<Value>(raw).is_ok() {
                "body must be a JSON object".to_owned()
            } else {
                "body is not valid JSON".to_owned()
            },
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = without_position(&inner);
        Error::Validation(if inner.is_syntax() || inner.is_eof() {
            format!("body is not valid JSON: {message}")
        } else if message.contains("expected struct") {
            "body must be a JSON object".to_owned()
        } else if path == "." {
            message
        } else {
            format!("field `{path}`: {message}")
        })
    })?;
    de.end().map_err(|_| {
        Error::Validation("body has trailing data after the JSON object".to_owned())
    })?;
    Ok(parsed)
}

/// serde_json's message without its " at line 1 column 9" suffix.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// A non-empty id of at most 255 characters without control characters.
pub fn identifier(field: &str, value: String) -> Result<String, Error> {
    if value.trim().is_empty() || value.chars().count() > 255 {
        return Err(Error::Validation(format!(
            "field `{field}` must be 1 to 255 characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::Validation(format!(
            "field `{field}` must not contain control characters"
        )));
    }
    Ok(value)
}

/// Free text of at most 500 characters, without NUL (which PostgreSQL text cannot hold).
pub fn text(field: &str, value: String) -> Result<String, Error> {
    if value.trim().is_empty() || value.chars().count() > 500 {
        return Err(Error::Validation(format!(
            "field `{field}` must be 1 to 500 characters"
        )));
    }
    if value.contains('\0') {
        return Err(Error::Validation(format!(
            "field `{field}` must not contain a NUL character"
        )));
    }
    Ok(value)
}
