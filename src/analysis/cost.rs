//! What a run cost, per provider, from a price table (pure: no I/O but [`PriceTable::load`]).
//!
//! ```toml
//! # examples/prices/article-markup.toml
//! [providers.openai-direct.models]
//! gpt-4o = { input_usd_per_1m = 2.50, output_usd_per_1m = 10.00 }
//!
//! [providers.portkey]
//! base = "openai-direct"          # optional: whose list price this one marks up
//! [providers.portkey.models]
//! gpt-4o = { input_usd_per_1m = 2.75, output_usd_per_1m = 11.00 }
//! "*" = { input_usd_per_1m = 1.0, output_usd_per_1m = 2.0 }   # any other model
//! ```
//!
//! Cost of one provider = Σ over its models (input tokens × input price + output tokens ×
//! output price) / 1,000,000. A model is priced by its own entry, else the provider's
//! `"*"` entry; usage with neither is listed under `unpriced` (never silently free).
//! With a `base`, the same tokens are also priced at the base provider's price for the
//! same model, giving `base_usd` and `markup_pct` = (usd / base_usd − 1) × 100.

use crate::diag::{ConfigErrors, Path};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A price, USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens.
    pub input_usd_per_1m: f64,
    /// Completion tokens.
    pub output_usd_per_1m: f64,
}

impl Price {
    /// USD for these token counts.
    pub fn usd(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_usd_per_1m + output_tokens as f64 * self.output_usd_per_1m) / 1e6
    }
}

/// One provider's prices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPrices {
    /// The provider whose list price this one marks up (for `markup_pct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Model → price; `"*"` prices every model without its own entry.
    #[serde(default)]
    pub models: BTreeMap<String, Price>,
}

/// A price table: provider → model → price.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// By provider name (as the scenario or the `x-chaosgate-provider` header names it).
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderPrices>,
    /// What the run is compared with: every billed token bought at this provider's price
    /// for this model (`reference = { provider = "openai-direct", model = "gpt-4o" }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

/// `reference`: one (provider, model) that prices all of a run's tokens for comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
}

impl PriceTable {
    /// Semantic checks: `(path, message)` per problem.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let mut out = Vec::new();
        if self.providers.is_empty() {
            out.push((Path::root(), "no [providers.<name>] tables: nothing is priced".into()));
        }
        if let Some(r) = &self.reference {
            if self.price(&r.provider, &r.model).is_none() {
                out.push((
                    Path::root().key("reference"),
                    format!(
                        "no price for provider `{}` model `{}` in this table",
                        r.provider, r.model
                    ),
                ));
            }
        }
        for (name, p) in &self.providers {
            let path = Path::root().key("providers").key(name);
            if p.models.is_empty() {
                out.push((
                    path.clone(),
                    format!("provider `{name}` prices no model (add [providers.{name}.models])"),
                ));
            }
            for (model, price) in &p.models {
                for (k, v) in [
                    ("input_usd_per_1m", price.input_usd_per_1m),
                    ("output_usd_per_1m", price.output_usd_per_1m),
                ] {
                    if !(v.is_finite() && v >= 0.0) {
                        out.push((
                            path.key("models").key(model).key(k),
                            format!("must be a price ≥ 0 in USD per 1M tokens, got {v}"),
                        ));
                    }
                }
            }
            if let Some(b) = &p.base {
                if b == name {
                    out.push((path.key("base"), "a provider cannot be its own base".into()));
                } else if !self.providers.contains_key(b) {
                    let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                    out.push((
                        path.key("base"),
                        format!("unknown provider `{b}` (the table has {})", known.join(", ")),
                    ));
                }
            }
        }
        out
    }

    /// Parses and validates TOML text; `file` names it in messages.
    pub fn from_toml(src: &str, file: &str) -> Result<PriceTable, ConfigErrors> {
        let t: PriceTable = toml::from_str(src)
            .map_err(|e| ConfigErrors(vec![crate::fault::profile::toml_diagnostic(src, file, &e)]))?;
        ConfigErrors::check(src, file, t.problems())?;
        Ok(t)
    }

    /// Reads, parses and validates a price file: every problem at once, each with its line.
    #[allow(clippy::disallowed_methods)] // a loader: the price table a scenario names, read when it loads
    pub fn load(path: &std::path::Path) -> Result<PriceTable, ConfigErrors> {
        let src = crate::diag::read_config(path)?;
        PriceTable::from_toml(&src, &path.display().to_string())
    }

    /// The price of `model` at `provider`: its own entry, else the provider's `"*"`.
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        let p = self.providers.get(provider)?;
        p.models.get(model).or_else(|| p.models.get("*")).copied()
    }

    /// `(provider, model)` pairs with no price, each as a message (for validating a
    /// scenario up front).
    pub fn missing<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
        pairs
            .into_iter()
            .filter(|(p, m)| self.price(p, m).is_none())
            .map(|(p, m)| match self.providers.get(p) {
                None => format!("no prices for provider `{p}`"),
                Some(pp) => format!(
                    "provider `{p}` has no price for model `{m}` (priced: {}; \"*\" prices any model)",
                    pp.models.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
            .collect()
    }
}

/// Token totals of one (provider, model) pair in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Provider that served the requests.
    pub provider: String,
    /// Model asked for.
    pub model: String,
    /// Requests (ok ones: those that were billed).
    pub requests: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// Cost of one provider's (or one model's) share of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    /// Requests.
    pub requests: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// What they cost.
    pub usd: f64,
    /// What the same tokens cost at the base provider's price (when it has a base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_usd: Option<f64>,
    /// (usd / base_usd − 1) × 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markup_pct: Option<f64>,
    /// Some usage in this line has no base price (so there is no base total).
    #[serde(skip)]
    base_gap: bool,
}

