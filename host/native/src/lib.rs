//! The bundled drivers compiled for the host: the very code of each component, called directly
//! instead of through the component boundary and WASI, behind the same [`Base`] layer. It is
//! the baseline of `regstore bench`: a ratio against it is the cost of the sandbox alone.
//!
//! A native driver has no sandbox: it reaches every file and host the process can. It is for
//! measurements, never for serving a registry.

mod confined;
mod driver;

use regstore_api::{Base, Error, Result, StorageDriver};
use regstore_sdk::native::Entry;
use serde_json::{Map, Value};

pub use driver::NativeDriver;

/// A native build's constructors, as `export_driver!` defines them.
type NativeDriverFn = fn() -> Entry;

/// The bundled drivers that also build natively: (registration name, constructors).
const DRIVERS: &[(&str, NativeDriverFn)] = &[
    ("inmemory", regstore_driver_inmemory::native_driver),
    ("filesystem", regstore_driver_filesystem::native_driver),
    ("s3", regstore_driver_s3::native_driver),
    ("azure", regstore_driver_azure::native_driver),
    ("gcs", regstore_driver_gcs::native_driver),
];

/// Makes the native cloud drivers' HTTPS requests trust the CAs in `files` (PEM) instead of
/// Mozilla's roots, process-wide: what `Sandbox::ca_files` is to a component.
pub fn trust_ca_files(files: &[std::path::PathBuf]) -> Result<()> {
    regstore_objectstore::http::native::trust_ca_files(files)
        .map_err(|detail| Error::InvalidParameter { driver: "native".into(), detail })
}

/// Whether `name` has a native build.
pub fn has(name: &str) -> bool {
    DRIVERS.iter().any(|(n, _)| *n == name)
}

/// Opens the native build of the bundled driver `name` with `params`, as the host opens its
/// component: described first, then opened, behind [`Base`] with the concurrency limit the
/// driver declares.
pub fn open(name: &str, params: &Map<String, Value>) -> Result<Base<NativeDriver>> {
    let entry = DRIVERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, entry)| entry())
        .ok_or_else(|| Error::InvalidStorageDriver(format!("{name} (no native build)")))?;
    let driver = NativeDriver::open(name, entry, &Value::Object(params.clone()).to_string())?;
    let limit = driver.max_concurrent_calls();
    let base = Base::new(driver);
    Ok(match limit {
        Some(calls) => base.with_max_concurrent_calls(calls),
        None => base,
    })
}

/// A boxed native driver, for callers that hold drivers as trait objects.
pub fn open_boxed(name: &str, params: &Map<String, Value>) -> Result<std::sync::Arc<dyn StorageDriver>> {
    Ok(std::sync::Arc::new(open(name, params)?))
}
