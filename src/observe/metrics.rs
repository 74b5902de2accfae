//! The metric families (prometheus-client) behind one process-wide
//! registry, and [`record`]: the one way events become metrics.
//!
//! Counters and histograms move on events; the gauges that describe a
//! state (cases, outbox, IMAP connections, privacy deadlines) are set by
//! the watch task from a [`Sample`] just before they are read.
//!
//! One registry per process: a process runs one daemon (tests that start
//! several daemons in one process see their counts summed).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;
type FGauge = Gauge<f64, AtomicU64>;

/// Something that happened at an edge of the daemon.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A message was stored (or recognised) and will be taken from its
    /// mailbox; `decision` is `new_case`, `follow_up`, `ignored`,
    /// `duplicate` or `quarantined`.
    Taken {
        mailbox: &'a str,
        decision: &'static str,
    },
    /// One fetch from a mailbox (with the ack of the batch before it).
    Fetched { mailbox: &'a str, took: Duration },
    /// One group of messages committed to the store.
    Committed { took: Duration },
    /// One outbox entry handed to the transport; `result` is `sent`,
    /// `retry_later`, `failed` or `suppressed`; `notice` the notification
    /// kind (`warning`, `breach`, …) when it is one.
    Sent {
        result: &'static str,
        notice: Option<&'a str>,
        took: Duration,
    },
    /// An outbox entry not sent: the per-recipient rate limit (counted as
    /// `sends{result="suppressed"}`).
    Suppressed,
    /// An OAuth token command ran (`what` names the mailbox or transport).
    TokenCommand { what: &'a str, ok: bool },
    /// An operator alert was raised or cleared.
    Alert { alert: &'a str, raised: bool },
}

/// States sampled by the watch task.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// (kind, level, status) → cases.
    pub cases: Vec<((String, String, String), i64)>,
    pub outbox_depth: i64,
    pub outbox_oldest_seconds: f64,
    /// (mailbox, connected, last sync as Unix seconds).
    pub imap: Vec<(String, bool, Option<i64>)>,
    /// (days-left bucket, open privacy requests).
    pub privacy: Vec<(&'static str, i64)>,
    /// Free share of the data directory's disk, percent.
    pub disk_free_percent: Option<f64>,
    /// Active alerts by name.
    pub alerts: Vec<(String, bool)>,
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    taken: Family<Labels, Counter>,
    fetch_seconds: Family<Labels, Histogram>,
    commit_seconds: Histogram,
    delivery_seconds: Histogram,
    sends: Family<Labels, Counter>,
    notices: Family<Labels, Counter>,
    token_failures: Family<Labels, Counter>,
    alerts_raised: Family<Labels, Counter>,
    alert_active: Family<Labels, Gauge>,
    cases: Family<Labels, Gauge>,
    outbox_depth: Gauge,
    outbox_oldest: FGauge,
    imap_connected: Family<Labels, Gauge>,
    imap_last_sync: Family<Labels, Gauge>,
    privacy: Family<Labels, Gauge>,
    disk_free: FGauge,
    /// When the transport last accepted a mail (the outbox is moving).
    last_sent: Mutex<Option<std::time::Instant>>,
    /// Token commands failing now, by what they are for.
    token_failing: Mutex<std::collections::BTreeMap<String, bool>>,
}

fn latency() -> Histogram {
    // 1 ms … ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ticketd");
        let m = Metrics {
            registry: Registry::default(),
            taken: Family::default(),
            fetch_seconds: Family::new_with_constructor(latency),
            commit_seconds: latency(),
            delivery_seconds: latency(),
            sends: Family::default(),
            notices: Family::default(),
            token_failures: Family::default(),
            alerts_raised: Family::default(),
            alert_active: Family::default(),
            cases: Family::default(),
            outbox_depth: Gauge::default(),
            outbox_oldest: FGauge::default(),
            imap_connected: Family::default(),
            imap_last_sync: Family::default(),
            privacy: Family::default(),
            disk_free: FGauge::default(),
            last_sent: Mutex::new(None),
            token_failing: Mutex::default(),
        };
        let r = &mut registry;
        r.register(
            "messages_taken",
            "Messages stored and taken from their mailbox, by mailbox and decision",
            m.taken.clone(),
        );
        r.register(
            "fetch_seconds",
            "Time of one fetch (with the ack of the batch before) by mailbox",
            m.fetch_seconds.clone(),
        );
        r.register(
            "commit_seconds",
            "Time to commit one group of messages to the store",
            m.commit_seconds.clone(),
        );
        r.register(
            "delivery_seconds",
            "Time the transport took for one outgoing mail",
            m.delivery_seconds.clone(),
        );
        r.register(
            "sends",
            "Outgoing mail handed to the transport, by result",
            m.sends.clone(),
        );
        r.register(
            "notices_sent",
            "Notifications accepted by the transport, by kind (warning, breach, page, ...)",
            m.notices.clone(),
        );
        r.register(
            "token_command_failures",
            "OAuth token commands that failed, by mailbox or transport",
            m.token_failures.clone(),
        );
        r.register(
            "alerts_raised",
            "Operator alerts raised, by alert",
            m.alerts_raised.clone(),
        );
        r.register(
            "alert_active",
            "1 while an operator alert is raised, by alert",
            m.alert_active.clone(),
        );
        r.register("cases", "Cases by kind, level and status", m.cases.clone());
        r.register(
            "outbox_depth",
            "Outbox entries queued or sending",
            m.outbox_depth.clone(),
        );
        r.register(
            "outbox_oldest_queued_seconds",
            "Age of the oldest outbox entry still to send",
            m.outbox_oldest.clone(),
        );
        r.register(
            "imap_connected",
            "1 while the mailbox's IMAP session is up",
            m.imap_connected.clone(),
        );
        r.register(
            "imap_last_sync_timestamp_seconds",
            "When the mailbox was last searched and fetched (Unix time)",
            m.imap_last_sync.clone(),
        );
        r.register(
            "privacy_requests",
            "Open privacy requests by days left to their statutory date",
            m.privacy.clone(),
        );
        r.register(
            "data_disk_free_percent",
            "Free space on the data directory's disk, percent",
            m.disk_free.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Apply one event.
    pub fn apply(&self, e: &Event<'_>) {
        match e {
            Event::Taken { mailbox, decision } => {
                self.taken
                    .get_or_create(&vec![
                        ("mailbox", mailbox.to_string()),
                        ("decision", decision.to_string()),
                    ])
                    .inc();
            }
            Event::Fetched { mailbox, took } => {
                self.fetch_seconds
                    .get_or_create(&vec![("mailbox", mailbox.to_string())])
                    .observe(took.as_secs_f64());
            }
            Event::Committed { took } => self.commit_seconds.observe(took.as_secs_f64()),
            Event::Sent {
                result,
                notice,
                took,
            } => {
                self.sends
                    .get_or_create(&vec![("result", result.to_string())])
                    .inc();
                self.delivery_seconds.observe(took.as_secs_f64());
                if *result == "sent" {
                    if let Ok(mut t) = self.last_sent.lock() {
                        *t = Some(std::time::Instant::now());
                    }
                    if let Some(kind) = notice {
                        self.notices
                            .get_or_create(&vec![("kind", kind.to_string())])
                            .inc();
                    }
                }
            }
            Event::Suppressed => {
                self.sends
                    .get_or_create(&vec![("result", "suppressed".to_string())])
                    .inc();
            }
            Event::TokenCommand { what, ok } => {
                if !ok {
                    self.token_failures
                        .get_or_create(&vec![("source", what.to_string())])
                        .inc();
                }
                if let Ok(mut m) = self.token_failing.lock() {
                    m.insert(what.to_string(), !ok);
                }
            }
            Event::Alert { alert, raised } => {
                if *raised {
                    self.alerts_raised
                        .get_or_create(&vec![("alert", alert.to_string())])
                        .inc();
                }
            }
        }
    }

    /// Set the sampled gauges.
    pub fn set_sample(&self, s: &Sample) {
        self.cases.clear();
        for ((kind, level, status), n) in &s.cases {
            self.cases
                .get_or_create(&vec![
                    ("kind", kind.clone()),
                    ("level", level.clone()),
                    ("status", status.clone()),
                ])
                .set(*n);
        }
        self.outbox_depth.set(s.outbox_depth);
        self.outbox_oldest.set(s.outbox_oldest_seconds);
        self.imap_connected.clear();
        self.imap_last_sync.clear();
        for (name, connected, last) in &s.imap {
            let l = vec![("mailbox", name.clone())];
            self.imap_connected
                .get_or_create(&l)
                .set(i64::from(*connected));
            if let Some(t) = last {
                self.imap_last_sync.get_or_create(&l).set(*t);
            }
        }
        self.privacy.clear();
        for (bucket, n) in &s.privacy {
            self.privacy
                .get_or_create(&vec![("days_left", bucket.to_string())])
                .set(*n);
        }
        if let Some(p) = s.disk_free_percent {
            self.disk_free.set(p);
        }
        for (alert, on) in &s.alerts {
            self.alert_active
                .get_or_create(&vec![("alert", alert.clone())])
                .set(i64::from(*on));
        }
    }

    /// How long since the transport last accepted a mail (None: not since
    /// the start).
    pub fn since_last_sent(&self) -> Option<Duration> {
        self.last_sent
            .lock()
            .ok()
            .and_then(|t| t.map(|t| t.elapsed()))
    }

    /// Token commands failing now (what they are for).
    pub fn failing_token_commands(&self) -> Vec<String> {
        self.token_failing
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, f)| **f)
                    .map(|(w, _)| w.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// Record one event.
pub fn record(e: Event<'_>) {
    metrics().apply(&e);
}

/// The days-left bucket of a privacy request (`days` to its date, negative
/// when late).
pub fn days_left_bucket(days: i64) -> &'static str {
    match days {
        i64::MIN..=-1 => "overdue",
        0..=7 => "0-7",
        8..=14 => "8-14",
        15..=30 => "15-30",
        _ => "31+",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_metrics_without_addresses() {
        let m = Metrics::new();
        m.apply(&Event::Taken {
            mailbox: "support",
            decision: "new_case",
        });
        m.apply(&Event::Sent {
            result: "sent",
            notice: Some("breach"),
            took: Duration::from_millis(3),
        });
        m.set_sample(&Sample {
            outbox_depth: 2,
            imap: vec![("support".into(), true, Some(1_700_000_000))],
            ..Sample::default()
        });
        let text = m.encode();
        assert!(
            text.contains(
                "ticketd_messages_taken_total{mailbox=\"support\",decision=\"new_case\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("ticketd_sends_total{result=\"sent\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ticketd_notices_sent_total{kind=\"breach\"} 1"),
            "{text}"
        );
        assert!(text.contains("ticketd_outbox_depth 2"), "{text}");
        assert!(
            text.contains("ticketd_imap_connected{mailbox=\"support\"} 1"),
            "{text}"
        );
        assert!(text.contains("ticketd_delivery_seconds_bucket"), "{text}");
        assert!(!text.contains('@'));
        assert!(m.since_last_sent().is_some());
    }

    #[test]
    fn buckets() {
        assert_eq!(days_left_bucket(-3), "overdue");
        assert_eq!(days_left_bucket(0), "0-7");
        assert_eq!(days_left_bucket(40), "31+");
    }
}
