//! MPREG's adaptive peer-dial scheduler (`_manage_peer_connections`), as pure
//! functions: the reconcile-loop formulas of spec §3.2–3.3, the per-peer
//! backoff state, the §3.4 priority order and one tick of the §3.1 loop.
//!
//! Why this exists: a fixed dial target stalls discovery. A node that reached
//! `sqrt(T)+4` links stopped dialling before the function catalogs of the
//! other peers had reached it (spec §3.5, the 30-node multi-hub stall). The
//! policy here scales the mesh target with the *discovery ratio* and keeps
//! exploring while discovery lags. It also spreads each dialler's choices with
//! a per-dialler hash, so different nodes explore different peers.
//!
//! Everything here is sans-IO and deterministic. No clocks are read (every
//! entry point takes `now`), and nothing random is drawn (both spreads are
//! hashes of URLs). No input panics: NaN, negative or infinite ratios and
//! intervals are clamped, and durations saturate.
//!
//! Units: `gi` is the gossip interval in seconds, as in the spec. Intervals and
//! backoffs are returned as [`Duration`] (converted with [`crate::time::secs`],
//! which never panics).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2sVar;

use crate::time::{secs, Instant};

/// From this many targets on, the "connected" view counts inbound links too
/// (`view = outbound ∪ inbound if T >= 20 else outbound`). The caller builds
/// [`Candidate::connected`] from that view; see [`uses_inbound_view`].
pub const INBOUND_VIEW_MIN_TARGETS: usize = 20;

/// Largest gossip interval the formulas accept, in seconds. Bigger (or
/// infinite) values are clamped here so that products such as `4 gi` stay
/// finite.
const MAX_GOSSIP_INTERVAL: f64 = 1.0e6;

/// Whether a tick with `t` targets counts inbound connections as connected
/// (spec §3.1). Below 20 targets only this node's own outbound links count,
/// so every node dials every peer itself. From 20 on, a link a peer opened to
/// us also counts toward `desired_connected` and the peer is not dialled
/// again, which keeps big meshes from doubling their links.
pub fn uses_inbound_view(t: usize) -> bool {
    t >= INBOUND_VIEW_MIN_TARGETS
}

// ---------------------------------------------------------------------------
// Shared clamps
// ---------------------------------------------------------------------------

/// `T' = max(T, 1)` as a float. Every formula divides by or takes the root of
/// T', so it must never be zero.
fn t_prime(t: usize) -> f64 {
    t.max(1) as f64
}

/// Clamps a ratio to `[0, 1]` and reads NaN as 0. For the connected ratio, 0
/// is the cautious reading: maximum pressure, dial more. For the discovery
/// ratio, 0 means "nothing discovered yet", which keeps exploration on.
fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// The gossip interval clamped to `[0, MAX_GOSSIP_INTERVAL]` (NaN reads as
/// 0), so that no formula can produce NaN or infinity from a bad setting.
fn sane_gi(gi: f64) -> f64 {
    if gi.is_nan() || gi <= 0.0 {
        0.0
    } else {
        gi.min(MAX_GOSSIP_INTERVAL)
    }
}

/// `floor(x)` as an integer. `as` saturates, so this never panics; callers
/// only pass finite non-negative values.
fn floor_usize(x: f64) -> usize {
    x.floor() as usize
}

// ---------------------------------------------------------------------------
// §3.3 formulas
// ---------------------------------------------------------------------------

/// Connection pressure: `(1 - c') * max(sqrt(T') - 2, 0) / 2`.
///
/// This measures how far a node is from a healthy mesh. It is zero for tiny
/// meshes (T ≤ 4) and for a fully connected node, and it grows with
/// `sqrt(T)`. Pressure above 1 means "badly under-connected in a big mesh".
/// It drives the parallelism cap, the burst, the reconcile interval and the
/// backoff base.
pub fn pressure(t: usize, c: f64) -> f64 {
    let s = t_prime(t).sqrt();
    (1.0 - unit(c)) * (s - 2.0).max(0.0) / 2.0
}

/// How many peers this node wants connected (spec §3.3 `desired_connected`).
///
/// - **Small meshes (T' ≤ 20) are fully meshed**, because every link is cheap
///   and makes convergence immediate.
/// - **Once discovery is nearly done (dr ≥ 0.90)** the target drops to the
///   stability target `max(6, floor(s)+2)`, plus one while c' < 0.30.
/// - **Otherwise** the target is the baseline `max(6, floor(s)+4)` plus the
///   larger of two bonuses. The deficit bonus is bigger the fewer links the
///   node has. The discovery bonus, from 24 targets up, is 8–35 % of T': every
///   new link brings a catalog snapshot, and that is what closes the
///   function-catalog gap (§3.5).
///
/// The result is at most `T'`.
pub fn desired_connected(t: usize, c: f64, dr: f64) -> usize {
    let tp_n = t.max(1);
    let tp = t_prime(t);
    let c = unit(c);
    let dr = unit(dr);
    if tp_n <= 20 {
        return tp_n;
    }
    let fs = floor_usize(tp.sqrt());
    let baseline = 6.max(fs + 4);
    if dr >= 0.90 {
        let stab = 6.max(fs + 2);
        let want = if c < 0.30 { stab + 1 } else { stab };
        return tp_n.min(want);
    }
    let deficit = if c < 0.3 {
        6.max(fs)
    } else if c < 0.5 {
        4.max(floor_usize(tp.powf(0.4)))
    } else if c < 0.7 {
        2
    } else {
        0
    };
    let disc = if tp_n >= 24 {
        if dr < 0.5 {
            floor_usize(0.35 * tp)
        } else if dr < 0.7 {
            floor_usize(0.25 * tp)
        } else if dr < 0.85 {
            floor_usize(0.15 * tp)
        } else if dr < 0.95 {
            floor_usize(0.08 * tp)
        } else {
            0
        }
    } else {
        0
    };
    tp_n.min(baseline + deficit.max(disc))
}

/// How many extra links to open past `desired` while discovery lags (spec
/// §3.3 `exploration_slots`).
///
/// A node that reached `desired` with peers still due raises its target to
/// `connected + slots` (see [`plan_tick`]). That keeps it opening new links,
/// and so receiving new catalog snapshots, until `dr ≥ 0.95`. The result is
/// zero below 20 targets (those meshes are full meshes anyway) and once
/// discovery is done.
pub fn exploration_slots(t: usize, c: f64, dr: f64) -> usize {
    let tp = t_prime(t);
    let c = unit(c);
    let dr = unit(dr);
    if t.max(1) < 20 || dr >= 0.95 {
        return 0;
    }
    let fs = floor_usize(tp.sqrt());
    if c < 0.30 {
        2.max(fs)
    } else if c < 0.50 {
        2.max(fs / 2)
    } else {
        1.max(fs / 2)
    }
}

