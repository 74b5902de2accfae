//! Fuzz target `config`: any bytes, read as UTF-8 (lossy), through
//! `Config::from_toml` must give `Ok` or `Err`, never panic; an error must
//! format (it quotes the offending line, located by byte span).
//!
//! Run from the repository root (seed the corpus, fuzz/corpus/config,
//! from config.example.toml, src/default.toml and fixtures/clocks/ first;
//! the dictionary holds the keys of config.example.toml, which gets the
//! fuzzer past the TOML layer into validation):
//!
//! ```sh
//! fuzz/seed.sh
//! cargo +nightly fuzz run -O config -- -dict=fuzz/dict/config.dict -max_total_time=1800
//! ```
//!
//! `from_toml` is pure: it reads no file and no environment variable
//! (secrets are resolved later, by `secrets.rs`), so arbitrary paths and
//! `*_env` names in the input are harmless.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use ticketd::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::from_toml(&text, "fuzz", Path::new("/tmp")) {
        Ok(c) => {
            // What the daemon derives from a valid config straight away.
            let _ = c.own_addresses();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
