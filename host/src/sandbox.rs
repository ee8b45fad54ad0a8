//! What one driver instance may do and use: the grants and limits an operator sets
//! ([`Sandbox`]), what an instance really gets ([`Grants`]), and the store state built from
//! them ([`HostState`]). Deny by default: no environment, no preopened directory, no sockets,
//! no HTTP authority unless granted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::guest_output::GuestOutput;
use crate::http_client::{self, Timeouts, TlsTrust};

/// What the operator grants a driver, on top of what it declares. A bundled driver gets what
/// it declares anyway; a third-party one gets what it declares only where this allows it (or
/// everything, with `grant_requested`). Limits left at `None` come from the driver's
/// declaration.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Host directories the driver may read and write, each visible to it at the same path.
    pub dirs: Vec<PathBuf>,
    /// Host directories the driver may only read.
    pub read_only_dirs: Vec<PathBuf>,
    /// HTTP authorities (`host` or `host:port`) the driver may send requests to.
    pub hosts: Vec<String>,
    /// Environment variables of this process the driver may read, by name.
    pub env_names: Vec<String>,
    /// Environment variables handed to the driver with these values.
    pub env: Vec<(String, String)>,
    /// Most linear memory one instance may have, in bytes.
    pub memory_limit: Option<usize>,
    /// Longest one call into the driver may run before it is stopped.
    pub call_deadline: Option<Duration>,
    /// The most instances that serve one driver's calls at once. More than one only for a
    /// driver that keeps no state in its memory: the calls of one `Driver` are spread over
    /// them, and readers and writers stay where they were opened.
    pub instances: Option<usize>,
    /// Grant a third-party driver whatever it declares (the CLI's `--grant-requested`).
    pub grant_requested: bool,
    /// PEM files of CA certificates this driver's HTTPS requests trust, in addition to the
    /// usual roots (webpki's and the system's): an emulator's self-signed certificate, or a
    /// corporate CA. Scoped to the driver this sandbox is given to; a file that cannot be read
    /// or holds no certificate fails `create_with` (and `plan`'s grants) with an error of kind
    /// invalid-parameter naming it.
    pub ca_files: Vec<PathBuf>,
}

/// A directory made visible to a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// The path the driver opens it by.
    pub guest: String,
    pub writable: bool,
}

/// What one instance of a driver really gets: its declaration and the operator's grants,
/// reconciled (see [`crate::Registry::plan`]).
#[derive(Debug, Clone)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    pub hosts: Vec<String>,
    /// Variables and values; print only the names.
    pub env: Vec<(String, String)>,
    pub memory_limit: usize,
    pub call_deadline: Duration,
    pub instances: usize,
    /// The driver holds its content in memory: its instance is never replaced between calls.
    pub keeps_state: bool,
    pub max_concurrent_calls: Option<usize>,
    /// The certificates its HTTPS requests trust, resolved once for the driver.
    pub tls: TlsTrust,
}

impl Grants {
    /// Nothing at all: where `describe` runs.
    pub(crate) fn nothing(memory_limit: usize) -> Self {
        Grants {
            dirs: Vec::new(),
            hosts: Vec::new(),
            env: Vec::new(),
            memory_limit,
            call_deadline: Duration::from_secs(30),
            instances: 1,
            keeps_state: true,
            max_concurrent_calls: None,
            tls: TlsTrust::default(),
        }
    }
}

/// How much of a guest's stderr is kept to explain a crash.
/// The state of one instance's store.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    http: WasiHttpCtx,
    gate: HttpGate,
    pub(crate) limits: Limits,
    /// The guest's stderr (where a Rust guest's panic message lands) and stdout, as log lines.
    pub(crate) output: GuestOutput,
    /// When the running call must end.
    pub(crate) deadline: Option<Instant>,
}

impl HostState {
    /// The state of an instance of the driver `label`.
    pub(crate) fn new(grants: &Grants, label: &str) -> Result<Self, String> {
        let (stderr, stdout) = GuestOutput::pair(label);
        let mut wasi = WasiCtxBuilder::new();
        // A driver's filesystem calls run on the thread that runs the guest instead of hopping to
        // tokio's blocking pool: each hop costs more than the small call itself, and the guest's
        // call is already running apart from the caller's tasks. Must precede the preopens,
        // which capture it.
        wasi.allow_blocking_current_thread(true);
        wasi.stderr(stderr.clone()).stdout(stdout);
        for (key, value) in &grants.env {
            wasi.env(key, value);
        }
        for dir in &grants.dirs {
            let perms = if dir.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| format!("cannot grant directory {}: {e}", dir.host.display()))?;
        }
        let limits = Limits {
            inner: StoreLimitsBuilder::new().memory_size(grants.memory_limit).trap_on_grow_failure(true).build(),
            memory: 0,
            limit: grants.memory_limit,
        };
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            gate: HttpGate { hosts: Arc::new(grants.hosts.clone()), tls: grants.tls.clone() },
            limits,
            output: stderr,
            deadline: None,
        })
    }
}

