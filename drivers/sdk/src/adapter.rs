//! Turns the SDK's traits into the generated WIT export traits.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::registry::storage::driver as wit;
use crate::{Driver, Error, FileInfo, FileReader, FileWriter, OffsetError, Params, Result, Walker};

/// The component type that [`crate::export_driver!`] exports for a driver `D`.
pub struct Component<D>(PhantomData<D>);

/// The `driver` resource: the user's driver.
pub struct DriverResource<D>(D);

/// The `file-reader` resource. Resources are called through `&self`; one instance runs one call
/// at a time, so a `RefCell` never sees contention.
pub struct ReaderResource(RefCell<Box<dyn FileReader>>);
pub struct WriterResource(RefCell<Box<dyn FileWriter>>);
pub struct WalkerResource(RefCell<Box<dyn Walker>>);

impl<D: Driver> wit::Guest for Component<D> {
    type Driver = DriverResource<D>;
    type FileReader = ReaderResource;
    type FileWriter = WriterResource;
    type Walker = WalkerResource;
}

impl<D: Driver> wit::GuestDriver for DriverResource<D> {
    fn open(parameters: String) -> Result<wit::Driver> {
        let params = Params::parse(&parameters)?;
        Ok(wit::Driver::new(DriverResource(D::open(params)?)))
    }

    fn name(&self) -> String {
        self.0.name()
    }

    fn get_content(&self, path: String) -> Result<Vec<u8>> {
        self.0.get_content(&path)
    }

    fn put_content(&self, path: String, content: Vec<u8>) -> Result<()> {
        self.0.put_content(&path, content)
    }

    fn reader(&self, path: String, offset: i64) -> Result<wit::FileReader> {
        let Ok(offset) = u64::try_from(offset) else {
            return Err(Error::InvalidOffset(OffsetError { path, offset }));
        };
        let reader = self.0.reader(&path, offset)?;
        Ok(wit::FileReader::new(ReaderResource(RefCell::new(reader))))
    }

    fn writer(&self, path: String, append: bool) -> Result<wit::FileWriter> {
        let writer = self.0.writer(&path, append)?;
        Ok(wit::FileWriter::new(WriterResource(RefCell::new(writer))))
    }

    fn stat(&self, path: String) -> Result<FileInfo> {
        self.0.stat(&path)
    }

    fn list(&self, path: String) -> Result<Vec<String>> {
        self.0.list(&path)
    }

    fn move_(&self, source: String, destination: String) -> Result<()> {
        self.0.move_file(&source, &destination)
    }

    fn delete(&self, path: String) -> Result<()> {
        self.0.delete(&path)
    }

    fn redirect_url(&self, method: String, path: String) -> Result<Option<String>> {
        self.0.redirect_url(&method, &path)
    }

    fn walk(&self, path: String, start_after: Option<String>) -> Result<wit::Walker> {
        let walker = self.0.walk(&path, start_after.as_deref())?;
        Ok(wit::Walker::new(WalkerResource(RefCell::new(walker))))
    }
}

impl wit::GuestFileReader for ReaderResource {
    fn read(&self, len: u64) -> Result<Vec<u8>> {
        // A guest cannot hold more than its address space; clamp instead of failing.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.0.borrow_mut().read(len)
    }
}

impl wit::GuestFileWriter for WriterResource {
    fn write(&self, data: Vec<u8>) -> Result<u64> {
        self.0.borrow_mut().write(data)
    }

    fn size(&self) -> u64 {
        self.0.borrow().size()
    }

    fn close(&self) -> Result<()> {
        self.0.borrow_mut().close()
    }

    fn commit(&self) -> Result<()> {
        self.0.borrow_mut().commit()
    }

    fn cancel(&self) -> Result<()> {
        self.0.borrow_mut().cancel()
    }
}

impl wit::GuestWalker for WalkerResource {
    fn next(&self) -> Result<Option<FileInfo>> {
        self.0.borrow_mut().next()
    }

    fn skip_dir(&self) {
        self.0.borrow_mut().skip_dir()
    }
}
