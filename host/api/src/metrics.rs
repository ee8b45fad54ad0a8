//! Storage metrics through the `metrics` facade, named as distribution's: an embedding program
//! installs a recorder (a Prometheus exporter, say) and gets them; without one they cost an
//! atomic load. The handles are made once per driver, when it is wrapped.
//!
//! - `registry_storage_action_seconds` (histogram; labels `driver`, `action`): the time of
//!   GetContent, PutContent, Stat, List, Move, Delete and RedirectURL, as distribution records it.
//! - `registry_storage_errors_total` (counter; `driver`, `action`): failed calls of every method.
//! - `registry_storage_read_bytes_total`, `registry_storage_written_bytes_total` (counters;
//!   `driver`): content bytes through GetContent and readers, PutContent and writers.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, histogram};

pub const ACTION_SECONDS: &str = "registry_storage_action_seconds";
pub const ERRORS: &str = "registry_storage_errors_total";
pub const READ_BYTES: &str = "registry_storage_read_bytes_total";
pub const WRITTEN_BYTES: &str = "registry_storage_written_bytes_total";

/// The driver methods, in the order of [`Metrics`]' tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    GetContent,
    PutContent,
    Reader,
    Writer,
    Stat,
    List,
    Move,
    Delete,
    RedirectUrl,
    Walk,
}

impl Action {
    const ALL: [Action; 10] = [
        Action::GetContent,
        Action::PutContent,
        Action::Reader,
        Action::Writer,
        Action::Stat,
        Action::List,
        Action::Move,
        Action::Delete,
        Action::RedirectUrl,
        Action::Walk,
    ];

    /// distribution's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Action::GetContent => "GetContent",
            Action::PutContent => "PutContent",
            Action::Reader => "Reader",
            Action::Writer => "Writer",
            Action::Stat => "Stat",
            Action::List => "List",
            Action::Move => "Move",
            Action::Delete => "Delete",
            Action::RedirectUrl => "RedirectURL",
            Action::Walk => "Walk",
        }
    }

    /// Whether distribution times it (not the stream openers, nor Walk).
    fn timed(self) -> bool {
        !matches!(self, Action::Reader | Action::Writer | Action::Walk)
    }
}

/// One driver's metric handles.
#[derive(Clone)]
pub struct Metrics {
    seconds: Vec<Option<Histogram>>,
    errors: Vec<Counter>,
    pub(crate) read: Counter,
    pub(crate) written: Counter,
}

impl Metrics {
    pub fn new(driver: &str) -> Metrics {
        let labels = |action: Action| [("driver", driver.to_string()), ("action", action.name().to_string())];
        Metrics {
            seconds: Action::ALL.iter().map(|&a| a.timed().then(|| histogram!(ACTION_SECONDS, &labels(a)))).collect(),
            errors: Action::ALL.iter().map(|&a| counter!(ERRORS, &labels(a))).collect(),
            read: counter!(READ_BYTES, "driver" => driver.to_string()),
            written: counter!(WRITTEN_BYTES, "driver" => driver.to_string()),
        }
    }

    /// One call's time and outcome.
    pub(crate) fn record(&self, action: Action, took: Duration, failed: bool) {
        let i = action as usize;
        if let Some(h) = &self.seconds[i] {
            h.record(took.as_secs_f64());
        }
        if failed {
            self.errors[i].increment(1);
        }
    }
}
