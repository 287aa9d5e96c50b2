//! Partner webhook signatures: the three schemes of SPEC.md, every comparison
//! in constant time, several active secrets per partner for rotation.
//!
//! 1. `X-Aurora-Signature` / `X-Tribe-Signature`: hex HMAC-SHA256 of the raw body.
//! 2. The same header over the canonical JSON the seed guide's senders sign:
//!    `json.dumps(payload, sort_keys=True)` in Python, reproduced byte for byte
//!    by [`python_canonical_json`].
//! 3. Standard Webhooks: `webhook-id`, `webhook-timestamp` (within
//!    [`STANDARD_TOLERANCE_SECS`] either way) and `webhook-signature`, a
//!    space-separated list of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
//!
//! The receiving side ([`verify_request`], [`PartnerSecrets`]), the partners'
//! side ([`sender`], for tools and tests) and the canonical form of scheme 2
//! live in their own files. Everything is re-exported here, so callers'
//! paths (`signature::PartnerSecrets`, `signature::sender`) do not depend on
//! the file layout.

mod canonical;
#[cfg(test)]
mod fixtures;
pub mod sender;
mod verify;

pub use canonical::python_canonical_json;
pub use verify::{
    Partner, PartnerSecrets, Refusal, STANDARD_TOLERANCE_SECS, SecretsError, StandardError,
    Verified, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, verify_request,
};
