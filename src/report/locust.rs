//! Locust-compatible CSV: the four files `locust --csv PREFIX` writes.

use crate::analysis::hist::Hist;
use crate::analysis::{Aggregator, Group};
use crate::record::{Outcome, RequestRecord};
use crate::time::Nanos;
use std::collections::BTreeMap;
use std::io::Write as _;

/// Locust's `_stats.csv` columns.
pub const LOCUST_STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
/// Locust's `_stats_history.csv` columns.
pub const LOCUST_HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
/// Locust's `_failures.csv` columns.
pub const LOCUST_FAILURES_HEADER: &str = "Method,Name,Error,Occurrences,First Seen,Last Seen";
/// Locust's `_exceptions.csv` columns.
pub const LOCUST_EXCEPTIONS_HEADER: &str = "Count,Message,Traceback,Nodes";

/// Locust's `PERCENTILES_TO_REPORT`.
const PCTS: [f64; 11] = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0];

/// What the Locust CSV files need beyond the [`Aggregator`]: the response body bytes of
/// each kind, and when each failure was first and last seen. The live client folds every
/// request in (a few words per kind and per distinct failure: no memory per request).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CsvLog {
    kinds: Vec<String>,
    /// Per kind index: (body bytes received, requests sent).
    content: Vec<(u64, u64)>,
    /// (kind index, outcome, first end, last end), ends in ns since the run's start.
    seen: Vec<(u32, Outcome, Nanos, Nanos)>,
}

impl CsvLog {
    /// For a mix whose kind `i` is named `kinds[i]`.
    pub fn new(kinds: Vec<String>) -> CsvLog {
        CsvLog {
            content: vec![(0, 0); kinds.len()],
            kinds,
            seen: Vec::new(),
        }
    }

    /// Folds in one request and the body bytes its response carried (dropped requests,
    /// never sent, are not Locust requests and are skipped).
    pub fn add(&mut self, r: &RequestRecord, content_bytes: u64) {
        if r.sent.is_none() {
            return;
        }
        if let Some(c) = self.content.get_mut(r.kind as usize) {
            c.0 = c.0.saturating_add(content_bytes);
            c.1 += 1;
        }
        if r.outcome.is_ok() {
            return;
        }
        match self.seen.iter_mut().find(|s| s.0 == r.kind && s.1 == r.outcome) {
            Some(s) => {
                s.2 = s.2.min(r.end);
                s.3 = s.3.max(r.end);
            }
            None => self.seen.push((r.kind, r.outcome, r.end, r.end)),
        }
    }

    /// Adds another shard's log of the same mix (`chaosgate merge`): sums of bytes and
    /// requests, the earliest first and latest last sighting of each failure.
    pub fn merge(&mut self, o: &CsvLog) -> Result<(), String> {
        if self.kinds != o.kinds {
            return Err("the CSV logs name different request kinds".into());
        }
        for (c, x) in self.content.iter_mut().zip(&o.content) {
            c.0 = c.0.saturating_add(x.0);
            c.1 += x.1;
        }
        for &(kind, outcome, first, last) in &o.seen {
            match self.seen.iter_mut().find(|s| s.0 == kind && s.1 == outcome) {
                Some(s) => {
                    s.2 = s.2.min(first);
                    s.3 = s.3.max(last);
                }
                None => self.seen.push((kind, outcome, first, last)),
            }
        }
        Ok(())
    }

    /// (bytes, requests) of every kind named `name` (`None`: all kinds).
    fn content_of(&self, name: Option<&str>) -> (u64, u64) {
        self.kinds
            .iter()
            .zip(&self.content)
            .filter(|(k, _)| name.is_none_or(|n| n == k.as_str()))
            .fold((0, 0), |a, (_, c)| (a.0.saturating_add(c.0), a.1 + c.1))
    }

    /// First and last time a failure with `key` was seen among the kinds named `name`.
    fn seen(&self, name: &str, key: &str) -> Option<(Nanos, Nanos)> {
        self.seen
            .iter()
            .filter(|s| self.kinds.get(s.0 as usize).is_some_and(|k| k == name) && s.1.key() == key)
            .map(|s| (s.2, s.3))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }
}

