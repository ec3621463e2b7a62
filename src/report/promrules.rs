//! Prometheus recording and alerting rules for a scenario's SLO (`chaosgate rules`,
//! docs/alerts.md): the error ratio over every window the burn-rate alerts use, and one
//! alert per multi-window rule of [`RULES`] — the same thresholds and windows chaosgate's
//! budget analysis reports alert times for, so a user's own Prometheus pages when
//! chaosgate says it would.
//!
//! Pure: text in, text out. The selectors a user gives are parsed and written back in one
//! canonical form, and every YAML value is a double-quoted scalar escaped by
//! [`yaml_quote`], so a label value holding quotes, backslashes or line breaks stays valid.

use crate::analysis::budget::{AlertRule, RULES};
use std::fmt::Write as _;

/// Default selector of every request the SLO counts: chaosgate's own load metrics
/// (`chaosgate load --metrics-listen`), all outcomes but `dropped` (never sent).
pub const DEFAULT_REQUESTS: &str = r#"chaosgate_load_requests_total{outcome!="dropped"}"#;
/// Default selector of the failed ones: every outcome but `ok` and `dropped`.
pub const DEFAULT_ERRORS: &str = r#"chaosgate_load_requests_total{outcome!~"ok|dropped"}"#;
/// Name prefix of the recorded error ratios (`chaosgate_slo:error_ratio:rate5m`).
pub const RECORD_PREFIX: &str = "chaosgate_slo:error_ratio:rate";
/// Longest selector accepted, in bytes.
pub const MAX_SELECTOR: usize = 4096;
/// Longest SLO name accepted, in bytes.
pub const MAX_SLO_NAME: usize = 256;

/// A label matcher's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

/// An instant-vector selector: a metric name and label matchers, as PromQL writes them
/// (`http_requests_total{code=~"5.."}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// Metric name.
    pub name: String,
    /// `(label, operator, value)`, in the order given.
    pub matchers: Vec<(String, MatchOp, String)>,
}

/// PromQL words a bare metric name cannot be (aggregations, operators, modifiers, numbers):
/// such a name is written as a `__name__` matcher instead.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "atan2",
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
    "limitk",
    "limit_ratio",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "start",
    "end",
    "step",
    "inf",
    "nan",
];

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Selector {
    /// Parses `name` or `name{label="v", label!~"re", …}` (values in double or single quotes
    /// with the escapes `\\ \" \' \n \r \t`, or in backticks, raw). Errors name the problem.
    pub fn parse(s: &str) -> Result<Selector, String> {
        if s.len() > MAX_SELECTOR {
            return Err(format!("{} bytes long; at most {MAX_SELECTOR}", s.len()));
        }
        let mut p = Cursor { s, i: 0 };
        p.skip_ws();
        let name = p.take_while(|c, first| {
            if first {
                is_name_start(c) || c == ':'
            } else {
                is_name_char(c) || c == ':'
            }
        });
        if name.is_empty() {
            return Err(match p.peek() {
                None => "empty: give a metric name, e.g. http_requests_total".into(),
                Some('{') => "no metric name before `{`: give one, e.g. http_requests_total{code=~\"5..\"}".into(),
                Some(c) => format!(
                    "`{c}` cannot start a metric name (letters, digits, `_` and `:`, not starting with a digit)"
                ),
            });
        }
        let mut matchers = Vec::new();
        p.skip_ws();
        if p.eat('{') {
            loop {
                p.skip_ws();
                if p.eat('}') {
                    break;
                }
                let label = p.take_while(|c, first| if first { is_name_start(c) } else { is_name_char(c) });
                if label.is_empty() {
                    return Err(match p.peek() {
                        None => "unclosed `{`".into(),
                        Some(c) => format!("expected a label name at byte {}, found `{c}`", p.i),
                    });
                }
                if label == "__name__" {
                    return Err("a `__name__` matcher: give the metric name before `{` instead".into());
                }
                p.skip_ws();
                let op = if p.eat_str("=~") {
                    MatchOp::Re
                } else if p.eat_str("!~") {
                    MatchOp::NotRe
                } else if p.eat_str("!=") {
                    MatchOp::Ne
                } else if p.eat('=') {
                    MatchOp::Eq
                } else {
                    return Err(format!("label `{label}`: expected one of = != =~ !~ at byte {}", p.i));
                };
                p.skip_ws();
                let value = p.string().map_err(|m| format!("label `{label}`: {m}"))?;
                matchers.push((label.to_string(), op, value));
                p.skip_ws();
                if p.eat(',') {
                    continue;
                }
                if p.eat('}') {
                    break;
                }
                return Err(match p.peek() {
                    None => "unclosed `{`".into(),
                    Some(c) => format!("expected `,` or `}}` at byte {}, found `{c}`", p.i),
                });
            }
        }
        p.skip_ws();
        if let Some(c) = p.peek() {
            return Err(format!(
                "unexpected `{c}` at byte {} (give an instant-vector selector only: a metric name and label matchers; the rules add rate() and the windows)",
                p.i
            ));
        }
        Ok(Selector {
            name: name.to_string(),
            matchers,
        })
    }
}

