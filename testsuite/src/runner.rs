//! Runs the suite for `regstore conformance`: a line per test, then `N passed, M failed`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use crate::{Config, DriverFactory, Outcome, Test, run_test};

/// How a run ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Each failed test's name and why it failed.
    pub failures: Vec<(String, String)>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// Runs `tests` (those whose name contains `filter`), `jobs` at a time, each on a fresh driver,
/// printing a line per test as it ends and the summary last.
pub async fn run(
    tests: Vec<Test>,
    factory: DriverFactory,
    config: Config,
    filter: Option<&str>,
    jobs: usize,
    out: &mut (dyn Write + Send),
) -> Summary {
    let config = Arc::new(config);
    let selected: Vec<Test> = tests.into_iter().filter(|t| filter.is_none_or(|f| t.name.contains(f))).collect();
    let mut runs = futures::stream::iter(selected)
        .map(|test| {
            let (factory, config) = (factory.clone(), config.clone());
            async move {
                let started = Instant::now();
                let result = run_test(&test, &factory, config).await;
                (test.name, started.elapsed(), result)
            }
        })
        .buffer_unordered(jobs.max(1));
    let mut summary = Summary::default();
    while let Some((name, took, result)) = runs.next().await {
        let secs = took.as_secs_f64();
        let line = match result {
            Ok(Outcome::Passed(None)) => {
                summary.passed += 1;
                format!("PASS {name} ({secs:.2}s)")
            }
            Ok(Outcome::Passed(Some(note))) => {
                summary.passed += 1;
                format!("PASS {name} ({secs:.2}s) [{note}]")
            }
            Ok(Outcome::Skipped(why)) => {
                summary.skipped += 1;
                format!("SKIP {name}: {why}")
            }
            Err(why) => {
                summary.failed += 1;
                let line = format!("FAIL {name} ({secs:.2}s): {why}");
                summary.failures.push((name.clone(), why.to_string()));
                line
            }
        };
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "{summary}");
    summary
}
