//! The guest SDK for regstore storage drivers.
//!
//! A driver implements [`Driver`] (and [`FileReader`], [`FileWriter`], optionally [`Walker`]) and
//! exports itself with [`export_driver!`]; the SDK owns the WIT bindings and turns the trait into
//! the `registry:storage/driver` interface. The host has already validated every path, so a driver
//! only implements the primitives.
//!
//! ```ignore
//! struct MyDriver { /* ... */ }
//! impl regstore_sdk::Driver for MyDriver { /* ... */ }
//! regstore_sdk::export_driver!(MyDriver);
//! ```

mod adapter;
mod description;
pub mod native;
mod params;

pub use adapter::Component;
pub use params::Params;

/// Raw bindings of the current contract, generated once here for every driver.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/0.2.0",
        world: "storage-driver",
        additional_derives: [PartialEq, Eq],
        pub_export_macro: true,
        export_macro_name: "__export_storage_driver",
        default_bindings_module: "regstore_sdk::bindings",
    });
}

/// Raw bindings of the previous contract, `registry:storage@0.1.0`, for [`export_driver_v0_1!`].
pub mod bindings_v0_1 {
    // A world of another name: wit-bindgen's exported macros are named after the world, and
    // both versions' macros live at this crate's root. Its name has no segment that starts
    // with a digit (`v0-1` would): older component tooling, cargo-component 0.21's among them,
    // refuses such a name in the custom section every SDK driver carries.
    wit_bindgen::generate!({
        path: "wit/0.1.0",
        inline: "package regstore:sdk;
                 world storage-driver-previous { include registry:storage/storage-driver@0.1.0; }",
        world: "regstore:sdk/storage-driver-previous",
        pub_export_macro: true,
        export_macro_name: "__export_storage_driver_v0_1",
        default_bindings_module: "regstore_sdk::bindings_v0_1",
    });
}

pub use bindings::exports::registry::storage::types::{
    Capabilities, Description, Error, FileInfo, OffsetError, Requirements,
};

/// The version of the WIT package this SDK implements.
pub const WIT_VERSION: &str = "0.2.0";

/// What every driver method returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of kind `other`, worded for the operator.
    pub fn other(detail: impl std::fmt::Display) -> Self {
        Error::Other(detail.to_string())
    }

    pub fn not_found(path: impl Into<String>) -> Self {
        Error::PathNotFound(path.into())
    }

    pub fn invalid_parameter(detail: impl std::fmt::Display) -> Self {
        Error::InvalidParameter(detail.to_string())
    }
}

impl FileInfo {
    pub fn file(path: impl Into<String>, size: u64, modified_ns: u64) -> Self {
        FileInfo { path: path.into(), size, modified_ns, is_dir: false }
    }

    pub fn dir(path: impl Into<String>, modified_ns: u64) -> Self {
        FileInfo { path: path.into(), size: 0, modified_ns, is_dir: true }
    }
}

/// Nanoseconds since the Unix epoch, from the WASI wall clock.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A storage driver, as distribution's `StorageDriver`. Paths are valid and absolute when they
/// arrive (`/` only for `stat`, `list` and `walk`); offsets are never negative.
///
/// Apart from its constructors the trait is object-safe: a `Box<dyn Driver>` is how a native
/// build of a driver is held ([`native`]).
pub trait Driver: 'static {
    /// What the driver needs from its sandbox and what it can do, for these parameters. It runs
    /// with nothing granted (no files, network or environment), before `open`, and must reject
    /// bad parameters with the errors `open` gives: parse them with the same function.
    fn describe(params: &Params) -> Result<Description>
    where
        Self: Sized;
    /// Builds the driver from its parameters.
    fn open(params: Params) -> Result<Self>
    where
        Self: Sized;
    /// The driver's name for messages, by convention its registration name.
    fn name(&self) -> String;
    fn get_content(&self, path: &str) -> Result<Vec<u8>>;
    /// Replaces whatever is stored at `path`, atomically.
    fn put_content(&self, path: &str, content: Vec<u8>) -> Result<()>;
    /// The content from `offset`; an offset at or past the end gives an empty reader (D3).
    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>>;
    fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>>;
    fn stat(&self, path: &str) -> Result<FileInfo>;
    /// Absolute paths of the direct children, sorted by bytes (D11).
    fn list(&self, path: &str) -> Result<Vec<String>>;
    /// Moves a file; a missing source is path-not-found for the source, a directory is an error.
    fn move_file(&self, source: &str, destination: &str) -> Result<()>;
    /// Removes `path` and everything under `path/` (D6).
    fn delete(&self, path: &str) -> Result<()>;
    /// A URL through which a client can `method` the content, or none: serve it yourself.
    fn redirect_url(&self, _method: &str, _path: &str) -> Result<Option<String>> {
        Ok(None)
    }
    /// A native walk; the default makes the host walk with `list` and `stat`.
    fn walk(&self, _path: &str, _start_after: Option<&str>) -> Result<Box<dyn Walker>> {
        Err(Error::Unsupported("walk".into()))
    }
}

