//! Simulator scaling harness (issue 3, "Scaling harness"): convergence time
//! and per-node fabric bandwidth for growing multi-hub clusters, in the
//! deterministic simulator, beside Serf's convergence model.
//!
//! For each gossip interval and each N:
//!
//! 1. **Cold start.** N nodes start at t = 0 (so the last start is t = 0),
//!    seeded as MultiHub (three chained hubs, node i ≥ 3 seeded with hub
//!    i % 3). Every `interval / 10` of virtual time the harness sums
//!    `discovered(i)` over all nodes and records when that reaches 99.99 %
//!    (and 100 %) of the N·(N−1) (node, peer) pairs.
//! 2. **Steady state.** After full discovery, the mesh settles: the dial
//!    scheduler keeps opening links until each node has its
//!    `desired_connected` (about √N + 2 beyond 20 peers), a few per
//!    reconcile tick, and every new link starts with a full digest. The
//!    harness waits until a 5 s stretch opens no link (no `hello` sent),
//!    up to `--max-settle-secs`, and reports that time. Then fabric
//!    bytes are counted over one catalog refresh period (the longest period
//!    in the steady-state traffic) from the nodes' own counters of fabric
//!    traffic sent (`mpreg_fabric_sent_bytes_total`), per node per second
//!    and per message kind.
//! 3. **Join.** One more node joins the converged cluster through a hub;
//!    the time until every pair involving it is discovered is the
//!    dissemination of one piece of news, the quantity Serf's model describes.
//!
//! Everything derives from `--seed`, so a run replays exactly. Wall-clock
//! and memory budgets bound the run: a size whose projection (from the
//! previous size, assuming quadratic growth) exceeds a budget is skipped, and
//! a size that runs over its wall-clock budget is stopped and reported as
//! such. No timing is asserted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant as WallInstant};

use clap::Parser;
use mpreg_benches::alloc::{self, Counting};
use mpreg_benches::serf;

#[global_allocator]
static ALLOC: Counting = Counting;
use mpreg_core::fabric::traffic::{MsgKind, Traffic};
use mpreg_core::sim::{cluster_settings, NetConfig, Sim, Topology};

#[derive(Parser, Debug)]
#[command(about = "Simulated convergence and bandwidth of multi-hub clusters")]
struct Args {
    /// Cluster sizes, ascending.
    #[arg(long, value_delimiter = ',', default_value = "10,30,100,300,1000")]
    sizes: Vec<usize>,
    /// Gossip intervals in seconds.
    #[arg(long, value_delimiter = ',', default_value = "1.0,0.2")]
    intervals: Vec<f64>,
    /// Seed of every run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Wall-clock budget per (interval, size) run, seconds.
    #[arg(long, default_value_t = 90.0)]
    budget_secs: f64,
    /// Virtual time allowed for cold-start discovery, seconds.
    #[arg(long, default_value_t = 120.0)]
    limit_secs: f64,
    /// Peak memory the harness may reach (projected), MiB.
    #[arg(long, default_value_t = 6144)]
    max_mem_mib: u64,
    /// Fabric catalog TTL of the simulated nodes (MPREG's default 120 s);
    /// the steady window is one refresh period, TTL / 4.
    #[arg(long, default_value_t = 120.0)]
    ttl_secs: f64,
    /// Also write `key=value` figures to this file (for the report script).
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
    /// Longest wait for the mesh to stop opening links before the steady
    /// window, virtual seconds.
    #[arg(long, default_value_t = 300.0)]
    max_settle_secs: f64,
    /// Skip the join measurement.
    #[arg(long)]
    no_join: bool,
    /// From this size on, nodes run with `advertise_builtin_rpcs = false`
    /// and declare one function each (`sim.work`): 2 entries per node in
    /// every catalog instead of ~27, what a large deployment would set.
    /// Membership, digests and liveness are unchanged; the table marks
    /// these rows.
    #[arg(long, default_value_t = 300)]
    lean_from: usize,
}

