//! The built-in catalogue (`catalogue/*.toml`): every entry has the shape the suite's
//! entry format asks (SUITE_FORMAT: name = file stem, reports, best, failover, traffic
//! keys), its fault settings load as a fault profile, and its fault windows sit inside the
//! run after a healthy lead-in. The runner's own tests merge and run them.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, sockets

use chaosgate::fault::Profile;
use chaosgate::time::Dur;
use std::path::PathBuf;

const KEYS: [&str; 15] = [
    "name",
    "title",
    "reports",
    "tags",
    "best",
    "failover",
    "duration",
    "rate",
    "stream",
    "max_tokens",
    "set",
    "primary",
    "fallback",
    "bounds",
    "check",
];

/// Healthy time before the first fault window, so the gateway's pre-fault state is normal.
const LEAD_IN_S: f64 = 8.0;

fn entries() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("catalogue");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn secs(v: &toml::Value) -> f64 {
    let d: Dur = v.as_str().expect("a duration string").parse().expect("a duration");
    d.0 as f64 / 1e9
}

#[test]
fn every_entry_has_the_format_and_loads_as_faults() {
    let files = entries();
    assert!(files.len() >= 30, "{} entries", files.len());
    let mut replicas = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let at = f.display().to_string();
        let stem = f.file_stem().unwrap().to_str().unwrap();
        assert!(
            text.starts_with(&format!("# catalogue/{stem}.toml — models: ")),
            "{at}: first line"
        );
        let doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{at}: {e}"));
        for k in doc.keys() {
            assert!(KEYS.contains(&k.as_str()), "{at}: unknown key {k}");
        }
        assert_eq!(doc["name"].as_str(), Some(stem), "{at}");
        assert!(
            stem.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
            "{at}"
        );
        assert!(!doc["title"].as_str().unwrap().is_empty(), "{at}");
        let reports = doc["reports"].as_array().unwrap();
        assert!(!reports.is_empty(), "{at}");
        assert!(reports.iter().all(|r| r.as_str().is_some_and(|s| s.len() > 10)), "{at}");
        assert!(matches!(doc["best"].as_str(), Some("pass" | "safe")), "{at}");
        assert!(doc["failover"].is_bool(), "{at}");
        if let Some(s) = doc.get("stream") {
            assert!(matches!(s.as_str(), Some("plain" | "stream" | "mixed")), "{at}");
        }
        let duration = doc.get("duration").map_or(40.0, secs);
        assert!(duration <= 40.0, "{at}: {duration} s: keep the catalogue fast");
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        let set: Vec<&str> = doc
            .get("set")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
            .unwrap_or_default();
        if set.iter().any(|s| s.starts_with("gateway.replicas=")) {
            assert!(tags.contains(&"replicas"), "{at}");
            replicas += 1;
        }
        let mut windows = 0;
        for side in ["primary", "fallback"] {
            let Some(t) = doc.get(side) else { continue };
            let src = toml::to_string(t).unwrap();
            let p = Profile::from_toml(&src, &format!("{at} [{side}]")).unwrap_or_else(|e| panic!("{e}"));
            for ph in &p.phases {
                let start = ph.start.map_or(0.0, |d| d.0 as f64 / 1e9);
                let end = ph.duration.map_or(duration, |d| start + d.0 as f64 / 1e9);
                assert!(start >= LEAD_IN_S, "{at}: [{side}] phase starts at {start} s");
                assert!(end <= duration, "{at}: [{side}] phase ends at {end} s, after the run");
                assert_eq!(
                    ph.name.as_deref(),
                    Some("fault"),
                    "{at}: the verdict reads windows named fault"
                );
                windows += 1;
            }
        }
        assert!(windows >= 1, "{at}: no fault window");
    }
    assert!(replicas >= 1, "no entry runs gateway replicas");
}