impl CostLine {
    fn add(&mut self, u: &Usage, usd: f64, base_usd: Option<f64>) {
        self.requests += u.requests;
        self.input_tokens += u.input_tokens;
        self.output_tokens += u.output_tokens;
        self.usd += usd;
        self.base_gap |= base_usd.is_none();
        self.base_usd = match base_usd {
            Some(b) if !self.base_gap => Some(self.base_usd.unwrap_or(0.0) + b),
            _ => None,
        };
        self.markup_pct = self.base_usd.filter(|b| *b > 0.0).map(|b| (self.usd / b - 1.0) * 100.0);
    }
}

/// A provider's line plus its split by model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderCost {
    /// Totals of the provider.
    #[serde(flatten)]
    pub total: CostLine,
    /// By model.
    pub models: BTreeMap<String, CostLine>,
}

/// The cost of a run; these JSON names are a contract (`cost.total_usd`,
/// `cost.per_provider.<name>.usd`, …).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// Sum of every priced provider.
    pub total_usd: f64,
    /// By provider.
    pub per_provider: BTreeMap<String, ProviderCost>,
    /// Usage the table has no price for (not in `total_usd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpriced: Vec<Usage>,
    /// Every priced token at the table's `reference` price (e.g. all of it on GPT-4o direct).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_usd: Option<f64>,
    /// (1 − total / reference) × 100: what the routing saved (negative: cost more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saving_pct: Option<f64>,
}

