//! Live progress of every long run — `run`, `sim`, `load`, `demo` — as one labelled line:
//! which point of the sweep (and its swept values), which run of `--repeat`, the time
//! elapsed, the share done, an ETA and the latest figures.
//!
//! On a terminal a progress bar and the line are redrawn in place. Anywhere else (a CI
//! log, a pipe) nothing is shown, unless `CHAOSGATE_STATUS_EVERY` asks for a plain status
//! line on stderr at that interval (`CHAOSGATE_STATUS_EVERY=10s`), and one as each live
//! run starts, so a log shows where a long sweep is. `--quiet` turns both off, in every
//! command.
//!
//! The ETA is the elapsed time scaled by the share of the work still to do
//! (`elapsed × (1 − done) / done`), the work being each run's planned traffic length; it
//! reads `ETA ?` until some of the work is done. The line is built by pure functions of
//! what is known at an instant ([`line`], [`eta`], [`fraction`]), tested by hand below.

use crate::live::load::LiveCounters;
use crate::time::{Nanos, NS_PER_S};
use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that turns plain status lines on when stderr is not a
/// terminal, and says how often (a duration: `10s`, `500ms`).
pub const EVERY_ENV: &str = "CHAOSGATE_STATUS_EVERY";

/// The bar's resolution: its position is the share done in thousandths.
const BAR_STEPS: u64 = 1000;

/// How often the line is redrawn on a terminal.
const TERMINAL_TICK: Duration = Duration::from_millis(250);

/// Requests so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Finished: ok, failed or dropped.
    pub requests: u64,
    /// Failed (every class but ok and dropped).
    pub failed: u64,
    /// Dropped at the client's concurrency cap.
    pub dropped: u64,
    /// Requests finished per second since the last line (live).
    pub rate: Option<f64>,
    /// p99 end-to-end latency so far, ms (live).
    pub p99_ms: Option<f64>,
}

/// Which runs the line is about.
#[derive(Clone, Debug, PartialEq)]
pub enum Runs {
    /// Live runs go one at a time: run `k` (1-based) of the point's `of`.
    Current {
        /// 1-based.
        k: usize,
        /// Runs per point.
        of: usize,
    },
    /// Simulated runs go in parallel: `done` of all `of` runs finished.
    Finished {
        /// Runs finished.
        done: usize,
        /// Every run of every point.
        of: usize,
    },
}

/// What the progress line says at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// `run`, `sim`, `load`, `demo`.
    pub command: String,
    /// Point `i` (1-based) of `n`, and its swept values (`key=value, …`).
    pub point: Option<(usize, usize, String)>,
    /// Which run.
    pub runs: Option<Runs>,
    /// Since the command started.
    pub elapsed: Nanos,
    /// Share of all the work done, in [0, 1].
    pub done: f64,
    /// Latest figures.
    pub figures: Option<Figures>,
    /// What is happening when there are no figures yet (`starting`).
    pub note: Option<String>,
}

/// The time left, from the elapsed time and the share done: `elapsed × (1 − done) / done`.
/// `None` while nothing is done (it cannot be estimated yet); 0 once all is.
pub fn eta(elapsed: Nanos, done: f64) -> Option<Nanos> {
    if done.is_nan() || done <= 0.0 {
        return None;
    }
    if done >= 1.0 {
        return Some(0);
    }
    let left = elapsed as f64 * (1.0 - done) / done;
    Some(left.round().min(u64::MAX as f64) as Nanos)
}

/// The share done of work weighing `total`, when runs weighing `finished` are over and
/// the current run (weight `len`) has been going for `elapsed` of it (capped at `len`: the
/// wait for the last answers after the schedule counts as the run's end).
pub fn fraction(finished: u128, total: u128, current: Option<(Nanos, Nanos)>) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let partial = current.map_or(0, |(elapsed, len)| u128::from(elapsed.min(len)));
    ((finished + partial) as f64 / total as f64).clamp(0.0, 1.0)
}

