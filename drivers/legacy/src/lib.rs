//! The inmemory driver, exported against the previous contract (`registry:storage@0.1.0`, no
//! `describe`), so that the host's tests check it still loads and runs such components. The
//! driver's source is inmemory's own, not a copy.

#[path = "../../inmemory/src/driver.rs"]
mod driver;

regstore_sdk::export_driver_v0_1!(driver::InMemory);
