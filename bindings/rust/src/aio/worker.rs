//! The worker on tokio: async handlers as tasks, the waits and the SQL
//! off the runtime.

use crate::worker::{catch, encode_result, outcome, AsyncHandler, Handler, TaskCall};
use crate::{Error, Result, TaskOptions, Worker};
use honker_core::worker::{Activation, Polled, WorkerCore};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

impl Worker {
    /// Registers an async `handler` for task `name` (feature `tokio`;
    /// run the worker with [`Worker::run_async`]). When the handler is
    /// told to stop (timeout, lost lease, shutdown) its future is
    /// dropped.
    pub fn task_async<F, Fut, R, E>(
        &mut self,
        name: &str,
        opts: TaskOptions,
        handler: F,
    ) -> &mut Self
    where
        F: Fn(TaskCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<R, E>> + Send + 'static,
        R: Serialize,
        E: std::fmt::Display,
    {
        let handler = Arc::new(handler);
        let h: AsyncHandler = Arc::new(move |call: TaskCall| {
            let fut = handler(call);
            Box::pin(async move {
                match fut.await {
                    Ok(r) => encode_result(&r),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
        self.tasks.push((name.to_string(), opts, Handler::Async(h)));
        self
    }

    /// [`Worker::run`] on tokio (feature `tokio`): runs until `stop`
    /// completes, then drains the same way. Async handlers run as tokio
    /// tasks, sync ones on the blocking pool; the waits and the SQL run
    /// off the runtime.
    pub async fn run_async(&self, stop: impl Future<Output = ()> + Send) -> Result<()> {
        let handlers = Arc::new(self.handlers());
        let core = Arc::new(self.core(None)?);
        let flag = Arc::new(AtomicBool::new(false));
        let mut stop = std::pin::pin!(stop);
        let mut running = tokio::task::JoinSet::new();
        let mut failed: Option<Error> = None;
        loop {
            let (c, f) = (core.clone(), flag.clone());
            let mut polled = tokio::task::spawn_blocking(move || c.poll(&*f));
            let polled = loop {
                tokio::select! {
                    p = &mut polled => break p,
                    _ = &mut stop, if !flag.load(Ordering::SeqCst) => {
                        flag.store(true, Ordering::SeqCst);
                        core.shutdown();
                    }
                    Some(done) = running.join_next(), if !running.is_empty() => {
                        if let Ok(Err(e)) = done {
                            failed.get_or_insert(e);
                            flag.store(true, Ordering::SeqCst);
                            core.shutdown();
                        }
                    }
                }
            };
            let polled = polled.map_err(|e| Error::Internal {
                reason: format!("the worker's poll did not finish: {e}"),
            })?;
            match polled {
                Ok(Polled::Run(a)) => {
                    running.spawn(run_chain(core.clone(), handlers.clone(), a));
                }
                Ok(Polled::Cancel { .. }) => {}
                Ok(Polled::Done) => break,
                Err(e) => {
                    failed.get_or_insert(e);
                    break;
                }
            }
        }
        // Done: what is still running was released; stop it.
        running.abort_all();
        while running.join_next().await.is_some() {}
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

async fn run_chain(
    core: Arc<WorkerCore>,
    handlers: Arc<HashMap<String, Handler>>,
    first: Activation,
) -> Result<()> {
    let mut next = Some(first);
    while let Some(a) = next {
        let id = a.job.id;
        let handler = handlers
            .get(&a.task)
            .expect("the core hands out registered tasks only")
            .clone();
        let span = crate::otel::Attempt::start(&a.job.queue, &a.task, id, a.job.attempts);
        let ran = match TaskCall::new(a) {
            Err(e) => Err(e),
            Ok(call) => {
                let cancelled = call.cancelled();
                let mut job = match handler {
                    Handler::Sync(h) => {
                        tokio::task::spawn_blocking(span.within(move || catch(|| h(&call))))
                    }
                    Handler::Async(h) => tokio::spawn(span.bind(h(call))),
                };
                tokio::select! {
                    r = &mut job => r.unwrap_or_else(|e| Err(if e.is_panic() {
                        format!("the handler panicked: {}", honker_core::panic_message(e.into_panic().as_ref()))
                    } else {
                        "the handler was cancelled".to_string()
                    })),
                    why = cancelled => {
                        job.abort();
                        Err(format!("stopped: {}", why.as_str()))
                    }
                }
            }
        };
        span.finish(&ran);
        let c = core.clone();
        next = tokio::task::spawn_blocking(move || c.complete(id, outcome(&ran)))
            .await
            .map_err(|e| Error::Internal {
                reason: format!("a completion did not finish: {e}"),
            })??;
    }
    Ok(())
}