/// Locust's `bucket_response_time`: a response time (ms) rounded to about two significant
/// digits — to the ms below 100 ms, to 10 ms below 1 s, to 100 ms below 10 s, to whole
/// seconds above — with Python's `round` (ties to even).
pub fn locust_bucket_ms(ms: f64) -> u64 {
    let step = if ms < 100.0 {
        1.0
    } else if ms < 1000.0 {
        10.0
    } else if ms < 10_000.0 {
        100.0
    } else {
        1000.0
    };
    ((ms / step).round_ties_even() * step) as u64
}

/// A group's latencies as Locust keeps them: `{bucket_ms: count}` of every sample (each
/// sample taken at its histogram value, the highest value of its 3-digit bucket), plus
/// the unrounded min and max and the mean, in ms.
struct LocustTimes {
    dict: BTreeMap<u64, u64>,
    n: u64,
    min: f64,
    max: f64,
    mean: f64,
}

impl LocustTimes {
    fn of(h: &Hist) -> LocustTimes {
        let mut dict = BTreeMap::new();
        for (us, c) in h.recorded_us() {
            *dict.entry(locust_bucket_ms(us as f64 / 1000.0)).or_insert(0) += c;
        }
        let (min, max) = h
            .min_max_us()
            .map_or((0.0, 0.0), |(a, b)| (a as f64 / 1000.0, b as f64 / 1000.0));
        LocustTimes {
            dict,
            n: h.len(),
            min,
            max,
            mean: h.mean_ms(),
        }
    }

    /// Locust's `calculate_response_time_percentile`: walking down from the largest
    /// bucket, the first whose samples at and above it leave at most ⌊n·p⌋ below.
    fn percentile(&self, p: f64) -> u64 {
        let below_max = (self.n as f64 * p) as u64;
        let mut seen = 0;
        for (&k, &c) in self.dict.iter().rev() {
            seen += c;
            if self.n - seen <= below_max {
                return k;
            }
        }
        0
    }

    /// Locust's `median_response_time`: `median_from_dict`, then held within [min, max]
    /// (a float when it is).
    fn median(&self) -> String {
        if self.dict.is_empty() {
            return "0".into();
        }
        let mut pos = (self.n as f64 - 1.0) / 2.0;
        let mut median = 0;
        for (&k, &c) in &self.dict {
            median = k;
            if pos < c as f64 {
                break;
            }
            pos -= c as f64;
        }
        let m = median as f64;
        if m > self.max {
            py_float(self.max)
        } else if m < self.min {
            py_float(self.min)
        } else {
            median.to_string()
        }
    }

