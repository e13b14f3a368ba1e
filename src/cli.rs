//! The command line: one binary, one subcommand per role, plus operator tools.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// AtomicSeats: a ticket-booking backend that never oversells.
///
/// Configuration comes from `config/default.toml`, `config/$ATOMICSEATS_ENV.toml` and
/// environment variables (`ATOMICSEATS__SECTION__KEY`, or the seed's names such as
/// `DATABASE_URL`); `atomicseats config` prints the result.
#[derive(Debug, Parser)]
#[command(name = "atomicseats", version, propagate_version = true)]
pub struct Cli {
    /// Directory holding `default.toml` and the environment files. The defaults are also
    /// compiled in, so the directory may be absent.
    #[arg(
        long,
        env = "ATOMICSEATS_CONFIG_DIR",
        default_value = "config",
        global = true
    )]
    pub config_dir: PathBuf,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP JSON API (and the reconciliation schedule).
    ///
    /// Applies pending migrations first when `database.migrate_on_start` is true.
    Serve,
    /// Run the booking worker: consume booking requests, decide them in batches, commit to
    /// PostgreSQL.
    WorkBookings,
    /// Run the notification worker: send booking-outcome emails over SMTP.
    WorkNotify,
    /// Run one reconciliation pass (cache rebuild, invariant check, waitlist sweep, outbox
    /// re-publish) and exit non-zero if drift was found; with `--schedule`, loop on the cron
    /// schedule from `reconcile.schedule`.
    Reconcile {
        /// Loop on `reconcile.schedule` instead of running one pass.
        #[arg(long)]
        schedule: bool,
    },
    /// Run every role in one process with in-process queues: the single-node install.
    ///
    /// If one role fails, the others are stopped and the process exits non-zero, naming it.
    All,
    /// Apply pending database migrations and exit.
    Migrate {
        /// Only list pending migrations; apply nothing.
        #[arg(long)]
        status: bool,
    },
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Manage users (e.g. create the first admin).
    Users {
        /// What to do.
        #[command(subcommand)]
        command: UsersCommand,
    },
}

/// `atomicseats users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user of any role. The password is read from `ATOMICSEATS_NEW_USER_PASSWORD`, or
    /// else from the first line of standard input (never from the command line, where it would
    /// end up in shell history and `ps`).
    Create {
        /// Login name (3–32 of `A-Z a-z 0-9 _ . -`).
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        /// Display name (defaults to the username).
        #[arg(long)]
        name: Option<String>,
        /// `guest`, `host` or `admin`.
        #[arg(long, default_value = "guest")]
        role: String,
    },
    /// Mark an account's email address as confirmed (an operator vouches for it: support, or a
    /// local install whose mail is only logged).
    Verify {
        /// The account's email address.
        #[arg(long)]
        email: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_role_is_a_subcommand() {
        let cmd = Cli::command();
        let names: Vec<_> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for role in [
            "serve",
            "work-bookings",
            "work-notify",
            "reconcile",
            "all",
            "migrate",
            "config",
        ] {
            assert!(names.iter().any(|n| n == role), "missing subcommand {role}");
        }
    }
}
