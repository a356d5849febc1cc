//! Answers one DNS bench question (`fixtures::dns`) many times, for a
//! count of instructions that host noise cannot move:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='mpreg_core::dns::responder::respond' \
//!     target/release/dns_cost --case dns_answer_srv_with_glue --answers 2000
//! ```
//!
//! counts only the instructions of `respond` (catalog building left out);
//! divided by `--answers`, that is the cost of one answer. `benches/dns.rs`
//! times the same calls with criterion. Checks the answer's response code
//! once, so a count never describes a different answer. Allocates with
//! mimalloc, as the `mpreg` binary does.
//!
//! With `--batches N` it times instead: N batches of `--answers` answers
//! by the wall clock, then prints the fastest and the median batch's time
//! per answer. On a shared host a neighbour slows whole stretches of
//! seconds (by 1.3–1.8x on ours), and criterion's mean takes them in; the
//! fastest of many short batches is the answer's own cost, the median what
//! the host gave on the day.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use hickory_proto::op::Message;
use mpreg_benches::fixtures::dns;
use mpreg_core::catalog::Entry;
use mpreg_core::dns::{respond, DnsConfig, DnsTransport, Viewer};
use mpreg_core::Settings;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Answer one DNS bench question many times (for callgrind)")]
struct Args {
    /// Bench id of the question (`dns_answer_srv_with_glue`, `dns_answer_a`,
    /// `dns_answer_nxdomain_with_soa`).
    #[arg(long)]
    case: String,
    /// Number of answers (per batch with `--batches`).
    #[arg(long, default_value_t = 2000)]
    answers: u32,
    /// Time this many batches of `--answers` answers instead of only
    /// answering (0: no timing, for callgrind).
    #[arg(long, default_value_t = 0)]
    batches: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(case) = dns::CASES.iter().find(|c| c.id == args.case) else {
        let ids: Vec<&str> = dns::CASES.iter().map(|c| c.id).collect();
        eprintln!("unknown case {:?}; one of {ids:?}", args.case);
        return ExitCode::from(2);
    };
    let catalog = dns::catalog();
    let cfg = DnsConfig::from_settings(&Settings::default(), "ws://127.0.0.1:6666");
    let viewer = Viewer::new("c1", None);
    let all = |_: &Entry| true;
    let query = dns::query(case);
    let answer = || {
        respond(
            &query,
            DnsTransport::Udp,
            &viewer,
            &catalog,
            &cfg,
            dns::NOW,
            &all,
        )
    };
    let rcode = answer()
        .bytes
        .and_then(|b| Message::from_vec(&b).ok())
        .map(|m| m.metadata.response_code);
    if rcode != Some(case.rcode) {
        eprintln!("{}: answered {rcode:?}, expected {:?}", case.id, case.rcode);
        return ExitCode::FAILURE;
    }
    if args.batches == 0 || args.answers == 0 {
        for _ in 1..args.answers {
            black_box(answer());
        }
        println!("{}: {} answers", case.id, args.answers);
        return ExitCode::SUCCESS;
    }
    let mut per_answer: Vec<f64> = (0..args.batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..args.answers {
                black_box(answer());
            }
            start.elapsed().as_nanos() as f64 / f64::from(args.answers)
        })
        .collect();
    per_answer.sort_by(f64::total_cmp);
    let fastest = per_answer[0];
    let median = per_answer[per_answer.len() / 2];
    println!(
        "{}: fastest {fastest:.0} ns, median {median:.0} ns per answer ({} batches of {})",
        case.id, args.batches, args.answers
    );
    ExitCode::SUCCESS
}
