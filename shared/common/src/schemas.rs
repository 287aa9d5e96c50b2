//! The OpenAPI schemas and tag shared by every service's document.
//!
//! A module of their own so that the handlers annotated with them
//! ([`crate::health`]) and the document that lists them ([`crate::openapi`],
//! which re-exports them) both import this one and never each other.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// Tag of the operations every service serves.
pub const OPERATIONS_TAG: &str = "operations";

/// The body of every error answer: `{"detail": "..."}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct Detail {
    /// What went wrong; for a 4xx, what to fix.
    #[schema(example = "User not found")]
    pub detail: String,
}

/// An amount of HNV as an exact JSON decimal number (`240.0`, `242.4`, at
/// most 18 decimals): the schema of every amount in the documents
/// (`haven_common::money::Wei` on the wire).
#[derive(Debug, Clone, Copy)]
pub struct HnvAmount;

impl PartialSchema for HnvAmount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Number))
            .description(Some(
                "An amount of HNV as an exact decimal number with at most 18 decimals \
                 (1 HNV = 10^18 wei); written exactly, never with float artefacts.",
            ))
            .examples([serde_json::json!(242.4)])
            .into()
    }
}

impl ToSchema for HnvAmount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HnvAmount")
    }
}
