//! What a driver declares before it is opened: [`Requirements`] and [`Capabilities`], with
//! defaults that grant nothing and assume the common behaviour.
//!
//! ```
//! use regstore_sdk::{Capabilities, Description, Requirements};
//! let description = Description::new(
//!     Requirements::new().read_write_dir("/var/lib/registry").max_concurrent_calls(100),
//!     Capabilities::new().native_walk(),
//! );
//! assert_eq!(description.requirements.read_write_dirs, ["/var/lib/registry"]);
//! ```

use std::time::Duration;

use crate::{Capabilities, Description, Requirements};

impl Requirements {
    /// Enough for a driver that streams in chunks of a few MiB.
    pub const DEFAULT_MEMORY_BYTES: u64 = 256 << 20;
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

    /// Nothing granted, no state kept between calls, [`Self::DEFAULT_MEMORY_BYTES`],
    /// [`Self::DEFAULT_CALL_TIMEOUT`], no concurrency limit of its own.
    pub fn new() -> Self {
        Requirements {
            read_write_dirs: Vec::new(),
            read_only_dirs: Vec::new(),
            http_authorities: Vec::new(),
            env: Vec::new(),
            keeps_state: false,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            call_timeout_ms: Self::DEFAULT_CALL_TIMEOUT.as_millis() as u64,
            max_concurrent_calls: None,
        }
    }

    /// A directory read and written, seen by the driver at `path` (relative to the host's
    /// working directory when relative).
    pub fn read_write_dir(mut self, path: impl Into<String>) -> Self {
        self.read_write_dirs.push(path.into());
        self
    }

    /// A directory only read, seen by the driver at `path`.
    pub fn read_only_dir(mut self, path: impl Into<String>) -> Self {
        self.read_only_dirs.push(path.into());
        self
    }

    /// An HTTP authority, `host:port`, that requests go to.
    pub fn http_authority(mut self, authority: impl Into<String>) -> Self {
        self.http_authorities.push(authority.into());
        self
    }

    /// An environment variable the driver reads, by name.
    pub fn env(mut self, name: impl Into<String>) -> Self {
        self.env.push(name.into());
        self
    }

    /// The driver keeps its content in memory: one instance must serve every call.
    pub fn keeps_state(mut self) -> Self {
        self.keeps_state = true;
        self
    }

    /// The most linear memory one instance needs.
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// The longest one call may run.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The most calls the host may run on the driver at once.
    pub fn max_concurrent_calls(mut self, calls: u32) -> Self {
        self.max_concurrent_calls = Some(calls);
        self
    }
}

impl Default for Requirements {
    fn default() -> Self {
        Self::new()
    }
}

impl Capabilities {
    /// No native walk, no redirects, appends to committed content, no size limit.
    pub fn new() -> Self {
        Capabilities {
            native_walk: false,
            redirect_methods: Vec::new(),
            appends_to_committed: true,
            max_object_size: None,
        }
    }

    /// [`crate::Driver::walk`] is implemented.
    pub fn native_walk(mut self) -> Self {
        self.native_walk = true;
        self
    }

    /// [`crate::Driver::redirect_url`] answers `method` (such as GET) with a URL.
    pub fn redirect_method(mut self, method: impl Into<String>) -> Self {
        self.redirect_methods.push(method.into().to_ascii_uppercase());
        self
    }

    /// `writer(path, true)` on committed, non-empty content fails (the object stores).
    pub fn refuses_append_to_committed(mut self) -> Self {
        self.appends_to_committed = false;
        self
    }

    /// The largest object the driver can store.
    pub fn max_object_size(mut self, bytes: u64) -> Self {
        self.max_object_size = Some(bytes);
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

impl Description {
    pub fn new(requirements: Requirements, capabilities: Capabilities) -> Self {
        Description { requirements, capabilities }
    }
}

impl Default for Description {
    fn default() -> Self {
        Self::new(Requirements::new(), Capabilities::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_grant_nothing() {
        let d = Description::default();
        let r = &d.requirements;
        assert!(r.read_write_dirs.is_empty() && r.read_only_dirs.is_empty());
        assert!(r.http_authorities.is_empty() && r.env.is_empty());
        assert!(!r.keeps_state);
        assert_eq!((r.memory_bytes, r.call_timeout_ms, r.max_concurrent_calls), (256 << 20, 60_000, None));
        let c = &d.capabilities;
        assert!(!c.native_walk && c.redirect_methods.is_empty());
        assert!(c.appends_to_committed);
        assert_eq!(c.max_object_size, None);
        assert_eq!(Requirements::default(), Requirements::new());
        assert_eq!(Capabilities::default(), Capabilities::new());
    }

    #[test]
    fn helpers_set_what_they_name() {
        let r = Requirements::new()
            .read_write_dir("data")
            .read_only_dir("/etc/creds")
            .http_authority("s3.amazonaws.com:443")
            .env("AWS_ACCESS_KEY_ID")
            .keeps_state()
            .memory(4 << 30)
            .call_timeout(Duration::from_secs(15 * 60))
            .max_concurrent_calls(25);
        assert_eq!(r.read_write_dirs, ["data"]);
        assert_eq!(r.read_only_dirs, ["/etc/creds"]);
        assert_eq!(r.http_authorities, ["s3.amazonaws.com:443"]);
        assert_eq!(r.env, ["AWS_ACCESS_KEY_ID"]);
        assert!(r.keeps_state);
        assert_eq!((r.memory_bytes, r.call_timeout_ms, r.max_concurrent_calls), (4 << 30, 900_000, Some(25)));
        let c = Capabilities::new().native_walk().redirect_method("get").redirect_method("HEAD");
        let c = c.refuses_append_to_committed().max_object_size(1 << 30);
        assert!(c.native_walk && !c.appends_to_committed);
        assert_eq!(c.redirect_methods, ["GET", "HEAD"]);
        assert_eq!(c.max_object_size, Some(1 << 30));
    }
}
