//! Convergence and churn scenarios in the deterministic simulator
//! (`reference/fabric.md` §5), each over many seeds, in virtual time.
//!
//! A failure names its seed; `MPREG_SIM_SEED=<n> cargo test -p mpreg-tests
//! --test sim_scenarios` replays exactly that run. `MPREG_SIM_SEEDS=<n>`
//! runs every scenario over `n` seeds. Without it every scenario runs 20
//! seeds except the two largest (80 nodes striped, 100 nodes with loss),
//! which cost about 20 s of CPU per seed in a test build and run one here;
//! `.ci/run` sweeps those two over 20 seeds in a step of their own, beside
//! the fuzz smoke. `soak_many_seeds` (ignored) and `MPREG_SIM_SEEDS` are
//! the wide sweeps.

use std::time::Duration;

use mpreg_core::sim::{cluster_settings, NetConfig, Sim, Topology};

/// The seeds of a scenario whose default sweep is `default` seeds.
fn seeds_up_to(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("MPREG_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let n = std::env::var("MPREG_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..n).collect()
}

/// The seeds of a cheap scenario.
fn seeds() -> Vec<u64> {
    seeds_up_to(20)
}

/// Starts a cluster with MPREG's start schedule (§5.1).
fn start(seed: u64, n: usize, topology: Topology, gi: f64, net: NetConfig) -> Sim {
    let mut sim = Sim::new(seed, net);
    let (batch, gap, between) = if n >= 50 {
        (5, 0.5, 1.0)
    } else if n >= 20 {
        (8, 0.3, 0.5)
    } else {
        (n.max(1), 0.0, 0.0)
    };
    for i in 0..n {
        sim.add(cluster_settings(i, n, topology, gi));
        if gap > 0.0 {
            sim.run_for(Duration::from_secs_f64(gap));
        }
        if (i + 1) % batch == 0 && between > 0.0 {
            sim.run_for(Duration::from_secs_f64(between));
        }
    }
    sim
}

fn assert_safe(sim: &Sim) {
    if let Some(v) = sim.violation() {
        panic!("invariant violated: {v}");
    }
}

