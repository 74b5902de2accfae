//! Operating the binary: which configuration file is used, shell
//! completions and the manual page.
//!
//! The configuration is, in this order: `--config FILE`, the file named by
//! `TICKETD_CONFIG`, [`DEFAULT_CONFIG`] when it exists, and only then the
//! embedded demo configuration (said on stderr, so `ticketd run` with
//! nothing set up still works as the README's first command).

use super::{Cli, CliError};
use std::path::{Path, PathBuf};

/// Where a packaged installation keeps its configuration.
pub const DEFAULT_CONFIG: &str = "/etc/ticketd/ticketd.toml";

/// The environment variable that names the configuration file.
pub const CONFIG_ENV: &str = "TICKETD_CONFIG";

/// Which configuration a command uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChoice {
    /// A file (from `--config`, `TICKETD_CONFIG` or the default path).
    File(PathBuf),
    /// The embedded demo configuration.
    Embedded,
}

/// Pure choice of the configuration: `flag` is `--config`, `env` the value
/// of `TICKETD_CONFIG`, `default_exists` whether [`DEFAULT_CONFIG`] exists.
pub fn choose_config(
    flag: Option<&Path>,
    env: Option<&std::ffi::OsStr>,
    default_exists: bool,
) -> ConfigChoice {
    if let Some(f) = flag {
        return ConfigChoice::File(f.to_path_buf());
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        return ConfigChoice::File(PathBuf::from(e));
    }
    if default_exists {
        return ConfigChoice::File(PathBuf::from(DEFAULT_CONFIG));
    }
    ConfigChoice::Embedded
}

/// The configuration file this process uses (`None`: the embedded demo,
/// announced on stderr).
pub fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    let env = std::env::var_os(CONFIG_ENV);
    match choose_config(flag, env.as_deref(), Path::new(DEFAULT_CONFIG).exists()) {
        ConfigChoice::File(p) => Some(p),
        ConfigChoice::Embedded => {
            eprintln!(
                "ticketd: no --config, no {CONFIG_ENV} and no {DEFAULT_CONFIG}: using the embedded demo configuration"
            );
            None
        }
    }
}

/// `ticketd completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ticketd", &mut out);
    write_stdout(&out)
}

/// `ticketd man`: the manual page (roff) on stdout.
pub fn man() -> Result<(), CliError> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    write_stdout(&out)
}

/// Write bytes to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The exit status of `run --once`: an error when a mailbox or a delivery
/// failed (the summary above says which).
pub fn once_status(mailbox_errors: usize, undelivered: usize) -> Result<(), CliError> {
    if mailbox_errors == 0 && undelivered == 0 {
        return Ok(());
    }
    Err(CliError {
        message: format!(
            "run --once: {mailbox_errors} mailbox errors, {undelivered} mails not delivered"
        ),
        code: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn run_once_fails_on_any_error() {
        assert!(once_status(0, 0).is_ok());
        assert_eq!(once_status(1, 0).map_err(|e| e.code), Err(1));
        assert_eq!(once_status(0, 2).map_err(|e| e.code), Err(1));
    }

    #[test]
    fn config_choice_order() {
        let flag = Path::new("/x/flag.toml");
        assert_eq!(
            choose_config(Some(flag), Some(OsStr::new("/x/env.toml")), true),
            ConfigChoice::File(flag.into())
        );
        assert_eq!(
            choose_config(None, Some(OsStr::new("/x/env.toml")), true),
            ConfigChoice::File("/x/env.toml".into())
        );
        assert_eq!(
            choose_config(None, None, true),
            ConfigChoice::File(DEFAULT_CONFIG.into())
        );
        assert_eq!(
            choose_config(None, Some(OsStr::new("")), false),
            ConfigChoice::Embedded
        );
        assert_eq!(choose_config(None, None, false), ConfigChoice::Embedded);
    }
}
