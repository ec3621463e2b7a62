//! The Kubernetes example (examples/kubernetes/, docs/kubernetes.md) against chaosgate's own
//! command line, without a cluster: every chaosgate command line in the manifests —
//! after Kubernetes' `$(VAR)` expansion with the pod's env, for every index of an Indexed
//! Job — parses with `chaosgate::cli::Cli`; shard Jobs use `--shard auto` with N equal to
//! `completions` and `parallelism`, and write `--result` files on the shared results
//! volume, one per index; each merge Job's glob reads exactly one shard Job's files and
//! none of its own outputs; the Dockerfile puts the fault profiles where the mounted
//! scenario's relative paths look. Mutated copies of the manifests must fail each check.
//! Then the Jobs' pods run here as processes, and their merge scripts through `/bin/sh`.
//! (scripts/k8s-validate checks the same files against the Kubernetes API schemas.)
#![allow(clippy::disallowed_methods)] // reads the example files and the clock

mod common;

use chaosgate::cli::shard::resolve;
use chaosgate::cli::{Cli, Command};
use chaosgate::provider::Api;
use chaosgate::traffic::shard::Shard;
use clap::Parser;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

const DIR: &str = "examples/kubernetes";
/// The Job controller's annotation that holds a pod's index.
const INDEX_FIELD: &str = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
/// Most shards the test expands (a manifest with more is a mistake here).
const MAX_N: u64 = 64;

/// One YAML document of one file.
#[derive(Clone)]
struct Doc {
    file: String,
    v: Value,
}

fn sources() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(DIR).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    assert!(!out.is_empty(), "no manifests in {DIR}");
    out
}

fn parse(sources: &BTreeMap<String, String>) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (file, src) in sources {
        for d in serde_norway::Deserializer::from_str(src) {
            let v = Value::deserialize(d).map_err(|e| format!("{file}: {e}"))?;
            if !v.is_null() {
                docs.push(Doc { file: file.clone(), v });
            }
        }
    }
    Ok(docs)
}

/// The manifests with `from` replaced by `to` in `file` (which must hold `from`).
fn mutated(file: &str, from: &str, to: &str) -> Vec<Doc> {
    let mut s = sources();
    let src = s.get_mut(file).unwrap();
    assert!(
        src.contains(from),
        "{file} has no {from:?}: the mutation would test nothing"
    );
    *src = src.replacen(from, to, 1);
    parse(&s).unwrap()
}

fn str_of<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// `*` matches any run of characters but `/` (a shell glob, the only pattern the merge
/// Jobs use).
fn glob_match(pat: &str, s: &str) -> bool {
    match pat.split_once('*') {
        None => pat == s,
        Some((head, tail)) => {
            let Some(rest) = s.strip_prefix(head) else { return false };
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .any(|i| rest.is_char_boundary(i) && glob_match(tail, &rest[i..]))
        }
    }
}

/// Kubernetes' expansion of `$(NAME)` in command and args: defined names are replaced,
/// `$$` is a `$`; a reference to an undefined name stays as written — here, an error.
fn expand(s: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            let end = r.find(')').ok_or_else(|| format!("unclosed $( in {s:?}"))?;
            let name = &r[..end];
            let val = env
                .get(name)
                .ok_or_else(|| format!("$({name}) in {s:?}: no env var {name} in the container"))?;
            out.push_str(val);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The volumes a container mounts: mount path → (volume source kind, its name).
fn mounts(pod: &Value, container: &Value) -> Vec<(String, &'static str, String)> {
    let mut out = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let path = m["mountPath"].as_str().unwrap_or_default().to_string();
        let vol = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name);
        let Some(vol) = vol else { continue };
        if let Some(c) = str_of(vol, "/persistentVolumeClaim/claimName") {
            out.push((path, "pvc", c.to_string()));
        } else if let Some(c) = str_of(vol, "/configMap/name") {
            out.push((path, "configMap", c.to_string()));
        } else {
            out.push((path, "other", name.to_string()));
        }
    }
    out
}

