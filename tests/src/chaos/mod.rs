//! The chaos harness behind `cargo run -p mpreg-tests --bin chaos`: real
//! `mpreg server` processes on 127.0.0.1 (a hub, a resolver, members), each
//! behind a proxy the harness owns, under query load, with faults injected
//! (hub restart, resolver restart, kill -9, link partitions) and the
//! invariants checked after each one; or, with `--churn`, endpoint churn
//! under queries, watches and DNS, checking that nothing is lost and that
//! memory stays bounded. Both print a markdown report and fail (exit 1)
//! when an invariant does not hold. See RELIABILITY.md.

pub mod fleet;
pub mod load;
pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fleet::{Fleet, FleetConfig, Role, RssTrack};
use load::{Counter, Load};

/// Options of one run (see `chaos --help`).
#[derive(Clone, Debug)]
pub struct Options {
    /// How long faults (or churn) go on.
    pub duration: Duration,
    /// Seed of every random choice (fault order, targets, timings).
    pub seed: u64,
    /// Nodes in all: a hub, a resolver and `nodes - 2` members (at least 4).
    pub nodes: usize,
    /// `tokio` or `mio`.
    pub runtime: String,
    /// Churn mode instead of fault injection.
    pub churn: bool,
    /// Registered endpoints (churn mode; chaos registers 3 per node).
    pub endpoints: usize,
    /// Bound on reconvergence after each fault.
    pub converge: Duration,
    /// Largest acceptable RSS of one node, in MiB (churn mode).
    pub rss_limit_mib: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            duration: Duration::from_secs(60),
            seed: 1,
            nodes: 5,
            runtime: "tokio".into(),
            churn: false,
            endpoints: 100,
            converge: Duration::from_secs(30),
            rss_limit_mib: 512,
        }
    }
}

/// A small deterministic generator (SplitMix64), so a seed replays a run's
/// choices.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % n as u64).unwrap_or(0)
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi.saturating_sub(lo) + 1))
    }
}

/// One injected fault and what followed it.
struct FaultRecord {
    at: Duration,
    kind: &'static str,
    target: String,
    /// How long the fault lasted (down time or partition time).
    outage: Duration,
    /// Reconvergence after the fault ended, or why it did not happen.
    converged: Result<Duration, String>,
}

/// Runs the mode `opts` asks for; returns the markdown report and whether
/// every invariant held.
pub fn run(opts: &Options) -> Result<(String, bool), String> {
    if opts.nodes < 4 {
        return Err("--nodes must be at least 4 (a hub, a resolver, two members)".into());
    }
    if opts.churn {
        run_churn(opts)
    } else {
        run_chaos(opts)
    }
}

fn start_fleet(opts: &Options, extra_toml: &str) -> Result<Fleet, String> {
    let fleet = Fleet::start(
        opts.nodes - 2,
        FleetConfig {
            runtime: opts.runtime.clone(),
            extra_toml: extra_toml.to_string(),
        },
    )?;
    fleet
        .wait_converged(opts.converge * 2)
        .map_err(|e| format!("the cluster did not form: {e}"))?;
    Ok(fleet)
}

/// Registers `per_node` services on slot `i` (named after the slot and a
/// generation, so a restarted node's names differ from its predecessor's).
fn register_on(
    fleet: &mut Fleet,
    i: usize,
    generation: u64,
    per_node: usize,
) -> Result<(), String> {
    for k in 0..per_node {
        let name = format!("{}-g{generation}-{k}", fleet.slots[i].name);
        fleet.register(i, &name)?;
    }
    Ok(())
}

