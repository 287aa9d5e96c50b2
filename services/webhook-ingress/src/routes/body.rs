//! Reading a request body: the size cap first, then the content type.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

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
