use serde_json::json;

use super::*;
use crate::api::testutil::*;
use crate::catalog::scope::Scope;

/// Functions with summaries as mpreg-rs nodes attach them, on this node and
/// on `ws://n2:1`, plus one foreign entry without a summary.
fn fixture() -> Fixture {
    let mut fx = Fixture::new();
    fx.add(node("ws://n2:1", CLUSTER));
    let mut add = |mut f: FunctionEndpoint, summary: Option<&str>| {
        rpc_spec::attach_summary(&mut f, summary);
        fx.add(f);
    };
    add(func("echo", "1.0.0", ME, CLUSTER), None);
    add(func("catalog_query", "1.0.0", ME, CLUSTER), None);
    add(
        func("svc.alpha.one", "1.0.0", ME, CLUSTER).with_tags(["alpha"]),
        Some("The first one."),
    );
    add(
        func("svc.alpha.one", "2.0.0", "ws://n2:1", CLUSTER)
            .with_tags(["alpha", "beta"])
            .with_scope(Scope::Region),
        Some("The first one, again."),
    );
    add(
        func("svc2.alpha.two", "1.0.0", "ws://n2:1", CLUSTER),
        Some("Quote service."),
    );
    fx.add(func("svc.foreign.fn", "1.0.0", "ws://n2:1", CLUSTER));
    fx
}

fn names(res: &Value) -> Vec<String> {
    strings(res, "items", "/identity/name")
}

#[test]
fn rpc_list_items_and_namespace_boundary() {
    let fx = fixture();
    let res = fx.ok("rpc_list", json!({"namespace": "svc"}));
    assert_eq!(
        names(&res),
        ["svc.alpha.one", "svc.alpha.one", "svc.foreign.fn"]
    );
    assert_eq!(res["generated_at"], json!(NOW));
    let item = &res["items"][0];
    assert_eq!(item["namespace"], "svc.alpha");
    assert_eq!(item["node_id"], ME);
    assert_eq!(item["cluster_id"], CLUSTER);
    assert_eq!(item["resources"], json!([]));
    assert_eq!(item["tags"], json!(["alpha"]));
    assert_eq!(item["scope"], "zone");
    assert_eq!(item["summary"]["summary"], "The first one.");
    assert_eq!(item["spec_digest"], item["summary"]["spec_digest"]);
    // The foreign entry has no summary and no digest; echo no namespace.
    let foreign = &res["items"][2];
    assert!(foreign.get("summary").is_none() && foreign.get("spec_digest").is_none());
    let res = fx.ok("rpc_list", json!({"function_name": "echo"}));
    assert!(res["items"][0].get("namespace").is_none());
    assert_eq!(res["items"][0]["resources"], json!([]));
}

#[test]
fn rpc_list_filters_and_query() {
    let fx = fixture();
    let list = |req: Value| names(&fx.ok("rpc_list", req));
    assert_eq!(list(json!({"query": "QUOTE"})), ["svc2.alpha.two"]);
    assert_eq!(
        list(json!({"query": "first one"})),
        ["svc.alpha.one", "svc.alpha.one"]
    );
    assert_eq!(list(json!({"query": "alpha.t"})), ["svc2.alpha.two"]);
    assert_eq!(list(json!({"query": "catalog_q"})), ["catalog_query"]);
    assert_eq!(list(json!({"tags": ["beta"]})), ["svc.alpha.one"]);
    assert_eq!(list(json!({"scope": "region"})), ["svc.alpha.one"]);
    assert_eq!(
        list(json!({"scope": "local", "namespace": "svc"})),
        ["svc.alpha.one"]
    );
    assert_eq!(
        strings(
            &fx.ok(
                "rpc_list",
                json!({"function_name": "svc.alpha.one", "version_constraint": ">1.0"})
            ),
            "items",
            "/identity/version"
        ),
        ["2.0.0"]
    );
    assert_eq!(
        list(json!({"node_id": "ws://n2:1", "function_id": "svc2.alpha.two"})),
        ["svc2.alpha.two"]
    );
    // Query and paging together: keyset over the filtered list.
    let first = fx.ok("rpc_list", json!({"query": "alpha", "limit": 2}));
    assert_eq!(names(&first), ["svc.alpha.one", "svc.alpha.one"]);
    let token = first["next_page_token"].as_str().unwrap();
    let second = fx.ok(
        "rpc_list",
        json!({"query": "alpha", "limit": 2, "page_token": token}),
    );
    assert_eq!(names(&second), ["svc2.alpha.two"]);
    assert!(second.get("next_page_token").is_none());
    fx.err("rpc_list", json!({"query": 1}));
    fx.err("rpc_list", json!({"scope": "x"}));
    fx.err("rpc_list", json!({"version_constraint": "~1"}));
}

