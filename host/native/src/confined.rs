//! Values of a driver that is not thread-safe, made safe to share by one lock per driver.
//!
//! Guest drivers are written for a single-threaded instance: they use `Rc` and `RefCell`, and
//! their readers and writers may share state with the driver itself. Natively, every such value
//! of one driver (the driver, its readers, writers and walkers) is wrapped in a [`Confined`]
//! holding the same lock, and is touched (dropped included) only while that lock is held. So
//! no two threads ever touch the driver's state at once, which is all that `Rc` and `RefCell`
//! need. This relies on drivers keeping their state in their values, not in thread-locals
//! (which would be per thread, not per instance): none of the bundled drivers uses any.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

/// The lock all of one driver's values share.
pub type DriverLock = Arc<Mutex<()>>;

pub struct Confined<T> {
    lock: DriverLock,
    /// `None` only while being dropped.
    value: Option<T>,
}

// SAFETY: `value` is only reached through `with`, `with_mut` and `drop`, each under `lock`,
// which every value sharing state with it also holds (see the module's comment).
unsafe impl<T> Send for Confined<T> {}
// SAFETY: as above: a shared reference gives access only under the lock.
unsafe impl<T> Sync for Confined<T> {}

impl<T> Confined<T> {
    pub fn new(lock: DriverLock, value: T) -> Self {
        Confined { lock, value: Some(value) }
    }

    /// Makes the value under the lock (a driver's constructor touches its state too): the
    /// constructor's own error, or a panic (`Err` with its message) in the outer result.
    pub fn build<E>(lock: DriverLock, make: impl FnOnce() -> Result<T, E>) -> Result<Result<Self, E>, String> {
        let made = {
            let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
            catch_unwind(AssertUnwindSafe(make)).map_err(panic_message)?
        };
        Ok(made.map(|value| Confined::new(lock, value)))
    }

    pub fn lock(&self) -> &DriverLock {
        &self.lock
    }

    /// Runs `f` on the value under the lock; a panic in the driver becomes `Err` with its message.
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, String> {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let value = self.value.as_ref().expect("present until dropped");
        catch_unwind(AssertUnwindSafe(|| f(value))).map_err(panic_message)
    }

    pub fn with_mut<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R, String> {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let value = self.value.as_mut().expect("present until dropped");
        catch_unwind(AssertUnwindSafe(|| f(value))).map_err(panic_message)
    }
}

impl<T> Drop for Confined<T> {
    fn drop(&mut self) {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let value = self.value.take();
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or("a panic".to_string(), |s| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn values_sharing_an_rc_are_touched_one_thread_at_a_time() {
        let lock = DriverLock::default();
        let shared = Rc::new(Cell::new(0u64));
        let a = Arc::new(Confined::new(lock.clone(), shared.clone()));
        let b = Arc::new(Confined::new(lock, shared));
        let threads: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.with(|v| v.set(v.get() + 1)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(a.with(|v| v.get()).unwrap(), 20_000);
        drop(a);
        assert_eq!(b.with(Rc::strong_count).unwrap(), 1);
    }

    #[test]
    fn a_panic_is_an_error_and_the_lock_stays_usable() {
        let c = Confined::new(DriverLock::default(), 7);
        let err = c.with(|_| -> u8 { panic!("driver bug") }).unwrap_err();
        assert_eq!(err, "driver bug");
        assert_eq!(c.with(|v| *v).unwrap(), 7);
    }
}
