//! The `[[mailboxes]]` and `[outbound]` sections: where mail comes from and
//! how it leaves. Each builder checks every mailbox and every key and
//! pushes all it finds into the [`Errors`] collector; a mailbox or the
//! outbound settings are built only when none of their keys is wrong.

use super::errors::Errors;
use super::{
    AfterTake, AuthKind, ByteSize, ConfigError, Credentials, EmailAddress, Endpoint, HumanDuration,
    ImapSettings, Mailbox, NamedAddress, Outbound, Role, SecretRef, SourceKind, TlsMode,
    TransportKind, DEFAULT_BRAND,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMailbox {
    name: toml::Spanned<String>,
    role: Role,
    address: EmailAddress,
    source: SourceKind,
    path: Option<toml::Spanned<String>>,
    #[serde(default)]
    demo_seed: bool,
    host: Option<toml::Spanned<String>>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    ca_file: Option<String>,
    username: Option<String>,
    auth: Option<AuthKind>,
    password_env: Option<String>,
    password_file: Option<String>,
    token_command: Option<String>,
    token_file: Option<String>,
    folder: Option<String>,
    #[serde(rename = "move")]
    move_to: Option<String>,
    quarantine: Option<String>,
    #[serde(default)]
    flag: bool,
    keyword: Option<String>,
    idle: Option<bool>,
    poll_interval: Option<HumanDuration>,
    reconcile_interval: Option<HumanDuration>,
    max_message_bytes: Option<ByteSize>,
    fetch_batch: Option<usize>,
    timeout: Option<HumanDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    pub(super) from_support: NamedAddress,
    from_privacy: NamedAddress,
    transport: toml::Spanned<TransportKind>,
    dir: Option<String>,
    host: Option<toml::Spanned<String>>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    ca_file: Option<String>,
    auth: Option<AuthKind>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    token_command: Option<String>,
    token_file: Option<String>,
    pool_size: Option<u32>,
    timeout: Option<HumanDuration>,
    max_age: Option<HumanDuration>,
    retry_initial: Option<HumanDuration>,
    rate_limit_per_hour: Option<u32>,
    brand: Option<toml::Spanned<String>>,
}

/// Every mailbox, each checked in full (name, duplicates, path or host,
/// TLS, credentials, `move`/`flag`). Mailboxes with an error are left out.
pub(super) fn build_mailboxes(
    raw: Vec<RawMailbox>,
    data_dir: &Path,
    base: &Path,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> Vec<Mailbox> {
    let mut seen: Vec<String> = Vec::new();
    raw.into_iter()
        .filter_map(|m| build_mailbox(m, &mut seen, data_dir, base, at, errs))
        .collect()
}

fn build_mailbox(
    m: RawMailbox,
    seen: &mut Vec<String>,
    data_dir: &Path,
    base: &Path,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> Option<Mailbox> {
    let before = errs.len();
    let name = m.name.get_ref().trim().to_string();
    let name_span = m.name.span();
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        errs.push(at(
            name_span.clone(),
            format!("mailbox name {name:?} must be non-empty ASCII letters, digits, '-' or '_'"),
        ));
    } else if seen.contains(&name) {
        errs.push(at(
            name_span.clone(),
            format!("duplicate mailbox name {name:?}"),
        ));
    }
    seen.push(name.clone());
    let (path, imap) = match m.source {
        SourceKind::Maildir => match &m.path {
            Some(p) => (data_dir.join(p.get_ref()), None),
            None => {
                errs.push(at(
                    name_span,
                    format!("mailbox {name:?} has source = \"maildir\" but no `path`"),
                ));
                (PathBuf::new(), None)
            }
        },
        SourceKind::Imap => (PathBuf::new(), build_imap(&m, &name, base, at, errs)),
    };
    if errs.len() > before {
        return None;
    }
    Some(Mailbox {
        name,
        role: m.role,
        address: m.address,
        source: m.source,
        path,
        demo_seed: m.demo_seed,
        imap,
    })
}

fn build_imap(
    m: &RawMailbox,
    name: &str,
    base: &Path,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> Option<ImapSettings> {
    let name_span = m.name.span();
    let tls = m.tls.unwrap_or(TlsMode::Implicit);
    let host = match &m.host {
        Some(host) => {
            if let Err(e) = check_tls(host, tls) {
                errs.push(at(host.span(), e));
            }
            Some(host)
        }
        None => {
            errs.push(at(
                name_span.clone(),
                format!("mailbox {name:?} has source = \"imap\" but no `host`"),
            ));
            None
        }
    };
    let username = m
        .username
        .clone()
        .unwrap_or_else(|| m.address.as_str().to_string());
    let credentials = match credentials(
        m.auth.unwrap_or(AuthKind::Password),
        username,
        &m.password_env,
        &m.password_file,
        &m.token_command,
        &m.token_file,
        base,
    ) {
        Ok(Credentials::None) => {
            errs.push(at(
                name_span.clone(),
                format!("mailbox {name:?}: IMAP needs auth = \"password\" or \"xoauth2\""),
            ));
            None
        }
        Ok(c) => Some(c),
        Err(e) => {
            errs.push(at(name_span.clone(), format!("mailbox {name:?}: {e}")));
            None
        }
    };
    if m.flag && m.move_to.is_some() {
        errs.push(at(
            name_span,
            format!("mailbox {name:?}: give either `move` or `flag = true`, not both"),
        ));
    }
    let (host, credentials) = (host?, credentials?);
    let after = if m.flag {
        AfterTake::Flag(m.keyword.clone().unwrap_or_else(|| "$TicketdTaken".into()))
    } else {
        AfterTake::Move(m.move_to.clone().unwrap_or_else(|| "Processed".into()))
    };
    let endpoint = Endpoint {
        host: host.get_ref().trim().to_string(),
        port: m.port.unwrap_or(match tls {
            TlsMode::Implicit => 993,
            _ => 143,
        }),
        tls,
        ca_file: m.ca_file.as_ref().map(|f| base.join(f)),
        credentials,
        timeout: m.timeout.unwrap_or(HumanDuration(Duration::from_secs(30))),
    };
    Some(ImapSettings {
        endpoint,
        folder: m.folder.clone().unwrap_or_else(|| "INBOX".into()),
        after,
        quarantine: m.quarantine.clone().unwrap_or_else(|| "Quarantine".into()),
        idle: m.idle.unwrap_or(true),
        poll_interval: m
            .poll_interval
            .unwrap_or(HumanDuration(Duration::from_secs(60))),
        reconcile_interval: m
            .reconcile_interval
            .unwrap_or(HumanDuration(Duration::from_secs(300))),
        max_message_bytes: m.max_message_bytes.map(|b| b.0).unwrap_or(50 * 1024 * 1024),
        fetch_batch: m.fetch_batch.unwrap_or(200).clamp(1, 5000),
    })
}

/// `[outbound]`, every key checked (the SMTP host, TLS, credentials, the
/// brand); `None` when one is wrong.
pub(super) fn build_outbound(
    o: RawOutbound,
    data_dir: &Path,
    base: &Path,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> Option<Outbound> {
    let before = errs.len();
    let smtp = match o.transport.get_ref() {
        TransportKind::File => None,
        TransportKind::Smtp => build_smtp(&o, base, at, errs),
    };
    let brand = match &o.brand {
        None => DEFAULT_BRAND.to_string(),
        Some(b) => {
            let name = b.get_ref().trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                errs.push(at(
                    b.span(),
                    "[outbound] brand must be a non-empty name on one line".into(),
                ));
            }
            name.to_string()
        }
    };
    if errs.len() > before {
        return None;
    }
    Some(Outbound {
        dir: data_dir.join(o.dir.as_deref().unwrap_or("outbox-mail")),
        smtp,
        pool_size: o.pool_size.unwrap_or(4).clamp(1, 64),
        max_age: o
            .max_age
            .unwrap_or(HumanDuration(Duration::from_secs(3 * 24 * 3600))),
        retry_initial: o
            .retry_initial
            .unwrap_or(HumanDuration(Duration::from_secs(60))),
        rate_limit_per_hour: o.rate_limit_per_hour.unwrap_or(5),
        brand,
        from_support: o.from_support,
        from_privacy: o.from_privacy,
        transport: o.transport.into_inner(),
    })
}

fn build_smtp(o: &RawOutbound, base: &Path, at: &AtFn<'_>, errs: &mut Errors) -> Option<Endpoint> {
    let tls = o.tls.unwrap_or(TlsMode::Starttls);
    let host = o.host.as_ref();
    match host {
        Some(host) => {
            if let Err(e) = check_tls(host, tls) {
                errs.push(at(host.span(), e));
            }
        }
        None => errs.push(at(
            o.transport.span(),
            "[outbound] transport = \"smtp\" needs `host`".into(),
        )),
    }
    let username = o
        .username
        .clone()
        .unwrap_or_else(|| o.from_support.address());
    let credentials = match credentials(
        o.auth.unwrap_or(AuthKind::None),
        username,
        &o.password_env,
        &o.password_file,
        &o.token_command,
        &o.token_file,
        base,
    ) {
        Ok(c) => Some(c),
        Err(e) => {
            let message = format!("[outbound]: {e}");
            let span = host.map_or(o.transport.span(), |h| h.span());
            errs.push(at(span, message));
            None
        }
    };
    let (host, credentials) = (host?, credentials?);
    Some(Endpoint {
        host: host.get_ref().trim().to_string(),
        port: o.port.unwrap_or(match tls {
            TlsMode::Implicit => 465,
            _ => 587,
        }),
        tls,
        ca_file: o.ca_file.as_ref().map(|f| base.join(f)),
        credentials,
        timeout: o.timeout.unwrap_or(HumanDuration(Duration::from_secs(30))),
    })
}

/// `tls = "none"` only for loopback hosts.
fn check_tls(host: &toml::Spanned<String>, tls: TlsMode) -> Result<(), String> {
    if tls != TlsMode::None {
        return Ok(());
    }
    let h = host.get_ref().trim();
    let loopback = h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "tls = \"none\" is refused for {h:?}: plaintext is allowed only to a loopback address; use \"implicit\" or \"starttls\""
        ))
    }
}

