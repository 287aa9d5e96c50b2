//! The `redemption-payout` binary: settings, logging, then [`redemption_payout::run`] until
//! SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    haven_common::service::launch::<redemption_payout::Config, _, _, _>(redemption_payout::run)
        .await
}
