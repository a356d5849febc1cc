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
//! once, so a count never describes a different answer.

use std::hint::black_box;
use std::process::ExitCode;

use clap::Parser;
use hickory_proto::op::Message;
use mpreg_benches::fixtures::dns;
use mpreg_core::catalog::Entry;
use mpreg_core::dns::{respond, DnsConfig, DnsTransport, Viewer};
use mpreg_core::Settings;

#[derive(Parser, Debug)]
#[command(about = "Answer one DNS bench question many times (for callgrind)")]
struct Args {
    /// Bench id of the question (`dns_answer_srv_with_glue`, `dns_answer_a`,
    /// `dns_answer_nxdomain_with_soa`).
    #[arg(long)]
    case: String,
    /// Number of answers.
    #[arg(long, default_value_t = 2000)]
    answers: u32,
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
    for _ in 1..args.answers {
        black_box(answer());
    }
    println!("{}: {} answers", case.id, args.answers);
    ExitCode::SUCCESS
}
