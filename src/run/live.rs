//! The live driver of a scenario run: mock providers on loopback, the gateway under test
//! (the reference gateway in-process, or an external process), real traffic — then the
//! same analysis as the simulator.
//!
//! Time zero is the moment traffic starts: the mocks' fault timelines are held at 0
//! until then (a gateway that takes 40 s to boot does not eat into the scenario), and the
//! builtin gateway's events are moved onto the same clock.

use super::report::{GatewayInfo, OneRun};
use crate::analysis::resilience::Series;
use crate::load::{self as live, LoadOptions};
use crate::mock::{self, MockConfig, MockState};
use crate::net::{self, ServerHandle};
use crate::record::FaultEvent;
use crate::scenario::{GatewaySpec, Scenario};
use crate::sim::report::{analyse, BUCKET};
use crate::time::Nanos;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a live run gives besides the metrics.
#[derive(Debug)]
pub struct LiveRun {
    /// The metrics.
    pub run: OneRun,
    /// The gateway part of the report.
    pub gateway: GatewayInfo,
    /// Notes for the report.
    pub warnings: Vec<String>,
    /// Ctrl-C / SIGTERM stopped the traffic early.
    pub interrupted: bool,
    aggregator: Option<crate::analysis::Aggregator>,
}

impl LiveRun {
    fn cost_of(&self, s: &Scenario, models: &[String]) -> Option<crate::cost::CostReport> {
        crate::sim::report::run_cost(s, self.aggregator.as_ref()?, models)
    }
}

enum Gw {
    Builtin(crate::gateway::server::GatewayHandle),
    External(crate::external::Running),
}