/// How many dials may run at once in one tick (spec §3.3 `parallelism`).
///
/// High pressure *lowers* the cap (1 at p ≥ 1.2), so a node that is badly
/// under-connected does not flood a mesh that may itself still be starting.
/// A large mesh in which this node is nearly isolated (c' < 0.20 from 24
/// targets, c' < 0.15 from 20) gets a floor of 2–3 so it can climb out. The
/// result is always at least 1.
pub fn parallelism(t: usize, c: f64) -> usize {
    let tp_n = t.max(1);
    let c = unit(c);
    let p = pressure(t, c);
    let cap = if p >= 1.2 {
        1
    } else if p >= 0.8 {
        2
    } else if p >= 0.4 {
        3
    } else {
        4
    };
    let mut par = 1.max(cap.min(floor_usize(t_prime(t).sqrt())));
    if tp_n >= 24 && c < 0.20 {
        par = par.max(3);
    } else if tp_n >= 20 && c < 0.15 {
        par = par.max(if tp_n < 36 { 2 } else { 3 });
    }
    par
}

/// Sleep between two reconcile ticks (spec §3.3 `reconcile_interval`).
///
/// The base grows slowly with T: `min(0.75, 0.2 + T/200)`, but is never below
/// `gi / sqrt(T)`. It is then stretched by up to 3.5× under pressure, because
/// an under-connected node's dials take longer and re-ticking sooner would
/// only find them still running. The result is capped at `max(4 gi, 1.5 s)`.
/// With no targets the loop idles at `max(gi, 0.2 s)`.
pub fn reconcile_interval(t: usize, c: f64, gi: f64) -> Duration {
    let gi = sane_gi(gi);
    if t == 0 {
        return secs(gi.max(0.2));
    }
    let tf = t as f64;
    let base = (0.2 + tf / 200.0).min(0.75).max(gi / tf.sqrt().max(1.0));
    let stretched = base * (1.0 + pressure(t, c).min(2.0) * 1.25);
    secs((4.0 * gi).max(1.5).min(stretched))
}

/// First retry delay after a failed dial (spec §3.3 `backoff_base`):
/// `max(0.2, gi / max(s, 1), gi * min(T'/100, 0.5)) * (1 + min(p, 2.5) * 1.5)`.
///
/// The delay grows with the mesh and is stretched by up to 4.75× under
/// pressure. A node that is failing many dials in a big mesh is usually
/// hitting peers that are still starting, and hammering them does not help.
pub fn backoff_base(t: usize, c: f64, gi: f64) -> Duration {
    let gi = sane_gi(gi);
    let tp = t_prime(t);
    let raw = 0.2_f64
        .max(gi / tp.sqrt().max(1.0))
        .max(gi * (tp / 100.0).min(0.5));
    secs(raw * (1.0 + pressure(t, c).min(2.5) * 1.5))
}

/// Longest retry delay (before the spread): `max(gi, gi * sqrt(T'))`.
///
/// It scales with `sqrt(T')` because a bigger mesh has more peers to try
/// meanwhile, so any single peer can wait longer.
pub fn backoff_cap(t: usize, gi: f64) -> Duration {
    let gi = sane_gi(gi);
    secs(gi.max(gi * t_prime(t).sqrt()))
}

/// The unrecovered-seed clamp. A seed that has never answered gets
/// `base = min(base, max(0.2, 0.5 gi))` and `cap = min(cap, max(2 gi, 1.0))`.
/// Bootstrap links are what let a node join at all, so they keep being retried
/// quickly even in a big, pressured mesh.
pub fn unrecovered_seed_backoff(base: Duration, cap: Duration, gi: f64) -> (Duration, Duration) {
    let gi = sane_gi(gi);
    (
        base.min(secs((0.5 * gi).max(0.2))),
        cap.min(secs((2.0 * gi).max(1.0))),
    )
}

/// `(base, cap)` for a failed reconcile dial to one peer. The inputs are T and
/// c from the tick that started the dial, and the unrecovered-seed clamp is
/// applied when `is_seed` and the peer never succeeded.
pub fn failure_backoff(
    t: usize,
    c: f64,
    gi: f64,
    is_seed: bool,
    state: &PeerDialState,
) -> (Duration, Duration) {
    let base = backoff_base(t, c, gi);
    let cap = backoff_cap(t, gi);
    if is_seed && state.last_success_at.is_none() {
        unrecovered_seed_backoff(base, cap, gi)
    } else {
        (base, cap)
    }
}

/// Retry jitter for one peer: `(sum of code points of peer_url mod 1000) /
/// 4000`, in `[0, 0.24975]`.
///
/// It depends only on the peer URL, not on who dials. Different peers
/// therefore retry at different times, and results stay deterministic. The
/// sum is taken over Unicode scalar values, like Python's `ord`.
pub fn url_spread(peer_url: &str) -> f64 {
    let sum = peer_url
        .chars()
        .fold(0u64, |acc, ch| (acc + u64::from(u32::from(ch))) % 1000);
    sum as f64 / 4000.0
}

/// Per-dialler tie-break among equally ranked due peers (spec §3.4):
/// `blake2s(digest_size = 8, "{local_url}|{peer_url}")` read as a big-endian
/// u64 and divided by `2^64 − 1`, in `[0, 1]`.
///
/// The hash includes the dialler, so the nodes of a mesh fan out to different
/// peers instead of all dialling the same first few. That is part of the §3.5
/// fix. The fallback of 0.0 only guards the hasher's fallible API; the digest
/// size 8 is valid, so it never happens.
pub fn selection_spread(local_url: &str, peer_url: &str) -> f64 {
    let Ok(mut hasher) = Blake2sVar::new(8) else {
        return 0.0;
    };
    hasher.update(local_url.as_bytes());
    hasher.update(b"|");
    hasher.update(peer_url.as_bytes());
    let mut out = [0u8; 8];
    if hasher.finalize_variable(&mut out).is_err() {
        return 0.0;
    }
    u64::from_be_bytes(out) as f64 / u64::MAX as f64
}

/// How much of the known mesh this node has actually *discovered* (spec §3.2):
/// `min(r_dir, r_fun)`, with `r_dir = min((directory_size - 1) / T', 1)` and
/// `r_fun = min((servers - 1) / T', 1)`.
///
/// Both counts include self. `servers` is the number of distinct node ids
/// among the unexpired function endpoints. Because the candidates come from
/// the directory, this mostly measures how many peers' function catalogs have
/// arrived. A count of 0 saturates to a ratio of 0 (Python would go negative,
/// which every comparison treats like 0 anyway).
pub fn discovery_ratio(t: usize, directory_size_incl_self: usize, servers_incl_self: usize) -> f64 {
    let tp = t_prime(t);
    let r_dir = (directory_size_incl_self.saturating_sub(1) as f64 / tp).min(1.0);
    let r_fun = (servers_incl_self.saturating_sub(1) as f64 / tp).min(1.0);
    r_dir.min(r_fun)
}

