//! A component that claims `registry:storage@0.2.0` but whose `file-writer.size` returns u32,
//! built from the modified copy of the contract in `wit/` (a test fixture): the host must refuse
//! it at load time. Nothing here is meant to run; every call fails.

wit_bindgen::generate!({
    path: "wit",
    world: "storage-driver",
});

use exports::registry::storage::driver::{
    Driver, FileReader, FileWriter, Guest, GuestDriver, GuestFileReader, GuestFileWriter, GuestWalker, Walker,
};
use exports::registry::storage::types::{Description, Error, FileInfo};

const REFUSED: &str = "mismatched: a test fixture that no host should load";

fn refused<T>() -> Result<T, Error> {
    Err(Error::Other(REFUSED.into()))
}

struct Mismatched;

impl Guest for Mismatched {
    type Driver = Mismatched;
    type FileReader = Mismatched;
    type FileWriter = Mismatched;
    type Walker = Mismatched;

    fn describe(_: String) -> Result<Description, Error> {
        refused()
    }
}

impl GuestDriver for Mismatched {
    fn open(_: String) -> Result<Driver, Error> {
        refused()
    }

    fn name(&self) -> String {
        "mismatched".into()
    }

    fn get_content(&self, _: String) -> Result<Vec<u8>, Error> {
        refused()
    }

    fn put_content(&self, _: String, _: Vec<u8>) -> Result<(), Error> {
        refused()
    }

    fn reader(&self, _: String, _: i64) -> Result<FileReader, Error> {
        refused()
    }

    fn writer(&self, _: String, _: bool) -> Result<FileWriter, Error> {
        refused()
    }

    fn stat(&self, _: String) -> Result<FileInfo, Error> {
        refused()
    }

    fn list(&self, _: String) -> Result<Vec<String>, Error> {
        refused()
    }

    fn move_(&self, _: String, _: String) -> Result<(), Error> {
        refused()
    }

    fn delete(&self, _: String) -> Result<(), Error> {
        refused()
    }

    fn redirect_url(&self, _: String, _: String) -> Result<Option<String>, Error> {
        refused()
    }

    fn walk(&self, _: String, _: Option<String>) -> Result<Walker, Error> {
        refused()
    }
}

impl GuestFileReader for Mismatched {
    fn read(&self, _: u64) -> Result<Vec<u8>, Error> {
        refused()
    }
}

impl GuestFileWriter for Mismatched {
    fn write(&self, _: Vec<u8>) -> Result<u64, Error> {
        refused()
    }

    // The one difference from the real contract: u32, not u64.
    fn size(&self) -> u32 {
        0
    }

    fn close(&self) -> Result<(), Error> {
        refused()
    }

    fn commit(&self) -> Result<(), Error> {
        refused()
    }

    fn cancel(&self) -> Result<(), Error> {
        refused()
    }
}

impl GuestWalker for Mismatched {
    fn next(&self) -> Result<Option<FileInfo>, Error> {
        refused()
    }

    fn skip_dir(&self) {}
}

export!(Mismatched);
