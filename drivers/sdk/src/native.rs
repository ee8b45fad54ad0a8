//! A driver compiled for the host instead of wasm, for benchmarks that measure what the
//! sandbox costs: the same [`Driver`] code, called directly instead of through the component
//! boundary. [`crate::export_driver!`] defines `native_driver()` for it on non-wasm targets.

use crate::{Description, Driver, Params, Result};

/// A driver type's constructors, as plain function pointers. Parameters arrive as the JSON
/// text a component receives, so they are parsed by the same code.
#[derive(Clone, Copy)]
pub struct Entry {
    pub describe: fn(&str) -> Result<Description>,
    pub open: fn(&str) -> Result<Box<dyn Driver>>,
}

impl Entry {
    pub fn of<D: Driver>() -> Entry {
        Entry {
            describe: |parameters| D::describe(&Params::parse(parameters)?),
            open: |parameters| Ok(Box::new(D::open(Params::parse(parameters)?)?)),
        }
    }
}
