//! The public handles stay `Send + Sync` with and without the `tokio`
//! feature (a feature may not take an auto trait away).

fn send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    send_sync::<honker::Database>();
    send_sync::<honker::Queue>();
    send_sync::<honker::Job>();
    send_sync::<honker::Stream>();
    send_sync::<honker::Subscription>();
    send_sync::<honker::Listener>();
    send_sync::<honker::ListenerCloser>();
    send_sync::<honker::Transaction>();
    send_sync::<honker::ClaimWaker>();
    send_sync::<honker::StopHandle>();
    send_sync::<honker::Scheduler>();
    send_sync::<honker::Lock>();
    #[cfg(feature = "tokio")]
    send_sync::<honker::Claims>();
}
