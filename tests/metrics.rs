//! Every `/metrics` endpoint (the mock's, the gateway's and the load client's
//! `--metrics-listen`) is valid Prometheus text exposition, even when provider, phase and
//! target names hold `"`, `\` or a newline: each family has `# HELP` and `# TYPE`, and
//! label values are escaped.
//!
//! `promtool_accepts_every_exposition` also runs Prometheus's own checker; it needs
//! `promtool` (`scripts/prometheus-setup`) and runs with
//! `cargo test --test metrics -- --ignored`.
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::fault::Profile;
use chaosgate::live::mock::{self, MockConfig};
use chaosgate::live::proxy as server;
use chaosgate::live::wiring::ProxyConfig;
use chaosgate::provider::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A provider name that used to break the exposition.
const PROVIDER: &str = "we\"ird\\name";
/// A phase name with a newline too.
const PHASE: &str = "ph\"a\\se\nx";
/// Gateway target names.
const TARGETS: [&str; 2] = ["t\"1\\", "plain"];

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("reply within 10 s")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// The two expositions: a mock named [`PROVIDER`] with a phase named [`PHASE`], and a
/// gateway over two such mocks with targets named [`TARGETS`].
async fn expositions() -> (String, String) {
    let toml = format!(
        "[[phase]]\nname = {}\nerrors = [{{ status = 503, probability = 0.5 }}]\n",
        toml_str(PHASE)
    );
    let profile = Profile::from_toml(&toml, "test.toml").unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (m1, _) = mock::spawn(MockConfig::new(PROVIDER, Api::OpenAi, profile, 1), l)
        .await
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (m2, _) = mock::spawn(MockConfig::new("second", Api::OpenAi, Profile::default(), 2), l)
        .await
        .unwrap();
    let mock_text = get(m1.addr, "/metrics").await;
    let cfg = format!(
        "breaker = {{ kind = \"consecutive\", failures = 3, base_ejection = \"10s\", max_ejection = \"1m\" }}\ntargets = [{{ name = {}, url = \"http://{}\" }}, {{ name = {}, url = \"http://{}\" }}]\n",
        toml_str(TARGETS[0]),
        m1.addr,
        toml_str(TARGETS[1]),
        m2.addr
    );
    let cfg = ProxyConfig::from_toml_str(&cfg).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let g = server::spawn(cfg, l, 1, None).await.unwrap();
    let gateway_text = get(g.server.addr, "/metrics").await;
    g.shutdown().await;
    m1.shutdown().await;
    m2.shutdown().await;
    (mock_text, gateway_text)
}

/// Requests the load client sends in [`load_exposition`].
const LOAD_REQUESTS: u64 = 20;

/// The load client's exposition and discovery document after [`LOAD_REQUESTS`] streamed
/// requests straight to a mock named [`PROVIDER`] that answers half of them 503.
async fn load_exposition() -> (String, serde_json::Value) {
    use chaosgate::live::load::{self, LoadOptions};
    use chaosgate::traffic::{KindSpec, Mix, TrafficConfig};
    let profile = Profile::from_toml(
        "[[phase]]\nname = \"half\"\nerrors = [{ status = 503, probability = 0.5 }]\n",
        "test.toml",
    )
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (m, _) = mock::spawn(MockConfig::new(PROVIDER, Api::OpenAi, profile, 3), l)
        .await
        .unwrap();
    let server = chaosgate::live::exporter::serve("127.0.0.1:0").await.unwrap();
    let x = server.exporter.clone();
    let cfg = TrafficConfig {
        rate: Some(40.0),
        duration: Some(chaosgate::time::Dur(LOAD_REQUESTS * chaosgate::time::NS_PER_S / 40)),
        arrival: chaosgate::traffic::ArrivalKind::Constant,
        ..TrafficConfig::default()
    };
    let source = cfg.source(std::path::Path::new(".")).unwrap();
    let mix = Mix::new(vec![KindSpec::chat("chat", true)], Api::OpenAi).unwrap();
    let mut opts = LoadOptions::new(&format!("http://{}", m.addr), Api::OpenAi, 1);
    opts.metrics = Some(x.load.clone());
    let r = load::run(source, mix, opts).await.unwrap();
    assert_eq!(r.totals.scheduled, LOAD_REQUESTS);
    let text = get(x.addr, "/metrics").await;
    let sd = get_json(x.addr, "/sd").await;
    server.shutdown().await;
    m.shutdown().await;
    (text, sd)
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("reply within 10 s")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).unwrap()
}

fn toml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string() // a JSON string is a valid TOML basic string here
}

/// One parsed sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses a sample line by the exposition grammar, undoing the label escapes.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let err = |what: &str| format!("{what} in {line:?}");
    let cut = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
    let name = line[..cut].to_string();
    let mut labels = BTreeMap::new();
    let mut cs = line[cut..].chars().peekable();
    if cs.peek() == Some(&'{') {
        cs.next();
        loop {
            match cs.peek() {
                Some('}') => {
                    cs.next();
                    break;
                }
                Some(',') if !labels.is_empty() => {
                    cs.next();
                    continue;
                }
                Some(_) => {}
                None => return Err(err("unterminated labels")),
            }
            let key: String = std::iter::from_fn(|| cs.next_if(|c| *c != '=')).collect();
            if cs.next() != Some('=') || cs.next() != Some('"') {
                return Err(err("label without =\""));
            }
            let mut val = String::new();
            loop {
                match cs.next().ok_or_else(|| err("unterminated value"))? {
                    '"' => break,
                    '\\' => val.push(match cs.next() {
                        Some('n') => '\n',
                        Some('\\') => '\\',
                        Some('"') => '"',
                        other => return Err(err(&format!("bad escape {other:?}"))),
                    }),
                    '\n' => return Err(err("raw newline")),
                    c => val.push(c),
                }
            }
            labels.insert(key, val);
        }
    }
    let value: String = cs.collect();
    let value = value.trim();
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| err(&format!("bad value {v:?}")))?,
    };
    Ok(Sample { name, labels, value })
}

