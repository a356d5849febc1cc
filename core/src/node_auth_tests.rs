//! Fabric authentication on the node: two nodes wired back to back (a
//! quinn-style `Pair`) or one node fed hand-made frames, through `handle`.

use super::*;
use crate::config::SecretText;
use crate::fabric::auth::Refusal;
use crate::time::Instant;

const T0: f64 = 1_700_000_000.0;
const KEY: &str = "0123456789abcdef-cluster";
const OTHER_KEY: &str = "0123456789abcdef-intruder";

fn at(secs: f64) -> Now {
    Now::new(Instant::from_nanos((secs * 1e9) as u64), T0 + secs)
}

fn node(port: u16, key: Option<&str>, seed: u64) -> Node {
    let settings = Settings {
        host: "127.0.0.1".into(),
        port,
        cluster_id: "c1".into(),
        fabric_auth_key: key.map(SecretText::new),
        ..Settings::default()
    };
    let mut n = Node::new(settings, at(0.0), seed).expect("valid settings");
    while n.poll_output().is_some() {}
    n
}

/// Node `a` dialled node `b`: `a` knows the link as conn 1, `b` as conn 2.
struct Pair {
    a: Node,
    b: Node,
    t: f64,
    /// Closes each side asked for: `(side, code, reason)`.
    closes: Vec<(char, u16, String)>,
    /// Every fabric frame `a` sent, decoded.
    a_sent: Vec<FabricMsg>,
}

impl Pair {
    fn new(a_key: Option<&str>, b_key: Option<&str>) -> Pair {
        let mut p = Pair {
            a: node(7001, a_key, 1),
            b: node(7002, b_key, 2),
            t: 0.0,
            closes: vec![],
            a_sent: vec![],
        };
        let now = p.now();
        p.a.handle(
            now,
            Input::Connected {
                conn: 1,
                url: "ws://127.0.0.1:7002".into(),
            },
        );
        p.b.handle(
            now,
            Input::Accepted {
                conn: 2,
                kind: ConnKind::Fabric,
                headers: vec![],
                peer_addr: Some("127.0.0.1:40000".parse().expect("address")),
                tls: false,
            },
        );
        p.run();
        p
    }

    fn now(&mut self) -> Now {
        self.t += 0.001;
        at(self.t)
    }

    /// Moves frames both ways until neither side has anything to say
    /// (bounded: a conversation that does not end fails the test).
    fn run(&mut self) {
        for _ in 0..100 {
            let from_a: Vec<Output> = std::iter::from_fn(|| self.a.poll_output()).collect();
            let from_b: Vec<Output> = std::iter::from_fn(|| self.b.poll_output()).collect();
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            for o in &from_a {
                if let Output::Send {
                    frame: Frame::Binary(b),
                    ..
                } = o
                {
                    self.a_sent
                        .push(fwire::decode(b, usize::MAX).expect("own frame").msg);
                }
            }
            self.deliver('a', from_a);
            self.deliver('b', from_b);
        }
        panic!("the pair never went quiet");
    }

    fn deliver(&mut self, from: char, outs: Vec<Output>) {
        for o in outs {
            let now = self.now();
            let (to, conn) = match from {
                'a' => (&mut self.b, 2),
                _ => (&mut self.a, 1),
            };
            match o {
                Output::Send { frame, .. } => to.handle(now, Input::Frame { conn, frame }),
                Output::Close { reason, .. } => {
                    self.closes.push((from, reason.code, reason.reason));
                    to.handle(now, Input::Closed { conn });
                    let (me, my_conn) = match from {
                        'a' => (&mut self.a, 1),
                        _ => (&mut self.b, 2),
                    };
                    me.handle(now, Input::Closed { conn: my_conn });
                }
                _ => {}
            }
        }
    }
}

fn lists(n: &Node, url: &str) -> bool {
    n.peers.is_connected(url)
}

fn knows_node(n: &Node, url: &str) -> bool {
    n.catalog()
        .iter(EntryKind::Nodes)
        .any(|e| e.node_id() == url)
}

fn audit_reasons(n: &Node) -> Vec<(String, String, Option<String>)> {
    n.access_audit
        .ring()
        .iter()
        .map(|e| (e.event.clone(), e.reason.clone(), e.peer.clone()))
        .collect()
}

