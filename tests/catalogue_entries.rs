//! The built-in catalogue (`catalogue/*.toml`): every entry parses with the runner's entry
//! parser (docs/suite.md, "Writing an entry"), merges into the default gateway's scenario
//! and loads, its fault settings load as a fault profile, and its fault windows sit inside
//! the run after a healthy lead-in.
#![allow(clippy::disallowed_methods)] // tests drive the program: clocks, files, sockets

use chaosgate::fault::Profile;
use chaosgate::time::Dur;
use std::path::PathBuf;

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
        // the entry format is the runner's own parser
        let e = chaosgate::suite::entry::parse(&format!("{stem}.toml"), &text, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.reports.iter().all(|r| r.len() > 10), "{at}: name the report");
        let duration = secs(&toml::Value::String(e.duration.clone()));
        assert!(duration <= 40.0, "{at}: {duration} s: keep the catalogue fast");
        if e.set.iter().any(|s| s.starts_with("gateway.replicas=")) {
            assert!(e.tags.iter().any(|t| t == "replicas"), "{at}");
            replicas += 1;
        }
        // and it runs against the default gateway: the merged scenario loads
        let g = chaosgate::suite::merge::GatewayScenario {
            file: "default".into(),
            text: chaosgate::suite::DEFAULT_GATEWAY.into(),
            dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/gateways/builtin"),
        };
        let doc = chaosgate::suite::merge::gateway_document(&g).unwrap();
        if let Err(m) = chaosgate::suite::merge::scenario(&e, &g, &doc, &[]) {
            panic!("{at}: {m}");
        }
        let doc: toml::Table = toml::from_str(&text).unwrap();
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
