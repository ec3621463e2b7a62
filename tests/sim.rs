//! The simulator end to end: a scenario file in, a byte-identical JSON report out.

use chaosgate::scenario::load_scenario;
use chaosgate::sim::report::simulate;
use std::path::Path;

fn report_json(file: &str, seed: u64) -> String {
    let s = load_scenario(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap_or_else(|e| panic!("{e}"));
    let (r, _) = simulate(&s, seed).unwrap();
    serde_json::to_string_pretty(&r).unwrap() + "\n"
}

/// Same scenario + seed ⇒ the same bytes, checked against a committed golden file.
/// After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --test sim`.
#[test]
fn golden_3am_fast_fail() {
    let got = report_json("examples/incidents/3am-fast-fail.toml", 1);
    assert_eq!(
        got,
        report_json("examples/incidents/3am-fast-fail.toml", 1),
        "two runs differ"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/3am-fast-fail.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 cargo test --test sim)");
    if got != want {
        let (n, (g, w)) = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (g, w))| g != w)
            .unwrap_or((0, ("", "")));
        panic!(
            "sim report differs from {} at line {}:\n  golden: {w}\n  now:    {g}\n(regenerate with UPDATE_GOLDEN=1 cargo test --test sim if the change is intended)",
            path.display(),
            n + 1
        );
    }
}

#[test]
fn the_incident_numbers_follow_the_formulas() {
    let v: serde_json::Value = serde_json::from_str(&report_json("examples/incidents/3am-hang.toml", 1)).unwrap();
    let f = &v["resilience"][0];
    // onset 137 s, probes every 60 s from 0 → next probe at 180 s, hangs 30 s: D = 73 s
    assert!((f["detection_gateway_s"].as_f64().unwrap() - 73.0).abs() < 1e-6, "{f}");
    // ≈ 155 req/s × 73 s of failures (Poisson: within 3 %)
    let failed = f["failed_during"].as_f64().unwrap();
    assert!((failed - 155.0 * 73.0).abs() / (155.0 * 73.0) < 0.03, "{failed}");
    // budget: 99.9 % over 30 days at ≈ 155 req/s ≈ 401,760 requests
    let b = v["budget"]["budget_requests"].as_f64().unwrap();
    assert!((b - 401_760.0).abs() / 401_760.0 < 0.01, "{b}");
}

#[test]
fn scenario_errors_are_reported_with_lines() {
    let dir = std::env::temp_dir().join(format!("chaosgate-scn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "[providers.a]\napi = \"openai\"\n\n[gateway]\ntargets = [\"a\", \"nope\"]\n\n[traffic]\nrate = 10.0\n\n[slo]\ntarget = 2.0\n",
    )
    .unwrap();
    let e = load_scenario(&p).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml:5:") && e.contains("\"nope\" is not a provider"),
        "{e}"
    );
    assert!(e.contains("duration"), "{e}");
    assert!(e.contains("bad.toml:11:") && e.contains("must be in (0, 1)"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