/// `m:ss`, or `h:mm:ss` from an hour.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The progress line: `chaosgate run: point 2/3 interval=30s · run 1/5 · 1:23 elapsed ·
/// 31 % · ETA 3:04 · 1200 requests, 12 failed (1.00 %), 0 dropped · 199.8 req/s · p99 312 ms`.
/// The point shows only in a sweep, the run only with `--repeat`.
pub fn line(s: &Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some((i, n, label)) = &s.point {
        if *n > 1 {
            parts.push(if label.is_empty() {
                format!("point {i}/{n}")
            } else {
                format!("point {i}/{n} {label}")
            });
        }
    }
    match s.runs {
        Some(Runs::Current { k, of }) if of > 1 => parts.push(format!("run {k}/{of}")),
        Some(Runs::Finished { done, of }) if of > 1 => parts.push(format!("{done}/{of} runs done")),
        _ => {}
    }
    parts.push(format!("{} elapsed", clock(s.elapsed / NS_PER_S)));
    parts.push(format!("{:.0} %", (s.done * 100.0).floor()));
    parts.push(match eta(s.elapsed, s.done) {
        // whole seconds, rounded up: never sooner than the estimate
        Some(left) => format!("ETA {}", clock(left.div_ceil(NS_PER_S))),
        None => "ETA ?".into(),
    });
    if let Some(f) = s.figures {
        let pct = if f.requests > 0 {
            100.0 * f.failed as f64 / f.requests as f64
        } else {
            0.0
        };
        parts.push(format!(
            "{} requests, {} failed ({pct:.2} %), {} dropped",
            f.requests, f.failed, f.dropped
        ));
        if let Some(r) = f.rate {
            parts.push(format!("{r:.1} req/s"));
        }
        if let Some(p) = f.p99_ms {
            parts.push(format!("p99 {p:.0} ms"));
        }
    }
    if let Some(n) = &s.note {
        parts.push(n.clone());
    }
    format!("chaosgate {}: {}", s.command, parts.join(" · "))
}

/// The plain status interval off a terminal: `None` (no status lines) unless
/// `CHAOSGATE_STATUS_EVERY` is set, then its value (a duration of at least 100 ms).
pub fn status_every(env: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(v) = env else { return Ok(None) };
    let d: crate::time::Dur = v.parse().map_err(|e| format!("{EVERY_ENV}={v:?}: {e}"))?;
    if d.0 < 100_000_000 {
        return Err(format!("{EVERY_ENV}={v:?}: at least 100ms"));
    }
    Ok(Some(Duration::from_nanos(d.0)))
}

/// The bar's position for a share done in [0, 1] (out of [`BAR_STEPS`]).
pub fn bar_position(done: f64) -> u64 {
    if done.is_nan() {
        return 0;
    }
    (done.clamp(0.0, 1.0) * BAR_STEPS as f64).floor() as u64
}

/// Figures of a live run's counters.
fn live_figures(c: &LiveCounters) -> Figures {
    let (ok, failed, dropped) = (c.ok.load(Relaxed), c.failed.load(Relaxed), c.dropped.load(Relaxed));
    let p99 = c.p99_us.load(Relaxed);
    Figures {
        requests: ok + failed + dropped,
        failed,
        dropped,
        rate: None,
        p99_ms: (p99 > 0).then_some(p99 as f64 / 1e3),
    }
}

/// The work of a command and how far it got.
struct Plan {
    command: String,
    started: Instant,
    /// Per point: its label and the weight of one of its runs (its traffic length).
    points: Vec<(String, Nanos)>,
    repeats: usize,
    total: u128,
    finished_weight: u128,
    finished_runs: usize,
    /// Live: the run going now (point, k, its counters).
    current: Option<(usize, usize, Arc<LiveCounters>)>,
    /// Simulated: the last point a run finished of, and the figures of every finished run.
    last_point: usize,
    sim_figures: Figures,
    parallel: bool,
    /// Live: requests finished and when, at the last line (for the rate).
    last_sample: Option<(Instant, u64)>,
}

