//! One live driver instance: its store, the guest's `driver` resource, and recovery from traps.
//!
//! Calls are serialised on the store. A trap (panic, memory limit, deadline) or an abandoned call
//! discards the store; the next call instantiates and opens the driver afresh, and resources of
//! the lost instance (readers, writers, walkers) fail with a clear error. A driver that keeps
//! crashing is not restarted forever.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceAny;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::component::DriverComponent;
use crate::describe::Description;
use crate::engine::Runtime;
use crate::guest::Exports;
use crate::sandbox::{Grants, HostState};
use regstore_api::Error;

/// Crashes within [`CRASH_WINDOW`] after which an instance is no longer restarted.
const CRASH_LIMIT: usize = 3;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How far a stateless driver's linear memory may grow past what it held once opened before
/// the instance is replaced between calls. Wasm memory never shrinks: a big PutContent, or a
/// language runtime whose heap creeps up call after call, would otherwise keep the high-water
/// mark for good, and in the end meet the limit.
const RECYCLE_GROWTH: usize = 64 << 20;
/// How long past its deadline the host waits for a call that is stuck outside wasm (in a host
/// call such as an HTTP request) before it abandons it.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);

/// A store with an opened driver in it.
pub(crate) struct Live {
    pub store: Store<HostState>,
    pub exports: Exports,
    pub driver: ResourceAny,
    generation: u64,
    /// Linear memory once the driver was opened: what the instance needs to exist.
    baseline: usize,
    /// Set while a call runs; still set at the next call means the last one was abandoned
    /// half-way (its future dropped), and the guest's state cannot be trusted.
    in_call: bool,
}

/// A guest resource handed out to the host API (reader, writer or walker), tied to the
/// instance, and the generation of it, that made it.
#[derive(Clone)]
pub(crate) struct Handle {
    pub instance: Arc<Instance>,
    pub resource: ResourceAny,
    generation: u64,
}

pub(crate) struct Instance {
    runtime: Arc<Runtime>,
    component: Arc<DriverComponent>,
    grants: Grants,
    params: String,
    /// The name errors carry: the registration name until the driver has told its own.
    label: String,
    live: tokio::sync::Mutex<Option<Live>>,
    generation: AtomicU64,
    /// Resources dropped by the host API (generation, resource), released before the next call.
    orphans: Mutex<Vec<(u64, ResourceAny)>>,
    crashes: Mutex<VecDeque<Instant>>,
    /// Calls running or waiting on this instance, for the pool's choice.
    busy: AtomicUsize,
    /// Readers, writers and walkers handed out and not yet dropped.
    handles: AtomicUsize,
    /// The live instance's linear memory after its last call, and once opened.
    memory: AtomicUsize,
    baseline: AtomicUsize,
}

impl Instance {
    /// Instantiates the component and opens the driver; returns the instance and the driver's
    /// `Name()`.
    pub async fn start(
        runtime: Arc<Runtime>,
        component: Arc<DriverComponent>,
        grants: Grants,
        params: String,
        label: String,
    ) -> Result<(Arc<Instance>, String), Error> {
        let mut instance = Instance {
            runtime,
            component,
            grants,
            params,
            label,
            live: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            orphans: Mutex::new(Vec::new()),
            crashes: Mutex::new(VecDeque::new()),
            busy: AtomicUsize::new(0),
            handles: AtomicUsize::new(0),
            memory: AtomicUsize::new(0),
            baseline: AtomicUsize::new(0),
        };
        let name = {
            let mut session = instance.enter().await?;
            let timeout = session.timeout();
            let live = session.live();
            let outcome = bounded(timeout, live.exports.name(&mut live.store, live.driver)).await;
            session.finish(outcome)?
        };
        instance.label = name.clone();
        Ok((Arc::new(instance), name))
    }

