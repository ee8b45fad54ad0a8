//! One live driver instance: its store, the guest's `driver` resource, and recovery from traps.
//!
//! Calls are serialised on the store. A trap (panic, memory limit, deadline) or an abandoned call
//! discards the store; the next call instantiates and opens the driver afresh, and resources of
//! the lost instance (readers, writers, walkers) fail with a clear error. A driver that keeps
//! crashing is not restarted forever.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::base::from_wit;
use crate::bindings::StorageDriver;
use crate::component::{DriverComponent, one_line};
use crate::engine::Runtime;
use crate::sandbox::{HostState, Sandbox};
use regstore_api::Error;

/// Crashes within [`CRASH_WINDOW`] after which an instance is no longer restarted.
const CRASH_LIMIT: usize = 3;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long past its deadline the host waits for a call that is stuck outside wasm (in a host
/// call such as an HTTP request) before it abandons it.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// A store with an opened driver in it.
pub(crate) struct Live {
    pub store: Store<HostState>,
    pub exports: StorageDriver,
    pub driver: ResourceAny,
    generation: u64,
    /// Set while a call runs; still set at the next call means the last one was abandoned
    /// half-way (its future dropped), and the guest's state cannot be trusted.
    in_call: bool,
}

/// A guest resource handed out to the host API (reader, writer or walker), tied to the instance
/// generation that made it.
#[derive(Clone, Copy)]
pub(crate) struct Handle {
    pub resource: ResourceAny,
    pub generation: u64,
}

pub(crate) struct Instance {
    runtime: Arc<Runtime>,
    component: Arc<DriverComponent>,
    sandbox: Sandbox,
    params: String,
    /// The name errors carry: the registration name until the driver has told its own.
    label: String,
    live: tokio::sync::Mutex<Option<Live>>,
    generation: AtomicU64,
    /// Resources dropped by the host API, released before the next call.
    orphans: Mutex<Vec<Handle>>,
    crashes: Mutex<VecDeque<Instant>>,
}

impl Instance {
    /// Instantiates the component and opens the driver; returns the instance and the driver's
    /// `Name()`.
    pub async fn start(
        runtime: Arc<Runtime>,
        component: Arc<DriverComponent>,
        sandbox: Sandbox,
        params: String,
        label: String,
    ) -> Result<(Arc<Instance>, String), Error> {
        let mut instance = Instance {
            runtime,
            component,
            sandbox,
            params,
            label,
            live: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            orphans: Mutex::new(Vec::new()),
            crashes: Mutex::new(VecDeque::new()),
        };
        let name = {
            let mut session = instance.enter().await?;
            let timeout = session.timeout();
            let live = session.live();
            let exports = live.exports.registry_storage_driver();
            let driver = exports.driver();
            let outcome = tokio::time::timeout(timeout, driver.call_name(&mut live.store, live.driver)).await;
            session.finish(outcome)?
        };
        instance.label = name.clone();
        Ok((Arc::new(instance), name))
    }

    /// Starts a call: locks the instance, makes it live if needed, releases orphaned resources
    /// and arms the deadline. Run the call on [`Session::live`] within [`Session::timeout`], then
    /// hand its outcome to [`Session::finish`].
    pub async fn enter(&self) -> Result<Session<'_>, Error> {
        let mut slot = self.live.lock().await;
        if slot.as_ref().is_some_and(|live| live.in_call) {
            self.discard(&mut slot);
        }
        if slot.is_none() {
            *slot = Some(self.instantiate().await?);
        }
        let live = slot.as_mut().expect("instantiated above");
        self.release_orphans(live).await;
        live.in_call = true;
        live.store.data_mut().deadline = Some(Instant::now() + self.sandbox.call_deadline);
        live.store.set_epoch_deadline(1);
        Ok(Session { instance: self, slot })
    }

    /// Starts a call on a resource of this instance, failing if the instance that made it is gone.
    pub async fn enter_with(&self, handle: Handle) -> Result<Session<'_>, Error> {
        let lost = || Error::Crashed {
            driver: self.label.clone(),
            detail: "the driver instance that opened this stream was lost; open it again".into(),
        };
        if self.generation.load(Ordering::SeqCst) != handle.generation {
            return Err(lost());
        }
        let mut session = self.enter().await?;
        if session.live().generation != handle.generation {
            session.live().in_call = false;
            return Err(lost());
        }
        Ok(session)
    }

    fn discard(&self, slot: &mut Option<Live>) {
        *slot = None;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The generation resources made now belong to.
    pub fn handle(&self, resource: ResourceAny) -> Handle {
        Handle { resource, generation: self.generation.load(Ordering::SeqCst) }
    }

    /// Queues a dropped resource for release before the next call (`Drop` cannot await).
    pub fn orphan(&self, handle: Handle) {
        if handle.generation == self.generation.load(Ordering::SeqCst) {
            self.orphans.lock().unwrap().push(handle);
        }
    }

    async fn release_orphans(&self, live: &mut Live) {
        let orphans = std::mem::take(&mut *self.orphans.lock().unwrap());
        for handle in orphans.into_iter().filter(|h| h.generation == live.generation) {
            // A failing drop (the guest trapping in a destructor) poisons nothing we still use.
            let _ = handle.resource.resource_drop_async(&mut live.store).await;
        }
    }

    async fn instantiate(&self) -> Result<Live, Error> {
        {
            let mut crashes = self.crashes.lock().unwrap();
            while crashes.front().is_some_and(|t| t.elapsed() > CRASH_WINDOW) {
                crashes.pop_front();
            }
            if crashes.len() >= CRASH_LIMIT {
                return Err(Error::Crashed {
                    driver: self.label.clone(),
                    detail: format!(
                        "the driver is failing: it crashed {} times within {}s and is not restarted until that calms down",
                        crashes.len(),
                        CRASH_WINDOW.as_secs()
                    ),
                });
            }
        }
        let fail = |detail: String| Error::Crashed { driver: self.label.clone(), detail };
        let state = HostState::new(&self.sandbox).map_err(|e| Error::other(&self.label, e))?;
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|state| &mut state.limits);
        let deadline = self.sandbox.call_deadline;
        store.epoch_deadline_callback(move |ctx| match ctx.data().deadline {
            Some(at) if Instant::now() >= at => {
                Err(wasmtime::Error::msg(format!("the call ran past its deadline of {deadline:?}")))
            }
            // Yield to tokio every tick so a busy guest never starves other tasks.
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        store.data_mut().deadline = Some(Instant::now() + deadline);
        store.set_epoch_deadline(1);
        let opened = tokio::time::timeout(deadline + DEADLINE_GRACE, async {
            let exports = self.component.pre.instantiate_async(&mut store).await?;
            let driver = exports.registry_storage_driver().driver().call_open(&mut store, &self.params).await?;
            wasmtime::Result::Ok((exports, driver))
        })
        .await;
        let (exports, driver) = match opened {
            Ok(Ok((exports, Ok(driver)))) => (exports, driver),
            Ok(Ok((_, Err(e)))) => return Err(from_wit(&self.label, e)),
            Ok(Err(trap)) => {
                let detail = format!("while opening: {}", trap_message(&trap, &store));
                self.crashes.lock().unwrap().push_back(Instant::now());
                return Err(fail(detail));
            }
            Err(_) => return Err(fail(format!("opening did not finish within its deadline of {deadline:?}"))),
        };
        store.data_mut().deadline = None;
        Ok(Live { store, exports, driver, generation: self.generation.load(Ordering::SeqCst), in_call: false })
    }
}

/// One call in progress on a live instance.
pub(crate) struct Session<'i> {
    instance: &'i Instance,
    slot: tokio::sync::MutexGuard<'i, Option<Live>>,
}

