//! The in-process bus: one multi-consumer channel per topic, so several consumers share the
//! work of a topic as a consumer group would. Nothing leaves the process; commit is a no-op.

use crate::{Bus, BusError, Consumer};
use async_trait::async_trait;
use orchestrator_protocol::{ProgressEvent, ReadyEvent, ResultEvent, Zone};

struct Topic<T> {
    tx: async_channel::Sender<T>,
    rx: async_channel::Receiver<T>,
}

impl<T> Topic<T> {
    fn new() -> Self {
        let (tx, rx) = async_channel::unbounded();
        Topic { tx, rx }
    }
}

/// The embedded bus. Cheap to share behind an `Arc`.
pub struct MemoryBus {
    ready: [Topic<ReadyEvent>; 3],
    results: Topic<ResultEvent>,
    progress: Topic<ProgressEvent>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus {
            ready: [Topic::new(), Topic::new(), Topic::new()],
            results: Topic::new(),
            progress: Topic::new(),
        }
    }
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Closes every topic: consumers drain what is queued, then get an empty batch.
    pub fn close(&self) {
        for t in &self.ready {
            t.tx.close();
        }
        self.results.tx.close();
        self.progress.tx.close();
    }

    /// Events waiting in the Ready topic of `zone`.
    pub fn ready_backlog(&self, zone: Zone) -> usize {
        self.ready[zone.index()].rx.len()
    }
}

async fn send_all<T>(topic: &Topic<T>, events: Vec<T>) -> Result<(), BusError> {
    for e in events {
        topic.tx.send(e).await.map_err(|_| BusError::Closed)?;
    }
    Ok(())
}

struct ChannelConsumer<T> {
    rx: async_channel::Receiver<T>,
}

#[async_trait]
impl<T: Send + 'static> Consumer<T> for ChannelConsumer<T> {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<T>, BusError> {
        let Ok(first) = self.rx.recv().await else {
            return Ok(Vec::new());
        };
        let mut batch = Vec::with_capacity(max.clamp(1, 1024));
        batch.push(first);
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        Ok(())
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish_ready(&self, events: Vec<ReadyEvent>) -> Result<(), BusError> {
        for e in events {
            let topic = &self.ready[e.zone.index()];
            topic.tx.send(e).await.map_err(|_| BusError::Closed)?;
        }
        Ok(())
    }
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Result<(), BusError> {
        send_all(&self.results, events).await
    }
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Result<(), BusError> {
        send_all(&self.progress, events).await
    }
    async fn ready_consumer(
        &self,
        zone: Zone,
        _group: &str,
    ) -> Result<Box<dyn Consumer<ReadyEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer {
            rx: self.ready[zone.index()].rx.clone(),
        }))
    }
    async fn result_consumer(
        &self,
        _group: &str,
    ) -> Result<Box<dyn Consumer<ResultEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer {
            rx: self.results.rx.clone(),
        }))
    }
    async fn progress_consumer(
        &self,
        _group: &str,
    ) -> Result<Box<dyn Consumer<ProgressEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer {
            rx: self.progress.rx.clone(),
        }))
    }
}
