//! Roadmap scenario 3 (resolver outage with client failover) against real
//! `mpreg server` processes on 127.0.0.1: `mpreg_client::FailoverClient`
//! learns the other nodes' URLs from `cluster_map_v2` or from the
//! `summary_query` ingress hints, and when the node it uses is killed
//! (SIGKILL, no goodbye) its next call is answered by another node within a
//! bounded time. Nodes honour `MPREG_TEST_RUNTIME` (tokio or mio) through
//! the shared harness. Every wait is bounded.

use std::time::{Duration, Instant};

use mpreg_client::{ClientError, FailoverClient, FailoverOptions, Served};
use mpreg_tests::{start_cluster, wait_for_mesh, Node};
use serde_json::{json, Map};

/// Bound on the mesh forming and on the cluster map listing every node.
const CONVERGE: Duration = Duration::from_secs(10);
/// Bound on a failed-over call: the dead node's connection breaks at once
/// (SIGKILL closes its sockets), so one reply timeout is plenty.
const FAILOVER_BOUND: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

fn options() -> FailoverOptions {
    FailoverOptions {
        timeout: Duration::from_secs(3),
        max_attempts: 4,
        call_budget: Duration::from_secs(10),
        ..FailoverOptions::default()
    }
}

fn echo(rt: &tokio::runtime::Runtime, client: &mut FailoverClient, text: &str) -> Served {
    rt.block_on(client.call_served("echo", vec![json!(text)], Map::new()))
        .unwrap_or_else(|e| panic!("echo through the failover client failed: {e}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn urls(nodes: &[Node]) -> Vec<String> {
    sorted(nodes.iter().map(|n| n.url().to_string()).collect())
}

fn client_urls(client: &FailoverClient) -> Vec<String> {
    sorted(
        client
            .endpoints()
            .urls()
            .into_iter()
            .map(str::to_string)
            .collect(),
    )
}

/// Refreshes with `refresh` until the client knows every node's URL (the
/// catalog may lag the mesh by a gossip round). Bounded by [`CONVERGE`].
fn learn_all(
    rt: &tokio::runtime::Runtime,
    client: &mut FailoverClient,
    nodes: &[Node],
    what: &str,
    refresh: impl Fn(&mut FailoverClient) -> Result<usize, ClientError>,
) {
    let want = urls(nodes);
    let deadline = Instant::now() + CONVERGE;
    let mut last = Ok(0);
    while Instant::now() < deadline {
        last = refresh(client);
        if client_urls(client) == want {
            return;
        }
        rt.block_on(tokio::time::sleep(Duration::from_millis(200)));
    }
    panic!(
        "the client did not learn every node from {what} within {CONVERGE:?}: knows {:?}, want {want:?} (last refresh: {last:?})",
        client_urls(client)
    );
}

/// Seeded with node A only, the client learns B and C from `cluster_map_v2`;
/// A is killed; the next call is served by B or C, on its second attempt,
/// within [`FAILOVER_BOUND`]. An RPC error answer afterwards does not move
/// the client.
#[test]
fn learns_urls_from_cluster_map_and_fails_over_when_its_node_is_killed() {
    let mut nodes = start_cluster("fo-map", 3, |_| Vec::new());
    if let Err(e) = wait_for_mesh(&nodes, CONVERGE) {
        panic!("precondition: {e}");
    }
    let rt = runtime();
    let a = nodes[0].url().to_string();
    let mut client = FailoverClient::new([a.as_str()], options()).expect("a valid seed");
    let first = echo(&rt, &mut client, "before");
    assert_eq!(first.value, json!("before"));
    assert_eq!((first.url.as_str(), first.attempts), (a.as_str(), 1));

    learn_all(&rt, &mut client, &nodes, "cluster_map_v2", |c| {
        rt.block_on(c.refresh_from_cluster_map(Map::new()))
    });
    assert_eq!(
        client.endpoints().urls()[0],
        a,
        "the seed stays first in rotation order"
    );

    nodes[0].kill();
    let killed_at = Instant::now();
    let after = echo(&rt, &mut client, "after");
    let took = killed_at.elapsed();
    assert_eq!(after.value, json!("after"));
    assert_ne!(after.url, a, "the killed node cannot have answered");
    assert!(
        urls(&nodes[1..]).contains(&after.url),
        "served by {} which is not a live node of {:?}",
        after.url,
        urls(&nodes[1..])
    );
    assert_eq!(
        after.attempts, 2,
        "one attempt on the dead node, then a live one"
    );
    assert!(
        took < FAILOVER_BOUND,
        "failover took {took:?} (bound {FAILOVER_BOUND:?})"
    );
    assert_eq!(client.served_by(), Some(after.url.as_str()));
    eprintln!(
        "failover from {a} to {} took {took:?} after SIGKILL",
        after.url
    );

    // The dead URL backs off; calls stick to the node that answered.
    let dead = client
        .endpoints()
        .list()
        .iter()
        .find(|e| e.url == a)
        .expect("the seed is kept");
    assert_eq!(dead.failures, 1);
    assert!(dead.retry_at.is_some());
    let again = echo(&rt, &mut client, "again");
    assert_eq!(
        (again.url.as_str(), again.attempts),
        (after.url.as_str(), 1)
    );

    // An error answer is returned as is, from the same node, and counts as
    // the node being alive: no failover.
    let err = rt
        .block_on(client.call("no_such_function", Vec::new(), Map::new()))
        .expect_err("an unknown command is an error answer");
    match err {
        ClientError::Rpc { code, .. } => assert_eq!(code, 1001, "{err}"),
        other => panic!("expected RPC error 1001, got {other}"),
    }
    assert_eq!(client.served_by(), Some(after.url.as_str()));
    let live = client
        .endpoints()
        .list()
        .iter()
        .find(|e| e.url == after.url)
        .expect("the serving node is listed");
    assert_eq!(live.failures, 0);
}

/// Seeded with node B only, the client learns A and C from the `ingress`
/// hints of `summary_query` (a stock node lists its own commands as
/// functions, so the summary has items and therefore ingress URLs); B is
/// killed and the next call is served elsewhere.
#[test]
fn learns_urls_from_summary_ingress_and_fails_over() {
    let mut nodes = start_cluster("fo-sum", 3, |_| Vec::new());
    if let Err(e) = wait_for_mesh(&nodes, CONVERGE) {
        panic!("precondition: {e}");
    }
    let rt = runtime();
    let b = nodes[1].url().to_string();
    let mut client = FailoverClient::new([b.as_str()], options()).expect("a valid seed");
    learn_all(&rt, &mut client, &nodes, "summary_query ingress", |c| {
        rt.block_on(c.refresh_from_summary(Map::new()))
    });
    assert_eq!(echo(&rt, &mut client, "x").url, b);

    nodes[1].kill();
    let killed_at = Instant::now();
    let after = echo(&rt, &mut client, "y");
    assert_ne!(after.url, b);
    assert_eq!(after.attempts, 2);
    assert!(killed_at.elapsed() < FAILOVER_BOUND);
}

/// A seed that is already dead is skipped on the first call; when every
/// node is dead the call gives up with `Unavailable` within its budget
/// (bounded attempts, no endless loop).
#[test]
fn dead_seed_is_skipped_and_an_all_dead_call_is_bounded() {
    let mut gone = Node::start(["--cluster-id", "fo-dead", "--name", "gone"]);
    let dead_url = gone.url().to_string();
    gone.kill();
    let mut live = Node::start(["--cluster-id", "fo-dead", "--name", "live"]);
    let rt = runtime();
    let opts = FailoverOptions {
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        call_budget: Duration::from_secs(6),
        ..FailoverOptions::default()
    };
    let budget = opts.call_budget;
    let mut client =
        FailoverClient::new([dead_url.as_str(), live.url()], opts).expect("valid seeds");
    let served = echo(&rt, &mut client, "hello");
    assert_eq!(
        (served.url.as_str(), served.attempts),
        (live.url(), 2),
        "the dead seed is tried first, then the live one"
    );

    live.kill();
    let started = Instant::now();
    let err = rt
        .block_on(client.call("echo", vec![json!("nobody")], Map::new()))
        .expect_err("no node is alive");
    let took = started.elapsed();
    match &err {
        ClientError::Unavailable { tried, .. } => {
            assert!(
                !tried.is_empty() && tried.len() <= 3,
                "attempts are bounded: {err}"
            );
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    assert!(
        took <= budget + Duration::from_secs(1),
        "gave up after {took:?}, budget {budget:?}"
    );
}
