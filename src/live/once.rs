//! The live driver of a scenario run: mock providers on loopback, the gateway under test
//! (the reference gateway in-process, or an external process), real traffic — then the
//! same analysis as the simulator.
//!
//! Time zero is the moment traffic starts: the mocks' fault timelines are held at 0
//! until then (a gateway that takes 40 s to boot does not eat into the scenario), and the
//! builtin gateway's events are moved onto the same clock.

use crate::analysis::resilience::Series;
use crate::analysis::results::{GatewayInfo, OneRun};
use crate::analysis::run::{analyse, BUCKET};
use crate::live::load::{self as live, LoadOptions};
use crate::live::mock::{self, MockConfig, MockState};
use crate::live::net::{self, ServerHandle};
use crate::record::FaultEvent;
use crate::scenario::{GatewaySpec, Scenario};
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
    /// What the run recorded, when [`ShardCtx::keep`] asks for it (a shard's result file).
    pub recorded: Option<RecordedRun>,
}

/// A live run's share of a sharded scenario run (docs/sharding.md).
#[derive(Clone, Copy, Debug)]
pub struct ShardCtx {
    /// Which arrivals (or users) this process sends.
    pub shard: crate::traffic::shard::Shard,
    /// The run's time zero (`--start-at`): the traffic, the mocks' fault timelines and
    /// the gateway's clock all start then. `None`: 20 ms after the world is up.
    pub t0: Option<Instant>,
    /// Keep what the run recorded ([`LiveRun::recorded`]).
    pub keep: bool,
}

impl Default for ShardCtx {
    fn default() -> ShardCtx {
        ShardCtx {
            shard: crate::traffic::shard::Shard::WHOLE,
            t0: None,
            keep: false,
        }
    }
}

/// Everything the analysis of one live run reads, as recorded: the client's statistics
/// and scalars, what the mocks saw, the fault windows and the gateway's events. A shard
/// keeps it in its result file; [`RecordedRun::absorb`] adds another shard's, and
/// [`analyse_recorded`] turns it into the run's figures — the same function for a run and
/// for a merge.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RecordedRun {
    /// The run's seed.
    pub seed: u64,
    /// The client's scalars.
    pub totals: live::LoadTotals,
    /// The client's statistics.
    pub aggregator: crate::analysis::Aggregator,
    /// Per provider, arrivals per analysis bucket (the mocks' series).
    pub arrivals: BTreeMap<String, Vec<u64>>,
    /// The fault windows (ground truth).
    pub faults: Vec<FaultEvent>,
    /// The gateway's events on the run's clock (with shards: every shard's gateway's).
    pub events: Vec<crate::gateway::GatewayEvent>,
    /// The providers, in order (the attempt figures' rows).
    pub providers: Vec<String>,
    /// The client's whole-request timeout (the attempt figures' hang threshold).
    pub timeout: Nanos,
    /// Every arrival the mocks logged after time zero.
    pub attempts: Vec<crate::record::ArrivalRecord>,
    /// Every client request's end.
    pub ends: Vec<crate::analysis::attempts::ClientEnd>,
}

