//! `atomicseats`: parse the command line, load settings, start telemetry, dispatch the role.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use atomicseats::cli::{Cli, Command, UsersCommand};
use atomicseats::config::Settings;
use atomicseats::roles::{self, Process};
use atomicseats::{db, shutdown, telemetry};
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// Every allocation of the process (see Cargo.toml: glibc's malloc was a fifth of the server's
/// CPU under booking load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings = match Settings::load(&cli.config_dir, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("atomicseats: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Command::Config) {
        print!("{}", settings.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    telemetry::init(&settings.log);
    match run(cli.command, settings).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = ?e, "atomicseats failed");
            eprintln!("atomicseats: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    let role = match &command {
        Command::Serve => "serve",
        Command::WorkBookings => "work-bookings",
        Command::WorkNotify => "work-notify",
        Command::Reconcile { .. } => "reconcile",
        Command::All => "all",
        Command::Migrate { .. } | Command::Config | Command::Users { .. } => "admin",
    };
    let url = db::connection_url(&settings.database, role)?;
    let migrate_on_start = settings.database.migrate_on_start;
    let drain = Duration::from_secs(settings.http.shutdown_timeout_secs + 5);
    let state = atomicseats::app::build_state(settings, role)?;
    let token = CancellationToken::new();
    shutdown::cancel_on_signal(token.clone());

    match command {
        Command::Migrate { status: true } => {
            let pending = db::migrate::pending(&url).await?;
            println!("{} pending migration(s)", pending.len());
            for name in pending {
                println!("  {name}");
            }
        }
        Command::Migrate { status: false } => {
            let applied = db::migrate::run_pending(&url).await?;
            println!("applied {} migration(s)", applied.len());
            for v in applied {
                println!("  {v}");
            }
        }
        Command::Serve | Command::All => {
            if migrate_on_start {
                let applied = db::migrate::run_pending(&url).await?;
                tracing::info!(
                    migrations.applied = applied.len(),
                    "database schema up to date"
                );
            }
            let process = if matches!(command, Command::All) {
                Process::All
            } else {
                Process::Serve
            };
            run_roles(process, &state, token, drain).await?;
        }
        Command::WorkBookings => run_roles(Process::WorkBookings, &state, token, drain).await?,
        Command::WorkNotify => run_roles(Process::WorkNotify, &state, token, drain).await?,
        Command::Reconcile { schedule: true } => {
            run_roles(Process::Reconcile, &state, token, drain).await?;
        }
        Command::Reconcile { schedule: false } => {
            let report = atomicseats::reconcile::run_once(&state).await?;
            if !report.drift.is_empty() {
                eprintln!(
                    "reconcile: {} event(s) with seat counter drift",
                    report.drift.len()
                );
                for d in &report.drift {
                    eprintln!(
                        "  event {}: reserved_seats = {}, confirmed seats = {}",
                        d.event_id, d.reserved_seats, d.confirmed_seats
                    );
                }
                return Ok(ExitCode::from(3));
            }
            if !report.type_drift.is_empty()
                || !report.money_drift.is_empty()
                || !report.stuck.is_empty()
            {
                for c in &report.stuck {
                    eprintln!(
                        "  booking {} of event {}: {} for {} s",
                        c.booking_id, c.event_id, c.kind, c.late_secs
                    );
                }
                for d in &report.type_drift {
                    eprintln!(
                        "  ticket type {}: sold = {}, booked seats = {}",
                        d.ticket_type_id, d.sold, d.booked
                    );
                }
                for d in &report.money_drift {
                    eprintln!(
                        "  event {}: captured − refunded = {}, paid bookings keep {}",
                        d.event_id, d.net, d.expected
                    );
                }
                return Ok(ExitCode::from(3));
            }
        }
        Command::Users {
            command:
                UsersCommand::Create {
                    username,
                    email,
                    name,
                    role,
                },
        } => {
            let role = atomicseats::users::domain::Role::parse(&role)
                .map_err(|e| anyhow::anyhow!("--role {e}"))?;
            let password = match std::env::var("ATOMICSEATS_NEW_USER_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let user = atomicseats::users::create_from_cli(
                &state,
                &username,
                &email,
                name.as_deref(),
                role,
                password,
            )
            .await?;
            println!(
                "created user {} ({}) with role {}",
                user.id, user.username, user.role
            );
        }
        Command::Users {
            command: UsersCommand::Verify { email },
        } => {
            if atomicseats::users::verify_from_cli(&state, &email).await? {
                println!("{email}: address confirmed");
            } else {
                println!("{email}: already confirmed");
            }
        }
        Command::Config => {
            // Handled before telemetry starts; nothing to run.
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `process`'s roles, plus the internal metrics listener, until `token` (or a failed role)
/// stops them.
async fn run_roles(
    process: Process,
    state: &atomicseats::state::AppState,
    token: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let roles = roles::with_metrics(roles::of(process, state, &token), state, &token);
    roles::run_all(roles, token, drain).await
}
