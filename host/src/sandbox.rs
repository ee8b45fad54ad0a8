//! What one driver instance may do and use: the grants and limits an operator sets
//! ([`Sandbox`]), and the store state built from them ([`HostState`]). Deny by default: no
//! environment, no preopened directory, no sockets, no HTTP authority unless granted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Grants and limits for each instance of a driver.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Most linear memory one instance may have, in bytes.
    pub memory_limit: usize,
    /// Longest one call into the driver may run before it is stopped.
    pub call_deadline: Duration,
    /// Host directories the driver may use, each visible to it at the same path.
    pub dirs: Vec<PathBuf>,
    /// HTTP authorities (`host` or `host:port`) the driver may send requests to.
    pub hosts: Vec<String>,
    /// Environment variables handed to the driver on purpose.
    pub env: Vec<(String, String)>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            memory_limit: 256 << 20,
            call_deadline: Duration::from_secs(60),
            dirs: Vec::new(),
            hosts: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// How much of a guest's stderr is kept to explain a crash.
const STDERR_CAPTURE: usize = 64 << 10;

/// The state of one instance's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    gate: HttpGate,
    pub(crate) limits: StoreLimits,
    /// The guest's stderr, where a Rust guest's panic message lands.
    pub(crate) stderr: MemoryOutputPipe,
    /// When the running call must end.
    pub(crate) deadline: Option<Instant>,
}

impl HostState {
    pub(crate) fn new(sandbox: &Sandbox) -> Result<Self, String> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        for (key, value) in &sandbox.env {
            wasi.env(key, value);
        }
        for dir in &sandbox.dirs {
            let guest = dir.to_str().ok_or_else(|| format!("directory {} is not UTF-8", dir.display()))?;
            wasi.preopened_dir(dir, guest, FsPerms::ReadWrite)
                .map_err(|e| format!("cannot grant directory {}: {e}", dir.display()))?;
        }
        let limits = StoreLimitsBuilder::new().memory_size(sandbox.memory_limit).trap_on_grow_failure(true).build();
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            gate: HttpGate { hosts: Arc::new(sandbox.hosts.clone()) },
            limits,
            stderr,
            deadline: None,
        })
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

/// Lets a request leave only for a granted authority.
struct HttpGate {
    hosts: Arc<Vec<String>>,
}

impl HttpGate {
    fn allows(&self, uri: &http::Uri) -> bool {
        let Some(authority) = uri.authority() else { return false };
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        self.hosts.iter().any(|granted| {
            let granted = granted.to_ascii_lowercase();
            match granted.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => h == host && p.parse::<u16>() == Ok(port),
                _ => granted == host,
            }
        })
    }
}

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        drop(fut);
        if !self.allows(request.uri()) {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}
