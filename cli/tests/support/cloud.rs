//! What the test binaries of the cloud drivers share: an emulator started once, only when some
//! trial will run; the conformance suite with a fresh driver per test; the driver's own trials;
//! and the missing-emulator policy (`require_emulator`: fail, or ignore loudly outside CI).

use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use libtest_mimic::{Arguments, Failed, Trial};
use regstore::Capabilities;
use regstore_testsuite::emulators::{Unavailable, require_emulator};
use regstore_testsuite::util::Failure;
use regstore_testsuite::{Config, DriverFactory, Outcome};

/// A driver-specific trial.
pub type Specific<E> = fn(Arc<E>) -> BoxFuture<'static, Result<(), Failure>>;

/// Makes a fresh driver per conformance test from the environment.
pub type Factory<E> = fn(Arc<E>) -> DriverFactory;

/// One test binary's trials over an environment `E` (the emulator's endpoint, registries...).
pub struct Suite<E> {
    /// The driver's name: the prefix of every trial and of the lines printed.
    pub name: &'static str,
    /// What the tests need, for the missing-emulator message: "Azurite (Azure)".
    pub emulator: &'static str,
    pub config: Config,
    /// What the driver declares it can do: conformance tests it does not declare are ignored.
    pub capabilities: Capabilities,
    /// The conformance suite runs once per entry: (trial prefix, a fresh driver per test).
    pub variants: Vec<(&'static str, Factory<E>)>,
    pub specific: Vec<(&'static str, Specific<E>)>,
}

enum State<E> {
    Ready(Arc<E>),
    Unavailable(String),
}

type Shared<E> = Arc<OnceLock<State<E>>>;

fn env_of<E>(shared: &Shared<E>) -> Result<Arc<E>, Failed> {
    match shared.get() {
        Some(State::Ready(env)) => Ok(env.clone()),
        Some(State::Unavailable(reason)) => Err(reason.as_str().into()),
        None => Err("the emulator was not started".into()),
    }
}

impl<E: Send + Sync + 'static> Suite<E> {
    fn trials(&self, shared: &Shared<E>, runtime: &Arc<tokio::runtime::Runtime>, ignored: bool) -> Vec<Trial> {
        let config = Arc::new(self.config.clone());
        let mut trials = Vec::new();
        for (prefix, factory) in &self.variants {
            for test in regstore_testsuite::all() {
                let not_declared = test.skip_reason(&self.capabilities).is_some();
                let (shared, runtime, config, factory) = (shared.clone(), runtime.clone(), config.clone(), *factory);
                trials.push(
                    Trial::test(format!("{prefix}::{}", test.name), move || {
                        let factory = factory(env_of(&shared)?);
                        match runtime.block_on(regstore_testsuite::run_test(&test, &factory, config)) {
                            Ok(Outcome::Passed(_)) => Ok(()),
                            Ok(Outcome::Skipped(why)) => Err(Failed::from(format!("skipped where it must run: {why}"))),
                            Err(why) => Err(Failed::from(why)),
                        }
                    })
                    .with_ignored_flag(ignored || not_declared),
                );
            }
        }
        for (name, test) in &self.specific {
            let (shared, runtime, test) = (shared.clone(), runtime.clone(), *test);
            trials.push(
                Trial::test(format!("{}::{name}", self.name), move || {
                    runtime.block_on(test(env_of(&shared)?)).map_err(Failed::from)
                })
                .with_ignored_flag(ignored),
            );
        }
        trials
    }

    /// Runs the binary: `start` brings the emulator up (`G` keeps it running until `stop`).
    pub fn main<G>(
        self,
        runtime: Arc<tokio::runtime::Runtime>,
        start: impl FnOnce(&tokio::runtime::Runtime) -> Result<(G, Arc<E>), String>,
        stop: impl FnOnce(G),
    ) -> ! {
        let args = Arguments::from_args();
        let shared: Shared<E> = Arc::default();
        let mut all = self.trials(&shared, &runtime, false);
        let mut names: Vec<&str> = all.iter().map(|t| t.name()).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            panic!("two trials are named {}", w[0]);
        }
        // Started only when a trial will run (not for `--list`, nor for a filter that selects none).
        let wanted = !args.list && all.iter().any(|t| !args.is_filtered_out(t));
        let (mut guard, mut ignored) = (None, None);
        if wanted {
            match start(&runtime) {
                Ok((g, env)) => {
                    if !self.config.short {
                        println!(
                            "{}: TestWriteReadLargeStreams uses {} MiB against the emulator",
                            self.name,
                            self.config.large_stream_size >> 20
                        );
                    }
                    guard = Some(g);
                    let _ = shared.set(State::Ready(env));
                }
                Err(error) => match require_emulator(self.emulator, &error) {
                    Unavailable::Fail(reason) => {
                        let _ = shared.set(State::Unavailable(reason));
                    }
                    Unavailable::Ignore(reason) => {
                        let _ = shared.set(State::Unavailable(reason.clone()));
                        all = self.trials(&shared, &runtime, true);
                        ignored = Some(reason);
                    }
                },
            }
        }
        let conclusion = libtest_mimic::run(&args, all);
        // `exit` skips destructors: drop the environment (the trials that held it are gone) and
        // stop the emulator first.
        drop(Arc::try_unwrap(shared).ok().and_then(OnceLock::into_inner));
        if let Some(g) = guard {
            stop(g);
        }
        if let Some(reason) = ignored {
            eprintln!("{}: every {} test was IGNORED, not run: {reason}", self.name, self.name);
        }
        conclusion.exit();
    }
}