/// Credentials from the `auth`, `*_env`, `*_file` and `token_*` keys.
fn credentials(
    auth: AuthKind,
    username: String,
    password_env: &Option<String>,
    password_file: &Option<String>,
    token_command: &Option<String>,
    token_file: &Option<String>,
    base: &Path,
) -> Result<Credentials, String> {
    match auth {
        AuthKind::None => {
            if password_env.is_some()
                || password_file.is_some()
                || token_command.is_some()
                || token_file.is_some()
            {
                return Err("secrets are given but auth = \"none\"".into());
            }
            Ok(Credentials::None)
        }
        AuthKind::Password => {
            if token_command.is_some() || token_file.is_some() {
                return Err("token_command/token_file need auth = \"xoauth2\"".into());
            }
            match (password_env, password_file) {
                (Some(_), Some(_)) => {
                    Err("give either password_env or password_file, not both".into())
                }
                (None, None) => {
                    Err("auth = \"password\" needs password_env or password_file".into())
                }
                _ => Ok(Credentials::Password {
                    username,
                    secret: SecretRef {
                        env: password_env.clone(),
                        file: password_file.as_ref().map(|f| base.join(f)),
                    },
                }),
            }
        }
        AuthKind::Xoauth2 => {
            if password_env.is_some() || password_file.is_some() {
                return Err("password_env/password_file need auth = \"password\"".into());
            }
            if token_command.is_none() && token_file.is_none() {
                return Err("auth = \"xoauth2\" needs token_command or token_file".into());
            }
            Ok(Credentials::Xoauth2 {
                username,
                token_command: token_command.clone(),
                token_file: token_file.as_ref().map(|f| base.join(f)),
            })
        }
    }
}
