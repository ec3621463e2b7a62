//! Writes load reports: a terminal table, JSON (described by `schema/load-report.schema.json`),
//! Locust-compatible CSV and an HdrHistogram interval log.

pub mod chart;

use crate::analysis::hist::Hist;
use crate::analysis::{Aggregator, Group, LoadReport};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// The terminal table.
pub fn text(r: &LoadReport) -> String {
    let mut s = String::new();
    let q = &r.requests;
    let _ = writeln!(
        s,
        "requests   scheduled {}   sent {}   ok {}   failed {}   dropped {}   in flight at end {}   error rate {:.3} %",
        q.scheduled,
        q.sent,
        q.ok,
        q.failed,
        q.dropped,
        q.in_flight_at_end,
        100.0 * r.error_rate
    );
    let _ = writeln!(
        s,
        "throughput {:.1} req/s   {:.1} output tok/s   goodput {:.1} req/s   over {:.1} s",
        r.throughput.requests_per_s, r.throughput.output_tokens_per_s, r.throughput.goodput_per_s, r.duration_s
    );
    let _ = writeln!(
        s,
        "\n{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "", "p50", "p95", "p99", "p99.9", "max", "mean", "count"
    );
    for (name, h) in [
        ("latency ms", &r.latency_ms),
        ("latency (uncorr.) ms", &r.latency_uncorrected_ms),
        ("schedule lag ms", &r.schedule_lag_ms),
        ("TTFT ms", &r.ttft_ms),
        ("ITL ms", &r.itl_ms),
        ("TPOT ms", &r.tpot_ms),
    ] {
        if h.count > 0 {
            let _ = writeln!(
                s,
                "{name:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8}",
                h.p50, h.p95, h.p99, h.p999, h.max, h.mean, h.count
            );
        }
    }
    if r.output_tps.avg > 0.0 {
        let t = &r.output_tps;
        let _ = writeln!(
            s,
            "\noutput tokens/s per stream: avg {:.1}   peak {:.1}   min {:.1}   stability (CV) ±{:.1} %",
            t.avg,
            t.peak,
            t.min,
            100.0 * t.cv
        );
    }
    if r.embeddings.requests_per_s > 0.0 {
        let _ = writeln!(
            s,
            "embeddings: {:.1} req/s   avg latency {:.1} ms",
            r.embeddings.requests_per_s, r.embeddings.avg_latency_ms
        );
    }
    for (title, groups) in [("provider", &r.providers), ("kind", &r.kinds), ("phase", &r.phases)] {
        if groups.is_empty()
            || (groups.len() == 1 && title != "phase" && groups.keys().next().is_some_and(|k| k == "unknown"))
        {
            continue;
        }
        let _ = writeln!(
            s,
            "\n{:<22} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
            title, "sent", "failed", "err %", "p50 ms", "p99 ms", "req/s"
        );
        for (name, g) in groups {
            let _ = writeln!(
                s,
                "{name:<22} {:>8} {:>8} {:>8.2} {:>9.1} {:>9.1} {:>9.1}",
                g.requests,
                g.failed,
                100.0 * g.error_rate,
                g.latency_ms.p50,
                g.latency_ms.p99,
                g.requests_per_s
            );
        }
    }
    if !r.failures_by_kind.is_empty() {
        let _ = writeln!(s, "\nfailures by kind");
        for (k, n) in &r.failures_by_kind {
            let _ = writeln!(s, "  {k:<20} {n}");
        }
    }
    s
}

/// Writes pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(value)?;
    std::fs::write(path, s + "\n").map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Locust's `_stats.csv` columns.
pub const LOCUST_STATS_HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
/// Locust's `_stats_history.csv` columns.
pub const LOCUST_HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size";
/// Locust's `_failures.csv` columns.
pub const LOCUST_FAILURES_HEADER: &str = "Method,Name,Error,Occurrences";

const PCTS: [f64; 11] = [0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0];

