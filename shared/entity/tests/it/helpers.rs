//! Shared fixtures.

use haven_entity::users::{self, FoundOrCreated, NewUser};
use sea_orm::DatabaseConnection;

/// A deterministic fake wallet address for a derivation index.
pub fn fake_wallet(index: u32) -> Result<String, std::convert::Infallible> {
    Ok(format!("0x{index:040x}"))
}

/// Creates (or finds) a Tribe user with this external id.
pub async fn user(db: &DatabaseConnection, external_id: &str) -> users::Model {
    let FoundOrCreated { user, .. } = users::find_or_create(
        db,
        NewUser {
            partner: "tribe".into(),
            external_id: external_id.into(),
            email: Some(format!("{external_id}@example.com")),
        },
        fake_wallet,
    )
    .await
    .unwrap();
    user
}