/// The settings of node `i` of an `n`-node run (`n` also names the
/// cluster), lean per `--lean-from`.
fn node_settings(args: &Args, i: usize, n: usize, gi: f64) -> mpreg_core::Settings {
    let mut s = cluster_settings(i, n, Topology::MultiHub, gi);
    s.fabric_catalog_ttl_seconds = args.ttl_secs;
    if n >= args.lean_from {
        s.advertise_builtin_rpcs = false;
        match serde_json::from_value(serde_json::json!({"name": "sim.work"})) {
            Ok(decl) => s.functions = vec![decl],
            Err(e) => eprintln!("scaling: cannot declare sim.work: {e}"),
        }
    }
    s
}

/// What one (interval, size) run measured.
#[derive(Debug, Default, Clone)]
struct Run {
    n: usize,
    gi: f64,
    /// Virtual seconds to 50 %, 99 %, 99.99 % and 100 % of pairs.
    t50: Option<f64>,
    t99: Option<f64>,
    t9999: Option<f64>,
    t100: Option<f64>,
    /// Fraction of pairs discovered when the run stopped looking.
    final_fraction: f64,
    /// Fabric bytes sent per node until 99.99 %.
    conv_bytes_per_node: Option<f64>,
    /// Steady state: bytes per node per second, total and by kind.
    steady_bps: Option<f64>,
    steady_by_kind: BTreeMap<String, f64>,
    steady_window: f64,
    /// Virtual seconds from full discovery until the mesh stopped opening
    /// links (`None`: it had not after `--max-settle-secs`).
    settled: Option<f64>,
    /// Frames per node per second in steady state.
    steady_fps: Option<f64>,
    /// Join: virtual seconds until all pairs with the new node are known.
    join: Option<f64>,
    wall_secs: f64,
    /// Live heap of the whole simulated cluster once it converged, bytes.
    heap_converged: usize,
    /// Peak heap of the run, bytes.
    heap_peak: usize,
    note: String,
}

/// The cluster's fabric traffic so far: every running node's
/// `mpreg_fabric_sent_*` counters summed.
fn cluster_sent(sim: &Sim) -> Traffic {
    let mut t = Traffic::default();
    for i in sim.running() {
        if let Some(node) = sim.node(i) {
            t.absorb(&node.counters().fabric_sent);
        }
    }
    t
}

/// Incremental count of discovered (node, peer) pairs: a node that has
/// discovered all its peers is not re-examined until the final check.
struct Pairs {
    want: usize,
    done: Vec<bool>,
    last: Vec<usize>,
}

impl Pairs {
    fn new(n: usize) -> Pairs {
        Pairs {
            want: n.saturating_sub(1),
            done: vec![false; n],
            last: vec![0; n],
        }
    }

    fn count(&mut self, sim: &Sim, nodes: &[usize]) -> usize {
        let mut total = 0;
        for (k, &i) in nodes.iter().enumerate() {
            if !self.done[k] {
                self.last[k] = sim.discovered(i);
                self.done[k] = self.last[k] >= self.want;
            }
            total += self.last[k];
        }
        total
    }

    /// Recount every node from scratch.
    fn recount(&mut self, sim: &Sim, nodes: &[usize]) -> usize {
        self.done.iter_mut().for_each(|d| *d = false);
        self.count(sim, nodes)
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d)
}

fn elapsed_since(sim: &Sim, t0: mpreg_core::Instant) -> f64 {
    sim.now().mono.saturating_duration_since(t0).as_secs_f64()
}

