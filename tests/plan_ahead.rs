//! Planning new cases ahead of the store transaction (acknowledgements and
//! notices rendered on all cores before sled's lock is taken) is a guess
//! about which case numbers the transaction will hand out. These tests make
//! the guess wrong on purpose and check that it never shows: every
//! acknowledgement names the case it belongs to, and a discarded plan is
//! counted, not used.

use std::sync::Arc;
use ticketd::clock::SystemClock;
use ticketd::config::{Config, Role, EMBEDDED_DEFAULT};
use ticketd::daemon::Daemon;
use ticketd::pipeline::{Forecast, IngestOptions, Pipeline};
use ticketd::source::{Envelope, Fetched, Source, SourceError};
use ticketd::store::{IngestOutcome, Purpose};

/// A pipeline wired as the daemon wires it, on the embedded default
/// configuration (its demo Maildir is never read here).
fn daemon(dir: &std::path::Path) -> Daemon {
    let config = Config::from_toml(EMBEDDED_DEFAULT, "embedded", dir).expect("config");
    Daemon::open(config, Arc::new(SystemClock)).expect("daemon")
}

/// The demo messages (7 new cases, a follow-up, 2 set aside), each made
/// unique by a prefix on its Message-IDs (one has none), plus an exact
/// repeat of the first.
fn batch(tag: &str) -> Vec<Envelope> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/demo")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut out: Vec<Envelope> = names
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let raw = std::fs::read_to_string(p).expect("fixture");
            Envelope {
                source: "support".into(),
                key: format!("{tag}:{i}"),
                received_at: chrono::Utc::now(),
                raw: raw
                    .replace("Message-ID: <", &format!("Message-ID: <{tag}."))
                    .replace("In-Reply-To: <", &format!("In-Reply-To: <{tag}."))
                    .replace("References: <", &format!("References: <{tag}."))
                    .into_bytes(),
                original_size: None,
            }
        })
        .collect();
    let mut again = out[0].clone();
    again.key = format!("{tag}:again");
    out.push(again);
    out
}

/// Store a prepared batch; check each acknowledgement names its case.
/// Returns the number of new cases.
fn commit_and_check(p: &Pipeline, prepared: &[ticketd::pipeline::Prepared]) -> usize {
    let outbox = |id: u64| {
        p.store
            .outbox_all()
            .expect("outbox")
            .into_iter()
            .find(|e| e.id == id)
            .expect("outbox entry")
    };
    let mut new_cases = 0;
    for r in p.commit(prepared) {
        if let IngestOutcome::NewCase {
            case,
            outbox: Some(id),
            ..
        } = r.expect("stored")
        {
            new_cases += 1;
            let e = outbox(id);
            assert!(
                e.subject.contains(&format!("[{case}]")),
                "ack of {case} is titled {:?}",
                e.subject
            );
            assert!(
                e.message_id.contains(&case),
                "ack of {case} has Message-ID {}",
                e.message_id
            );
            assert!(e.mail.contains(&case), "ack of {case} does not name it");
            assert_eq!(e.case.as_deref(), Some(case.as_str()));
        }
    }
    new_cases
}

#[test]
fn a_wrong_guess_is_discarded_and_a_right_one_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = daemon(dir.path());
    let p = &d.pipeline;

    // Support case numbers guessed 40 too high; messages and privacy right.
    let wrong = Forecast {
        message: 0,
        support: 40,
        privacy: 0,
    };
    let (prepared, base, end) = p.prepare_batch(
        batch("one"),
        Role::Support,
        IngestOptions::default(),
        Some(wrong),
    );
    assert_eq!(base, wrong);
    // 7 new cases (5 support, 2 privacy) out of 10 distinct messages, and
    // the repeat recorded as a duplicate.
    assert_eq!(
        end,
        Forecast {
            message: 11,
            support: 45,
            privacy: 2
        }
    );
    assert_eq!(commit_and_check(p, &prepared), 7);
    let (used, discarded) = p.plans_made_ahead();
    assert_eq!(
        (used, discarded),
        (2, 5),
        "privacy plans used, support plans discarded"
    );

    // From the store's real sequences the guess is right, the follow-up
    // and the repeats included (the message without a Message-ID is now a
    // duplicate by content, recorded as one).
    let (prepared, base, _) =
        p.prepare_batch(batch("two"), Role::Support, IngestOptions::default(), None);
    assert_eq!(
        base,
        Forecast {
            message: 11,
            support: 5,
            privacy: 2
        }
    );
    assert_eq!(commit_and_check(p, &prepared), 6);
    assert_eq!(p.plans_made_ahead(), (8, 5));
}

