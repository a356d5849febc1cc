//! Black-box test harness for mpreg-rs: runs real `mpreg server` processes on
//! 127.0.0.1 and talks to them over WebSocket with MPREG's client protocol.
//!
//! Everything here is bounded: process start-up, replies, polling loops and
//! shutdown all give up after a timeout, so a hung node fails a test instead
//! of hanging the suite. No traffic leaves 127.0.0.1.
//!
//! * [`mpreg_bin`] finds (and if needed builds) the `mpreg` binary.
//! * [`Node`] is one running `mpreg server`; dropping it kills the process,
//!   and a panicking test prints the node's stderr log.
//! * [`Conn`] is a synchronous WebSocket client connection.
//! * [`wait_until`] / [`wait_for`] are bounded polling helpers.
//! * [`shape_diff`] compares the JSON *structure* of two values (golden
//!   replays).

pub mod chaos;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// How long a node may take to print its `MPREG_URL=` line.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a node may take to exit after SIGTERM before it is killed.
pub const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on connecting and on waiting for one reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The only host tests talk to.
const LOOPBACK: &str = "127.0.0.1";

// ---------------------------------------------------------------------------
// Locating / building the binary
// ---------------------------------------------------------------------------

/// The runtime every node of this test run uses, from `MPREG_TEST_RUNTIME`
/// (`tokio` when unset).
pub fn test_runtime() -> Option<String> {
    std::env::var("MPREG_TEST_RUNTIME")
        .ok()
        .filter(|r| !r.trim().is_empty())
}

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of the `mpreg` binary to test.
///
/// * `MPREG_BIN` set: that file, used as is.
/// * otherwise `<target dir>/<profile>/mpreg`, derived from the test
///   executable's own path (`target/<profile>/deps/<test>-<hash>`). The
///   binary is (re)built once per process with
///   `$CARGO build -p mpreg-cli --bin mpreg` from the workspace root, so the
///   tests never run against a stale binary left over from an older build
///   (when it is up to date this is a no-op taking well under a second).
///   Set `MPREG_TESTS_NO_BUILD=1` to only build when the file is missing.
///
/// Panics with a clear message when the binary cannot be found or built.
pub fn mpreg_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(locate_or_build) {
        Ok(path) => path.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("MPREG_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("MPREG_BIN={} does not name a file", bin.display()))
        };
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("test executable {} has no parent dir", exe.display()))?;
    let profile_dir = if dir.file_name() == Some(OsStr::new("deps")) {
        dir.parent()
            .ok_or_else(|| format!("{} has no parent dir", dir.display()))?
    } else {
        dir
    };
    let bin = profile_dir.join(format!("mpreg{}", std::env::consts::EXE_SUFFIX));
    let profile = profile_dir
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or("debug")
        .to_string();
    let skip_build =
        std::env::var_os("MPREG_TESTS_NO_BUILD").is_some_and(|v| !v.is_empty() && v != "0");
    if skip_build && bin.is_file() {
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "mpreg-cli", "--bin", "mpreg"])
        .stdin(Stdio::null());
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    eprintln!("mpreg-tests: building the mpreg binary ({profile} profile) ...");
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run `{} build -p mpreg-cli --bin mpreg`: {e}; build it yourself or set MPREG_BIN",
            PathBuf::from(&cargo).display()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "`cargo build -p mpreg-cli --bin mpreg` failed ({}); the node binary is needed for these tests.\n\
             (set MPREG_BIN=<path> to test a prebuilt binary)\n--- cargo stderr (tail) ---\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 60)
        ));
    }
    if !bin.is_file() {
        return Err(format!(
            "`cargo build -p mpreg-cli --bin mpreg` succeeded but {} does not exist \
             (unusual target dir layout?); set MPREG_BIN=<path to mpreg>",
            bin.display()
        ));
    }
    Ok(bin)
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A process-unique id, usable as a request `u`.
pub fn unique_id(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A fresh empty directory under the system temp dir.
pub fn unique_temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_id(&format!("mpreg-tests-{label}")));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// A JSON value shortened for messages.
pub fn preview(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 300 {
        s
    } else {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    }
}