/// The inputs of one reconcile tick, bundled so the formulas can be evaluated
/// together (diagnostics, tests, simulators). [`plan_tick`] computes the same
/// values from the candidate list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DialInputs {
    /// `T`: dial candidates, excluding self.
    pub targets: usize,
    /// Candidates currently connected, in the view of [`uses_inbound_view`].
    pub connected: usize,
    /// `dr` from [`discovery_ratio`].
    pub discovery_ratio: f64,
    /// `gi`, the gossip interval in seconds.
    pub gossip_interval: f64,
}

impl DialInputs {
    /// `c = connected / T`, or 1.0 with no targets (nothing to want). This
    /// value is not clamped; the formulas clamp it.
    pub fn connected_ratio(&self) -> f64 {
        connected_ratio(self.connected, self.targets)
    }

    /// [`pressure`] for these inputs.
    pub fn pressure(&self) -> f64 {
        pressure(self.targets, self.connected_ratio())
    }

    /// [`desired_connected`] for these inputs.
    pub fn desired_connected(&self) -> usize {
        desired_connected(self.targets, self.connected_ratio(), self.discovery_ratio)
    }

    /// [`exploration_slots`] for these inputs.
    pub fn exploration_slots(&self) -> usize {
        exploration_slots(self.targets, self.connected_ratio(), self.discovery_ratio)
    }

    /// [`parallelism`] for these inputs.
    pub fn parallelism(&self) -> usize {
        parallelism(self.targets, self.connected_ratio())
    }

    /// [`reconcile_interval`] for these inputs.
    pub fn reconcile_interval(&self) -> Duration {
        reconcile_interval(self.targets, self.connected_ratio(), self.gossip_interval)
    }

    /// [`backoff_base`] for these inputs.
    pub fn backoff_base(&self) -> Duration {
        backoff_base(self.targets, self.connected_ratio(), self.gossip_interval)
    }

    /// [`backoff_cap`] for these inputs.
    pub fn backoff_cap(&self) -> Duration {
        backoff_cap(self.targets, self.gossip_interval)
    }
}

/// `connected / targets`, or 1.0 with no targets.
fn connected_ratio(connected: usize, targets: usize) -> f64 {
    if targets == 0 {
        1.0
    } else {
        connected as f64 / targets as f64
    }
}

// ---------------------------------------------------------------------------
// Per-peer dial state (§3.3 PeerDialState)
// ---------------------------------------------------------------------------

/// Dial bookkeeping for one peer URL.
///
/// A fresh state is due at once (`next_attempt_at = ZERO`). Python's zero
/// `last_attempt_at` is `None` here; it sorts first in the same way, as
/// "oldest".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerDialState {
    /// Failures since the last success; it drives the exponential backoff.
    pub consecutive_failures: u32,
    /// When the last dial started (`None`: never dialled).
    pub last_attempt_at: Option<Instant>,
    /// When the peer was last dialled successfully or seen connected
    /// (`None`: never). Unrecovered seeds and never-reached peers are
    /// prioritised on this.
    pub last_success_at: Option<Instant>,
    /// Earliest moment the next dial may start.
    pub next_attempt_at: Instant,
}

impl PeerDialState {
    /// A state that is due immediately and has no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a dial may start at `now` (`now >= next_attempt_at`).
    pub fn can_attempt(&self, now: Instant) -> bool {
        now >= self.next_attempt_at
    }

    /// Records that a dial starts at `now`, the value the §3.4 "older first"
    /// ordering looks at.
    pub fn record_attempt(&mut self, now: Instant) {
        self.last_attempt_at = Some(now);
    }

    /// The peer answered or is connected: clear the failures, and make it due
    /// again at once (so it is redialled promptly if the link drops).
    pub fn record_success(&mut self, now: Instant) {
        self.consecutive_failures = 0;
        self.last_success_at = Some(now);
        self.next_attempt_at = now;
    }

    /// A dial failed at `now`. Count it, and schedule the next attempt after
    /// `delay + delay * clamp(spread, 0, 0.25)`, where `delay = cap` if
    /// `base` is zero and otherwise `min(cap, base * 2^(failures - 1))`.
    ///
    /// The exponent is clamped and the multiplication saturates, so
    /// arbitrarily many failures cannot overflow. A NaN spread reads as 0.
    pub fn record_failure(&mut self, now: Instant, base: Duration, cap: Duration, spread: f64) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let delay = if base.is_zero() {
            cap
        } else {
            let exp = self.consecutive_failures.saturating_sub(1).min(31);
            base.saturating_mul(1u32 << exp).min(cap)
        };
        let jitter = secs(delay.as_secs_f64() * unit(spread).min(0.25));
        self.next_attempt_at = now + delay.saturating_add(jitter);
    }

    /// A failed reconcile dial, with everything derived as Python derives it:
    /// [`failure_backoff`] from the T and c of the tick that started the dial
    /// (including the unrecovered-seed clamp), and [`url_spread`] of the peer.
    pub fn record_dial_failure(
        &mut self,
        now: Instant,
        peer_url: &str,
        is_seed: bool,
        t: usize,
        c: f64,
        gi: f64,
    ) {
        let (base, cap) = failure_backoff(t, c, gi, is_seed, self);
        self.record_failure(now, base, cap, url_spread(peer_url));
    }
}

// ---------------------------------------------------------------------------
// One tick of the reconcile loop (§3.1 body, §3.4 priority)
// ---------------------------------------------------------------------------

/// One dial candidate, as the caller's tick sees it. The list passed to
/// [`plan_tick`] must be in §3.1 order: seeds sorted by URL, then directory
/// nodes sorted by `(cluster_id, node_id)`. Self and departed peers are
/// already removed. The sort in [`plan_tick`] is stable over this order.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The peer URL (the key of its dial state).
    pub url: &'a str,
    /// True for configured seeds (`peers`, `connect`).
    pub is_seed: bool,
    /// This URL's dial state.
    pub state: &'a PeerDialState,
    /// Whether the URL is live in this tick's view (outbound only below
    /// [`INBOUND_VIEW_MIN_TARGETS`] targets; outbound or inbound from there
    /// on).
    pub connected: bool,
}

/// The §3.4 sort key, minus the spread (compared separately with
/// `total_cmp`).
fn priority_key(cand: &Candidate<'_>, c: f64) -> (u8, u8, u32, Option<Instant>) {
    let never = cand.state.last_success_at.is_none();
    let class = match (cand.is_seed, never) {
        (true, true) => 0,
        (true, false) => 1,
        (false, _) => 2,
    };
    let fresh = if never && c < 0.7 { 0 } else { 1 };
    (
        class,
        fresh,
        cand.state.consecutive_failures,
        cand.state.last_attempt_at,
    )
}

