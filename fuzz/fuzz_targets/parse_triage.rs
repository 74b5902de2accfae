//! Fuzz target: any bytes through the parse + triage + classify path must
//! never panic, and decisions must keep their invariants.
//!
//! Run from the repository root (`fuzz/seed.sh` seeds the `pipeline`
//! corpus; the same mail makes a good start here):
//!
//! ```sh
//! cargo +nightly fuzz run -O parse_triage fuzz/corpus/pipeline -- -max_total_time=600
//! ```
//!
//! `-O`: without debug assertions (see the `pipeline` target).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use ticketd::config::{Config, Role};
use ticketd::triage::Kind;

fn setup() -> &'static Config {
    static S: OnceLock<Config> = OnceLock::new();
    S.get_or_init(|| {
        Config::from_toml(
            ticketd::config::EMBEDDED_DEFAULT,
            "default",
            std::path::Path::new("/tmp"),
        )
        .expect("embedded default")
    })
}

fuzz_target!(|data: &[u8]| {
    let config = setup();
    let rules = &config.triage.compiled;
    for role in [Role::Support, Role::Privacy] {
        let c = ticketd::classify::classify("fuzz", data, config, rules, Some(role));
        match c.kind {
            Some(Kind::Ticket) => assert!(c.level.is_some_and(|l| (1..=5).contains(&l))),
            // A request names its rights; an inquiry (privacy@ only) none.
            Some(Kind::Privacy) => assert!(c
                .rights
                .as_ref()
                .is_some_and(|r| !r.is_empty() || role == Role::Privacy)),
            Some(Kind::Ignore) | Some(Kind::Reply) => assert!(!c.ack),
            None => assert!(c.error.is_some() && !c.ack),
        }
    }
});
