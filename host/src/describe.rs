//! What a driver declares before it is opened (contract 0.2's `describe`): what it needs from
//! its sandbox, and what it can do.

use std::time::Duration;

use regstore_api::Capabilities;

/// What a driver needs from its sandbox for the parameters it was described with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// Directories it reads and writes, at the paths it will open them by.
    pub read_write_dirs: Vec<String>,
    /// Directories it only reads.
    pub read_only_dirs: Vec<String>,
    /// HTTP authorities (`host:port`) it sends requests to.
    pub http_authorities: Vec<String>,
    /// Environment variables it reads, by name.
    pub env: Vec<String>,
    /// It keeps state in its memory: one instance serves every call, and it is never recycled.
    pub keeps_state: bool,
    /// The most linear memory one instance needs.
    pub memory_bytes: u64,
    /// The longest one call may run.
    pub call_timeout: Duration,
    /// The most calls that may run on it at once (distribution's `maxthreads`).
    pub max_concurrent_calls: Option<u32>,
}

/// A driver's answer to `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub requirements: Requirements,
    pub capabilities: Capabilities,
    /// False for a component built for contract 0.1.0, which cannot describe itself.
    pub declared: bool,
}

/// Memory a driver gets when it asks for nothing else, and the most a third-party driver gets
/// without the operator's word.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// The same for the time one call may run.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Description {
    /// What the host assumes of a driver that cannot describe itself: it needs nothing, may
    /// keep state in its memory (so it gets one instance), and declares no capability.
    pub fn undeclared() -> Self {
        Description {
            requirements: Requirements {
                read_write_dirs: Vec::new(),
                read_only_dirs: Vec::new(),
                http_authorities: Vec::new(),
                env: Vec::new(),
                keeps_state: true,
                memory_bytes: DEFAULT_MEMORY,
                call_timeout: DEFAULT_CALL_TIMEOUT,
                max_concurrent_calls: None,
            },
            capabilities: Capabilities::default(),
            declared: false,
        }
    }
}