fn run_one(args: &Args, n: usize, gi: f64) -> Run {
    let wall = WallInstant::now();
    let heap0 = alloc::live_bytes();
    alloc::reset_peak();
    let budget = Duration::from_secs_f64(args.budget_secs);
    let over = || wall.elapsed() > budget;
    let mut run = Run {
        n,
        gi,
        ..Run::default()
    };
    let mut sim = Sim::new(args.seed, NetConfig::default());
    for i in 0..n {
        sim.add(node_settings(args, i, n, gi));
    }
    let sent0 = cluster_sent(&sim);
    let t0 = sim.now().mono;
    let nodes: Vec<usize> = (0..n).collect();
    let all = n * n.saturating_sub(1);
    let target = ((all as f64) * 0.9999).ceil() as usize;
    let mut pairs = Pairs::new(n);
    let step = secs(gi / 10.0);
    // 1. Cold start.
    loop {
        sim.run_for(step);
        let got = pairs.count(&sim, &nodes);
        let t = elapsed_since(&sim, t0);
        let frac = got as f64 / all.max(1) as f64;
        run.final_fraction = frac;
        if run.t50.is_none() && frac >= 0.5 {
            run.t50 = Some(t);
        }
        if run.t99.is_none() && frac >= 0.99 {
            run.t99 = Some(t);
        }
        if run.t9999.is_none() && got >= target {
            run.t9999 = Some(t);
            let sent = cluster_sent(&sim).since(&sent0);
            run.conv_bytes_per_node = Some(sent.total_bytes() as f64 / n as f64);
        }
        if got >= all {
            // Confirm with a full recount (complete nodes were cached).
            if pairs.recount(&sim, &nodes) >= all {
                run.t100 = Some(t);
                break;
            }
        }
        if t >= args.limit_secs {
            run.note = format!("not fully discovered within {} s virtual", args.limit_secs);
            break;
        }
        if over() {
            run.note = format!(
                "wall-clock budget ({} s) ran out at {t:.1} s virtual",
                args.budget_secs
            );
            break;
        }
    }
    if let Some(v) = sim.violation() {
        run.note = format!("{} INVARIANT VIOLATED: {v}", run.note);
    }
    run.heap_converged = alloc::live_bytes().saturating_sub(heap0);
    eprintln!(
        "scaling:   cold start done at {:.2} s virtual, {:.1} s wall",
        elapsed_since(&sim, t0),
        wall.elapsed().as_secs_f64()
    );
    // 2. Steady state: settle, then one refresh period.
    if run.t100.is_some() && !over() {
        let settle_from = sim.now().mono;
        let stretch = 5.0_f64.max(5.0 * gi);
        loop {
            let hellos = cluster_sent(&sim).frames(MsgKind::Hello);
            sim.run_for(secs(stretch));
            let waited = elapsed_since(&sim, settle_from);
            if cluster_sent(&sim).frames(MsgKind::Hello) == hellos {
                run.settled = Some(waited);
                break;
            }
            if waited >= args.max_settle_secs || over() {
                run.note = format!("{} mesh still opening links after {waited:.0} s", run.note);
                break;
            }
        }
        let window = (args.ttl_secs / 4.0).max(gi * 10.0);
        let before = cluster_sent(&sim);
        let start = sim.now().mono;
        let mut complete = true;
        while elapsed_since(&sim, start) < window - 1e-9 {
            let left = window - elapsed_since(&sim, start);
            sim.run_for(secs(left.min(gi)));
            if over() {
                complete = false;
                break;
            }
        }
        let measured = elapsed_since(&sim, start);
        if complete {
            let steady = cluster_sent(&sim).since(&before);
            let denom = n as f64 * measured;
            run.steady_window = measured;
            run.steady_bps = Some(steady.total_bytes() as f64 / denom);
            run.steady_fps = Some(steady.total_frames() as f64 / denom);
            run.steady_by_kind = MsgKind::ALL
                .iter()
                .filter(|k| steady.bytes(**k) > 0)
                .map(|k| (k.label().to_string(), steady.bytes(*k) as f64 / denom))
                .collect();
        } else {
            run.note = format!("{} steady window cut by the wall-clock budget", run.note);
        }
    }
    eprintln!(
        "scaling:   steady window done, {:.1} s wall",
        wall.elapsed().as_secs_f64()
    );
    // 3. One node joins the converged cluster.
    if !args.no_join && run.steady_bps.is_some() && !over() {
        let mut s = node_settings(args, n, n + 1, gi);
        s.cluster_id = cluster_settings(0, n, Topology::MultiHub, gi).cluster_id;
        if n >= args.lean_from {
            // Same catalog shape as the cluster it joins.
            s.advertise_builtin_rpcs = false;
            s.functions = node_settings(args, 0, n, gi).functions;
        }
        sim.add(s);
        let start = sim.now().mono;
        let all_nodes: Vec<usize> = (0..=n).collect();
        let mut pairs = Pairs::new(n + 1);
        let full = (n + 1) * n;
        loop {
            sim.run_for(step);
            let t = elapsed_since(&sim, start);
            if pairs.count(&sim, &all_nodes) >= full && pairs.recount(&sim, &all_nodes) >= full {
                run.join = Some(t);
                break;
            }
            if t >= args.limit_secs || over() {
                run.note = format!("{} join not complete", run.note);
                break;
            }
        }
    }
    run.wall_secs = wall.elapsed().as_secs_f64();
    run.heap_peak = alloc::peak_bytes().saturating_sub(heap0);
    run
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

fn main() {
    let args = Args::parse();
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let mut runs: Vec<Run> = Vec::new();
    let mut skipped: Vec<(f64, usize, String)> = Vec::new();
    for &gi in &args.intervals {
        let mut prev: Option<Run> = None;
        for &n in &sizes {
            // A projection holds between runs of the same catalog shape
            // only: the first lean size runs unprojected.
            let same_shape = |p: &Run| (p.n >= args.lean_from) == (n >= args.lean_from);
            if let Some(p) = prev.as_ref().filter(|p| same_shape(p)) {
                let growth = (n as f64 / p.n as f64).powi(2);
                let wall = p.wall_secs * growth;
                let mem = p.heap_peak as f64 * growth / MIB;
                let why = if p.t100.is_none() && p.note.contains("budget") {
                    Some(format!("N={} already ran out of budget", p.n))
                } else if wall > args.budget_secs * 1.5 {
                    Some(format!(
                        "projected {wall:.0} s wall clock > budget {} s",
                        args.budget_secs
                    ))
                } else if mem > args.max_mem_mib as f64 {
                    Some(format!(
                        "projected {mem:.0} MiB > memory budget {} MiB",
                        args.max_mem_mib
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    eprintln!("scaling: skip gi={gi} N={n}: {why}");
                    skipped.push((gi, n, why));
                    continue;
                }
            }
            eprintln!("scaling: gi={gi} N={n} ...");
            let r = run_one(&args, n, gi);
            eprintln!(
                "scaling: gi={gi} N={n}: t99.99={} s, steady={} B/s/node, join={} s, wall {:.1} s, heap peak {:.0} MiB {}",
                fmt_opt(r.t9999, 2),
                fmt_opt(r.steady_bps, 0),
                fmt_opt(r.join, 2),
                r.wall_secs,
                r.heap_peak as f64 / MIB,
                r.note
            );
            prev = Some(r.clone());
            runs.push(r);
        }
    }
    print_report(&args, &runs, &skipped);
    if let Some(path) = &args.summary {
        let mut out = String::new();
        let kbit = |bps: f64| bps * 8.0 / 1024.0;
        for r in &runs {
            let key = format!("scaling.gi{}.n{}", r.gi, r.n);
            let mut put = |k: &str, v: Option<f64>| {
                if let Some(v) = v {
                    out.push_str(&format!("{key}.{k}={v:.3}\n"));
                }
            };
            put("t9999", r.t9999);
            put("t100", r.t100);
            put("join", r.join);
            put("settled", r.settled);
            put("steady_kbps", r.steady_bps.map(kbit));
            put(
                "heap_mib_per_node",
                Some(r.heap_converged as f64 / MIB / r.n as f64),
            );
        }
        for (gi, n, _) in &skipped {
            out.push_str(&format!("scaling.gi{gi}.n{n}.skipped=1\n"));
        }
        if let Err(e) = std::fs::write(path, out) {
            eprintln!("scaling: cannot write {}: {e}", path.display());
        }
    }
}

fn print_report(args: &Args, runs: &[Run], skipped: &[(f64, usize, String)]) {
    let kbit = |bps: f64| bps * 8.0 / 1024.0;
    println!(
        "### Convergence and bandwidth (simulator, MultiHub, seed {})\n",
        args.seed
    );
    println!(
        "Cold start: all N nodes start at t = 0; times are virtual seconds from the last start \
         until the given fraction of the N·(N−1) (node, peer) pairs is discovered \
         (`Sim::discovered`, sampled every interval/10). Join: one extra node joins the \
         converged cluster; time until every pair involving it is discovered. \
         Mesh settled: virtual seconds after full discovery until a 5 s stretch opened no \
         fabric link (the dial scheduler adds a few links per tick up to its target, and each \
         new link starts with a full digest); the steady window starts there. \
         Serf model: hashicorp/serf `_simulator.js` (fanout 3, 0 % loss) evaluated at the same \
         N and interval; the 0.2 s column is Serf's default configuration (anchors.md §3.1). \
         Network: 5 ms latency + up to 5 ms jitter, no loss. \
         N marked † ran lean (`advertise_builtin_rpcs = false`, one declared function per \
         node: 2 catalog entries per node instead of ~27; `--lean-from {}`).\n",
        args.lean_from
    );
    println!(
        "| interval | N | t50 % | t99 % | **t99.99 %** | t100 % | Serf model t99.99 % | join (1 node) | mesh settled s | fabric KiB/node to 99.99 % | steady B/s/node | steady kbit/s/node | Serf max kbit/s/node | frames/s/node | heap MiB/node | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let model = serf::seconds_to_converge(r.n, r.gi, serf::DEFAULT_FANOUT, 0.0);
        let model_bw = kbit(serf::max_bytes_per_sec(r.gi, serf::DEFAULT_FANOUT));
        println!(
            "| {:.1} s | {} | {} | {} | **{}** | {} | {:.1} | {} | {} | {} | {} | {} | {:.0} | {} | {:.2} | {:.1} |",
            r.gi,
            if r.n >= args.lean_from {
                format!("{} †", r.n)
            } else {
                r.n.to_string()
            },
            fmt_opt(r.t50, 2),
            fmt_opt(r.t99, 2),
            fmt_opt(r.t9999, 2),
            fmt_opt(r.t100, 2),
            model,
            fmt_opt(r.join, 2),
            fmt_opt(r.settled, 0),
            fmt_opt(r.conv_bytes_per_node.map(|b| b / 1024.0), 1),
            fmt_opt(r.steady_bps, 0),
            fmt_opt(r.steady_bps.map(kbit), 1),
            model_bw,
            fmt_opt(r.steady_fps, 1),
            r.heap_converged as f64 / MIB / r.n as f64,
            r.wall_secs,
        );
    }
    println!();
    let kinds: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.steady_by_kind.keys()).collect();
    if !kinds.is_empty() {
        println!(
            "Steady-state bytes per node per second by fabric message kind (window: one refresh period, TTL/4 = {:.0} s):\n",
            args.ttl_secs / 4.0
        );
        let header: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        println!("| interval | N | {} |", header.join(" | "));
        println!("|---|---|{}", "---|".repeat(header.len()));
        for r in runs.iter().filter(|r| r.steady_bps.is_some()) {
            let cells: Vec<String> = kinds
                .iter()
                .map(|k| {
                    r.steady_by_kind
                        .get(*k)
                        .map(|b| format!("{b:.0}"))
                        .unwrap_or_else(|| "0".into())
                })
                .collect();
            println!("| {:.1} s | {} | {} |", r.gi, r.n, cells.join(" | "));
        }
        println!();
    }
    let notes: Vec<String> = runs
        .iter()
        .filter(|r| !r.note.is_empty())
        .map(|r| format!("- interval {:.1} s, N = {}: {}", r.gi, r.n, r.note.trim()))
        .chain(
            skipped
                .iter()
                .map(|(gi, n, why)| format!("- interval {gi:.1} s, N = {n}: skipped ({why})")),
        )
        .collect();
    if !notes.is_empty() {
        println!("Notes:\n");
        for n in notes {
            println!("{n}");
        }
        println!();
    }
}
