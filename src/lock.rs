//! The one way Meridian takes a mutex: a panic in another thread while it held the lock does not
//! make the data unusable here (every value behind these locks is whole between statements), so
//! a poisoned lock is taken as it is instead of spreading the panic.

use std::sync::{Mutex, MutexGuard};

pub trait LockExt<T> {
    /// Locks, recovering the guard from a poisoned lock.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}
