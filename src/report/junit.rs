//! JUnit XML of a sweep's assertions, for CI test reporters.

use crate::analysis::assert::Check;
use crate::analysis::results::SweepReport;
use std::fmt::Write as _;

/// `s` escaped for XML text and attributes (control characters become spaces).
pub(crate) fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// JUnit XML: one `<testsuite>` per sweep point, one `<testcase>` per assertion.
pub fn junit(sw: &SweepReport, command: &str) -> String {
    let total: usize = sw.points.iter().map(|p| p.checks.len()).sum();
    let failed: usize = sw
        .points
        .iter()
        .map(|p| p.checks.iter().filter(|c| !c.passed).count())
        .sum();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failed}\">",
        xml_escape(&format!("chaosgate {command} {}", sw.scenario))
    );
    for p in &sw.points {
        let params = p
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ");
        let suite = if params.is_empty() {
            sw.scenario.clone()
        } else {
            format!("{} [{params}]", sw.scenario)
        };
        suite_xml(
            &mut s,
            &suite,
            p.report.duration_s * p.report.runs as f64,
            &p.report.warnings,
            &p.checks,
        );
    }
    s.push_str("</testsuites>\n");
    s
}

/// JUnit XML of one report's assertions (a merged `load`): one `<testsuite>` named `suite`.
pub fn junit_checks(title: &str, suite: &str, time_s: f64, warnings: &[String], checks: &[Check]) -> String {
    let failed = checks.iter().filter(|c| !c.passed).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failed}\">",
        xml_escape(title),
        checks.len()
    );
    suite_xml(&mut s, suite, time_s, warnings, checks);
    s.push_str("</testsuites>\n");
    s
}

/// One `<testsuite>`: its warnings as properties, one `<testcase>` per check.
fn suite_xml(s: &mut String, suite: &str, time_s: f64, warnings: &[String], checks: &[Check]) {
    let nf = checks.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        s,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{nf}\" time=\"{time_s:.3}\">",
        xml_escape(suite),
        checks.len(),
    );
    // the warnings (requests in flight at the end, an interruption, a missing shard, …)
    if !warnings.is_empty() {
        s.push_str("    <properties>\n");
        for w in warnings {
            let _ = writeln!(s, "      <property name=\"warning\" value=\"{}\"/>", xml_escape(w));
        }
        s.push_str("    </properties>\n");
    }
    for c in checks {
        let _ = write!(
            s,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml_escape(suite),
            xml_escape(&c.assertion)
        );
        if c.passed {
            s.push_str("/>\n");
        } else {
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{}\">{}: {}</failure>\n    </testcase>",
                xml_escape(&c.message),
                xml_escape(&c.assertion),
                xml_escape(&c.message)
            );
        }
    }
    s.push_str("  </testsuite>\n");
}
