//! `ticketd classify` as other tools see it: one JSON object per file, per
//! line, in input order; not-mail files get `kind: null` and an `error`;
//! unreadable files go to stderr with a non-zero exit after the rest.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

fn fixture(p: &str) -> String {
    format!("{}/fixtures/{p}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn json_lines_in_input_order_with_the_stable_shape() {
    let files = [
        fixture("demo/04-dsgvo-auskunft.eml"),
        fixture("bad/not-mail.bin"),
        "/nonexistent/nope.eml".to_string(),
        fixture("demo/01-site-down.eml"),
        fixture("demo/05-out-of-office.eml"),
    ];
    let out = Command::new(BIN)
        .arg("classify")
        .arg("--json")
        .args(&files)
        .output()
        .expect("run classify");
    assert_eq!(
        out.status.code(),
        Some(1),
        "unreadable file → non-zero exit at the end"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/nope.eml"), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4, "every readable file printed");

    let keys: Vec<&str> = lines[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "file",
        "kind",
        "level",
        "rights",
        "jurisdiction",
        "case_ref",
        "language",
        "auth",
        "ack",
        "reasons",
    ] {
        assert!(keys.contains(&k), "key {k} in {keys:?}");
    }
    let privacy = &lines[0];
    assert!(privacy["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("04-dsgvo-auskunft.eml")));
    assert_eq!(privacy["kind"], "privacy");
    assert_eq!(privacy["rights"], serde_json::json!(["access", "erasure"]));
    assert_eq!(privacy["jurisdiction"], "gdpr");
    assert_eq!(privacy["language"], "de");
    assert_eq!(privacy["level"], serde_json::Value::Null);
    assert_eq!(privacy["ack"], true);

    assert_eq!(lines[1]["kind"], serde_json::Value::Null);
    assert!(lines[1]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(lines[1]["ack"], false);

    assert_eq!(lines[2]["kind"], "ticket");
    assert_eq!(lines[2]["level"], 1);
    assert_eq!(lines[2]["rights"], serde_json::Value::Null);
    assert_eq!(lines[2]["auth"], "none");
    assert!(lines[2]["reasons"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));

    assert_eq!(lines[3]["kind"], "ignore");
    assert_eq!(lines[3]["ack"], false);
    assert!(
        lines[3]["reasons"].to_string().contains("Auto-Submitted"),
        "{}",
        lines[3]["reasons"]
    );
}

#[test]
fn mailbox_flag_and_recipients_decide_the_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The role comes from the To address unless --mailbox says otherwise.
    let raw = "From: a@x.example\r\nTo: privacy@casehost.example\r\nSubject: my account\r\nMessage-ID: <r@x>\r\n\r\nPlease delete my account.\r\n";
    let f = dir.path().join("m.eml");
    std::fs::write(&f, raw).expect("write");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        r#"data_dir = "d"
[[mailboxes]]
name = "privacy"
role = "privacy"
address = "privacy@casehost.example"
source = "maildir"
path = "p"
[outbound]
from_support = "S <support@casehost.example>"
from_privacy = "P <privacy@casehost.example>"
transport = "file"
"#,
    )
    .expect("write config");
    let run = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let f = f.to_str().unwrap_or("");
    let cfg = cfg.to_str().unwrap_or("");
    let by_to = run(&["classify", "--config", cfg, "--json", f]);
    assert_eq!(by_to["mailbox"], "privacy", "role from the To address");
    assert_eq!(by_to["kind"], "privacy", "an erasure request at privacy@");
    let forced = run(&[
        "classify",
        "--config",
        cfg,
        "--mailbox",
        "support",
        "--json",
        f,
    ]);
    assert_eq!(forced["mailbox"], "support", "--mailbox wins");
    let table = Command::new(BIN)
        .args(["classify", f])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("FILE") && text.contains("m.eml") && text.contains("privacy"),
        "{text}"
    );
}
