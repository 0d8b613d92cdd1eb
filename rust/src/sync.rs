//! Locking helpers shared by the crate.

use std::sync::{Mutex, MutexGuard};

/// Take a lock even if a previous holder panicked. Every mutex in the crate
/// guards data whose critical sections leave it valid at every step (indices
/// that move atomically, plain Options and collections), and a panic on one
/// thread must not turn every later call from Python into a second panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
