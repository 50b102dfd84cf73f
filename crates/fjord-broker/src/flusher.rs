//! Group commit for acks=all on a single node.
//!
//! A producer asking for acks=all is answered only once its batch is on disk. Rather than one
//! fsync per request, the flusher task takes every partition that asked for a flush since its
//! last round and fsyncs each once: every batch that arrived meanwhile rides on the same fsync.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::partition::Partition;

/// Handle for asking the flusher task to make a partition durable.
#[derive(Debug, Clone)]
pub struct Flusher {
    requests: mpsc::UnboundedSender<Arc<Partition>>,
}

impl Flusher {
    /// Starts the flusher task on the current runtime.
    pub fn start() -> Flusher {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx));
        Flusher { requests }
    }

    /// Asks for `partition` to be flushed soon; wait on its durable offset for the result.
    /// Requests are bounded by the producers' in-flight requests, so the channel needs no bound.
    pub fn request(&self, partition: Arc<Partition>) {
        // The task only stops when the runtime does; nothing to do if it is gone.
        let _ = self.requests.send(partition);
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Arc<Partition>>) {
    while let Some(first) = rx.recv().await {
        let mut pending: HashMap<usize, Arc<Partition>> = HashMap::new();
        pending.insert(Arc::as_ptr(&first) as usize, first);
        while let Ok(more) = rx.try_recv() {
            pending.insert(Arc::as_ptr(&more) as usize, more);
        }
        let mut round = JoinSet::new();
        for partition in pending.into_values() {
            round.spawn_blocking(move || {
                if let Err(e) = partition.flush() {
                    tracing::error!(partition = %partition.name, error = %e, "flush failed");
                }
            });
        }
        while round.join_next().await.is_some() {}
    }
}