/// Checks the exposition: HELP and TYPE before each family's samples, every sample
/// parses; returns the samples.
fn check(text: &str) -> Vec<Sample> {
    let mut help = BTreeSet::new();
    let mut typed = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            help.insert(r.split(' ').next().unwrap().to_string());
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let mut p = r.split(' ');
            let name = p.next().unwrap().to_string();
            assert!(matches!(p.next(), Some("counter" | "gauge" | "histogram")), "{line}");
            assert!(help.contains(&name), "TYPE before HELP for {name}");
            typed.insert(name);
        } else {
            let s = parse_sample(line).unwrap_or_else(|e| panic!("{e}\n--- exposition ---\n{text}"));
            // a histogram's samples belong to the family named without the suffix
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|x| s.name.strip_suffix(x).filter(|f| typed.contains(*f)))
                .unwrap_or(&s.name);
            assert!(
                help.contains(family) && typed.contains(family),
                "{} has no HELP/TYPE",
                s.name
            );
            samples.push(s);
        }
    }
    assert!(!samples.is_empty());
    samples
}

#[tokio::test]
async fn label_values_with_quotes_and_backslashes_keep_the_exposition_parseable() {
    let (mock_text, gateway_text) = expositions().await;
    let samples = check(&mock_text);
    assert!(samples.iter().all(|s| s.labels["provider"] == PROVIDER));
    assert!(samples
        .iter()
        .any(|s| s.name == "chaosgate_mock_phase_intensity" && s.labels["phase"] == PHASE));
    let samples = check(&gateway_text);
    let targets: BTreeSet<&str> = samples
        .iter()
        .filter_map(|s| s.labels.get("target").map(String::as_str))
        .collect();
    assert_eq!(targets, TARGETS.into_iter().collect());
    // one breaker state of three is 1, per target
    for t in TARGETS {
        let states: Vec<(&str, f64)> = samples
            .iter()
            .filter(|s| s.name == "chaosgate_gateway_breaker_state" && s.labels["target"] == t)
            .map(|s| (s.labels["state"].as_str(), s.value))
            .collect();
        assert_eq!(
            states,
            [("closed", 1.0), ("open", 0.0), ("half_open", 0.0)],
            "{gateway_text}"
        );
    }
    for family in [
        "chaosgate_gateway_requests_total",
        "chaosgate_gateway_target_healthy",
        "chaosgate_gateway_breaker_open",
        "chaosgate_gateway_breaker_state",
    ] {
        assert!(gateway_text.contains(&format!("# HELP {family} ")), "{family}");
    }
}

fn promtool_check(what: &str, text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: run scripts/prometheus-setup");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics rejected the {what} exposition ({}):\n{}{}\n--- exposition ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sum(samples: &[Sample], name: &str, f: impl Fn(&Sample) -> bool) -> f64 {
    samples.iter().filter(|s| s.name == name && f(s)).map(|s| s.value).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_exposition_counts_every_request_under_its_escaped_provider() {
    let (text, sd) = load_exposition().await;
    let samples = check(&text);
    // every labelled provider is the mock's own name, read back through the escapes
    let providers: BTreeSet<&str> = samples
        .iter()
        .filter_map(|s| s.labels.get("provider").map(String::as_str))
        .collect();
    assert_eq!(providers, [PROVIDER].into_iter().collect(), "{text}");
    let n = LOAD_REQUESTS as f64;
    let all = |_: &Sample| true;
    assert_eq!(sum(&samples, "chaosgate_load_scheduled_total", all), n);
    assert_eq!(sum(&samples, "chaosgate_load_requests_total", all), n);
    assert_eq!(sum(&samples, "chaosgate_load_target_requests_total", all), n);
    assert_eq!(sum(&samples, "chaosgate_load_in_flight", all), 0.0);
    let ok = sum(&samples, "chaosgate_load_requests_total", |s| {
        s.labels["outcome"] == "ok"
    });
    let e503 = sum(&samples, "chaosgate_load_requests_total", |s| {
        s.labels["outcome"] == "http_503"
    });
    assert_eq!(ok + e503, n, "only ok and 503: {text}");
    assert!(ok > 0.0 && e503 > 0.0, "{text}");
    // every request was sent: each has a latency; each ok stream has a first token
    assert_eq!(sum(&samples, "chaosgate_load_request_duration_seconds_count", all), n);
    let inf = |s: &Sample| s.labels.get("le").map(String::as_str) == Some("+Inf");
    assert_eq!(sum(&samples, "chaosgate_load_request_duration_seconds_bucket", inf), n);
    assert_eq!(sum(&samples, "chaosgate_load_ttft_seconds_count", all), ok);
    // discovery lists the endpoint itself
    assert_eq!(sd.as_array().unwrap().len(), 1, "{sd}");
    assert_eq!(sd[0]["labels"]["component"], "load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool: scripts/prometheus-setup"]
async fn promtool_accepts_every_exposition() {
    let (mock_text, gateway_text) = expositions().await;
    let (load_text, _) = load_exposition().await;
    promtool_check("mock", &mock_text);
    promtool_check("gateway", &gateway_text);
    assert!(load_text.contains("# TYPE chaosgate_load_request_duration_seconds histogram"));
    promtool_check("load", &load_text);
}
