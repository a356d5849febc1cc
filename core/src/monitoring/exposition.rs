//! Prometheus text exposition format, version 0.0.4
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>).
//!
//! Written by hand instead of with a metrics crate: the values already live
//! in the node (counters, catalog, peer table) and are read once per scrape,
//! so a registry of atomics would only duplicate them; and the format is a
//! line format whose only subtleties (name syntax, escaping of label values
//! and help text, float spelling) are handled here and tested.

use std::fmt::Write as _;

/// `Content-Type` of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric type of a family (`# TYPE` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets with `_bucket{le}`, `_sum` and `_count` samples.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with the reserved `__`.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label value escaped for the exposition: `\` → `\\`, `"` → `\"`,
/// newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escaped for a `# HELP` line: `\` → `\\`, newline → `\n`.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus spells it (`NaN`, `+Inf`, `-Inf`, else the
/// shortest decimal that round-trips).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Builds one scrape answer, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    /// The family the next samples belong to.
    family: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a family: `# HELP` and `# TYPE` lines. Every family name in
    /// this crate is a literal; an invalid one is a bug, caught by the tests
    /// that parse the whole output back.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        self.family = name.to_string();
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family with these labels (label values
    /// are escaped; label names are literals of this crate).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.suffixed("", labels, value)
    }

    /// A sample named the family plus `suffix` (`_bucket`, `_sum` and
    /// `_count` of a histogram).
    pub fn suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(&self.family);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape_label_value(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// A family with one sample per value of a single label.
    pub fn by_label<'a>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> &mut Self {
        self.family(name, kind, help);
        for (value, sample) in samples {
            self.sample(&[(label, value)], sample);
        }
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(&[], value)
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["mpreg_up", "a:b_c1", "_x"] {
            assert!(valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "a b"] {
            assert!(!valid_metric_name(bad), "{bad}");
        }
        assert!(valid_label_name("kind"));
        for bad in ["__name", "a:b", "9", ""] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn escaping_and_values() {
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
        let mut e = Exposition::new();
        e.family("m_total", Kind::Counter, "help with \\ and\nnewline")
            .sample(&[("k", "v\"1"), ("j", "x")], 2.0);
        e.single("g", Kind::Gauge, "a gauge", 0.5);
        assert_eq!(
            e.finish(),
            "# HELP m_total help with \\\\ and\\nnewline\n# TYPE m_total counter\n\
             m_total{k=\"v\\\"1\",j=\"x\"} 2\n# HELP g a gauge\n# TYPE g gauge\ng 0.5\n"
        );
    }
}
