//! A hostile driver for the sandbox tests. It is a valid driver component, but every
//! `get_content("/<attack>")` tries one attack on its host and returns what it stole; the
//! parameters `attack_on_describe` and `attack_on_open` make `describe` and `open` themselves
//! attack. It declares nothing: its tests grant explicitly. Other parameters name targets:
//! `dir` (a granted directory), `url` (an HTTP URL), `socket` (an `ip:port`), `env` (a variable).
//!
//! The host's tests drive it through the public API and check that every attack fails, with a
//! clear error, while the host and its other drivers go on working.

use std::hint::black_box;

use regstore_sdk::{Description, Driver, Error, FileInfo, FileReader, FileWriter, Params, Result};
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

/// How many lines `get_content("/chatter")` and `stat("/chatter")` print to stderr.
const CHATTER_LINES: usize = 4000;

pub struct Hostile {
    params: Params,
}

fn target(params: &Params, key: &str) -> Result<String> {
    params.string(key)?.ok_or_else(|| Error::invalid_parameter(format!("the attack needs the {key} parameter")))
}

/// Reports what an attack obtained: success means the sandbox failed.
fn stolen(what: impl std::fmt::Debug) -> Result<Vec<u8>> {
    Ok(format!("stolen: {what:?}").into_bytes())
}

fn fs_error(e: std::io::Error) -> Error {
    Error::other(format!("filesystem refused: {e}"))
}

impl Hostile {
    fn attack(&self, name: &str) -> Result<Vec<u8>> {
        match name {
            "read-passwd" => std::fs::read("/etc/passwd").map_err(fs_error).and_then(stolen),
            "read-environ" => std::fs::read("/proc/self/environ").map_err(fs_error).and_then(stolen),
            "escape-dotdot" => escape_dotdot(),
            "escape-symlink" => {
                let dir = target(&self.params, "dir")?;
                std::fs::read(format!("{dir}/link")).map_err(fs_error).and_then(stolen)
            }
            "env" => {
                let key = target(&self.params, "env")?;
                match std::env::var(&key) {
                    Ok(v) => stolen(v),
                    Err(e) => Err(Error::other(format!("environment refused {key}: {e}"))),
                }
            }
            "socket" => {
                let addr = target(&self.params, "socket")?;
                std::net::TcpStream::connect(addr.as_str())
                    .map_err(|e| Error::other(format!("socket refused: {e}")))
                    .and_then(|s| stolen(s.peer_addr().ok()))
            }
            "http-direct" => http_get(&target(&self.params, "url")?).and_then(stolen),
            "http-redirect" => {
                // Ask a granted host, and follow where it sends us.
                let first = http_get(&target(&self.params, "url")?)?;
                let location = String::from_utf8_lossy(&first).to_string();
                http_get(&location).and_then(stolen)
            }
            "loop" => spin(),
            "grow-memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    black_box(&hoard);
                }
            }
            "stack-overflow" => Ok(vec![recurse(black_box(1)) as u8]),
            "panic" => panic!("hostile driver panicked on purpose"),
            "huge-list" => Ok(forged_list()),
            // Not an attack: far more output than a fixed capture buffer would hold.
            "chatter" => Ok(chatter()),
            // Not an attack: a heap that only grows, as a language runtime's can, 16 MiB a call.
            "leak" => Ok(leak()),
            other => Err(Error::not_found(format!("/{other}"))),
        }
    }
}

/// Keeps 16 MiB more for good, and says how much it holds.
fn leak() -> Vec<u8> {
    thread_local! {
        static HOARD: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let held = HOARD.with(|hoard| {
        let mut hoard = hoard.borrow_mut();
        hoard.push(vec![1u8; 16 << 20]);
        hoard.len() * 16
    });
    format!("holding {held} MiB").into_bytes()
}

/// Prints [`CHATTER_LINES`] lines to stderr.
fn chatter() -> Vec<u8> {
    for i in 0..CHATTER_LINES {
        eprintln!("chatter line {i} {}", "x".repeat(80));
    }
    format!("said {CHATTER_LINES} lines").into_bytes()
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(black_box(frame[3] + 1)) + frame[7]
}

/// A list that claims 3 GiB while the memory holds far less: the host must refuse to lift it,
/// not allocate it.
fn forged_list() -> Vec<u8> {
    let mut real = std::mem::ManuallyDrop::new(vec![0u8; 16]);
    // SAFETY: deliberately unsound; this value only ever crosses to the host, which must
    // bounds-check it against the guest's memory and trap.
    unsafe { Vec::from_raw_parts(real.as_mut_ptr(), 3 << 30, 3 << 30) }
}

/// `..` out of the one directory the host granted, through the raw descriptor API, so no
/// guest-side path normalisation can hide the attempt.
fn escape_dotdot() -> Result<Vec<u8>> {
    use wasip2::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let dirs = wasip2::filesystem::preopens::get_directories();
    let Some((dir, name)) = dirs.first() else {
        return Err(Error::other("no directory was granted to escape from"));
    };
    match dir.open_at(PathFlags::empty(), "../secret", OpenFlags::empty(), DescriptorFlags::READ) {
        Ok(_) => stolen(format!("opened {name}/../secret")),
        Err(e) => Err(Error::other(format!("filesystem refused ../secret from {name}: {e:?}"))),
    }
}

/// A GET through wasi:http; the body, or for a redirect its `location`.
fn http_get(url: &str) -> Result<Vec<u8>> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| Error::other(format!("bad url {url}")))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    let path = if path.is_empty() { "/" } else { path };
    request.set_scheme(Some(&scheme)).map_err(|()| Error::other("scheme"))?;
    request.set_authority(Some(authority)).map_err(|()| Error::other("authority"))?;
    request.set_path_with_query(Some(path)).map_err(|()| Error::other("path"))?;
    let refused = |e: &dyn std::fmt::Debug| Error::other(format!("http request to {url} refused: {e:?}"));
    let future = wasip2::http::outgoing_handler::handle(request, None).map_err(|e| refused(&e))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(refused(&e)),
        other => return Err(refused(&other.is_some())),
    };
    if (300..400).contains(&response.status()) {
        let location = response.headers().get("location");
        return Ok(location.into_iter().next().unwrap_or_default());
    }
    Ok(format!("status {}", response.status()).into_bytes())
}

