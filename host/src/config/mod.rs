//! distribution's `config.yml`, read as the registry reads it: the `storage:` section names one
//! driver and its parameters, `REGISTRY_STORAGE_*` environment variables override them, and a
//! `regstore:` section of our own (which distribution ignores) says which component file a
//! third-party driver is and what its sandbox grants.

mod yaml;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::{Error, Params, Sandbox};

/// Keys under `storage:` that configure the registry, not the driver.
pub const RESERVED_STORAGE_KEYS: [&str; 5] = ["maintenance", "cache", "delete", "redirect", "tag"];

/// The environment variables that override a configuration start with this.
const ENV_PREFIX: &str = "REGISTRY_";

/// What a configuration says about storage: the driver, its parameters, and regstore's own
/// settings for it.
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    /// The driver's name: the one key of `storage:` that is not reserved.
    pub driver: String,
    /// Its parameters as distribution passes them: values typed as YAML reads them, nested
    /// maps kept as maps.
    pub params: Params,
    /// `regstore.component`: the component file that is the driver, registered under `driver`.
    pub component: Option<PathBuf>,
    /// `regstore.sandbox`: what the operator grants the driver.
    pub sandbox: Sandbox,
    /// Environment variables that were ignored, and why (distribution logs these as warnings).
    pub warnings: Vec<String>,
}