/// Fault injection: see the module doc and RELIABILITY.md.
fn run_chaos(opts: &Options) -> Result<(String, bool), String> {
    const PER_NODE: usize = 3;
    let mut rng = Rng::new(opts.seed);
    // Build (or find) the node binary before timing the cluster's start.
    crate::mpreg_bin();
    let started = Instant::now();
    let mut fleet = start_fleet(opts, "")?;
    let formed = started.elapsed();
    let mut generation = 0u64;
    for i in 0..fleet.slots.len() {
        register_on(&mut fleet, i, generation, PER_NODE)?;
    }
    fleet
        .wait_converged(opts.converge)
        .map_err(|e| format!("registrations did not spread: {e}"))?;
    let mut load = Load::new(fleet.live_urls());
    load.spawn_direct(2);
    load.spawn_failover();
    let mut rss = RssTrack::default();
    rss.sample(&fleet);

    let kinds = ["hub restart", "resolver restart", "kill -9", "partition"];
    let first = rng.below(kinds.len());
    let members: Vec<usize> = (0..fleet.slots.len())
        .filter(|i| fleet.slots[*i].role == Role::Member)
        .collect();
    let t0 = Instant::now();
    let mut faults: Vec<FaultRecord> = Vec::new();
    let mut ok = true;
    // Bounded by the duration (each round takes at least its pause) and by
    // a round cap.
    for round in 0..10_000 {
        if t0.elapsed() >= opts.duration {
            break;
        }
        std::thread::sleep(rng.millis(500, 2_000));
        let kind = kinds[(first + round) % kinds.len()];
        let at = t0.elapsed();
        generation += 1;
        let (target, outage, converged) = match kind {
            "hub restart" | "resolver restart" => {
                let i = usize::from(kind == "resolver restart");
                let down_at = Instant::now();
                fleet.down(i, false);
                std::thread::sleep(rng.millis(300, 1_500));
                fleet.boot(i);
                let outage = down_at.elapsed();
                load.set_targets(fleet.live_urls());
                let r = register_on(&mut fleet, i, generation, PER_NODE)
                    .and_then(|()| fleet.wait_converged(opts.converge));
                (fleet.slots[i].name.clone(), outage, r)
            }
            "kill -9" => {
                let i = members[rng.below(members.len())];
                let down_at = Instant::now();
                fleet.down(i, true);
                load.set_targets(fleet.live_urls());
                // The dead node must vanish from every view first ...
                let gone = fleet.wait_converged(opts.converge);
                let outage = down_at.elapsed();
                faults.push(FaultRecord {
                    at,
                    kind: "kill -9 (dead node dropped)",
                    target: fleet.slots[i].name.clone(),
                    outage: Duration::ZERO,
                    converged: gone.clone(),
                });
                if let Err(e) = gone {
                    ok = false;
                    eprintln!("chaos: {e}");
                    break;
                }
                // ... then a replacement process joins in its slot.
                fleet.boot(i);
                load.set_targets(fleet.live_urls());
                let r = register_on(&mut fleet, i, generation, PER_NODE)
                    .and_then(|()| fleet.wait_converged(opts.converge));
                (fleet.slots[i].name.clone(), outage, r)
            }
            _ => {
                let i = members[rng.below(members.len())];
                let name = fleet.slots[i].name.clone();
                let others: Vec<String> = fleet
                    .slots
                    .iter()
                    .filter(|s| s.name != name)
                    .map(|s| s.name.clone())
                    .collect();
                let (links, known) = fleet.net.link_counts();
                eprintln!(
                    "chaos: partitioning {name}: {links} proxied links open, {known} of them between identified nodes"
                );
                let cut_at = Instant::now();
                for o in &others {
                    fleet.net.cut(&name, o);
                }
                // Sometimes longer than the catalog TTL (6 s), so entries
                // expire on both sides and must be repaired after the heal.
                let hold = rng.millis(2_000, 9_000);
                let isolated = fleet.wait_isolated(i, hold);
                std::thread::sleep(hold.saturating_sub(cut_at.elapsed()));
                fleet.net.heal_all();
                let outage = cut_at.elapsed();
                let target = match isolated {
                    Some(d) => format!(
                        "{name} (dropped by its peers after {:.2} s)",
                        d.as_secs_f64()
                    ),
                    None => format!("{name} (still listed by a peer when healed)"),
                };
                (target, outage, fleet.wait_converged(opts.converge))
            }
        };
        rss.sample(&fleet);
        let failed = converged.is_err();
        if let Err(e) = &converged {
            eprintln!("chaos: {kind} of {target}: {e}");
        }
        faults.push(FaultRecord {
            at,
            kind,
            target,
            outage,
            converged,
        });
        if failed {
            ok = false;
            break;
        }
    }
    load.finish();
    let final_check = fleet.check();
    if final_check.is_err() {
        ok = false;
    }
    rss.sample(&fleet);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Chaos run\n\nseed {}, {} nodes (hub, resolver, {} members), runtime {}, faults for {:.0} s; \
         cluster formed in {:.2} s.\n",
        opts.seed,
        opts.nodes,
        opts.nodes - 2,
        opts.runtime,
        opts.duration.as_secs_f64(),
        formed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| # | at (s) | fault | target | outage (s) | reconverged in (s) |\n|---|---|---|---|---|---|"
    );
    for (n, f) in faults.iter().enumerate() {
        let conv = match &f.converged {
            Ok(d) => format!("{:.2}", d.as_secs_f64()),
            Err(e) => format!("FAILED: {}", e.chars().take(300).collect::<String>()),
        };
        let outage = if f.outage.is_zero() {
            "-".to_string()
        } else {
            format!("{:.2}", f.outage.as_secs_f64())
        };
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} |",
            n + 1,
            f.at.as_secs_f64(),
            f.kind,
            f.target,
            outage,
            conv
        );
    }
    let times: Vec<f64> = faults
        .iter()
        .filter_map(|f| f.converged.as_ref().ok().map(Duration::as_secs_f64))
        .collect();
    if !times.is_empty() {
        let max = times.iter().cloned().fold(0.0, f64::max);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let _ = writeln!(
            out,
            "\nreconvergence: mean {mean:.2} s, max {max:.2} s over {} checks",
            times.len()
        );
    }
    client_table(
        &mut out,
        &[
            ("direct catalog_query (2 clients)", &load.direct),
            ("FailoverClient", &load.failover),
        ],
    );
    let _ = writeln!(
        out,
        "\nproxy: {} node-to-node connections cut or refused during partitions",
        fleet.net.refused.load(Ordering::Relaxed)
    );
    rss_table(&mut out, &rss);
    let _ = writeln!(
        out,
        "\ninvariants after the last fault: {}",
        match &final_check {
            Ok(()) => "hold".to_string(),
            Err(e) => format!("VIOLATED: {e}"),
        }
    );
    let _ = writeln!(out, "\n**{}**", if ok { "PASS" } else { "FAIL" });
    Ok((out, ok))
}