    /// Starts a call: locks the instance, makes it live if needed, releases orphaned resources
    /// and arms the deadline. Run the call on [`Session::live`] within [`Session::timeout`], then
    /// hand its outcome to [`Session::finish`].
    pub async fn enter(&self) -> Result<Session<'_>, Error> {
        let busy = Busy::new(&self.busy);
        let mut slot = self.live.lock().await;
        if slot.as_ref().is_some_and(|live| live.in_call || self.should_recycle(live)) {
            self.discard(&mut slot);
        }
        if slot.is_none() {
            *slot = Some(self.instantiate().await?);
        }
        let live = slot.as_mut().expect("instantiated above");
        self.release_orphans(live).await;
        live.in_call = true;
        live.store.data_mut().deadline = Some(Instant::now() + self.grants.call_deadline);
        live.store.set_epoch_deadline(1);
        Ok(Session { instance: self, slot, _busy: busy })
    }

    /// Another instance of the same driver, for a pool.
    pub async fn sibling(&self) -> Result<Arc<Instance>, Error> {
        let (instance, _) = Instance::start(
            self.runtime.clone(),
            self.component.clone(),
            self.grants.clone(),
            self.params.clone(),
            self.label.clone(),
        )
        .await?;
        Ok(instance)
    }

    /// Calls running or waiting on this instance.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// The most instances a driver may run at once.
    pub fn max_instances(&self) -> usize {
        self.grants.instances.max(1)
    }

    /// Starts a call on a resource of this instance, failing if the instance that made it is gone.
    pub async fn enter_with(&self, handle: &Handle) -> Result<Session<'_>, Error> {
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

    /// The instance of a driver that keeps no state in memory is replaced before a call once its
    /// memory has grown [`RECYCLE_GROWTH`] past its baseline, or past half its limit, and no
    /// reader, writer or walker needs it: its memory goes back to the system, and the next
    /// call starts with the whole limit to use.
    fn should_recycle(&self, live: &Live) -> bool {
        self.outgrows(live.store.data().limits.memory, live.baseline) && self.handles.load(Ordering::SeqCst) == 0
    }

    fn outgrows(&self, memory: usize, baseline: usize) -> bool {
        !self.grants.keeps_state
            && (memory > baseline.saturating_add(RECYCLE_GROWTH) || memory > self.grants.memory_limit / 2)
    }

    /// Whether this instance has grown enough to be replaced, as of its last call: a reader
    /// open on it then moves to another instance (see `WasmReader`), so that it can be.
    pub fn outgrown(&self) -> bool {
        self.outgrows(self.memory.load(Ordering::SeqCst), self.baseline.load(Ordering::SeqCst))
    }

    fn discard(&self, slot: &mut Option<Live>) {
        *slot = None;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts the resource a call is about to make (a reader, writer or walker) as a handle
    /// from before the call, so that no other call can replace the instance between the call's
    /// end and the handle's making. Take it after `enter`, while the session holds the
    /// instance; dropped unused (the call failed), it counts for nothing again.
    pub fn reserve(self: &Arc<Self>) -> Reservation {
        self.handles.fetch_add(1, Ordering::SeqCst);
        Reservation { instance: Some(self.clone()), generation: self.generation.load(Ordering::SeqCst) }
    }

    /// Queues a dropped resource for release before the next call (`Drop` cannot await).
    pub fn orphan(&self, handle: &Handle) {
        self.handles.fetch_sub(1, Ordering::SeqCst);
        if handle.generation == self.generation.load(Ordering::SeqCst) {
            self.orphans.lock().unwrap().push((handle.generation, handle.resource));
        }
    }

    async fn release_orphans(&self, live: &mut Live) {
        let orphans = std::mem::take(&mut *self.orphans.lock().unwrap());
        for (_, resource) in orphans.into_iter().filter(|(generation, _)| *generation == live.generation) {
            // A failing drop (the guest trapping in a destructor) poisons nothing we still use.
            let _ = resource.resource_drop_async(&mut live.store).await;
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
        let mut store =
            new_store(&self.runtime, &self.grants, &self.label).map_err(|e| Error::other(&self.label, e))?;
        let deadline = self.grants.call_deadline;
        store.data_mut().deadline = Some(Instant::now() + deadline);
        store.set_epoch_deadline(1);
        let opened = tokio::time::timeout(deadline + DEADLINE_GRACE, async {
            let exports = self.component.pre.instantiate(&mut store).await?;
            let driver = exports.open(&mut store, &self.params).await?;
            wasmtime::Result::Ok((exports, driver))
        })
        .await;
        let (exports, driver) = match opened {
            Ok(Ok((exports, Ok(driver)))) => (exports, driver),
            Ok(Ok((_, Err(e)))) => return Err(e.into_error(&self.label)),
            Ok(Err(trap)) => {
                let detail = format!("while opening: {}", trap_message(&trap, &store));
                self.crashes.lock().unwrap().push_back(Instant::now());
                return Err(fail(detail));
            }
            Err(_) => return Err(fail(format!("opening did not finish within its deadline of {deadline:?}"))),
        };
        store.data_mut().deadline = None;
        let baseline = store.data().limits.memory;
        self.baseline.store(baseline, Ordering::SeqCst);
        self.memory.store(baseline, Ordering::SeqCst);
        Ok(Live {
            store,
            exports,
            driver,
            generation: self.generation.load(Ordering::SeqCst),
            baseline,
            in_call: false,
        })
    }
}

/// A handle counted before its resource exists; see [`Instance::reserve`].
pub(crate) struct Reservation {
    instance: Option<Arc<Instance>>,
    generation: u64,
}

impl Reservation {
    /// The handle on the resource the call made.
    pub fn handle(mut self, resource: ResourceAny) -> Handle {
        let instance = self.instance.take().expect("a reservation is used once");
        Handle { instance, resource, generation: self.generation }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(instance) = &self.instance {
            instance.handles.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Counts a call on an instance from the moment it waits until it ends.
struct Busy<'i>(&'i AtomicUsize);

impl<'i> Busy<'i> {
    fn new(counter: &'i AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Busy(counter)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One call in progress on a live instance.
pub(crate) struct Session<'i> {
    instance: &'i Instance,
    slot: tokio::sync::MutexGuard<'i, Option<Live>>,
    _busy: Busy<'i>,
}

impl Session<'_> {
    pub fn live(&mut self) -> &mut Live {
        self.slot.as_mut().expect("a session always holds a live instance")
    }

    /// How long the host waits for the call: its deadline, and a grace period for a call stuck
    /// in a host function, where epoch interruption cannot reach it.
    pub fn timeout(&self) -> Duration {
        self.instance.grants.call_deadline + DEADLINE_GRACE
    }

    /// Ends the call: a trap or a timeout discards the instance and becomes a `Crashed` error.
    pub fn finish<T>(mut self, outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<T, Error> {
        let instance = self.instance;
        let live = self.live();
        live.in_call = false;
        live.store.data_mut().deadline = None;
        instance.memory.store(live.store.data().limits.memory, Ordering::SeqCst);
        let detail = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(trap)) => trap_message(&trap, &live.store),
            Err(_) => format!("the call did not return within its deadline of {:?}", instance.grants.call_deadline),
        };
        instance.discard(&mut self.slot);
        instance.crashes.lock().unwrap().push_back(Instant::now());
        Err(Error::Crashed { driver: instance.label.clone(), detail })
    }
}

/// Runs `call` for at most `limit`. Most calls finish in their first poll (a driver that
/// answers from memory or a local file): they never arm a timer, which would cost more than
/// the call. One that waits arms it then; a guest that computes is bounded meanwhile by its
/// epoch deadline, which yields every [`crate::engine::EPOCH_TICK`].
pub(crate) async fn bounded<F: Future>(limit: Duration, call: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut call = std::pin::pin!(call);
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(limit, call).await,
    }
}

/// A store for one instance under `grants`: its memory limit, its deadline checked at every
/// epoch tick (a busy guest yields to tokio at each), and as much host-call fuel as it may hold
/// memory (wasmtime's 128 MiB default would refuse a legitimate large GetContent).
pub(crate) fn new_store(runtime: &Runtime, grants: &Grants, label: &str) -> Result<Store<HostState>, String> {
    let mut store = Store::new(&runtime.engine, HostState::new(grants, label)?);
    store.limiter(|state| &mut state.limits);
    store.set_hostcall_fuel(grants.memory_limit);
    let deadline = grants.call_deadline;
    store.epoch_deadline_callback(move |ctx| match ctx.data().deadline {
        Some(at) if Instant::now() >= at => {
            Err(wasmtime::Error::msg(format!("the call ran past its deadline of {deadline:?}")))
        }
        _ => Ok(UpdateDeadline::Yield(1)),
    });
    Ok(store)
}

/// Asks the component what it needs and can do for `params`, in an instance of its own that
/// has nothing granted and is thrown away afterwards.
pub(crate) async fn describe(
    runtime: &Runtime,
    component: &DriverComponent,
    params: &str,
    label: &str,
    memory_limit: usize,
) -> Result<Description, Error> {
    let grants = Grants::nothing(memory_limit);
    let mut store = new_store(runtime, &grants, label).map_err(|e| Error::other(label, e))?;
    let deadline = grants.call_deadline;
    store.data_mut().deadline = Some(Instant::now() + deadline);
    store.set_epoch_deadline(1);
    let described = tokio::time::timeout(deadline + DEADLINE_GRACE, async {
        let exports = component.pre.instantiate(&mut store).await?;
        exports.describe(&mut store, params).await
    })
    .await;
    let crashed = |detail: String| Error::Crashed { driver: label.to_string(), detail };
    match described {
        Ok(Ok(Ok(description))) => Ok(description),
        Ok(Ok(Err(e))) => Err(e.into_error(label)),
        Ok(Err(trap)) => Err(crashed(format!("while describing itself: {}", trap_message(&trap, &store)))),
        Err(_) => Err(crashed(format!("describing itself did not finish within {deadline:?}"))),
    }
}

/// A trap's cause, with the end of what the guest wrote to stderr (a Rust panic message).
fn trap_message(trap: &wasmtime::Error, store: &Store<HostState>) -> String {
    let cause = match trap.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        Some(t) => t.to_string(),
        // A limit's or the deadline's own words, without the wasm backtrace around them.
        None => trap.root_cause().to_string().replace('\n', " "),
    };
    let tail = store.data().output.tail().join(" | ");
    if tail.is_empty() { cause } else { format!("{cause}; guest said: {tail}") }
}