/// The node's `/metrics` text, fetched with a plain HTTP GET on its client
/// port (not a WebSocket connection, so it counts toward no connection
/// limit). Empty when the node cannot be reached.
pub fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(DEFAULT_TIMEOUT));
    let _ = s.set_write_timeout(Some(DEFAULT_TIMEOUT));
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// The value of one series (`name{labels}` exactly as exposed) in a
/// `/metrics` text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `cond` every `poll` until it returns true or `timeout` passes.
/// Returns whether it became true. Bounded in time and in iterations.
pub fn wait_until(timeout: Duration, poll: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, poll, || cond().then_some(())).is_some()
}

/// Polls `f` every `poll` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let poll = poll.max(Duration::from_millis(1));
    let deadline = Instant::now() + timeout;
    let max_rounds = (timeout.as_millis() / poll.as_millis()).saturating_add(2);
    for _ in 0..max_rounds {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(poll.min(deadline - now));
    }
    None
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

/// One running `mpreg server --host 127.0.0.1 --port 0 ...` process.
pub struct Node {
    child: Child,
    url: String,
    /// Lines printed on stdout before `MPREG_URL=` (e.g. `MPREG_DNS_PORT=`).
    ready_lines: Vec<String>,
    label: String,
    dir: PathBuf,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl Node {
    /// Starts a node with `extra` arguments after
    /// `server --host 127.0.0.1 --port 0`, and waits (at most
    /// [`NODE_START_TIMEOUT`]) for its `MPREG_URL=` line.
    pub fn start<I, S>(extra: I) -> Node
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Node::spawn(None, extra)
    }