/// `path` on a PVC mount: (claim, path inside the volume).
fn on_claim(mounts: &[(String, &'static str, String)], path: &str) -> Option<(String, String)> {
    mounts.iter().find_map(|(at, kind, name)| {
        let rel = path.strip_prefix(at.as_str())?.strip_prefix('/')?;
        (*kind == "pvc").then(|| (name.clone(), rel.to_string()))
    })
}

/// A shard Job: its files on the results volume, one per index.
#[derive(Debug)]
struct ShardJob {
    job: String,
    command: &'static str,
    n: u32,
    claim: String,
    results: Vec<String>,
    /// `sim`: the scenario path, --set and --sweep.
    scenario: Option<(String, Vec<String>, Vec<String>)>,
}

/// A merge Job: its input globs and outputs on the results volume.
#[derive(Debug)]
struct MergeJob {
    job: String,
    claim: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// One pod's chaosgate command line, expanded: what the test can run here.
#[derive(Debug)]
struct Pod {
    job: String,
    /// The argv (`chaosgate …`), expanded.
    argv: Vec<String>,
    /// For `/bin/sh -c`: the script, expanded (globs left to the shell).
    script: Option<String>,
    env: BTreeMap<String, String>,
    /// A shard of an Indexed Job.
    shard: bool,
}

#[derive(Debug, Default)]
struct Found {
    shard_jobs: Vec<ShardJob>,
    merges: Vec<MergeJob>,
    commands: usize,
    run_as: Vec<i64>,
    pods: Vec<Pod>,
}

/// ConfigMap values the manifests do not hold (the walk-through's `chaosgate-start`) or
/// that a test overrides: `(ConfigMap, key) → value`.
type Given = BTreeMap<(String, String), String>;

/// Every check on the manifests; the first failure, named.
fn check(docs: &[Doc], given: &Given, now: SystemTime) -> Result<Found, String> {
    let mut configmaps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for d in docs.iter().filter(|d| d.v["kind"] == "ConfigMap") {
        let name = str_of(&d.v, "/metadata/name").unwrap_or_default().to_string();
        let data = d.v["data"].as_object().cloned().unwrap_or_default();
        let data = data
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(format!("{}: ConfigMap {name} key {k}: {other} is not a string", d.file)),
            })
            .collect::<Result<_, _>>()?;
        configmaps.insert(name, data);
    }
    let mut found = Found::default();
    for d in docs {
        let kind = d.v["kind"].as_str().unwrap_or_default();
        let name = str_of(&d.v, "/metadata/name").unwrap_or_default();
        let at = format!("{} {kind}/{name}", d.file);
        let pod = match kind {
            "Job" | "Deployment" => &d.v["spec"]["template"]["spec"],
            "Pod" => &d.v["spec"],
            _ => continue,
        };
        let indexed = kind == "Job" && d.v["spec"]["completionMode"] == "Indexed";
        let n = if indexed {
            let c = d.v["spec"]["completions"]
                .as_u64()
                .ok_or(format!("{at}: Indexed Job without completions"))?;
            let p = d.v["spec"]["parallelism"].as_u64();
            if p != Some(c) {
                return Err(format!(
                    "{at}: parallelism {p:?} ≠ completions {c}: shards must run at once"
                ));
            }
            if !(1..=MAX_N).contains(&c) {
                return Err(format!("{at}: completions {c} outside 1..={MAX_N}"));
            }
            c as u32
        } else {
            1
        };
        if kind == "Job" && pod["restartPolicy"] != "Never" {
            return Err(format!(
                "{at}: restartPolicy must be Never (a restarted shard would run twice)"
            ));
        }
        if let Some(u) = pod["securityContext"]["runAsUser"].as_i64() {
            found.run_as.push(u);
        }
        let containers = pod["containers"].as_array().into_iter().flatten();
        let init = pod["initContainers"].as_array().into_iter().flatten();
        for c in containers.chain(init) {
            let cname = c["name"].as_str().unwrap_or_default();
            let at = format!("{at} container {cname}");
            let image = c["image"].as_str().unwrap_or_default();
            // chaosgate:dev, or the same image pushed to a registry (REGISTRY/…/chaosgate:TAG)
            if !image.rsplit('/').next().unwrap_or_default().starts_with("chaosgate:") {
                continue;
            }
            let mounts = mounts(pod, c);
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()))
                    .collect()
            };
            let (command, args) = (strings(&c["command"]), strings(&c["args"]));
            // The argv of each index (the same for all but $(JOB_COMPLETION_INDEX)).
            let mut per_index = Vec::new();
            for i in 0..n {
                let mut env = BTreeMap::new();
                for e in c["env"].as_array().into_iter().flatten() {
                    let ename = e["name"].as_str().unwrap_or_default().to_string();
                    let val = if let Some(v) = e["value"].as_str() {
                        v.to_string()
                    } else if let Some(f) = str_of(e, "/valueFrom/fieldRef/fieldPath") {
                        if f != INDEX_FIELD || !indexed {
                            return Err(format!("{at}: env {ename}: fieldRef {f} is not an Indexed Job's index"));
                        }
                        i.to_string()
                    } else if let (Some(cm), Some(key)) = (
                        str_of(e, "/valueFrom/configMapKeyRef/name"),
                        str_of(e, "/valueFrom/configMapKeyRef/key"),
                    ) {
                        if let Some(v) = given.get(&(cm.to_string(), key.to_string())) {
                            v.clone()
                        } else {
                            configmaps
                                .get(cm)
                                .and_then(|m| m.get(key))
                                .ok_or_else(|| format!("{at}: env {ename}: no ConfigMap {cm} with key {key} in {DIR}"))?
                                .clone()
                        }
                    } else {
                        return Err(format!(
                            "{at}: env {ename}: neither a value, the index nor a ConfigMap key"
                        ));
                    };
                    env.insert(ename, val);
                }
                let args = args.iter().map(|a| expand(a, &env)).collect::<Result<Vec<_>, _>>()?;
                let mut script_of = None;
                let argv = match command.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    // the image's entrypoint
                    [] => std::iter::once("chaosgate".to_string()).chain(args).collect::<Vec<_>>(),
                    ["/bin/sh", "-c"] => {
                        let [script] = &args[..] else {
                            return Err(format!("{at}: sh -c takes one script"));
                        };
                        if let Some(ch) = script.chars().find(|ch| "'\"`$;&|<>(){}\\\n?[".contains(*ch)) {
                            return Err(format!(
                                "{at}: the script has {ch:?}: keep it to one plain command and * globs"
                            ));
                        }
                        script_of = Some(script.clone());
                        let words: Vec<String> = script.split_whitespace().map(String::from).collect();
                        match words.iter().position(|w| w != "exec") {
                            Some(p) if words[p] == "chaosgate" => words[p..].to_vec(),
                            _ => return Err(format!("{at}: the script must run chaosgate: {script:?}")),
                        }
                    }
                    [first, ..] if first != "chaosgate" && !first.contains("chaosgate") => {
                        // not a chaosgate command (the results reader's sleep)
                        break;
                    }
                    _ => return Err(format!("{at}: command {command:?}: use the entrypoint or /bin/sh -c")),
                };
                if kind == "Job" {
                    found.pods.push(Pod {
                        job: name.to_string(),
                        argv: argv.clone(),
                        script: script_of,
                        env: env.clone(),
                        shard: indexed,
                    });
                }
                per_index.push((argv, env));
            }
            for (i, (argv, env)) in per_index.iter().enumerate() {
                let line = argv.join(" ");
                let cli = Cli::try_parse_from(argv).map_err(|e| format!("{at}: `{line}`:\n{e}"))?;
                found.commands += 1;
                let (what, shard, live) = match &cli.command {
                    Command::Load(l) => {
                        if l.seed.is_none() {
                            return Err(format!("{at}: load shards need --seed (every shard the same schedule)"));
                        }
                        if l.shard.start_at.is_none() {
                            return Err(format!(
                                "{at}: load shards need --start-at (every shard starts together)"
                            ));
                        }
                        ("load", &l.shard, true)
                    }
                    Command::Run(r) => ("run", &r.shard, true),
                    Command::Sim(s) => ("sim", &s.shard, false),
                    Command::Merge(m) => {
                        if i > 0 {
                            continue;
                        }
                        let mut ins = Vec::new();
                        let mut claim = None;
                        for f in &m.files {
                            let f = f.to_string_lossy();
                            let (c, rel) = on_claim(&mounts, &f)
                                .ok_or(format!("{at}: merge input {f} is not on a mounted volume claim"))?;
                            claim = Some(c);
                            ins.push(rel);
                        }
                        let mut outs = Vec::new();
                        let csv = m.csv.iter().flat_map(|p| {
                            ["_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv"]
                                .map(|s| format!("{p}{s}"))
                        });
                        let files = [&m.json, &m.junit, &m.hlog, &m.chart].into_iter().flatten();
                        for o in files.map(|p| p.to_string_lossy().into_owned()).chain(csv) {
                            let (c, rel) = on_claim(&mounts, &o)
                                .ok_or(format!("{at}: merge output {o} is not on the results volume"))?;
                            if Some(&c) != claim.as_ref() {
                                return Err(format!("{at}: merge output {o} is on another volume than its inputs"));
                            }
                            outs.push(rel);
                        }
                        found.merges.push(MergeJob {
                            job: name.to_string(),
                            claim: claim.unwrap_or_default(),
                            inputs: ins,
                            outputs: outs,
                        });
                        continue;
                    }
                    _ => continue,
                };
                if !indexed {
                    if shard.shard.is_some() {
                        return Err(format!("{at}: --shard outside an Indexed Job"));
                    }
                    continue;
                }
                if shard.shard.as_deref() != Some("auto") {
                    return Err(format!(
                        "{at}: an Indexed Job's shards take --shard auto, not {:?}",
                        shard.shard
                    ));
                }
                let count = shard
                    .shards
                    .map(|s| s.to_string())
                    .or_else(|| env.get("JOB_COMPLETION_COUNT").cloned());
                if count.as_deref() != Some(&n.to_string()) {
                    return Err(format!(
                        "{at}: the shard count (--shards or JOB_COMPLETION_COUNT) is {count:?}, completions is {n}"
                    ));
                }
                let lookup = |k: &str| env.get(k).cloned();
                let plan = resolve(shard, &lookup, now, live)
                    .map_err(|e| format!("{at}: `{line}`: {e}"))?
                    .ok_or(format!("{at}: no shard plan"))?;
                if plan.shard != Shard::new(i as u32, n).unwrap() {
                    return Err(format!("{at}: index {i} resolved to shard {:?}", plan.shard));
                }
                let result = plan.result.unwrap().to_string_lossy().into_owned();
                let (claim, rel) = on_claim(&mounts, &result).ok_or(format!(
                    "{at}: --result {result} is not on the results volume (a PVC mount)"
                ))?;
                if i == 0 {
                    let scenario = match &cli.command {
                        Command::Sim(s) => {
                            let p = s
                                .common
                                .scenario
                                .as_ref()
                                .ok_or(format!("{at}: sim without a scenario"))?;
                            let p = p.to_string_lossy().into_owned();
                            let from_cm = mounts
                                .iter()
                                .any(|(m, k, _)| *k == "configMap" && Path::new(&p).parent() == Some(Path::new(m)));
                            if !from_cm {
                                return Err(format!("{at}: the scenario {p} is not in a mounted ConfigMap"));
                            }
                            Some((p, s.common.set.clone(), s.common.sweep.clone()))
                        }
                        _ => None,
                    };
                    found.shard_jobs.push(ShardJob {
                        job: name.to_string(),
                        command: what,
                        n,
                        claim,
                        results: vec![rel],
                        scenario,
                    });
                } else {
                    let j = found.shard_jobs.last_mut().unwrap();
                    if j.results.contains(&rel) {
                        return Err(format!(
                            "{at}: shards {} and {i} write the same file {rel}",
                            j.results.len() - 1
                        ));
                    }
                    j.results.push(rel);
                }
            }
        }
    }
    if found.shard_jobs.is_empty() {
        return Err("no shard Job in the manifests".into());
    }
    // Each shard Job has a merge Job whose glob reads all its files, and no other Job's.
    for j in &found.shard_jobs {
        let readers: Vec<&MergeJob> = found
            .merges
            .iter()
            .filter(|m| m.claim == j.claim && m.inputs.iter().any(|g| j.results.iter().all(|r| glob_match(g, r))))
            .collect();
        let [m] = readers[..] else {
            return Err(format!(
                "{} ({}): {} merge Jobs read all of {:?}",
                j.job,
                j.command,
                readers.len(),
                j.results
            ));
        };
        for other in found.shard_jobs.iter().filter(|o| o.job != j.job) {
            if let Some(r) = other.results.iter().find(|r| m.inputs.iter().any(|g| glob_match(g, r))) {
                return Err(format!("{}: reads {r} of {} too", m.job, other.job));
            }
        }
    }
    for m in &found.merges {
        if let Some(o) = m.outputs.iter().find(|o| m.inputs.iter().any(|g| glob_match(g, o))) {
            return Err(format!("{}: its output {o} matches its own input glob", m.job));
        }
    }
    Ok(found)
}

