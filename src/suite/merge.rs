//! An entry run against a gateway: the gateway's scenario with its providers' fault
//! settings and its traffic replaced by the entry's (`docs/suite.md`, "How an entry runs").

use super::entry::{Entry, StreamMix};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

/// The two providers every gateway scenario of the suite names.
pub const ROLES: [&str; 2] = ["primary", "fallback"];

/// A gateway scenario the suite runs entries against.
#[derive(Clone, Debug)]
pub struct GatewayScenario {
    /// Its file (or `<built-in reference gateway>`), for messages.
    pub file: String,
    /// Its text.
    pub text: String,
    /// Where its relative paths resolve.
    pub dir: std::path::PathBuf,
}

/// Converts a `toml` table into a `toml_edit` one (through its text: both crates agree on it).
fn edit_table(t: &toml::Table) -> Result<Table, String> {
    let text = toml::to_string(t).map_err(|e| e.to_string())?;
    let doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string())?;
    Ok(doc.as_table().clone())
}

/// Checks that `g` can carry entries: a `[gateway]` and the providers `primary` and
/// `fallback`. Returns its document.
pub fn gateway_document(g: &GatewayScenario) -> Result<DocumentMut, String> {
    let doc: DocumentMut = g
        .text
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("{}: {}", g.file, e.message().trim()))?;
    let providers = doc.get("providers").and_then(Item::as_table_like);
    let missing: Vec<&str> = ROLES
        .iter()
        .copied()
        .filter(|r| providers.and_then(|p| p.get(r)).and_then(Item::as_table_like).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}: the suite runs entries against providers named `primary` and `fallback`; this scenario has no [providers.{}]",
            g.file,
            missing.join("], [providers.")
        ));
    }
    if doc.get("gateway").and_then(Item::as_table_like).is_none() {
        return Err(format!(
            "{}: no [gateway]: the suite needs the gateway under test",
            g.file
        ));
    }
    Ok(doc)
}

/// The scenario text of `entry` against `gateway` (its document from [`gateway_document`]).
pub fn merged_text(entry: &Entry, gateway: &DocumentMut) -> Result<String, String> {
    let mut doc = gateway.clone();
    doc.insert("name", value(entry.name.as_str()));
    for k in ["assert", "sweep"] {
        doc.remove(k);
    }
    for (role, faults) in ROLES.iter().zip([&entry.primary, &entry.fallback]) {
        let p = doc["providers"][role]
            .as_table_like_mut()
            .ok_or_else(|| format!("providers.{role} is not a table"))?;
        for k in ["profile", "baseline", "phase"] {
            p.remove(k);
        }
        for (k, item) in edit_table(faults)?.iter() {
            p.insert(k, item.clone());
        }
    }
    // the traffic: the gateway's api (and any key the entry does not set), the entry's shape
    let mut traffic = doc
        .get("traffic")
        .and_then(Item::as_table_like)
        .map(|t| {
            let mut o = Table::new();
            for (k, v) in t.iter() {
                if matches!(k, "api" | "model") {
                    o.insert(k, v.clone());
                }
            }
            o
        })
        .unwrap_or_default();
    traffic.insert("rate", value(entry.rate));
    traffic.insert("arrival", value("poisson"));
    traffic.insert("duration", value(entry.duration.as_str()));
    let mut kinds = ArrayOfTables::new();
    let shapes: &[(&str, bool)] = match entry.stream {
        StreamMix::Plain => &[("plain", false)],
        StreamMix::Stream => &[("stream", true)],
        StreamMix::Mixed => &[("plain", false), ("stream", true)],
    };
    for &(name, stream) in shapes {
        let mut k = Table::new();
        k.insert("name", value(name));
        k.insert("stream", value(stream));
        k.insert("max_tokens", value(i64::from(entry.max_tokens)));
        kinds.push(k);
    }
    traffic.insert("kind", Item::ArrayOfTables(kinds));
    doc.insert("traffic", Item::Table(traffic));
    Ok(doc.to_string())
}

/// The scenario of `entry` against `gateway`, with the entry's and the user's overrides
/// (`sets`, applied after the entry's). Errors name the entry and the gateway.
pub fn scenario(
    entry: &Entry,
    gateway: &GatewayScenario,
    doc: &DocumentMut,
    sets: &[String],
) -> Result<crate::scenario::ScenarioSet, String> {
    let text = merged_text(entry, doc)?;
    let all: Vec<String> = entry.set.iter().chain(sets).cloned().collect();
    let label = format!("{} against {}", entry.name, gateway.file);
    let set = crate::scenario::load_str(&label, &text, &gateway.dir, &all).map_err(|e| format!("{e}"))?;
    if set.points.len() != 1 {
        return Err(format!(
            "{label}: {} sweep points; the suite runs one point per entry (drop [sweep] / --sweep)",
            set.points.len()
        ));
    }
    Ok(set)
}
