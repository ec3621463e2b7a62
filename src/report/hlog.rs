//! The HdrHistogram interval log of a run's latencies.

use crate::analysis::Aggregator;
use std::path::Path;

/// Writes an HdrHistogram interval log (V2 + DEFLATE, values in µs, max in ms): one
/// latency histogram per time bucket, 3 significant digits with a 1 µs floor (any two
/// latencies more than 0.1 % apart stay apart), readable by HdrHistogram's
/// `HistogramLogProcessor`.
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
                // built for the write and dropped: a full layout is never kept per bucket
                w.write_histogram(&h.to_histogram(), bucket * i as u32, bucket, None)
                    .map_err(|e| anyhow::anyhow!("hlog: {e}"))?;
            }
        }
    }
    std::fs::write(path, out).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}
