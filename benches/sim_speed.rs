//! Simulator speed benchmark: `cargo bench --bench sim_speed`
//!
//! Loads the article's incident scenarios once (parsing is not timed), then runs each
//! `ROUNDS` times through `sim::once::simulate_once` — the discrete-event loop plus the whole
//! analysis (traffic report, resilience metrics, error budget) — and prints, best and
//! median over the rounds: simulated seconds per wall second (× real time), simulated
//! requests per second and events per second. Not a timed test: nothing asserts.
//! `SIM_SPEED_ROUNDS=N` changes the number of rounds (default 15).
#![allow(clippy::disallowed_methods)] // tests, benches and examples drive the program: clocks, files, sockets

use chaosgate::scenario::load_scenario;
use chaosgate::sim::once::simulate_once;
use std::path::Path;
use std::time::Instant;

const SCENARIOS: [&str; 2] = [
    "examples/incidents/3am-fast-fail.toml",
    "examples/incidents/3am-hang.toml",
];

fn main() {
    let rounds: usize = std::env::var("SIM_SPEED_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(15);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    println!("sim_speed: {rounds} rounds per scenario, simulation + analysis timed, parsing not");
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>13} {:>13} {:>12} {:>12}",
        "scenario", "sim s", "requests", "events", "× real best", "× real med", "Mev/s best", "Mreq/s best"
    );
    for file in SCENARIOS {
        let s = load_scenario(&root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let seed = s.seed.unwrap_or(1);
        // one untimed warm-up run (page faults, allocator)
        let (r0, o0) = simulate_once(&s, seed, 0).expect("simulates");
        let mut walls: Vec<f64> = (0..rounds)
            .map(|_| {
                let t = Instant::now();
                let (r, o) = simulate_once(&s, seed, 0).expect("simulates");
                let w = t.elapsed().as_secs_f64();
                // keep the optimiser honest and the runs identical
                assert_eq!(
                    (o.steps, r.traffic.requests.failed),
                    (o0.steps, r0.traffic.requests.failed)
                );
                w
            })
            .collect();
        walls.sort_by(f64::total_cmp);
        let best = walls[0];
        let median = walls[walls.len() / 2];
        let sim_s = r0.duration_s;
        let events = o0.steps as f64;
        let reqs = o0.scheduled as f64;
        println!(
            "{:<16} {:>10.0} {:>10} {:>10} {:>12.0}× {:>12.0}× {:>12.2} {:>12.3}",
            s.name,
            sim_s,
            o0.scheduled,
            o0.steps,
            sim_s / best,
            sim_s / median,
            events / best / 1e6,
            reqs / best / 1e6,
        );
        println!(
            "{:<16} wall best {:.2} ms, median {:.2} ms; median: {:.2} M events/s, {:.3} M requests/s",
            "",
            best * 1e3,
            median * 1e3,
            events / median / 1e6,
            reqs / median / 1e6
        );
    }
}
