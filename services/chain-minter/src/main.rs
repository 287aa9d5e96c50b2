//! The `chain-minter` binary: settings, logging, then [`chain_minter::run`] until
//! SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    haven_common::service::launch::<chain_minter::Config, _, _, _>(chain_minter::run).await
}
