//! What exists once per process: the wasmtime `Engine`, the `Linker` with what drivers may
//! import, and the epoch ticker that bounds how long a guest runs without yielding.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::sandbox::HostState;

/// How often the epoch advances: a running guest yields to tokio at least this often, and call
/// deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine and linker shared by every driver in the process.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

impl Runtime {
    /// The process's runtime, made on first use.
    pub fn global() -> Arc<Runtime> {
        static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
        RUNTIME.get_or_init(|| Arc::new(Runtime::new().expect("wasmtime engine configuration is valid"))).clone()
    }

    fn new() -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Guest stacks are bounded; a runaway recursion traps instead of taking the host down.
        config.max_wasm_stack(1 << 20);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        // WASI 0.2; the store's WasiCtx decides what each instance really gets (no preopen, no
        // environment, no sockets unless granted).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        #[cfg(unix)]
        crate::readdir::add_to_linker(&mut linker)?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("regstore-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawn the epoch ticker");
        Ok(Runtime { engine, linker })
    }
}