impl Plan {
    fn status(&mut self, now: Instant) -> Status {
        let elapsed = now.saturating_duration_since(self.started).as_nanos() as Nanos;
        let n = self.points.len();
        if self.parallel {
            let i = self.last_point.min(n.saturating_sub(1));
            return Status {
                command: self.command.clone(),
                point: self.points.get(i).map(|(l, _)| (i + 1, n, l.clone())),
                runs: Some(Runs::Finished {
                    done: self.finished_runs,
                    of: n * self.repeats,
                }),
                elapsed,
                done: fraction(self.finished_weight, self.total, None),
                figures: (self.finished_runs > 0).then_some(self.sim_figures),
                note: None,
            };
        }
        let Some((i, k, c)) = &self.current else {
            return Status {
                command: self.command.clone(),
                point: None,
                runs: None,
                elapsed,
                done: fraction(self.finished_weight, self.total, None),
                figures: None,
                note: None,
            };
        };
        let (label, len) = self.points[*i].clone();
        let in_run = c
            .started()
            .map(|t0| (now.saturating_duration_since(t0).as_nanos() as Nanos, len));
        let mut figures = None;
        if in_run.is_some() {
            let mut f = live_figures(c);
            if let Some((t, n)) = self.last_sample {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                if dt > 0.0 && f.requests >= n {
                    f.rate = Some((f.requests - n) as f64 / dt);
                }
            }
            self.last_sample = Some((now, f.requests));
            figures = Some(f);
        }
        Status {
            command: self.command.clone(),
            point: Some((i + 1, n, label)),
            runs: Some(Runs::Current {
                k: k + 1,
                of: self.repeats,
            }),
            elapsed,
            done: fraction(self.finished_weight, self.total, in_run),
            figures,
            note: in_run.is_none().then(|| "starting".to_string()),
        }
    }
}

/// How the line is shown.
enum Show {
    Terminal(indicatif::ProgressBar),
    Plain,
}

/// The progress reporter of one command: a thread that draws the line (terminal) or
/// prints a status line every few seconds (elsewhere). Inert when disabled (`--quiet`).
pub struct Reporter {
    inner: Option<Inner>,
}