/// Prices a run's usage. Several entries for the same (provider, model) add up.
pub fn cost(table: &PriceTable, usage: &[Usage]) -> CostReport {
    let mut r = CostReport::default();
    for u in usage {
        let Some(price) = table.price(&u.provider, &u.model) else {
            match r
                .unpriced
                .iter_mut()
                .find(|x| x.provider == u.provider && x.model == u.model)
            {
                Some(x) => {
                    x.requests += u.requests;
                    x.input_tokens += u.input_tokens;
                    x.output_tokens += u.output_tokens;
                }
                None => r.unpriced.push(u.clone()),
            }
            continue;
        };
        let usd = price.usd(u.input_tokens, u.output_tokens);
        let base_usd = table.providers[&u.provider]
            .base
            .as_deref()
            .and_then(|b| table.price(b, &u.model))
            .map(|p| p.usd(u.input_tokens, u.output_tokens));
        let p = r.per_provider.entry(u.provider.clone()).or_default();
        p.total.add(u, usd, base_usd);
        p.models.entry(u.model.clone()).or_default().add(u, usd, base_usd);
        r.total_usd += usd;
        if let Some(rp) = table
            .reference
            .as_ref()
            .and_then(|x| table.price(&x.provider, &x.model))
        {
            *r.reference_usd.get_or_insert(0.0) += rp.usd(u.input_tokens, u.output_tokens);
        }
    }
    if let Some(reference) = r.reference_usd.filter(|x| *x > 0.0) {
        r.saving_pct = Some((1.0 - r.total_usd / reference) * 100.0);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = r#"
[providers.openai-direct.models]
gpt-4o = { input_usd_per_1m = 2.50, output_usd_per_1m = 10.00 }

[providers.portkey]
base = "openai-direct"
[providers.portkey.models]
gpt-4o = { input_usd_per_1m = 2.75, output_usd_per_1m = 11.00 }
"*" = { input_usd_per_1m = 1.00, output_usd_per_1m = 4.00 }
"#;

    fn usage(provider: &str, model: &str, requests: u64, input: u64, output: u64) -> Usage {
        Usage {
            provider: provider.into(),
            model: model.into(),
            requests,
            input_tokens: input,
            output_tokens: output,
        }
    }

    /// The article's story in one line: 70 % of the tokens on Portkey's GPT-4o (+10 %),
    /// 30 % on a model at a fifth of the price — against all of it on GPT-4o direct.
    #[test]
    fn saving_against_the_reference_by_hand() {
        let t = PriceTable::from_toml(
            &format!("reference = {{ provider = \"openai-direct\", model = \"gpt-4o\" }}\n{ARTICLE}"),
            "p.toml",
        )
        .unwrap();
        let r = cost(
            &t,
            &[
                usage("portkey", "gpt-4o", 700, 700_000, 0), // 0.7 M × 2.75 = 1.925
                usage("portkey", "haiku", 300, 300_000, 0),  // 0.3 M × 1.00 ("*") = 0.30
            ],
        );
        assert!((r.total_usd - 2.225).abs() < 1e-12);
        assert!((r.reference_usd.unwrap() - 2.5).abs() < 1e-12, "1 M × 2.50");
        assert!((r.saving_pct.unwrap() - 11.0).abs() < 1e-9, "1 − 2.225 / 2.5 = 11 %");
        let bad = PriceTable::from_toml(
            &format!("reference = {{ provider = \"x\", model = \"y\" }}\n{ARTICLE}"),
            "p.toml",
        );
        assert!(bad.unwrap_err().to_string().contains("no price for provider `x`"));
    }

    #[test]
    fn costs_by_hand() {
        let t = PriceTable::from_toml(ARTICLE, "p.toml").unwrap();
        let r = cost(
            &t,
            &[
                // 1,000 requests × (500 in, 200 out) at $2.50 / $10: 1.25 + 2.00 = $3.25
                usage("openai-direct", "gpt-4o", 1000, 500_000, 200_000),
                // same tokens through Portkey at $2.75 / $11: 1.375 + 2.20 = $3.575 (+10 %)
                usage("portkey", "gpt-4o", 1000, 500_000, 200_000),
                // a model without its own entry: "*" at $1 / $4: 0.3 + 0.4 = $0.70; the base has
                // no price for it, so no markup on this line
                usage("portkey", "claude-3-5-haiku", 400, 300_000, 100_000),
                // a second batch of the first pair adds up: 0.25 + 0.5 = $0.75
                usage("openai-direct", "gpt-4o", 100, 100_000, 50_000),
                usage("nobody", "x", 3, 30, 10),
            ],
        );
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        let oa = &r.per_provider["openai-direct"];
        assert_eq!(
            (oa.total.requests, oa.total.input_tokens, oa.total.output_tokens),
            (1100, 600_000, 250_000)
        );
        close(oa.total.usd, 4.0);
        assert_eq!(oa.total.markup_pct, None);
        let pk = &r.per_provider["portkey"];
        close(pk.models["gpt-4o"].usd, 3.575);
        close(pk.models["gpt-4o"].base_usd.unwrap(), 3.25);
        close(pk.models["gpt-4o"].markup_pct.unwrap(), 10.0);
        close(pk.models["claude-3-5-haiku"].usd, 0.7);
        assert_eq!(pk.models["claude-3-5-haiku"].markup_pct, None);
        close(pk.total.usd, 4.275);
        // the provider total has a model without a base price: no provider-wide markup
        assert_eq!(pk.total.markup_pct, None);
        close(r.total_usd, 8.275);
        assert_eq!(r.unpriced, vec![usage("nobody", "x", 3, 30, 10)]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["per_provider"]["portkey"]["requests"], 1400);
        assert!(json["per_provider"]["openai-direct"].get("markup_pct").is_none());
    }

    #[test]
    fn every_problem_with_its_line() {
        let src = "[providers.a]\nbase = \"zzz\"\n[providers.a.models]\nm = { input_usd_per_1m = -1.0, output_usd_per_1m = 1.0 }\n\n[providers.b]\n";
        let e = PriceTable::from_toml(src, "prices.toml").unwrap_err();
        let lines: Vec<(Option<usize>, String)> = e.0.iter().map(|d| (d.line, d.path.clone())).collect();
        assert!(lines.contains(&(Some(2), "providers.a.base".into())), "{e}");
        assert!(
            lines.contains(&(Some(4), "providers.a.models.m.input_usd_per_1m".into())),
            "{e}"
        );
        assert!(lines.contains(&(Some(6), "providers.b".into())), "{e}");
        assert!(e.to_string().contains("unknown provider `zzz`"), "{e}");
        let e = PriceTable::from_toml("[providers.a.models]\nm = { input = 1.0 }\n", "p.toml").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("p.toml:2:") && s.contains("unknown field `input`"), "{s}");
        assert!(s.contains("input_usd_per_1m"), "{s}");
    }

    #[test]
    fn the_article_markup_table() {
        let src = include_str!("../../examples/prices/article-markup.toml");
        let t = PriceTable::from_toml(src, "article-markup.toml").unwrap();
        // the same 1 M input + 1 M output tokens everywhere: direct costs 2.50 + 10.00
        let u: Vec<Usage> = ["openai-direct", "portkey", "openrouter", "together-ai"]
            .iter()
            .map(|p| usage(p, "gpt-4o", 1, 1_000_000, 1_000_000))
            .collect();
        let r = cost(&t, &u);
        let markup = |p: &str| r.per_provider[p].total.markup_pct;
        assert_eq!(markup("openai-direct"), None);
        // (2.75 + 11) / 12.5 = 1.10; (2.62 + 10.5) / 12.5 = 1.0496; (3 + 12) / 12.5 = 1.20
        for (p, want) in [("portkey", 10.0), ("openrouter", 4.96), ("together-ai", 20.0)] {
            assert!((markup(p).unwrap() - want).abs() < 1e-9, "{p}: {:?}", markup(p));
        }
        assert!((r.total_usd - (12.5 + 13.75 + 13.12 + 15.0)).abs() < 1e-9);
    }

    #[test]
    fn missing_prices_are_named() {
        let t = PriceTable::from_toml(ARTICLE, "p.toml").unwrap();
        let m = t.missing([("openai-direct", "gpt-4o-mini"), ("portkey", "anything"), ("x", "y")]);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].contains("`gpt-4o-mini`") && m[0].contains("priced: gpt-4o"),
            "{m:?}"
        );
        assert!(m[1].contains("provider `x`"), "{m:?}");
    }
}
