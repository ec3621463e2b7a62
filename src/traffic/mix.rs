//! A weighted mix of request kinds: chat (streamed or not) or embeddings, OpenAI or
//! Anthropic API, prompt and max_tokens distributions, model name.
//!
//! ```toml
//! [[kind]]
//! name = "support-chat"
//! weight = 0.6
//! api = "openai"
//! stream = true
//! model = "gpt-4o"
//! prompt_tokens = { min = 200, max = 800 }
//! max_tokens = 300
//! ```

use crate::provider::Api;
use crate::rng::Stream;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Chat or embeddings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Chat completions / messages.
    #[default]
    Chat,
    /// Embeddings (OpenAI API).
    Embeddings,
}

/// A token count: a number, `{ min, max }` (uniform) or `{ mean, sd }` (normal, ≥ 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tokens {
    /// Always this many.
    Fixed(u32),
    /// Uniform in `[min, max]`.
    Range {
        /// Fewest.
        min: u32,
        /// Most.
        max: u32,
    },
    /// Normal, rounded, at least 1.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sd: f64,
    },
}

impl Tokens {
    /// Draws a count.
    #[inline]
    pub fn sample(&self, rng: &mut Stream) -> u32 {
        match *self {
            Tokens::Fixed(n) => n.max(1),
            Tokens::Range { min, max } => rng.random_range(min.max(1)..=max.max(min.max(1))),
            Tokens::Normal { mean, sd } => {
                let z: f64 = StandardNormal.sample(rng);
                (mean + sd * z).round().clamp(1.0, u32::MAX as f64) as u32
            }
        }
    }

    fn validate(&self) -> Option<String> {
        let max = crate::diag::limits::MAX_TOKENS;
        match *self {
            Tokens::Fixed(n) if n == 0 || f64::from(n) > max => Some(format!("must be in [1, {max}], got {n}")),
            Tokens::Range { min, max: hi } if min == 0 || min > hi || f64::from(hi) > max => {
                Some(format!("need 1 ≤ min ≤ max ≤ {max}, got {min}..{hi}"))
            }
            Tokens::Normal { mean, sd } if !((1.0..=max).contains(&mean) && (0.0..=max).contains(&sd)) => {
                Some(format!("need 1 ≤ mean ≤ {max} and 0 ≤ sd ≤ {max}, got {mean}, {sd}"))
            }
            _ => None,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn default_prompt() -> Tokens {
    Tokens::Fixed(50)
}
fn default_max() -> Tokens {
    Tokens::Fixed(128)
}
fn default_inputs() -> u32 {
    1
}

/// One kind of request in the mix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSpec {
    /// Name (reports group by it).
    pub name: String,
    /// Relative weight (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// API (default: the run's `--api`; embeddings: always `openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// Chat or embeddings.
    #[serde(default)]
    pub endpoint: EndpointKind,
    /// Streamed (chat only).
    #[serde(default)]
    pub stream: bool,
    /// Model (default: `gpt-4o`, `claude-3-5-sonnet-20241022` or `text-embedding-3-small`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Prompt length in tokens (default 50).
    #[serde(default = "default_prompt")]
    pub prompt_tokens: Tokens,
    /// max_tokens (default 128; chat only).
    #[serde(default = "default_max")]
    pub max_tokens: Tokens,
    /// Inputs per embeddings call (default 1).
    #[serde(default = "default_inputs")]
    pub inputs: u32,
}

impl KindSpec {
    /// A plain chat kind.
    pub fn chat(name: &str, stream: bool) -> KindSpec {
        KindSpec {
            name: name.to_string(),
            weight: 1.0,
            api: None,
            endpoint: EndpointKind::Chat,
            stream,
            model: None,
            prompt_tokens: default_prompt(),
            max_tokens: default_max(),
            inputs: 1,
        }
    }

    /// Problems, each at its key in the kind's table.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let key = |k: &str| crate::diag::Path::root().key(k);
        let mut v = Vec::new();
        if let Some(m) = crate::diag::limits::number(self.weight, true, crate::diag::limits::MAX_WEIGHT) {
            v.push((key("weight"), m));
        }
        if let Some(m) = self.prompt_tokens.validate() {
            v.push((key("prompt_tokens"), m));
        }
        if let Some(m) = self.max_tokens.validate() {
            v.push((key("max_tokens"), m));
        }
        if self.endpoint == EndpointKind::Embeddings {
            if self.stream {
                v.push((key("stream"), "embeddings cannot be streamed".into()));
            }
            if self.api == Some(Api::Anthropic) {
                v.push((
                    key("api"),
                    "Anthropic has no embeddings endpoint; use api = \"openai\"".into(),
                ));
            }
            if let Some(m) = crate::diag::limits::count(self.inputs.into(), crate::diag::limits::MAX_INPUTS.into()) {
                v.push((key("inputs"), m));
            }
        }
        v
    }
}

/// What one planned request looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestShape {
    /// Index of the kind in the mix.
    pub kind: u32,
    /// API.
    pub api: Api,
    /// Endpoint.
    pub endpoint: EndpointKind,
    /// Streamed.
    pub stream: bool,
    /// The model the request itself names (a trace row's), if any; otherwise its kind's
    /// ([`Mix::model_of`]). Kept out of the common case so a planned request holds no
    /// shared pointer to count.
    pub model: Option<Arc<str>>,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// max_tokens (chat).
    pub max_tokens: u32,
    /// Inputs (embeddings).
    pub inputs: u32,
}