struct Inner {
    plan: Arc<Mutex<Plan>>,
    plain: bool,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Reporter {
    /// A reporter that shows nothing.
    pub fn off() -> Reporter {
        Reporter { inner: None }
    }

    /// Starts reporting on `command`'s `points` (label, weight of one run) × `repeats`;
    /// `parallel` runs (the simulator) are counted as they finish, live ones shown as
    /// they go. Shows nothing unless `enabled`.
    pub fn start(
        command: &str,
        enabled: bool,
        points: Vec<(String, Nanos)>,
        repeats: usize,
        parallel: bool,
    ) -> Reporter {
        if !enabled {
            return Reporter::off();
        }
        let repeats = repeats.max(1);
        let n_runs = points.len() * repeats;
        let total = points.iter().map(|(_, w)| u128::from((*w).max(1))).sum::<u128>() * repeats as u128;
        let plan = Arc::new(Mutex::new(Plan {
            command: command.to_string(),
            started: Instant::now(),
            points: points.into_iter().map(|(l, w)| (l, w.max(1))).collect(),
            repeats,
            total,
            finished_weight: 0,
            finished_runs: 0,
            current: None,
            last_point: 0,
            sim_figures: Figures::default(),
            parallel,
            last_sample: None,
        }));
        let (show, every) = if std::io::stderr().is_terminal() {
            let pb = indicatif::ProgressBar::with_draw_target(Some(BAR_STEPS), indicatif::ProgressDrawTarget::stderr());
            pb.set_style(indicatif::ProgressStyle::with_template("{bar:24} {wide_msg}").expect("template"));
            (Show::Terminal(pb), TERMINAL_TICK)
        } else {
            match status_every(std::env::var(EVERY_ENV).ok().as_deref()) {
                Ok(Some(every)) => (Show::Plain, every),
                Ok(None) => return Reporter::off(),
                Err(m) => {
                    eprintln!("chaosgate: {m}; no status lines");
                    return Reporter::off();
                }
            }
        };
        let plain = matches!(show, Show::Plain);
        // off a terminal a simulated sweep or repeat says at once what it is doing; a live
        // run says so as it begins (`begin_run`)
        if plain && parallel && n_runs > 1 {
            eprintln!(
                "{}",
                line(&plan.lock().unwrap_or_else(|e| e.into_inner()).status(Instant::now()))
            );
        }
        let (tx, rx) = mpsc::channel::<()>();
        let p = plan.clone();
        let thread = std::thread::spawn(move || loop {
            match rx.recv_timeout(every) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => {
                    if let Show::Terminal(pb) = &show {
                        pb.finish_and_clear();
                    }
                    break;
                }
            }
            let status = p.lock().unwrap_or_else(|e| e.into_inner()).status(Instant::now());
            let text = line(&status);
            match &show {
                Show::Terminal(pb) => {
                    pb.set_position(bar_position(status.done));
                    pb.set_message(text);
                }
                Show::Plain => eprintln!("{text}"),
            }
        });
        Reporter {
            inner: Some(Inner {
                plan,
                plain,
                stop: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        }
    }

    /// A live run of point `i`, run `k` (0-based) begins: the counters to hand to the load
    /// client (None when inert). Off a terminal this prints a status line at once.
    pub fn begin_run(&self, i: usize, k: usize) -> Option<Arc<LiveCounters>> {
        let inner = self.inner.as_ref()?;
        let c = Arc::new(LiveCounters::default());
        let mut plan = inner.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.current = Some((i, k, c.clone()));
        plan.last_sample = None;
        if inner.plain {
            eprintln!("{}", line(&plan.status(Instant::now())));
        }
        Some(c)
    }

    /// The live run begun last is over.
    pub fn end_run(&self) {
        let Some(inner) = &self.inner else { return };
        let mut plan = inner.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((i, _, _)) = plan.current.take() {
            plan.finished_weight += u128::from(plan.points[i].1);
            plan.finished_runs += 1;
        }
    }

    /// A simulated run of point `i` finished with `f`.
    pub fn finished(&self, i: usize, f: Figures) {
        let Some(inner) = &self.inner else { return };
        let mut plan = inner.plan.lock().unwrap_or_else(|e| e.into_inner());
        let w = plan.points.get(i).map_or(0, |p| p.1);
        plan.finished_weight += u128::from(w);
        plan.finished_runs += 1;
        plan.last_point = i;
        let s = &mut plan.sim_figures;
        s.requests += f.requests;
        s.failed += f.failed;
        s.dropped += f.dropped;
    }

    /// Stops the line (cleared from a terminal); the report follows.
    pub fn finish(&self) {
        let Some(inner) = &self.inner else { return };
        drop(inner.stop.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = inner.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The label of a sweep point: its swept values, `key=value, …`.
pub fn label(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = NS_PER_S;

    fn status(done: f64, elapsed: Nanos) -> Status {
        Status {
            command: "run".into(),
            point: Some((2, 3, "gateway.health_check.interval=30s".into())),
            runs: Some(Runs::Current { k: 1, of: 5 }),
            elapsed,
            done,
            figures: Some(Figures {
                requests: 1200,
                failed: 12,
                dropped: 0,
                rate: Some(199.84),
                p99_ms: Some(312.4),
            }),
            note: None,
        }
    }

    #[test]
    fn eta_is_elapsed_times_the_share_left_over_the_share_done() {
        // a quarter done in 60 s: three quarters left at the same pace = 180 s
        assert_eq!(eta(60 * S, 0.25), Some(180 * S));
        // half done in 61 min 5 s: as long again
        assert_eq!(eta(3665 * S, 0.5), Some(3665 * S));
        // 0.8 done in 100 s: 100 × 0.2 / 0.8 = 25 s
        assert_eq!(eta(100 * S, 0.8), Some(25 * S));
        assert_eq!(eta(100 * S, 1.0), Some(0));
    }

    #[test]
    fn eta_is_unknown_before_any_work_is_done() {
        assert_eq!(eta(30 * S, 0.0), None);
        assert_eq!(eta(0, 0.0), None);
        assert_eq!(eta(30 * S, f64::NAN), None);
        let s = status(0.0, 30 * S);
        assert!(line(&s).contains("· ETA ? ·"), "{}", line(&s));
    }

    #[test]
    fn fraction_weighs_runs_by_their_traffic_length() {
        // 4 runs of 60 s; one over, the second 15 s in: (60 + 15) / 240
        assert_eq!(
            fraction(60 * S as u128, 240 * S as u128, Some((15 * S, 60 * S))),
            0.3125
        );
        // the wait for the last answers after the schedule counts as the run's end
        assert_eq!(fraction(0, 120 * S as u128, Some((90 * S, 60 * S))), 0.5);
        assert_eq!(fraction(0, 0, None), 0.0);
        assert_eq!(fraction(3, 4, None), 0.75);
    }

    #[test]
    fn clock_reads_minutes_and_hours() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(83), "1:23");
        assert_eq!(clock(3599), "59:59");
        assert_eq!(clock(3725), "1:02:05");
    }

    #[test]
    fn the_line_names_point_run_elapsed_eta_and_figures() {
        // 1 min 23 s elapsed, 31.25 % done: 83 × 0.6875 / 0.3125 = 182.6 s → 3:03 rounded up
        let s = status(0.3125, 83 * S);
        assert_eq!(
            line(&s),
            "chaosgate run: point 2/3 gateway.health_check.interval=30s · run 1/5 · 1:23 elapsed · 31 % · \
             ETA 3:03 · 1200 requests, 12 failed (1.00 %), 0 dropped · 199.8 req/s · p99 312 ms"
        );
    }

    #[test]
    fn the_line_leaves_out_a_single_point_and_a_single_run() {
        let mut s = status(0.5, 10 * S);
        s.command = "load".into();
        s.point = Some((1, 1, String::new()));
        s.runs = Some(Runs::Current { k: 1, of: 1 });
        s.figures = None;
        s.note = Some("starting".into());
        assert_eq!(line(&s), "chaosgate load: 0:10 elapsed · 50 % · ETA 0:10 · starting");
    }

    #[test]
    fn the_simulators_line_counts_finished_runs() {
        let s = Status {
            command: "sim".into(),
            point: Some((4, 4, "gateway.health_check.interval=60s".into())),
            runs: Some(Runs::Finished { done: 150, of: 800 }),
            elapsed: 12 * S,
            done: 0.1875,
            figures: Some(Figures {
                requests: 3_000_000,
                failed: 15_000,
                ..Figures::default()
            }),
            note: None,
        };
        // 12 × 0.8125 / 0.1875 = 52 s
        assert_eq!(
            line(&s),
            "chaosgate sim: point 4/4 gateway.health_check.interval=60s · 150/800 runs done · 0:12 elapsed · \
             18 % · ETA 0:52 · 3000000 requests, 15000 failed (0.50 %), 0 dropped"
        );
    }

    #[test]
    fn the_bar_is_the_share_done_in_thousandths() {
        assert_eq!(bar_position(0.0), 0);
        assert_eq!(bar_position(0.1875), 187);
        assert_eq!(bar_position(1.0), BAR_STEPS);
        // out of range or unknown: clamped, never a panic or a bar past its end
        assert_eq!(bar_position(1.5), BAR_STEPS);
        assert_eq!(bar_position(-0.2), 0);
        assert_eq!(bar_position(f64::NAN), 0);
    }

    #[test]
    fn status_interval_from_the_environment() {
        // off a terminal nothing is shown unless asked for
        assert_eq!(status_every(None), Ok(None));
        assert_eq!(status_every(Some("10s")), Ok(Some(Duration::from_secs(10))));
        assert_eq!(status_every(Some("250ms")), Ok(Some(Duration::from_millis(250))));
        assert!(status_every(Some("1ms")).unwrap_err().contains("at least 100ms"));
        assert!(status_every(Some("soon")).unwrap_err().contains(EVERY_ENV));
    }

    #[test]
    fn a_live_plan_moves_with_its_runs() {
        let mut p = Plan {
            command: "run".into(),
            started: Instant::now(),
            points: vec![("a=1".into(), 60 * S), ("a=2".into(), 60 * S)],
            repeats: 1,
            total: 120 * S as u128,
            finished_weight: 0,
            finished_runs: 0,
            current: Some((0, 0, Arc::new(LiveCounters::default()))),
            last_point: 0,
            sim_figures: Figures::default(),
            parallel: false,
            last_sample: None,
        };
        let now = p.started;
        // before traffic: no figures, no ETA, says what it waits for
        let s = p.status(now);
        assert_eq!(
            (s.done, s.figures, s.point.clone()),
            (0.0, None, Some((1, 2, "a=1".into())))
        );
        assert!(line(&s).contains("ETA ? · starting"), "{}", line(&s));
        // traffic 30 s in (of 60), 10 s after the command started
        let c = p.current.as_ref().unwrap().2.clone();
        *c.t0.lock().unwrap() = Some(now + Duration::from_secs(10));
        c.ok.store(90, Relaxed);
        c.failed.store(10, Relaxed);
        let s = p.status(now + Duration::from_secs(40));
        assert_eq!(s.done, 0.25);
        assert_eq!(s.figures.map(|f| (f.requests, f.failed)), Some((100, 10)));
        // 40 s for a quarter: 120 s left
        assert!(line(&s).contains("0:40 elapsed · 25 % · ETA 2:00"), "{}", line(&s));
    }
}