#[test]
fn a_drain_plans_every_new_case_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = daemon(dir.path());
    let p = &d.pipeline;
    // Three batches of the demo set: the second and third are planned while
    // the one before is still being stored.
    let mut src = Memory {
        left: [batch("a"), batch("b"), batch("c")].concat(),
        acked: Vec::new(),
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt
        .block_on(p.drain(&mut src, 11, IngestOptions::default(), &|| false))
        .expect("drain");
    assert_eq!(report.new_cases, 7 + 6 + 6);
    // Repeats with their own mailbox keys are second deliveries: recorded
    // as duplicates (3 exact repeats, 2 Message-ID-less copies), beside
    // the 2 set-aside messages of each batch; nothing is a re-read.
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.ignored, 3 * 2 + 3 + 2);
    assert_eq!(report.follow_ups, 3);
    assert_eq!(p.plans_made_ahead(), (19, 0));
    assert_eq!(src.acked.len(), 33, "every message taken after its flush");
    let mut acks = 0;
    for e in p.store.outbox_all().expect("outbox") {
        let case = e.case.clone().expect("case of every mail here");
        if e.purpose == Purpose::Ack {
            acks += 1;
            assert!(e.subject.contains(&format!("[{case}]")), "{:?}", e.subject);
            assert!(e.message_id.contains(&case) && e.mail.contains(&case));
        }
    }
    assert_eq!(acks, 19);
}

#[test]
fn a_drain_holds_at_most_the_in_flight_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = EMBEDDED_DEFAULT.replace(
        "[limits]\n",
        "[limits]\nin_flight_messages = 8\nin_flight_bytes = \"9KB\"\n",
    );
    let config = Config::from_toml(&text, "embedded", dir.path()).expect("config");
    let d = Daemon::open(config, Arc::new(SystemClock)).expect("daemon");
    let mut src = Counting {
        inner: Memory {
            left: [batch("a"), batch("b"), batch("c")].concat(),
            acked: Vec::new(),
        },
        fetch_bytes: u64::MAX,
        out: 0,
        most_out: 0,
        most_bytes: 0,
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt
        .block_on(
            d.pipeline
                .drain(&mut src, 1000, IngestOptions::default(), &|| false),
        )
        .expect("drain");
    assert_eq!(report.new_cases, 7 + 6 + 6);
    assert_eq!(src.inner.acked.len(), 33);
    assert_eq!(
        src.fetch_bytes, 3000,
        "a third of in_flight_bytes per fetch"
    );
    assert!(
        src.most_out <= 8,
        "at most 8 in flight, saw {}",
        src.most_out
    );
    assert!(
        src.most_bytes <= 3000 || src.most_out <= 1,
        "{}",
        src.most_bytes
    );
}

/// [`Memory`] that honours a byte budget and counts what is out (handed
/// out and not yet taken).
struct Counting {
    inner: Memory,
    fetch_bytes: u64,
    out: usize,
    most_out: usize,
    most_bytes: u64,
}

impl Source for Counting {
    fn name(&self) -> &str {
        "support"
    }
    fn set_fetch_bytes(&mut self, max_bytes: u64) {
        self.fetch_bytes = max_bytes;
    }
    async fn fetch(&mut self, max: usize) -> Result<Fetched, SourceError> {
        let mut n = 0;
        let mut bytes = 0u64;
        for e in self.inner.left.iter().take(max) {
            if n > 0 && bytes + e.raw.len() as u64 > self.fetch_bytes {
                break;
            }
            bytes += e.raw.len() as u64;
            n += 1;
        }
        let f = self.inner.fetch(n).await?;
        self.out += f.envelopes.len();
        self.most_out = self.most_out.max(self.out);
        if f.envelopes.len() > 1 {
            self.most_bytes = self.most_bytes.max(bytes);
        }
        Ok(f)
    }
    async fn ack(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        self.out -= taken.len();
        self.inner.ack(taken).await
    }
}

/// A source in memory: hands out its messages in batches, records acks.
struct Memory {
    left: Vec<Envelope>,
    acked: Vec<String>,
}

impl Source for Memory {
    fn name(&self) -> &str {
        "support"
    }
    async fn fetch(&mut self, max: usize) -> Result<Fetched, SourceError> {
        let n = max.min(self.left.len());
        Ok(Fetched {
            envelopes: self.left.drain(..n).collect(),
            ..Fetched::default()
        })
    }
    async fn ack(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        self.acked.extend(taken.iter().map(|e| e.key.clone()));
        Ok(())
    }
}
