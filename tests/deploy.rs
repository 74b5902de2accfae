//! The systemd units in `deploy/` parse (`systemd-analyze verify`, with no
//! warning about them) and the service's hardening stays strong
//! (`systemd-analyze security --offline`); skipped where systemd-analyze
//! is not installed.

use std::path::PathBuf;
use std::process::Command;

const UNITS: &[&str] = &[
    "ticketd.service",
    "ticketd-backup.service",
    "ticketd-backup.timer",
];

fn analyze_available() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The units in a temp dir, with ExecStart pointing at the binary under
/// test (verify insists that the command exists).
fn units() -> (tempfile::TempDir, Vec<PathBuf>) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for u in UNITS {
        let text = std::fs::read_to_string(repo.join("deploy").join(u)).expect("unit");
        let text = text.replace("/usr/local/bin/ticketd", env!("CARGO_BIN_EXE_ticketd"));
        let p = dir.path().join(u);
        std::fs::write(&p, text).expect("write unit");
        paths.push(p);
    }
    (dir, paths)
}

#[test]
fn the_systemd_units_parse_without_warnings() {
    if !analyze_available() {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    let (dir, paths) = units();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only what concerns our files (a container's own units may be noisy).
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(out.status.success(), "{text}");
    assert!(ours.is_empty(), "{}", ours.join("\n"));
}

#[test]
fn the_service_is_hardened() {
    if !analyze_available() {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    let (dir, paths) = units();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&paths[0])
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(level) = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ticketd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f32>().ok())
    else {
        eprintln!(
            "skipped: this systemd-analyze has no offline security check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}
