//! Benchmarks and the scaling harness for mpreg-rs. The criterion benches
//! live in `benches/`, the harnesses in `src/bin/` (`scaling`, `loadgen`,
//! `catalog_mem`); shared fixtures and reference models live here.

/// The exact `catalog_query` frame MPREG's Python client sends
/// (`reference/client_protocol.md` §1.3), used by the codec benches.
pub const CATALOG_QUERY_FRAME: &str = r#"{"role":"rpc","cmds":[{"name":"catalog_query","fun":"catalog_query","args":[{"entry_type":"nodes"}],"kwargs":{},"locs":[],"function_id":null,"version_constraint":null,"target_cluster":null,"routing_topic":null}],"u":"01JD3K7Q6Z8T1V2W3X4Y5Z6A7B","return_intermediate_results":false,"intermediate_result_callback_topic":null,"include_execution_summary":false,"debug_mode":false}"#;

pub mod alloc;
pub mod fixtures;

/// Serf's convergence model (hashicorp/serf
/// `website/source/assets/javascripts/_simulator.js`, the formula behind
/// `anchors.md` §3.1).
///
/// The model is logistic: after `x` gossip rounds the infected fraction is
/// `1 / (1 + (n+1)·e^(−contact·n·x))` with
/// `contact = fanout/n · (1−loss) · (1−fail) · ½`. The simulator steps whole
/// rounds and stops at the first round whose fraction reaches
/// `max_converge` (0.9999 on Serf's page).
pub mod serf {
    /// Serf's defaults: 200 ms gossip interval, fanout 3, target 99.99 %.
    pub const DEFAULT_INTERVAL: f64 = 0.2;
    /// Serf's default gossip fanout.
    pub const DEFAULT_FANOUT: f64 = 3.0;
    /// The convergence target of Serf's simulator page.
    pub const MAX_CONVERGE: f64 = 0.9999;
    /// Serf's UDP packet budget (bytes), used for its bandwidth bound.
    pub const PACKET_BYTES: f64 = 1400.0;

    /// Fraction of `n` nodes that have an event after `round` rounds.
    pub fn convergence_at_round(n: f64, fanout: f64, loss: f64, round: f64) -> f64 {
        let contact = (fanout / n) * (1.0 - loss) * 0.5;
        let infected = n / (1.0 + (n + 1.0) * (-contact * n * round).exp());
        infected / n
    }

    /// Seconds until the model reaches [`MAX_CONVERGE`] for `n` nodes, as
    /// Serf's page computes it (whole rounds of `interval`, at most 100).
    pub fn seconds_to_converge(n: usize, interval: f64, fanout: f64, loss: f64) -> f64 {
        let n = n as f64;
        let mut round = 0u32;
        while round < 100 {
            if convergence_at_round(n, fanout, loss, f64::from(round)) >= MAX_CONVERGE {
                break;
            }
            round += 1;
        }
        f64::from(round) * interval
    }

    /// The model's bandwidth bound in bytes per second per node: a full
    /// packet to `fanout` nodes every round, both directions.
    pub fn max_bytes_per_sec(interval: f64, fanout: f64) -> f64 {
        PACKET_BYTES * fanout * (1.0 / interval) * 2.0
    }
}

/// Small helpers for reading a process's resource use from `/proc`
/// (Linux only; they return `None` elsewhere).
pub mod procfs {
    use std::fs;

    /// Clock ticks per second for `/proc/<pid>/stat` times. Linux has used
    /// 100 on every mainstream architecture for decades (`USER_HZ`).
    pub const CLK_TCK: f64 = 100.0;

    /// `utime + stime` of `pid`, in seconds.
    pub fn cpu_seconds(pid: u32) -> Option<f64> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may contain spaces: split
        // after the last ')'. Fields from there: state(3) ... utime(14) stime(15).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / CLK_TCK)
    }

    /// On-CPU time of every thread of `pid` from `/proc/<pid>/task/*/schedstat`
    /// (nanosecond resolution, where `stat` counts 10 ms ticks), seconds.
    /// Threads that exited meanwhile are not counted.
    pub fn sched_cpu_seconds(pid: u32) -> Option<f64> {
        let mut ns: u64 = 0;
        for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let path = task.ok()?.path().join("schedstat");
            let Ok(text) = fs::read_to_string(path) else {
                continue;
            };
            ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(ns as f64 / 1e9)
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`...), in bytes.
    pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        })
    }

    /// Resident set size of `pid`, bytes.
    pub fn rss_bytes(pid: u32) -> Option<u64> {
        status_kb(pid, "VmRSS")
    }

    /// Peak resident set size of `pid`, bytes.
    pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
        status_kb(pid, "VmHWM")
    }

    /// Number of threads of `pid`.
    pub fn threads(pid: u32) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| {
            l.strip_prefix("Threads:")
                .and_then(|r| r.trim().parse().ok())
        })
    }
}

/// Percentile of an ascending-sorted slice (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model reproduces the table of `anchors.md` §3.1.
    #[test]
    fn serf_model_matches_the_anchor_table() {
        let t = |n, loss| serf::seconds_to_converge(n, 0.2, 3.0, loss);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(t(30, 0.0), 1.8));
        assert!(close(t(1_000, 0.0), 2.2));
        assert!(close(t(10_000, 0.0), 2.6));
        assert!(close(t(100_000, 0.0), 2.8));
        assert!(close(t(30, 0.1), 2.0));
        assert!(close(t(1_000, 0.1), 2.4));
        assert!(close(t(10_000, 0.1), 2.8));
        assert!(close(t(100_000, 0.1), 3.2));
        // 1400 B × 3 × 5/s × 2 = 42 000 B/s ≈ 330 kbit/s (kbit = 1024 bit).
        assert!(close(serf::max_bytes_per_sec(0.2, 3.0), 42_000.0));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