fn unix_secs(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs().to_string()
}

fn start_at(now: SystemTime) -> String {
    unix_secs(now + Duration::from_secs(120))
}

/// What the walk-through creates: the start time, two minutes ahead.
fn walk_through(now: SystemTime) -> Given {
    given(&[("chaosgate-start", "START_AT", &start_at(now))])
}

fn given(v: &[(&str, &str, &str)]) -> Given {
    v.iter()
        .map(|(c, k, v)| ((c.to_string(), k.to_string()), v.to_string()))
        .collect()
}

fn check_mutated(file: &str, from: &str, to: &str) -> String {
    let now = SystemTime::now();
    match check(&mutated(file, from, to), &walk_through(now), now) {
        Ok(f) => panic!("{file} with {from:?} → {to:?} passed: {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_manifests_run_chaosgate_commands_that_parse_and_shard() {
    let now = SystemTime::now();
    let docs = parse(&sources()).unwrap();
    let found = check(&docs, &walk_through(now), now).unwrap_or_else(|e| panic!("{e}"));
    let jobs: Vec<(&str, u32, &[String])> = found
        .shard_jobs
        .iter()
        .map(|j| (j.command, j.n, &j.results[..]))
        .collect();
    let files = |k: &str| (0..4).map(|i| format!("{k}-{i}.json")).collect::<Vec<_>>();
    let run = format!("load-{}", start_at(now));
    assert_eq!(jobs, [("load", 4, &files(&run)[..]), ("sim", 4, &files("sim")[..])]);
    assert_eq!(found.merges.len(), 2);
    // 4 load + 4 sim shards, 2 merges, the demo target's mock
    assert_eq!(found.commands, 11);
}

#[test]
fn the_sim_jobs_scenario_from_the_walk_through_loads_with_its_sweep() {
    let now = SystemTime::now();
    let found = check(&parse(&sources()).unwrap(), &walk_through(now), now).unwrap();
    let (path, set, sweep) = found.shard_jobs.iter().find_map(|j| j.scenario.clone()).unwrap();
    let doc = std::fs::read_to_string("docs/kubernetes.md").unwrap();
    let name = Path::new(&path).file_name().unwrap().to_string_lossy();
    let flag = format!("--from-file={name}=");
    let line = doc
        .lines()
        .find(|l| l.contains("kubectl create configmap chaosgate-scenario") && l.contains(&flag))
        .unwrap_or_else(|| panic!("docs/kubernetes.md creates no ConfigMap chaosgate-scenario with {flag}"));
    let file = line.split(&flag).nth(1).unwrap().split_whitespace().next().unwrap();
    let set = chaosgate::scenario::load_with(Path::new(file), &set, &sweep).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(set.points.len(), 4, "the sweep's four intervals");
}

#[test]
fn the_image_has_the_profiles_where_the_mounted_scenario_looks() {
    let dockerfile = std::fs::read_to_string(format!("{DIR}/Dockerfile")).unwrap();
    let mut copies = Vec::new();
    for l in dockerfile.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("COPY ") {
            if rest.starts_with("--from") {
                continue;
            }
            let w: Vec<&str> = rest.split_whitespace().collect();
            let [src, dst] = w[..] else {
                panic!("COPY {rest}: one source, one destination")
            };
            if src != "." {
                assert!(
                    Path::new(src).exists(),
                    "Dockerfile copies {src}, which is not in the repository"
                );
            }
            copies.push((src.to_string(), dst.to_string()));
        }
    }
    assert!(dockerfile.contains("ENTRYPOINT [\"chaosgate\"]"));
    let ignore = std::fs::read_to_string(format!("{DIR}/Dockerfile.dockerignore")).unwrap();
    for (src, _) in &copies {
        assert!(!ignore.lines().any(|l| l.trim() == src), "{src} is copied but ignored");
    }
    // the uid of `USER` is the pods' runAsUser
    let user = dockerfile.lines().find_map(|l| l.strip_prefix("USER ")).unwrap();
    let uid: i64 = user.split(':').next().unwrap().trim().parse().unwrap();
    let now = SystemTime::now();
    let found = check(&parse(&sources()).unwrap(), &walk_through(now), now).unwrap();
    assert!(
        !found.run_as.is_empty() && found.run_as.iter().all(|&u| u == uid),
        "{:?} vs {uid}",
        found.run_as
    );
    // The repository's scenarios name profiles as ../../fault-profiles/NAME from their folder.
    let (scenario, _, _) = found.shard_jobs.iter().find_map(|j| j.scenario.clone()).unwrap();
    let dir = Path::new(&scenario).parent().unwrap().join("../../fault-profiles");
    let mut norm = PathBuf::new();
    for c in dir.components() {
        match c {
            Component::ParentDir => {
                norm.pop();
            }
            c => norm.push(c),
        }
    }
    let dst = copies
        .iter()
        .find(|(s, _)| s == "fault-profiles")
        .map(|(_, d)| PathBuf::from(d));
    assert_eq!(dst, Some(norm));
}

#[test]
fn a_broken_manifest_fails_the_check() {
    let load = "load-job.yaml";
    // N in three places that disagree
    let e = check_mutated(load, "completions: 4", "completions: 5");
    assert!(e.contains("parallelism"), "{e}");
    let e = check_mutated(load, "parallelism: 4", "parallelism: 5");
    assert!(e.contains("parallelism Some(5)"), "{e}");
    let e = check_mutated(load, "value: \"4\"", "value: \"3\"");
    assert!(
        e.contains("JOB_COMPLETION_COUNT") && e.contains("completions is 4"),
        "{e}"
    );
    // a fixed shard instead of the index
    let e = check_mutated(load, "--shard=auto", "--shard=0/4");
    assert!(e.contains("--shard auto"), "{e}");
    // every shard writing one file
    let e = check_mutated(
        load,
        "/results/load-$(START_AT)-$(JOB_COMPLETION_INDEX).json",
        "/results/load.json",
    );
    assert!(e.contains("write the same file load.json"), "{e}");
    // a result file off the shared volume
    let e = check_mutated(
        load,
        "/results/load-$(START_AT)-$(JOB_COMPLETION_INDEX).json",
        "/tmp/load-$(JOB_COMPLETION_INDEX).json",
    );
    assert!(e.contains("not on the results volume"), "{e}");
    // a flag chaosgate does not have, a value it refuses, a variable nobody sets
    let e = check_mutated(load, "--arrival=poisson", "--arrivals=poisson");
    assert!(e.contains("--arrivals"), "{e}");
    let e = check_mutated(load, "RATE: \"400\"", "RATE: fast");
    assert!(e.contains("--rate"), "{e}");
    let e = check_mutated(load, "--seed=$(SEED)", "--seed=$(SEEDS)");
    assert!(e.contains("no env var SEEDS"), "{e}");
    let e = check_mutated(load, "            - --seed=$(SEED)\n", "");
    assert!(e.contains("need --seed"), "{e}");
    let e = check_mutated(load, "            - --start-at=$(START_AT)\n", "");
    assert!(e.contains("need --start-at"), "{e}");
    // the merge reading nothing, or its own output
    let merge = "merge-load-job.yaml";
    let e = check_mutated(
        merge,
        "/results/load-$(START_AT)-*.json",
        "/results/load-*-$(START_AT).json",
    );
    assert!(e.contains("0 merge Jobs read all of"), "{e}");
    let merge_sim = "merge-sim-job.yaml";
    let e = check_mutated(merge_sim, "/results/sim-*.json", "/results/*.json");
    assert!(e.contains("2 merge Jobs read all of [\"load-"), "{e}");
    let e = check_mutated(
        merge_sim,
        "--json /results/report-sim.json",
        "--json /results/sim-all.json",
    );
    assert!(e.contains("matches its own input glob"), "{e}");
    let e = check_mutated(
        merge,
        "--json /results/report-load-$(START_AT).json",
        "--json /tmp/report-load.json",
    );
    assert!(e.contains("not on the results volume"), "{e}");
    let e = check_mutated(merge, "exec chaosgate merge", "exec chaosgate merge --all");
    assert!(e.contains("--all"), "{e}");
    // the sim shards: a retrying pod policy, a scenario off the ConfigMap
    let sim = "sim-job.yaml";
    let e = check_mutated(sim, "restartPolicy: Never", "restartPolicy: OnFailure");
    assert!(e.contains("restartPolicy must be Never"), "{e}");
    let e = check_mutated(
        sim,
        "- /opt/chaosgate/work/scenario/scenario.toml",
        "- /opt/chaosgate/scenario.toml",
    );
    assert!(e.contains("not in a mounted ConfigMap"), "{e}");
}

#[test]
fn the_helpers_do_what_kubernetes_and_sh_do() {
    let env = BTreeMap::from([("I".to_string(), "3".to_string())]);
    assert_eq!(expand("/r/x-$(I).json", &env).unwrap(), "/r/x-3.json");
    assert_eq!(expand("$$(I) $5", &env).unwrap(), "$(I) $5");
    assert!(expand("$(J)", &env).unwrap_err().contains("no env var J"));
    assert!(glob_match("load-*.json", "load-0.json"));
    assert!(glob_match("load-*.json", "load-.json"));
    assert!(!glob_match("load-*.json", "load-0.json.tmp"));
    assert!(!glob_match("load-*.json", "sub/load-0.json"));
    assert!(!glob_match("*.json", "sub/x.json"));
    assert!(glob_match("*-*.json", "a-b-c.json"));
}

/// The paths of the pods, on this machine: the results volume and the image's files.
fn remap(s: &str, results: &Path, opt: &Path) -> String {
    s.replace("/results", &results.to_string_lossy())
        .replace("/opt/chaosgate", &opt.to_string_lossy())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// Waits for every child, killing them all after `limit`; (success, stderr) of each.
fn wait_all(children: Vec<(String, std::process::Child, PathBuf)>, limit: Duration) -> Vec<(String, bool, String)> {
    let deadline = std::time::Instant::now() + limit;
    let mut out = Vec::new();
    for (name, mut c, err) in children {
        let status = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break Some(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        let stderr = if status.is_none() {
            format!("killed after {limit:?}\n{stderr}")
        } else {
            stderr
        };
        out.push((name, status.is_some_and(|s| s.success()), stderr));
    }
    out
}

/// The example's Jobs, run here as their pods would run them: every shard of both Indexed
/// Jobs at once (the load shards against a mock on 127.0.0.1, 2 s at 100 req/s, the sim
/// shards with 2 repeats — ConfigMap values, the knobs a user sets), then both merge Jobs'
/// scripts through `/bin/sh -c`; the merged sim report is byte for byte one machine's, and
/// a shard file removed makes the load merge fail naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_run_here_and_merge() {
    let (mock, _) = common::start(Api::OpenAi, "", 1).await;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_chaosgate"));
    let dir = std::env::temp_dir().join(format!("chaosgate-k8s-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (results, opt) = (dir.join("results"), dir.join("opt/chaosgate"));
    std::fs::create_dir_all(&results).unwrap();
    copy_dir(Path::new("fault-profiles"), &opt.join("fault-profiles"));
    let now = SystemTime::now();
    let v = given(&[
        ("chaosgate-start", "START_AT", &unix_secs(now + Duration::from_secs(3))),
        ("chaosgate-load", "TARGET", &format!("http://{}", mock.addr)),
        ("chaosgate-load", "RATE", "100"),
        ("chaosgate-load", "DURATION", "2s"),
        ("chaosgate-sim", "REPEAT", "2"),
    ]);
    let found = check(&parse(&sources()).unwrap(), &v, now).unwrap();
    // the scenario the walk-through puts in the ConfigMap, where the pods mount it
    let (scenario, _, sweep) = found.shard_jobs.iter().find_map(|j| j.scenario.clone()).unwrap();
    let doc = std::fs::read_to_string("docs/kubernetes.md").unwrap();
    let src = doc
        .split("--from-file=scenario.toml=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    let scenario = PathBuf::from(remap(&scenario, &results, &opt));
    std::fs::create_dir_all(scenario.parent().unwrap()).unwrap();
    std::fs::copy(src, &scenario).unwrap();

    let mut children = Vec::new();
    for (n, p) in found.pods.iter().filter(|p| p.shard).enumerate() {
        let err = dir.join(format!("shard-{n}.err"));
        let args: Vec<String> = p.argv[1..].iter().map(|a| remap(a, &results, &opt)).collect();
        let child = std::process::Command::new(&bin)
            .args(&args)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("JOB_COMPLETION_COUNT")
            .envs(&p.env)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        children.push((format!("{} {}", p.job, p.env["JOB_COMPLETION_INDEX"]), child, err));
    }
    assert_eq!(children.len(), 8, "4 load and 4 sim shards");
    let done = tokio::task::spawn_blocking(move || wait_all(children, Duration::from_secs(60)))
        .await
        .unwrap();
    for (name, ok, err) in &done {
        assert!(ok, "{name} failed:\n{err}");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut path = std::env::split_paths(&path).collect::<Vec<_>>();
    path.insert(0, bin.parent().unwrap().to_path_buf());
    let path = std::env::join_paths(path).unwrap();
    let merge = |script: &str| {
        let err = dir.join("merge.err");
        let child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(remap(script, &results, &opt))
            .env("PATH", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        wait_all(vec![(script.to_string(), child, err)], Duration::from_secs(60)).remove(0)
    };
    let merges: Vec<&Pod> = found.pods.iter().filter(|p| p.script.is_some()).collect();
    assert_eq!(merges.len(), 2);
    for m in &merges {
        let (script, ok, err) = merge(m.script.as_deref().unwrap());
        assert!(ok, "{script}:\n{err}");
    }
    // the merged sweep is one machine's `sim --json`, byte for byte
    let one = dir.join("one.json");
    let out = std::process::Command::new(&bin)
        .arg("sim")
        .arg(&scenario)
        .args(sweep.iter().map(|s| format!("--sweep={s}")))
        .args(["--repeat=2", "--quiet", "--json"])
        .arg(&one)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let merged = std::fs::read(results.join("report-sim.json")).unwrap();
    assert!(
        merged == std::fs::read(&one).unwrap(),
        "the merged sim report differs from one machine's"
    );
    // the load report is there; with a shard's file gone the merge names it and refuses
    let load = results.join(format!(
        "report-load-{}.json",
        v[&("chaosgate-start".into(), "START_AT".into())]
    ));
    let report: Value = serde_json::from_slice(&std::fs::read(&load).unwrap()).unwrap();
    assert!(report.is_object());
    let shard1 = found.shard_jobs.iter().find(|j| j.command == "load").unwrap().results[1].clone();
    std::fs::remove_file(results.join(&shard1)).unwrap();
    let load_merge = merges.iter().find(|m| m.job == "chaosgate-merge-load").unwrap();
    let (_, ok, err) = merge(load_merge.script.as_deref().unwrap());
    assert!(!ok && err.contains("shard 1 of 4 missing"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
