//! `POST /token/mint` and `POST /token/redeem`: the operators' token
//! commands, behind an API key ([`Operator`]) and its rate limit.
//!
//! Both are idempotent on their key (`idempotency_key` in the body or the
//! `Idempotency-Key` header): the same key with the same request answers the
//! first response again with `"status":"duplicate"`; with a different
//! request, 422. Keys live as long as the rows they created (at least as
//! long as the 24 hours clients may retry within).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use haven_chain::contract::{MAX_REASON_LEN, ReasonError, encode_reason};
use haven_common::money::Wei;
use haven_common::openapi::{Detail, HnvAmount};
use haven_entity::redemptions::WithdrawalMethod;
use haven_entity::token_transactions::{INTERNAL_TX_ID_PREFIXES, is_internal_tx_id};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::{identifier, parse_body, read_capped, require_json, text};
use crate::auth::Operator;
use crate::error::Error;
use crate::state::AppState;
use crate::store::{self, MintCommand, RedeemCommand, Reservation, Stored};

/// Header alternative to the body's `idempotency_key`.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Tag of the token commands.
pub const TAG: &str = "token commands";
/// Name of the API-key security scheme the commands require.
pub const API_KEY_SCHEME: &str = "api_key";

/// The token command routes, each registered with its OpenAPI operation,
/// and the API-key scheme they name.
pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(mint))
        .routes(routes!(redeem));
    let doc = router.get_openapi_mut();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An operator's API key (API_KEYS); missing: 403, wrong: 401",
            ))),
        );
    doc.tags = Some(vec![
        TagBuilder::new()
            .name(TAG)
            .description(Some(
                "Operators' mint and redeem commands, behind an API key",
            ))
            .build(),
    ]);
    router
}

/// `POST /token/mint` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct MintBody {
    /// The partners' id of the user.
    user_id: String,
    /// HNV to mint, an exact decimal.
    #[schema(value_type = HnvAmount)]
    amount: Wei,
    /// Why (booking, review, adjustment, ...): at most 32 bytes, the chain's reason code.
    #[schema(max_length = 32)]
    reason: String,
    /// Makes a retry harmless (or the `Idempotency-Key` header); becomes the `tx_id`.
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `POST /token/redeem` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RedeemBody {
    /// The partners' id of the user.
    user_id: String,
    /// HNV to redeem (burned in full; 98 % is paid out).
    #[schema(value_type = HnvAmount)]
    amount: Wei,
    /// How the money is paid.
    withdrawal_method: Method,
    /// Where: an Ethereum address for `crypto`, required there.
    #[serde(default)]
    withdrawal_address: Option<String>,
    /// Required (or the `Idempotency-Key` header).
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// How a redemption is paid out, as requests and answers spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = WithdrawalMethodBody)]
pub enum Method {
    /// To the user's bank account.
    BankTransfer,
    /// To the user's PayPal account.
    Paypal,
    /// To `withdrawal_address` on chain.
    Crypto,
}

impl From<WithdrawalMethod> for Method {
    fn from(method: WithdrawalMethod) -> Self {
        match method {
            WithdrawalMethod::BankTransfer => Self::BankTransfer,
            WithdrawalMethod::Paypal => Self::Paypal,
            WithdrawalMethod::Crypto => Self::Crypto,
        }
    }
}

/// Whether a command was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Recorded and queued now.
    Queued,
    /// The idempotency key was seen before with the same request: nothing new
    /// was written and the answer describes the first one.
    Duplicate,
}

impl CommandStatus {
    /// As answered, and as the metric's outcome label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Duplicate => "duplicate",
        }
    }
}

// The answers' fields are declared in alphabetical order: that is the order
// the `json!` maps they replace wrote them in, so the bytes on the wire did
// not change.

/// `POST /token/mint` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MintAnswer {
    /// HNV queued for minting.
    #[schema(value_type = HnvAmount)]
    pub amount: Wei,
    /// Why, as the request gave it.
    pub reason: String,
    /// `queued` the first time, `duplicate` for a key seen before.
    pub status: CommandStatus,
    /// The idempotency key (or a generated id).
    pub tx_id: String,
    /// The partners' id of the user.
    pub user_id: String,
}

