//! The fault matrix (`cargo xtask chaos`): see `load_tests::chaos`.

use std::process::ExitCode;

use clap::Parser as _;
use load_tests::chaos::{Args, run};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,sqlx=warn,lapin=warn,sea_orm_migration=warn,haven_chain=warn".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "the fault matrix found events lost or doubled (see {}/latest.md)",
                args.out.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("the fault matrix could not run: {err:#}");
            ExitCode::FAILURE
        }
    }
}