/// A weighted mix, ready to draw from.
#[derive(Clone, Debug)]
pub struct Mix {
    kinds: Vec<KindSpec>,
    models: Vec<Arc<str>>,
    apis: Vec<Api>,
    cumulative: Vec<f64>,
}

impl Mix {
    /// Builds the mix; `default_api` fills chat kinds without `api`.
    pub fn new(kinds: Vec<KindSpec>, default_api: Api) -> Result<Mix, String> {
        if kinds.is_empty() {
            return Err("the mix has no kinds".into());
        }
        let total: f64 = kinds.iter().map(|k| k.weight).sum();
        if total <= 0.0 || !total.is_finite() {
            return Err("the mix's weights must add up to more than 0".into());
        }
        let mut acc = 0.0;
        let cumulative = kinds
            .iter()
            .map(|k| {
                acc += k.weight / total;
                acc
            })
            .collect();
        // Embeddings exist only in OpenAI's wire format (gateways serve `/v1/embeddings`
        // whatever their chat flavour), so an embeddings kind without `api` is OpenAI.
        let apis: Vec<Api> = kinds
            .iter()
            .map(|k| match (k.api, k.endpoint) {
                (Some(api), _) => api,
                (None, EndpointKind::Embeddings) => Api::OpenAi,
                (None, EndpointKind::Chat) => default_api,
            })
            .collect();
        let models = kinds
            .iter()
            .zip(&apis)
            .map(|(k, api)| {
                Arc::from(k.model.clone().unwrap_or_else(|| {
                    match (k.endpoint, api) {
                        (EndpointKind::Embeddings, _) => "text-embedding-3-small",
                        (_, Api::OpenAi) => "gpt-4o",
                        (_, Api::Anthropic) => "claude-3-5-sonnet-20241022",
                    }
                    .to_string()
                }))
            })
            .collect();
        Ok(Mix {
            kinds,
            models,
            apis,
            cumulative,
        })
    }

    /// The model each kind asks for (its own, else the API's default), by kind index.
    pub fn models(&self) -> Vec<String> {
        self.models.iter().map(|m| m.to_string()).collect()
    }

    /// The model `shape` asks for: its own, else its kind's.
    pub fn model_of<'a>(&'a self, shape: &'a RequestShape) -> &'a str {
        match &shape.model {
            Some(m) => m,
            None => self.models.get(shape.kind as usize).map_or("", |m| m),
        }
    }

    /// The kinds.
    pub fn kinds(&self) -> &[KindSpec] {
        &self.kinds
    }

    /// Draws the shape of the next request.
    #[inline]
    pub fn draw(&self, rng: &mut Stream) -> RequestShape {
        let i = self.pick(rng);
        self.shape(i, rng)
    }