/// A stream of content.
pub trait FileReader: 'static {
    /// Up to `len` bytes; empty at the end.
    fn read(&mut self, len: usize) -> Result<Vec<u8>>;
}

/// distribution's FileWriter; [`WriterState`] implements its state machine for you.
pub trait FileWriter: 'static {
    fn write(&mut self, data: Vec<u8>) -> Result<u64>;
    /// Bytes at the path so far, counting resumed and buffered bytes (D5).
    fn size(&self) -> u64;
    fn close(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    fn cancel(&mut self) -> Result<()>;
}

/// A native walk: pre-order, component-wise.
pub trait Walker: 'static {
    fn next(&mut self) -> Result<Option<FileInfo>>;
    /// Do not descend into the directory `next` returned last.
    fn skip_dir(&mut self);
}

/// The FileWriter state machine as regstore defines it (docs/behaviour.md), shared by drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriterState {
    #[default]
    Open,
    Closed,
    Committed,
    Cancelled,
}

impl WriterState {
    /// Whether `write` may go on.
    pub fn check_write(self) -> Result<()> {
        self.check_open()
    }

    /// Whether `commit` may go on.
    pub fn check_commit(self) -> Result<()> {
        self.check_open()
    }

    /// Whether `cancel` may go on: not after commit, so committed content survives.
    pub fn check_cancel(self) -> Result<()> {
        self.check_open()
    }

    /// What `close` must do: `Ok(true)` flush and close, `Ok(false)` succeed without touching
    /// anything (after commit, or after cancel where nothing may be written), `Err` refuse.
    pub fn check_close(self) -> Result<bool> {
        match self {
            WriterState::Open => Ok(true),
            WriterState::Committed | WriterState::Cancelled => Ok(false),
            WriterState::Closed => Err(Error::other("already closed")),
        }
    }

    fn check_open(self) -> Result<()> {
        match self {
            WriterState::Open => Ok(()),
            WriterState::Closed => Err(Error::other("already closed")),
            WriterState::Committed => Err(Error::other("already committed")),
            WriterState::Cancelled => Err(Error::other("already cancelled")),
        }
    }
}

/// Exports a [`Driver`] as this component's `registry:storage/driver` (the current contract).
#[macro_export]
macro_rules! export_driver {
    ($driver:ty) => {
        // Exported symbols only in the component: natively several drivers link into one binary.
        #[cfg(target_arch = "wasm32")]
        type __RegstoreComponent = $crate::Component<$driver>;
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_storage_driver!(__RegstoreComponent with_types_in $crate::bindings);

        /// This driver compiled for the host, as a baseline for the component.
        #[cfg(not(target_arch = "wasm32"))]
        pub fn native_driver() -> $crate::native::Entry {
            $crate::native::Entry::of::<$driver>()
        }
    };
}

/// Exports a [`Driver`] against the previous contract, `registry:storage@0.1.0` (no `describe`),
/// to check that hosts still load such components.
#[macro_export]
macro_rules! export_driver_v0_1 {
    ($driver:ty) => {
        type __RegstoreComponent = $crate::Component<$driver>;
        $crate::bindings_v0_1::__export_storage_driver_v0_1!(__RegstoreComponent with_types_in $crate::bindings_v0_1);
    };
}
