//! What each subcommand does (kept out of `main.rs` so tests can call it in-process).

use crate::cli::{random_seed, MockArgs};
use crate::fault::Profile;
use crate::mock::{self, MockConfig};
use crate::net::{self, ServerHandle};

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `chaosgate mock`: serves one provider or every provider of a scenario until stopped.
pub async fn mock(args: MockArgs) -> anyhow::Result<u8> {
    let mut configs: Vec<(MockConfig, String)> = Vec::new();
    let seed;
    if let Some(path) = &args.scenario {
        let (scenario_seed, providers) = crate::scenario::load_providers(path)?;
        seed = args.seed.or(scenario_seed).unwrap_or_else(random_seed);
        for p in providers {
            configs.push((MockConfig::new(&p.name, p.api, p.profile, seed), p.listen));
        }
    } else {
        let api = args
            .api
            .ok_or_else(|| anyhow::anyhow!("--api or --scenario is required"))?;
        seed = args.seed.unwrap_or_else(random_seed);
        let profile = match &args.profile {
            Some(p) => Profile::load(p)?,
            None => Profile::default(),
        };
        let name = args.name.clone().unwrap_or_else(|| api.as_str().to_string());
        configs.push((MockConfig::new(&name, api, profile, seed), args.listen.clone()));
    }
    let mut handles: Vec<ServerHandle> = Vec::new();
    for (mut cfg, listen) in configs {
        cfg.allow_fault_header = !args.no_fault_header;
        cfg.admin_any_peer = args.admin_any_peer;
        cfg.max_body_bytes = args.max_body_bytes;
        let listener = net::bind(&listen).await?;
        let name = cfg.name.clone();
        let api = cfg.api;
        let profile = cfg.profile.name.clone().unwrap_or_else(|| "pass-through".into());
        let (h, _state) = mock::spawn(cfg, listener).await?;
        println!(
            "chaosgate mock: {name} ({}) listening on http://{}  profile={profile}  seed={seed}",
            api.as_str(),
            h.addr
        );
        handles.push(h);
    }
    println!("chaosgate mock: reproduce with --seed {seed}; admin API at /_chaosgate/state; Ctrl-C to stop");
    shutdown_signal().await;
    for h in handles {
        h.shutdown().await;
    }
    Ok(0)
}