impl Session<'_> {
    pub fn live(&mut self) -> &mut Live {
        self.slot.as_mut().expect("a session always holds a live instance")
    }

    /// How long the host waits for the call: its deadline, and a grace period for a call stuck
    /// in a host function, where epoch interruption cannot reach it.
    pub fn timeout(&self) -> Duration {
        self.instance.sandbox.call_deadline + DEADLINE_GRACE
    }

    /// Ends the call: a trap or a timeout discards the instance and becomes a `Crashed` error.
    pub fn finish<T>(mut self, outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<T, Error> {
        let instance = self.instance;
        let live = self.live();
        live.in_call = false;
        live.store.data_mut().deadline = None;
        let detail = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(trap)) => trap_message(&trap, &live.store),
            Err(_) => format!("the call did not return within its deadline of {:?}", instance.sandbox.call_deadline),
        };
        instance.discard(&mut self.slot);
        instance.crashes.lock().unwrap().push_back(Instant::now());
        Err(Error::Crashed { driver: instance.label.clone(), detail })
    }
}

/// A trap's cause, with the end of what the guest wrote to stderr (a Rust panic message).
fn trap_message(trap: &wasmtime::Error, store: &Store<HostState>) -> String {
    let cause = match trap.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        Some(t) => t.to_string(),
        None => one_line(trap),
    };
    let stderr = store.data().stderr.contents();
    let stderr = String::from_utf8_lossy(&stderr);
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(4)..].join(" | ");
    if tail.is_empty() { cause } else { format!("{cause}; guest said: {tail}") }
}
