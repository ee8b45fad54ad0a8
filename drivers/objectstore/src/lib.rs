//! What regstore's cloud drivers (s3, azure, gcs) share on the guest side: a blocking HTTP
//! client over the host's `wasi:http` with connect, first-byte and idle timeouts ([`http`]),
//! retries with backoff and jitter that honour `Retry-After` ([`retry`]), object keys under a
//! root directory ([`keys`]), the flat-listing walk ([`flatwalk`], [`walk`]), a ranged reader
//! that resumes after a cut ([`reader`]), the write buffer of resumable writers ([`chunks`]),
//! XML answers ([`xml`]), and calendar conversions ([`time`]).

pub mod chunks;
pub mod flatwalk;
pub mod http;
pub mod keys;
pub mod reader;
pub mod retry;
pub mod time;
pub mod walk;
pub mod xml;

pub use http::{Client, Failure, Request, Response, Timeouts};
pub use retry::{Failed, Idempotence, Retry};