impl std::fmt::Display for Selector {
    /// PromQL: `name{label="value",…}`, values escaped by [`promql_quote`]; a name PromQL
    /// would read as a keyword goes into a `__name__` matcher.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keyword = KEYWORDS.contains(&self.name.to_ascii_lowercase().as_str());
        let mut parts = Vec::new();
        if keyword {
            parts.push(format!("__name__={}", promql_quote(&self.name)));
        } else {
            f.write_str(&self.name)?;
        }
        for (l, op, v) in &self.matchers {
            parts.push(format!("{l}{}{}", op.as_str(), promql_quote(v)));
        }
        if !parts.is_empty() {
            write!(f, "{{{}}}", parts.join(","))?;
        }
        Ok(())
    }
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn eat_str(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace()) {
            self.bump();
        }
    }
    fn take_while(&mut self, ok: impl Fn(char, bool) -> bool) -> &'a str {
        let start = self.i;
        while let Some(c) = self.peek() {
            if !ok(c, self.i == start) {
                break;
            }
            self.bump();
        }
        &self.s[start..self.i]
    }
    /// A quoted label value.
    fn string(&mut self) -> Result<String, String> {
        let at = self.i;
        let quote = match self.bump() {
            Some(q @ ('"' | '\'' | '`')) => q,
            Some(c) => return Err(format!("expected a quoted value at byte {at}, found `{c}`")),
            None => return Err("expected a quoted value, found the end".into()),
        };
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(format!("unterminated string starting at byte {at}")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') if quote != '`' => match self.bump() {
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some(c) if c == quote => out.push(c),
                    Some(c) => {
                        return Err(format!(
                            "unsupported escape `\\{c}` at byte {} (supported: \\\\ \\{quote} \\n \\r \\t; write other characters as themselves)",
                            self.i - c.len_utf8() - 1
                        ))
                    }
                    None => return Err(format!("unterminated string starting at byte {at}")),
                },
                Some('\n') if quote != '`' => return Err(format!("line break inside the string starting at byte {at} (write \\n)")),
                Some(c) => out.push(c),
            }
        }
    }
}

/// `s` as a PromQL double-quoted string (Go's escapes: `\\`, `\"`, `\n`, `\r`, `\t`,
/// other control characters as `\u00XX`).
pub fn promql_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `s` as a YAML double-quoted scalar: `\\`, `\"`, and every character YAML may not hold
/// literally or would fold (controls, NEL, the Unicode line and paragraph separators,
/// the BOM, non-characters) as an escape.
pub fn yaml_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\u{85}' => o.push_str("\\N"),
            '\u{2028}' => o.push_str("\\L"),
            '\u{2029}' => o.push_str("\\P"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}') => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `x` rounded to 12 significant digits and written as short as Rust writes it:
/// 14.4 × (1 − 0.999) is 0.014400000000000011 in binary and is written `0.0144`.
pub fn number(x: f64) -> String {
    let r: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    format!("{r}")
}