/// `POST /token/redeem` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RedeemAnswer {
    /// HNV redeemed.
    #[schema(value_type = HnvAmount, example = 500.0)]
    pub amount: Wei,
    /// Burned on chain: the whole amount.
    #[schema(value_type = HnvAmount, example = 500.0)]
    pub burn_amount: Wei,
    /// The 2 % fee: what is burned but not paid out.
    #[schema(value_type = HnvAmount, example = 10.0)]
    pub fee_amount: Wei,
    /// Paid out: 98 % of the amount.
    #[schema(value_type = HnvAmount, example = 490.0)]
    pub payout_amount: Wei,
    /// The redemption's id.
    #[schema(value_type = String, format = "uuid")]
    pub request_id: uuid::Uuid,
    /// `queued` the first time, `duplicate` for a key seen before.
    pub status: CommandStatus,
    /// The partners' id of the user.
    pub user_id: String,
    /// How the payout is made.
    pub withdrawal_method: Method,
}

#[utoipa::path(
    post,
    path = "/token/mint",
    tag = TAG,
    summary = "Queue a mint to a user",
    request_body = MintBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Alternative to the body's `idempotency_key`")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`queued`, or `duplicate` for a key seen before", body = MintAnswer),
        (status = 401, description = "`Invalid API key`", body = Detail),
        (status = 403, description = "`Missing API key`", body = Detail),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 413, description = "The body is larger than MAX_BODY_SIZE", body = Detail),
        (status = 415, description = "Content-Type is not JSON", body = Detail),
        (status = 422, description = "An invalid field, or a key reused with another request", body = Detail),
        (status = 429, description = "The key's rate limit is used up, or this address sent too many wrong keys (`Retry-After`)", body = Detail),
        (status = 503, description = "Nothing was recorded; retry", body = Detail),
    )
)]
#[tracing::instrument(skip_all, fields(requested_by = %operator.name))]
async fn mint(
    operator: Operator,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<MintAnswer>, Error> {
    let answer = async {
        let raw = read_capped(&headers, body, state.max_body_size).await?;
        require_json(&headers)?;
        let body: MintBody = parse_body(&raw)?;
        let tx_id = idempotency_key(&headers, body.idempotency_key.as_deref())?
            .unwrap_or_else(|| format!("mint_{}", uuid::Uuid::now_v7()));
        let command = MintCommand {
            user_id: identifier("user_id", body.user_id)?,
            amount: body.amount,
            reason: reason(body.reason)?,
            tx_id,
            requested_by: operator.name,
        };
        store::queue_mint(&state.db, command).await
    }
    .await;
    let (status, command) = match answer {
        Ok(Stored::Accepted(command)) => {
            state.outbox.notify();
            (CommandStatus::Queued, command)
        }
        Ok(Stored::Duplicate(command)) => (CommandStatus::Duplicate, command),
        Err(err) => {
            state.metrics.command("mint", "rejected", err.reason());
            return Err(err);
        }
    };
    state.metrics.command("mint", status.as_str(), "none");
    tracing::info!(tx_id = %command.tx_id, status = status.as_str(), "mint command answered");
    Ok(Json(MintAnswer {
        amount: command.amount,
        reason: command.reason,
        status,
        tx_id: command.tx_id,
        user_id: command.user_id,
    }))
}

#[utoipa::path(
    post,
    path = "/token/redeem",
    tag = TAG,
    summary = "Reserve a redemption and queue its burn and payout",
    request_body = RedeemBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Alternative to the body's `idempotency_key`")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`queued`, or `duplicate` for a key seen before", body = RedeemAnswer),
        (status = 400, description = "`Insufficient balance`", body = Detail),
        (status = 401, description = "`Invalid API key`", body = Detail),
        (status = 403, description = "`Missing API key`, or KYC needed above the threshold", body = Detail),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 413, description = "The body is larger than MAX_BODY_SIZE", body = Detail),
        (status = 415, description = "Content-Type is not JSON", body = Detail),
        (status = 422, description = "An invalid field, or a key reused with another request", body = Detail),
        (status = 429, description = "The key's rate limit is used up, or this address sent too many wrong keys (`Retry-After`)", body = Detail),
        (status = 503, description = "Nothing was recorded; retry", body = Detail),
    )
)]
#[tracing::instrument(skip_all, fields(requested_by = %operator.name))]
async fn redeem(
    operator: Operator,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RedeemAnswer>, Error> {
    let answer = async {
        let raw = read_capped(&headers, body, state.max_body_size).await?;
        require_json(&headers)?;
        let body: RedeemBody = parse_body(&raw)?;
        let idempotency_key = idempotency_key(&headers, body.idempotency_key.as_deref())?
            .ok_or_else(|| {
                Error::Validation(
                    "field `idempotency_key` (or the Idempotency-Key header) is required"
                        .to_owned(),
                )
            })?;
        let (method, address) = withdrawal(body.withdrawal_method, body.withdrawal_address)?;
        let command = RedeemCommand {
            user_id: identifier("user_id", body.user_id)?,
            amount: body.amount,
            method,
            address,
            idempotency_key,
            requested_by: operator.name,
        };
        let stored = store::reserve_redemption(&state.db, &command, state.kyc).await?;
        Ok::<_, Error>((command, stored))
    }
    .await;
    let (command, status, reservation) = match answer {
        Ok((command, Stored::Accepted(r))) => {
            state.outbox.notify();
            (command, CommandStatus::Queued, r)
        }
        Ok((command, Stored::Duplicate(r))) => (command, CommandStatus::Duplicate, r),
        Err(err) => {
            state.metrics.command("redeem", "rejected", err.reason());
            return Err(err);
        }
    };
    state.metrics.command("redeem", status.as_str(), "none");
    let Reservation {
        request_id,
        burn_amount,
        payout_amount,
    } = reservation;
    tracing::info!(%request_id, status = status.as_str(), "redeem command answered");
    Ok(Json(RedeemAnswer {
        amount: command.amount,
        burn_amount,
        fee_amount: burn_amount.checked_sub(payout_amount).unwrap_or(Wei::ZERO),
        payout_amount,
        request_id,
        status,
        user_id: command.user_id,
        withdrawal_method: command.method.into(),
    }))
}

/// The idempotency key from the body or the header; both must agree.
fn idempotency_key(headers: &HeaderMap, body: Option<&str>) -> Result<Option<String>, Error> {
    let header = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            Error::Validation("header `Idempotency-Key` must be printable ASCII".to_owned())
        })?),
    };
    let key = match (body, header) {
        (Some(b), Some(h)) if b != h => {
            return Err(Error::Validation(
                "field `idempotency_key` and the Idempotency-Key header differ".to_owned(),
            ));
        }
        (Some(key), _) | (None, Some(key)) => key,
        (None, None) => return Ok(None),
    };
    let key = identifier("idempotency_key", key.to_owned())?;
    if is_internal_tx_id(&key) {
        return Err(Error::Validation(format!(
            "field `idempotency_key` must not start with {}: those keys are the services' own",
            INTERNAL_TX_ID_PREFIXES.join(", ")
        )));
    }
    Ok(Some(key))
}

