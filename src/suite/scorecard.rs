//! The scorecard of `chaosgate suite`: a terminal table, Markdown and JUnit XML
//! (`docs/suite.md`, "Outputs"). The JSON is the report itself (`schema/suite-report.schema.json`).

use crate::report::junit::xml_escape;
use crate::suite::runner::{EntryResult, SuiteReport};
use crate::suite::Verdict;
use std::fmt::Write as _;

fn opt(v: Option<f64>, unit: &str, decimals: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.decimals$}{unit}"))
}

/// The figures of an entry's first run, as table cells: failed in window, detection,
/// failback, attempts per request in the fault, truncated, hangs.
fn cells(e: &EntryResult) -> [String; 6] {
    let Some(r) = e.runs.first() else {
        return std::array::from_fn(|_| "–".to_string());
    };
    let f = &r.figures;
    [
        format!("{}/{}", f.window_failed, f.window_requests),
        opt(f.detection_s, " s", 1),
        opt(f.failback_s, " s", 1),
        opt(f.amplification_during_fault, "×", 2),
        f.truncated_successes.map_or("–".into(), |t| t.to_string()),
        f.hangs.to_string(),
    ]
}

/// The verdict column: the worst verdict, and the spread over runs when there are several.
fn verdict_cell(e: &EntryResult) -> String {
    let mut s = e.verdict.as_str().to_string();
    if e.runs.len() > 1 {
        let spread: Vec<String> = e.verdicts.iter().map(|(v, n)| format!("{} {n}", v.as_str())).collect();
        s = format!("{s} ({})", spread.join(", "));
    }
    s
}

/// Why, in one line: the error, or the worst run's first reasons.
fn why(e: &EntryResult) -> String {
    if let Some(err) = &e.error {
        return err
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
    }
    e.runs
        .iter()
        .max_by_key(|r| r.judgement.verdict)
        .map(|r| r.judgement.reasons.join("; "))
        .unwrap_or_default()
}

fn totals(r: &SuiteReport) -> String {
    let order = [
        Verdict::Pass,
        Verdict::Safe,
        Verdict::Degraded,
        Verdict::Fail,
        Verdict::Error,
    ];
    order
        .iter()
        .filter_map(|v| r.totals.get(v).map(|n| format!("{n} {}", v.as_str())))
        .collect::<Vec<_>>()
        .join(", ")
}

const HEAD: [&str; 8] = [
    "entry",
    "verdict",
    "best",
    "failed in fault",
    "detection",
    "failback",
    "attempts/req",
    "trunc/hang",
];

/// The terminal scorecard.
pub fn text(r: &SuiteReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "chaosgate suite — {} ({} gateway, {}), {} entr{}, {} run{} each, seed {}{}",
        r.gateway,
        r.gateway_kind,
        r.mode,
        r.entries.len(),
        if r.entries.len() == 1 { "y" } else { "ies" },
        r.repeat,
        if r.repeat == 1 { "" } else { "s" },
        r.seed,
        if r.partial { " — PARTIAL (interrupted)" } else { "" }
    );
    let rows: Vec<[String; 8]> = r
        .entries
        .iter()
        .map(|e| {
            let c = cells(e);
            [
                e.name.clone(),
                verdict_cell(e),
                if e.meets_best {
                    "✓".into()
                } else {
                    e.best.as_str().to_string()
                },
                c[0].clone(),
                c[1].clone(),
                c[2].clone(),
                c[3].clone(),
                format!("{}/{}", c[4], c[5]),
            ]
        })
        .collect();
    let mut w = HEAD.map(|h| h.chars().count());
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut l = String::new();
        for (i, c) in cols.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            if i >= 3 {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", line(&HEAD.map(String::from)));
    for row in &rows {
        let _ = writeln!(s, "{}", line(row));
    }
    let _ = writeln!(s, "\n{}", totals(r));
    let below: Vec<&EntryResult> = r.entries.iter().filter(|e| !e.meets_best).collect();
    if !below.is_empty() {
        let _ = writeln!(s, "\nbelow their best:");
        for e in below {
            let _ = writeln!(s, "  {} ({}): {}", e.name, e.verdict.as_str(), why(e));
            let _ = writeln!(s, "    models: {}", e.reports.join(" | "));
            let _ = writeln!(s, "    rerun:  {}", e.command);
        }
    }
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The scorecard as Markdown (a heading, the table, and one line per entry below its best).
pub fn markdown(r: &SuiteReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## chaosgate suite: `{}`\n\n{} gateway, {}; chaosgate {}; {} run{} per entry from seed {}{}. Totals: {}.\n",
        md_escape(&r.gateway),
        r.gateway_kind,
        r.mode,
        r.chaosgate,
        r.repeat,
        if r.repeat == 1 { "" } else { "s" },
        r.seed,
        if r.partial { " (partial: interrupted)" } else { "" },
        totals(r)
    );
    let _ = writeln!(s, "| {} | why |", HEAD.join(" | "));
    let _ = writeln!(s, "|{}---|", "---|".repeat(HEAD.len()));
    for e in &r.entries {
        let c = cells(e);
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} | {}/{} | {} |",
            e.name,
            verdict_cell(e),
            if e.meets_best {
                "✓".to_string()
            } else {
                e.best.as_str().to_string()
            },
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            md_escape(&why(e))
        );
    }
    s
}