    /// Like [`Node::start`], with a settings file holding `config_toml`
    /// (passed as `--config <file>`).
    pub fn start_with_config<I, S>(config_toml: &str, extra: I) -> Node
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Node::spawn(Some(config_toml), extra)
    }

    fn spawn<I, S>(config_toml: Option<&str>, extra: I) -> Node
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let bin = mpreg_bin();
        let dir = unique_temp_dir("node");
        let log_path = dir.join("stderr.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let mut cmd = Command::new(&bin);
        cmd.arg("server").args(["--host", LOOPBACK, "--port", "0"]);
        if let Some(toml) = config_toml {
            let path = dir.join("node.toml");
            std::fs::write(&path, toml)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            cmd.arg("--config").arg(&path);
        }
        let extra: Vec<std::ffi::OsString> = extra
            .into_iter()
            .map(|s| s.as_ref().to_os_string())
            .collect();
        cmd.args(&extra);
        // The black-box suite runs once per runtime: `MPREG_TEST_RUNTIME=mio`
        // starts every node on the mio runtime (an explicit `--runtime` in
        // `extra` still wins, for mixed clusters).
        let explicit = extra.iter().any(|a| a == "--runtime");
        if let (false, Some(runtime)) = (explicit, test_runtime()) {
            cmd.args(["--runtime", runtime.as_str()]);
        }
        // The node reads MPREG_* variables as settings: keep the test
        // environment (MPREG_BIN, MPREG_SHARED_DIR, ...) out of it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MPREG_") {
                cmd.env_remove(&key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let label = format!(
            "mpreg server {}",
            extra
                .iter()
                .map(|s| s.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        // From here on, Drop kills the process if start-up fails.
        let mut node = Node {
            child,
            url: String::new(),
            ready_lines: Vec::new(),
            label,
            dir,
            log_path,
            exit: None,
        };

        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keep draining stdout for the whole life of the process so it
            // never blocks on a full pipe.
            let reader = BufReader::new(stdout);
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + NODE_START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "node `{}` printed no MPREG_URL= line within {:?}; stdout so far: {seen:?}; its stderr log follows",
                    node.label,
                    NODE_START_TIMEOUT
                );
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(100))) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("MPREG_URL=") {
                        node.url = url.to_string();
                        node.ready_lines = seen;
                        break;
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is gone (or closed it).
                    let status = wait_bounded(&mut node.child, Duration::from_secs(2));
                    panic!(
                        "node `{}` closed stdout before printing MPREG_URL= (exit: {status:?}); stdout: {seen:?}; its stderr log follows",
                        node.label
                    );
                }
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                node.exit = Some(status);
                panic!(
                    "node `{}` exited ({status}) before printing MPREG_URL=; stdout: {seen:?}; its stderr log follows",
                    node.label
                );
            }
        }
        let host_ok = node
            .url
            .strip_prefix("ws://")
            .and_then(|rest| rest.rsplit_once(':'))
            .is_some_and(|(host, port)| {
                host == LOOPBACK && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
        assert!(
            host_ok,
            "node printed an unexpected URL {:?} (want ws://127.0.0.1:<port>)",
            node.url
        );
        node
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port the node listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// The value of a `KEY=value` line the node printed before
    /// `MPREG_URL=` (e.g. `MPREG_DNS_PORT`).
    pub fn ready_value(&self, key: &str) -> Option<&str> {
        self.ready_lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
    }

    /// The DNS gateway's port (UDP and TCP), from `MPREG_DNS_PORT=`.
    pub fn dns_port(&self) -> Option<u16> {
        self.ready_value("MPREG_DNS_PORT")?.parse().ok()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's stderr so far (its logs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log_path.display()))
    }

    /// Path of the stderr log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Opens a client connection to this node.
    pub fn connect(&self) -> Conn {
        Conn::connect(&self.url)
    }

    /// Sends SIGTERM and waits up to [`NODE_STOP_TIMEOUT`] for the process to
    /// exit; kills it after that. Returns the exit status, or `None` if the
    /// process had to be killed (it ignored SIGTERM).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.stop_within(NODE_STOP_TIMEOUT)
    }

    /// [`Node::stop`] with an explicit bound.
    pub fn stop_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit {
            return Some(status);
        }
        if !self.is_running() {
            return self.exit;
        }
        send_sigterm(self.child.id());
        match wait_bounded(&mut self.child, timeout) {
            Some(status) => {
                self.exit = Some(status);
                Some(status)
            }
            None => {
                let _ = self.child.kill();
                self.exit = wait_bounded(&mut self.child, Duration::from_secs(5));
                None
            }
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            self.exit = wait_bounded(&mut self.child, Duration::from_secs(5));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- stderr of node {} (`{}`), full log kept at {} ---\n{}\n--- end of node log ---",
                if self.url.is_empty() { "<not started>" } else { &self.url },
                self.label,
                self.log_path.display(),
                tail(&self.log(), 150)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn send_sigterm(pid: u32) {
    let pid = pid.to_string();
    let direct = Command::new("kill")
        .args(["-TERM", &pid])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if direct.is_err() {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    wait_for(timeout, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    })
}

/// Starts `n` nodes of one cluster: node 0 first, then every other node with
/// `--peer <node 0>`. `extra(i)` adds per-node arguments. Does not wait for
/// the mesh to form (see [`wait_for_mesh`]).
pub fn start_cluster(
    cluster_id: &str,
    n: usize,
    extra: impl Fn(usize) -> Vec<String>,
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let mut args = vec![
            "--cluster-id".to_string(),
            cluster_id.to_string(),
            "--name".to_string(),
            format!("{cluster_id}-n{i}"),
        ];
        if let Some(first) = nodes.first() {
            args.push("--peer".to_string());
            args.push(first.url().to_string());
        }
        args.extend(extra(i));
        nodes.push(Node::start(&args));
    }
    nodes
}

/// Peer URLs a node reports through `list_peers`, in the order returned.
pub fn peer_urls(conn: &mut Conn) -> Vec<String> {
    let peers = conn.call_ok("list_peers", Value::Null);
    peers
        .as_array()
        .unwrap_or_else(|| panic!("list_peers returned a non-array: {}", preview(&peers)))
        .iter()
        .map(|p| {
            p.get("url")
                .and_then(Value::as_str)
                .unwrap_or("<no url>")
                .to_string()
        })
        .collect()
}

/// Waits until every node's `list_peers` is exactly the set of the other
/// nodes' URLs. On timeout, returns what each node last reported.
pub fn wait_for_mesh(nodes: &[Node], timeout: Duration) -> Result<(), String> {
    let mut conns: Vec<Conn> = nodes.iter().map(Node::connect).collect();
    let mut last: Vec<Vec<String>> = vec![Vec::new(); nodes.len()];
    let ok = wait_until(timeout, Duration::from_millis(100), || {
        let mut all = true;
        for (i, conn) in conns.iter_mut().enumerate() {
            let mut got = peer_urls(conn);
            got.sort();
            let mut want: Vec<String> = nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| n.url().to_string())
                .collect();
            want.sort();
            all &= got == want;
            last[i] = got;
        }
        all
    });
    if ok {
        Ok(())
    } else {
        let report: Vec<String> = nodes
            .iter()
            .zip(&last)
            .map(|(n, seen)| format!("  {} sees {seen:?}", n.url()))
            .collect();
        Err(format!(
            "cluster did not form a full mesh within {timeout:?}:\n{}",
            report.join("\n")
        ))
    }
}