/// Requests, errors and availability per client kind, then the most
/// frequent errors.
fn client_table(out: &mut String, clients: &[(&str, &Counter)]) {
    let _ = writeln!(
        out,
        "\n| client | requests | errors | availability |\n|---|---|---|---|"
    );
    let (mut all_ok, mut all_err) = (0, 0);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for (name, c) in clients {
        let (ok, err) = c.totals();
        all_ok += ok;
        all_err += err;
        let _ = writeln!(out, "| {name} | {} | {err} | {} |", ok + err, pct(ok, err));
        for (k, n) in c.kinds.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            *kinds.entry(k.clone()).or_default() += n;
        }
    }
    let _ = writeln!(
        out,
        "| all | {} | {all_err} | {} |",
        all_ok + all_err,
        pct(all_ok, all_err)
    );
    if !kinds.is_empty() {
        let mut top: Vec<(String, u64)> = kinds.into_iter().collect();
        top.sort_by_key(|k| std::cmp::Reverse(k.1));
        let _ = writeln!(out, "\nerrors seen (most frequent first):");
        for (k, n) in top.iter().take(6) {
            let _ = writeln!(out, "- {n} × `{}`", k.replace('`', "'"));
        }
    }
}

fn pct(ok: u64, err: u64) -> String {
    if ok + err == 0 {
        "-".into()
    } else {
        format!("{:.2} %", 100.0 * ok as f64 / (ok + err) as f64)
    }
}

fn rss_table(out: &mut String, rss: &RssTrack) {
    let _ = writeln!(
        out,
        "\n| node | RSS start (MiB) | peak (MiB) | end (MiB) |\n|---|---|---|---|"
    );
    for (slot, (a, p, e)) in &rss.by_slot {
        let _ = writeln!(
            out,
            "| {slot} | {:.1} | {:.1} | {:.1} |",
            *a as f64 / 1024.0,
            *p as f64 / 1024.0,
            *e as f64 / 1024.0
        );
    }
}