/// JUnit XML: one test case per entry; a failure when its verdict is below the entry's
/// best, an error when it could not run.
pub fn junit(r: &SuiteReport) -> String {
    let failures = r.entries.iter().filter(|e| !e.meets_best && e.error.is_none()).count();
    let errors = r.entries.iter().filter(|e| e.error.is_some()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = xml_escape(&format!("chaosgate suite {}", r.gateway));
    let _ = writeln!(
        s,
        "<testsuites name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        r.entries.len()
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        r.entries.len()
    );
    for e in &r.entries {
        let _ = write!(
            s,
            "    <testcase classname=\"{suite}\" name=\"{}: {}\"",
            xml_escape(&e.name),
            e.verdict.as_str()
        );
        if let Some(err) = &e.error {
            let _ = writeln!(s, ">\n      <error message=\"{}\"/>\n    </testcase>", xml_escape(err));
        } else if !e.meets_best {
            let _ = writeln!(
                s,
                ">\n      <failure message=\"{} (best: {})\">{}</failure>\n    </testcase>",
                e.verdict.as_str(),
                e.best.as_str(),
                xml_escape(&why(e))
            );
        } else {
            s.push_str("/>\n");
        }
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}
/// The verdict colours of the HTML scorecard.
fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "#27ae60",
        Verdict::Safe => "#2471a3",
        Verdict::Degraded => "#e67e22",
        Verdict::Fail => "#c0392b",
        Verdict::Error => "#7f8c8d",
    }
}

/// The scorecard as a self-contained HTML page (`suite --html`, docs/html-report.md): the
/// header, a chart of each entry's failed share in its fault windows coloured by verdict,
/// and the table with the reasons and the command that reruns each entry.
pub fn html(r: &SuiteReport, p: &crate::report::html::Provenance) -> String {
    use crate::report::chart::{c, esc};
    use crate::report::html::{meta_list, page_end, page_start};
    let mut s = page_start("suite", &format!("chaosgate suite: {} ({})", r.gateway, r.mode));
    s.push_str(&meta_list(&[
        (
            "gateway",
            format!("<code>{}</code> ({})", esc(&r.gateway), esc(&r.gateway_kind)),
        ),
        ("mode", esc(&r.mode)),
        ("seed", format!("<span data-value=\"seed\">{}</span>", r.seed)),
        ("runs per entry", r.repeat.to_string()),
        (
            "totals",
            format!("<span data-value=\"totals\">{}</span>", esc(&totals(r))),
        ),
        (
            "chaosgate",
            format!("<span data-value=\"version\">{}</span>", esc(&p.version)),
        ),
        (
            "reproduce",
            format!("<code data-value=\"command\">{}</code>", esc(&p.command)),
        ),
    ]));
    if r.partial {
        s.push_str("<p class=\"warn\">Interrupted: the entries that ran.</p>\n");
    }
    // the chart: one bar per entry, failed ÷ requests inside its fault windows (first run)
    let (left, width, row) = (230.0, 1000.0, 18.0);
    let pw = width - left - 90.0;
    let h = 40.0 + row * r.entries.len() as f64 + 30.0;
    let _ = writeln!(
        s,
        "<h2>Scorecard</h2>\n<figure data-chart=\"scorecard\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" {} font-size=\"11\">\n<title>failed requests in the fault windows per entry</title>\n<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{}\" fill=\"#ffffff\"/>",
        c(h),
        c(h),
        crate::report::chart::FONT,
        c(h),
        w = c(width)
    );
    for (k, t) in [0.0, 0.25, 0.5, 0.75, 1.0].iter().enumerate() {
        let x = left + t * pw;
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"24\" x2=\"{x}\" y2=\"{}\" stroke=\"#e5e5e5\"/><text x=\"{x}\" y=\"18\" text-anchor=\"middle\">{}%</text>",
            c(30.0 + row * r.entries.len() as f64),
            k * 25,
            x = c(x)
        );
    }
    for (i, e) in r.entries.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let ratio = e.runs.first().and_then(|r| r.figures.failed_ratio).unwrap_or(0.0);
        let cell = cells(e);
        let _ = writeln!(
            s,
            "<g class=\"entry\" data-entry=\"{}\" data-verdict=\"{}\"><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text><title>{}: {} — failed in fault {}, detection {}, failback {}</title></g>",
            esc(&e.name),
            e.verdict.as_str(),
            c(left - 6.0),
            c(y + 12.0),
            esc(&e.name),
            c(left),
            c(y + 3.0),
            c((ratio * pw).max(1.5)),
            c(row - 6.0),
            verdict_colour(e.verdict),
            c(left + (ratio * pw).max(1.5) + 5.0),
            c(y + 12.0),
            e.verdict.as_str(),
            esc(&e.name),
            e.verdict.as_str(),
            esc(&cell[0]),
            esc(&cell[1]),
            esc(&cell[2])
        );
    }
    s.push_str("</svg>\n<figcaption>Per entry, the share of the client requests intended inside its fault windows that failed (first run), coloured by the entry's verdict (green pass, blue safe, orange degraded, red fail, grey error).</figcaption>\n</figure>\n");
    s.push_str("<table data-table=\"scorecard\">\n<tr>");
    for h in HEAD.iter().chain(["why", "rerun"].iter()) {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>\n");
    for e in &r.entries {
        let cell = cells(e);
        let _ = write!(
            s,
            "<tr data-entry=\"{}\"><td><code>{}</code><br>{}</td><td data-value=\"verdict.{}\">{}</td><td>{}</td>",
            esc(&e.name),
            esc(&e.name),
            esc(&e.title),
            esc(&e.name),
            esc(&verdict_cell(e)),
            if e.meets_best {
                "✓".to_string()
            } else {
                esc(e.best.as_str())
            }
        );
        for x in &cell[..4] {
            let _ = write!(s, "<td>{}</td>", esc(x));
        }
        let _ = writeln!(
            s,
            "<td>{}/{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&cell[4]),
            esc(&cell[5]),
            esc(&why(e)),
            esc(&e.command)
        );
    }
    s.push_str("</table>\n");
    s.push_str(page_end());
    s
}
