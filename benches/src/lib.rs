//! Benchmarks and the scaling harness for mpreg-rs. The criterion benches
//! live in `benches/`; shared fixtures live here.

/// The exact `catalog_query` frame MPREG's Python client sends
/// (`reference/client_protocol.md` §1.3), used by the codec benches.
pub const CATALOG_QUERY_FRAME: &str = r#"{"role":"rpc","cmds":[{"name":"catalog_query","fun":"catalog_query","args":[{"entry_type":"nodes"}],"kwargs":{},"locs":[],"function_id":null,"version_constraint":null,"target_cluster":null,"routing_topic":null}],"u":"01JD3K7Q6Z8T1V2W3X4Y5Z6A7B","return_intermediate_results":false,"intermediate_result_callback_topic":null,"include_execution_summary":false,"debug_mode":false}"#;
