//! Human-readable output: aligned tables, `key: value` listings of nested
//! results, timestamps and ages.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A plain text table: a header row, then rows, columns separated by two
/// spaces, no trailing whitespace.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are blank, extra cells are dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Renders the table, each line prefixed with `indent` spaces.
    pub fn render_indented(&self, indent: usize) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = " ".repeat(indent);
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.push_str(&" ".repeat(w - width(cell)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Renders the table.
    pub fn render(&self) -> String {
        self.render_indented(0)
    }
}

/// A one-word name of a JSON value's type, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A table cell for `v`: strings unquoted, `-` for null / missing / empty,
/// lists of scalars joined with `,`, anything else as compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) if items.iter().all(is_scalar) => {
            items.iter().map(cell).collect::<Vec<_>>().join(",")
        }
        Value::Object(m) if m.is_empty() => "-".into(),
        other => other.to_string(),
    }
}

/// [`cell`] of `v[key]` (`-` when absent).
pub fn field(v: &Value, key: &str) -> String {
    v.get(key).map(cell).unwrap_or_else(|| "-".into())
}

/// [`cell`] of the value at a JSON pointer (`-` when absent).
pub fn at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).map(cell).unwrap_or_else(|| "-".into())
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// Seconds since the Unix epoch, now.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `secs` (Unix epoch seconds) as `YYYY-MM-DD HH:MM:SS.mmmZ` (UTC).
pub fn timestamp(secs: f64) -> String {
    if !secs.is_finite() || !(0.0..1e11).contains(&secs) {
        return secs.to_string();
    }
    let millis_total = (secs * 1000.0).round() as i64;
    let days = millis_total.div_euclid(86_400_000);
    let ms_of_day = millis_total.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
    let (min, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}.{ms:03}Z")
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How long ago `then` was, relative to `now` (both epoch seconds):
/// `0.4s ago`, `12s ago`, `3m ago`, `2h ago`, `5d ago`; `-` for null.
pub fn age(then: Option<f64>, now: f64) -> String {
    let Some(then) = then else {
        return "-".into();
    };
    let d = now - then;
    if !d.is_finite() {
        return "-".into();
    }
    if d < 0.0 {
        return "in the future".into();
    }
    if d < 10.0 {
        format!("{d:.1}s ago")
    } else if d < 120.0 {
        format!("{}s ago", d as u64)
    } else if d < 7200.0 {
        format!("{}m ago", (d / 60.0) as u64)
    } else if d < 172_800.0 {
        format!("{}h ago", (d / 3600.0) as u64)
    } else {
        format!("{}d ago", (d / 86_400.0) as u64)
    }
}

/// Whether a key names a Unix timestamp (`generated_at`, `last_seen`,
/// `timestamp`, `*_at`).
fn is_time_key(key: &str) -> bool {
    key.ends_with("_at") || key == "timestamp" || key == "last_seen" || key == "status_timestamp"
}

enum Line {
    Kv(String, String),
    Block(String),
}

/// Renders any JSON result for people: objects as aligned `key: value`
/// lines (nested objects as `outer.inner` keys), lists of scalars joined
/// with `, `, lists of objects as indented tables, timestamps as UTC times.
pub fn human(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut lines = Vec::new();
            object_lines(&mut lines, "", m);
            let width = lines
                .iter()
                .filter_map(|l| match l {
                    Line::Kv(k, _) => Some(k.chars().count()),
                    Line::Block(_) => None,
                })
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for line in lines {
                match line {
                    Line::Kv(k, val) => {
                        let pad = width - k.chars().count();
                        let _ = writeln!(out, "{k}:{} {val}", " ".repeat(pad));
                    }
                    Line::Block(b) => out.push_str(&b),
                }
            }
            out
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            object_table(items).render()
        }
        Value::Array(items) if items.is_empty() => "(empty)\n".into(),
        Value::Array(items) => items.iter().map(|i| cell(i) + "\n").collect(),
        other => format!("{}\n", cell(other)),
    }
}

fn object_lines(lines: &mut Vec<Line>, prefix: &str, m: &Map<String, Value>) {
    for (k, v) in m {
        let key = format!("{prefix}{k}");
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                object_lines(lines, &format!("{key}."), inner);
            }
            Value::Array(items) if !items.is_empty() && !items.iter().all(is_scalar) => {
                if items.iter().all(Value::is_object) {
                    lines.push(Line::Kv(key, format!("{} item(s)", items.len())));
                    lines.push(Line::Block(object_table(items).render_indented(2)));
                } else {
                    lines.push(Line::Kv(key, v.to_string()));
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let joined = items.iter().map(cell).collect::<Vec<_>>().join(", ");
                lines.push(Line::Kv(key, joined));
            }
            Value::Number(n) if is_time_key(k) => {
                let t = n.as_f64().unwrap_or(0.0);
                lines.push(Line::Kv(key, timestamp(t)));
            }
            other => lines.push(Line::Kv(key, cell(other))),
        }
    }
}

/// A table of objects: one column per key, in order of first appearance.
pub fn object_table(items: &[Value]) -> Table {
    let mut keys: Vec<String> = Vec::new();
    for item in items {
        if let Some(m) = item.as_object() {
            for k in m.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    let headers: Vec<String> = keys.iter().map(|k| k.to_uppercase()).collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut table = Table::new(&header_refs);
    for item in items {
        table.row(
            keys.iter()
                .map(|k| match item.get(k) {
                    Some(Value::Number(n)) if is_time_key(k) => {
                        timestamp(n.as_f64().unwrap_or(0.0))
                    }
                    Some(v) => cell(v),
                    None => "-".into(),
                })
                .collect(),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_and_trims() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["xyz".into(), "1".into()]);
        t.row(vec!["q".into()]);
        assert_eq!(t.render(), "A    LONGER\nxyz  1\nq\n");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("")), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!(1.5)), "1.5");
        assert_eq!(cell(&json!([{"a": 1}])), r#"[{"a":1}]"#);
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0.0), "1970-01-01 00:00:00.000Z");
        assert_eq!(timestamp(1_732_440_000.12), "2024-11-24 09:20:00.120Z");
        assert_eq!(timestamp(951_782_400.0), "2000-02-29 00:00:00.000Z");
        assert_eq!(age(Some(100.0), 103.25), "3.2s ago");
        assert_eq!(age(Some(0.0), 300.0), "5m ago");
        assert_eq!(age(None, 1.0), "-");
    }

    #[test]
    fn human_listing() {
        let v = json!({"enabled": false, "generated_at": 0.0, "namespaces": [],
            "entry_counts": {"functions": 2, "nodes": 1},
            "entries": [{"event": "apply", "valid": true}, {"event": "validate", "actor": "x"}]});
        let out = human(&v);
        let want = "\
enabled:                false
entries:                2 item(s)
  EVENT     VALID  ACTOR
  apply     true   -
  validate  -      x
entry_counts.functions: 2
entry_counts.nodes:     1
generated_at:           1970-01-01 00:00:00.000Z
namespaces:             -
";
        assert_eq!(out, want);
    }
}
