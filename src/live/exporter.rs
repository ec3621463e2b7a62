//! The `--metrics-listen` endpoint of `chaosgate load` and `chaosgate run`
//! (docs/metrics.md):
//!
//! - `GET /metrics`: the load client's live metrics ([`LoadMetrics`]), Prometheus text;
//! - `GET /sd`: Prometheus HTTP service discovery — this endpoint (`component="load"`)
//!   and, while a `run` goes, its mock providers (`component="mock"`) and the reference
//!   gateway's replicas (`component="gateway"`, `replica="K"`), whose ports change from
//!   run to run. One `http_sd_configs` entry then follows every run of a sweep.
//!
//! Served by [`crate::live::net`] (TCP_NODELAY on every connection).

use crate::live::load::metrics::LoadMetrics;
use crate::live::net::{self, ServerHandle};
use crate::live::promtext;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Most lingering time after the traffic (`--metrics-linger`).
pub const MAX_LINGER_S: u64 = 600;

/// One scrape target of the discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdTarget {
    /// `host:port`.
    pub addr: SocketAddr,
    /// `load`, `mock` or `gateway`.
    pub component: &'static str,
    /// The gateway replica's index (gateways only).
    pub replica: Option<usize>,
}

/// What the endpoint serves.
#[derive(Debug)]
pub struct Exporter {
    /// The load client's metrics.
    pub load: Arc<LoadMetrics>,
    /// Where this endpoint listens.
    pub addr: SocketAddr,
    /// The current run's mocks and gateway replicas.
    run_targets: Mutex<Vec<SdTarget>>,
}

impl Exporter {
    /// While a run goes: its mocks' and its builtin gateway's addresses (printed to stderr,
    /// and listed by `/sd`).
    pub fn set_run_targets(&self, mocks: &[(String, SocketAddr)], gateways: &[SocketAddr]) {
        let mut v = Vec::new();
        for (name, a) in mocks {
            eprintln!("chaosgate: metrics: mock {name} http://{a}/metrics");
            v.push(SdTarget {
                addr: *a,
                component: "mock",
                replica: None,
            });
        }
        for (k, a) in gateways.iter().enumerate() {
            eprintln!("chaosgate: metrics: gateway replica {k} http://{a}/metrics");
            v.push(SdTarget {
                addr: *a,
                component: "gateway",
                replica: Some(k),
            });
        }
        *self.run_targets.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    /// The run ended: its servers are gone.
    pub fn clear_run_targets(&self) {
        self.run_targets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The discovery document: one group per target.
    pub fn sd(&self) -> serde_json::Value {
        let mut all = vec![SdTarget {
            addr: self.addr,
            component: "load",
            replica: None,
        }];
        all.extend(
            self.run_targets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        let groups: Vec<serde_json::Value> = all
            .iter()
            .map(|t| {
                let mut labels = serde_json::json!({ "component": t.component });
                if let Some(k) = t.replica {
                    labels["replica"] = serde_json::json!(k.to_string());
                }
                serde_json::json!({ "targets": [scrape_addr(t.addr)], "labels": labels })
            })
            .collect();
        serde_json::Value::Array(groups)
    }
}

/// `host:port` to scrape: an unspecified address (`0.0.0.0`, `[::]`) is reached on loopback.
fn scrape_addr(a: SocketAddr) -> String {
    let mut a = a;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    a.to_string()
}

/// The running endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    /// What it serves.
    pub exporter: Arc<Exporter>,
    handle: ServerHandle,
}

impl MetricsServer {
    /// Stops it.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// Binds `listen` (port 0 picks a free port: the address is in [`Exporter::addr`]) and
/// serves `/metrics` and `/sd`.
pub async fn serve(listen: &str) -> anyhow::Result<MetricsServer> {
    let listener = net::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-listen: {e}"))?;
    let addr = listener.local_addr()?;
    let exporter = Arc::new(Exporter {
        load: Arc::new(LoadMetrics::new()),
        addr,
        run_targets: Mutex::new(Vec::new()),
    });
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/sd", get(sd))
        .with_state(exporter.clone());
    let handle = net::spawn(listener, router)?;
    Ok(MetricsServer { exporter, handle })
}

async fn metrics(State(x): State<Arc<Exporter>>) -> Response {
    ([("content-type", promtext::CONTENT_TYPE)], x.load.render()).into_response()
}

async fn sd(State(x): State<Arc<Exporter>>) -> Response {
    axum::Json(x.sd()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_the_endpoint_then_the_runs_servers() {
        let x = Exporter {
            load: Arc::new(LoadMetrics::new()),
            addr: "0.0.0.0:9464".parse().unwrap(),
            run_targets: Mutex::new(Vec::new()),
        };
        assert_eq!(
            x.sd(),
            serde_json::json!([{ "targets": ["127.0.0.1:9464"], "labels": { "component": "load" } }])
        );
        x.set_run_targets(
            &[("a".into(), "127.0.0.1:1".parse().unwrap())],
            &["127.0.0.1:2".parse().unwrap(), "127.0.0.1:3".parse().unwrap()],
        );
        let v = x.sd();
        assert_eq!(v.as_array().unwrap().len(), 4);
        assert_eq!(v[1]["labels"]["component"], "mock");
        assert_eq!(
            v[3],
            serde_json::json!({ "targets": ["127.0.0.1:3"], "labels": { "component": "gateway", "replica": "1" } })
        );
        x.clear_run_targets();
        assert_eq!(x.sd().as_array().unwrap().len(), 1);
    }
}
