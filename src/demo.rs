//! The embedded default: the demo messages of `fixtures/demo`, compiled into
//! the binary and copied into the demo Maildir's `new/` the first time (when
//! the Maildir does not exist yet). The repository's own files are never
//! consumed.

use std::path::Path;

/// The demo messages, in arrival order.
pub const MESSAGES: &[(&str, &[u8])] = &[
    (
        "01-site-down.eml",
        include_bytes!("../fixtures/demo/01-site-down.eml"),
    ),
    (
        "02-case-notes-broken.eml",
        include_bytes!("../fixtures/demo/02-case-notes-broken.eml"),
    ),
    (
        "03-report-error.eml",
        include_bytes!("../fixtures/demo/03-report-error.eml"),
    ),
    (
        "04-dsgvo-auskunft.eml",
        include_bytes!("../fixtures/demo/04-dsgvo-auskunft.eml"),
    ),
    (
        "05-out-of-office.eml",
        include_bytes!("../fixtures/demo/05-out-of-office.eml"),
    ),
    (
        "06-follow-up.eml",
        include_bytes!("../fixtures/demo/06-follow-up.eml"),
    ),
    (
        "07-feature-request-html.eml",
        include_bytes!("../fixtures/demo/07-feature-request-html.eml"),
    ),
    (
        "08-no-message-id.eml",
        include_bytes!("../fixtures/demo/08-no-message-id.eml"),
    ),
    (
        "09-bounce.eml",
        include_bytes!("../fixtures/demo/09-bounce.eml"),
    ),
    (
        "10-ccpa-request.eml",
        include_bytes!("../fixtures/demo/10-ccpa-request.eml"),
    ),
];

/// Seed `maildir` with the demo messages if it does not exist yet. Returns
/// how many messages were written (0 when the Maildir already existed).
/// Files are written to `tmp/` and renamed into `new/`, as a delivery agent
/// would, with modification times one minute apart in arrival order.
pub fn seed(maildir: &Path) -> std::io::Result<usize> {
    if maildir.exists() {
        return Ok(0);
    }
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let base = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for (i, (name, bytes)) in MESSAGES.iter().enumerate() {
        let unique = format!("{}.demo{:02}.ticketd", 1_790_000_000 + i as u64, i + 1);
        let tmp = maildir.join("tmp").join(&unique);
        std::fs::write(&tmp, bytes)?;
        let f = std::fs::File::options().write(true).open(&tmp)?;
        f.set_modified(base + std::time::Duration::from_secs(60 * i as u64))?;
        f.sync_all()?;
        std::fs::rename(&tmp, maildir.join("new").join(&unique))?;
        tracing::debug!(demo = name, "seeded demo message");
    }
    Ok(MESSAGES.len())
}
