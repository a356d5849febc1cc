//! Any bytes as a settings file (TOML) and, line by line, as `MPREG_*`
//! environment variables: the two untrusted-ish text sources of `load`.
//!
//! Junk must be a one-line `ConfigError`, never a panic. Accepted settings
//! are what the rest of the core relies on, so they must be a fixed point
//! of `Settings::normalized` (normalising again changes nothing and fails
//! on nothing) and a node must start from them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpreg_core::config::{self, Settings};
use mpreg_core::Node;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loaded) = config::load(Some(text), &[], &[]) {
        assert_usable(loaded.settings);
    }
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(loaded) = config::load(None, &env, &[]) {
        assert_usable(loaded.settings);
    }
});

fn assert_usable(settings: Settings) {
    let again = settings.clone().normalized();
    assert!(
        again.as_ref() == Ok(&settings),
        "normalisation is not idempotent: {again:?}"
    );
    let node = Node::new(settings, mpreg_fuzz::start(), 1);
    assert!(
        node.is_ok(),
        "valid settings refused by Node::new: {:?}",
        node.err()
    );
}