// ---------------------------------------------------------------------------
// Client connections
// ---------------------------------------------------------------------------

/// Something read from a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A data frame holding JSON.
    Json {
        /// The parsed message.
        value: Value,
        /// `true` for a binary frame, `false` for text.
        binary: bool,
    },
    /// A data frame that is not JSON.
    NotJson(String),
    /// A pong with its payload.
    Pong(Vec<u8>),
    /// The connection was closed (close frame, EOF or reset), with a reason.
    Closed(String),
    /// Nothing arrived within the timeout.
    TimedOut,
}

/// A synchronous WebSocket client connection to a node on 127.0.0.1.
pub struct Conn {
    ws: WebSocket<TcpStream>,
    url: String,
    timeout: Duration,
}

impl Conn {
    /// Connects to `ws://127.0.0.1:<port>`; panics on failure.
    pub fn connect(url: &str) -> Conn {
        Conn::try_connect(url, DEFAULT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects with `timeout` bounding the TCP connect, the handshake and
    /// (by default) each reply.
    pub fn try_connect(url: &str, timeout: Duration) -> Result<Conn, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("not a ws:// URL: {url}"))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("no port in {url}"))?;
        if host != LOOPBACK {
            return Err(format!("tests only talk to {LOOPBACK}, not {host} ({url})"));
        }
        let port: u16 = port.parse().map_err(|_| format!("bad port in {url}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {url}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (ws, _resp) = tungstenite::client(url, stream)
            .map_err(|e| format!("WebSocket handshake with {url}: {e}"))?;
        Ok(Conn {
            ws,
            url: url.to_string(),
            timeout,
        })
    }

    /// The URL this connection was opened to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sets the default bound on waiting for a reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `text` as a binary frame (as MPREG's Python client does).
    pub fn send_raw(&mut self, text: &str) {
        self.send(Message::binary(text.as_bytes().to_vec()));
    }

    /// Sends `text` as a text frame.
    pub fn send_text(&mut self, text: &str) {
        self.send(Message::text(text.to_string()));
    }

    /// Sends `value` as compact JSON in a binary frame.
    pub fn send_json(&mut self, value: &Value) {
        self.send_raw(&value.to_string());
    }

    /// Sends a WebSocket ping.
    pub fn send_ping(&mut self, payload: &[u8]) {
        self.send(Message::Ping(payload.to_vec().into()));
    }

    /// Sends any message; panics if the connection is broken.
    pub fn send(&mut self, msg: Message) {
        if let Err(e) = self.try_send(msg) {
            panic!("send to {} failed: {e}", self.url);
        }
    }

    /// Sends any message, reporting failure.
    pub fn try_send(&mut self, msg: Message) -> Result<(), String> {
        self.ws.send(msg).map_err(|e| e.to_string())
    }

    /// Reads the next event, waiting at most `timeout`. Pings are answered
    /// (by tungstenite) and skipped.
    pub fn recv_event(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        // Bounded: each round either returns or consumes a control frame.
        for _ in 0..100_000 {
            let now = Instant::now();
            if now >= deadline {
                return Event::TimedOut;
            }
            let remaining = (deadline - now).max(Duration::from_millis(1));
            if let Err(e) = self.ws.get_mut().set_read_timeout(Some(remaining)) {
                return Event::Closed(format!("socket error: {e}"));
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return match serde_json::from_str(t.as_str()) {
                        Ok(value) => Event::Json {
                            value,
                            binary: false,
                        },
                        Err(_) => Event::NotJson(t.to_string()),
                    }
                }
                Ok(Message::Binary(b)) => {
                    return match serde_json::from_slice(&b) {
                        Ok(value) => Event::Json {
                            value,
                            binary: true,
                        },
                        Err(_) => Event::NotJson(String::from_utf8_lossy(&b).into_owned()),
                    }
                }
                Ok(Message::Pong(p)) => return Event::Pong(p.to_vec()),
                Ok(Message::Close(frame)) => {
                    return Event::Closed(match frame {
                        Some(f) => {
                            format!("close frame {} {:?}", u16::from(f.code), f.reason.as_str())
                        }
                        None => "close frame without code".to_string(),
                    })
                }
                Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Event::TimedOut
                }
                Err(e) => return Event::Closed(e.to_string()),
            }
        }
        Event::TimedOut
    }

    /// The next JSON message within the connection's timeout; `None` on
    /// timeout or close. Panics on a non-JSON data frame.
    pub fn recv(&mut self) -> Option<Value> {
        let deadline = Instant::now() + self.timeout;
        for _ in 0..100_000 {
            match self.recv_event(deadline.saturating_duration_since(Instant::now())) {
                Event::Json { value, .. } => return Some(value),
                Event::NotJson(text) => panic!("{} sent a non-JSON frame: {text:?}", self.url),
                Event::Pong(_) => continue,
                Event::Closed(_) | Event::TimedOut => return None,
            }
        }
        None
    }

    /// Waits up to `timeout` for the peer to close the connection. `Err`
    /// describes what happened instead (a reply, or nothing at all).
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        for _ in 0..100_000 {
            match self.recv_event(deadline.saturating_duration_since(Instant::now())) {
                Event::Closed(why) => return Ok(why),
                Event::Pong(_) => continue,
                Event::Json { value, .. } => {
                    return Err(format!(
                        "got a reply instead of a close: {}",
                        preview(&value)
                    ))
                }
                Event::NotJson(t) => {
                    return Err(format!("got a non-JSON frame instead of a close: {t:?}"))
                }
                Event::TimedOut => return Err(format!("connection still open after {timeout:?}")),
            }
        }
        Err("connection still open".into())
    }

    /// Sends `frame` (binary) and returns the first message whose `u` is `u`,
    /// skipping others (e.g. pub/sub notifications). Panics on timeout.
    pub fn request(&mut self, u: &str, frame: &Value) -> Value {
        self.send_json(frame);
        self.wait_reply(u)
    }

    /// Returns the first message whose `u` equals `u` (or whose
    /// `operation_id` does, for pub/sub acks). Panics on timeout or close.
    pub fn wait_reply(&mut self, u: &str) -> Value {
        let deadline = Instant::now() + self.timeout;
        let mut skipped = Vec::new();
        for _ in 0..10_000 {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.recv_event(remaining) {
                Event::Json { value, .. } => {
                    if value.get("u").and_then(Value::as_str) == Some(u)
                        || value.get("operation_id").and_then(Value::as_str) == Some(u)
                    {
                        return value;
                    }
                    skipped.push(preview(&value));
                }
                Event::NotJson(t) => panic!(
                    "{} sent a non-JSON frame while waiting for u={u}: {t:?}",
                    self.url
                ),
                Event::Pong(_) => {}
                Event::Closed(why) => {
                    panic!("{} closed the connection while waiting for the reply to u={u}: {why}; other messages: {skipped:?}", self.url)
                }
                Event::TimedOut => panic!(
                    "no reply to u={u} from {} within {:?}; other messages: {skipped:?}",
                    self.url, self.timeout
                ),
            }
        }
        panic!("no reply to u={u} from {}", self.url)
    }

    /// Calls `fun` the way MPREG's Python client does (one command, fresh
    /// `u`) and returns the whole reply envelope.
    pub fn call(&mut self, fun: &str, args: Value, kwargs: Value) -> Value {
        let u = unique_id("u");
        let frame = rpc_frame(&u, fun, args, kwargs);
        self.request(&u, &frame)
    }

    /// Calls `fun` with `payload` as its only argument (`Value::Null` = no
    /// argument) and returns `r[fun]`; panics with the envelope on error.
    pub fn call_ok(&mut self, fun: &str, payload: Value) -> Value {
        let args = if payload.is_null() {
            json!([])
        } else {
            json!([payload])
        };
        let reply = self.call(fun, args, json!({}));
        if !reply.get("error").is_some_and(Value::is_null) {
            panic!("{fun} on {} failed: {}", self.url, reply);
        }
        match reply.get("r").and_then(|r| r.get(fun)) {
            Some(v) => v.clone(),
            None => panic!("{fun} on {}: reply has no r.{fun}: {reply}", self.url),
        }
    }

    /// Closes the connection politely (bounded by the socket timeouts).
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// The exact envelope MPREG's Python client sends for one command.
pub fn rpc_frame(u: &str, fun: &str, args: Value, kwargs: Value) -> Value {
    json!({
        "role": "rpc",
        "cmds": [{
            "name": fun,
            "fun": fun,
            "args": args,
            "kwargs": kwargs,
            "locs": [],
            "function_id": null,
            "version_constraint": null,
            "target_cluster": null,
            "routing_topic": null,
        }],
        "u": u,
        "return_intermediate_results": false,
        "intermediate_result_callback_topic": null,
        "include_execution_summary": false,
        "debug_mode": false,
    })
}