/// Load under churn: see the module doc and RELIABILITY.md.
fn run_churn(opts: &Options) -> Result<(String, bool), String> {
    let mut rng = Rng::new(opts.seed);
    let mut fleet = start_fleet(
        opts,
        "dns_gateway_enabled = true\ndns_zones = [\"mpreg\"]\n",
    )?;
    let mut rss = RssTrack::default();
    rss.sample(&fleet);
    let mut load = Load::new(fleet.live_urls());
    // Watchers first, so they see every registration from the start.
    for url in fleet.live_urls() {
        load.spawn_watcher(&url)?;
    }
    // name -> slot, for live registrations; every acknowledged name ever.
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    let mut withdrawn: BTreeSet<String> = BTreeSet::new();
    let n_slots = fleet.slots.len();
    for k in 0..opts.endpoints {
        let name = format!("e{k}");
        let i = k % n_slots;
        fleet.register(i, &name)?;
        live.insert(name, i);
    }
    fleet
        .wait_converged(opts.converge)
        .map_err(|e| format!("registrations did not spread: {e}"))?;
    let dns_ports: Vec<u16> = fleet
        .slots
        .iter()
        .filter_map(|s| s.node.as_ref().and_then(crate::Node::dns_port))
        .collect();
    *load.dns_names.lock().unwrap_or_else(|p| p.into_inner()) = live.keys().cloned().collect();
    load.spawn_direct(2);
    load.spawn_failover();
    load.spawn_dns(dns_ports.clone());

    // 10 % of the endpoints per minute, and at least half of them over the
    // run, so a short run churns too.
    let secs = opts.duration.as_secs_f64().max(1.0);
    let real_rate = opts.endpoints as f64 * 0.10 * secs / 60.0;
    let ops = real_rate.max(opts.endpoints as f64 / 2.0).ceil().max(1.0);
    let interval = Duration::from_secs_f64(secs / ops);
    let t0 = Instant::now();
    let (mut added, mut removed, mut failed_writes) = (0u64, 0u64, Vec::new());
    let mut last_rss = Instant::now();
    for next in 0..1_000_000u64 {
        if t0.elapsed() >= opts.duration {
            break;
        }
        std::thread::sleep(interval);
        // Withdraw one live endpoint, register a new one elsewhere.
        let names: Vec<String> = live.keys().cloned().collect();
        if !names.is_empty() {
            let name = names[rng.below(names.len())].clone();
            let slot = live[&name];
            match fleet.withdraw(slot, &name) {
                Ok(()) => {
                    live.remove(&name);
                    withdrawn.insert(name);
                    removed += 1;
                }
                Err(e) => failed_writes.push(e),
            }
        }
        let name = format!("c{next}");
        let slot = rng.below(n_slots);
        match fleet.register(slot, &name) {
            Ok(()) => {
                live.insert(name, slot);
                added += 1;
            }
            Err(e) => failed_writes.push(e),
        }
        *load.dns_names.lock().unwrap_or_else(|p| p.into_inner()) = live.keys().cloned().collect();
        if last_rss.elapsed() >= Duration::from_secs(1) {
            rss.sample(&fleet);
            last_rss = Instant::now();
        }
    }
    let churn_time = t0.elapsed();
    let converged = fleet.wait_converged(opts.converge);
    // Deliveries still in flight reach the watchers (their threads keep
    // reading until `finish`).
    std::thread::sleep(Duration::from_secs(2));
    load.finish();
    rss.sample(&fleet);

    // Watchers: for every acknowledged name, the changes seen (repeats
    // collapsed) must be "+" for a live one and "+-" for a withdrawn one,
    // unless the watcher got an explicit resync hint.
    let mut watcher_lines = Vec::new();
    let mut ok = converged.is_ok() && failed_writes.is_empty();
    for (url, log) in &load.watches {
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        let mut bad = Vec::new();
        let all = live
            .keys()
            .map(|n| (n, "+"))
            .chain(withdrawn.iter().map(|n| (n, "+-")));
        for (name, want) in all {
            let mut seen: Vec<char> = log.events.get(name).cloned().unwrap_or_default();
            seen.dedup();
            let got: String = seen.into_iter().collect();
            if got != want {
                bad.push(format!("{name}: saw {got:?}, want {want:?}"));
            }
        }
        let verdict = match (bad.is_empty(), log.resyncs, &log.broken) {
            (_, _, Some(why)) => {
                ok = false;
                format!("BROKEN ({why})")
            }
            (true, _, None) => "consistent".to_string(),
            (false, r, None) if r > 0 => format!("{} names off, explicit resync x{r}", bad.len()),
            (false, _, None) => {
                ok = false;
                format!(
                    "INCONSISTENT: {}",
                    bad.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
                )
            }
        };
        let slot = fleet
            .slots
            .iter()
            .find(|s| s.node.as_ref().is_some_and(|n| n.url() == url.as_str()))
            .map_or("?", |s| s.name.as_str());
        watcher_lines.push(format!(
            "| {slot} ({url}) | {} | {} | {verdict} |",
            log.events.values().map(Vec::len).sum::<usize>(),
            log.resyncs
        ));
    }
    let limit_kib = opts.rss_limit_mib * 1024;
    let over: Vec<&String> = rss
        .by_slot
        .iter()
        .filter(|(_, (_, peak, _))| *peak > limit_kib)
        .map(|(s, _)| s)
        .collect();
    if !over.is_empty() {
        ok = false;
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Load under churn\n\nseed {}, {} nodes (hub, resolver, {} members), runtime {}, {} endpoints, \
         churn for {:.0} s: one withdrawal and one registration every {:.2} s \
         ({:.0} % of the endpoints per minute; the real-world rate is 10 %).\n",
        opts.seed,
        opts.nodes,
        opts.nodes - 2,
        opts.runtime,
        opts.endpoints,
        churn_time.as_secs_f64(),
        interval.as_secs_f64(),
        100.0 * (60.0 / interval.as_secs_f64()) / opts.endpoints as f64
    );
    let _ = writeln!(
        out,
        "- registrations acknowledged: {} initial + {added} churned; withdrawals acknowledged: {removed}; \
         failed writes: {}",
        opts.endpoints,
        failed_writes.len()
    );
    let _ = writeln!(
        out,
        "- every acknowledged, not withdrawn registration ({}) on every node, withdrawn ones ({}) gone: {}",
        live.len(),
        withdrawn.len(),
        match &converged {
            Ok(d) => format!("yes, {:.2} s after the last change", d.as_secs_f64()),
            Err(e) => format!("NO: {}", e.chars().take(400).collect::<String>()),
        }
    );
    let (dns_ok, dns_err) = load.dns.totals();
    let _ = writeln!(
        out,
        "- DNS: {} SRV queries to {} gateways, {} answered with records, {dns_err} unanswered",
        dns_ok + dns_err,
        dns_ports.len(),
        load.dns_hits.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "\n| watcher | changes seen | resync hints | verdict |\n|---|---|---|---|"
    );
    for l in &watcher_lines {
        let _ = writeln!(out, "{l}");
    }
    client_table(
        &mut out,
        &[
            ("direct catalog_query (2 clients)", &load.direct),
            ("FailoverClient", &load.failover),
            ("DNS SRV", &load.dns),
        ],
    );
    rss_table(&mut out, &rss);
    let _ = writeln!(
        out,
        "\nRSS limit {} MiB per node: {}",
        opts.rss_limit_mib,
        if over.is_empty() {
            "held".to_string()
        } else {
            format!("EXCEEDED by {over:?}")
        }
    );
    if !failed_writes.is_empty() {
        let _ = writeln!(
            out,
            "\nfailed writes: {:?}",
            &failed_writes[..failed_writes.len().min(5)]
        );
    }
    let _ = writeln!(out, "\n**{}**", if ok { "PASS" } else { "FAIL" });
    Ok((out, ok))
}
