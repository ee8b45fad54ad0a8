//! The storage-driver components bundled with regstore, built from `drivers/` by this crate's
//! build script and embedded here, as distribution compiles its drivers in.

/// One bundled component.
#[derive(Debug)]
pub struct Bundled {
    /// The name it registers under.
    pub name: &'static str,
    pub wasm: &'static [u8],
    /// SHA-256 of `wasm`, computed when it was built.
    pub sha256: [u8; 32],
}

/// The bundled components.
pub const COMPONENTS: &[Bundled] = include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bundled component registered as `name`.
pub fn get(name: &str) -> Option<&'static Bundled> {
    COMPONENTS.iter().find(|c| c.name == name)
}

/// Other names of bundled drivers: (alias, name). distribution registers s3 as both.
pub const ALIASES: &[(&str, &str)] = &[("s3aws", "s3")];

/// Paths of the components built for tests only (feature `test-components`).
#[cfg(feature = "test-components")]
pub mod test_components {
    include!(concat!(env!("OUT_DIR"), "/test_components.rs"));
}
