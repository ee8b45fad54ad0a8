//! distribution's storage-driver errors, with their exact messages (docs/behaviour.md, Errors).

/// A regstore error. Driver errors carry the driver's name and print as distribution's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{driver}: Path not found: {path}")]
    PathNotFound { driver: String, path: String },
    #[error("{driver}: invalid path: {path}")]
    InvalidPath { driver: String, path: String },
    #[error("{driver}: invalid offset: {offset} for path: {path}")]
    InvalidOffset { driver: String, path: String, offset: i64 },
    #[error("{driver}: unsupported method")]
    Unsupported { driver: String },
    /// A parameter given to the driver is missing or wrong.
    #[error("{driver}: {detail}")]
    InvalidParameter { driver: String, detail: String },
    /// Anything else a driver reports (distribution's `Error{DriverName, Detail}`).
    #[error("{driver}: {detail}")]
    Other { driver: String, detail: String },
    /// The factory knows no driver by this name.
    #[error("StorageDriver not registered: {0}")]
    InvalidStorageDriver(String),
    /// A component could not be loaded: not a component, not a storage driver, or built for an
    /// incompatible version of the contract.
    #[error("cannot load driver component {source_name}: {reason}")]
    Load { source_name: String, reason: String },
    /// The driver needs what its sandbox does not grant; `detail` lists each missing grant and
    /// how to give it.
    #[error("{driver}: {detail}")]
    NotGranted { driver: String, detail: String },
    /// The driver's instance trapped (panic, limit, deadline) or was already lost; the call
    /// failed, and the next call runs on a fresh instance.
    #[error("{driver}: driver crashed: {detail}")]
    Crashed { driver: String, detail: String },
    /// A configuration (distribution's `config.yml`, or its environment overrides) is wrong;
    /// `detail` names the key and the reason.
    #[error("{source_name}: {detail}")]
    Config { source_name: String, detail: String },
}

/// The kind of an [`Error`], for callers that branch on it as distribution's do on the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    PathNotFound,
    InvalidPath,
    InvalidOffset,
    Unsupported,
    InvalidParameter,
    Other,
    InvalidStorageDriver,
    Load,
    NotGranted,
    Crashed,
    Config,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::PathNotFound { .. } => ErrorKind::PathNotFound,
            Error::InvalidPath { .. } => ErrorKind::InvalidPath,
            Error::InvalidOffset { .. } => ErrorKind::InvalidOffset,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::InvalidParameter { .. } => ErrorKind::InvalidParameter,
            Error::Other { .. } => ErrorKind::Other,
            Error::InvalidStorageDriver(_) => ErrorKind::InvalidStorageDriver,
            Error::Load { .. } => ErrorKind::Load,
            Error::NotGranted { .. } => ErrorKind::NotGranted,
            Error::Crashed { .. } => ErrorKind::Crashed,
            Error::Config { .. } => ErrorKind::Config,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::PathNotFound
    }

    /// An error of kind other.
    pub fn other(driver: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error::Other { driver: driver.into(), detail: detail.to_string() }
    }

    pub fn not_found(driver: impl Into<String>, path: impl Into<String>) -> Self {
        Error::PathNotFound { driver: driver.into(), path: path.into() }
    }

    /// The driver named in the error, if it names one.
    pub fn driver(&self) -> Option<&str> {
        match self {
            Error::PathNotFound { driver, .. }
            | Error::InvalidPath { driver, .. }
            | Error::InvalidOffset { driver, .. }
            | Error::Unsupported { driver }
            | Error::InvalidParameter { driver, .. }
            | Error::Other { driver, .. }
            | Error::NotGranted { driver, .. }
            | Error::Crashed { driver, .. } => Some(driver),
            Error::InvalidStorageDriver(_) | Error::Load { .. } | Error::Config { .. } => None,
        }
    }

    /// The same error under the name `name` (distribution's `setDriverName`): what a driver
    /// returns is reported under its own `Name()`, whatever name the error was built with.
    pub fn with_driver(mut self, name: &str) -> Self {
        match &mut self {
            Error::PathNotFound { driver, .. }
            | Error::InvalidPath { driver, .. }
            | Error::InvalidOffset { driver, .. }
            | Error::Unsupported { driver }
            | Error::InvalidParameter { driver, .. }
            | Error::Other { driver, .. }
            | Error::NotGranted { driver, .. }
            | Error::Crashed { driver, .. } => name.clone_into(driver),
            Error::InvalidStorageDriver(_) | Error::Load { .. } | Error::Config { .. } => {}
        }
        self
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::PathNotFound => std::io::ErrorKind::NotFound,
            ErrorKind::InvalidPath | ErrorKind::InvalidOffset => std::io::ErrorKind::InvalidInput,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// An I/O error from the stream adapters: the typed error it carries, or else kind other.
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
            Some(typed) => typed.clone(),
            None => Error::Other { driver: "io".into(), detail: e.to_string() },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_distribution() {
        // distribution's TestErrorFormat, and the messages listed in docs/behaviour.md (Errors).
        assert_eq!(Error::other("foo", "unexpected error").to_string(), "foo: unexpected error");
        assert_eq!(Error::not_found("inmemory", "/a").to_string(), "inmemory: Path not found: /a");
        let ipe = Error::InvalidPath { driver: "inmemory".into(), path: "abc".into() };
        assert_eq!(ipe.to_string(), "inmemory: invalid path: abc");
        let ioe = Error::InvalidOffset { driver: "inmemory".into(), path: "/a".into(), offset: -1 };
        assert_eq!(ioe.to_string(), "inmemory: invalid offset: -1 for path: /a");
        assert_eq!(Error::Unsupported { driver: "x".into() }.to_string(), "x: unsupported method");
        assert_eq!(Error::InvalidStorageDriver("nosuch".into()).to_string(), "StorageDriver not registered: nosuch");
    }

    #[test]
    fn io_errors_keep_the_typed_error() {
        let io: std::io::Error = Error::not_found("d", "/x").into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let back = io.get_ref().and_then(|e| e.downcast_ref::<Error>()).unwrap();
        assert!(back.is_not_found());
    }
}
