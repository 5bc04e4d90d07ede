//! The Grafana dashboard is well-formed and every metric it queries is one the broker exports.
use std::collections::BTreeSet;

use spate_broker::observability::Metrics;

const DASHBOARD: &str = include_str!("../../charts/spate/dashboards/spate-overview.json");

/// `spate_*` identifiers in a PromQL expression.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("spate_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        out.push(expr[start..end].to_string());
        i = end;
    }
    out
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    assert_eq!(dashboard["uid"], "spate-overview");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let exported: BTreeSet<String> = Metrics::new().names().iter().cloned().collect();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("panel id")),
            "duplicate panel id"
        );
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
        for key in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][key].as_i64().is_some(), "gridPos.{key}");
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no queries", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let used = metrics_in(expr);
            assert!(!used.is_empty(), "{expr} queries no Spate metric");
            for m in used {
                // A histogram `h` is queried through its `h_bucket`, `h_sum` and `h_count` series.
                let histogram_series = ["_bucket", "_sum", "_count"]
                    .iter()
                    .filter_map(|s| m.strip_suffix(s))
                    .any(|base| exported.contains(base));
                assert!(
                    exported.contains(&m) || histogram_series,
                    "dashboard queries {m}, which the broker does not export"
                );
            }
        }
    }
}

#[test]
fn the_exporter_knows_its_metric_names() {
    let names = Metrics::new().names().to_vec();
    assert!(names.contains(&"spate_consumer_group_lag".to_string()));
    assert!(names.contains(&"spate_request_duration_seconds".to_string()));
}
