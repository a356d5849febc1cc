//! A node started with `--advertised-url` is dialled there by peers that
//! learned it through gossip, not at its bind address: node B sits behind
//! a harness proxy and advertises the proxy; A has B's proxy as its seed;
//! C only knows A. Both A's and C's links to B must go through the proxy
//! (before the fix, C dialled B's bind address and bypassed it). Nodes
//! honour `MPREG_TEST_RUNTIME`.

use std::time::Duration;

use mpreg_tests::chaos::proxy::Net;
use mpreg_tests::{wait_for_mesh, wait_until, Node};

#[test]
fn peers_dial_the_advertised_url() {
    let net = Net::default();
    let proxy = net.proxy("b", 0).expect("a loopback proxy");
    let b = Node::start([
        "--cluster-id",
        "adv",
        "--name",
        "b",
        "--advertised-url",
        &proxy.url(),
    ]);
    proxy.retarget(b.port());
    let a = Node::start(["--cluster-id", "adv", "--name", "a", "--peer", &proxy.url()]);
    let c = Node::start(["--cluster-id", "adv", "--name", "c", "--peer", a.url()]);
    let nodes = [a, b, c];
    wait_for_mesh(&nodes, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    // A's and C's links to B: two connections through the proxy (B's own
    // dials to A and C go straight to them).
    let through = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        net.link_counts().0 >= 2
    });
    assert!(
        through,
        "only {} connection(s) to B went through the proxy it advertises",
        net.link_counts().0
    );
}
