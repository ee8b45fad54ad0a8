//! The filesystem driver's parameters, with distribution's defaults and messages.

use regstore_sdk::{Error, Params, Result};

pub const DEFAULT_ROOT: &str = "/var/lib/registry";
pub const DEFAULT_MAX_THREADS: u64 = 100;
pub const MIN_MAX_THREADS: u64 = 25;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the tree lives; the host preopens exactly this directory.
    pub root: String,
    /// distribution's concurrency limit for this driver.
    pub max_threads: u64,
}

impl Config {
    pub fn from_params(params: &Params) -> Result<Self> {
        let root = params.string("rootdirectory")?.unwrap_or_else(|| DEFAULT_ROOT.to_string());
        // `/var/lib/registry/` names the same tree as distribution's path.Join sees it; the
        // directory is granted, and matched inside the guest, by the name without the slash.
        let root = match root.trim_end_matches('/') {
            "" if root.starts_with('/') => "/".to_string(),
            trimmed => trimmed.to_string(),
        };
        let max_threads = params
            .limit("maxthreads", MIN_MAX_THREADS, DEFAULT_MAX_THREADS)
            .map_err(|e| Error::invalid_parameter(format!("maxthreads config error: {}", detail(&e))))?;
        Ok(Config { root, max_threads })
    }
}

fn detail(e: &Error) -> String {
    match e {
        Error::InvalidParameter(d) | Error::Other(d) => d.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config> {
        Config::from_params(&Params::parse(json).unwrap())
    }

    /// distribution's TestFromParametersImpl.
    #[test]
    fn from_parameters_as_distribution() {
        assert_eq!(parse("{}").unwrap(), Config { root: DEFAULT_ROOT.into(), max_threads: 100 });
        let err = parse(r#"{"maxthreads":"fail"}"#).unwrap_err();
        assert!(detail(&err).starts_with("maxthreads config error: "), "{err:?}");
        assert_eq!(parse(r#"{"maxthreads":"100"}"#).unwrap().max_threads, 100);
        assert_eq!(parse(r#"{"maxthreads":100}"#).unwrap().max_threads, 100);
        assert_eq!(parse(r#"{"maxthreads":1}"#).unwrap().max_threads, 25);
        assert_eq!(parse(r#"{"rootdirectory":"/srv/registry"}"#).unwrap().root, "/srv/registry");
        assert_eq!(parse(r#"{"rootdirectory":"/srv/registry//"}"#).unwrap().root, "/srv/registry");
        assert_eq!(parse(r#"{"rootdirectory":"data/sub/"}"#).unwrap().root, "data/sub");
        assert_eq!(parse(r#"{"rootdirectory":"/"}"#).unwrap().root, "/");
    }
}