/// What one reconcile tick decided, with every field of the
/// `[DIAG_PEER_DIAL] … loop` line (see [`TickPlan::diag_line`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TickPlan {
    /// `T`: distinct candidates.
    pub targets: usize,
    /// `c = connected / T` (1.0 with no targets).
    pub connected_ratio: f64,
    /// `dr` as given, clamped to `[0, 1]`.
    pub discovery_ratio: f64,
    /// [`pressure`]`(T, c)`.
    pub pressure: f64,
    /// The mesh target after the exploration raise.
    pub desired_connected: usize,
    /// [`exploration_slots`]`(T, c, dr)`, whether or not it was used.
    pub exploration_slots: usize,
    /// Candidates live in this tick's view.
    pub connected: usize,
    /// Candidates that are due: not connected, not in flight and past
    /// `next_attempt_at`.
    pub due: usize,
    /// URLs to dial now, in priority order (the first `budget` due
    /// candidates). Call [`PeerDialState::record_attempt`] on each when its
    /// dial starts.
    pub selected: Vec<String>,
    /// [`parallelism`]`(T, c)`: how many of `selected` may be dialled at
    /// once. It is reported on every tick (Python computes it only when
    /// something is due, since it only matters then).
    pub parallelism: usize,
    /// The §3.1 dial budget, or 0 when nothing is due. It follows the spec
    /// exactly, so it can exceed `due`: the floor is `parallelism`. Only
    /// `min(budget, due)` URLs are selected.
    pub budget: usize,
    /// Candidates that are backing off (`now < next_attempt_at`).
    pub not_due: usize,
    /// Not connected, and skipped because a dial to them is still in flight
    /// (the sans-IO stand-in for Python awaiting its dials). These are
    /// counted in neither `due` nor `not_due`, and are not in the diag line.
    pub in_flight: usize,
    /// [`reconcile_interval`]`(T, c)`: when to run the next tick.
    pub interval: Duration,
    /// Connected candidates. The caller calls
    /// [`PeerDialState::record_success`]`(now)` on each, as Python does in
    /// the loop.
    pub live: Vec<String>,
}

impl TickPlan {
    /// True when the loop is idle because it has reached its mesh target,
    /// although peers are due. In §3.5 this was the signature of the stall:
    /// `due > 0 && selected == 0 && connected >= desired_connected`.
    pub fn saturated(&self) -> bool {
        self.due > 0 && self.selected.is_empty() && self.connected >= self.desired_connected
    }

    /// The `[DIAG_PEER_DIAL]` loop line, with the same fields and order as
    /// MPREG so the same log analysis applies. Ratios and pressure are printed
    /// with 3 decimals, the interval in seconds with 3 decimals, and
    /// `selected` as a count.
    pub fn diag_line(&self, node: &str, name: &str) -> String {
        let mut line = String::with_capacity(320);
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            "[DIAG_PEER_DIAL] node={node} name={name} loop targets={} connected_ratio={:.3} \
             discovery_ratio={:.3} pressure={:.3} desired_connected={} exploration_slots={} \
             connected={} due={} selected={} parallelism={} budget={} not_due={} interval={:.3}s",
            self.targets,
            self.connected_ratio,
            self.discovery_ratio,
            self.pressure,
            self.desired_connected,
            self.exploration_slots,
            self.connected,
            self.due,
            self.selected.len(),
            self.parallelism,
            self.budget,
            self.not_due,
            self.interval.as_secs_f64(),
        );
        line
    }
}