/// A mint's reason: it goes on chain as a `bytes32` code, so one that would
/// not fit is refused here rather than after the mint was queued.
fn reason(value: String) -> Result<String, Error> {
    let value = text("reason", value)?;
    encode_reason(&value).map_err(|err| {
        Error::Validation(match err {
            ReasonError::TooLong { len } => format!(
                "field `reason` is {len} bytes long; at most {MAX_REASON_LEN} bytes fit on chain"
            ),
            other => format!("field `reason`: {other}"),
        })
    })?;
    Ok(value)
}

/// The method and its destination; crypto needs an Ethereum address,
/// lower-case or EIP-55 checksummed.
fn withdrawal(
    method: Method,
    address: Option<String>,
) -> Result<(WithdrawalMethod, Option<String>), Error> {
    let address = address.filter(|a| !a.trim().is_empty());
    match method {
        Method::Crypto => {
            let address = address.ok_or_else(|| {
                Error::Validation(
                    "field `withdrawal_address` is required for crypto withdrawals".to_owned(),
                )
            })?;
            if !is_valid_eth_address(&address) {
                return Err(Error::Validation(
                    "field `withdrawal_address` must be a 0x-prefixed Ethereum address, lower-case or EIP-55 checksummed"
                        .to_owned(),
                ));
            }
            Ok((WithdrawalMethod::Crypto, Some(address)))
        }
        Method::BankTransfer | Method::Paypal => {
            let address = address.map(|a| text("withdrawal_address", a)).transpose()?;
            let method = match method {
                Method::Paypal => WithdrawalMethod::Paypal,
                _ => WithdrawalMethod::BankTransfer,
            };
            Ok((method, address))
        }
    }
}

