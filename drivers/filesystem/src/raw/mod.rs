//! Positioned file I/O under the driver's root: through the WASI descriptor API in the
//! component, through std's files when the driver is compiled for the host as a baseline.

#[cfg(not(target_arch = "wasm32"))]
mod host;
#[cfg(target_arch = "wasm32")]
mod wasi;

#[cfg(not(target_arch = "wasm32"))]
pub use host::*;
#[cfg(target_arch = "wasm32")]
pub use wasi::*;

/// The most content one host call carries: a large object crosses in pieces of this size, so
/// the host never holds a transient copy of all of it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) const IO_CHUNK: usize = 8 << 20;

/// A path as wasi-libc compares it with preopens: without leading `/` and `./`, nor trailing `/`.
pub(crate) fn preopen_form(path: &str) -> &str {
    let mut path = path;
    loop {
        match path.strip_prefix('/').or_else(|| path.strip_prefix("./")) {
            Some(rest) => path = rest,
            None if path == "." => path = "",
            None => return path.trim_end_matches('/'),
        }
    }
}

/// Where `path` lies inside the preopen `prefix` (both in [`preopen_form`]), if it does.
// Only the component matches preopens.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn inside<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() || rest.starts_with('/') { Some(rest.trim_start_matches('/')) } else { None }
}

/// The root as the driver's std file calls must spell it: wasi-libc matches a path against the
/// preopens by bytes, after stripping leading `/` only (or also `./`, depending on which of its
/// lookups is linked), so a relative root loses its leading `./` here.
pub fn guest_root(root: &str) -> String {
    match preopen_form(root) {
        form if root.starts_with('/') => format!("/{form}"),
        "" => ".".to_string(),
        form => form.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_match_preopens_as_in_wasi_libc() {
        for root in ["/var/lib/registry", "var/lib/registry/", "./var/lib/registry", "//./var/lib/registry"] {
            assert_eq!(preopen_form(root), "var/lib/registry", "{root}");
        }
        assert_eq!((preopen_form("."), preopen_form("/"), preopen_form("../r")), ("", "", "../r"));
        assert_eq!(inside("var/lib/registry", "var/lib"), Some("registry"));
        assert_eq!(inside("var/lib/registry", "var/lib/registry"), Some(""));
        assert_eq!(inside("var/lib/registryx", "var/lib/registry"), None);
        assert_eq!(inside("data", ""), Some("data"));
    }

    #[test]
    fn relative_roots_lose_their_leading_dot() {
        assert_eq!(guest_root("./data/registry/"), "data/registry");
        assert_eq!(guest_root("data"), "data");
        assert_eq!(guest_root("."), ".");
        assert_eq!(guest_root("/var/lib/registry"), "/var/lib/registry");
        assert_eq!(guest_root("/"), "/");
    }
}
