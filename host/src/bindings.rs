//! Host bindings of the WIT contract (`wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "storage-driver",
    exports: { default: async },
});

pub use exports::registry::storage::types::{Error as WitError, FileInfo as WitFileInfo};

/// The package version this host implements.
pub const WIT_PACKAGE: &str = "registry:storage";
pub const WIT_VERSION: &str = "0.1.0";
/// The interface a driver component must export.
pub const DRIVER_INTERFACE: &str = "registry:storage/driver";