/// Checks that `reply` is an error envelope for request `u` with `code`.
/// Returns a description of what is wrong, if anything.
pub fn check_error_envelope(reply: &Value, u: &str, code: i64) -> Result<(), String> {
    let mut problems = Vec::new();
    if reply.get("u").and_then(Value::as_str) != Some(u) {
        problems.push(format!("u is {:?}, want {u:?}", reply.get("u")));
    }
    match reply.get("r") {
        None | Some(Value::Null) => {}
        Some(other) => problems.push(format!("r should be null on error, got {}", preview(other))),
    }
    match reply.get("error") {
        Some(Value::Object(err)) => {
            if err.get("code").and_then(Value::as_i64) != Some(code) {
                problems.push(format!("error.code is {:?}, want {code}", err.get("code")));
            }
            if !err.get("message").is_some_and(Value::is_string) {
                problems.push(format!(
                    "error.message is not a string: {:?}",
                    err.get("message")
                ));
            }
            if !err.contains_key("details") {
                problems.push("error.details is missing".to_string());
            }
        }
        other => problems.push(format!("error should be an object, got {other:?}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}; reply: {}",
            problems.join("; "),
            preview(reply)
        ))
    }
}

// ---------------------------------------------------------------------------
// Structural comparison
// ---------------------------------------------------------------------------

