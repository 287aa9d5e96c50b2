//! The payout provider: the outside party that moves the money.
//!
//! The contract is small JSON over HTTP (documented in
//! `docs/payout-provider.md`):
//!
//! - `POST {base}/payouts` with an `Idempotency-Key` header (the redemption
//!   id) and a [`PayoutRequest`] body creates a payout, or returns the one
//!   already created under that key, as a [`Payout`] (`{id, status}`).
//! - `GET {base}/payouts/{id}` returns the payout's current [`Payout`].
//! - `GET {base}/payouts?reference={redemption id}` answers whether a payout
//!   exists for a reference, as a [`PayoutLookup`]: `{"reference", "payouts":
//!   [...]}`. An empty list is the provider's word that there is none; any
//!   other answer (a bare 404, another reference, not JSON) proves nothing.
//!
//! A status is `pending`, `paid` or `failed`. Timeouts, connection failures
//! and 5xx are retried with the same key, so the provider pays at most once
//! per redemption. A 4xx answer to a creation is a refusal for good (except
//! 401/403/408/409/425/429, see [`ErrorClass`]) only when no creation under
//! that key may have reached the provider before ([`CreateFailure`]); after
//! that, the saga asks by reference instead of guessing.
//!
//! [`client`] is the client, [`stand_in`] a local stand-in provider for the
//! development stack and the tests.

pub mod client;
pub mod stand_in;

use alloy_primitives::U256;
use haven_common::money::{WEI_PER_HNV, Wei};
use serde::{Deserialize, Serialize};

pub use client::{CreateFailure, ErrorClass, PayoutClient, ProviderError};

/// How the money is paid, as the provider spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// To the user's bank account on file with the provider.
    BankTransfer,
    /// To the user's PayPal account.
    Paypal,
    /// To `destination`, a crypto address.
    Crypto,
}

impl Method {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::BankTransfer => "bank_transfer",
            Method::Paypal => "paypal",
            Method::Crypto => "crypto",
        }
    }
}

/// The body of `POST /payouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRequest {
    /// The redemption id (also the `Idempotency-Key`).
    pub reference: String,
    /// HAVEN's user id (the partners' id), the provider's account holder.
    pub user_id: String,
    /// How to pay.
    pub method: Method,
    /// Where: the crypto address, or an account reference the user gave.
    pub destination: Option<String>,
    /// Amount in `currency`, an exact decimal with two places (`"19.60"`).
    pub amount: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The HNV redeemed for it (after the 2% fee), an exact decimal, for the statement.
    pub hnv_amount: String,
}

/// Where a payout is at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Accepted, money not yet sent.
    Pending,
    /// Money sent: final.
    Paid,
    /// Will never be paid (rejected by the bank, closed account...): final.
    Failed,
}

/// The provider's answer to both calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// The provider's id of the payout.
    pub id: String,
    pub status: PayoutStatus,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// The provider's answer to `GET /payouts?reference=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutLookup {
    /// The reference asked about, echoed: an answer about another one
    /// proves nothing.
    pub reference: String,
    /// The payouts created for it: none, or the one.
    pub payouts: Vec<Payout>,
}

/// Minor units of every payout currency (cents).
const CURRENCY_DECIMALS: u32 = 2;

/// What a payout of some HNV is worth: the reference value of one HNV in
/// the payout currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiatTerms {
    /// ISO 4217 code.
    pub currency: String,
    /// Value of one HNV, as an exact decimal held in wei-like units (10^-18).
    pub hnv_value: Wei,
}

impl FiatTerms {
    /// The fiat amount of `payout` HNV, rounded down to the cent, as an
    /// exact decimal string with two places. Exact: the product is taken in
    /// 256 bits (10^27 wei x 10^18 scale does not fit 128).
    pub fn amount_of(&self, payout: Wei) -> String {
        let cents = U256::from(payout.as_wei())
            * U256::from(self.hnv_value.as_wei())
            * U256::from(10u64.pow(CURRENCY_DECIMALS))
            / (U256::from(WEI_PER_HNV) * U256::from(WEI_PER_HNV));
        let text = cents.to_string();
        let digits = CURRENCY_DECIMALS as usize;
        let padded = format!("{text:0>width$}", width = digits + 1);
        let (whole, fraction) = padded.split_at(padded.len() - digits);
        format!("{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn terms(value: &str) -> FiatTerms {
        FiatTerms {
            currency: "CAD".into(),
            hnv_value: Wei::parse(value).unwrap(),
        }
    }

    #[test]
    fn fiat_amounts_are_exact_and_rounded_down_to_the_cent() {
        let cad = terms("0.10");
        assert_eq!(cad.amount_of(Wei::parse("196").unwrap()), "19.60");
        assert_eq!(cad.amount_of(Wei::parse("490").unwrap()), "49.00");
        assert_eq!(cad.amount_of(Wei::parse("0.1").unwrap()), "0.01");
        assert_eq!(cad.amount_of(Wei::parse("0.09").unwrap()), "0.00");
        assert_eq!(cad.amount_of(Wei::parse("0.199999").unwrap()), "0.01");
        assert_eq!(cad.amount_of(Wei::SUPPLY_CAP), "100000000.00");
        assert_eq!(
            terms("1.234567").amount_of(Wei::parse("3").unwrap()),
            "3.70"
        );
    }

    proptest! {
        /// Never more than the exact value, never a cent less.
        #[test]
        fn fiat_amount_is_the_floor_of_the_exact_value(hnv in 0u64..1_000_000_000, milli in 1u64..100_000) {
            let terms = FiatTerms { currency: "CAD".into(), hnv_value: Wei::from_wei(u128::from(milli) * WEI_PER_HNV / 1000) };
            let text = terms.amount_of(Wei::from_hnv(u128::from(hnv)).unwrap());
            let (whole, cents) = text.split_once('.').unwrap();
            prop_assert_eq!(cents.len(), 2);
            let got = whole.parse::<u128>().unwrap() * 100 + cents.parse::<u128>().unwrap();
            // hnv x milli / 1000 in cents = hnv x milli / 10, floored.
            prop_assert_eq!(got, u128::from(hnv) * u128::from(milli) / 10);
        }
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        let payout: Payout = serde_json::from_str(r#"{"id":"po_1","status":"pending"}"#).unwrap();
        assert_eq!(payout.status, PayoutStatus::Pending);
        assert_eq!(payout.failure_reason, None);
        let failed: Payout = serde_json::from_str(
            r#"{"id":"po_2","status":"failed","failure_reason":"account closed"}"#,
        )
        .unwrap();
        assert_eq!(failed.failure_reason.as_deref(), Some("account closed"));
        assert!(serde_json::from_str::<Payout>(r#"{"id":"po_3","status":"lost"}"#).is_err());
        let none: PayoutLookup = serde_json::from_str(r#"{"reference":"r","payouts":[]}"#).unwrap();
        assert!(none.payouts.is_empty());
        assert!(
            serde_json::from_str::<PayoutLookup>(r#"{"detail":"Not found"}"#).is_err(),
            "a bare error body is no answer"
        );
        let request = PayoutRequest {
            reference: "r".into(),
            user_id: "u".into(),
            method: Method::BankTransfer,
            destination: None,
            amount: "19.60".into(),
            currency: "CAD".into(),
            hnv_amount: "196.0".into(),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"reference":"r","user_id":"u","method":"bank_transfer","destination":null,"amount":"19.60","currency":"CAD","hnv_amount":"196.0"})
        );
    }
}
