//! What a blocking call looks at to end early.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a blocking call looks at to end early. An [`AtomicBool`] is the
/// usual one: set it, then call `Watcher::interrupt` to wake the waiter at
/// once.
pub trait Stop {
    /// Has the wait been told to end? Looked at whenever the waiter wakes.
    fn is_set(&self) -> bool;

    /// How often to ask [`Stop::check`] while nothing wakes the waiter.
    /// `None` (the default): never. For a host that delivers interruptions
    /// nobody can wake a waiter for, such as a Ctrl-C that Python can only
    /// act on in its main thread.
    fn poll_every(&self) -> Option<Duration> {
        None
    }

    /// Asked every [`Stop::poll_every`] while idle: true ends the wait (and
    /// [`Stop::is_set`] must say so from then on).
    fn check(&self) -> bool {
        false
    }
}

impl Stop for AtomicBool {
    fn is_set(&self) -> bool {
        self.load(Ordering::SeqCst)
    }
}

impl<S: Stop + ?Sized> Stop for std::sync::Arc<S> {
    fn is_set(&self) -> bool {
        (**self).is_set()
    }

    fn poll_every(&self) -> Option<Duration> {
        (**self).poll_every()
    }

    fn check(&self) -> bool {
        (**self).check()
    }
}