/// JSON type name used by [`shape_diff`] (int and float are both "number").
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences in *structure* between a captured reference value and ours.
///
/// * a captured `null` matches anything;
/// * objects: every captured key must exist in ours (ours may have more),
///   compared recursively;
/// * arrays: when both are non-empty, our first element is compared with the
///   captured first element;
/// * anything else: same JSON type (ints and floats are both numbers).
///
/// Returns one line per difference, each starting with a `$.path`.
pub fn shape_diff(captured: &Value, ours: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at("$", captured, ours, &mut out);
    out
}

fn diff_at(path: &str, captured: &Value, ours: &Value, out: &mut Vec<String>) {
    match (captured, ours) {
        (Value::Null, _) => {}
        (Value::Object(c), Value::Object(o)) => {
            for (key, cv) in c {
                let sub = format!("{path}.{key}");
                match o.get(key) {
                    Some(ov) => diff_at(&sub, cv, ov, out),
                    None => out.push(format!(
                        "{sub}: missing in ours (captured {}: {})",
                        json_kind(cv),
                        preview(cv)
                    )),
                }
            }
        }
        (Value::Array(c), Value::Array(o)) => {
            if let (Some(c0), Some(o0)) = (c.first(), o.first()) {
                diff_at(&format!("{path}[0]"), c0, o0, out);
            }
        }
        _ if json_kind(captured) == json_kind(ours) => {}
        _ => out.push(format!(
            "{path}: captured {} ({}), ours {} ({})",
            json_kind(captured),
            preview(captured),
            json_kind(ours),
            preview(ours)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_diff_rules() {
        let cap = json!({"a": 1, "b": [{"x": "s"}], "c": null, "d": [], "e": {"f": 1.5}});
        let ours = json!({"a": 2.5, "b": [{"x": "t", "y": 1}, 3], "c": [1], "d": [1], "e": {"f": 2}, "z": true});
        assert!(
            shape_diff(&cap, &ours).is_empty(),
            "{:?}",
            shape_diff(&cap, &ours)
        );
        let bad = json!({"a": "1", "b": [{"y": 1}], "e": {}});
        let diff = shape_diff(&cap, &bad);
        assert_eq!(diff.len(), 5, "{diff:?}");
        assert!(diff.iter().any(|d| d.starts_with("$.a:")));
        assert!(diff.iter().any(|d| d.starts_with("$.b[0].x:")));
        assert!(diff.iter().any(|d| d.starts_with("$.e.f:")));
        assert!(diff.iter().any(|d| d.starts_with("$.c:")));
        assert!(diff.iter().any(|d| d.starts_with("$.d:")));
        // Empty arrays on either side are not compared element-wise.
        assert!(shape_diff(&json!([1]), &json!([])).is_empty());
        assert!(shape_diff(&json!([]), &json!(["x"])).is_empty());
    }

    #[test]
    fn wait_helpers_are_bounded() {
        let start = Instant::now();
        assert!(!wait_until(
            Duration::from_millis(50),
            Duration::from_millis(10),
            || false
        ));
        assert!(start.elapsed() < Duration::from_secs(2));
        let mut n = 0;
        assert_eq!(
            wait_for(Duration::from_secs(1), Duration::from_millis(1), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
    }

    #[test]
    fn unique_ids_differ() {
        assert_ne!(unique_id("u"), unique_id("u"));
    }

    #[test]
    fn connections_are_loopback_only() {
        let err = Conn::try_connect("ws://10.1.2.3:80", Duration::from_millis(10))
            .err()
            .unwrap_or_default();
        assert!(err.contains("only talk to 127.0.0.1"), "{err}");
    }
}
