//! How much content crosses between the host and a driver per call: the same for a component
//! and for a driver compiled natively, so that the two are measured doing the same work.

use crate::{Error, Result};

/// The most a reader asks a driver for per call.
pub const READ_CHUNK: usize = 1 << 20;
/// The most a writer hands a driver per call; larger writes are split.
pub const WRITE_CHUNK: usize = 4 << 20;

/// What a driver's writer accepted of `chunk` (at most [`WRITE_CHUNK`] bytes), checked: a
/// driver must accept a chunk whole, since the caller could not tell which bytes it kept.
pub fn accepted_whole(driver: &str, accepted: u64, chunk: &[u8]) -> Result<u64> {
    if accepted != chunk.len() as u64 {
        return Err(Error::other(driver, format!("the driver accepted {accepted} of {} bytes", chunk.len())));
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_must_be_accepted_whole() {
        assert_eq!(accepted_whole("d", 100, &[1; 100]).unwrap(), 100);
        let e = accepted_whole("d", 60, &[1; 100]).unwrap_err();
        assert!(e.to_string().contains("accepted 60 of 100 bytes"), "{e}");
    }
}
