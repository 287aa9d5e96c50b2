//! `spawn_app`: reward-calculator running in-process against fresh dependencies.

use clap::Parser as _;
use haven_common::testing::app::{TestApp, TestDeps};
use reward_calculator::{Config, Error};

/// The running service and the dependencies it talks to (through proxies a
/// test can cut).
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
}

/// Starts reward-calculator on a random port against a fresh database and broker namespace.
pub async fn spawn_app() -> Spawned {
    let deps = TestDeps::new().await;
    let args = std::iter::once("reward-calculator".to_owned()).chain(deps.args());
    let config = Config::try_parse_from(args).expect("test settings parse");
    let app =
        TestApp::spawn(|listener, shutdown| reward_calculator::run(config, listener, shutdown))
            .await;
    Spawned { app, deps }
}