    /// The eleven percentile cells (`N/A` with no requests, as Locust writes them).
    fn percentile_cells(&self, requests: u64) -> String {
        PCTS.iter()
            .map(|&q| {
                if requests == 0 {
                    "N/A".to_string()
                } else {
                    self.percentile(q).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A float as Python's `repr` writes it (what Locust's `csv.writer` does): `12.0`, `0.1`.
fn py_float(x: f64) -> String {
    format!("{x:?}")
}

/// A cell as Python's `csv.writer` (QUOTE_MINIMAL) writes it.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `bytes / requests` as Locust's `avg_content_length` (an int 0 without requests).
fn avg_content(c: (u64, u64)) -> String {
    if c.1 == 0 {
        "0".into()
    } else {
        py_float(c.0 as f64 / c.1 as f64)
    }
}

fn stats_row(ty: &str, name: &str, g: &Group, d: f64, content: (u64, u64)) -> String {
    let t = LocustTimes::of(&g.latency);
    format!(
        "{ty},{},{},{},{},{},{},{},{},{},{},{}",
        csv_cell(name),
        g.sent(),
        g.failed,
        t.median(),
        py_float(t.mean),
        py_float(t.min),
        py_float(t.max),
        avg_content(content),
        py_float(g.sent() as f64 / d),
        py_float(g.failed as f64 / d),
        t.percentile_cells(g.sent())
    )
}

/// Locust's `format_utc_timestamp`: whole seconds, UTC, `2026-12-06T00:52:07Z`.
fn utc_seconds(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Writes the four files Locust's `--csv PREFIX` writes, with its exact names, headers,
/// line ends (CRLF, Python's `csv.writer`) and meaning: `PREFIX_stats.csv`,
/// `PREFIX_stats_history.csv`, `PREFIX_failures.csv`, `PREFIX_exceptions.csv`. Response
/// times in ms; min, max and mean unrounded, median and percentiles rounded as Locust
/// rounds them ([`locust_bucket_ms`]), so a row's `100%` is Locust's rounding of its
/// `Max Response Time`. `start` is when the run started (history and failure times).
pub fn write_locust_csv(
    prefix: &str,
    agg: &Aggregator,
    log: &CsvLog,
    duration_s: f64,
    start: std::time::SystemTime,
    users: u32,
) -> anyhow::Result<()> {
    let d = duration_s.max(1e-9);
    let at = |ns: Nanos| start + std::time::Duration::from_nanos(ns);
    let open = |suffix: &str| {
        let p = format!("{prefix}{suffix}");
        std::fs::File::create(&p)
            .map(std::io::BufWriter::new)
            .map_err(|e| anyhow::anyhow!("cannot write {p}: {e}"))
    };
    let mut f = open("_stats.csv")?;
    write!(f, "{LOCUST_STATS_HEADER}\r\n")?;
    for (name, g) in agg.per_kind() {
        write!(f, "{}\r\n", stats_row("POST", name, &g, d, log.content_of(Some(name))))?;
    }
    write!(
        f,
        "{}\r\n",
        stats_row("", "Aggregated", &agg.overall(), d, log.content_of(None))
    )?;
    f.flush()?;

    // one row per bucket: the current rates, then the cumulative figures up to the bucket's
    // end (Locust's default history rows: the Aggregated entry, percentiles since the start)
    let mut f = open("_stats_history.csv")?;
    write!(f, "{LOCUST_HISTORY_HEADER}\r\n")?;
    let bucket = agg.bucket_len();
    let bucket_s = bucket as f64 / 1e9;
    let total_content = log.content_of(None);
    let mut total = Hist::coarse();
    let (mut n, mut failed) = (0u64, 0u64);
    for (i, b) in agg.buckets.iter().enumerate() {
        if let Some(h) = b.latency.as_deref() {
            total.merge(h);
        }
        n += b.ok + b.failed;
        failed += b.failed;
        let t = LocustTimes::of(&total);
        let stamp = at(bucket.saturating_mul(i as u64 + 1))
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |x| x.as_secs());
        // content per request so far: the run's average (sizes are not kept per bucket)
        write!(
            f,
            "{stamp},{users},,Aggregated,{:.6},{:.6},{},{n},{failed},{},{},{},{},{}\r\n",
            (b.ok + b.failed) as f64 / bucket_s,
            b.failed as f64 / bucket_s,
            t.percentile_cells(n),
            t.median(),
            py_float(t.mean),
            py_float(t.min),
            py_float(t.max),
            if n == 0 { "0".into() } else { avg_content(total_content) },
        )?;
    }
    f.flush()?;

    let mut f = open("_failures.csv")?;
    write!(f, "{LOCUST_FAILURES_HEADER}\r\n")?;
    for (name, g) in agg.per_kind() {
        for (err, count) in &g.failures() {
            let (first, last) = match log.seen(name, err) {
                Some((a, b)) => (utc_seconds(at(a)), utc_seconds(at(b))),
                None => (String::new(), String::new()),
            };
            write!(
                f,
                "POST,{},{},{count},{first},{last}\r\n",
                csv_cell(name),
                csv_cell(err)
            )?;
        }
    }
    f.flush()?;

    // Locust lists exceptions raised in its users' own code here; chaosgate runs none, so
    // the file holds the header only (every failed request is in `_failures.csv`)
    let mut f = open("_exceptions.csv")?;
    write!(f, "{LOCUST_EXCEPTIONS_HEADER}\r\n")?;
    f.flush()?;
    Ok(())
}
