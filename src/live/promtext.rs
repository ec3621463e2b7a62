//! Prometheus text exposition (format 0.0.4), shared by every `/metrics` endpoint (the
//! mock's, the gateway's and the load client's `--metrics-listen`) so that each family
//! gets its `# HELP` and `# TYPE` lines and every label value is escaped the same way.
//! Counters, gauges and histograms ([`Exposition::histogram`]: cumulative `_bucket`
//! lines with `le`, `_sum`, `_count`).
//!
//! Escaping follows the format's rules: in a label value `\` → `\\`, `"` → `\"` and a
//! newline → `\n`; in help text `\` → `\\` and a newline → `\n`. A provider or target
//! named `a"b\c` therefore cannot break the exposition. Metric and label *names* are
//! fixed by the callers and must match `[a-zA-Z_:][a-zA-Z0-9_:]*` (checked in debug
//! builds).
//!
//! ```ignore
//! // (the module is private to live/: `doc_example_renders_as_documented` runs this)
//! use chaosgate::live::promtext::{Exposition, Kind};
//! let mut e = Exposition::new();
//! e.family("demo_requests_total", Kind::Counter, "Requests seen.");
//! e.sample("demo_requests_total", &[("target", "a\"b")], 3u64);
//! assert_eq!(
//!     e.finish(),
//!     "# HELP demo_requests_total Requests seen.\n# TYPE demo_requests_total counter\ndemo_requests_total{target=\"a\\\"b\"} 3\n"
//! );
//! ```

use std::fmt::Write as _;

/// The `content-type` of a text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into fixed buckets: `NAME_bucket{le="…"}` (cumulative),
    /// `NAME_sum` and `NAME_count`, written by [`Exposition::histogram`].
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

/// A sample value: a whole number or a float (`NaN`, `+Inf`, `-Inf` written as the
/// format spells them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A measurement.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<u8> for Value {
    fn from(v: u8) -> Value {
        Value::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => f.write_str("NaN"),
            Value::Float(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::Float(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

/// A label value escaped for the exposition: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
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
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A text exposition being written: families in order, each with its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Write its samples next.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family, its label values escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k) && !k.contains(':'), "bad label name {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value.into());
    }

    /// One labelled histogram of the current family (started with [`Kind::Histogram`]):
    /// `counts[i]` observations fell in bucket i, that is at most `bounds[i]` and above
    /// `bounds[i - 1]`; `counts[bounds.len()]`, when present, are those above the last
    /// bound. Writes the cumulative `NAME_bucket` lines (`le` the bound, then `+Inf`),
    /// `NAME_sum` and `NAME_count` (the `+Inf` bucket's count, so the two always agree).
    /// `bounds` must be increasing.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], bounds: &[f64], counts: &[u64], sum: f64) {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds not increasing");
        debug_assert!(counts.len() == bounds.len() || counts.len() == bounds.len() + 1);
        let bucket = format!("{name}_bucket");
        let mut cum = 0u64;
        for (i, b) in bounds.iter().enumerate() {
            cum += counts.get(i).copied().unwrap_or(0);
            let le = Value::Float(*b).to_string();
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cum);
        }
        cum += counts.get(bounds.len()).copied().unwrap_or(0);
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, cum);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cum);
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_example_renders_as_documented() {
        let mut e = Exposition::new();
        e.family("demo_requests_total", Kind::Counter, "Requests seen.");
        e.sample("demo_requests_total", &[("target", "a\"b")], 3u64);
        assert_eq!(
            e.finish(),
            "# HELP demo_requests_total Requests seen.\n# TYPE demo_requests_total counter\ndemo_requests_total{target=\"a\\\"b\"} 3\n"
        );
    }

    #[test]
    fn label_values_with_quotes_backslashes_and_newlines_are_escaped() {
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
        assert_eq!(escape_label_value("plain é"), "plain é");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn families_have_help_and_type_and_values_their_spelling() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "Things.\nMore.");
        e.sample("x_total", &[], 7u64);
        e.family("y", Kind::Gauge, "Level.");
        e.sample("y", &[("a", "1"), ("b", "\\")], 0.5);
        e.sample("y", &[("a", "2"), ("b", "")], f64::INFINITY);
        e.sample("y", &[("a", "3"), ("b", "")], f64::NAN);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nMore.\n# TYPE x_total counter\nx_total 7\n\
             # HELP y Level.\n# TYPE y gauge\ny{a=\"1\",b=\"\\\\\"} 0.5\ny{a=\"2\",b=\"\"} +Inf\ny{a=\"3\",b=\"\"} NaN\n"
        );
    }

    #[test]
    fn a_histogram_is_cumulative_with_sum_count_and_inf() {
        let mut e = Exposition::new();
        e.family("lat_seconds", Kind::Histogram, "Latency.");
        // 2 at most 0.1, 3 in (0.1, 1], 1 above 1
        e.histogram("lat_seconds", &[("p", "a\"b")], &[0.1, 1.0], &[2, 3, 1], 4.25);
        assert_eq!(
            e.finish(),
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{p=\"a\\\"b\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{p=\"a\\\"b\",le=\"1\"} 5\n\
             lat_seconds_bucket{p=\"a\\\"b\",le=\"+Inf\"} 6\n\
             lat_seconds_sum{p=\"a\\\"b\"} 4.25\n\
             lat_seconds_count{p=\"a\\\"b\"} 6\n"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("chaosgate_mock_requests_total"));
        assert!(valid_name("a:b_c9"));
        assert!(!valid_name("9a") && !valid_name("") && !valid_name("a-b"));
    }
}
