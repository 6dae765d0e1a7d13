//! Small native objects: a transaction, a stop flag, a listener, a cursor, a lock keeper.

use crate::data::*;
use crate::error::*;
use crate::task::*;
use honker_core::model::Notification;
use honker_core::wake::keepalive::Keeper;
use honker_core::wake::wait;
use honker_core::wake::watcher::ListenerQueue;
use honker_core::{Db, TxKey};
use napi::bindgen_prelude::Either;
use napi::Env;
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// An open write transaction; `db.transaction(cb)` in the JS layer owns it.
#[napi]
pub struct NativeTx {
    pub(crate) key: Arc<Mutex<Option<TxKey>>>,
    /// The caller token that owns it (see [`run_as`](crate::task::run_as)).
    #[cfg_attr(test, allow(dead_code))]
    pub(crate) owner: u64,
}

/// A stop flag for waits: `stop()` wakes the waiter at once.
#[napi]
pub struct NativeStop {
    pub(crate) db: Db,
    pub(crate) flag: Arc<AtomicBool>,
}

#[napi]
impl NativeStop {
    #[napi]
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        honker_core::wake::watcher(&self.db).interrupt();
    }

    #[napi]
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// A notification listener.
#[napi]
pub struct NativeListener {
    pub(crate) db: Db,
    pub(crate) queue: Arc<ListenerQueue>,
}

#[napi]
impl NativeListener {
    /// The next notification: at once if one has arrived, else a Promise
    /// that waits up to `timeoutS` (forever when null); null on timeout or
    /// once closed.
    #[napi(ts_return_type = "NotificationData | null | Promise<NotificationData | null>")]
    pub fn recv<'env>(
        &self,
        env: &'env Env,
        timeout_s: Option<f64>,
    ) -> Result<Either<Option<NotificationData>, napi::bindgen_prelude::Object<'env>>> {
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, queue) = (self.db.clone(), self.queue.clone());
        let data = |n: Notification| NotificationData {
            id: n.id,
            channel: n.channel,
            payload: n.payload,
        };
        // One already here is handed over without a thread.
        let ready = self.queue.try_recv().map(|n| Some(data(n)));
        ready_or_wait(env, ready, move || {
            Ok(queue
                .recv(&honker_core::wake::watcher(&db), timeout)?
                .map(data))
        })
    }

    #[napi]
    pub fn close(&self) {
        self.queue.close()
    }
}

/// A stream consumer's cursor (at-least-once; see `honker_core::wait`).
#[napi]
pub struct NativeCursor {
    pub(crate) db: Db,
    pub(crate) cursor: Arc<Mutex<wait::StreamCursor>>,
}

pub(crate) fn with_cursor<R>(
    cursor: &Mutex<wait::StreamCursor>,
    f: impl FnOnce(&mut wait::StreamCursor) -> CoreResult<R>,
) -> CoreResult<R> {
    f(&mut cursor.lock().unwrap_or_else(|p| p.into_inner()))
}

#[napi]
impl NativeCursor {
    /// The next event: at once if one is already fetched, else a Promise
    /// that waits up to `timeoutS` (forever when null); null on timeout or
    /// stop.
    #[napi(ts_return_type = "EventData | null | Promise<EventData | null>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
        stop: &NativeStop,
        timeout_s: Option<f64>,
    ) -> Result<Either<Option<EventData>, napi::bindgen_prelude::Object<'env>>> {
        let timeout = secs("timeoutS", timeout_s)?;
        let (db, cursor, flag) = (self.db.clone(), self.cursor.clone(), stop.flag.clone());
        let by = acting();
        // An event already fetched is handed over without a thread (unless
        // a commit or flush holds the cursor right now).
        let ready = self
            .cursor
            .try_lock()
            .ok()
            .and_then(|mut c| c.next_buffered())
            .map(|e| Some(EventData::from(e)));
        ready_or_wait(env, ready, move || {
            with_cursor(&cursor, |c| {
                Ok(c.next(&db, by.caller(), timeout, &flag)?
                    .map(EventData::from))
            })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn commit(&self) -> AsyncOp<()> {
        let (db, cursor) = (self.db.clone(), self.cursor.clone());
        let by = acting();
        spawn(move || with_cursor(&cursor, |c| c.commit(&db, by.caller())))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush(&self) -> AsyncOp<()> {
        let (db, cursor) = (self.db.clone(), self.cursor.clone());
        let by = acting();
        spawn(move || with_cursor(&cursor, |c| c.flush(&db, by.caller())))
    }
}

/// A held lock renewed in the background (see `honker_core::keepalive`).
#[napi]
pub struct NativeKeeper {
    pub(crate) keeper: Arc<Mutex<Keeper>>,
}

#[napi]
impl NativeKeeper {
    #[napi]
    pub fn is_lost(&self) -> bool {
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_lost()
    }

    #[napi]
    pub fn mark_lost(&self) {
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mark_lost()
    }

    #[napi]
    pub fn set_ttl(&self, ttl_s: f64) -> Result<()> {
        let ttl = ttl_ms("ttlS", ttl_s)?;
        self.keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_ttl(ttl);
        Ok(())
    }

    /// Stops renewing: on this thread (`sync`), or on the libuv pool (a
    /// renewal in flight may wait for another process's write lock).
    #[napi(
        ts_generic_types = "S extends boolean",
        ts_return_type = "S extends true ? void : Promise<void>"
    )]
    pub fn stop(&self, #[napi(ts_arg_type = "S")] sync: bool) -> Run<()> {
        let keeper = self.keeper.clone();
        let stop = move || {
            keeper.lock().unwrap_or_else(|p| p.into_inner()).stop();
            Ok(())
        };
        if sync {
            let _ = stop();
            Either::A(())
        } else {
            Either::B(spawn(stop))
        }
    }
}
