//! Extractors that turn a malformed path or query into a 422 `{"detail"}`
//! naming the parameter (axum's own rejections are plain-text 400s).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;

use crate::chain::parse_address;
use crate::error::Error;
use crate::store::UserKey;

/// Entries per page when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 50;
/// Largest `limit`.
pub const MAX_LIMIT: u64 = 500;
/// Longest user id (the same bound webhook-ingress accepts).
pub const MAX_USER_ID_CHARS: usize = 255;
/// Longest email looked up.
const MAX_EMAIL_CHARS: usize = 320;

/// The `{user_id}` path segment: 1 to 255 characters without control
/// characters (PostgreSQL text cannot even hold NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                Error::Validation("path parameter `user_id` must be UTF-8 text".to_owned())
            })?;
        user_id(&id)?;
        Ok(Self(id))
    }
}

fn user_id(id: &str) -> Result<(), Error> {
    identifier("user_id", id)
}

/// A path identifier (user id, `tx_id`): 1 to 255 characters without
/// control characters.
fn identifier(name: &str, id: &str) -> Result<(), Error> {
    if id.trim().is_empty() || id.chars().count() > MAX_USER_ID_CHARS {
        return Err(Error::Validation(format!(
            "path parameter `{name}` must be 1 to {MAX_USER_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::Validation(format!(
            "path parameter `{name}` must not contain control characters"
        )));
    }
    Ok(())
}

/// The `{tx_id}` path segment: a token transaction's API id (an operator's
/// idempotency key, `reward_<id>`, `redemption_<id>`...), bounded as a user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TxId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                Error::Validation("path parameter `tx_id` must be UTF-8 text".to_owned())
            })?;
        identifier("tx_id", &id)?;
        Ok(Self(id))
    }
}

/// The `{request_id}` path segment: a redemption's id, a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                Error::Validation("path parameter `request_id` must be UTF-8 text".to_owned())
            })?;
        Ok(Self(request_id(&id)?))
    }
}

fn request_id(text: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(text.trim())
        .map_err(|_| Error::Validation("path parameter `request_id` must be a UUID".to_owned()))
}

/// `?limit=&offset=` of a history: limit 1..=500 (default 50), offset >= 0
/// (default 0). Anything else, a repeated parameter included, is a 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Entries in the page.
    pub limit: u64,
    /// Entries skipped, newest first.
    pub offset: u64,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let pairs = query_pairs(parts)?;
        let limit = match single(&pairs, "limit")? {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::Validation(format!(
                        "query parameter `limit` must be an integer from 1 to {MAX_LIMIT}"
                    ))
                })?,
        };
        let offset = match single(&pairs, "offset")? {
            None => 0,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or_else(|| {
                    Error::Validation(
                        "query parameter `offset` must be a non-negative integer".to_owned(),
                    )
                })?,
        };
        Ok(Self { limit, offset })
    }
}

/// `?wallet_address=` or `?email=` (exactly one) of a look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupKey {
    /// A wallet, normalised to its EIP-55 checksum (as stored).
    Wallet(String),
    /// An email, trimmed.
    Email(String),
}

impl LookupKey {
    /// The store's key.
    pub fn as_key(&self) -> UserKey<'_> {
        match self {
            Self::Wallet(wallet) => UserKey::Wallet(wallet),
            Self::Email(email) => UserKey::Email(email),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LookupKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let pairs = query_pairs(parts)?;
        match (single(&pairs, "wallet_address")?, single(&pairs, "email")?) {
            (Some(wallet), None) => parse_address(wallet.trim())
                .filter(|_| wallet.trim().len() == 42 && wallet.trim().starts_with("0x"))
                .map(|address| Self::Wallet(address.to_checksum(None)))
                .ok_or_else(|| {
                    Error::Validation(
                        "query parameter `wallet_address` must be a 0x-prefixed Ethereum address"
                            .to_owned(),
                    )
                }),
            (None, Some(email)) => {
                let email = email.trim();
                if email.is_empty()
                    || email.chars().count() > MAX_EMAIL_CHARS
                    || email.chars().any(char::is_control)
                    || !email.contains('@')
                {
                    return Err(Error::Validation(
                        "query parameter `email` must be an email address".to_owned(),
                    ));
                }
                Ok(Self::Email(email.to_owned()))
            }
            _ => Err(Error::Validation(
                "give exactly one of the query parameters `wallet_address` and `email`".to_owned(),
            )),
        }
    }
}

/// The decoded query string.
fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, Error> {
    Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(pairs)| pairs)
        .map_err(|_| Error::Validation("the query string is malformed".to_owned()))
}

/// The value of `name`, if given once; given twice is a 422.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, Error> {
    let mut values = pairs.iter().filter(|(key, _)| key == name);
    let first = values.next().map(|(_, value)| value.as_str());
    if values.next().is_some() {
        return Err(Error::Validation(format!(
            "query parameter `{name}` is given more than once"
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    async fn paging(query: &str) -> Result<Paging, String> {
        let (mut parts, ()) = Request::get(format!("/x?{query}"))
            .body(())
            .unwrap()
            .into_parts();
        Paging::from_request_parts(&mut parts, &())
            .await
            .map_err(|err| err.to_string())
    }

    #[tokio::test]
    async fn paging_bounds() {
        assert_eq!(
            paging("").await,
            Ok(Paging {
                limit: 50,
                offset: 0
            })
        );
        assert_eq!(paging("limit=1").await.unwrap().limit, 1);
        assert_eq!(
            paging("limit=500&offset=7").await,
            Ok(Paging {
                limit: 500,
                offset: 7
            })
        );
        for bad in [
            "limit=0",
            "limit=501",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit=1.5",
        ] {
            let err = paging(bad).await.unwrap_err();
            assert!(err.contains("`limit`"), "{bad}: {err}");
        }
        for bad in [
            "offset=-1",
            "offset=x",
            "offset=99999999999999999999",
            "offset=9223372036854775808",
        ] {
            let err = paging(bad).await.unwrap_err();
            assert!(err.contains("`offset`"), "{bad}: {err}");
        }
        assert!(
            paging("limit=5&limit=6")
                .await
                .unwrap_err()
                .contains("more than once")
        );
        // Other parameters are ignored.
        assert_eq!(paging("foo=bar").await.unwrap().limit, 50);
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(request_id(&id.to_string()).unwrap(), id);
        assert_eq!(request_id(&id.simple().to_string()).unwrap(), id);
        for bad in ["nope", "123", "", "\0", &format!("{id}x")] {
            let err = request_id(bad).unwrap_err().to_string();
            assert!(err.contains("`request_id`"), "{bad}: {err}");
        }
    }

    #[test]
    fn tx_ids_are_bounded_and_printable() {
        assert!(identifier("tx_id", "mint_key_1").is_ok());
        let err = identifier("tx_id", &"a".repeat(256))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`tx_id`"), "{err}");
        assert!(identifier("tx_id", "a\u{7}b").is_err());
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(user_id("test_user_123").is_ok());
        assert!(user_id("x").is_ok());
        assert!(user_id(&"é".repeat(255)).is_ok());
        assert!(user_id(&"a".repeat(256)).is_err());
        assert!(user_id(" ").is_err());
        assert!(user_id("a\0b").is_err());
        assert!(user_id("a\nb").is_err());
    }
}