fn pct_cells(h: &Hist) -> String {
    PCTS.iter()
        .map(|&q| {
            if h.is_empty() {
                "N/A".to_string()
            } else {
                format!("{}", h.quantile_ms(q).round() as u64)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_name(s: &str) -> String {
    if s.contains(',') || s.contains('"') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn stats_row(ty: &str, name: &str, g: &Group, d: f64) -> String {
    let h = &g.latency;
    let (min, max) = if h.is_empty() {
        (0, 0)
    } else {
        (h.inner().min() / 1000, h.inner().max() / 1000)
    };
    format!(
        "{ty},{},{},{},{},{},{},{},0,{},{},{}",
        csv_name(name),
        g.sent(),
        g.failed,
        h.quantile_ms(0.5).round() as u64,
        h.mean_ms(),
        min,
        max,
        g.sent() as f64 / d,
        g.failed as f64 / d,
        pct_cells(h)
    )
}

/// Writes `PREFIX_stats.csv`, `PREFIX_stats_history.csv`, `PREFIX_failures.csv` with
/// Locust's exact headers. Response times in ms; `start_unix_s` stamps the history rows.
pub fn write_locust_csv(
    prefix: &str,
    agg: &Aggregator,
    duration_s: f64,
    start_unix_s: u64,
    users: u32,
) -> anyhow::Result<()> {
    let d = duration_s.max(1e-9);
    let open = |suffix: &str| {
        let p = format!("{prefix}{suffix}");
        std::fs::File::create(&p)
            .map(std::io::BufWriter::new)
            .map_err(|e| anyhow::anyhow!("cannot write {p}: {e}"))
    };
    let mut f = open("_stats.csv")?;
    writeln!(f, "{LOCUST_STATS_HEADER}")?;
    for (name, g) in agg.per_kind() {
        writeln!(f, "{}", stats_row("POST", name, &g, d))?;
    }
    writeln!(f, "{}", stats_row("", "Aggregated", &agg.overall(), d))?;
    let mut f = open("_stats_history.csv")?;
    writeln!(f, "{LOCUST_HISTORY_HEADER}")?;
    let bucket_s = agg.bucket_len() as f64 / 1e9;
    let mut total = Hist::coarse();
    let (mut n, mut failed) = (0u64, 0u64);
    for (i, b) in agg.buckets.iter().enumerate() {
        let empty = Hist::coarse();
        let h = b.latency.as_deref().unwrap_or(&empty);
        total.merge(h);
        n += b.ok + b.failed;
        failed += b.failed;
        let (tmin, tmax) = if total.is_empty() {
            (0, 0)
        } else {
            (total.inner().min() / 1000, total.inner().max() / 1000)
        };
        writeln!(
            f,
            "{},{users},,Aggregated,{},{},{},{n},{failed},{},{},{tmin},{tmax},0",
            start_unix_s + (i as f64 * bucket_s) as u64,
            (b.ok + b.failed) as f64 / bucket_s,
            b.failed as f64 / bucket_s,
            pct_cells(h),
            total.quantile_ms(0.5).round() as u64,
            total.mean_ms(),
        )?;
    }
    let mut f = open("_failures.csv")?;
    writeln!(f, "{LOCUST_FAILURES_HEADER}")?;
    for (name, g) in agg.per_kind() {
        for (err, count) in &g.failures() {
            writeln!(f, "POST,{},{},{count}", csv_name(name), csv_name(err))?;
        }
    }
    Ok(())
}

/// Writes an HdrHistogram interval log (V2 + DEFLATE, values in µs, max in ms): one
/// latency histogram per time bucket, readable by HdrHistogram's `HistogramLogProcessor`.
pub fn write_hlog(path: &Path, agg: &Aggregator, start: std::time::SystemTime) -> anyhow::Result<()> {
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut out: Vec<u8> = Vec::new();
    out.extend_from_slice(b"#[Histogram log format version 1.3]\n");
    let mut ser = V2DeflateSerializer::new();
    {
        IntervalLogWriterBuilder::new()
            .add_comment("chaosgate load: end-to-end latency from intended send, microseconds")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut ser)?;
    }
    out.extend_from_slice(
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    let bucket = std::time::Duration::from_nanos(agg.bucket_len());
    {
        // a second writer after the legend; it notes the max divisor as a comment line
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut ser)?;
        for (i, bk) in agg.buckets.iter().enumerate() {
            if let Some(h) = &bk.latency {
                w.write_histogram(h.inner(), bucket * i as u32, bucket, None)
                    .map_err(|e| anyhow::anyhow!("hlog: {e}"))?;
            }
        }
    }
    std::fs::write(path, out).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