fn converge(n: usize, topology: Topology, gi: f64, budget: Duration) {
    for seed in seeds() {
        let mut sim = start(seed, n, topology, gi, NetConfig::default());
        let ok = sim.run_until(budget, |s| s.all_discovered());
        assert_safe(&sim);
        assert!(
            ok,
            "{topology:?} n={n} seed {seed}: not every node discovered every peer within {budget:?} ({:?})",
            (0..n).map(|i| sim.discovered(i)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn small_topologies_discover_everyone() {
    for n in [2, 3, 5] {
        converge(n, Topology::LinearChain, 0.5, Duration::from_secs(5));
    }
    for n in [3, 5, 8] {
        converge(n, Topology::StarHub, 0.5, Duration::from_secs(5));
    }
    converge(5, Topology::Ring, 0.5, Duration::from_secs(5));
}

#[test]
fn medium_topologies_discover_everyone() {
    converge(10, Topology::StarHub, 1.0, Duration::from_secs(15));
    converge(13, Topology::MultiHub, 1.0, Duration::from_secs(15));
    converge(20, Topology::StarHub, 1.0, Duration::from_secs(20));
}

#[test]
fn thirty_node_multi_hub_within_ten_seconds() {
    converge(30, Topology::MultiHub, 1.0, Duration::from_secs(10));
}

#[test]
fn fifty_node_multi_hub_within_fifteen_seconds() {
    converge(50, Topology::MultiHub, 1.0, Duration::from_secs(15));
}

/// §5.2 `test_fabric_churn_recovery`: 12-node star, two nodes leave with
/// GOODBYE, two replacements join; the hub lists exactly 11 peers and never
/// a departed URL once the GOODBYE arrived.
#[test]
fn churn_recovery_lists_exactly_eleven() {
    for seed in seeds() {
        let n = 12;
        let mut sim = Sim::new(seed, NetConfig::default());
        for i in 0..n {
            let mut s = cluster_settings(i, n, Topology::StarHub, 0.3);
            s.fabric_catalog_ttl_seconds = 15.0;
            sim.add(s);
            sim.run_for(Duration::from_millis(50));
        }
        sim.run_for(Duration::from_secs(1));
        assert!(
            sim.run_until(Duration::from_secs(8), |s| s.clone_peers(0).len() == 11),
            "seed {seed}: hub never saw 11 peers"
        );
        let departed = [sim.url(10), sim.url(11)];
        sim.stop(10);
        sim.run_for(Duration::from_millis(500));
        sim.stop(11);
        sim.run_for(Duration::from_millis(500));
        // Replacements on new ports, seeded with the hub.
        for i in 12..14 {
            let mut s = cluster_settings(i, n, Topology::StarHub, 0.3);
            s.fabric_catalog_ttl_seconds = 15.0;
            sim.add(s);
        }
        // From now on no sample may show a departed URL.
        let mut ok_at = None;
        for step in 0..90 {
            sim.run_for(Duration::from_millis(100));
            let peers = sim.clone_peers(0);
            for d in &departed {
                assert!(
                    !peers.contains(d),
                    "seed {seed}: hub lists departed {d} at step {step}"
                );
            }
            if peers.len() == 11 && ok_at.is_none() {
                ok_at = Some(step);
            }
        }
        assert_safe(&sim);
        let ok_at = ok_at.unwrap_or_else(|| {
            panic!(
                "seed {seed}: hub never listed exactly 11 peers: {:?}",
                sim.clone_peers(0)
            )
        });
        assert!(ok_at <= 90, "seed {seed}");
        assert_eq!(
            sim.clone_peers(0).len(),
            11,
            "seed {seed}: {:?}",
            sim.clone_peers(0)
        );
    }
}

/// A node killed without GOODBYE leaves every `list_peers` within the
/// liveness bound: in full-mesh clusters (≤ 20 peers) the disconnect
/// demotion drops it after `stale_after = max(1, gi·max(4, √n))`; the
/// failure detector removes its state after
/// `2·gi·(3 + 2·⌈log2 n⌉)` (the "dead" timeout). For 10 nodes at gi 0.5:
/// stale 2 s, dead 15 s; we allow the stale bound plus reconnect slack.
/// A cluster with a shared `fabric_auth_key`: its members converge as
/// without a key, while a node with another key and a node with none are
/// refused by every member they reach, never listed and never learn the
/// catalog (issue 11: an unauthenticated peer is refused).
#[test]
fn a_cluster_key_keeps_outsiders_out() {
    use mpreg_core::config::SecretText;
    use mpreg_core::fabric::auth::Refusal;
    let key = "0123456789abcdef-cluster";
    for seed in seeds() {
        let n = 8;
        let mut sim = Sim::new(seed, NetConfig::default());
        for i in 0..n {
            let mut s = cluster_settings(i, n, Topology::StarHub, 0.5);
            s.fabric_auth_key = match i {
                6 => None,
                7 => Some(SecretText::new("0123456789abcdef-intruder")),
                _ => Some(SecretText::new(key)),
            };
            sim.add(s);
        }
        let members = 0..6;
        let ok = sim.run_until(Duration::from_secs(10), |s| {
            members.clone().all(|i| s.discovered(i) == 5)
        });
        assert_safe(&sim);
        assert!(
            ok,
            "seed {seed}: members did not converge: {:?}",
            (0..n).map(|i| sim.discovered(i)).collect::<Vec<_>>()
        );
        sim.run_for(Duration::from_secs(5));
        let outsiders = [sim.url(6), sim.url(7)];
        for i in members.clone() {
            assert_eq!(
                sim.discovered(i),
                5,
                "seed {seed}: node {i} learned an outsider"
            );
            let peers = sim.clone_peers(i);
            assert!(
                !peers.iter().any(|p| outsiders.contains(p)),
                "seed {seed}: node {i} lists an outsider: {peers:?}"
            );
        }
        for i in [6, 7] {
            assert_eq!(
                sim.discovered(i),
                0,
                "seed {seed}: outsider {i} learned the catalog"
            );
        }
        let hub = sim
            .node(0)
            .expect("hub runs")
            .counters()
            .fabric_auth_refused;
        assert!(hub.get(Refusal::Missing) >= 1, "seed {seed}: {hub:?}");
        assert!(hub.get(Refusal::Failed) >= 1, "seed {seed}: {hub:?}");
        let keyless = sim.node(6).expect("runs").counters().fabric_auth_refused;
        assert!(
            keyless.get(Refusal::Unexpected) >= 1,
            "seed {seed}: {keyless:?}"
        );
    }
}

#[test]
fn crashed_node_leaves_every_list_within_the_bound() {
    for seed in seeds() {
        let n = 10;
        let mut sim = start(seed, n, Topology::StarHub, 0.5, NetConfig::default());
        assert!(
            sim.run_until(Duration::from_secs(10), |s| s.converged_ref()),
            "seed {seed}: no initial convergence"
        );
        let crashed = sim.url(7);
        sim.crash(7);
        let ok = sim.run_until(Duration::from_secs(4), |s| {
            (0..n)
                .filter(|&i| i != 7)
                .all(|i| !s.clone_peers(i).contains(&crashed))
        });
        assert_safe(&sim);
        assert!(ok, "seed {seed}: crashed node still listed after 4 s");
        // And its catalog state is gone once the failure detector fires.
        let gone = sim.run_until(Duration::from_secs(20), |s| {
            (0..n).filter(|&i| i != 7).all(|i| {
                s.node(i)
                    .is_some_and(|node| node.replica().view_instance(&crashed).is_none())
            })
        });
        assert!(
            gone,
            "seed {seed}: crashed node's state not dropped by the failure detector"
        );
    }
}

/// From 65 nodes on, digests carry the heartbeat advances of one stripe of
/// origins at a time (`beat_stride`). Over three death timeouts of steady
/// running no node suspects a live one, and a crashed node is still
/// declared dead everywhere within its derived bound: the death timeout
/// plus the time its last heartbeat takes to spread.
#[test]
fn striped_heartbeats_keep_live_nodes_and_drop_a_crashed_one() {
    use mpreg_core::fabric::replica::{beat_stride, failure_timeouts};
    let n = 80;
    let gi = 0.5;
    assert_eq!(beat_stride(n), 2, "the scenario must run striped");
    let (_, dead_after) = failure_timeouts(n, Duration::from_secs_f64(gi));
    // 80 nodes for a minute of virtual time cost ~18 s in a test build:
    // one seed here, 20 in `.ci/run`'s sweep (`MPREG_SIM_SEEDS`).
    for seed in seeds_up_to(1) {
        let mut sim = start(seed, n, Topology::MultiHub, gi, NetConfig::default());
        assert!(
            sim.run_until(Duration::from_secs(30), |s| s.all_discovered()),
            "seed {seed}: no initial convergence"
        );
        let urls: Vec<String> = (0..n).map(|i| sim.url(i)).collect();
        let suspected = |s: &Sim, skip: usize| -> Option<(usize, String)> {
            (0..n).filter(|&i| i != skip).find_map(|i| {
                let replica = s.node(i)?.replica();
                urls.iter()
                    .enumerate()
                    .find(|&(j, u)| j != skip && j != i && replica.is_suspect(u))
                    .map(|(_, u)| (i, u.clone()))
            })
        };
        let steady = dead_after * 3;
        let mut waited = Duration::ZERO;
        while waited < steady {
            sim.run_for(Duration::from_secs_f64(gi));
            waited += Duration::from_secs_f64(gi);
            if let Some((i, u)) = suspected(&sim, n) {
                panic!("seed {seed}: node {i} suspects live {u} after {waited:?}");
            }
        }
        assert!(sim.all_discovered(), "seed {seed}: a live node was dropped");
        let crashed = 41;
        sim.crash(crashed);
        // Spreading its last heartbeat takes a few rounds per stripe.
        let bound = dead_after + Duration::from_secs_f64(gi * 20.0);
        let gone = sim.run_until(bound, |s| {
            (0..n).filter(|&i| i != crashed).all(|i| {
                s.node(i)
                    .is_some_and(|node| node.replica().view_instance(&urls[crashed]).is_none())
            })
        });
        assert_safe(&sim);
        assert!(
            gone,
            "seed {seed}: crashed node still known after {bound:?}"
        );
        if let Some((i, u)) = suspected(&sim, crashed) {
            panic!("seed {seed}: node {i} suspects live {u} after the crash");
        }
    }
}

/// 20 nodes split in two halves for 60 s, then healed: full convergence
/// within 10 s of the heal.
#[test]
fn split_brain_heals_within_ten_seconds() {
    for seed in seeds() {
        let n = 20;
        let mut sim = start(seed, n, Topology::StarHub, 1.0, NetConfig::default());
        assert!(
            sim.run_until(Duration::from_secs(20), |s| s.all_discovered()),
            "seed {seed}: no initial convergence"
        );
        for a in 0..10 {
            for b in 10..20 {
                sim.partition(a, b, true);
            }
        }
        sim.run_for(Duration::from_secs(60));
        for a in 0..10 {
            for b in 10..20 {
                sim.partition(a, b, false);
            }
        }
        let ok = sim.run_until(Duration::from_secs(10), |s| {
            s.all_discovered() && s.converged_ref()
        });
        assert_safe(&sim);
        assert!(
            ok,
            "seed {seed}: not converged 10 s after the heal: {:?}",
            (0..n).map(|i| sim.discovered(i)).collect::<Vec<_>>()
        );
    }
}

/// 100 nodes with 10 % message loss (and 2 % duplication) still converge
/// fully. Each seed costs about 20 s of CPU in a test build, so the default
/// run takes one; `.ci/run` sweeps 20 (`MPREG_SIM_SEEDS`).
#[test]
fn hundred_nodes_with_ten_percent_loss_converge() {
    for seed in seeds_up_to(1) {
        let net = NetConfig {
            loss: 0.10,
            duplicate: 0.02,
            ..NetConfig::default()
        };
        let mut sim = start(seed, 100, Topology::MultiHub, 1.0, net);
        let ok = sim.run_until(Duration::from_secs(60), |s| s.all_discovered());
        assert_safe(&sim);
        assert!(
            ok,
            "seed {seed}: {:?}",
            (0..100).map(|i| sim.discovered(i)).collect::<Vec<_>>()
        );
    }
}

/// Soak: the cheaper scenarios over 200 more seeds (seeds 20..220), run by
/// hand with `cargo test -p mpreg-tests --test sim_scenarios -- --ignored`.
#[test]
#[ignore]
fn soak_many_seeds() {
    for seed in 20..220u64 {
        for (n, topology) in [
            (5, Topology::Ring),
            (8, Topology::StarHub),
            (13, Topology::MultiHub),
        ] {
            let mut sim = start(
                seed,
                n,
                topology,
                0.5,
                NetConfig {
                    loss: 0.05,
                    duplicate: 0.05,
                    ..NetConfig::default()
                },
            );
            let ok = sim.run_until(Duration::from_secs(20), |s| s.all_discovered());
            assert_safe(&sim);
            assert!(ok, "{topology:?} n={n} seed {seed}");
        }
    }
}

/// Same seed, same run: the simulator is deterministic.
#[test]
fn runs_replay_from_their_seed() {
    let fingerprint = |seed| {
        let mut sim = start(
            seed,
            8,
            Topology::MultiHub,
            0.5,
            NetConfig {
                loss: 0.05,
                ..NetConfig::default()
            },
        );
        sim.run_for(Duration::from_secs(3));
        (0..8).map(|i| sim.discovered(i)).collect::<Vec<_>>()
    };
    for seed in [1, 2, 3] {
        assert_eq!(fingerprint(seed), fingerprint(seed));
    }
}