/// A Prometheus duration: the largest of d, h, m, s that divides `secs` (`3d`, `30m`).
pub fn prom_duration(secs: u64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= n && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// What the rules are made from.
#[derive(Clone, Debug)]
pub struct RulesInput {
    /// The `slo` label on every recorded series and alert (default: the scenario's name).
    pub slo: String,
    /// SLO target τ, in (0, 1).
    pub target: f64,
    /// Compliance period in seconds (the budget share in each alert's description).
    pub period_s: f64,
    /// Every request the SLO counts.
    pub requests: Selector,
    /// The failed ones.
    pub errors: Selector,
}

/// One recording rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Recorded series name.
    pub record: String,
    /// PromQL.
    pub expr: String,
    /// Labels added.
    pub labels: Vec<(String, String)>,
}

/// One alerting rule (`for: 0s`: it fires at the first evaluation its condition holds).
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Alert name: the [`AlertRule`]'s name.
    pub alert: String,
    /// PromQL.
    pub expr: String,
    /// Labels added (`severity`, `slo`).
    pub labels: Vec<(String, String)>,
    /// `summary` and `description`.
    pub annotations: Vec<(String, String)>,
}

/// One rule group: the recording rules, then the alerts that read them (one group, so an
/// alert reads ratios recorded at the same evaluation).
#[derive(Clone, Debug, PartialEq)]
pub struct RuleGroup {
    /// Group name (`chaosgate-slo-NAME`).
    pub name: String,
    /// Error ratio per window, shortest first.
    pub records: Vec<Record>,
    /// One per [`RULES`] entry, in its order.
    pub alerts: Vec<Alert>,
}

/// Every window the rules of [`RULES`] use, in seconds, shortest first, each once.
pub fn windows() -> Vec<u64> {
    crate::analysis::budget::rule_windows()
}

/// The recorded error ratio's name for a window (`chaosgate_slo:error_ratio:rate1h`).
pub fn record_name(window_s: u64) -> String {
    format!("{RECORD_PREFIX}{}", prom_duration(window_s))
}

fn percent(x: f64) -> String {
    format!("{}%", number(100.0 * x))
}

/// The alert for one rule: both windows' ratios above b*·(1 − τ).
fn alert(r: &AlertRule, inp: &RulesInput) -> Alert {
    let threshold = number(r.error_ratio(inp.target));
    let sel = format!("{{slo={}}}", promql_quote(&inp.slo));
    let (long, short) = (prom_duration(r.long_s), prom_duration(r.short_s));
    let expr = format!(
        "{}{sel} > {threshold} and {}{sel} > {threshold}",
        record_name(r.long_s),
        record_name(r.short_s)
    );
    let summary = format!(
        "SLO {}: error budget burning at {}x or faster over the last {long} and {short}",
        inp.slo,
        number(r.burn)
    );
    let description = format!(
        "The error ratio is above {threshold} ({} x the {} error budget of a {} target) over both the last {long} and the last {short}. At {}x the {} budget is spent in {}; {long} of it spends {}.",
        number(r.burn),
        percent(1.0 - inp.target),
        percent(inp.target),
        number(r.burn),
        prom_duration_f(inp.period_s),
        prom_duration_f(inp.period_s / r.burn),
        percent(r.budget_share(inp.period_s)),
    );
    Alert {
        alert: r.name.to_string(),
        expr,
        labels: vec![("severity".into(), r.severity.into()), ("slo".into(), inp.slo.clone())],
        annotations: vec![("summary".into(), summary), ("description".into(), description)],
    }
}

/// A period for prose: whole units when they divide it, else seconds.
fn prom_duration_f(secs: f64) -> String {
    if secs.fract() == 0.0 && (1.0..1e15).contains(&secs) {
        prom_duration(secs as u64)
    } else {
        format!("{}s", number(secs))
    }
}

