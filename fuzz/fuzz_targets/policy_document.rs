//! Any bytes as a policy document, read the three ways a node reads one:
//! as the `rules` of a policy RPC (`rules_from_json`, then validation by
//! `compile_rules`), as a whole `namespace_policy_validate` /
//! `namespace_policy_apply` payload, and as the persisted policy history
//! (`PolicyHistory::from_bytes`, what a node restores at start).
//!
//! Junk must be rejected with messages, never a panic. What is accepted
//! must round-trip: compiled rules written back as JSON (`Rule::to_json`,
//! the wire shape) or as settings (`Rule::to_config`) compile to the same
//! rules and build an engine; an applied or restored history serialises to
//! bytes that restore to the same history.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpreg_core::config::Settings;
use mpreg_core::policy::{compile_rules, rpc, rules_from_json, PolicyEngine, PolicyHistory, Rule};
use mpreg_fuzz::WALL;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(history) = PolicyHistory::from_bytes(data) {
        assert_history_round_trips(&history);
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let (_, Ok(configs)) = rules_from_json(&value) {
        if let Ok(rules) = compile_rules(&configs) {
            assert_rules_round_trip(&rules);
        }
    }
    if let Value::Object(payload) = &value {
        let mut history = PolicyHistory::new(&Settings::default(), WALL).expect("default policy");
        let validated = rpc::namespace_policy_validate(&mut history, None, payload, WALL);
        let applied = rpc::namespace_policy_apply(&mut history, Some("fuzz"), payload, WALL + 1.0);
        if let (Ok(validated), Ok(applied)) = (&validated, &applied) {
            assert_eq!(
                validated["valid"], applied["valid"],
                "validate and apply disagree"
            );
        }
        assert_rules_round_trip(&history.current().rules);
        assert_history_round_trips(&history);
    }
});

fn assert_rules_round_trip(rules: &[Rule]) {
    let wire = Value::Array(rules.iter().map(Rule::to_json).collect());
    let (count, reparsed) = rules_from_json(&wire);
    assert_eq!(count, rules.len());
    let reparsed = reparsed.expect("rules written as JSON parse again");
    assert_eq!(
        compile_rules(&reparsed).as_deref(),
        Ok(rules),
        "JSON round trip changed the rules"
    );
    let configs: Vec<_> = rules.iter().map(Rule::to_config).collect();
    assert_eq!(
        compile_rules(&configs).as_deref(),
        Ok(rules),
        "settings round trip changed the rules"
    );
    assert!(
        PolicyEngine::new(true, false, rules.to_vec()).is_ok(),
        "compiled rules rejected by the engine"
    );
}

fn assert_history_round_trips(history: &PolicyHistory) {
    let bytes = history.to_bytes();
    let restored = PolicyHistory::from_bytes(&bytes);
    assert!(
        restored.is_ok(),
        "persisted history does not restore: {:?}",
        restored.err()
    );
    if let Ok(restored) = restored {
        assert!(
            restored.to_bytes() == bytes,
            "history round trip changed it"
        );
    }
}
