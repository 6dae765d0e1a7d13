//! Where a call runs: the libuv pool, its own thread, or this one.

use crate::error::*;
use napi::bindgen_prelude::{Either, ToNapiValue, TypeName};
use napi::{Env, Task};

/// A short blocking call, run on the libuv thread pool.
pub struct Op<T: Send + 'static> {
    f: Option<Box<dyn FnOnce() -> CoreResult<T> + Send>>,
}

pub(crate) fn op<T: Send + 'static>(f: impl FnOnce() -> CoreResult<T> + Send + 'static) -> Op<T> {
    Op {
        f: Some(Box::new(f)),
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
        honker_core::guard(f).map_err(to_js)
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
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
) -> napi::Result<napi::bindgen_prelude::Object<'env>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    let (deferred, promise) =
        env.create_deferred::<T, Box<dyn FnOnce(Env) -> napi::Result<T>>>()?;
    std::thread::Builder::new()
        .name("honker-wait".into())
        .spawn(move || match honker_core::guard(f) {
            Ok(v) => deferred.resolve(Box::new(move |_| Ok(v))),
            Err(e) => deferred.reject(to_js(e)),
        })
        .map_err(|e| napi::Error::from_reason(format!("cannot start a wait thread: {e}")))?;
    Ok(promise)
}

/// `ready` itself when it is already there (no thread, no wait: the JS
/// layer awaits either), else a Promise of `f` run on its own thread as
/// [`wait_on_thread`].
pub(crate) fn ready_or_wait<'env, T, F>(
    env: &'env Env,
    ready: Option<T>,
    f: F,
) -> napi::Result<Either<T, napi::bindgen_prelude::Object<'env>>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce() -> CoreResult<T> + Send + 'static,
{
    match ready {
        Some(v) => Ok(Either::A(v)),
        None => wait_on_thread(env, f).map(Either::B),
    }
}