#[test]
fn rpc_describe_modes() {
    let fx = fixture();
    // auto (default), detail full: specs for mpreg-rs entries, an error for
    // the foreign one.
    let res = fx.ok("rpc_describe", json!({"namespace": "svc"}));
    assert_eq!(
        names(&res),
        ["svc.alpha.one", "svc.alpha.one", "svc.foreign.fn"]
    );
    let spec = &res["items"][0]["spec"];
    assert_eq!(spec["identity"]["name"], "svc.alpha.one");
    assert_eq!(spec["doc"]["summary"], "The first one.");
    assert_eq!(spec["spec_digest"], res["items"][0]["spec_digest"]);
    assert!(res["items"][2].get("spec").is_none());
    assert_eq!(res["errors"].as_array().unwrap().len(), 1);
    assert_eq!(res["errors"][0]["node_id"], "ws://n2:1");
    assert!(res["errors"][0]["error"]
        .as_str()
        .unwrap()
        .contains("svc.foreign.fn"));
    // catalog: no errors.
    let res = fx.ok(
        "rpc_describe",
        json!({"namespace": "svc", "mode": "catalog"}),
    );
    assert_eq!(res["errors"], json!([]));
    // summary detail: no specs, no errors.
    let res = fx.ok(
        "rpc_describe",
        json!({"namespace": "svc", "detail_level": "summary"}),
    );
    assert!(res["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.get("spec").is_none()));
    assert_eq!(res["errors"], json!([]));
    // local / node / rpc_describe_local: this node's functions only.
    for (fun, req) in [
        ("rpc_describe", json!({"mode": "local"})),
        ("rpc_describe", json!({"mode": "NODE"})),
        ("rpc_describe_local", json!({})),
        ("rpc_describe_local", json!({"mode": "catalog"})),
    ] {
        let res = fx.ok(fun, req);
        assert_eq!(
            names(&res),
            ["catalog_query", "echo", "svc.alpha.one"],
            "{fun}"
        );
        assert!(res["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("spec").is_some()));
        assert_eq!(res["errors"], json!([]));
    }
    let res = fx.ok(
        "rpc_describe",
        json!({"mode": "local", "node_id": "ws://n2:1"}),
    );
    assert_eq!(res["items"], json!([]));
    let res = fx.ok(
        "rpc_describe",
        json!({"mode": "scatter", "function_names": ["svc2.alpha.two"]}),
    );
    assert_eq!(names(&res), ["svc2.alpha.two"]);
    let echo_spec = &fx.ok("rpc_describe", json!({"function_ids": "echo"}))["items"][0]["spec"];
    assert_eq!(echo_spec["parameters"].as_array().unwrap().len(), 1);
    let digest = fx.ok("rpc_list", json!({"function_name": "svc2.alpha.two"}))["items"][0]
        ["spec_digest"]
        .clone();
    let res = fx.ok("rpc_describe", json!({"spec_digests": [digest]}));
    assert_eq!(names(&res), ["svc2.alpha.two"]);
    assert_eq!(
        fx.err("rpc_describe", json!({"mode": "Everywhere"})),
        "Unsupported rpc_describe mode: Everywhere"
    );
    fx.err("rpc_describe", json!({"max_nodes": -1}));
    fx.err("rpc_describe", json!({"timeout_seconds": "soon"}));
    fx.err("rpc_describe", json!({"function_names": [1]}));
    fx.ok(
        "rpc_describe",
        json!({"detail_level": "weird", "max_nodes": 3, "timeout_seconds": 0.5}),
    );
}

#[test]
fn rpc_report_counts() {
    let fx = fixture();
    let res = fx.ok("rpc_report", json!(null));
    assert_eq!(res["total_functions"], 6);
    assert_eq!(
        res["namespace_counts"],
        json!([{"key": "", "count": 2}, {"key": "svc.alpha", "count": 2}, {"key": "svc.foreign", "count": 1}, {"key": "svc2.alpha", "count": 1}])
    );
    assert_eq!(res["cluster_counts"], json!([{"key": CLUSTER, "count": 6}]));
    assert_eq!(
        res["tag_counts"],
        json!([{"key": "alpha", "count": 2}, {"key": "beta", "count": 1}])
    );
    let res = fx.ok("rpc_report", json!({"namespace": "svc", "scope": "region"}));
    assert_eq!(res["total_functions"], 1);
    let res = fx.ok("rpc_report", json!({"scope": "local"}));
    assert_eq!(res["total_functions"], 3);
    fx.err("rpc_report", json!({"scope": "nowhere"}));
    fx.err("rpc_report", json!({"namespace": false}));
}