/// Runs `s` once, live.
pub async fn run_once(
    s: &Scenario,
    seed: u64,
    shift: Nanos,
    run_dir: &Path,
    stop: watch::Receiver<bool>,
    progress: bool,
) -> anyhow::Result<LiveRun> {
    std::fs::create_dir_all(run_dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", run_dir.display()))?;
    // traffic plan first: a bad mix or trace fails before anything starts
    let kinds = s.traffic.load_kinds(&s.dir)?;
    let api = s.traffic.api.unwrap_or(crate::provider::Api::OpenAi);
    let mix = crate::traffic::Mix::new(kinds, api).map_err(anyhow::Error::msg)?;
    let models = mix.models();
    let source = s.traffic.source(&s.dir)?;
    if let crate::traffic::Source::Trace(t, _) = &source {
        t.check_kinds(
            &mix,
            &s.traffic
                .trace
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )?;
    }
    // mocks, clocks held
    let mut mocks: Vec<(ServerHandle, Arc<MockState>)> = Vec::new();
    let mut vars = BTreeMap::new();
    for p in &s.providers {
        let mut profile = p.profile.clone();
        crate::scenario::scale::shift(&mut profile, shift);
        let listener = net::bind(&p.listen)
            .await
            .map_err(|e| anyhow::anyhow!("provider {}: cannot listen on {}: {e}", p.name, p.listen))?;
        let (h, st) = mock::spawn_held(MockConfig::new(&p.name, p.api, profile, seed), listener).await?;
        vars.insert(
            p.name.clone(),
            crate::external::ProviderVars {
                url: format!("http://{}", h.addr),
                host: h.addr.ip().to_string(),
                port: h.addr.port(),
                api: p.api.as_str().to_string(),
            },
        );
        mocks.push((h, st));
    }
    let result = drive(s, seed, run_dir, &mocks, &vars, mix, source, stop, progress)
        .await
        .map(|mut r| {
            r.run.cost = r.cost_of(s, &models);
            r
        });
    for (h, _) in mocks {
        h.shutdown().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    s: &Scenario,
    seed: u64,
    run_dir: &Path,
    mocks: &[(ServerHandle, Arc<MockState>)],
    vars: &BTreeMap<String, crate::external::ProviderVars>,
    mix: crate::traffic::Mix,
    source: crate::traffic::Source,
    stop: watch::Receiver<bool>,
    progress: bool,
) -> anyhow::Result<LiveRun> {
    let mut warnings = s.warnings.clone();
    let mut info = GatewayInfo {
        kind: s.gateway.kind().into(),
        ..GatewayInfo::default()
    };
    let (mut gw, base, headers, api_key, timeout) = match &s.gateway {
        GatewaySpec::Builtin(cfg) => {
            let mut cfg = (**cfg).clone();
            for t in &mut cfg.targets {
                t.url = vars
                    .get(&t.name)
                    .map(|v| v.url.clone())
                    .ok_or_else(|| anyhow::anyhow!("gateway target {} is not a provider", t.name))?;
            }
            // each target speaks its provider's API (completion probes use it)
            for t in &mut cfg.targets {
                if t.api.is_none() {
                    t.api = s.providers.iter().find(|p| p.name == t.name).map(|p| p.api);
                }
            }
            // the simulator's client gives up at the same time (gateway/attempt.rs)
            let timeout = crate::gateway::Limits::of(&cfg).client_timeout();
            let listener = net::bind("127.0.0.1:0").await?;
            let events = run_dir.join("gateway-events.jsonl");
            // held: its clock and probes start with the traffic, as the simulator's do
            let h = crate::gateway::server::spawn_held(cfg, listener, seed, Some(&events)).await?;
            info.log = Some(events.display().to_string());
            let base = format!("http://{}", h.server.addr);
            (Gw::Builtin(h), base, Vec::new(), "sk-chaosgate".to_string(), timeout)
        }
        GatewaySpec::External(x) => {
            let port = match x.port {
                Some(p) if p != 0 => p,
                _ => free_port()?,
            };
            let p = crate::external::prepare(x, &s.dir, run_dir, port, vars, seed, s.time_scale)?;
            warnings.extend(p.notes.iter().cloned());
            info.log = Some(p.log_path.display().to_string());
            let mut running = crate::external::start(&p, x)?;
            let mut stop_rx = stop.clone();
            let ready = tokio::select! {
                r = running.wait_ready(&p.ready_url, x.ready_timeout) => r,
                _ = stop_rx.wait_for(|v| *v) => Err(anyhow::anyhow!("interrupted while waiting for the gateway")),
            };
            match ready {
                Ok(d) => info.ready_s = Some(d.as_secs_f64()),
                Err(e) => {
                    running.stop().await;
                    return Err(e);
                }
            }
            (
                Gw::External(running),
                p.base_url.clone(),
                p.headers.clone(),
                x.api_key.clone().unwrap_or_else(|| "sk-chaosgate".into()),
                60 * crate::time::NS_PER_S,
            )
        }
    };
    let outcome = traffic(
        s, seed, mocks, &gw, base, headers, api_key, timeout, mix, source, stop, progress,
    )
    .await;
    match &mut gw {
        Gw::Builtin(_) => {}
        Gw::External(r) => r.stop().await,
    }
    let (result, t0) = match outcome {
        Ok(x) => x,
        Err(e) => {
            if let Gw::Builtin(h) = gw {
                h.shutdown().await;
            }
            return Err(e);
        }
    };
    // the four record streams
    let horizon = result.duration.max(result.aggregator.last_end);
    let mut arrivals = BTreeMap::new();
    let mut faults: Vec<FaultEvent> = Vec::new();
    for (_, st) in mocks {
        let name = st.config.name.clone();
        arrivals.insert(name.clone(), st.arrival_series());
        let windows = st.plan.lock().unwrap_or_else(|e| e.into_inner()).fault_windows(horizon);
        faults.extend(windows.into_iter().map(|w| FaultEvent::of_window(&name, w)));
    }
    let faults = crate::record::merge_fault_windows(faults);
    let events = match gw {
        Gw::Builtin(h) => {
            // the gateway's clock started before traffic: move its events onto the run clock
            let off = u64::try_from(t0.saturating_duration_since(h.state.start()).as_nanos()).unwrap_or(0);
            let ev: Vec<_> = h
                .state
                .events()
                .into_iter()
                .map(|mut e| {
                    e.t_ns = e.t_ns.saturating_sub(off);
                    e
                })
                .collect();
            h.shutdown().await;
            ev
        }
        Gw::External(_) => Vec::new(),
    };
    let report = result.report();
    let series = Series::from_aggregator(&result.aggregator)
        .with_arrivals(arrivals)
        .with_horizon(horizon);
    let shift = 0; // the shift is already in the mocks' profiles
    let mut run = analyse(
        s,
        seed,
        shift,
        &series,
        &result.aggregator,
        &faults,
        &events,
        report,
        result.duration,
    );
    run.onset_shift_s = 0.0;
    Ok(LiveRun {
        run,
        gateway: info,
        warnings,
        interrupted: result.interrupted,
        aggregator: Some(result.aggregator),
    })
}

#[allow(clippy::too_many_arguments)]
async fn traffic(
    s: &Scenario,
    seed: u64,
    mocks: &[(ServerHandle, Arc<MockState>)],
    gw: &Gw,
    base: String,
    headers: Vec<(String, String)>,
    api_key: String,
    timeout: Nanos,
    mix: crate::traffic::Mix,
    source: crate::traffic::Source,
    stop: watch::Receiver<bool>,
    progress: bool,
) -> anyhow::Result<(live::LoadResult, Instant)> {
    let api = s.traffic.api.unwrap_or(crate::provider::Api::OpenAi);
    let mut opts = LoadOptions::new(&base, api, seed);
    opts.bucket = BUCKET;
    opts.timeout = timeout;
    opts.grace = timeout;
    opts.headers = headers;
    opts.api_key = api_key;
    opts.progress = progress;
    opts.stop = Some(stop);
    opts.slo = s.slo.thresholds();
    // per-phase statistics over the ground-truth windows
    let horizon = match &source {
        crate::traffic::Source::Open(c, _, _) => crate::time::secs_f64_to_nanos(c.duration_s()),
        crate::traffic::Source::Trace(t, sp) => t.duration(*sp),
        crate::traffic::Source::Closed { duration, .. } => *duration,
    };
    for (_, st) in mocks {
        let mut plan = crate::fault::Plan::new(&st.config.profile, seed, &format!("provider/{}", st.config.name));
        for w in plan.fault_windows(horizon) {
            opts.phases
                .push((format!("{}/{}", st.config.name, w.phase), w.start, w.end));
        }
    }
    let t0 = Instant::now() + std::time::Duration::from_millis(20);
    opts.t0 = Some(t0);
    for (_, st) in mocks {
        st.start_clock_at(t0);
    }
    if let Gw::Builtin(h) = gw {
        h.state.start_clock_at(t0);
    }
    let r = live::run(source, mix, opts).await?;
    Ok((r, t0))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the gateway to take).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