/// The text of an error, without its kind.
fn detail(e: &Error) -> String {
    match e {
        Error::PathNotFound(d)
        | Error::InvalidPath(d)
        | Error::Unsupported(d)
        | Error::InvalidParameter(d)
        | Error::Other(d) => d.clone(),
        Error::InvalidOffset(o) => format!("{} at {}", o.path, o.offset),
    }
}

impl Driver for Hostile {
    fn describe(params: &Params) -> Result<Description> {
        let Some(attack) = params.string("attack_on_describe")? else { return Ok(Description::default()) };
        // Always an error, so the test sees what the attack got while describing, where the
        // instance must have nothing granted.
        let outcome = match (Hostile { params: params.clone() }).attack(&attack) {
            Ok(got) => String::from_utf8_lossy(&got).into_owned(),
            Err(e) => detail(&e),
        };
        Err(Error::other(format!("describe attacked with {attack}: {outcome}")))
    }

    fn open(params: Params) -> Result<Self> {
        let driver = Hostile { params };
        if let Some(attack) = driver.params.string("attack_on_open")? {
            driver.attack(&attack)?;
        }
        Ok(driver)
    }

    fn name(&self) -> String {
        "hostile".into()
    }

    fn get_content(&self, path: &str) -> Result<Vec<u8>> {
        self.attack(&path[1..])
    }

    fn put_content(&self, _: &str, _: Vec<u8>) -> Result<()> {
        Ok(())
    }

    fn reader(&self, path: &str, offset: u64) -> Result<Box<dyn FileReader>> {
        if path == "/leaky-stream" {
            return Ok(Box::new(LeakyStream { offset }));
        }
        Ok(Box::new(Endless))
    }

    fn writer(&self, _: &str, _: bool) -> Result<Box<dyn FileWriter>> {
        Err(Error::Unsupported("writer".into()))
    }

    fn stat(&self, path: &str) -> Result<FileInfo> {
        if path == "/chatter" {
            chatter();
        }
        Err(Error::not_found(path))
    }

    fn list(&self, path: &str) -> Result<Vec<String>> {
        if path == "/" { Ok(Vec::new()) } else { Err(Error::not_found(path)) }
    }

    fn move_file(&self, source: &str, _: &str) -> Result<()> {
        Err(Error::not_found(source))
    }

    fn delete(&self, path: &str) -> Result<()> {
        Err(Error::not_found(path))
    }
}

/// A reader that never ends, to check what becomes of readers when their instance dies.
struct Endless;

impl FileReader for Endless {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        Ok(vec![7u8; len.min(4096)])
    }
}

/// Not an attack: 256 MiB whose byte at offset `i` is `i % 251`, served by a reader that keeps a
/// copy of every chunk it returns, as componentize-py's runtime does.
struct LeakyStream {
    offset: u64,
}

const LEAKY_STREAM_SIZE: u64 = 256 << 20;

impl FileReader for LeakyStream {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        let end = (self.offset + len as u64).min(LEAKY_STREAM_SIZE);
        let chunk: Vec<u8> = (self.offset..end).map(|i| (i % 251) as u8).collect();
        self.offset = end;
        std::mem::forget(black_box(chunk.clone()));
        Ok(chunk)
    }
}

regstore_sdk::export_driver!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_declares_nothing_or_reports_its_attack() {
        assert_eq!(Hostile::describe(&Params::default()).unwrap(), Description::default());
        let params = Params::parse(r#"{"attack_on_describe":"no-such-attack"}"#).unwrap();
        let err = Hostile::describe(&params).unwrap_err();
        assert_eq!(err, Error::other("describe attacked with no-such-attack: /no-such-attack"));
    }
}
