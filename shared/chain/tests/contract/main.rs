//! The HAVEN contract on a real anvil (the `@foundry-rs/anvil` npm package,
//! installed by `npm ci`): a fresh node and deployment per test.
//!
//! Gas figures are printed by the `gas` tests: run with `--no-capture`.

mod helpers;

mod burn;
mod cap;
mod emission;
mod gas;
mod governance;
mod pause;
mod references;
mod roles;
