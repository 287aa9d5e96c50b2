//! `spawn_app`: redemption-payout running in-process against fresh dependencies.

use clap::Parser as _;
use haven_common::testing::app::{TestApp, TestDeps};
use redemption_payout::{Config, Error};

/// The running service and the dependencies it talks to (through proxies a
/// test can cut).
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
}

/// Starts redemption-payout on a random port against a fresh database and broker namespace.
pub async fn spawn_app() -> Spawned {
    let deps = TestDeps::new().await;
    let args = std::iter::once("redemption-payout".to_owned()).chain(deps.args());
    let config = Config::try_parse_from(args).expect("test settings parse");
    let app =
        TestApp::spawn(|listener, shutdown| redemption_payout::run(config, listener, shutdown))
            .await;
    Spawned { app, deps }
}
