//! Hostile inputs, shared by the fault suite (each must be recorded, never
//! a panic) and `benches/hostile.rs` (time and peak RSS of each).
#![allow(dead_code)]

/// The hostile inputs, by name.
pub fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let head = |extra: &str| {
        format!(
            "From: Dana Ruiz <dana@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: Reports fail\r\nMessage-ID: <{}@x.example>\r\nDate: Tue, 01 Dec 2026 10:00:00 -0500\r\nMIME-Version: 1.0\r\n{extra}",
            fastrand::u64(..)
        )
    };
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    // 30 MB of text.
    let mut big = head("Content-Type: text/plain\r\n\r\n").into_bytes();
    let line = b"The monthly report shows an error when I open it in the browser.\r\n";
    while big.len() < 30 << 20 {
        big.extend_from_slice(line);
    }
    out.push(("30 MB mail", big));
    // 10,000 MIME parts.
    let mut parts = head("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
    for i in 0..10_000 {
        parts.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}: the report shows an error\r\n"
        ));
    }
    parts.push_str("--b--\r\n");
    out.push(("10,000 MIME parts", parts.into_bytes()));
    // 1,000-deep nesting.
    let mut nest = head("Content-Type: multipart/mixed; boundary=\"n0\"\r\n\r\n");
    for i in 1..1000 {
        nest.push_str(&format!(
            "--n{}\r\nContent-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n",
            i - 1
        ));
    }
    nest.push_str("--n999\r\nContent-Type: text/plain\r\n\r\nThe site is down.\r\n");
    for i in (0..1000).rev() {
        nest.push_str(&format!("--n{i}--\r\n"));
    }
    out.push(("1,000-deep nesting", nest.into_bytes()));
    // 100,000 links in an HTML-only body.
    let mut html = head("Content-Type: text/html\r\n\r\n<html><body><p>Error in reports</p>");
    for i in 0..100_000 {
        html.push_str(&format!("<a href=\"https://x.example/{i}\">link {i}</a> "));
    }
    html.push_str("</body></html>\r\n");
    out.push(("100,000-link HTML", html.into_bytes()));
    // Header injection and control characters in every value we copy.
    out.push((
        "CR/LF/NUL in names, subject, ids",
        "From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40evil.example=00?= <eve@legalaid-north.example.org>\r\nReply-To: =?utf-8?b?TWFsbG9yeQ0KQmNjOiB5QGV2aWwuZXhhbXBsZQ==?= <mallory@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: =?utf-8?q?Help=0D=0ABcc=3A_z=40evil.example=00?=\r\nMessage-ID: <inj@x.example>\r\nIn-Reply-To: <bad\u{0} id@x>\r\nReferences: <a@x>\r\n\tBcc: w@evil.example\r\n\r\nThe report shows an error.\r\n"
            .as_bytes()
            .to_vec(),
    ));
    // A 1 MB Subject.
    out.push((
        "1 MB Subject",
        format!(
            "From: Dana <dana@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: {}\r\nMessage-ID: <bigsubj@x.example>\r\n\r\nThe report shows an error.\r\n",
            "S".repeat(1 << 20)
        )
        .into_bytes(),
    ));
    // 8-bit garbage header names.
    let mut garbage =
        b"Fr\xffom: x\r\n\x01\x02\x03: \xfe\xfd\r\nSub\x80ject: y\r\n\r\nbody\r\n".to_vec();
    for _ in 0..10_000 {
        garbage.push(fastrand::u8(..));
    }
    out.push(("8-bit garbage headers", garbage));
    // 10,000 ids in References.
    let mut refs = String::from("References:");
    for i in 0..10_000 {
        refs.push_str(&format!(" <r{i}@x.example>"));
    }
    out.push((
        "10,000 References",
        head(&format!(
            "{refs}\r\nContent-Type: text/plain\r\n\r\nStill an error.\r\n"
        ))
        .into_bytes(),
    ));
    out
}
