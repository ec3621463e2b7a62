//! `--set dotted.path=value` and `[sweep]`: edits applied to the scenario document
//! before it is parsed, so an override goes through exactly the same validation as a
//! value written in the file.
//!
//! Paths are dotted keys; a number segment indexes an array (`providers.a.phase.0.start`).
//! A value is read as TOML when it parses as one (`100`, `true`, `[1, 2]`, `"x"`), else as
//! a string (`5s`, `fallback`).

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

/// One override: path segments and the new value.
#[derive(Clone, Debug)]
pub struct Override {
    /// The dotted path as written.
    pub path: String,
    /// The value.
    pub value: Value,
}

impl Override {
    /// Parses `path=value`.
    pub fn parse(s: &str) -> Result<Override, String> {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s:?}: expected PATH=VALUE, e.g. gateway.health_check.interval=5s"))?;
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!("--set {s:?}: {path:?} is not a dotted path"));
        }
        Ok(Override {
            path: path.to_string(),
            value: parse_value(value.trim()),
        })
    }

    /// The value as a short display string (`5s`, `100`, `true`).
    pub fn value_text(&self) -> String {
        value_text(&self.value)
    }
}

/// A value as text: strings bare, everything else as TOML.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.value().clone(),
        other => other.clone().decorated("", "").to_string(),
    }
}

fn parse_value(s: &str) -> Value {
    match s.parse::<Value>() {
        Ok(v) => v.decorated(" ", ""),
        Err(_) => Value::from(s).decorated(" ", ""),
    }
}

/// Sets `o.path` to `o.value` in `doc`, creating tables on the way. Fails when the path
/// runs through something that is not a table or array, or an index is out of range.
pub fn apply(doc: &mut DocumentMut, o: &Override) -> Result<(), String> {
    let segs: Vec<&str> = o.path.split('.').collect();
    set_in_table(doc.as_table_mut(), &segs, 0, o)
}

fn set_in_table(t: &mut dyn TableLike, segs: &[&str], depth: usize, o: &Override) -> Result<(), String> {
    let seg = segs[depth];
    if depth + 1 == segs.len() {
        t.insert(seg, Item::Value(o.value.clone()));
        return Ok(());
    }
    if t.get(seg).is_none() {
        t.insert(seg, Item::Table(Table::new()));
    }
    let child = t.get_mut(seg).expect("present");
    set_in_item(child, segs, depth + 1, o)
}

fn set_in_item(item: &mut Item, segs: &[&str], depth: usize, o: &Override) -> Result<(), String> {
    let here = segs[..depth].join(".");
    let last = depth + 1 == segs.len();
    if let Ok(i) = segs[depth].parse::<usize>() {
        if let Some(aot) = item.as_array_of_tables_mut() {
            let len = aot.len();
            let t = aot
                .get_mut(i)
                .ok_or_else(|| format!("{}: `{here}` has {len} entries, no index {i}", o.path))?;
            if last {
                return Err(format!("{}: `{here}[{i}]` is a table, not a value", o.path));
            }
            return set_in_table(t, segs, depth + 1, o);
        }
        if let Some(arr) = item.as_array_mut() {
            let len = arr.len();
            if i >= len {
                return Err(format!("{}: `{here}` has {len} entries, no index {i}", o.path));
            }
            if last {
                arr.replace(i, o.value.clone());
                return Ok(());
            }
            return match arr.get_mut(i) {
                Some(Value::InlineTable(t)) => set_in_table(t, segs, depth + 1, o),
                _ => Err(format!("{}: `{here}[{i}]` is not a table", o.path)),
            };
        }
    }
    match item.as_table_like_mut() {
        Some(t) => set_in_table(t, segs, depth, o),
        None => Err(format!("{}: `{here}` is a value, not a table", o.path)),
    }
}

/// `--sweep PATH=V1,V2,…`: adds (or replaces) one axis of the `[sweep]` table.
pub fn add_sweep_axis(doc: &mut DocumentMut, s: &str) -> Result<(), String> {
    let (path, values) = s.split_once('=').ok_or_else(|| {
        format!("--sweep {s:?}: expected PATH=V1,V2,…, e.g. gateway.health_check.interval=5s,30s,60s")
    })?;
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!("--sweep {s:?}: {path:?} is not a dotted path"));
    }
    let mut arr = toml_edit::Array::new();
    for v in values.split(',').map(str::trim) {
        if v.is_empty() {
            return Err(format!("--sweep {s:?}: empty value in the list"));
        }
        arr.push_formatted(parse_value(v));
    }
    let sweep = doc
        .entry("sweep")
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| "sweep: must be a table".to_string())?;
    sweep.insert(path, Item::Value(Value::Array(arr)));
    Ok(())
}

/// One sweep axis: the dotted path and its values.
pub type Axis = (String, Vec<Value>);

/// The `[sweep]` table flattened to `(dotted path, values)` in file order. Keys may be
/// quoted dotted paths (`"gateway.health_check.interval" = [...]`) or nested tables.
/// An error names the sweep key's place in the document, for its line.
pub fn sweep_axes(doc: &DocumentMut) -> Result<Vec<Axis>, crate::diag::Problem> {
    let mut out = Vec::new();
    let at = crate::diag::Path::root().key("sweep");
    if let Some(item) = doc.get("sweep") {
        let t = item.as_table_like().ok_or_else(|| {
            (
                at.clone(),
                "sweep: must be a table of dotted paths to lists of values".to_string(),
            )
        })?;
        flatten("", &at, t, &mut out)?;
    }
    let mut points: u64 = 1;
    for (_, v) in &out {
        points = points.saturating_mul(v.len() as u64);
    }
    if points > MAX_SWEEP_POINTS {
        return Err((
            at,
            format!("the sweep has {points} points (the product of its axes' lengths); at most {MAX_SWEEP_POINTS}"),
        ));
    }
    Ok(out)
}

