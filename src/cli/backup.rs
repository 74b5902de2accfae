//! `ticketd backup FILE` and `ticketd restore FILE` (see [`crate::backup`]):
//! a running daemon writes the backup itself over the control socket;
//! otherwise the CLI opens the store. A restore needs an empty data
//! directory and no daemon.

use super::{CliError, CliResult};
use crate::backup::{self, Manifest};
use crate::config::Config;
use crate::control::{self, Request};
use crate::store::Store;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write (refused if it exists, unless --force).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// Print the manifest as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file to restore into the (empty) configured data directory.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only check the file (checksums, counts, schema); write nothing.
    #[arg(long)]
    pub verify: bool,
    /// Print the manifest as one JSON document.
    #[arg(long)]
    pub json: bool,
}

fn print(what: &str, file: &std::path::Path, m: &Manifest, json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
    } else {
        println!(
            "{what} {}: schema {}, {} entries in {} trees ({} cases, {} outbox entries), files: {}, taken {}, {}",
            file.display(),
            m.schema_version,
            m.entries,
            m.trees.len(),
            m.trees.get("cases").copied().unwrap_or(0),
            m.trees.get("outbox").copied().unwrap_or(0),
            if m.files.is_empty() { "-".to_string() } else { m.files.join(", ") },
            m.created_at.to_rfc3339(),
            m.checksum
        );
    }
    Ok(())
}

pub async fn backup_cmd(config: &Config, args: BackupArgs) -> CliResult {
    let file = std::path::absolute(&args.file).unwrap_or(args.file.clone());
    let req = Request::Backup {
        path: file.clone(),
        overwrite: args.force,
    };
    let m: Manifest = match control::call(&config.data_dir, &req).await? {
        Some(resp) => super::unwrap_response(resp).map_err(|e| CliError {
            message: format!(
                "the running daemon writes the backup, as its own user, and could not: {}",
                e.message
            ),
            code: e.code,
        })?,
        None => {
            let store = Store::open_with(&config.data_dir, config.store.cache_capacity)?;
            backup::write(&store, &file, args.force)?
        }
    };
    print("backup written:", &file, &m, args.json)
}

pub async fn restore_cmd(config: &Config, args: RestoreArgs) -> CliResult {
    if args.verify {
        let m = backup::verify(&args.file)?;
        return print("backup OK:", &args.file, &m, args.json);
    }
    let m = backup::restore(&args.file, &config.data_dir).map_err(|e| CliError {
        message: e.to_string(),
        code: match e {
            backup::BackupError::Refused(_) => 3,
            _ => 1,
        },
    })?;
    print(
        &format!("restored into {} from", config.data_dir.display()),
        &args.file,
        &m,
        args.json,
    )
}
