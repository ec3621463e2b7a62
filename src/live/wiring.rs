//! The live proxy's wiring: where it listens, where each target of the policy lives, and
//! whether clients' `x-chaosgate-*` headers pass (tests only). The policy
//! ([`GatewayConfig`]) knows targets by name only; the simulator needs nothing more, and a
//! scenario's builtin gateway gets its URLs when the live driver has bound the mocks.
//!
//! A `gateway.toml` (`chaosgate gateway --config`) is one file for both: `listen`,
//! `pass_chaosgate_headers` and each `targets[i].url` are taken out here, and what is left
//! is the policy, read with its own unknown-key checks.

use crate::diag::Path;
use crate::gateway::GatewayConfig;

/// The default listen address of `chaosgate gateway`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";

/// The policy and the sockets it is wired to.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Listen address.
    pub listen: String,
    /// Base URL of each policy target, in the policy's order.
    pub upstreams: Vec<String>,
    /// Test only: pass the clients' `x-chaosgate-*` request headers (forced faults, probe
    /// marks) on to the upstreams. Off by default: the proxy strips them, so no client can
    /// force faults on a provider that every other client shares.
    pub pass_chaosgate_headers: bool,
    /// What the gateway decides.
    pub policy: GatewayConfig,
    /// Worker threads of its HTTP server (0: one per core).
    pub workers: usize,
}

impl ProxyConfig {
    /// `policy` wired to `upstreams` (one per target, in order), on the default address.
    pub fn new(policy: GatewayConfig, upstreams: Vec<String>) -> ProxyConfig {
        ProxyConfig {
            listen: DEFAULT_LISTEN.into(),
            upstreams,
            pass_chaosgate_headers: false,
            policy,
            workers: 0,
        }
    }

    /// Worker threads of its HTTP server: [`ProxyConfig::workers`], or one per core (at
    /// most [`crate::live::front::MAX_WORKERS`]).
    pub fn workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(crate::live::front::MAX_WORKERS),
            n => n,
        }
    }

    /// Problems, each at its key in the `gateway.toml`: the policy's, then each upstream URL's.
    pub fn problems(&self) -> Vec<crate::diag::Problem> {
        let mut v = self.policy.problems();
        if self.upstreams.len() != self.policy.targets.len() {
            v.push((
                Path::root().key("targets"),
                format!(
                    "{} targets but {} upstream URLs",
                    self.policy.targets.len(),
                    self.upstreams.len()
                ),
            ));
        }
        for (i, u) in self.upstreams.iter().enumerate() {
            if let Err(e) = crate::live::load::base_url(u) {
                v.push((
                    Path::root().key("targets").index(i).key("url"),
                    e.replace("--target", "url"),
                ));
            }
        }
        v
    }

    /// The base URL of each target (`/v1` and a trailing `/` taken off).
    pub fn bases(&self) -> Vec<String> {
        self.upstreams
            .iter()
            .map(|u| crate::live::load::base_url(u).unwrap_or_else(|_| u.clone()))
            .collect()
    }

    /// Reads a `gateway.toml` document: every problem at once, each at its TOML path.
    pub fn from_doc(doc: &toml_edit::DocumentMut) -> (Option<ProxyConfig>, Vec<crate::diag::Problem>) {
        let mut doc = doc.clone();
        let mut problems = Vec::new();
        let listen = match doc.remove("listen") {
            None => Some(DEFAULT_LISTEN.to_string()),
            Some(item) => match item.as_str() {
                Some(s) => Some(s.to_string()),
                None => {
                    problems.push((
                        Path::root().key("listen"),
                        "expected an address like \"127.0.0.1:4000\"".into(),
                    ));
                    None
                }
            },
        };
        let pass = match doc.remove("pass_chaosgate_headers") {
            None => Some(false),
            Some(item) => match item.as_bool() {
                Some(b) => Some(b),
                None => {
                    problems.push((
                        Path::root().key("pass_chaosgate_headers"),
                        "expected true or false".into(),
                    ));
                    None
                }
            },
        };
        let upstreams = take_urls(&mut doc, &mut problems);
        problems.extend(crate::gateway::breaker::breaker_key_problems(&mut doc, &Path::root()));
        let (policy, more) = crate::diag::deserialize_all::<GatewayConfig>(&doc);
        problems.extend(more);
        let (Some(policy), Some(listen), Some(pass), Some(upstreams)) = (policy, listen, pass, upstreams) else {
            return (None, problems);
        };
        if policy.replicas != 1 {
            problems.push((
                Path::root().key("replicas"),
                "a gateway.toml is one proxy: `replicas` is a scenario key (`chaosgate run` starts that many proxies)"
                    .into(),
            ));
        }
        let cfg = ProxyConfig {
            listen,
            upstreams,
            pass_chaosgate_headers: pass,
            policy,
            workers: 0,
        };
        problems.extend(cfg.problems());
        (Some(cfg), problems)
    }

    /// A `gateway.toml` from a string (tests, benches): the first problems as one error.
    pub fn from_toml_str(src: &str) -> anyhow::Result<ProxyConfig> {
        let doc: toml_edit::DocumentMut = src
            .parse()
            .map_err(|e| crate::diag::ConfigErrors::syntax(src, "gateway.toml", &e))?;
        let (cfg, problems) = ProxyConfig::from_doc(&doc);
        crate::diag::ConfigErrors::check(src, "gateway.toml", problems)?;
        cfg.ok_or_else(|| anyhow::anyhow!("gateway.toml: not a gateway config"))
    }
}

