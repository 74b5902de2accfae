//! Benchmark messages: the triage corpus, each variant made unique
//! (Message-ID, sender) and answerable inside `example.test`.

pub fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus");
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .filter_map(|p| std::fs::read(p).ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Make message `i` unique (Message-ID, sender) from a corpus template.
///
/// Headers that would send the acknowledgement elsewhere (Reply-To: some
/// templates name addresses outside the test domain, which Postfix refuses
/// with 554) or mark the mail as automatic are dropped, each with its folded
/// continuation lines, so every variant is answered at `req*@example.test`.
pub fn variant(template: &[u8], i: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Requester {i} <req{}@example.test>\r\nTo: support@example.test\r\nMessage-ID: <bench.{i}@example.test>\r\n",
        i % 100
    )
    .into_bytes();
    let text = String::from_utf8_lossy(template);
    let mut in_headers = true;
    let mut dropping = false;
    for line in text.split_inclusive('\n') {
        if in_headers {
            if line.trim().is_empty() {
                in_headers = false;
            } else if line.starts_with([' ', '\t']) {
                // A folded continuation belongs to the header above it.
                if dropping {
                    continue;
                }
            } else {
                let l = line.to_ascii_lowercase();
                dropping = [
                    "from:",
                    "to:",
                    "reply-to:",
                    "message-id:",
                    "in-reply-to:",
                    "references:",
                    "auto-submitted",
                    "precedence",
                    "list-",
                    "x-auto",
                ]
                .iter()
                .any(|h| l.starts_with(h));
                if dropping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// CPU seconds (user + system) used so far by this process, and by every
/// process whose command name is one of `names` (the mail servers).
pub fn cpu_seconds(names: &[&str]) -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let read = |pid: &str| -> Option<(String, f64)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let open = s.find('(')?;
        let close = s.rfind(')')?;
        let comm = s[open + 1..close].to_string();
        let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
        // Fields 14 and 15 (utime, stime) counted from 1; f[0] is field 3.
        let ut: f64 = f.get(11)?.parse().ok()?;
        let st: f64 = f.get(12)?.parse().ok()?;
        Some((comm, (ut + st) / tick))
    };
    let own = read("self").map(|(_, c)| c).unwrap_or(0.0);
    let others = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .filter_map(|pid| read(&pid))
                .filter(|(comm, _)| names.iter().any(|n| comm == n))
                .map(|(_, c)| c)
                .sum()
        })
        .unwrap_or(0.0);
    (own, others)
}
