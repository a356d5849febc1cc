//! Runtime load generator (issue 9): one `mpreg server` per runtime on
//! 127.0.0.1, real WebSocket clients (tungstenite, one blocking connection
//! per client thread), a fixed number of requests per client, and a bound on
//! the total time of every measurement.
//!
//! Measured per runtime, in the same run on the same machine:
//! - idle CPU (utime + stime from `/proc/<pid>/stat`) and RSS
//!   (`/proc/<pid>/status` VmRSS) of a freshly started, idle node over a
//!   window (both nodes idle side by side);
//! - `echo` and `catalog_query` (`{"entry_type":"functions","limit":50}`)
//!   round trips per second and p50 / p99 / max latency with K closed-loop
//!   clients (each sends one request, waits for its reply, repeats);
//! - RSS after the load.
//!
//! Prints markdown tables on stdout. No figure is asserted.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use mpreg_benches::{percentile, procfs};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

#[derive(Parser, Debug)]
#[command(about = "Round trips per second and latency of mpreg nodes, per runtime")]
struct Args {
    /// The `mpreg` binary (default: $MPREG_BIN, else `mpreg` next to this
    /// executable, i.e. target/<profile>/mpreg).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Runtimes to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "tokio,mio")]
    runtimes: Vec<String>,
    /// Concurrent client connections (one thread each).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Requests per client per measurement (after the warm-up).
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Warm-up requests per client (not measured).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Upper bound on one measurement, seconds: clients stop early past it.
    #[arg(long, default_value_t = 20.0)]
    time_limit: f64,
    /// Rounds: each round measures every RPC on every runtime in turn, so a
    /// change in background load hits both runtimes alike. Latencies and
    /// counts are pooled over the rounds.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Idle window, seconds.
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
    /// Trials of each 3-node cluster launch mode per runtime.
    #[arg(long, default_value_t = 3)]
    cluster_trials: usize,
    /// Also write `key=value` figures to this file (for the report script).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Function entries the node declares in its config file, so a
    /// `catalog_query` for functions returns a full 50-item page.
    #[arg(long, default_value_t = 200)]
    functions: usize,
}

