//! Moving content into a driver and between drivers, whatever the driver: a put that leaves
//! the path with the old content or the new, whole ([`stage`] then [`Staged::publish`]), and
//! a tree copy that verifies blob digests and resumes where an earlier run stopped
//! ([`copy_tree`]).

mod copy;
mod digest;
mod stage;

pub use copy::{CopyOptions, Outcome, Progress, Summary, copy_tree};
pub use digest::{HashingReader, blob_digest};
pub use stage::{STAGING_DIR, StageError, Staged, WHOLE_PUT_MAX, stage};