/// Plans one reconcile tick (the body of spec §3.1).
///
/// - **Classify each candidate.** It is connected, or in flight (skipped), or
///   not due (backing off), or due. A URL that appears more than once counts
///   only at its first occurrence; the caller is expected to deduplicate, and
///   this guards against dialling one peer twice.
/// - **Compute** `c`, `desired`, `exploration_slots` and `pressure`.
/// - **Exploration raise:** while peers are due, the node already has
///   `desired` links and discovery lags (slots > 0), `desired` becomes
///   `min(T, connected + slots)`.
/// - **Budget:** `max(par, min(due, par + burst))`, with
///   `burst = floor(par * max(0, 1 - min(p, 1)))`. A nearly isolated node
///   (c < 0.35, p > 0.5) gets `extra = max(1, floor(par * min(p, 1)))`. The
///   budget is never more than `desired - connected`.
/// - **Select:** the first `budget` due candidates, stably sorted by the §3.4
///   key: seed class, never-succeeded-while-c<0.7, failures, last attempt
///   (oldest or never first), then [`selection_spread`] from `local_url`.
///
/// `discovery_ratio` comes from [`discovery_ratio`] with `T` equal to the
/// number of distinct candidates. `gi` is the gossip interval in seconds.
pub fn plan_tick(
    local_url: &str,
    candidates: &[Candidate<'_>],
    discovery_ratio: f64,
    gi: f64,
    now: Instant,
    in_flight: impl Fn(&str) -> bool,
) -> TickPlan {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut connected = 0usize;
    let mut not_due = 0usize;
    let mut in_flight_count = 0usize;
    let mut live = Vec::new();
    let mut due: Vec<&Candidate<'_>> = Vec::new();
    for cand in candidates {
        if !seen.insert(cand.url) {
            continue;
        }
        if cand.connected {
            connected += 1;
            live.push(cand.url.to_string());
        } else if in_flight(cand.url) {
            in_flight_count += 1;
        } else if !cand.state.can_attempt(now) {
            not_due += 1;
        } else {
            due.push(cand);
        }
    }
    let t = seen.len();
    let c = connected_ratio(connected, t);
    let dr = unit(discovery_ratio);
    let mut desired = desired_connected(t, c, dr);
    let ex = exploration_slots(t, c, dr);
    if !due.is_empty() && connected >= desired && ex > 0 {
        desired = t.min(connected.saturating_add(ex));
    }
    let p = pressure(t, c);
    let par = parallelism(t, c);

    let mut budget = 0usize;
    let mut selected = Vec::new();
    if !due.is_empty() {
        let n_due = due.len();
        let burst = floor_usize(par as f64 * (1.0 - p.min(1.0)).max(0.0));
        budget = par.max(n_due.min(par.saturating_add(burst)));
        if c < 0.35 && p > 0.5 {
            let extra = 1.max(floor_usize(par as f64 * p.min(1.0)));
            budget = budget.max(n_due.min(par.saturating_add(extra)));
        }
        budget = budget.min(desired.saturating_sub(connected));
        if budget > 0 {
            let mut keyed: Vec<_> = due
                .iter()
                .map(|cand| {
                    (
                        priority_key(cand, c),
                        selection_spread(local_url, cand.url),
                        cand.url,
                    )
                })
                .collect();
            // `sort_by` is stable: ties keep candidate order.
            keyed.sort_by(|a, b| match a.0.cmp(&b.0) {
                Ordering::Equal => a.1.total_cmp(&b.1),
                other => other,
            });
            selected = keyed
                .into_iter()
                .take(budget)
                .map(|(_, _, url)| url.to_string())
                .collect();
        }
    }

    TickPlan {
        targets: t,
        connected_ratio: c,
        discovery_ratio: dr,
        pressure: p,
        desired_connected: desired,
        exploration_slots: ex,
        connected,
        due: due.len(),
        selected,
        parallelism: par,
        budget,
        not_due,
        in_flight: in_flight_count,
        interval: reconcile_interval(t, c, gi),
        live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-3;

    fn close(actual: f64, expected: f64, what: &str) {
        assert!(
            (actual - expected).abs() <= TOL,
            "{what}: got {actual}, expected {expected}"
        );
    }

    fn s(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    fn urls(n: usize, base_port: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("ws://127.0.0.1:{}", base_port + i))
            .collect()
    }

    /// A tick over `t` candidates, of which the first `connected` are live and
    /// the rest have fresh (due) states.
    fn plan_for(t: usize, connected: usize, dr: f64, gi: f64) -> TickPlan {
        let urls = urls(t, 20001);
        let states = vec![PeerDialState::new(); t];
        let cands: Vec<Candidate<'_>> = urls
            .iter()
            .zip(&states)
            .enumerate()
            .map(|(i, (u, st))| Candidate {
                url: u,
                is_seed: false,
                state: st,
                connected: i < connected,
            })
            .collect();
        plan_tick(
            "ws://127.0.0.1:20000",
            &cands,
            dr,
            gi,
            Instant::ZERO,
            |_| false,
        )
    }

    // -- §3.6 table, gi = 1.0, T = 29 -----------------------------------------

    /// Rows: (c, pressure, par, desired at dr 0.3/0.6/0.8/0.9/0.96, explo at
    /// dr 0.8, interval, backoff base). These are evaluated at the nominal c of
    /// the table; the budget column is checked via `plan_tick` below.
    #[test]
    fn worked_table_t29_formulas() {
        #[allow(clippy::type_complexity)]
        let rows: [(f64, f64, usize, [usize; 5], usize, f64, f64); 7] = [
            (0.00, 1.693, 3, [19, 16, 15, 8, 8], 5, 1.075, 1.026),
            (0.20, 1.354, 1, [19, 16, 15, 8, 8], 5, 0.929, 0.879),
            (0.30, 1.185, 2, [19, 16, 13, 7, 7], 2, 0.856, 0.805),
            (0.50, 0.846, 2, [19, 16, 13, 7, 7], 2, 0.710, 0.658),
            (0.70, 0.508, 3, [19, 16, 13, 7, 7], 2, 0.564, 0.511),
            (0.90, 0.169, 4, [19, 16, 13, 7, 7], 2, 0.418, 0.364),
            (1.00, 0.000, 4, [19, 16, 13, 7, 7], 2, 0.345, 0.290),
        ];
        let drs = [0.3, 0.6, 0.8, 0.9, 0.96];
        for (c, p, par, desired, explo, interval, base) in rows {
            close(pressure(29, c), p, &format!("pressure c={c}"));
            assert_eq!(parallelism(29, c), par, "parallelism c={c}");
            for (dr, want) in drs.iter().zip(desired) {
                assert_eq!(desired_connected(29, c, *dr), want, "desired c={c} dr={dr}");
            }
            if c < 1.0 {
                assert_eq!(exploration_slots(29, c, 0.8), explo, "explo c={c}");
                assert_eq!(exploration_slots(29, c, 0.96), 0, "explo off at dr≥0.95");
            }
            close(
                s(reconcile_interval(29, c, 1.0)),
                interval,
                &format!("interval c={c}"),
            );
            close(
                s(backoff_base(29, c, 1.0)),
                base,
                &format!("backoff base c={c}"),
            );
        }
    }

    /// Budget column: due = 29 − connected, dr = 0.8, all due.
    ///
    /// The doc says "the connected count is round(29c)". Its numbers use
    /// Python's round-half-even: at c = 0.5, round(14.5) = 14, which is what
    /// the "desired raised 13→16" note implies (14 + 2 slots). Rust's
    /// `f64::round` would give 15, hence 13→17, so the counts are written out.
    /// Counts: 0, 6, 9, 14, 20, 26, 29.
    #[test]
    fn worked_table_t29_budgets() {
        // (connected, budget, desired after any exploration raise)
        let rows = [
            (0, 6, 15),
            (6, 2, 15),
            (9, 4, 13),
            (14, 2, 16),
            (20, 2, 22),
            (26, 2, 28),
            (29, 0, 13),
        ];
        for (conn, budget, desired) in rows {
            let plan = plan_for(29, conn, 0.8, 1.0);
            assert_eq!(plan.targets, 29);
            assert_eq!(plan.connected, conn);
            assert_eq!(plan.due, 29 - conn);
            assert_eq!(plan.budget, budget, "budget at connected={conn}");
            assert_eq!(plan.selected.len(), budget, "selected at connected={conn}");
            assert_eq!(
                plan.desired_connected, desired,
                "desired at connected={conn}"
            );
            assert!(!plan.saturated());
            // The plan uses the actual ratio conn/29, not the nominal one.
            let c = conn as f64 / 29.0;
            assert_eq!(plan.interval, reconcile_interval(29, c, 1.0));
            assert_eq!(plan.parallelism, parallelism(29, c));
            assert_eq!(plan.live.len(), conn);
        }
        // The extremes match the table's interval column.
        close(s(plan_for(29, 0, 0.8, 1.0).interval), 1.075, "interval c=0");
        close(
            s(plan_for(29, 29, 0.8, 1.0).interval),
            0.345,
            "interval c=1",
        );
    }

    #[test]
    fn worked_backoff_cap_t29() {
        close(s(backoff_cap(29, 1.0)), 5.385, "backoff cap T=29");
    }

    #[test]
    fn worked_delay_sequence_for_20001() {
        let url = "ws://127.0.0.1:20001";
        close(url_spread(url), 0.031, "spread");
        let base = backoff_base(29, 0.5, 1.0);
        let cap = backoff_cap(29, 1.0);
        let mut st = PeerDialState::new();
        let mut now = Instant::ZERO;
        let expected = [0.679, 1.357, 2.714, 5.428, 5.552, 5.552, 5.552, 5.552];
        for (i, want) in expected.iter().enumerate() {
            st.record_failure(now, base, cap, url_spread(url));
            assert_eq!(st.consecutive_failures, i as u32 + 1);
            let delay = st.next_attempt_at.saturating_duration_since(now);
            close(s(delay), *want, &format!("delay after failure {}", i + 1));
            assert!(!st.can_attempt(now));
            assert!(st.can_attempt(st.next_attempt_at));
            now = st.next_attempt_at;
        }
        // The convenience path (T, c from the tick, non-seed) gives the same.
        let mut via = PeerDialState::new();
        via.record_dial_failure(Instant::ZERO, url, false, 29, 0.5, 1.0);
        close(
            s(via.next_attempt_at.saturating_duration_since(Instant::ZERO)),
            0.679,
            "via",
        );
    }

    #[test]
    fn steady_state_budget_is_zero_when_discovery_done() {
        // dr ≥ 0.95: no exploration, so reaching desired stops dialling.
        for dr in [0.95, 0.96, 1.0] {
            // c = 8/29 < 0.3 → desired = stab + 1 = 8.
            let plan = plan_for(29, 8, dr, 1.0);
            assert_eq!(plan.desired_connected, 8);
            assert_eq!(plan.exploration_slots, 0);
            assert_eq!(plan.budget, 0);
            assert!(plan.selected.is_empty());
            assert!(plan.saturated(), "intended steady state is 'saturated'");
            // And above desired as well.
            let plan = plan_for(29, 12, dr, 1.0);
            assert_eq!(plan.desired_connected, 7);
            assert_eq!(plan.budget, 0);
        }
        // Below 0.95 the same position keeps exploring (the §3.5 fix).
        let plan = plan_for(29, 8, 0.92, 1.0);
        assert_eq!(plan.desired_connected, 8 + 5);
        assert!(plan.budget > 0);
    }

    // -- Unit-test vectors -----------------------------------------------------

    #[test]
    fn parallelism_vectors() {
        assert_eq!(parallelism(1, 1.0), 1);
        assert_eq!(parallelism(9, 1.0), 3);
        assert_eq!(parallelism(16, 1.0), 4);
        assert_eq!(parallelism(25, 0.4), 2);
        assert_eq!(parallelism(49, 0.3), 1);
        assert_eq!(parallelism(49, 0.8), 3);
    }

    #[test]
    fn pressure_slows_backoff_and_reconcile() {
        let lo = s(backoff_base(49, 0.2, 1.0));
        let hi = s(backoff_base(49, 0.9, 1.0));
        assert!(lo >= 1.5 * hi, "backoff_base {lo} vs {hi}");
        let lo = s(reconcile_interval(49, 0.2, 1.0));
        let hi = s(reconcile_interval(49, 0.9, 1.0));
        assert!(lo >= 1.5 * hi, "reconcile_interval {lo} vs {hi}");
    }

    #[test]
    fn selection_spread_matches_python_blake2s() {
        // Python: int.from_bytes(hashlib.blake2s(b"ws://127.0.0.1:12345|ws://127.0.0.1:20000",
        //          digest_size=8).digest(), "big") / (2**64 - 1)
        let v = selection_spread("ws://127.0.0.1:12345", "ws://127.0.0.1:20000");
        assert!((v - 0.278_848_673_679_678_5).abs() < 1e-12, "{v}");
    }

    #[test]
    fn selection_spread_orders_differ_between_diallers() {
        let peers = urls(20, 20000);
        let order = |local: &str| -> Vec<String> {
            let mut v = peers.clone();
            v.sort_by(|a, b| selection_spread(local, a).total_cmp(&selection_spread(local, b)));
            v
        };
        let a = order("ws://127.0.0.1:12345");
        let b = order("ws://127.0.0.1:12346");
        assert_ne!(a[..8], b[..8], "first 8 must differ");
        // Orders computed with Python's hashlib, pinning bit-compatibility.
        let port = |v: &[String]| -> Vec<String> {
            v.iter()
                .take(8)
                .map(|u| u[u.len() - 5..].to_string())
                .collect()
        };
        assert_eq!(
            port(&a),
            ["20006", "20004", "20002", "20008", "20017", "20015", "20018", "20000"]
        );
        assert_eq!(
            port(&b),
            ["20019", "20014", "20003", "20009", "20005", "20006", "20000", "20001"]
        );
        // The spread also drives plan_tick's tie-break.
        let states = vec![PeerDialState::new(); 20];
        let cands: Vec<_> = peers
            .iter()
            .zip(&states)
            .map(|(u, st)| Candidate {
                url: u,
                is_seed: false,
                state: st,
                connected: false,
            })
            .collect();
        let plan = plan_tick(
            "ws://127.0.0.1:12345",
            &cands,
            0.0,
            1.0,
            Instant::ZERO,
            |_| false,
        );
        assert_eq!(plan.selected[..], a[..plan.selected.len()]);
    }

    #[test]
    fn url_spread_range() {
        assert_eq!(url_spread(""), 0.0);
        // 999 mod 1000 is the largest possible sum.
        let s999: String = std::iter::repeat_n('\u{6F}', 9).collect(); // 9 * 111
        assert!((url_spread(&s999) - 0.24975).abs() < 1e-12);
        assert!(url_spread("ws://ünïcode:1") < 0.25);
    }

    // -- Churn test: gi = 0.3, T = 11 -------------------------------------------

    #[test]
    fn churn_values_gi_03_t11() {
        close(
            s(reconcile_interval(11, 1.0, 0.3)),
            0.255,
            "interval connected",
        );
        close(s(reconcile_interval(11, 0.0, 0.3)), 0.465, "interval c=0");
        close(s(backoff_base(11, 1.0, 0.3)), 0.2, "backoff base");
        close(s(backoff_cap(11, 0.3)), 0.995, "backoff cap");
        for c in [0.0, 0.3, 0.6, 1.0] {
            for dr in [0.0, 0.5, 0.92, 1.0] {
                assert_eq!(desired_connected(11, c, dr), 11, "full mesh");
                assert_eq!(exploration_slots(11, c, dr), 0, "exploration off");
            }
        }
        let plan = plan_for(11, 4, 0.5, 0.3);
        assert_eq!(plan.desired_connected, 11);
        assert_eq!(plan.exploration_slots, 0);
        assert!(!uses_inbound_view(11));
        assert!(uses_inbound_view(20));
    }

    // -- Other behaviour -------------------------------------------------------

    #[test]
    fn unrecovered_seed_is_retried_quickly() {
        // T = 49, c = 0: base and cap are large...
        let st = PeerDialState::new();
        let (b, c) = failure_backoff(49, 0.0, 1.0, false, &st);
        assert!(s(b) > 2.0 && s(c) > 6.0);
        // ...but a never-reached seed is clamped to max(0.2, 0.5 gi) / max(2 gi, 1).
        let (b, c) = failure_backoff(49, 0.0, 1.0, true, &st);
        close(s(b), 0.5, "seed base");
        close(s(c), 2.0, "seed cap");
        let (b, c) = unrecovered_seed_backoff(Duration::from_secs(9), Duration::from_secs(9), 0.1);
        close(s(b), 0.2, "seed base floor");
        close(s(c), 1.0, "seed cap floor");
        // Once the seed has succeeded, the normal values apply again.
        let mut ok = PeerDialState::new();
        ok.record_success(Instant::ZERO);
        assert_eq!(
            failure_backoff(49, 0.0, 1.0, true, &ok),
            failure_backoff(49, 0.0, 1.0, false, &ok)
        );
    }

    #[test]
    fn record_failure_edge_cases() {
        let now = Instant::from_nanos(5);
        // base 0 → cap.
        let mut st = PeerDialState::new();
        st.record_failure(now, Duration::ZERO, Duration::from_secs(2), 0.0);
        assert_eq!(st.next_attempt_at, now + Duration::from_secs(2));
        // Huge failure counts and durations neither panic nor wrap.
        let mut st = PeerDialState {
            consecutive_failures: u32::MAX - 1,
            ..PeerDialState::new()
        };
        st.record_failure(now, Duration::MAX, Duration::MAX, f64::NAN);
        st.record_failure(now, Duration::from_secs(1), Duration::MAX, f64::INFINITY);
        assert_eq!(st.consecutive_failures, u32::MAX);
        assert!(st.next_attempt_at > now);
        // Spread is clamped to 0.25.
        let mut st = PeerDialState::new();
        st.record_failure(now, Duration::from_secs(4), Duration::from_secs(4), 3.0);
        assert_eq!(st.next_attempt_at, now + Duration::from_secs(5));
        // Success resets.
        st.record_success(now);
        assert_eq!(st.consecutive_failures, 0);
        assert_eq!(st.last_success_at, Some(now));
        assert!(st.can_attempt(now));
        st.record_attempt(now);
        assert_eq!(st.last_attempt_at, Some(now));
    }

    #[test]
    fn discovery_ratio_is_min_of_directory_and_functions() {
        assert!((discovery_ratio(29, 30, 30) - 1.0).abs() < 1e-12);
        assert!((discovery_ratio(29, 30, 15) - 14.0 / 29.0).abs() < 1e-12);
        assert!(
            (discovery_ratio(29, 40, 40) - 1.0).abs() < 1e-12,
            "capped at 1"
        );
        assert_eq!(discovery_ratio(0, 1, 1), 0.0);
        assert_eq!(discovery_ratio(0, 0, 0), 0.0, "saturates, never negative");
        assert_eq!(discovery_ratio(0, 3, 3), 1.0);
    }

    #[test]
    fn dial_inputs_delegate() {
        let inp = DialInputs {
            targets: 29,
            connected: 14,
            discovery_ratio: 0.8,
            gossip_interval: 1.0,
        };
        let c = 14.0 / 29.0;
        assert_eq!(inp.connected_ratio(), c);
        assert_eq!(inp.pressure(), pressure(29, c));
        assert_eq!(inp.desired_connected(), 13);
        assert_eq!(inp.exploration_slots(), 2);
        assert_eq!(inp.parallelism(), 2);
        assert_eq!(inp.reconcile_interval(), reconcile_interval(29, c, 1.0));
        assert_eq!(inp.backoff_base(), backoff_base(29, c, 1.0));
        assert_eq!(inp.backoff_cap(), backoff_cap(29, 1.0));
        let empty = DialInputs {
            targets: 0,
            connected: 0,
            discovery_ratio: 0.0,
            gossip_interval: 0.1,
        };
        assert_eq!(empty.connected_ratio(), 1.0);
        close(
            s(empty.reconcile_interval()),
            0.2,
            "T=0 idles at max(gi, 0.2)",
        );
    }

    #[test]
    fn priority_order_and_tick_classification() {
        let now = Instant::from_nanos(10_000_000_000);
        let never = PeerDialState::new();
        let mut succeeded = PeerDialState::new();
        succeeded.record_success(Instant::ZERO);
        let mut failed_once = PeerDialState::new();
        failed_once.record_failure(
            Instant::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(1),
            0.0,
        );
        let mut old_attempt = succeeded;
        old_attempt.record_attempt(Instant::from_nanos(1));
        let mut new_attempt = succeeded;
        new_attempt.record_attempt(Instant::from_nanos(2));
        let backing_off = PeerDialState {
            next_attempt_at: now + Duration::from_secs(1),
            ..PeerDialState::new()
        };
        let cand = |url: &'static str, is_seed: bool, connected: bool, state| Candidate {
            url,
            is_seed,
            state,
            connected,
        };
        let cands = [
            cand("ws://new-attempt", false, false, &new_attempt),
            cand("ws://old-attempt", false, false, &old_attempt),
            cand("ws://failed", false, false, &failed_once),
            cand("ws://never", false, false, &never),
            cand("ws://seed-ok", true, false, &succeeded),
            cand("ws://seed-new", true, false, &never),
            cand("ws://connected", false, true, &never),
            cand("ws://backing-off", false, false, &backing_off),
            cand("ws://in-flight", false, false, &never),
            cand("ws://never", false, false, &never), // duplicate: ignored
        ];
        // Full mesh (T = 9 ≤ 20), so the budget is large enough to show order.
        let plan = plan_tick("ws://me", &cands, 0.0, 1.0, now, |u| u == "ws://in-flight");
        assert_eq!(plan.targets, 9);
        assert_eq!(plan.connected, 1);
        assert_eq!(plan.not_due, 1);
        assert_eq!(plan.in_flight, 1);
        assert_eq!(plan.due, 6);
        assert_eq!(plan.live, ["ws://connected"]);
        // T = 9, c = 1/9: p = 0.444, par = 3, burst = floor(3 * 0.556) = 1,
        // budget = max(3, min(6, 4)) = 4.
        assert_eq!(plan.budget, 4);
        assert_eq!(
            plan.selected,
            [
                "ws://seed-new", // unrecovered seed
                "ws://seed-ok",  // recovered seed
                "ws://never",    // never succeeded, c < 0.7
                "ws://failed",   // never succeeded but 1 failure
            ]
        );
        // The rest of the order: with those four in flight, older attempt first.
        let busy = [
            "ws://in-flight",
            "ws://seed-new",
            "ws://seed-ok",
            "ws://never",
            "ws://failed",
        ];
        let plan = plan_tick("ws://me", &cands, 0.0, 1.0, now, |u| busy.contains(&u));
        assert_eq!(plan.in_flight, 5);
        assert_eq!(plan.selected, ["ws://old-attempt", "ws://new-attempt"]);
        // Connected peers are never selected, even when in flight.
        let plan = plan_tick("ws://me", &cands, 0.0, 1.0, now, |_| true);
        assert_eq!(plan.connected, 1);
        assert_eq!(plan.due, 0);
        assert_eq!(plan.budget, 0);
        assert!(plan.selected.is_empty());
    }

    /// `budget ≥ parallelism` by construction (`max(par, ...)`), so when fewer
    /// peers are due than `par`, the spec's budget exceeds `due`. Only
    /// `min(budget, due)` peers are selected. The requested property
    /// "budget ≤ due" therefore does not hold for the §3.1 formula and is not
    /// asserted; `selected ≤ due` is.
    #[test]
    fn budget_may_exceed_due_but_selection_does_not() {
        // T = 29, c = 0: par = 3, desired = 15. Only one peer is due.
        let urls = urls(29, 21000);
        let due_state = PeerDialState::new();
        let later = PeerDialState {
            next_attempt_at: Instant::from_nanos(u64::MAX),
            ..PeerDialState::new()
        };
        let cands: Vec<_> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| Candidate {
                url: u,
                is_seed: false,
                state: if i == 0 { &due_state } else { &later },
                connected: false,
            })
            .collect();
        let plan = plan_tick("ws://me", &cands, 0.3, 1.0, Instant::ZERO, |_| false);
        assert_eq!((plan.due, plan.not_due, plan.parallelism), (1, 28, 3));
        // burst 0, extra 3: budget = max(3, min(due = 1, 3 + 3)) = 3 > due.
        assert_eq!(plan.budget, 3);
        assert_eq!(plan.selected, [urls[0].clone()]);
    }

    #[test]
    fn empty_tick_and_diag_line() {
        let plan = plan_tick("ws://me", &[], 0.0, 1.0, Instant::ZERO, |_| false);
        assert_eq!(plan.targets, 0);
        assert_eq!(plan.connected_ratio, 1.0);
        assert_eq!(plan.desired_connected, 1);
        assert_eq!(plan.budget, 0);
        assert_eq!(plan.interval, Duration::from_secs(1));
        assert!(!plan.saturated());

        let plan = plan_for(29, 14, 0.8, 1.0);
        assert_eq!(
            plan.diag_line("n1", "node-a"),
            "[DIAG_PEER_DIAL] node=n1 name=node-a loop targets=29 connected_ratio=0.483 \
             discovery_ratio=0.800 pressure=0.875 desired_connected=16 exploration_slots=2 \
             connected=14 due=15 selected=2 parallelism=2 budget=2 not_due=0 interval=0.723s"
        );
    }

    #[test]
    fn bad_inputs_do_not_panic() {
        for gi in [f64::NAN, -1.0, 0.0, f64::INFINITY, 1e300] {
            for c in [f64::NAN, -3.0, 0.5, 7.0, f64::NEG_INFINITY] {
                let _ = reconcile_interval(29, c, gi);
                let _ = backoff_base(29, c, gi);
                let _ = backoff_cap(29, gi);
                assert!(parallelism(29, c) >= 1);
                assert!(desired_connected(29, c, f64::NAN) <= 29);
                let _ = exploration_slots(usize::MAX, c, f64::NAN);
                let _ = pressure(usize::MAX, c);
            }
            let _ = plan_for(3, 1, f64::NAN, gi);
        }
    }

    /// 256 cases; no persisted regressions (these properties are cheap to
    /// re-explore).
    fn prop_config() -> proptest::prelude::ProptestConfig {
        proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        }
    }

    proptest::proptest! {
        #![proptest_config(prop_config())]

        /// Formula invariants over the whole input range.
        #[test]
        fn formulas_are_total(t in 0usize..2000, c in 0.0f64..=1.0, dr in 0.0f64..=1.0,
                              gi in 0.0f64..10.0) {
            let tp = t.max(1);
            let p = pressure(t, c);
            proptest::prop_assert!(p.is_finite() && p >= 0.0);
            proptest::prop_assert!(desired_connected(t, c, dr) <= tp);
            proptest::prop_assert!(desired_connected(t, c, dr) >= 1);
            proptest::prop_assert!(exploration_slots(t, c, dr) <= tp);
            proptest::prop_assert!(parallelism(t, c) >= 1);
            for d in [reconcile_interval(t, c, gi), backoff_base(t, c, gi), backoff_cap(t, gi)] {
                proptest::prop_assert!(d.as_secs_f64().is_finite());
            }
            proptest::prop_assert!(reconcile_interval(t, c, gi) <= secs((4.0 * gi).max(1.5)));
            proptest::prop_assert!(backoff_base(t, c, gi) >= Duration::from_millis(200));
        }

        /// Tick invariants: random T, connected count, backoff, in-flight, dr.
        #[test]
        fn plan_tick_is_total(t in 0usize..2000, conn_frac in 0.0f64..=1.0,
                              backoff_frac in 0.0f64..=1.0, flight_mod in 1usize..50,
                              dr in 0.0f64..=1.0, gi in 0.0f64..5.0, seed_every in 1usize..40) {
            let urls = urls(t, 30000);
            let conn = (t as f64 * conn_frac) as usize;
            let backing = (t as f64 * backoff_frac) as usize;
            let now = Instant::from_nanos(1_000_000_000);
            let due_state = PeerDialState::new();
            let later = PeerDialState { next_attempt_at: now + Duration::from_secs(1), ..PeerDialState::new() };
            let cands: Vec<_> = urls.iter().enumerate().map(|(i, u)| Candidate {
                url: u,
                is_seed: i % seed_every == 0,
                state: if i < backing { &later } else { &due_state },
                connected: i < conn,
            }).collect();
            let plan = plan_tick("ws://me", &cands, dr, gi, now, |u| u.len() % flight_mod == 0);
            proptest::prop_assert_eq!(plan.targets, t);
            proptest::prop_assert_eq!(plan.connected + plan.due + plan.not_due + plan.in_flight, t);
            proptest::prop_assert!(plan.desired_connected <= t.max(1));
            proptest::prop_assert!(plan.parallelism >= 1);
            // See `budget_may_exceed_due_but_selection_does_not`: the spec's
            // budget is floored at `par`, so only the selection is bounded by due.
            proptest::prop_assert!(plan.budget <= plan.due.max(plan.parallelism));
            proptest::prop_assert!(plan.selected.len() <= plan.due);
            proptest::prop_assert_eq!(plan.selected.len(), plan.budget.min(plan.due));
            proptest::prop_assert!(plan.connected + plan.selected.len() <= plan.desired_connected.max(plan.connected));
            proptest::prop_assert!(plan.interval.as_secs_f64().is_finite());
            let line = plan.diag_line("n", "x");
            proptest::prop_assert!(line.starts_with("[DIAG_PEER_DIAL] node=n name=x loop targets="));
            let dedup: BTreeSet<&String> = plan.selected.iter().collect();
            proptest::prop_assert_eq!(dedup.len(), plan.selected.len());
        }
    }
}
