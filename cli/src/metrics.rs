//! `--metrics` on copy and bench: the storage metrics the library records (regstore-api's
//! metrics module), gathered in process and printed on stderr at the end.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Starts gathering; `None` if another recorder is already installed.
pub fn install() -> Option<Snapshotter> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).ok().map(|()| snapshotter)
}

/// One line per metric that saw something: histograms with their count, total and mean.
pub fn print(snapshotter: &Snapshotter) {
    let mut lines = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(0) => {}
            DebugValue::Counter(n) => lines.push(format!("{name} {n}")),
            DebugValue::Gauge(g) => lines.push(format!("{name} {}", g.into_inner())),
            DebugValue::Histogram(samples) if samples.is_empty() => {}
            DebugValue::Histogram(samples) => {
                let total: f64 = samples.iter().map(|s| s.into_inner()).sum();
                let mean_ms = total / samples.len() as f64 * 1e3;
                lines.push(format!("{name} count={} sum={total:.6} mean_ms={mean_ms:.3}", samples.len()));
            }
        }
    }
    lines.sort();
    for line in lines {
        eprintln!("metric {line}");
    }
}
