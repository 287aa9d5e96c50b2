//! Amounts in messages: integer base units (wei, 10^-18 HNV) written as a
//! decimal string, because JSON numbers above 2^53 lose precision in many
//! parsers and `u128` has no JSON number form that every consumer reads exactly.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// `#[serde(with = "haven_messages::wei")]` for a `u128` amount in wei.
pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Accepts only a string of ASCII digits (no sign, no decimal point, no exponent).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(D::Error::custom(format!(
            "amount `{text}` is not an integer number of wei"
        )));
    }
    text.parse()
        .map_err(|_| D::Error::custom(format!("amount `{text}` is out of range")))
}
