//! Charts for BENCHMARKS.md from the scaling harness's summary file
//! (`scaling --summary FILE`, lines `scaling.gi<interval>.n<N>.<key>=<value>`):
//!
//! - `convergence.svg`: time to 99.99 % discovery against N, per gossip
//!   interval, beside Serf's model curve at the same interval;
//! - `bandwidth.svg`: steady fabric kbit/s per node against N, per gossip
//!   interval, beside Serf's model maximum.
//!
//! Sizes the harness skipped or cut have no point; a chart with no data at
//! all is still written (axes and model curves), so the report never links
//! a missing file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use mpreg_benches::serf;
use plotters::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "SVG charts of the scaling harness summary")]
struct Args {
    /// The harness's `--summary` file.
    #[arg(long)]
    summary: PathBuf,
    /// Directory the SVG files are written to.
    #[arg(long)]
    out_dir: PathBuf,
}

/// interval → N → key → value.
type Figures = BTreeMap<String, BTreeMap<usize, BTreeMap<String, f64>>>;

fn parse(text: &str) -> Figures {
    let mut out = Figures::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        // The interval has a dot of its own (`gi0.2`): split at `.n<N>.`.
        let Some(rest) = name.strip_prefix("scaling.gi") else {
            continue;
        };
        let Some((gi, n, key)) = split_size(rest) else {
            continue;
        };
        out.entry(gi.to_string())
            .or_default()
            .entry(n)
            .or_default()
            .insert(key.to_string(), value);
    }
    out
}

/// `<interval>.n<N>.<key>` → its three parts.
fn split_size(rest: &str) -> Option<(&str, usize, &str)> {
    rest.match_indices(".n").find_map(|(at, _)| {
        let after = &rest[at + 2..];
        let (digits, key) = after.split_once('.')?;
        let n = digits.parse().ok()?;
        Some((&rest[..at], n, key))
    })
}

/// `(N, value)` points of `key` for one interval, in N order.
fn series(by_n: &BTreeMap<usize, BTreeMap<String, f64>>, key: &str) -> Vec<(f64, f64)> {
    by_n.iter()
        .filter_map(|(n, kv)| kv.get(key).map(|v| (*n as f64, *v)))
        .collect()
}

const SIZES: (f64, f64) = (10.0, 1000.0);
const PALETTE: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];

type Plot = Result<(), Box<dyn std::error::Error>>;

/// One chart: our measured series and the model's, per interval.
fn chart(
    path: &Path,
    caption: &str,
    y_desc: &str,
    figures: &Figures,
    ours: impl Fn(&BTreeMap<usize, BTreeMap<String, f64>>) -> Vec<(f64, f64)>,
    model: impl Fn(usize, f64) -> f64,
) -> Plot {
    let intervals: Vec<(&String, f64)> = figures
        .keys()
        .filter_map(|gi| gi.parse::<f64>().ok().map(|v| (gi, v)))
        .collect();
    let model_points = |gi: f64| -> Vec<(f64, f64)> {
        [10usize, 20, 30, 50, 100, 200, 300, 500, 1000]
            .iter()
            .map(|&n| (n as f64, model(n, gi)))
            .collect()
    };
    let mut y_max: f64 = 1.0;
    for (gi, v) in &intervals {
        for (_, y) in ours(&figures[*gi]).into_iter().chain(model_points(*v)) {
            if y.is_finite() {
                y_max = y_max.max(y);
            }
        }
    }
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((SIZES.0..SIZES.1).log_scale(), 0.0..y_max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("cluster size N (log scale)")
        .y_desc(y_desc)
        .draw()?;
    for (i, (gi, v)) in intervals.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = ours(&figures[*gi]);
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("mpreg-rs, gossip {v} s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
        chart
            .draw_series(LineSeries::new(model_points(*v), color.mix(0.5)))?
            .label(format!("Serf model, gossip {v} s"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.5)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.summary) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("plot: cannot read {}: {e}", args.summary.display());
            std::process::exit(1);
        }
    };
    let figures = parse(&text);
    if let Err(e) = std::fs::create_dir_all(&args.out_dir) {
        eprintln!("plot: cannot create {}: {e}", args.out_dir.display());
        std::process::exit(1);
    }
    let results = [
        (
            "convergence.svg",
            chart(
                &args.out_dir.join("convergence.svg"),
                "Cold start: seconds to 99.99 % of (node, peer) pairs",
                "seconds (virtual)",
                &figures,
                |by_n| series(by_n, "t9999"),
                |n, gi| serf::seconds_to_converge(n, gi, serf::DEFAULT_FANOUT, 0.0),
            ),
        ),
        (
            "bandwidth.svg",
            chart(
                &args.out_dir.join("bandwidth.svg"),
                "Steady fabric bandwidth per node",
                "kbit/s per node",
                &figures,
                |by_n| series(by_n, "steady_kbps"),
                |_, gi| serf::max_bytes_per_sec(gi, serf::DEFAULT_FANOUT) * 8.0 / 1024.0,
            ),
        ),
    ];
    let mut failed = false;
    for (name, result) in results {
        match result {
            Ok(()) => println!("plot: wrote {}", args.out_dir.join(name).display()),
            Err(e) => {
                eprintln!("plot: {name}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_parse_and_junk_is_skipped() {
        let f = parse(
            "scaling.gi0.2.n30.t9999=0.060\nscaling.gi0.2.n30.steady_kbps=68.5\n\
             scaling.gi1.n100.t9999=1.5\nscaling.gi1.n300.skipped=1\nnot a line\nscaling.gi1.nX.t9999=3\n",
        );
        assert_eq!(series(&f["0.2"], "t9999"), vec![(30.0, 0.06)]);
        assert_eq!(series(&f["0.2"], "steady_kbps"), vec![(30.0, 68.5)]);
        assert_eq!(series(&f["1"], "t9999"), vec![(100.0, 1.5)]);
        assert_eq!(f["1"].len(), 2, "skipped sizes parse but have no t9999");
    }

    #[test]
    fn charts_are_written_even_without_data() {
        let dir = std::env::temp_dir().join(format!("mpreg-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("empty.svg");
        chart(
            &path,
            "empty",
            "y",
            &Figures::new(),
            |_| Vec::new(),
            |_, _| 1.0,
        )
        .expect("an empty chart draws");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
