//! The storage-driver components bundled with regstore, built from `drivers/` by this crate's
//! build script and embedded here, as distribution compiles its drivers in.

/// The bundled components: (registration name, wasm).
pub const COMPONENTS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Other names of bundled drivers: (alias, name). distribution registers s3 as both.
pub const ALIASES: &[(&str, &str)] = &[("s3aws", "s3")];

/// Paths of the components built for tests only (feature `test-components`).
#[cfg(feature = "test-components")]
pub mod test_components {
    include!(concat!(env!("OUT_DIR"), "/test_components.rs"));
}
