//! The `reward-calculator` binary: settings, logging, then [`reward_calculator::run`] until
//! SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    haven_common::service::launch::<reward_calculator::Config, _, _, _>(reward_calculator::run)
        .await
}
