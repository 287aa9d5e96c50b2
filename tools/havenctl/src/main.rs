//! The `havenctl` binary: parse, run one command, print, exit.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` exit 0; a usage error prints clap's message
    // and exits 2.
    let cli = havenctl::Cli::parse();
    let json = cli.json;
    // Logs (the dropped dead letters' reasons, warnings) go to stderr so
    // stdout stays the command's answer.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,havenctl=info".into()),
        )
        .try_init();
    match havenctl::execute(cli).await {
        Ok(output) => {
            println!("{}", output.render(json));
            ExitCode::from(output.status)
        }
        Err(err) => {
            eprintln!("havenctl: {}", err.line());
            ExitCode::from(1)
        }
    }
}
