//! distribution's `base` package, once for every driver: path validation before the driver is
//! called, and errors normalised to carry the driver's name (spec §3.8). The walk fallback for
//! drivers without a native walk is `regstore_api::walk::FallbackWalker`, used by the driver.

use regstore_api::{Error, path};

use crate::bindings::WitError;

/// A path every method accepts: the pattern, without `.` or `..` components (D8).
pub fn check_path(driver: &str, p: &str) -> Result<(), Error> {
    if path::is_valid(p) { Ok(()) } else { Err(Error::InvalidPath { driver: driver.to_string(), path: p.to_string() }) }
}

/// A path for `stat`, `list` and `walk`, which also accept the root.
pub fn check_path_or_root(driver: &str, p: &str) -> Result<(), Error> {
    if p == "/" { Ok(()) } else { check_path(driver, p) }
}

/// The reader's checks, in distribution's order: the offset before the path.
pub fn check_offset(driver: &str, p: &str, offset: i64) -> Result<(), Error> {
    if offset < 0 {
        return Err(Error::InvalidOffset { driver: driver.to_string(), path: p.to_string(), offset });
    }
    check_path(driver, p)
}

/// A driver's error, as the typed error users see, carrying the driver's name.
pub fn from_wit(driver: &str, e: WitError) -> Error {
    let driver = driver.to_string();
    match e {
        WitError::PathNotFound(path) => Error::PathNotFound { driver, path },
        WitError::InvalidPath(path) => Error::InvalidPath { driver, path },
        WitError::InvalidOffset(o) => Error::InvalidOffset { driver, path: o.path, offset: o.offset },
        WitError::Unsupported(_) => Error::Unsupported { driver },
        WitError::InvalidParameter(detail) => Error::InvalidParameter { driver, detail },
        WitError::Other(detail) => Error::Other { driver, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_the_driver() {
        assert_eq!(check_path("inmemory", "abc").unwrap_err().to_string(), "inmemory: invalid path: abc");
        assert!(check_path("d", "/").is_err());
        assert!(check_path_or_root("d", "/").is_ok());
        assert!(check_path("d", "/a/../b").is_err());
        let e = check_offset("inmemory", "/a", -1).unwrap_err();
        assert_eq!(e.to_string(), "inmemory: invalid offset: -1 for path: /a");
        // The offset is checked first, as upstream.
        assert!(matches!(check_offset("d", "bad", -1), Err(Error::InvalidOffset { .. })));
    }
}
