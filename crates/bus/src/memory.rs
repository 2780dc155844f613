//! The in-process bus: one multi-consumer channel per topic, so several consumers share the
//! work of a topic as a consumer group would. Nothing leaves the process; what a consumer took
//! and did not acknowledge goes back on the topic when the consumer is dropped.

use crate::{AckToken, Bus, BusError, Consumer, Delivery, Published, Unsent};
use async_trait::async_trait;
use orchestrator_protocol::{FailedEvent, ProgressEvent, ReadyEvent, ResultEvent, Zone};
use std::collections::HashMap;
use std::sync::Mutex;

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
    /// Objects that failed for good; nobody in the process consumes them.
    failed: Mutex<Vec<FailedEvent>>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus {
            ready: [Topic::new(), Topic::new(), Topic::new()],
            results: Topic::new(),
            progress: Topic::new(),
            failed: Mutex::default(),
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

    /// The failed-for-good events published so far.
    pub fn failed_events(&self) -> Vec<FailedEvent> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Events waiting in the Ready topic of `zone`.
    pub fn ready_backlog(&self, zone: Zone) -> usize {
        self.ready[zone.index()].rx.len()
    }
}

async fn send_all<T>(topic: &Topic<T>, events: Vec<T>) -> Published<T> {
    for e in events {
        topic
            .tx
            .send(e)
            .await
            .map_err(|_| Unsent::fatal(BusError::Closed))?;
    }
    Ok(())
}

struct ChannelConsumer<T> {
    tx: async_channel::Sender<T>,
    rx: async_channel::Receiver<T>,
    next_token: u64,
    /// Delivered and not yet acknowledged: put back on the topic when this consumer goes.
    unacked: HashMap<u64, T>,
}

impl<T> ChannelConsumer<T> {
    fn new(topic: &Topic<T>) -> Self {
        ChannelConsumer {
            tx: topic.tx.clone(),
            rx: topic.rx.clone(),
            next_token: 0,
            unacked: HashMap::new(),
        }
    }
}

impl<T> Drop for ChannelConsumer<T> {
    fn drop(&mut self) {
        let mut left: Vec<(u64, T)> = self.unacked.drain().collect();
        left.sort_by_key(|(token, _)| *token);
        for (_, event) in left {
            let _ = self.tx.try_send(event);
        }
    }
}

#[async_trait]
impl<T: Clone + Send + 'static> Consumer<T> for ChannelConsumer<T> {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery<T>>, BusError> {
        let Ok(first) = self.rx.recv().await else {
            return Ok(Vec::new());
        };
        let mut events = vec![first];
        while events.len() < max {
            match self.rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let mut batch = Vec::with_capacity(events.len());
        for event in events {
            let token = self.next_token;
            self.next_token += 1;
            self.unacked.insert(token, event.clone());
            batch.push(Delivery {
                event,
                token: AckToken(token),
            });
        }
        Ok(batch)
    }

    async fn ack(&mut self, tokens: Vec<AckToken>) -> Result<(), BusError> {
        for t in tokens {
            self.unacked.remove(&t.0);
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish_ready(&self, events: Vec<ReadyEvent>) -> Published<ReadyEvent> {
        for e in events {
            let topic = &self.ready[e.zone.index()];
            topic
                .tx
                .send(e)
                .await
                .map_err(|_| Unsent::fatal(BusError::Closed))?;
        }
        Ok(())
    }
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Published<ResultEvent> {
        send_all(&self.results, events).await
    }
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Published<ProgressEvent> {
        send_all(&self.progress, events).await
    }
    async fn publish_failed(&self, events: Vec<FailedEvent>) -> Published<FailedEvent> {
        if let Ok(mut failed) = self.failed.lock() {
            failed.extend(events);
        }
        Ok(())
    }
    async fn ready_consumer(
        &self,
        zone: Zone,
        _group: &str,
    ) -> Result<Box<dyn Consumer<ReadyEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer::new(&self.ready[zone.index()])))
    }
    async fn result_consumer(
        &self,
        _group: &str,
    ) -> Result<Box<dyn Consumer<ResultEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer::new(&self.results)))
    }
    async fn progress_consumer(
        &self,
        _group: &str,
    ) -> Result<Box<dyn Consumer<ProgressEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer::new(&self.progress)))
    }
}