    /// The kind of the next request, by weight.
    #[inline]
    fn pick(&self, rng: &mut Stream) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.kinds.len() - 1)
    }

    /// The shape of a request of kind `i`.
    #[inline]
    pub fn shape(&self, i: usize, rng: &mut Stream) -> RequestShape {
        let mut out = RequestShape {
            kind: 0,
            api: self.apis[i],
            endpoint: EndpointKind::Chat,
            stream: false,
            model: None,
            prompt_tokens: 0,
            max_tokens: 0,
            inputs: 0,
        };
        self.shape_into(i, rng, &mut out);
        out
    }

    /// [`Mix::draw`] written field by field into `out` (a driver's reused slot): the same
    /// draws, and no whole shape copied through memory just after it was written.
    #[inline]
    pub fn draw_into(&self, rng: &mut Stream, out: &mut RequestShape) {
        let i = self.pick(rng);
        self.shape_into(i, rng, out);
    }

    /// [`Mix::shape`] written field by field into `out`.
    #[inline]
    pub fn shape_into(&self, i: usize, rng: &mut Stream, out: &mut RequestShape) {
        let k = &self.kinds[i];
        out.kind = i as u32;
        out.api = self.apis[i];
        out.endpoint = k.endpoint;
        out.stream = k.stream && k.endpoint == EndpointKind::Chat;
        out.model = None;
        out.prompt_tokens = k.prompt_tokens.sample(rng);
        out.max_tokens = k.max_tokens.sample(rng);
        out.inputs = k.inputs.max(1);
    }

    /// Index of the kind called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.kinds.iter().position(|k| k.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn weights_are_respected() {
        let mut a = KindSpec::chat("a", true);
        a.weight = 3.0;
        let b = KindSpec {
            endpoint: EndpointKind::Embeddings,
            ..KindSpec::chat("b", false)
        };
        let mix = Mix::new(vec![a, b], Api::OpenAi).unwrap();
        let mut r = stream(1, "mix");
        let n = 40_000;
        let a_share = (0..n).filter(|_| mix.draw(&mut r).kind == 0).count() as f64 / n as f64;
        assert!((a_share - 0.75).abs() < 0.01, "{a_share}");
        let s = mix.shape(1, &mut r);
        assert_eq!((mix.model_of(&s), s.stream), ("text-embedding-3-small", false));
    }

    #[test]
    fn token_distributions() {
        let mut r = stream(2, "t");
        let range = Tokens::Range { min: 10, max: 20 };
        assert!((0..1000).all(|_| (10..=20).contains(&range.sample(&mut r))));
        let n = Tokens::Normal { mean: 100.0, sd: 10.0 };
        let m = (0..20_000).map(|_| n.sample(&mut r) as f64).sum::<f64>() / 20_000.0;
        assert!((m - 100.0).abs() < 0.5);
        let bad = KindSpec {
            max_tokens: Tokens::Range { min: 5, max: 1 },
            ..KindSpec::chat("x", false)
        };
        assert_eq!(bad.problems()[0].0.to_string(), "max_tokens");
        let t: KindSpec =
            toml::from_str("name = \"x\"\nprompt_tokens = { min = 1, max = 9 }\nmax_tokens = 7\n").unwrap();
        assert_eq!(t.max_tokens, Tokens::Fixed(7));
    }

    #[test]
    fn embeddings_speak_openai_even_in_an_anthropic_run() {
        let e = KindSpec {
            endpoint: EndpointKind::Embeddings,
            ..KindSpec::chat("e", false)
        };
        let mix = Mix::new(vec![KindSpec::chat("c", true), e], Api::Anthropic).unwrap();
        let mut r = stream(3, "m");
        let (c, e) = (mix.shape(0, &mut r), mix.shape(1, &mut r));
        assert_eq!(
            (c.api, mix.model_of(&c)),
            (Api::Anthropic, "claude-3-5-sonnet-20241022")
        );
        assert_eq!(
            (e.api, e.endpoint, e.stream),
            (Api::OpenAi, EndpointKind::Embeddings, false)
        );
    }

    #[test]
    fn the_seed_workload_parses_and_mixes_as_written() {
        let text = include_str!("../../examples/workloads/seed-three-tasks.toml");
        let mf: crate::traffic::MixFile = toml::from_str(text).unwrap();
        assert!(mf.kinds.iter().all(|k| k.problems().is_empty()));
        let mix = Mix::new(mf.kinds, Api::OpenAi).unwrap();
        let mut r = stream(4, "m");
        let n = 100_000;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            let s = mix.draw(&mut r);
            counts[s.kind as usize] += 1;
            match s.kind {
                0 => assert!(s.stream && (300..=1200).contains(&s.prompt_tokens)),
                1 => assert!(!s.stream && (150..=400).contains(&s.max_tokens)),
                _ => assert_eq!(
                    (s.endpoint, mix.model_of(&s)),
                    (EndpointKind::Embeddings, "text-embedding-3-small")
                ),
            }
        }
        for (c, w) in counts.iter().zip([0.6, 0.25, 0.15]) {
            assert!((*c as f64 / n as f64 - w).abs() < 0.006, "{counts:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn draws_stay_in_range_and_zero_weights_never_win(
            w in proptest::collection::vec(0u8..4, 1..6),
            lo in 1u32..100,
            span in 0u32..100,
            seed in 0u64..1000,
        ) {
            proptest::prop_assume!(w.iter().any(|&x| x > 0));
            let kinds: Vec<KindSpec> = w
                .iter()
                .enumerate()
                .map(|(i, &x)| KindSpec {
                    weight: f64::from(x),
                    prompt_tokens: Tokens::Range { min: lo, max: lo + span },
                    ..KindSpec::chat(&format!("k{i}"), i % 2 == 0)
                })
                .collect();
            let mix = Mix::new(kinds, Api::OpenAi).unwrap();
            let mut r = stream(seed, "p");
            for _ in 0..200 {
                let s = mix.draw(&mut r);
                proptest::prop_assert!(w[s.kind as usize] > 0);
                proptest::prop_assert!((lo..=lo + span).contains(&s.prompt_tokens));
            }
        }
    }
}