/// The store's limits, remembering how large the guest's memory has grown.
pub(crate) struct Limits {
    inner: StoreLimits,
    /// Bytes of linear memory the guest holds.
    pub memory: usize,
    /// The most it may hold.
    limit: usize,
}

/// The words of a trap at the memory limit; `regstore conformance` looks for them to suggest
/// `--memory-limit`.
pub const MEMORY_LIMIT_TRAP: &str = "the driver's memory reached its limit";

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum).map_err(|_| {
            wasmtime::Error::msg(format!(
                "{MEMORY_LIMIT_TRAP} of {} MiB (it asked for {} MiB; raise the limit with --memory-limit \
                 or Sandbox::memory_limit)",
                self.limit >> 20,
                desired.div_ceil(1 << 20)
            ))
        })?;
        if allowed {
            self.memory = self.memory.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.gate }
    }
}

/// Lets a request leave only for a granted authority, and only to an address fit for it; then
/// sends it with the host's client, trusting what the driver's TLS trust holds.
struct HttpGate {
    hosts: Arc<Vec<String>>,
    tls: TlsTrust,
}

impl HttpGate {
    /// The grant that covers `uri`, if any.
    fn grant_for(&self, uri: &http::Uri) -> Option<String> {
        let authority = uri.authority()?;
        let port = authority.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let host = authority.host();
        self.hosts.iter().find(|granted| authority_covers(granted, host, Some(port))).map(|g| split_authority(g).0)
    }
}

/// `host` or `host:port` (IPv6 in brackets), lower-cased, brackets dropped.
pub(crate) fn split_authority(authority: &str) -> (String, Option<u16>) {
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')) => {
            (h.to_string(), p.parse::<u16>().ok())
        }
        _ => (authority.clone(), None),
    };
    (host.trim_start_matches('[').trim_end_matches(']').to_string(), port)
}

/// Whether the grant `granted` covers `host` on `port` (`None`: any port the grant allows,
/// which must then allow every port).
pub(crate) fn authority_covers(granted: &str, host: &str, port: Option<u16>) -> bool {
    let (g_host, g_port) = split_authority(granted);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    g_host == host && (g_port.is_none() || g_port == port)
}

/// Addresses a driver may reach only when its grant names them outright: loopback, link-local
/// (which holds the cloud metadata service, 169.254.169.254), unspecified.
pub(crate) fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unicast_link_local()
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(v4.into()))
        }
    }
}

/// Whether a grant names an internal address outright (an address literal, or `localhost`).
fn grant_is_internal(granted_host: &str) -> bool {
    granted_host == "localhost" || granted_host.parse::<std::net::IpAddr>().is_ok_and(is_internal)
}

type ResponseFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let denied = || -> ResponseFuture { Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) }) };
        // Checked here, before anything leaves; a redirect is a new request and comes here too.
        let Some(granted_host) = self.grant_for(request.uri()) else { return denied() };
        let host = request.uri().host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port =
            request.uri().port_u16().unwrap_or(if request.uri().scheme_str() == Some("https") { 443 } else { 80 });
        let tls = self.tls.clone();
        let timeouts = Timeouts::from(options);
        Box::new(async move {
            // Resolved once: the addresses checked here are the ones connected to.
            let addrs = http_client::resolve(&host, port, timeouts.connect).await?;
            // A granted name must not lead to an internal address it does not name itself.
            if host.parse::<std::net::IpAddr>().is_err()
                && !grant_is_internal(&granted_host)
                && addrs.iter().any(|a| is_internal(a.ip()))
            {
                return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
            }
            let (res, io) = http_client::send(request, timeouts, &addrs, &tls).await?;
            Ok((res, io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(hosts: &[&str]) -> HttpGate {
        HttpGate { hosts: Arc::new(hosts.iter().map(|h| h.to_string()).collect()), tls: TlsTrust::default() }
    }

    #[test]
    fn grants_match_host_and_port() {
        let g = gate(&["s3.example.com", "127.0.0.1:9000"]);
        assert!(g.grant_for(&"https://s3.example.com/b/k".parse().unwrap()).is_some());
        assert!(g.grant_for(&"http://S3.EXAMPLE.COM:8080/".parse().unwrap()).is_some());
        assert!(g.grant_for(&"http://127.0.0.1:9000/".parse().unwrap()).is_some());
        assert!(g.grant_for(&"http://127.0.0.1:9001/".parse().unwrap()).is_none());
        assert!(g.grant_for(&"http://s3.example.com.evil.org/".parse().unwrap()).is_none());
        assert!(g.grant_for(&"http://169.254.169.254/latest/meta-data".parse().unwrap()).is_none());
    }

    #[test]
    fn internal_addresses() {
        for ip in ["127.0.0.1", "169.254.169.254", "0.0.0.0", "::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "52.216.0.1", "2600::1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        assert!(grant_is_internal("127.0.0.1") && grant_is_internal("localhost"));
        assert!(!grant_is_internal("s3.amazonaws.com"));
    }
}
