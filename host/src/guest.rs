//! A driver component's exports, whatever contract version it was built for: one enum over the
//! per-version bindings, so the rest of the host is written once.

use std::time::{Duration, SystemTime};

use regstore_api::{Capabilities, Error, FileInfo};
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::{v0_1, v0_2};
use crate::describe::{Description, Requirements};
use crate::sandbox::HostState;

/// A linked component, ready to instantiate.
pub(crate) enum Pre {
    V0_1(v0_1::StorageDriverPre<HostState>),
    V0_2(v0_2::StorageDriverPre<HostState>),
}

/// The exports of one instance.
pub(crate) enum Exports {
    V0_1(v0_1::StorageDriver),
    V0_2(v0_2::StorageDriver),
}

/// A driver's error as every contract version carries it.
#[derive(Debug)]
pub(crate) enum GuestError {
    PathNotFound(String),
    InvalidPath(String),
    InvalidOffset(String, i64),
    Unsupported,
    InvalidParameter(String),
    Other(String),
}

impl GuestError {
    /// The typed error users see, carrying the driver's name.
    pub fn into_error(self, driver: &str) -> Error {
        let driver = driver.to_string();
        match self {
            GuestError::PathNotFound(path) => Error::PathNotFound { driver, path },
            GuestError::InvalidPath(path) => Error::InvalidPath { driver, path },
            GuestError::InvalidOffset(path, offset) => Error::InvalidOffset { driver, path, offset },
            GuestError::Unsupported => Error::Unsupported { driver },
            GuestError::InvalidParameter(detail) => Error::InvalidParameter { driver, detail },
            GuestError::Other(detail) => Error::Other { driver, detail },
        }
    }
}

/// What a guest call gives: a trap (outer), or the driver's answer (inner).
pub(crate) type Answer<T> = wasmtime::Result<Result<T, GuestError>>;

/// Converts one version's types into the host's; the types are the same in every version.
macro_rules! conversions {
    ($v:ident) => {
        impl From<$v::exports::registry::storage::types::Error> for GuestError {
            fn from(e: $v::exports::registry::storage::types::Error) -> Self {
                use $v::exports::registry::storage::types::Error as E;
                match e {
                    E::PathNotFound(path) => GuestError::PathNotFound(path),
                    E::InvalidPath(path) => GuestError::InvalidPath(path),
                    E::InvalidOffset(o) => GuestError::InvalidOffset(o.path, o.offset),
                    E::Unsupported(_) => GuestError::Unsupported,
                    E::InvalidParameter(detail) => GuestError::InvalidParameter(detail),
                    E::Other(detail) => GuestError::Other(detail),
                }
            }
        }

        impl From<$v::exports::registry::storage::types::FileInfo> for FileInfo {
            fn from(info: $v::exports::registry::storage::types::FileInfo) -> Self {
                FileInfo {
                    path: info.path,
                    size: if info.is_dir { 0 } else { info.size },
                    modified: SystemTime::UNIX_EPOCH + Duration::from_nanos(info.modified_ns),
                    is_dir: info.is_dir,
                }
            }
        }
    };
}
conversions!(v0_1);
conversions!(v0_2);

impl From<v0_2::exports::registry::storage::types::Description> for Description {
    fn from(d: v0_2::exports::registry::storage::types::Description) -> Self {
        let (r, c) = (d.requirements, d.capabilities);
        Description {
            requirements: Requirements {
                read_write_dirs: r.read_write_dirs,
                read_only_dirs: r.read_only_dirs,
                http_authorities: r.http_authorities,
                env: r.env,
                keeps_state: r.keeps_state,
                memory_bytes: r.memory_bytes,
                call_timeout: Duration::from_millis(r.call_timeout_ms),
                max_concurrent_calls: r.max_concurrent_calls,
            },
            capabilities: Capabilities {
                native_walk: Some(c.native_walk),
                redirect_methods: Some(c.redirect_methods.iter().map(|m| m.to_ascii_uppercase()).collect()),
                appends_to_committed: Some(c.appends_to_committed),
                max_object_size: c.max_object_size,
            },
            declared: true,
        }
    }
}

/// Runs `$body` with `$e` bound to the exports of whichever version the instance has.
macro_rules! each_version {
    ($exports:expr, $e:ident => $body:expr) => {
        match $exports {
            Exports::V0_1($e) => $body,
            Exports::V0_2($e) => $body,
        }
    };
}

/// One call of a `driver` resource method, its error converted.
macro_rules! driver_call {
    ($self:expr, $method:ident($store:expr, $($arg:expr),*)) => {
        each_version!($self, e => Ok(e.registry_storage_driver().driver().$method($store, $($arg),*).await?.map_err(GuestError::from)))
    };
}

/// One call of a reader, writer or walker method, its error converted.
macro_rules! resource_call {
    ($self:expr, $resource:ident, $method:ident($store:expr, $($arg:expr),*)) => {
        each_version!($self, e => Ok(e.registry_storage_driver().$resource().$method($store, $($arg),*).await?.map_err(GuestError::from)))
    };
}

