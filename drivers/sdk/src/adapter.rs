//! Turns the SDK's traits into the generated WIT export traits, for each contract version the
//! SDK exports. The SDK's types are the current contract's; results pass to an older contract's
//! types through `From` (`?` and `.into()`, the identity for the current one).

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings_v0_1::exports::registry::storage::types as v0_1;
use crate::{Driver, Error, FileInfo, FileReader, FileWriter, OffsetError, Params, Walker};

/// The component type that [`crate::export_driver!`] exports for a driver `D`.
pub struct Component<D>(PhantomData<D>);

/// The `driver` resource: the user's driver.
pub struct DriverResource<D>(D);

/// The `file-reader` resource. Resources are called through `&self`; one instance runs one call
/// at a time, so a `RefCell` never sees contention.
pub struct ReaderResource(RefCell<Box<dyn FileReader>>);
pub struct WriterResource(RefCell<Box<dyn FileWriter>>);
pub struct WalkerResource(RefCell<Box<dyn Walker>>);

/// Implements one contract version's export traits in module `$module`, for the bindings in
/// `crate::$bindings`; `describe` is given for versions whose `driver` interface has it.
macro_rules! adapter {
    ($module:ident, $bindings:ident $(, $describe:ident)?) => {
        // `Ok(x?)` converts the error for an older version; for the current one it is the identity.
        #[allow(clippy::needless_question_mark)]
        mod $module {
            use super::*;
            use crate::$bindings::exports::registry::storage::driver as wit;
            use crate::$bindings::exports::registry::storage::types;

            type Answer<T> = std::result::Result<T, types::Error>;

            impl<D: Driver> wit::Guest for Component<D> {
                type Driver = DriverResource<D>;
                type FileReader = ReaderResource;
                type FileWriter = WriterResource;
                type Walker = WalkerResource;

                $(
                    fn $describe(parameters: String) -> Answer<types::Description> {
                        Ok(D::describe(&Params::parse(&parameters)?)?.into())
                    }
                )?
            }

            impl<D: Driver> wit::GuestDriver for DriverResource<D> {
                fn open(parameters: String) -> Answer<wit::Driver> {
                    let params = Params::parse(&parameters)?;
                    Ok(wit::Driver::new(DriverResource(D::open(params)?)))
                }

                fn name(&self) -> String {
                    self.0.name()
                }

                fn get_content(&self, path: String) -> Answer<Vec<u8>> {
                    Ok(self.0.get_content(&path)?)
                }

                fn put_content(&self, path: String, content: Vec<u8>) -> Answer<()> {
                    Ok(self.0.put_content(&path, content)?)
                }

                fn reader(&self, path: String, offset: i64) -> Answer<wit::FileReader> {
                    let Ok(offset) = u64::try_from(offset) else {
                        return Err(Error::InvalidOffset(OffsetError { path, offset }).into());
                    };
                    let reader = self.0.reader(&path, offset)?;
                    Ok(wit::FileReader::new(ReaderResource(RefCell::new(reader))))
                }

                fn writer(&self, path: String, append: bool) -> Answer<wit::FileWriter> {
                    let writer = self.0.writer(&path, append)?;
                    Ok(wit::FileWriter::new(WriterResource(RefCell::new(writer))))
                }

                fn stat(&self, path: String) -> Answer<types::FileInfo> {
                    Ok(self.0.stat(&path)?.into())
                }

                fn list(&self, path: String) -> Answer<Vec<String>> {
                    Ok(self.0.list(&path)?)
                }

                fn move_(&self, source: String, destination: String) -> Answer<()> {
                    Ok(self.0.move_file(&source, &destination)?)
                }

                fn delete(&self, path: String) -> Answer<()> {
                    Ok(self.0.delete(&path)?)
                }

                fn redirect_url(&self, method: String, path: String) -> Answer<Option<String>> {
                    Ok(self.0.redirect_url(&method, &path)?)
                }

                fn walk(&self, path: String, start_after: Option<String>) -> Answer<wit::Walker> {
                    let walker = self.0.walk(&path, start_after.as_deref())?;
                    Ok(wit::Walker::new(WalkerResource(RefCell::new(walker))))
                }
            }

            impl wit::GuestFileReader for ReaderResource {
                fn read(&self, len: u64) -> Answer<Vec<u8>> {
                    // A guest cannot hold more than its address space; clamp instead of failing.
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    Ok(self.0.borrow_mut().read(len)?)
                }
            }

            impl wit::GuestFileWriter for WriterResource {
                fn write(&self, data: Vec<u8>) -> Answer<u64> {
                    Ok(self.0.borrow_mut().write(data)?)
                }

                fn size(&self) -> u64 {
                    self.0.borrow().size()
                }

                fn close(&self) -> Answer<()> {
                    Ok(self.0.borrow_mut().close()?)
                }

                fn commit(&self) -> Answer<()> {
                    Ok(self.0.borrow_mut().commit()?)
                }

                fn cancel(&self) -> Answer<()> {
                    Ok(self.0.borrow_mut().cancel()?)
                }
            }

            impl wit::GuestWalker for WalkerResource {
                fn next(&self) -> Answer<Option<types::FileInfo>> {
                    Ok(self.0.borrow_mut().next()?.map(Into::into))
                }

                fn skip_dir(&self) {
                    self.0.borrow_mut().skip_dir()
                }
            }
        }
    };
}

adapter!(current, bindings, describe);
adapter!(previous, bindings_v0_1);

impl From<Error> for v0_1::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::PathNotFound(p) => v0_1::Error::PathNotFound(p),
            Error::InvalidPath(p) => v0_1::Error::InvalidPath(p),
            Error::InvalidOffset(OffsetError { path, offset }) => {
                v0_1::Error::InvalidOffset(v0_1::OffsetError { path, offset })
            }
            Error::Unsupported(m) => v0_1::Error::Unsupported(m),
            Error::InvalidParameter(d) => v0_1::Error::InvalidParameter(d),
            Error::Other(d) => v0_1::Error::Other(d),
        }
    }
}

impl From<FileInfo> for v0_1::FileInfo {
    fn from(FileInfo { path, size, modified_ns, is_dir }: FileInfo) -> Self {
        v0_1::FileInfo { path, size, modified_ns, is_dir }
    }
}