impl StorageConfig {
    /// Reads `path` with this process's environment overrides.
    pub fn load(path: &Path) -> Result<StorageConfig, Error> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config { source_name: source.clone(), detail: e.to_string() })?;
        // Names or values that are not UTF-8 cannot name a configuration key.
        let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        StorageConfig::parse(&text, &source, env)
    }

    /// Reads a configuration's text; `source` names it in errors, and `env` holds the
    /// environment whose `REGISTRY_STORAGE*` variables override it.
    pub fn parse(
        text: &str,
        source: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<StorageConfig, Error> {
        let fail = |detail: String| Error::Config { source_name: source.to_string(), detail };
        let document = yaml::parse(text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
        let mut top = match document {
            Value::Object(top) => top,
            Value::Null => Map::new(),
            other => return Err(fail(format!("expected a mapping at the top, found {}", kind(&other)))),
        };
        if let Some(version) = top.get("version").filter(|v| !v.is_null()) {
            let text = scalar_text(version);
            if text != "0.1" {
                return Err(fail(format!("version: unsupported version: {text:?} (distribution's is 0.1)")));
            }
        }
        let mut storage =
            storage_section(top.remove("storage").unwrap_or(Value::Null)).map_err(|e| fail(format!("storage: {e}")))?;
        let mut warnings = Vec::new();
        apply_env(&mut storage, env, &mut warnings).map_err(fail)?;
        let driver = storage_type(&storage).map_err(fail)?;
        let params = match storage.remove(&driver) {
            Some(Value::Object(params)) => params,
            Some(Value::Null) | None => Map::new(),
            Some(other) => {
                return Err(fail(format!(
                    "storage.{driver}: expected a mapping of parameters, found {}",
                    kind(&other)
                )));
            }
        };
        let mut config = StorageConfig { driver, params, warnings, ..StorageConfig::default() };
        if let Some(section) = top.remove("regstore").filter(|v| !v.is_null()) {
            config.read_regstore_section(section).map_err(fail)?;
        }
        Ok(config)
    }

    /// The `regstore:` section: `component` and `sandbox`, nothing else (a misspelt grant must
    /// not go unnoticed).
    fn read_regstore_section(&mut self, section: Value) -> Result<(), String> {
        let Value::Object(section) = section else {
            return Err(format!("regstore: expected a mapping, found {}", kind(&section)));
        };
        for (key, value) in section {
            match key.as_str() {
                "component" => self.component = Some(PathBuf::from(string("regstore.component", &value)?)),
                "sandbox" => self.sandbox = sandbox(value)?,
                _ => return Err(format!("regstore.{key}: unknown key (expected component or sandbox)")),
            }
        }
        Ok(())
    }
}

/// `storage:` as a map from names to values: a bare name means that driver with no parameters.
/// Several driver keys are refused, as distribution refuses them.
fn storage_section(value: Value) -> Result<Map<String, Value>, String> {
    let section = match value {
        Value::Object(section) => section,
        Value::String(name) => Map::from_iter([(name, Value::Object(Map::new()))]),
        Value::Null => Map::new(),
        other => return Err(format!("expected a driver's name or a mapping, found {}", kind(&other))),
    };
    let drivers = driver_keys(&section);
    if drivers.len() > 1 {
        return Err(format!("must provide exactly one storage type. Provided: [{}]", drivers.join(" ")));
    }
    Ok(section)
}

fn driver_keys(storage: &Map<String, Value>) -> Vec<&str> {
    storage.keys().map(String::as_str).filter(|k| !RESERVED_STORAGE_KEYS.contains(k)).collect()
}

/// The driver named by the (overridden) section.
fn storage_type(storage: &Map<String, Value>) -> Result<String, String> {
    match driver_keys(storage).as_slice() {
        [] => Err("no storage configuration provided".to_string()),
        [one] => Ok(one.to_string()),
        several => {
            Err(format!("multiple storage drivers specified in configuration or environment: {}", several.join(", ")))
        }
    }
}

/// distribution's environment overrides of `storage:`, in lexical order of their names (so
/// `REGISTRY_STORAGE` switches the driver before `REGISTRY_STORAGE_<DRIVER>_<KEY>` sets its
/// keys). Each value is read as YAML; a path's parts match existing keys case-insensitively,
/// and a key that does not exist is created in lower case.
fn apply_env(
    storage: &mut Map<String, Value>,
    env: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (name, payload) in vars {
        let path: Vec<&str> = name.split('_').skip(1).collect();
        if path.first() != Some(&"STORAGE") {
            continue;
        }
        let fail = |e: String| format!("parsing environment variable {name}: {e}");
        if path.len() == 1 {
            *storage = storage_section(yaml::parse(&payload).map_err(fail)?).map_err(fail)?;
            continue;
        }
        overwrite(storage, &path[1..], &payload).map_err(fail)?.into_iter().for_each(|why| {
            warnings.push(format!("ignoring environment variable {name}: {why}"));
        });
    }
    Ok(())
}

/// Sets the value at `path` (upper-case parts) under `map` to `payload` read as YAML, creating
/// maps on the way. Returns why the variable was ignored, when it was (a value in the way that
/// is neither a map nor absent, as distribution ignores it).
fn overwrite(map: &mut Map<String, Value>, path: &[&str], payload: &str) -> Result<Option<String>, String> {
    let (first, rest) = path.split_first().ok_or("the name ends with '_'")?;
    if !rest.is_empty() {
        let existing = map.iter_mut().find(|(k, v)| k.to_uppercase() == *first && !v.is_null());
        if let Some((key, value)) = existing {
            return match value {
                Value::Object(inner) => overwrite(inner, rest, payload),
                _ => Ok(Some(format!("{key} is not a mapping"))),
            };
        }
        let mut inner = Map::new();
        let ignored = overwrite(&mut inner, rest, payload)?;
        map.insert(first.to_lowercase(), Value::Object(inner));
        return Ok(ignored);
    }
    map.insert(first.to_lowercase(), yaml::parse(payload)?);
    Ok(None)
}

/// The `regstore.sandbox` mapping, with the CLI's flag names.
fn sandbox(value: Value) -> Result<Sandbox, String> {
    let Value::Object(section) = value else {
        return Err(format!("regstore.sandbox: expected a mapping, found {}", kind(&value)));
    };
    let mut sandbox = Sandbox::default();
    for (name, value) in &section {
        let key = &format!("regstore.sandbox.{name}");
        match name.as_str() {
            "allow-dir" => sandbox.dirs = strings(key, value)?.into_iter().map(PathBuf::from).collect(),
            "allow-read" => sandbox.read_only_dirs = strings(key, value)?.into_iter().map(PathBuf::from).collect(),
            "allow-host" => sandbox.hosts = strings(key, value)?,
            "allow-env" => sandbox.env_names = strings(key, value)?,
            "ca-file" => sandbox.ca_files = strings(key, value)?.into_iter().map(PathBuf::from).collect(),
            "grant-requested" => {
                sandbox.grant_requested = value.as_bool().ok_or_else(|| format!("{key}: expected true or false"))?
            }
            "memory-limit" => {
                let mib = integer(key, value, 1, 4096)?;
                sandbox.memory_limit = Some((mib as usize) << 20);
            }
            "deadline" => {
                let seconds = value.as_f64().filter(|s| (0.001..=86_400.0).contains(s));
                let seconds = seconds.ok_or_else(|| format!("{key}: expected seconds between 0.001 and 86400"))?;
                sandbox.call_deadline = Some(Duration::from_secs_f64(seconds));
            }
            "instances" => sandbox.instances = Some(integer(key, value, 1, 256)? as usize),
            _ => {
                return Err(format!(
                    "{key}: unknown key (expected allow-dir, allow-read, allow-host, allow-env, ca-file, \
                     grant-requested, memory-limit, deadline or instances)"
                ));
            }
        }
    }
    Ok(sandbox)
}

fn string(key: &str, value: &Value) -> Result<String, String> {
    value.as_str().map(str::to_string).ok_or_else(|| format!("{key}: expected a string, found {}", kind(value)))
}

/// One string or a list of them.
fn strings(key: &str, value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::Array(items) => items.iter().map(|item| string(key, item)).collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![string(key, other)?]),
    }
}

fn integer(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{key}: expected an integer from {min} to {max}"))
}

/// A scalar as the text YAML read it from (`0.1` is a float to YAML, a string to distribution).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