impl RecordedRun {
    /// Adds another shard's recording of the same run: statistics merged exactly, arrival
    /// series summed, the fault windows' union, every gateway event in time order, every
    /// arrival and request end.
    pub fn absorb(&mut self, o: RecordedRun) -> Result<(), String> {
        if self.seed != o.seed {
            return Err(format!("runs of seeds {} and {}", self.seed, o.seed));
        }
        self.aggregator.merge(&o.aggregator)?;
        self.totals.add(&o.totals);
        for (p, series) in o.arrivals {
            let mine = self.arrivals.entry(p).or_default();
            if mine.len() < series.len() {
                mine.resize(series.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(series) {
                *a += b;
            }
        }
        self.faults.extend(o.faults);
        self.faults = crate::record::merge_fault_windows(std::mem::take(&mut self.faults));
        self.events.extend(o.events);
        self.events.sort_by_key(|e| e.t_ns);
        for p in o.providers {
            if !self.providers.contains(&p) {
                self.providers.push(p);
            }
        }
        self.timeout = self.timeout.max(o.timeout);
        self.attempts.extend(o.attempts);
        self.ends.extend(o.ends);
        Ok(())
    }
}

/// The figures of one live run from what it recorded: the traffic report, resilience,
/// budget, attempts, cost and (with `view`) the incident view. `chaosgate run` calls it on
/// its own recording, `chaosgate merge` on the shards' recordings added up.
pub fn analyse_recorded(
    slo: &crate::analysis::budget::SloConfig,
    detection: &crate::analysis::resilience::DetectionConfig,
    prices: Option<&crate::analysis::cost::PriceTable>,
    models: &[String],
    r: &RecordedRun,
    view: bool,
) -> OneRun {
    let agg = &r.aggregator;
    let horizon = r.totals.duration.max(agg.last_end);
    let report = r.totals.report(agg);
    let series = Series::from_aggregator(agg)
        .with_arrivals(r.arrivals.clone())
        .with_horizon(horizon);
    let mut acc = crate::analysis::attempts::AttemptsAcc::new(r.timeout);
    for p in &r.providers {
        acc.provider(p);
    }
    acc.arrivals(&r.attempts);
    for e in &r.ends {
        acc.request(*e);
    }
    let shift = 0; // the shift is already in the mocks' profiles
    let mut run = analyse(
        slo,
        detection,
        r.seed,
        shift,
        &series,
        agg,
        &r.faults,
        &r.events,
        report,
        r.totals.duration,
        &acc,
    );
    run.onset_shift_s = 0.0;
    if view {
        let v = crate::analysis::run::incident_view(slo, agg, &run, &r.faults, &r.events, r.totals.duration);
        run.incident = Some(Box::new(v));
    }
    run.cost = crate::analysis::run::run_cost(prices, agg, models);
    run
}

enum Gw {
    /// One in-process proxy per replica.
    Builtin(Vec<crate::live::proxy::GatewayHandle>),
    /// One process per replica, and the run's Redis when asked for.
    External(
        Vec<crate::live::process::Running>,
        Option<Box<crate::live::redis::Redis>>,
    ),
    /// A gateway chaosgate did not start (and does not stop).
    Running,
}

impl Gw {
    /// Stops what chaosgate started of an external gateway (its replicas, then its Redis).
    async fn stop_external(&mut self) {
        if let Gw::External(rs, redis) = self {
            for r in rs.iter_mut() {
                r.stop().await;
            }
            if let Some(r) = redis {
                r.running.stop().await;
            }
        }
    }
}

/// Runs `s` once, live; `live`, when given, is kept up to date as the traffic runs (for a
/// progress display); `exporter`, when given (`--metrics-listen`), gets the live metrics
/// and the addresses of the run's mocks and builtin gateway while it runs; with `view`, the
/// run carries its incident view (`--html`).
#[allow(clippy::too_many_arguments)]
pub async fn run_once(
    s: &Scenario,
    seed: u64,
    shift: Nanos,
    run_dir: &Path,
    stop: watch::Receiver<bool>,
    live: Option<Arc<live::LiveCounters>>,
    exporter: Option<Arc<crate::live::exporter::Exporter>>,
    view: bool,
    shard: ShardCtx,
) -> anyhow::Result<LiveRun> {
    std::fs::create_dir_all(run_dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", run_dir.display()))?;
    // the traffic plan was resolved (mix and trace read and checked) when the scenario loaded
    let crate::traffic::TrafficPlan { mix, source } = (*s.plan).clone();
    let models = mix.models();
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
            crate::scenario::external::ProviderVars {
                url: format!("http://{}", h.addr),
                host: h.addr.ip().to_string(),
                port: h.addr.port(),
                api: p.api.as_str().to_string(),
            },
        );
        mocks.push((h, st));
    }
    let result = drive(
        s,
        seed,
        run_dir,
        &mocks,
        &vars,
        mix,
        source,
        stop,
        live,
        exporter.as_deref(),
        view,
        shard,
        &models,
    )
    .await;
    if let Some(x) = &exporter {
        x.clear_run_targets();
    }
    for (h, _) in mocks {
        h.shutdown().await;
    }
    result
}

/// The gateway under test, started and ready: where to send traffic and how.
struct Started {
    gw: Gw,
    /// Each replica's base URL (one: the gateway alone).
    bases: Vec<String>,
    /// Extra headers on every request.
    headers: Vec<(String, String)>,
    api_key: String,
    /// The client's whole-request timeout.
    timeout: Nanos,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    s: &Scenario,
    seed: u64,
    run_dir: &Path,
    mocks: &[(ServerHandle, Arc<MockState>)],
    vars: &BTreeMap<String, crate::scenario::external::ProviderVars>,
    mix: crate::traffic::Mix,
    source: crate::traffic::Source,
    stop: watch::Receiver<bool>,
    counters: Option<Arc<live::LiveCounters>>,
    exporter: Option<&crate::live::exporter::Exporter>,
    view: bool,
    shard: ShardCtx,
    models: &[String],
) -> anyhow::Result<LiveRun> {
    let mut warnings = s.warnings.clone();
    let mut info = GatewayInfo {
        kind: s.gateway.kind().into(),
        ..GatewayInfo::default()
    };
    let Started {
        mut gw,
        bases,
        headers,
        api_key,
        timeout,
    } = match &s.gateway {
        GatewaySpec::Builtin(cfg) => start_builtin(s, cfg, seed, run_dir, vars, &mut info).await?,
        GatewaySpec::External(x) => start_external(s, x, seed, run_dir, vars, &stop, &mut warnings, &mut info).await?,
        GatewaySpec::Running(x) => start_running(x, vars, &stop, &mut info).await?,
    };
    if let Some(x) = exporter {
        let named: Vec<(String, std::net::SocketAddr)> =
            mocks.iter().map(|(h, st)| (st.config.name.clone(), h.addr)).collect();
        let gateways: Vec<std::net::SocketAddr> = match &gw {
            Gw::Builtin(hs) => hs.iter().map(|h| h.server.addr).collect(),
            Gw::External(..) | Gw::Running => Vec::new(),
        };
        x.set_run_targets(&named, &gateways);
    }
    let metrics = exporter.map(|x| x.load.clone());
    let outcome = traffic(
        s, seed, mocks, &gw, bases, headers, api_key, timeout, mix, source, stop, counters, metrics, view, shard,
    )
    .await;
    gw.stop_external().await;
    let (result, t0) = match outcome {
        Ok(x) => x,
        Err(e) => {
            if let Gw::Builtin(hs) = gw {
                for h in hs {
                    h.shutdown().await;
                }
            }
            return Err(e);
        }
    };
    let horizon = result.totals.duration.max(result.aggregator.last_end);
    let (arrivals, faults) = mock_records(mocks, horizon);
    let events = gateway_events(gw, t0).await;
    let (providers, attempts) = attempt_records(mocks, &mut warnings);
    let totals = result.totals;
    let recorded = RecordedRun {
        seed,
        totals,
        aggregator: result.aggregator,
        arrivals,
        faults,
        events,
        providers,
        timeout,
        attempts,
        ends: result.ends,
    };
    let run = analyse_recorded(&s.slo, &s.detection, s.prices.as_ref(), models, &recorded, view);
    Ok(LiveRun {
        run,
        gateway: info,
        warnings,
        interrupted: totals.interrupted,
        recorded: shard.keep.then_some(recorded),
    })
}

/// A gateway that already runs: the providers' URLs for its config are printed, then
/// `ready_url` is polled until it answers below 500.
async fn start_running(
    x: &crate::scenario::external::RunningSpec,
    vars: &BTreeMap<String, crate::scenario::external::ProviderVars>,
    stop: &watch::Receiver<bool>,
    info: &mut GatewayInfo,
) -> anyhow::Result<Started> {
    eprintln!("{}", provider_urls_note(vars, &x.base_url));
    let mut stop_rx = stop.clone();
    let ready = tokio::select! {
        r = crate::live::process::poll_ready(x.ready_url(), x.ready_timeout, || Ok(())) => r,
        _ = stop_rx.wait_for(|v| *v) => Err(anyhow::anyhow!("interrupted while waiting for the gateway")),
    };
    let d = ready.map_err(|e| {
        anyhow::anyhow!("{e} (kind = \"running\": start your gateway first, its upstreams pointed at the URLs above)")
    })?;
    info.ready_s = Some(d.as_secs_f64());
    Ok(Started {
        gw: Gw::Running,
        bases: vec![x.base_url.trim_end_matches('/').to_string()],
        headers: x.request_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        api_key: x.api_key.clone().unwrap_or_else(|| "sk-chaosgate".into()),
        timeout: 60 * crate::time::NS_PER_S,
    })
}

/// What to put in a running gateway's config: one line per provider.
fn provider_urls_note(vars: &BTreeMap<String, crate::scenario::external::ProviderVars>, base: &str) -> String {
    let mut s = format!("chaosgate: the mock providers are up; point your gateway ({base}) at them:");
    for (name, v) in vars {
        s.push_str(&format!("\n  {name:<16} {} ({})", v.url, v.api));
    }
    s
}

/// The reference gateway in-process, its targets pointed at the mocks, held: its clock
/// and probes start with the traffic, as the simulator's do. One proxy per replica, each
/// with its own policy ([`crate::gateway::Policy::replica`]) and event log.
async fn start_builtin(
    s: &Scenario,
    cfg: &crate::gateway::GatewayConfig,
    seed: u64,
    run_dir: &Path,
    vars: &BTreeMap<String, crate::scenario::external::ProviderVars>,
    info: &mut GatewayInfo,
) -> anyhow::Result<Started> {
    let mut cfg = cfg.clone();
    let upstreams = cfg
        .targets
        .iter()
        .map(|t| {
            vars.get(&t.name)
                .map(|v| v.url.clone())
                .ok_or_else(|| anyhow::anyhow!("gateway target {} is not a provider", t.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // each target speaks its provider's API (completion probes use it)
    for t in &mut cfg.targets {
        if t.api.is_none() {
            t.api = s.providers.iter().find(|p| p.name == t.name).map(|p| p.api);
        }
    }
    // the simulator's client gives up at the same time (gateway/attempt.rs)
    let timeout = crate::gateway::Limits::of(&cfg).client_timeout();
    let n = cfg.replicas.max(1);
    let mut handles = Vec::new();
    let mut logs = Vec::new();
    for k in 0..n {
        let listener = net::bind("127.0.0.1:0").await?;
        let events = if n == 1 {
            run_dir.join("gateway-events.jsonl")
        } else {
            run_dir.join(format!("gateway-events-{k}.jsonl"))
        };
        // held: its clock and probes start with the traffic, as the simulator's do
        let wired = crate::live::wiring::ProxyConfig::new(cfg.clone(), upstreams.clone());
        match crate::live::proxy::spawn_replica_held(wired, listener, seed, k, Some(&events)).await {
            Ok(h) => handles.push(h),
            Err(e) => {
                for h in handles {
                    h.shutdown().await;
                }
                return Err(e);
            }
        }
        logs.push(events.display().to_string());
    }
    info.log = Some(logs.join(", "));
    let bases = handles.iter().map(|h| format!("http://{}", h.server.addr)).collect();
    Ok(Started {
        gw: Gw::Builtin(handles),
        bases,
        headers: Vec::new(),
        api_key: "sk-chaosgate".to_string(),
        timeout,
    })
}

/// An external gateway process, configured from its templates and waited for until it is
/// ready (or a stop comes first: then it is stopped again).
#[allow(clippy::too_many_arguments)]
async fn start_external(
    s: &Scenario,
    x: &crate::scenario::external::ExternalSpec,
    seed: u64,
    run_dir: &Path,
    vars: &BTreeMap<String, crate::scenario::external::ProviderVars>,
    stop: &watch::Receiver<bool>,
    warnings: &mut Vec<String>,
    info: &mut GatewayInfo,
) -> anyhow::Result<Started> {
    let redis = if x.redis {
        Some(Box::new(crate::live::redis::start(run_dir).await?))
    } else {
        None
    };
    let mut gw = Gw::External(Vec::new(), redis);
    match start_replicas(s, x, seed, run_dir, vars, stop, warnings, info, &mut gw).await {
        Ok((bases, headers)) => Ok(Started {
            gw,
            bases,
            headers,
            api_key: x.api_key.clone().unwrap_or_else(|| "sk-chaosgate".into()),
            timeout: 60 * crate::time::NS_PER_S,
        }),
        Err(e) => {
            gw.stop_external().await;
            Err(e)
        }
    }
}

/// Each replica of an external gateway rendered (its own port, `gateway.replica`, its own
/// files: `process::replica_dir`), started, and waited for until it is ready (all started
/// first, then waited for together, so N slow starters take one start's time); each one
/// into `gw` as it starts. Returns the replicas' base URLs and the first one's headers.
#[allow(clippy::too_many_arguments)]
async fn start_replicas(
    s: &Scenario,
    x: &crate::scenario::external::ExternalSpec,
    seed: u64,
    run_dir: &Path,
    vars: &BTreeMap<String, crate::scenario::external::ProviderVars>,
    stop: &watch::Receiver<bool>,
    warnings: &mut Vec<String>,
    info: &mut GatewayInfo,
    gw: &mut Gw,
) -> anyhow::Result<(Vec<String>, Vec<(String, String)>)> {
    let Gw::External(running, redis) = gw else {
        anyhow::bail!("not an external gateway");
    };
    let n = x.replicas.max(1);
    let mut prepared = Vec::new();
    for k in 0..n {
        let port = match x.port {
            Some(p) if p != 0 => p,
            _ => crate::live::net::free_port()?,
        };
        let replica = crate::live::process::ReplicaVars {
            index: k,
            of: n,
            redis: redis.as_ref().map(|r| r.vars.clone()),
        };
        let dir = crate::live::process::replica_dir(run_dir, k, n);
        let p = crate::live::process::prepare(x, &s.dir, &dir, port, vars, seed, s.time_scale, &replica)?;
        if k == 0 {
            warnings.extend(p.notes.iter().cloned());
        }
        running.push(crate::live::process::start(&p, x)?);
        prepared.push(p);
    }
    info.log = Some(
        prepared
            .iter()
            .map(|p| p.log_path.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut stop_rx = stop.clone();
    let started = tokio::time::Instant::now();
    let all_ready = async {
        for (r, p) in running.iter_mut().zip(&prepared) {
            r.wait_ready(&p.ready_url, x.ready_timeout).await.map_err(|e| {
                if n > 1 {
                    anyhow::anyhow!("replica {}: {e}", p.log_path.display())
                } else {
                    e
                }
            })?;
        }
        anyhow::Ok(())
    };
    let ready = tokio::select! {
        r = all_ready => r,
        _ = stop_rx.wait_for(|v| *v) => Err(anyhow::anyhow!("interrupted while waiting for the gateway")),
    };
    ready?;
    info.ready_s = Some(started.elapsed().as_secs_f64());
    let bases = prepared.iter().map(|p| p.base_url.clone()).collect();
    let headers = prepared.first().map(|p| p.headers.clone()).unwrap_or_default();
    Ok((bases, headers))
}

/// What the mocks recorded up to `horizon`: each provider's arrivals, and the fault
/// windows they went through (merged).
fn mock_records(
    mocks: &[(ServerHandle, Arc<MockState>)],
    horizon: Nanos,
) -> (BTreeMap<String, Vec<u64>>, Vec<FaultEvent>) {
    let mut arrivals = BTreeMap::new();
    let mut faults: Vec<FaultEvent> = Vec::new();
    for (_, st) in mocks {
        let name = st.config.name.clone();
        arrivals.insert(name.clone(), st.arrival_series());
        let windows = st.plan.lock().unwrap_or_else(|e| e.into_inner()).fault_windows(horizon);
        faults.extend(windows.into_iter().map(|w| FaultEvent::of_window(&name, w)));
    }
    (arrivals, crate::record::merge_fault_windows(faults))
}

/// The attempt figures' inputs from the mocks: the providers in order and every arrival
/// they logged after time zero (their `ArrivalRecord`s). A mock whose bounded arrival log
/// overflowed makes the figures cover only its latest arrivals: a warning says so.
fn attempt_records(
    mocks: &[(ServerHandle, Arc<MockState>)],
    warnings: &mut Vec<String>,
) -> (Vec<String>, Vec<crate::record::ArrivalRecord>) {
    let mut providers = Vec::new();
    let mut records = Vec::new();
    for (_, st) in mocks {
        let name = &st.config.name;
        providers.push(name.clone());
        let dropped = st.arrivals_dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            warnings.push(format!(
                "provider {name}: its arrival log kept the last {} arrivals and dropped {dropped}: the attempt figures (amplification, truncated successes, probe load, Retry-After) cover only those",
                crate::live::mock::ARRIVAL_LOG_CAPACITY
            ));
        }
        let log = st.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        // what came before time zero (an external gateway's checks while it booted) is not
        // part of the run
        records.extend(log.iter().filter(|a| !a.before_start).map(|a| a.record(name)));
    }
    (providers, records)
}

/// The builtin gateway's events on the run's clock (which starts at `t0`), after shutting
/// it down; none from an external gateway.
async fn gateway_events(gw: Gw, t0: Instant) -> Vec<crate::gateway::GatewayEvent> {
    match gw {
        Gw::Builtin(hs) => {
            let several = hs.len() > 1;
            let mut ev = Vec::new();
            for h in hs {
                // the gateway's clock started before traffic: move its events onto the run clock
                let off = u64::try_from(t0.saturating_duration_since(h.state.start()).as_nanos()).unwrap_or(0);
                ev.extend(h.state.events().into_iter().map(|mut e| {
                    e.t_ns = e.t_ns.saturating_sub(off);
                    e
                }));
                h.shutdown().await;
            }
            // several replicas: one stream in time order (stable: at equal times, replica order)
            if several {
                ev.sort_by_key(|e| e.t_ns);
            }
            ev
        }
        Gw::External(..) | Gw::Running => Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn traffic(
    s: &Scenario,
    seed: u64,
    mocks: &[(ServerHandle, Arc<MockState>)],
    gw: &Gw,
    bases: Vec<String>,
    headers: Vec<(String, String)>,
    api_key: String,
    timeout: Nanos,
    mix: crate::traffic::Mix,
    source: crate::traffic::Source,
    stop: watch::Receiver<bool>,
    counters: Option<Arc<live::LiveCounters>>,
    metrics: Option<Arc<crate::live::load::metrics::LoadMetrics>>,
    view: bool,
    shard: ShardCtx,
) -> anyhow::Result<(live::LoadResult, Instant)> {
    let api = s.traffic.api.unwrap_or(crate::provider::Api::OpenAi);
    let mut opts = LoadOptions::new(&bases[0], api, seed);
    // the client's round robin over the replicas (`gateway::replica_of`)
    opts.more_targets = bases[1..].to_vec();
    opts.bucket = BUCKET;
    opts.timeout = timeout;
    opts.grace = timeout;
    opts.headers = headers;
    opts.api_key = api_key;
    opts.live = counters;
    opts.metrics = metrics;
    opts.stop = Some(stop);
    opts.slo = s.slo.thresholds();
    opts.keep_ends = true;
    opts.start_latency = view;
    // per-phase statistics over the ground-truth windows
    opts.phases = crate::analysis::phase_groups(
        mocks
            .iter()
            .map(|(_, st)| (st.config.name.as_str(), &st.config.profile)),
        seed,
        source.end(),
    );
    opts.shard = shard.shard;
    let t0 = shard
        .t0
        .unwrap_or_else(|| Instant::now() + std::time::Duration::from_millis(20));
    let late = Instant::now().saturating_duration_since(t0);
    if late > std::time::Duration::from_millis(1) {
        eprintln!(
            "chaosgate: warning: this shard's world was up {:.3} s after --start-at: the requests already due are sent at once (their latency from the intended time includes the lateness)",
            late.as_secs_f64()
        );
    }
    opts.t0 = Some(t0);
    for (_, st) in mocks {
        st.start_clock_at(t0);
    }
    if let Gw::Builtin(hs) = gw {
        for h in hs {
            h.state.start_clock_at(t0);
        }
    }
    let r = live::run(source, mix, opts).await?;
    Ok((r, t0))
}