/// The rules for `inp`, or what is wrong with it.
pub fn rule_group(inp: &RulesInput) -> Result<RuleGroup, String> {
    if !(inp.target > 0.0 && inp.target < 1.0) {
        return Err(format!("the SLO target must be in (0, 1), got {}", inp.target));
    }
    if !(inp.period_s.is_finite() && inp.period_s > 0.0) {
        return Err(format!("the SLO period must be positive, got {} s", inp.period_s));
    }
    if inp.slo.trim().is_empty() {
        return Err("the SLO name (the `slo` label) is empty".into());
    }
    if inp.slo.len() > MAX_SLO_NAME {
        return Err(format!(
            "the SLO name is {} bytes long; at most {MAX_SLO_NAME}",
            inp.slo.len()
        ));
    }
    let (req, err) = (inp.requests.to_string(), inp.errors.to_string());
    let records = windows()
        .into_iter()
        .map(|w| {
            let d = prom_duration(w);
            Record {
                record: record_name(w),
                expr: format!("sum(rate({err}[{d}])) / sum(rate({req}[{d}]))"),
                labels: vec![("slo".into(), inp.slo.clone())],
            }
        })
        .collect();
    Ok(RuleGroup {
        name: format!("chaosgate-slo-{}", inp.slo),
        records,
        alerts: RULES.iter().map(|r| alert(r, inp)).collect(),
    })
}

fn yaml_map(o: &mut String, indent: &str, key: &str, pairs: &[(String, String)]) {
    let _ = writeln!(o, "{indent}{key}:");
    for (k, v) in pairs {
        let _ = writeln!(o, "{indent}  {k}: {}", yaml_quote(v));
    }
}