/// `0x` + 40 hex digits, either all lower-case or matching the EIP-55
/// checksum (a mixed-case address with a wrong checksum is a typo).
pub fn is_valid_eth_address(address: &str) -> bool {
    let Some(hex) = address.strip_prefix("0x") else {
        return false;
    };
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    if !hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return true;
    }
    alloy_primitives::Address::parse_checksummed(address, None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_must_be_lower_case_or_correctly_checksummed() {
        // EIP-55's own examples.
        assert!(is_valid_eth_address(
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        ));
        assert!(is_valid_eth_address(
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
        ));
        assert!(is_valid_eth_address(
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        ));
        // One letter's case flipped.
        assert!(!is_valid_eth_address(
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
        ));
        assert!(!is_valid_eth_address(
            "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        ));
        assert!(!is_valid_eth_address(
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea"
        ));
        assert!(!is_valid_eth_address(
            "0xzzaeb6053f3e94c9b9a09f33669435e7ef1beaed"
        ));
    }

    #[test]
    fn answers_serialize_as_the_json_maps_they_replaced() {
        let amount = Wei::parse("100.5").unwrap();
        let mint = MintAnswer {
            amount,
            reason: "booking".to_owned(),
            status: CommandStatus::Queued,
            tx_id: "mint_key_1".to_owned(),
            user_id: "u1".to_owned(),
        };
        let before = serde_json::json!({
            "status": "queued",
            "tx_id": "mint_key_1",
            "user_id": "u1",
            "amount": amount,
            "reason": "booking",
        });
        assert_eq!(
            serde_json::to_string(&mint).unwrap(),
            serde_json::to_string(&before).unwrap()
        );

        let request_id = uuid::Uuid::now_v7();
        let (burn, payout) = (Wei::parse("500").unwrap(), Wei::parse("490").unwrap());
        let redeem = RedeemAnswer {
            amount: burn,
            burn_amount: burn,
            fee_amount: Wei::parse("10").unwrap(),
            payout_amount: payout,
            request_id,
            status: CommandStatus::Duplicate,
            user_id: "u1".to_owned(),
            withdrawal_method: WithdrawalMethod::BankTransfer.into(),
        };
        let before = serde_json::json!({
            "status": "duplicate",
            "request_id": request_id,
            "user_id": "u1",
            "amount": burn,
            "burn_amount": burn,
            "payout_amount": payout,
            "fee_amount": Wei::parse("10").unwrap(),
            "withdrawal_method": "bank_transfer",
        });
        assert_eq!(
            serde_json::to_string(&redeem).unwrap(),
            serde_json::to_string(&before).unwrap()
        );
        for (method, name) in [
            (WithdrawalMethod::BankTransfer, "bank_transfer"),
            (WithdrawalMethod::Paypal, "paypal"),
            (WithdrawalMethod::Crypto, "crypto"),
        ] {
            assert_eq!(
                serde_json::to_value(Method::from(method)).unwrap(),
                serde_json::json!(name)
            );
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        let err = |raw: &str| match parse_body::<MintBody>(raw.as_bytes()) {
            Err(Error::Validation(detail)) => detail,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(r#"{"user_id":"u","reason":"r"}"#),
            "missing field `amount`"
        );
        let detail = err(r#"{"user_id":"u","amount":-5,"reason":"r"}"#);
        assert!(detail.starts_with("field `amount`"), "{detail}");
        let detail = err(r#"{"user_id":"u","amount":"abc","reason":"r"}"#);
        assert!(detail.starts_with("field `amount`"), "{detail}");
        assert_eq!(err("[1]"), "body must be a JSON object");
        assert!(err("{").starts_with("body is not valid JSON"));
        let ok: MintBody = parse_body(br#"{"user_id":"u","amount":100.5,"reason":"r"}"#).unwrap();
        assert_eq!(ok.amount, Wei::parse("100.5").unwrap());
    }
}
