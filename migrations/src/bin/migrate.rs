//! `migrate`: applies, rolls back or inspects the HAVEN schema.
//!
//! ```text
//! migrate --database-url postgres://postgres@127.0.0.1/haven up
//! DATABASE_URL=sqlite://target/haven-dev/haven.db?mode=rwc migrate status
//! ```

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use haven_migrations::Migrator;
use sea_orm_migration::MigratorTrait;
use sea_orm_migration::sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Applies, rolls back or inspects the HAVEN database schema.
#[derive(Debug, Parser)]
#[command(name = "migrate", version)]
struct Cli {
    /// Database URL: `postgres://user:pass@host/db` or `sqlite://path/to/file.db?mode=rwc`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// How long to wait for the database to accept a connection.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT_SECS", default_value_t = 10)]
    connect_timeout_secs: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations (all of them unless --steps is given).
    Up {
        /// Apply at most this many migrations.
        #[arg(long, env = "MIGRATE_STEPS")]
        steps: Option<u32>,
    },
    /// Roll back applied migrations, newest first (one unless told otherwise).
    Down {
        /// Roll back this many migrations.
        #[arg(
            long,
            env = "MIGRATE_STEPS",
            default_value_t = 1,
            conflicts_with = "all"
        )]
        steps: u32,
        /// Roll back every applied migration.
        #[arg(long, env = "MIGRATE_ALL")]
        all: bool,
    },
    /// List every migration and whether it is applied.
    Status,
    /// Drop every table and type, then apply every migration. Destroys all data.
    Fresh,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let db = connect(
        &cli.database_url,
        Duration::from_secs(cli.connect_timeout_secs),
    )
    .await?;
    match cli.command {
        Command::Up { steps } => {
            Migrator::up(&db, steps).await.context("migrating up")?;
            println!("migrations applied");
        }
        Command::Down { steps, all } => {
            Migrator::down(&db, if all { None } else { Some(steps) })
                .await
                .context("migrating down")?;
            println!("migrations rolled back");
        }
        Command::Status => {
            let migrations = Migrator::get_migration_with_status(&db)
                .await
                .context("reading migration status")?;
            for migration in migrations {
                println!("{:<8} {}", migration.status(), migration.name());
            }
        }
        Command::Fresh => {
            Migrator::fresh(&db)
                .await
                .context("recreating the schema")?;
            println!("schema recreated");
        }
    }
    db.close()
        .await
        .context("closing the database connection")?;
    Ok(())
}

/// Opens one connection. The URL is checked before any I/O so a typo gives
/// a one-line error naming the setting, and the URL itself (which may hold
/// a password) is never printed.
async fn connect(url: &str, timeout: Duration) -> anyhow::Result<DatabaseConnection> {
    let sqlite = url.starts_with("sqlite:");
    if !(sqlite || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite:");
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .sqlx_logging(false);
    if sqlite {
        // Create the file on first use, like `cargo xtask up` expects.
        options.map_sqlx_sqlite_opts(|opts| opts.create_if_missing(true).foreign_keys(true));
    }
    Database::connect(options)
        .await
        .context("cannot connect to DATABASE_URL")
}