/// The rules file: a header comment (`header` lines, each prefixed `# `), then the group.
pub fn render_yaml(g: &RuleGroup, header: &[String]) -> String {
    let mut o = String::new();
    for h in header {
        for line in h.lines() {
            let _ = writeln!(o, "# {}", line.chars().filter(|c| !c.is_control()).collect::<String>());
        }
    }
    o.push_str("groups:\n");
    let _ = writeln!(o, "  - name: {}", yaml_quote(&g.name));
    o.push_str("    rules:\n");
    for r in &g.records {
        let _ = writeln!(o, "      - record: {}", yaml_quote(&r.record));
        let _ = writeln!(o, "        expr: {}", yaml_quote(&r.expr));
        yaml_map(&mut o, "        ", "labels", &r.labels);
    }
    for a in &g.alerts {
        let _ = writeln!(o, "      - alert: {}", yaml_quote(&a.alert));
        let _ = writeln!(o, "        expr: {}", yaml_quote(&a.expr));
        o.push_str("        for: 0s\n");
        yaml_map(&mut o, "        ", "labels", &a.labels);
        yaml_map(&mut o, "        ", "annotations", &a.annotations);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(target: f64) -> RulesInput {
        RulesInput {
            slo: "checkout".into(),
            target,
            period_s: 30.0 * 86_400.0,
            requests: Selector::parse(DEFAULT_REQUESTS).unwrap(),
            errors: Selector::parse(DEFAULT_ERRORS).unwrap(),
        }
    }

    #[test]
    fn selectors_parse_and_print_canonically() {
        let s = Selector::parse(r#" http_requests_total { code =~ "5..", job!='api\'s' ,path=`a\b`, } "#).unwrap();
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(
            s.matchers,
            vec![
                ("code".into(), MatchOp::Re, "5..".into()),
                ("job".into(), MatchOp::Ne, "api's".into()),
                ("path".into(), MatchOp::Eq, "a\\b".into()),
            ]
        );
        assert_eq!(
            s.to_string(),
            r#"http_requests_total{code=~"5..",job!="api's",path="a\\b"}"#
        );
        // printing and parsing again gives the same selector
        assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
        let q = Selector::parse(r#"x{a="q\"uo\\te\nnl"}"#).unwrap();
        assert_eq!(q.matchers[0].2, "q\"uo\\te\nnl");
        assert_eq!(q.to_string(), r#"x{a="q\"uo\\te\nnl"}"#);
        assert_eq!(
            Selector::parse("ns:metric_total").unwrap().to_string(),
            "ns:metric_total"
        );
        assert_eq!(Selector::parse("x{}").unwrap().to_string(), "x");
        // a keyword as a metric name goes into __name__
        assert_eq!(
            Selector::parse("sum{a=\"b\"}").unwrap().to_string(),
            r#"{__name__="sum",a="b"}"#
        );
        assert_eq!(Selector::parse("Inf").unwrap().to_string(), r#"{__name__="Inf"}"#);
    }

    #[test]
    fn bad_selectors_are_named() {
        let err = |s: &str| Selector::parse(s).unwrap_err();
        assert!(err("").contains("empty"), "{}", err(""));
        assert!(err("  ").contains("empty"));
        assert!(err("{a=\"b\"}").contains("no metric name"));
        assert!(err("5xx_total").contains("`5` cannot start a metric name"));
        assert!(
            err("http-requests").contains("unexpected `-`"),
            "{}",
            err("http-requests")
        );
        assert!(err("x[5m]").contains("unexpected `[`"));
        assert!(err("rate(x[5m])").contains("unexpected `(`"));
        assert!(err("x{a=\"b\"").contains("unclosed"));
        assert!(err("x{a=\"b").contains("unterminated"));
        assert!(err("x{a=b}").contains("expected a quoted value"));
        assert!(err("x{a==\"b\"}").contains("expected a quoted value"));
        assert!(err("x{a<\"b\"}").contains("expected one of"));
        assert!(err("x{1a=\"b\"}").contains("expected a label name"));
        assert!(
            err("x{a=\"\\d\"}").contains("unsupported escape `\\d`"),
            "{}",
            err("x{a=\"\\d\"}")
        );
        assert!(err("x{__name__=\"y\"}").contains("__name__"));
        assert!(err("x{a=\"b\" c=\"d\"}").contains("expected `,` or `}`"));
        assert!(err("é").contains("cannot start"));
        assert!(err(&"x".repeat(MAX_SELECTOR + 1)).contains("at most"));
    }

    #[test]
    fn quoting() {
        assert_eq!(promql_quote("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        assert_eq!(
            yaml_quote("a\"b\\c\nd\te\u{1}\u{85}\u{2028}\u{2029}\u{feff}é"),
            r#""a\"b\\c\nd\te\u0001\N\L\P\ufeffé""#
        );
        assert_eq!(number(14.4 * (1.0 - 0.999)), "0.0144");
        assert_eq!(number(6.0 * (1.0 - 0.999)), "0.006");
        assert_eq!(number(1.0 - 0.999), "0.001");
        assert_eq!(number(14.4 * (1.0 - 0.9995)), "0.0072");
        assert_eq!(prom_duration(300), "5m");
        assert_eq!(prom_duration(1800), "30m");
        assert_eq!(prom_duration(3600), "1h");
        assert_eq!(prom_duration(21_600), "6h");
        assert_eq!(prom_duration(259_200), "3d");
        assert_eq!(prom_duration(90), "90s");
        assert_eq!(prom_duration(5400), "90m");
    }

    #[test]
    fn windows_come_from_the_budget_rules() {
        assert_eq!(windows(), vec![300, 1800, 3600, 21_600, 259_200]);
    }

    #[test]
    fn bad_inputs_are_named() {
        for t in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let e = rule_group(&input(t)).unwrap_err();
            assert!(e.contains("must be in (0, 1)"), "{e}");
        }
        let mut i = input(0.999);
        i.slo = " ".into();
        assert!(rule_group(&i).unwrap_err().contains("empty"));
        i.slo = "x".repeat(MAX_SLO_NAME + 1);
        assert!(rule_group(&i).unwrap_err().contains("at most"));
        let mut i = input(0.999);
        i.period_s = 0.0;
        assert!(rule_group(&i).unwrap_err().contains("period"));
    }

    /// The whole file for 99.9 % over 30 days, thresholds by hand: 14.4 × 0.001 = 0.0144,
    /// 6 × 0.001 = 0.006, 1 × 0.001 = 0.001; budget shares 14.4 × 1 h / 720 h = 2 %,
    /// 6 × 6 h / 720 h = 5 %, 1 × 72 h / 720 h = 10 %; 30 d / 14.4 = 50 h = 180000 s.
    #[test]
    fn the_whole_file_at_99_9() {
        let g = rule_group(&input(0.999)).unwrap();
        let y = render_yaml(&g, &["chaosgate rules for checkout".into()]);
        let rec = |w: &str| {
            format!(
                "      - record: \"chaosgate_slo:error_ratio:rate{w}\"\n        expr: \"sum(rate(chaosgate_load_requests_total{{outcome!~\\\"ok|dropped\\\"}}[{w}])) / sum(rate(chaosgate_load_requests_total{{outcome!=\\\"dropped\\\"}}[{w}]))\"\n        labels:\n          slo: \"checkout\"\n"
            )
        };
        let mut want =
            String::from("# chaosgate rules for checkout\ngroups:\n  - name: \"chaosgate-slo-checkout\"\n    rules:\n");
        for w in ["5m", "30m", "1h", "6h", "3d"] {
            want.push_str(&rec(w));
        }
        want.push_str(concat!(
            "      - alert: \"page_14.4x_1h_5m\"\n",
            "        expr: \"chaosgate_slo:error_ratio:rate1h{slo=\\\"checkout\\\"} > 0.0144 and chaosgate_slo:error_ratio:rate5m{slo=\\\"checkout\\\"} > 0.0144\"\n",
            "        for: 0s\n",
            "        labels:\n",
            "          severity: \"page\"\n",
            "          slo: \"checkout\"\n",
            "        annotations:\n",
            "          summary: \"SLO checkout: error budget burning at 14.4x or faster over the last 1h and 5m\"\n",
            "          description: \"The error ratio is above 0.0144 (14.4 x the 0.1% error budget of a 99.9% target) over both the last 1h and the last 5m. At 14.4x the 30d budget is spent in 50h; 1h of it spends 2%.\"\n",
            "      - alert: \"page_6x_6h_30m\"\n",
            "        expr: \"chaosgate_slo:error_ratio:rate6h{slo=\\\"checkout\\\"} > 0.006 and chaosgate_slo:error_ratio:rate30m{slo=\\\"checkout\\\"} > 0.006\"\n",
            "        for: 0s\n",
            "        labels:\n",
            "          severity: \"page\"\n",
            "          slo: \"checkout\"\n",
            "        annotations:\n",
            "          summary: \"SLO checkout: error budget burning at 6x or faster over the last 6h and 30m\"\n",
            "          description: \"The error ratio is above 0.006 (6 x the 0.1% error budget of a 99.9% target) over both the last 6h and the last 30m. At 6x the 30d budget is spent in 5d; 6h of it spends 5%.\"\n",
            "      - alert: \"ticket_1x_3d_6h\"\n",
            "        expr: \"chaosgate_slo:error_ratio:rate3d{slo=\\\"checkout\\\"} > 0.001 and chaosgate_slo:error_ratio:rate6h{slo=\\\"checkout\\\"} > 0.001\"\n",
            "        for: 0s\n",
            "        labels:\n",
            "          severity: \"ticket\"\n",
            "          slo: \"checkout\"\n",
            "        annotations:\n",
            "          summary: \"SLO checkout: error budget burning at 1x or faster over the last 3d and 6h\"\n",
            "          description: \"The error ratio is above 0.001 (1 x the 0.1% error budget of a 99.9% target) over both the last 3d and the last 6h. At 1x the 30d budget is spent in 30d; 3d of it spends 10%.\"\n",
        ));
        assert_eq!(y, want, "got:\n{y}");
    }

    #[test]
    fn other_targets_scale_the_thresholds() {
        // 99.5 %: ε = 0.005 → 14.4 × 0.005 = 0.072, 6 × 0.005 = 0.03, 1 × 0.005 = 0.005
        let g = rule_group(&input(0.995)).unwrap();
        let th: Vec<&str> = g.alerts.iter().map(|a| a.expr.rsplit(" > ").next().unwrap()).collect();
        assert_eq!(th, ["0.072", "0.03", "0.005"]);
    }

    #[test]
    fn an_odd_slo_name_is_escaped_in_promql_and_yaml() {
        let mut i = input(0.999);
        i.slo = "we\"ird\\slo\nx".into();
        let g = rule_group(&i).unwrap();
        assert!(
            g.alerts[0].expr.contains(r#"{slo="we\"ird\\slo\nx"}"#),
            "{}",
            g.alerts[0].expr
        );
        let y = render_yaml(&g, &[]);
        assert!(y.contains(r#"slo: "we\"ird\\slo\nx""#), "{y}");
        // the PromQL string inside the YAML string: escaped twice
        assert!(y.contains(r#"{slo=\"we\\\"ird\\\\slo\\nx\"}"#), "{y}");
    }
}
