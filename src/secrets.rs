//! Secrets and OAuth tokens, resolved when a connection is made (never at
//! config load, never logged). An XOAUTH2 token comes from `token_file` (read
//! each time) or `token_command` (run to get a fresh token; re-run when the
//! server rejects the cached one).

use crate::config::{resolve_secret, Credentials};
use std::sync::Mutex;
use std::time::Duration;

/// What to authenticate with, resolved.
#[derive(Clone, PartialEq, Eq)]
pub enum Login {
    None,
    Password { username: String, password: String },
    Xoauth2 { username: String, token: String },
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Login::None => f.write_str("Login::None"),
            Login::Password { username, .. } => write!(f, "Login::Password({username}, ***)"),
            Login::Xoauth2 { username, .. } => write!(f, "Login::Xoauth2({username}, ***)"),
        }
    }
}

/// Resolves credentials, caching a command-issued token until it is
/// rejected.
#[derive(Debug)]
pub struct Secrets {
    what: String,
    credentials: Credentials,
    cached_token: Mutex<Option<String>>,
}

impl Secrets {
    pub fn new(what: &str, credentials: Credentials) -> Self {
        Secrets {
            what: what.to_string(),
            credentials,
            cached_token: Mutex::new(None),
        }
    }

    /// The login to use now.
    pub async fn login(&self) -> Result<Login, String> {
        match &self.credentials {
            Credentials::None => Ok(Login::None),
            Credentials::Password { username, secret } => Ok(Login::Password {
                username: username.clone(),
                password: resolve_secret(&self.what, secret)?,
            }),
            Credentials::Xoauth2 {
                username,
                token_command,
                token_file,
            } => {
                let cached = self.cached_token.lock().ok().and_then(|g| g.clone());
                let token = match (cached, token_command, token_file) {
                    (Some(t), _, _) => t,
                    (None, Some(cmd), _) => {
                        let t = run_token_command(cmd).await;
                        crate::observe::record(crate::observe::Event::TokenCommand {
                            what: &self.what,
                            ok: t.is_ok(),
                        });
                        let t = t.map_err(|e| format!("{}: {e}", self.what))?;
                        if let Ok(mut g) = self.cached_token.lock() {
                            *g = Some(t.clone());
                        }
                        t
                    }
                    (None, None, Some(file)) => std::fs::read_to_string(file)
                        .map(|s| s.trim().to_string())
                        .map_err(|e| {
                            format!(
                                "{}: cannot read token file {}: {e}",
                                self.what,
                                file.display()
                            )
                        })?,
                    (None, None, None) => return Err(format!("{}: no token source", self.what)),
                };
                if token.is_empty() {
                    return Err(format!("{}: the OAuth token is empty", self.what));
                }
                Ok(Login::Xoauth2 {
                    username: username.clone(),
                    token,
                })
            }
        }
    }

    /// The server rejected our credentials: forget a cached token so the
    /// next login runs `token_command` again.
    pub fn rejected(&self) {
        if let Ok(mut g) = self.cached_token.lock() {
            *g = None;
        }
    }
}

/// Run a token command through `sh -c` (30 s limit); its trimmed stdout is
/// the token.
async fn run_token_command(cmd: &str) -> Result<String, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .map_err(|_| "token_command timed out after 30 s".to_string())?
        .map_err(|e| format!("cannot run token_command: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "token_command failed ({}): {}",
            out.status,
            err.lines().next().unwrap_or("")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The SASL XOAUTH2 initial response (before base64).
pub fn xoauth2_response(username: &str, token: &str) -> String {
    format!("user={username}\x01auth=Bearer {token}\x01\x01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_command_is_cached_until_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counter = dir.path().join("n");
        let cmd = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo token-$n",
            counter.display()
        );
        let s = Secrets::new(
            "imap",
            Credentials::Xoauth2 {
                username: "u@x.example".into(),
                token_command: Some(cmd),
                token_file: None,
            },
        );
        let t1 = s.login().await.expect("login");
        let t2 = s.login().await.expect("login");
        assert_eq!(t1, t2, "cached");
        s.rejected();
        let t3 = s.login().await.expect("login");
        assert_eq!(
            t3,
            Login::Xoauth2 {
                username: "u@x.example".into(),
                token: "token-2".into()
            }
        );
        assert!(
            !format!("{t3:?}").contains("token-2"),
            "Debug never shows secrets"
        );
    }

    #[test]
    fn xoauth2_format() {
        assert_eq!(
            xoauth2_response("a@b", "t"),
            "user=a@b\x01auth=Bearer t\x01\x01"
        );
    }
}
