//! `spawn_app`: read-api running in-process against fresh dependencies.

use clap::Parser as _;
use haven_common::testing::app::{TestApp, TestDeps};
use read_api::{Config, Error};

/// The running service and the dependencies it talks to (through proxies a
/// test can cut).
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
}

/// Starts read-api on a random port against a fresh database.
pub async fn spawn_app() -> Spawned {
    let deps = TestDeps::new().await;
    let args = std::iter::once("read-api".to_owned()).chain(deps.database_args());
    let config = Config::try_parse_from(args).expect("test settings parse");
    let app = TestApp::spawn(|listener, shutdown| read_api::run(config, listener, shutdown)).await;
    Spawned { app, deps }
}
