//! regstore: container-registry storage drivers as sandboxed WebAssembly components.
//!
//! [`Registry`] is the factory: it holds the bundled drivers and any third-party component
//! registered from a file, and [`Registry::create`] builds a [`Driver`], which implements
//! [`regstore_api::StorageDriver`]. Each driver runs in its own wasm instance with only what its
//! [`Sandbox`] grants.
//!
//! ```no_run
//! # async fn demo() -> Result<(), regstore::Error> {
//! use regstore::{Registry, StorageDriver};
//! let registry = Registry::new();
//! let driver = registry.create("inmemory", &Default::default()).await?;
//! driver.put_content("/hello", b"world").await?;
//! assert_eq!(driver.get_content("/hello").await?, b"world");
//! # Ok(()) }
//! ```

mod base;
mod bindings;
mod bundled;
mod component;
mod driver;
mod engine;
mod instance;
mod registry;
mod sandbox;

pub use bindings::WIT_VERSION;
pub use component::{Cache, Origin};
pub use driver::Driver;
pub use registry::{DriverInfo, Params, Registry};
pub use regstore_api::{
    Error, ErrorKind, FileInfo, FileReader, FileWriter, FileWriterIo, ReaderIo, Result, StorageDriver, WalkControl,
    Walker,
};
pub use sandbox::Sandbox;