type S<'a> = &'a mut Store<HostState>;

impl Pre {
    pub async fn instantiate(&self, store: S<'_>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Pre::V0_1(pre) => Exports::V0_1(pre.instantiate_async(store).await?),
            Pre::V0_2(pre) => Exports::V0_2(pre.instantiate_async(store).await?),
        })
    }
}

impl Exports {
    /// What the driver needs and can do for `params`; a 0.1.0 component declares nothing.
    pub async fn describe(&self, store: S<'_>, params: &str) -> Answer<Description> {
        match self {
            Exports::V0_1(_) => Ok(Ok(Description::undeclared())),
            Exports::V0_2(e) => {
                Ok(e.registry_storage_driver().call_describe(store, params).await?.map(Into::into).map_err(Into::into))
            }
        }
    }

    pub async fn open(&self, store: S<'_>, params: &str) -> Answer<ResourceAny> {
        driver_call!(self, call_open(store, params))
    }

    pub async fn name(&self, store: S<'_>, d: ResourceAny) -> wasmtime::Result<String> {
        each_version!(self, e => e.registry_storage_driver().driver().call_name(store, d).await)
    }

    pub async fn get_content(&self, store: S<'_>, d: ResourceAny, path: &str) -> Answer<Vec<u8>> {
        driver_call!(self, call_get_content(store, d, path))
    }

    pub async fn put_content(&self, store: S<'_>, d: ResourceAny, path: &str, content: &[u8]) -> Answer<()> {
        driver_call!(self, call_put_content(store, d, path, content))
    }

    pub async fn reader(&self, store: S<'_>, d: ResourceAny, path: &str, offset: i64) -> Answer<ResourceAny> {
        driver_call!(self, call_reader(store, d, path, offset))
    }

    pub async fn writer(&self, store: S<'_>, d: ResourceAny, path: &str, append: bool) -> Answer<ResourceAny> {
        driver_call!(self, call_writer(store, d, path, append))
    }

    pub async fn stat(&self, store: S<'_>, d: ResourceAny, path: &str) -> Answer<FileInfo> {
        each_version!(self, e => Ok(e
            .registry_storage_driver()
            .driver()
            .call_stat(store, d, path)
            .await?
            .map(FileInfo::from)
            .map_err(GuestError::from)))
    }

    pub async fn list(&self, store: S<'_>, d: ResourceAny, path: &str) -> Answer<Vec<String>> {
        driver_call!(self, call_list(store, d, path))
    }

    pub async fn move_file(&self, store: S<'_>, d: ResourceAny, source: &str, destination: &str) -> Answer<()> {
        driver_call!(self, call_move(store, d, source, destination))
    }

    pub async fn delete(&self, store: S<'_>, d: ResourceAny, path: &str) -> Answer<()> {
        driver_call!(self, call_delete(store, d, path))
    }

    pub async fn redirect_url(&self, store: S<'_>, d: ResourceAny, method: &str, path: &str) -> Answer<Option<String>> {
        driver_call!(self, call_redirect_url(store, d, method, path))
    }

    pub async fn walk(&self, store: S<'_>, d: ResourceAny, path: &str, after: Option<&str>) -> Answer<ResourceAny> {
        driver_call!(self, call_walk(store, d, path, after))
    }

    pub async fn read(&self, store: S<'_>, r: ResourceAny, len: u64) -> Answer<Vec<u8>> {
        resource_call!(self, file_reader, call_read(store, r, len))
    }

    pub async fn write(&self, store: S<'_>, w: ResourceAny, data: &[u8]) -> Answer<u64> {
        resource_call!(self, file_writer, call_write(store, w, data))
    }

    pub async fn size(&self, store: S<'_>, w: ResourceAny) -> wasmtime::Result<u64> {
        each_version!(self, e => e.registry_storage_driver().file_writer().call_size(store, w).await)
    }

    pub async fn close(&self, store: S<'_>, w: ResourceAny) -> Answer<()> {
        resource_call!(self, file_writer, call_close(store, w))
    }

    pub async fn commit(&self, store: S<'_>, w: ResourceAny) -> Answer<()> {
        resource_call!(self, file_writer, call_commit(store, w))
    }

    pub async fn cancel(&self, store: S<'_>, w: ResourceAny) -> Answer<()> {
        resource_call!(self, file_writer, call_cancel(store, w))
    }

    pub async fn next(&self, store: S<'_>, w: ResourceAny) -> Answer<Option<FileInfo>> {
        each_version!(self, e => Ok(e
            .registry_storage_driver()
            .walker()
            .call_next(store, w)
            .await?
            .map(|next| next.map(FileInfo::from))
            .map_err(GuestError::from)))
    }

    pub async fn skip_dir(&self, store: S<'_>, w: ResourceAny) -> wasmtime::Result<()> {
        each_version!(self, e => e.registry_storage_driver().walker().call_skip_dir(store, w).await)
    }
}