#[test]
fn nodes_with_the_same_key_gossip() {
    let p = Pair::new(Some(KEY), Some(KEY));
    assert!(p.closes.is_empty(), "{:?}", p.closes);
    assert!(lists(&p.a, "ws://127.0.0.1:7002") && lists(&p.b, "ws://127.0.0.1:7001"));
    assert!(knows_node(&p.a, "ws://127.0.0.1:7002") && knows_node(&p.b, "ws://127.0.0.1:7001"));
    assert_eq!(p.a.counters().fabric_auth_refused.total(), 0);
    assert_eq!(p.b.counters().fabric_auth_refused.total(), 0);
    // The proof went out before anything else but the Hello.
    assert!(matches!(
        p.a_sent[0],
        FabricMsg::Hello(Hello {
            challenge: Some(_),
            ..
        })
    ));
    assert!(matches!(p.a_sent[1], FabricMsg::Auth(_)));
}

#[test]
fn nodes_without_keys_gossip_as_before() {
    let p = Pair::new(None, None);
    assert!(p.closes.is_empty(), "{:?}", p.closes);
    assert!(knows_node(&p.a, "ws://127.0.0.1:7002") && knows_node(&p.b, "ws://127.0.0.1:7001"));
    assert!(matches!(
        p.a_sent[0],
        FabricMsg::Hello(Hello {
            challenge: None,
            ..
        })
    ));
    assert!(!p.a_sent.iter().any(|m| matches!(m, FabricMsg::Auth(_))));
}

#[test]
fn another_key_is_refused_counted_and_audited_on_both_sides() {
    let p = Pair::new(Some(KEY), Some(OTHER_KEY));
    assert!(!knows_node(&p.a, "ws://127.0.0.1:7002") && !knows_node(&p.b, "ws://127.0.0.1:7001"));
    assert!(!lists(&p.a, "ws://127.0.0.1:7002") && !lists(&p.b, "ws://127.0.0.1:7001"));
    for n in [&p.a, &p.b] {
        assert_eq!(n.counters().fabric_auth_refused.get(Refusal::Failed), 1);
        let audit = audit_reasons(n);
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(audit[0].0, "fabric_auth");
        assert_eq!(audit[0].1, "auth_failed");
    }
    assert_eq!(
        audit_reasons(&p.b)[0].2.as_deref(),
        Some("ws://127.0.0.1:7001")
    );
    assert!(p
        .closes
        .iter()
        .any(|(_, code, why)| *code == 1008 && why.contains("fabric_auth_key differs")));
    // No gossip crossed: nothing but Hello and the proof went out.
    assert!(p
        .a_sent
        .iter()
        .all(|m| matches!(m, FabricMsg::Hello(_) | FabricMsg::Auth(_))));
}

#[test]
fn a_keyed_node_refuses_a_keyless_one_and_the_keyless_one_says_why() {
    let p = Pair::new(None, Some(KEY));
    assert_eq!(p.b.counters().fabric_auth_refused.get(Refusal::Missing), 1);
    assert_eq!(
        p.a.counters().fabric_auth_refused.get(Refusal::Unexpected),
        1
    );
    assert!(!knows_node(&p.a, "ws://127.0.0.1:7002") && !knows_node(&p.b, "ws://127.0.0.1:7001"));
    assert!(p
        .closes
        .iter()
        .any(|(side, _, why)| *side == 'a' && why.contains("this node has no fabric_auth_key")));
}

/// A keyed node with one inbound fabric link (conn 9) and nothing sent yet.
fn accepted(key: &str) -> (Node, Vec<Output>) {
    let mut n = node(7003, Some(key), 3);
    n.handle(
        at(1.0),
        Input::Accepted {
            conn: 9,
            kind: ConnKind::Fabric,
            headers: vec![],
            peer_addr: Some("127.0.0.1:40001".parse().expect("address")),
            tls: false,
        },
    );
    let outs = std::iter::from_fn(|| n.poll_output()).collect();
    (n, outs)
}

fn closed_with(outs: &[Output]) -> Option<String> {
    outs.iter().find_map(|o| match o {
        Output::Close { conn: 9, reason } => Some(reason.reason.clone()),
        _ => None,
    })
}

#[test]
fn gossip_before_the_proof_closes_the_link() {
    let (mut n, greeting) = accepted(KEY);
    // Only the Hello went out: no STATUS, no digest.
    assert_eq!(greeting.len(), 1, "{greeting:?}");
    let status = fwire::encode(&FabricMsg::Resync);
    n.handle(
        at(1.1),
        Input::Frame {
            conn: 9,
            frame: Frame::Binary(status.into()),
        },
    );
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert_eq!(
        closed_with(&outs).as_deref(),
        Some(Refusal::Premature.detail())
    );
    assert_eq!(n.counters().fabric_auth_refused.get(Refusal::Premature), 1);
    assert_eq!(audit_reasons(&n)[0].2.as_deref(), Some("127.0.0.1:40001"));
}

