//! regstore: container-registry storage drivers as sandboxed WebAssembly components.
//!
//! [`Registry`] is the factory: it holds the bundled drivers and any third-party component
//! registered from a file, and [`Registry::create`] builds a [`Driver`], which implements
//! [`regstore_api::StorageDriver`]. Before it is opened a driver describes what it needs
//! ([`Registry::describe`]); each driver runs in its own wasm instance with only what it was
//! granted: a bundled driver what it declares, a third-party one what the operator's
//! [`Sandbox`] allows of it.
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

mod bindings;
mod component;
mod config;
mod describe;
mod driver;
mod engine;
mod grants;
mod guest;
mod guest_output;
mod http_client;
mod instance;
#[cfg(unix)]
mod readdir;
mod registry;
mod sandbox;

pub use bindings::{SUPPORTED_VERSIONS, WIT_SOURCES, WIT_VERSION};
pub use component::{Cache, Origin};
pub use config::{RESERVED_STORAGE_KEYS, StorageConfig};
pub use describe::{DEFAULT_CALL_TIMEOUT, DEFAULT_MEMORY, Description, Requirements};
pub use driver::Driver;
pub use grants::POOL_SIZE;
pub use http_client::{DEFAULT_BETWEEN_BYTES_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_BYTE_TIMEOUT, TlsTrust};
pub use registry::{DriverInfo, Params, Plan, Registry};
pub use regstore_api::{
    Base, Capabilities, Error, ErrorKind, FileInfo, FileReader, FileWriter, FileWriterIo, ReaderIo, Result,
    StorageDriver, WalkControl, Walker,
};
pub use sandbox::{DirGrant, Grants, MEMORY_LIMIT_TRAP, Sandbox};
