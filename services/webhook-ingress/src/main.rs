//! The `webhook-ingress` binary: settings, logging, then [`webhook_ingress::run`]
//! until SIGINT/SIGTERM.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    haven_common::service::launch::<webhook_ingress::Config, _, _, _>(webhook_ingress::run).await
}
