//! Where a call runs: the libuv pool, its own thread, or this one.

use crate::error::*;
use crate::handles::NativeTx;
use honker_core::Caller;
use napi::bindgen_prelude::{Either, ToNapiValue, TypeName};
use napi::bindgen_prelude::{Function, Unknown};
use napi::{Env, Task};
use napi_derive::napi;

/// A short blocking call, run on the libuv thread pool.
pub struct Op<T: Send + 'static> {
    f: Option<Box<dyn FnOnce() -> CoreResult<T> + Send>>,
    /// The core error of a failed run, made into a JS error in `reject`
    /// (on the JS thread) so it keeps its code.
    failed: Option<honker_core::Error>,
}

pub(crate) fn op<T: Send + 'static>(f: impl FnOnce() -> CoreResult<T> + Send + 'static) -> Op<T> {
    Op {
        f: Some(Box::new(f)),
        failed: None,
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Op<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let f = self
            .f
            .take()
            .ok_or_else(|| napi::Error::from_reason("task ran twice"))?;
        // A panic on a libuv thread would abort the process.
        honker_core::guard(f).map_err(|e| {
            let placeholder = napi::Error::from_reason(e.to_string());
            self.failed = Some(e);
            placeholder
        })
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<T> {
        Err(match self.failed.take() {
            Some(e) => rejection(&env, e),
            None => err,
        })
    }
}

pub(crate) type AsyncOp<T> = napi::bindgen_prelude::AsyncTask<Op<T>>;

/// The result of an operation that can run either way: its value (run on
/// the calling thread) or a Promise of it (run on the libuv pool).
pub(crate) type Run<T> = Either<T, AsyncOp<T>>;

pub(crate) fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> CoreResult<T> + Send + 'static,
) -> AsyncOp<T>
where
    Op<T>: Task,
{
    napi::bindgen_prelude::AsyncTask::new(op(f))
}

/// A wait that may last (for a job, an event, a notification, the
/// scheduler's stop): it runs on its own thread, so it never holds a libuv
/// pool thread that other calls need, and settles the returned Promise.
pub(crate) fn wait_on_thread<'env, T, F>(
    env: &'env Env,
    f: F,
) -> Result<napi::bindgen_prelude::Object<'env>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    let (deferred, promise) = env
        .create_deferred::<T, Box<dyn FnOnce(Env) -> napi::Result<T>>>()
        .map_err(from_napi)?;
    std::thread::Builder::new()
        .name("honker-wait".into())
        .spawn(move || match honker_core::guard(f) {
            Ok(v) => deferred.resolve(Box::new(move |_| Ok(v))),
            // Settled on the JS thread, where the error object can be made.
            Err(e) => deferred.resolve(Box::new(move |env| Err(rejection(&env, e)))),
        })
        .map_err(|e| {
            to_js(honker_core::Error::Internal {
                reason: format!("cannot start a wait thread: {e}"),
            })
        })?;
    Ok(promise)
}

/// `ready` itself when it is already there (no thread, no wait: the JS
/// layer awaits either), else a Promise of `f` run on its own thread as
/// [`wait_on_thread`].
pub(crate) fn ready_or_wait<'env, T, F>(
    env: &'env Env,
    ready: Option<T>,
    f: F,
) -> Result<Either<T, napi::bindgen_prelude::Object<'env>>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    match ready {
        Some(v) => Ok(Either::A(v)),
        None => wait_on_thread(env, f).map(Either::B),
    }
}

thread_local! {
    /// The transaction owner the JS layer is calling for right now (set by
    /// [`run_as`] while its callback runs on the JS thread), if any.
    static ACTING_FOR: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Who a call acts for, as the core's transaction rule sees it: captured on
/// the JS thread when the call is made, turned into a [`Caller`] on the
/// thread that runs it.
#[derive(Clone, Copy)]
pub(crate) struct Acting(Option<u64>);

/// Who the call being made on the JS thread now acts for.
pub(crate) fn acting() -> Acting {
    Acting(ACTING_FOR.with(|a| a.get()))
}

impl Acting {
    /// The owner of the transaction whose callback made the call (so the
    /// core refuses what would wait for that transaction), else the thread
    /// that runs it (which waits its turn).
    pub(crate) fn caller(self) -> Caller {
        match self.0 {
            Some(owner) => Caller::host(owner),
            None => Caller::this_thread(),
        }
    }

    /// The owner a new transaction gets: the one acting (which the core
    /// refuses, a transaction inside its own callback), else a fresh one.
    pub(crate) fn owner_or(self, fresh: u64) -> u64 {
        self.0.unwrap_or(fresh)
    }
}

/// Calls `f` acting for the owner of `tx`: the JS layer wraps a call made
/// from inside a transaction's callback (AsyncLocalStorage knows) in this,
/// so the core applies its one rule: a call that would wait for the
/// caller's own open transaction fails with `transaction_open`.
#[napi(
    ts_generic_types = "T",
    ts_args_type = "tx: NativeTx, f: () => T",
    ts_return_type = "T"
)]
// (Registered with Node by the macro, which a `cargo test` build leaves out.)
#[cfg_attr(test, allow(dead_code))]
pub fn run_as<'env>(
    tx: &NativeTx,
    f: Function<'env, (), Unknown<'env>>,
) -> napi::Result<Unknown<'env>> {
    let before = ACTING_FOR.with(|a| a.replace(Some(tx.owner)));
    let result = f.call(());
    ACTING_FOR.with(|a| a.set(before));
    result
}
