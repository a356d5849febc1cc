//! `chaos`: fault injection and load under churn against real `mpreg server`
//! processes on 127.0.0.1. `cargo run -p mpreg-tests --bin chaos -- --help`.
//! Prints a markdown report; exits 1 when an invariant fails, 2 on bad
//! arguments or when the cluster cannot be set up.

use std::process::ExitCode;
use std::time::Duration;

use mpreg_tests::chaos::{run, Options};

const HELP: &str = "\
chaos: real mpreg nodes on 127.0.0.1 (a hub, a resolver, members), each
behind a TCP proxy the harness owns, under query load.

Default mode injects faults (hub restart, resolver restart, kill -9 of a
member and its replacement, partition of a member through the proxies) and
after each one waits for every live node to list exactly the live peers and
every live registration, and nothing of a departed node.
--churn instead withdraws and registers endpoints (10 % per minute, faster
in short runs) under queries, watches and DNS queries, then checks nothing
was lost, every watcher saw a consistent sequence (or an explicit resync),
and each node's RSS stayed under the limit.

USAGE: chaos [--churn] [--duration SECS] [--seed N] [--nodes N]
             [--runtime tokio|mio] [--endpoints N] [--converge SECS]
             [--rss-limit-mib N]

  --duration SECS     how long faults / churn go on (default 60)
  --seed N            seed of every random choice (default 1)
  --nodes N           nodes in all, at least 4 (default 5)
  --runtime R         tokio or mio (default: $MPREG_TEST_RUNTIME or tokio)
  --churn             load-under-churn mode
  --endpoints N       registered endpoints in churn mode (default 100)
  --converge SECS     bound on reconvergence after a fault (default 30)
  --rss-limit-mib N   largest acceptable node RSS in churn mode (default 512)
";

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options::default();
    if let Some(r) = mpreg_tests::test_runtime() {
        o.runtime = r;
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .cloned()
        };
        let number = |v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--churn" => o.churn = true,
            "--duration" => o.duration = Duration::from_secs(number(value()?)?),
            "--seed" => o.seed = number(value()?)?,
            "--nodes" => o.nodes = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?,
            "--endpoints" => {
                o.endpoints = usize::try_from(number(value()?)?).map_err(|e| e.to_string())?
            }
            "--converge" => o.converge = Duration::from_secs(number(value()?)?),
            "--rss-limit-mib" => o.rss_limit_mib = number(value()?)?,
            "--runtime" => {
                let r = value()?;
                if r != "tokio" && r != "mio" {
                    return Err(format!("--runtime must be tokio or mio, not {r:?}"));
                }
                o.runtime = r;
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if o.nodes > 32 || o.endpoints > 100_000 {
        return Err("--nodes is capped at 32 and --endpoints at 100000".into());
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("chaos: {opts:?}");
    match run(&opts) {
        Ok((report, ok)) => {
            println!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("chaos: setup failed: {e}");
            ExitCode::from(2)
        }
    }
}