#[test]
fn a_silent_peer_is_dropped_when_the_exchange_times_out() {
    let (mut n, _) = accepted(KEY);
    let deadline = at(1.0).mono + secs(n.settings().fabric_dial_timeout_seconds);
    assert!(n.poll_timeout().expect("deadline") <= deadline);
    n.handle(at(1.0).advanced(Duration::from_millis(10)), Input::Tick);
    let early: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert_eq!(closed_with(&early), None, "not before the deadline");
    let after = Now::new(
        deadline,
        T0 + 1.0 + n.settings().fabric_dial_timeout_seconds,
    );
    n.handle(after, Input::Tick);
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert_eq!(
        closed_with(&outs).as_deref(),
        Some(Refusal::Timeout.detail())
    );
    assert_eq!(n.counters().fabric_auth_refused.get(Refusal::Timeout), 1);
}

#[test]
fn a_recorded_proof_does_not_open_a_new_link() {
    // A passive listener recorded a's Hello and proof to b; replaying them on
    // a fresh link to b meets a fresh challenge.
    let p = Pair::new(Some(KEY), Some(KEY));
    let (hello, proof) = (p.a_sent[0].clone(), p.a_sent[1].clone());
    let mut b = p.b;
    let t = at(5.0);
    b.handle(
        t,
        Input::Accepted {
            conn: 9,
            kind: ConnKind::Fabric,
            headers: vec![],
            peer_addr: None,
            tls: false,
        },
    );
    for msg in [hello, proof] {
        b.handle(
            t,
            Input::Frame {
                conn: 9,
                frame: Frame::Binary(fwire::encode(&msg).into()),
            },
        );
    }
    let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
    assert_eq!(
        closed_with(&outs).as_deref(),
        Some(Refusal::Failed.detail())
    );
    assert_eq!(b.counters().fabric_auth_refused.get(Refusal::Failed), 1);
}

#[test]
fn a_second_hello_cannot_change_who_must_prove() {
    let (mut n, _) = accepted(KEY);
    let hello = |id: &str| {
        fwire::encode(&FabricMsg::Hello(Hello {
            node_id: id.into(),
            cluster_id: "c1".into(),
            instance_id: "01JCZ6D5V6W0000000000000AA".into(),
            challenge: Some(vec![7; 32]),
        }))
    };
    for id in ["ws://127.0.0.1:7010", "ws://127.0.0.1:7011"] {
        n.handle(
            at(1.1),
            Input::Frame {
                conn: 9,
                frame: Frame::Binary(hello(id).into()),
            },
        );
    }
    let outs: Vec<Output> = std::iter::from_fn(|| n.poll_output()).collect();
    assert_eq!(
        closed_with(&outs).as_deref(),
        Some(Refusal::Premature.detail())
    );
}

#[test]
fn a_refused_open_link_is_cleaned_up_when_it_closes() {
    // Nodes without a key; then a proof nobody asked for arrives on the
    // open, identified link: refused, and closing it forgets the peer.
    let mut p = Pair::new(None, None);
    assert!(lists(&p.b, "ws://127.0.0.1:7001"));
    let t = p.now();
    let stray = fwire::encode(&FabricMsg::Auth(AuthProof { proof: vec![0; 32] }));
    p.b.handle(
        t,
        Input::Frame {
            conn: 2,
            frame: Frame::Binary(stray.clone().into()),
        },
    );
    // A second stray frame on the closing link is ignored, not refused again.
    p.b.handle(
        t,
        Input::Frame {
            conn: 2,
            frame: Frame::Binary(stray.into()),
        },
    );
    let outs: Vec<Output> = std::iter::from_fn(|| p.b.poll_output()).collect();
    let closes = outs
        .iter()
        .filter(|o| matches!(o, Output::Close { conn: 2, .. }))
        .count();
    assert_eq!(closes, 1, "{outs:?}");
    assert_eq!(
        p.b.counters().fabric_auth_refused.get(Refusal::Unexpected),
        1
    );
    p.b.handle(t, Input::Closed { conn: 2 });
    assert!(
        !lists(&p.b, "ws://127.0.0.1:7001"),
        "closed link still listed"
    );
}