/// A running node.
struct Server {
    runtime: String,
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_bin(arg: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = arg.or_else(|| std::env::var_os("MPREG_BIN").map(PathBuf::from)) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{} is not a file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("executable has no parent dir")?;
    let dir = if dir.file_name() == Some(std::ffi::OsStr::new("deps")) {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let bin = dir.join(format!("mpreg{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: run `cargo build --release -p mpreg-cli` or pass --bin",
            bin.display()
        ))
    }
}

fn write_config(dir: &Path, functions: usize) -> PathBuf {
    let mut toml = String::from("cluster_id = \"loadgen\"\n");
    for i in 0..functions {
        toml.push_str(&format!(
            "\n[[functions]]\nname = \"svc.bench.f{i:04}\"\nversion = \"1.0.0\"\ntags = [\"bench\"]\n"
        ));
    }
    let path = dir.join("loadgen.toml");
    std::fs::write(&path, toml).expect("write the node's config file");
    path
}

/// Spawns `mpreg server` with `--runtime runtime` and `extra` flags; the
/// node's URL arrives on the returned channel once it prints `MPREG_URL=`.
fn spawn(
    bin: &Path,
    runtime: &str,
    extra: &[String],
) -> Result<(Child, std::sync::mpsc::Receiver<Option<String>>), String> {
    let mut child = Command::new(bin)
        .args(["server", "--runtime", runtime, "--host", "127.0.0.1"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // Read the ready line on a helper thread so a silent node cannot hang us.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("MPREG_URL=").map(str::to_string));
        let _ = tx.send(url);
        // Keep draining so the node never blocks on a full pipe.
        for _ in lines {}
    });
    Ok((child, rx))
}

fn start(bin: &Path, runtime: &str, extra: &[String]) -> Result<Server, String> {
    let (child, rx) = spawn(bin, runtime, extra)?;
    let server = |url| Server {
        runtime: runtime.to_string(),
        child,
        url,
    };
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(Some(url)) => Ok(server(url)),
        _ => {
            drop(server(String::new()));
            Err(format!(
                "`mpreg server --runtime {runtime}` did not print MPREG_URL within 15 s"
            ))
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// MPREG's "3-node cluster converges from launch" figure: three processes
/// (B and C seeded with A only, default settings), time from A's launch
/// until every node's `catalog_query` for `nodes` lists all three. Includes
/// process start-up. `together`: all three launched at once (B and C may
/// dial A before it listens); otherwise B and C are launched as soon as A
/// printed its URL. Polls every 10 ms, gives up after `limit`.
fn cluster3(bin: &Path, runtime: &str, together: bool, limit: Duration) -> Result<f64, String> {
    let ports = [free_port()?, free_port()?, free_port()?];
    let seed = format!("ws://127.0.0.1:{}", ports[0]);
    let t0 = Instant::now();
    let mut servers = Vec::new();
    let mut waits = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut extra = vec![
            "--port".to_string(),
            port.to_string(),
            "--cluster-id".into(),
            format!("c3-{runtime}"),
            "--name".into(),
            format!("c3-{runtime}-{i}"),
        ];
        if i > 0 {
            extra.extend(["--peer".to_string(), seed.clone()]);
        }
        let (child, rx) = spawn(bin, runtime, &extra)?;
        servers.push(Server {
            runtime: runtime.to_string(),
            child,
            url: format!("ws://127.0.0.1:{port}"),
        });
        if i == 0 && !together {
            match rx.recv_timeout(limit) {
                Ok(Some(_)) => continue,
                _ => return Err(format!("{runtime}: the seed node did not start")),
            }
        }
        waits.push(rx);
    }
    for rx in &waits {
        match rx.recv_timeout(limit) {
            Ok(Some(_)) => {}
            _ => return Err(format!("{runtime}: a cluster node did not start")),
        }
    }
    let mut conns = Vec::new();
    for s in &servers {
        conns.push(connect(&s.url)?);
    }
    let mut done = [false; 3];
    let mut i = 0u64;
    while t0.elapsed() < limit {
        for (k, ws) in conns.iter_mut().enumerate() {
            if done[k] {
                continue;
            }
            i += 1;
            let u = format!("c3-{k}-{i}");
            let frame = request("catalog_query", json!([{"entry_type": "nodes"}]), &u);
            ws.send(Message::text(frame)).map_err(|e| e.to_string())?;
            let n = loop {
                let msg = ws.read().map_err(|e| e.to_string())?;
                let Ok(text) = msg.to_text() else { continue };
                let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                if v.get("u").and_then(Value::as_str) == Some(u.as_str()) {
                    break v["r"]["catalog_query"]["items"]
                        .as_array()
                        .map_or(0, Vec::len);
                }
            };
            done[k] = n >= 3;
        }
        if done.iter().all(|d| *d) {
            return Ok(t0.elapsed().as_secs_f64());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(format!("{runtime}: not converged within {limit:?}"))
}

fn connect(url: &str) -> Result<WebSocket<TcpStream>, String> {
    let addr = url.strip_prefix("ws://").ok_or("not a ws:// URL")?;
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {url}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client(url, stream).map_err(|e| format!("handshake {url}: {e}"))?;
    Ok(ws)
}

/// The request envelope MPREG's Python client sends.
fn request(fun: &str, args: Value, u: &str) -> String {
    json!({
        "role": "rpc",
        "cmds": [{
            "name": fun, "fun": fun, "args": args, "kwargs": {}, "locs": [],
            "function_id": null, "version_constraint": null,
            "target_cluster": null, "routing_topic": null,
        }],
        "u": u,
        "return_intermediate_results": false,
        "intermediate_result_callback_topic": null,
        "include_execution_summary": false,
        "debug_mode": false,
    })
    .to_string()
}

/// One round trip: send, read until the reply with our `u`. Returns the
/// reply's byte length.
fn round_trip(ws: &mut WebSocket<TcpStream>, frame: &str, u: &str) -> Result<usize, String> {
    ws.send(Message::text(frame)).map_err(|e| e.to_string())?;
    let tag = format!("\"u\":\"{u}\"");
    loop {
        let msg = ws.read().map_err(|e| e.to_string())?;
        let data: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            Message::Close(c) => return Err(format!("closed by the node: {c:?}")),
            _ => continue,
        };
        // The node writes keys in sorted order (`error` first, `u` last):
        // look at both ends before scanning, and parse only a reply that
        // does not start with `"error":null`, so the client spends its
        // CPU on round trips, not on re-parsing 36 KB pages.
        let head = &data[..data.len().min(256)];
        let tail = &data[data.len().saturating_sub(256)..];
        let ours = contains(tail, &tag) || contains(head, &tag) || contains(data, &tag);
        if !ours {
            continue;
        }
        if !contains(&data[..data.len().min(64)], "\"error\":null") {
            let v: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
            if v.get("error").is_some_and(|e| !e.is_null()) {
                return Err(format!("error reply: {v}"));
            }
        }
        return Ok(data.len());
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    hay.len() >= n.len() && hay.windows(n.len()).any(|w| w == n)
}

/// An operation under load.
#[derive(Clone, Copy)]
struct Op {
    name: &'static str,
    fun: &'static str,
    args: fn() -> Value,
}

const OPS: [Op; 2] = [
    Op {
        name: "echo",
        fun: "echo",
        args: || json!(["hello"]),
    },
    Op {
        name: "catalog_query",
        fun: "catalog_query",
        args: || json!([{"entry_type": "functions", "limit": 50}]),
    },
];

#[derive(Debug, Default)]
struct LoadResult {
    /// Latencies of completed round trips, µs (sorted by [`LoadResult::finish`]).
    lat: Vec<f64>,
    planned: usize,
    errors: usize,
    secs: f64,
    reply_bytes: usize,
    cpu_secs: f64,
    first_error: Option<String>,
}

impl LoadResult {
    fn absorb(&mut self, other: LoadResult) {
        self.lat.extend(other.lat);
        self.planned += other.planned;
        self.errors += other.errors;
        self.secs += other.secs;
        self.reply_bytes = self.reply_bytes.max(other.reply_bytes);
        self.cpu_secs += other.cpu_secs;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn finish(&mut self) {
        self.lat.sort_by(f64::total_cmp);
    }

    fn done(&self) -> usize {
        self.lat.len()
    }
}

fn load(server: &Server, op: Op, k: usize, args: &Args) -> LoadResult {
    let k = k.max(1);
    let barrier = Arc::new(Barrier::new(k + 1));
    let limit = Duration::from_secs_f64(args.time_limit);
    let mut handles = Vec::new();
    for c in 0..k {
        let url = server.url.clone();
        let barrier = barrier.clone();
        let (requests, warmup) = (args.requests, args.warmup);
        handles.push(thread::spawn(move || {
            let mut lat = Vec::with_capacity(requests);
            let mut errors = 0usize;
            let mut first_error = None;
            let mut reply_bytes = 0;
            let ws = connect(&url);
            let mut ws = match ws {
                Ok(ws) => Some(ws),
                Err(e) => {
                    first_error = Some(e);
                    None
                }
            };
            let frames: Vec<(String, String)> = (0..warmup + requests)
                .map(|i| {
                    let u = format!("lg-{c}-{i}-{}", op.name);
                    (request(op.fun, (op.args)(), &u), u)
                })
                .collect();
            if let Some(ws) = ws.as_mut() {
                for (f, u) in &frames[..warmup] {
                    if let Err(e) = round_trip(ws, f, u) {
                        first_error.get_or_insert(e);
                        errors += 1;
                        break;
                    }
                }
            }
            barrier.wait();
            let start = Instant::now();
            if let Some(ws) = ws.as_mut() {
                for (f, u) in &frames[warmup..] {
                    if start.elapsed() > limit {
                        break;
                    }
                    let t = Instant::now();
                    match round_trip(ws, f, u) {
                        Ok(n) => {
                            lat.push(t.elapsed().as_secs_f64() * 1e6);
                            reply_bytes = n;
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                            if errors > 10 {
                                break;
                            }
                        }
                    }
                }
                let _ = ws.close(None);
                // Finish the closing handshake briefly, never blocking long.
                let _ = ws
                    .get_mut()
                    .set_read_timeout(Some(Duration::from_millis(200)));
                let _ = ws.read();
            }
            (lat, errors, first_error, reply_bytes, start.elapsed())
        }));
    }
    barrier.wait();
    let pid = server.child.id();
    let cpu0 = procfs::cpu_seconds(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut res = LoadResult {
        planned: k * args.requests,
        ..LoadResult::default()
    };
    for h in handles {
        let (lat, errors, err, bytes, _) = h.join().expect("client thread");
        res.lat.extend(lat);
        res.errors += errors;
        if res.first_error.is_none() {
            res.first_error = err;
        }
        res.reply_bytes = res.reply_bytes.max(bytes);
    }
    res.secs = t0.elapsed().as_secs_f64();
    res.cpu_secs = procfs::cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    res
}

#[derive(Debug, Default)]
struct Idle {
    cpu_percent: f64,
    sched_percent: Option<f64>,
    rss_mib: f64,
    threads: u64,
}

fn main() {
    let args = Args::parse();
    let bin = match find_bin(args.bin.clone()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("mpreg-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = write_config(&dir, args.functions);
    let mut summary = String::new();
    // 3-node cluster convergence from launch, per runtime (before the load
    // nodes start, so nothing else runs).
    let mut c3 = Vec::new();
    for rt in &args.runtimes {
        let mut pair = Vec::new();
        for (mode, together) in [("seq", false), ("together", true)] {
            let mut trials = Vec::new();
            for _ in 0..args.cluster_trials.max(1) {
                let r = cluster3(&bin, rt, together, Duration::from_secs(30));
                eprintln!("loadgen: {rt} 3-node cluster ({mode}): {r:?}");
                trials.push(r);
            }
            let mut ok: Vec<f64> = trials
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .copied()
                .collect();
            ok.sort_by(f64::total_cmp);
            if let Some(max) = ok.last() {
                summary.push_str(&format!(
                    "cluster3.{rt}.{mode}.median={:.3}\ncluster3.{rt}.{mode}.max={max:.3}\n",
                    percentile(&ok, 50.0)
                ));
            }
            pair.push(trials);
        }
        c3.push((rt.clone(), pair));
    }
    let mut servers = Vec::new();
    let extra = vec![
        "--port".to_string(),
        "0".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    for rt in &args.runtimes {
        match start(&bin, rt, &extra) {
            Ok(s) => {
                eprintln!("loadgen: {rt} node at {} (pid {})", s.url, s.child.id());
                servers.push(s);
            }
            Err(e) => eprintln!("loadgen: {e}"),
        }
    }
    // Idle: every node side by side, after a short settle.
    thread::sleep(Duration::from_secs(1));
    let cpu0: Vec<(f64, Option<f64>)> = servers
        .iter()
        .map(|s| {
            let pid = s.child.id();
            (
                procfs::cpu_seconds(pid).unwrap_or(0.0),
                procfs::sched_cpu_seconds(pid),
            )
        })
        .collect();
    let t0 = Instant::now();
    eprintln!("loadgen: idle window {} s ...", args.idle_secs);
    thread::sleep(Duration::from_secs_f64(args.idle_secs));
    let window = t0.elapsed().as_secs_f64();
    let idle: Vec<Idle> = servers
        .iter()
        .zip(&cpu0)
        .map(|(s, (c0, sc0))| {
            let pid = s.child.id();
            let sched = procfs::sched_cpu_seconds(pid);
            Idle {
                cpu_percent: (procfs::cpu_seconds(pid).unwrap_or(0.0) - c0) / window * 100.0,
                sched_percent: sched.zip(*sc0).map(|(b, a)| (b - a) / window * 100.0),
                rss_mib: procfs::rss_bytes(pid).unwrap_or(0) as f64 / (1024.0 * 1024.0),
                threads: procfs::threads(pid).unwrap_or(0),
            }
        })
        .collect();
    // Load: one runtime at a time, so they never compete for the cores.
    // Client counts: one (unloaded round-trip latency) and K (throughput).
    let mut levels = vec![1, args.clients.max(1)];
    levels.dedup();
    let mut results: Vec<(String, &'static str, usize, LoadResult)> = Vec::new();
    let mut plan = Vec::new();
    for &k in &levels {
        for op in OPS {
            for s in &servers {
                plan.push((k, op, results.len(), s));
                results.push((s.runtime.clone(), op.name, k, LoadResult::default()));
            }
        }
    }
    for round in 0..args.rounds.max(1) {
        for &(k, op, slot, s) in &plan {
            {
                let mut r = load(s, op, k, &args);
                r.finish();
                eprintln!(
                    "loadgen: round {round}: {} {} x{k}: {} / {} in {:.2} s, p50 {:.0} us, p99 {:.0} us{}",
                    s.runtime,
                    op.name,
                    r.done(),
                    r.planned,
                    r.secs,
                    percentile(&r.lat, 50.0),
                    percentile(&r.lat, 99.0),
                    r.first_error
                        .as_deref()
                        .map(|e| format!(", first error: {e}"))
                        .unwrap_or_default()
                );
                results[slot].3.absorb(r);
            }
        }
    }
    for (rt, op, k, r) in &mut results {
        r.finish();
        summary.push_str(&format!(
            "loadgen.{rt}.{op}.c{k}.rps={:.0}\nloadgen.{rt}.{op}.c{k}.p50_us={:.0}\nloadgen.{rt}.{op}.c{k}.p99_us={:.0}\n",
            r.done() as f64 / r.secs,
            percentile(&r.lat, 50.0),
            percentile(&r.lat, 99.0)
        ));
    }
    let rss_after: Vec<f64> = servers
        .iter()
        .map(|s| procfs::rss_bytes(s.child.id()).unwrap_or(0) as f64 / (1024.0 * 1024.0))
        .collect();

    println!(
        "### Runtime load (127.0.0.1; 1 and {} closed-loop WebSocket clients, {} requests each after {} warm-up, {} interleaved rounds, limit {} s per measurement)\n",
        args.clients, args.requests, args.warmup, args.rounds, args.time_limit
    );
    println!(
        "`catalog_query` asks `{{\"entry_type\":\"functions\",\"limit\":50}}` of a node that declares {} functions (a full 50-item page). Client threads and the node share the machine's cores. CPU is the node's utime+stime over the measurement.\n",
        args.functions
    );
    println!("| clients | RPC | runtime | round trips/s | p50 µs | p99 µs | max µs | reply bytes | node CPU ms per request | completed | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (rt, op, k, r) in &results {
        let rps = r.done() as f64 / r.secs;
        println!(
            "| {k} | {op} | {rt} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.3} | {} / {} | {} |",
            rps,
            percentile(&r.lat, 50.0),
            percentile(&r.lat, 99.0),
            r.lat.last().copied().unwrap_or(f64::NAN),
            r.reply_bytes,
            r.cpu_secs / (r.done().max(1) as f64) * 1000.0,
            r.done(),
            r.planned,
            r.errors
        );
    }
    println!();
    println!(
        "### Idle node ({} s window, both nodes idle side by side, no peers, {} declared functions)\n",
        args.idle_secs, args.functions
    );
    println!(
        "Idle CPU from `/proc/<pid>/stat` utime+stime counts 10 ms ticks (resolution {:.2} % over this window); the schedstat column sums `/proc/<pid>/task/*/schedstat` on-CPU nanoseconds.\n",
        1.0 / procfs::CLK_TCK / args.idle_secs * 100.0
    );
    println!("| runtime | idle CPU % (stat) | idle CPU % (schedstat) | RSS idle MiB | RSS after load MiB | threads |");
    println!("|---|---|---|---|---|---|");
    for ((s, i), after) in servers.iter().zip(&idle).zip(&rss_after) {
        println!(
            "| {} | {:.2} | {} | {:.1} | {:.1} | {} |",
            s.runtime,
            i.cpu_percent,
            i.sched_percent
                .map(|p| format!("{p:.4}"))
                .unwrap_or_else(|| "—".into()),
            i.rss_mib,
            after,
            i.threads
        );
    }
    println!();
    println!("### 3-node cluster convergence from launch (real processes, default settings)\n");
    println!("Three `mpreg server` processes on 127.0.0.1, default settings, B and C seeded with A only; seconds from A's launch until every node's `catalog_query` for `nodes` lists all three (polled every 10 ms; process start-up included). *Sequential*: B and C are launched as soon as A printed its URL. *Together*: all three are launched at once, so B's and C's first dial to A can fail and the time includes their retry.\n");
    println!(
        "| runtime | sequential: s per trial ({} trials) | together: s per trial |",
        args.cluster_trials
    );
    println!("|---|---|---|");
    for (rt, pair) in &c3 {
        let cell = |trials: &Vec<Result<f64, String>>| {
            trials
                .iter()
                .map(|r| match r {
                    Ok(t) => format!("{t:.3}"),
                    Err(e) => format!("failed: {e}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("| {rt} | {} | {} |", cell(&pair[0]), cell(&pair[1]));
    }
    println!();
    for (s, i) in servers.iter().zip(&idle) {
        summary.push_str(&format!(
            "idle.{}.cpu_pct={:.3}\nidle.{}.rss_mib={:.1}\n",
            s.runtime,
            i.sched_percent.unwrap_or(i.cpu_percent),
            s.runtime,
            i.rss_mib
        ));
    }
    if let Some(path) = &args.summary {
        if let Err(e) = std::fs::write(path, &summary) {
            eprintln!("loadgen: cannot write {}: {e}", path.display());
        }
    }
    for (rt, op, k, r) in &results {
        if let Some(e) = &r.first_error {
            println!("- {rt} {op} x{k}: first error: {e}");
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
