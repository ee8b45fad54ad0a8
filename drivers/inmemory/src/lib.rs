//! regstore's `inmemory` driver, exported against the current contract.

mod driver;

regstore_sdk::export_driver!(driver::InMemory);