/// Takes `url` out of each target (inline tables or `[[targets]]`); a target without one
/// is a problem at `targets[i].url`. `None` when a URL is missing or not a string.
fn take_urls(doc: &mut toml_edit::DocumentMut, problems: &mut Vec<crate::diag::Problem>) -> Option<Vec<String>> {
    let at = |i: usize| Path::root().key("targets").index(i).key("url");
    let mut urls = Vec::new();
    let mut ok = true;
    let mut take = |i: usize, t: &mut dyn toml_edit::TableLike| match t.remove("url") {
        Some(item) => match item.as_str() {
            Some(u) => urls.push(u.to_string()),
            None => {
                problems.push((at(i), "expected a URL string like \"http://127.0.0.1:9001\"".into()));
                ok = false;
            }
        },
        None => {
            problems.push((at(i), "every target needs the `url` of its upstream".into()));
            ok = false;
        }
    };
    match doc.get_mut("targets") {
        Some(toml_edit::Item::Value(toml_edit::Value::Array(a))) => {
            for (i, x) in a.iter_mut().enumerate() {
                if let toml_edit::Value::InlineTable(t) = x {
                    take(i, t);
                }
            }
        }
        Some(toml_edit::Item::ArrayOfTables(a)) => {
            for (i, t) in a.iter_mut().enumerate() {
                take(i, t);
            }
        }
        _ => {} // the policy's own parse reports a missing or misshapen `targets`
    }
    ok.then_some(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> (Option<ProxyConfig>, Vec<String>) {
        let doc: toml_edit::DocumentMut = src.parse().unwrap();
        let (c, p) = ProxyConfig::from_doc(&doc);
        (c, p.into_iter().map(|(k, m)| format!("{k}: {m}")).collect())
    }

    #[test]
    fn a_gateway_toml_splits_into_policy_and_wiring() {
        let (c, p) = parse(
            "listen = \"127.0.0.1:4100\"\n[[targets]]\nname = \"a\"\nurl = \"http://127.0.0.1:9001/v1\"\n[[targets]]\nname = \"b\"\nurl = \"http://127.0.0.1:9002\"\nweight = 2\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let c = c.unwrap();
        assert_eq!(c.listen, "127.0.0.1:4100");
        assert_eq!(c.bases(), ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]);
        assert_eq!(c.policy.targets[1].name, "b");
        assert_eq!(c.policy.targets[1].weight, 2.0);
        assert!(!c.pass_chaosgate_headers);
    }

    #[test]
    fn wiring_problems_are_reported_at_their_keys() {
        let (c, p) = parse("targets = [{ name = \"a\" }, { name = \"b\", url = 5 }]\nlisten = 1\n");
        assert!(c.is_none());
        assert!(p.iter().any(|m| m.starts_with("listen:")), "{p:?}");
        assert!(
            p.iter().any(|m| m.starts_with("targets[0].url: every target needs")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("targets[1].url: expected a URL")),
            "{p:?}"
        );
        let (_, p) = parse("targets = [{ name = \"a\", url = \"https://x\" }, { name = \"a\", url = \"http://h\" }]\n");
        assert!(p.iter().any(|m| m.starts_with("targets[0].url:")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("targets[1].name: duplicate")), "{p:?}");
        let (_, p) = parse("targets = [{ name = \"a\", url = \"http://h\", wieght = 1 }]\n");
        assert!(p.iter().any(|m| m.contains("wieght")), "{p:?}");
    }
}
