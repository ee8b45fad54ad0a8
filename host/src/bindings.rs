//! Host bindings of every contract version this host accepts, one module per version (as Zed
//! keeps one per extension-API version). `guest` hides the difference from the rest.

/// `registry:storage@0.1.0`: no `describe`; such a component gets only what the operator grants.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/0.1.0",
        world: "storage-driver",
        exports: { default: async },
    });
}

/// `registry:storage@0.2.0`, the current contract.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "wit/0.2.0",
        world: "storage-driver",
        exports: { default: async },
    });
}

/// The package every version belongs to.
pub const WIT_PACKAGE: &str = "registry:storage";
/// The interface a driver component must export.
pub const DRIVER_INTERFACE: &str = "registry:storage/driver";
/// The contract version this host implements in full; components of older supported versions
/// still load.
pub const WIT_VERSION: &str = "0.2.0";
/// Every version this host accepts, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

/// The WIT text of each supported version, for `regstore wit` and the tests.
pub const WIT_SOURCES: &[(&str, &str)] =
    &[("0.2.0", include_str!("../wit/0.2.0/storage.wit")), ("0.1.0", include_str!("../wit/0.1.0/storage.wit"))];