/// Most points of a sweep matrix (each is a whole scenario, parsed and run).
pub const MAX_SWEEP_POINTS: u64 = 10_000;

fn flatten(
    prefix: &str,
    at: &crate::diag::Path,
    t: &dyn TableLike,
    out: &mut Vec<Axis>,
) -> Result<(), crate::diag::Problem> {
    for (k, v) in t.iter() {
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        let here = at.key(k);
        if let Some(arr) = v.as_array() {
            if arr.is_empty() {
                return Err((here, format!("sweep.{path}: the list of values is empty")));
            }
            out.push((path, arr.iter().cloned().collect()));
        } else if let Some(sub) = v.as_table_like() {
            flatten(&path, &here, sub, out)?;
        } else {
            return Err((
                here,
                format!("sweep.{path}: expected a list of values, e.g. \"{path}\" = [\"5s\", \"60s\"]"),
            ));
        }
    }
    Ok(())
}

/// The points of the sweep matrix: the cartesian product of the axes, first axis
/// slowest, each point a list of overrides. No axes → one empty point.
pub fn matrix(axes: &[(String, Vec<Value>)]) -> Vec<Vec<Override>> {
    let mut points: Vec<Vec<Override>> = vec![Vec::new()];
    for (path, values) in axes {
        let mut next = Vec::with_capacity(points.len() * values.len());
        for p in &points {
            for v in values {
                let mut q = p.clone();
                q.push(Override {
                    path: path.clone(),
                    value: v.clone().decorated(" ", ""),
                });
                next.push(q);
            }
        }
        points = next;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> DocumentMut {
        s.parse().unwrap()
    }

    #[test]
    fn sets_inline_tables_arrays_of_tables_and_new_keys() {
        let mut d = doc("[gateway]\nhealth_check = { interval = \"60s\", timeout = \"30s\" }\n\n[[providers.a.phase]]\nstart = \"1s\"\n");
        for s in [
            "gateway.health_check.interval=5s",
            "providers.a.phase.0.start=2s",
            "traffic.rate=100",
            "gateway.breaker.kind=consecutive",
        ] {
            apply(&mut d, &Override::parse(s).unwrap()).unwrap();
        }
        let v: toml::Value = toml::from_str(&d.to_string()).unwrap();
        assert_eq!(v["gateway"]["health_check"]["interval"].as_str(), Some("5s"));
        assert_eq!(v["gateway"]["health_check"]["timeout"].as_str(), Some("30s"));
        assert_eq!(v["providers"]["a"]["phase"][0]["start"].as_str(), Some("2s"));
        assert_eq!(v["traffic"]["rate"].as_integer(), Some(100));
        assert_eq!(v["gateway"]["breaker"]["kind"].as_str(), Some("consecutive"));
    }

    #[test]
    fn bad_paths_say_why() {
        let mut d = doc("[gateway]\nretries = 3\n[[providers.a.phase]]\nstart = \"1s\"\n");
        let e = apply(&mut d, &Override::parse("gateway.retries.attempts=1").unwrap()).unwrap_err();
        assert!(e.contains("`gateway.retries` is a value"), "{e}");
        let e = apply(&mut d, &Override::parse("providers.a.phase.3.start=1s").unwrap()).unwrap_err();
        assert!(e.contains("has 1 entries, no index 3"), "{e}");
        assert!(Override::parse("novalue").is_err());
        assert!(Override::parse("a..b=1").is_err());
    }

    #[test]
    fn sweep_matrix_is_the_product_in_file_order() {
        let d = doc("[sweep]\n\"gateway.health_check.interval\" = [\"5s\", \"60s\"]\ngateway.health_check.timeout = [\"1s\", \"2s\", \"30s\"]\n");
        let axes = sweep_axes(&d).unwrap();
        assert_eq!(axes.len(), 2);
        let m = matrix(&axes);
        assert_eq!(m.len(), 6);
        let first: Vec<String> = m[0].iter().map(|o| format!("{}={}", o.path, o.value_text())).collect();
        assert_eq!(
            first,
            ["gateway.health_check.interval=5s", "gateway.health_check.timeout=1s"]
        );
        assert_eq!(m[5][0].value_text(), "60s");
        assert_eq!(m[5][1].value_text(), "30s");
        assert!(sweep_axes(&doc("[sweep]\nx = 3\n"))
            .unwrap_err()
            .1
            .contains("expected a list"));
        assert!(sweep_axes(&doc("[sweep]\nx = []\n")).unwrap_err().1.contains("empty"));
        assert_eq!(matrix(&[]).len(), 1);
        let mut d = doc("[gateway]\n");
        add_sweep_axis(&mut d, "gateway.health_check.interval=5s, 60s").unwrap();
        add_sweep_axis(&mut d, "traffic.rate=10,20").unwrap();
        let axes = sweep_axes(&d).unwrap();
        assert_eq!(axes[0].0, "gateway.health_check.interval");
        assert_eq!(axes[1].1.iter().map(value_text).collect::<Vec<_>>(), ["10", "20"]);
        assert!(add_sweep_axis(&mut d, "x=1,,2").is_err());
    }
}
