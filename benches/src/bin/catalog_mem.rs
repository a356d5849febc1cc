//! Catalog index memory per entry, measured with a counting global
//! allocator: heap bytes of the entries alone, held by a [`Catalog`]
//! (entries plus every index; the difference is the index)
//! and by a whole [`Node`] (catalog plus the replica's per-origin versions)
//! after inserting N entries, divided by N. The fixture is
//! `mpreg_benches::fixtures` (100 entries per origin, half functions, half
//! services), the same catalog the criterion benches query.
//!
//! Also prints the entry's own size on the wire (MPREG JSON item, fabric
//! CBOR) for scale. Time to build is printed for information only.

use std::time::Instant;

use clap::Parser;
use mpreg_benches::alloc::{self, Counting};
use mpreg_benches::fixtures;
use mpreg_core::wire::fabric::{self, FabricMsg};

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Parser, Debug)]
#[command(about = "Heap bytes per catalog entry")]
struct Args {
    /// Catalog sizes (entries), multiples of 100.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    sizes: Vec<usize>,
    /// Also write `key=value` figures to this file (for the report script).
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
}

const PER_ORIGIN: usize = 100;

fn main() {
    let args = Args::parse();
    let sample: Vec<_> = fixtures::origin_entries(3, PER_ORIGIN, fixtures::WALL);
    let json: usize = sample.iter().map(|e| e.to_json_string().len()).sum();
    let cbor = fabric::encode(&FabricMsg::Delta(fixtures::delta(3, 0, sample.clone(), 1))).len();
    println!("### Catalog memory per entry (counting allocator)\n");
    println!(
        "Fixture: {PER_ORIGIN} entries per origin, half functions (name, id, version, 1–2 resources, 2 tags, namespace), half services (name, namespace, protocol, port, 1 target, 2 tags). One entry is {:.0} B as MPREG JSON and {:.0} B inside a fabric CBOR delta.\n",
        json as f64 / sample.len() as f64,
        cbor as f64 / sample.len() as f64
    );
    println!("`entries` B/entry is the entries alone (a plain `Vec<Entry>` of the same fixture); the index is the `Catalog` minus that: what ordering, lookups and expiry cost on top of the data.\n");
    println!("| entries | `entries` B/entry | `Catalog` heap MiB | `Catalog` B/entry | index B/entry | `Node` heap MiB (catalog + replica) | `Node` B/entry | build catalog ms | fill node via fabric ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut summary = String::new();
    for &n in &args.sizes {
        let origins = (n / PER_ORIGIN).max(1);
        let entries = origins * PER_ORIGIN;

        let before = alloc::live_bytes();
        let plain: Vec<_> = (0..origins)
            .flat_map(|o| fixtures::origin_entries(o, PER_ORIGIN, fixtures::WALL))
            .collect();
        let plain_bytes = alloc::live_bytes().saturating_sub(before);
        assert_eq!(plain.len(), entries);
        drop(plain);

        let before = alloc::live_bytes();
        let t = Instant::now();
        let catalog = fixtures::catalog(origins, PER_ORIGIN);
        let build_ms = t.elapsed().as_secs_f64() * 1e3;
        let cat_bytes = alloc::live_bytes().saturating_sub(before);
        assert_eq!(catalog.len(), entries);
        drop(catalog);

        let before = alloc::live_bytes();
        let t = Instant::now();
        let (node, _) = fixtures::filled_node(origins, PER_ORIGIN);
        let fill_ms = t.elapsed().as_secs_f64() * 1e3;
        let node_bytes = alloc::live_bytes().saturating_sub(before);
        let held = node.catalog().len();
        drop(node);

        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        let index_bpe = cat_bytes.saturating_sub(plain_bytes) as f64 / entries as f64;
        summary.push_str(&format!(
            "catalog_mem.n{entries}.catalog_bpe={:.0}\ncatalog_mem.n{entries}.index_bpe={index_bpe:.0}\ncatalog_mem.n{entries}.node_bpe={:.0}\n",
            cat_bytes as f64 / entries as f64,
            node_bytes as f64 / held.max(1) as f64
        ));
        println!(
            "| {entries} | {:.0} | {:.1} | {:.0} | {index_bpe:.0} | {:.1} | {:.0} | {build_ms:.0} | {fill_ms:.0} |",
            plain_bytes as f64 / entries as f64,
            mib(cat_bytes),
            cat_bytes as f64 / entries as f64,
            mib(node_bytes),
            node_bytes as f64 / held.max(1) as f64,
        );
    }
    println!();
    if let Some(path) = &args.summary {
        if let Err(e) = std::fs::write(path, summary) {
            eprintln!("catalog_mem: cannot write {}: {e}", path.display());
        }
    }
}
