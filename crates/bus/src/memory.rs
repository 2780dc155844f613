//! The in-process bus: per topic, one multi-consumer channel per consumer group, so every group
//! sees every event and the consumers of one group share them, as on Kafka. Nothing leaves the
//! process; what a consumer took and did not acknowledge goes back to its group when the
//! consumer is dropped.

use crate::{AckToken, Bus, BusError, Consumer, Delivery, Published, Unsent};
use async_trait::async_trait;
use orchestrator_protocol::{
    ControlEvent, FailedEvent, ProgressEvent, ReadyEvent, ResultEvent, Zone,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// One topic: a channel per consumer group, each of which gets every event; the consumers of
/// one group share its channel. Events published before any group joined wait for the first.
struct Topic<T> {
    inner: Mutex<Groups<T>>,
}

struct Groups<T> {
    groups: Vec<(String, async_channel::Sender<T>, async_channel::Receiver<T>)>,
    /// Published while no group had joined: the first group to join takes them.
    early: Vec<T>,
    closed: bool,
}

impl<T: Clone> Topic<T> {
    fn new() -> Self {
        Topic {
            inner: Mutex::new(Groups {
                groups: Vec::new(),
                early: Vec::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Groups<T>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, events: Vec<T>) -> Result<(), BusError> {
        let mut g = self.lock();
        if g.closed {
            return Err(BusError::Closed);
        }
        if g.groups.is_empty() {
            g.early.extend(events);
            return Ok(());
        }
        let Some(((_, last, _), others)) = g.groups.split_last() else {
            return Ok(());
        };
        for e in events {
            for (_, tx, _) in others {
                tx.try_send(e.clone()).map_err(|_| BusError::Closed)?;
            }
            last.try_send(e).map_err(|_| BusError::Closed)?;
        }
        Ok(())
    }

    /// The channel of `group`, made (with what was published early) if it is the first.
    fn join(&self, group: &str) -> (async_channel::Sender<T>, async_channel::Receiver<T>) {
        let mut g = self.lock();
        if let Some((_, tx, rx)) = g.groups.iter().find(|(name, ..)| name == group) {
            return (tx.clone(), rx.clone());
        }
        let (tx, rx) = async_channel::unbounded();
        for e in std::mem::take(&mut g.early) {
            let _ = tx.try_send(e);
        }
        if g.closed {
            tx.close();
        }
        g.groups.push((group.to_string(), tx.clone(), rx.clone()));
        (tx, rx)
    }

    fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        for (_, tx, _) in &g.groups {
            tx.close();
        }
    }

    /// Events waiting for the busiest group.
    fn backlog(&self) -> usize {
        let g = self.lock();
        g.groups
            .iter()
            .map(|(_, _, rx)| rx.len())
            .max()
            .unwrap_or(g.early.len())
    }
}

/// The embedded bus. Cheap to share behind an `Arc`.
pub struct MemoryBus {
    ready: [Topic<ReadyEvent>; 3],
    results: Topic<ResultEvent>,
    progress: Topic<ProgressEvent>,
    /// Control messages: every consumer joins a group of its own, so each sees them all.
    control: Topic<ControlEvent>,
    control_members: std::sync::atomic::AtomicU64,
    /// Objects that failed for good; nobody in the process consumes them.
    failed: Mutex<Vec<FailedEvent>>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus {
            ready: [Topic::new(), Topic::new(), Topic::new()],
            results: Topic::new(),
            progress: Topic::new(),
            control: Topic::new(),
            control_members: Default::default(),
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
            t.close();
        }
        self.results.close();
        self.progress.close();
        self.control.close();
    }

    /// The failed-for-good events published so far.
    pub fn failed_events(&self) -> Vec<FailedEvent> {
        self.failed.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Events waiting in the Ready topic of `zone`.
    pub fn ready_backlog(&self, zone: Zone) -> usize {
        self.ready[zone.index()].backlog()
    }
}

struct ChannelConsumer<T> {
    tx: async_channel::Sender<T>,
    rx: async_channel::Receiver<T>,
    next_token: u64,
    /// Delivered and not yet acknowledged: put back on the topic when this consumer goes.
    unacked: HashMap<u64, T>,
}

impl<T> ChannelConsumer<T> {
    fn new((tx, rx): (async_channel::Sender<T>, async_channel::Receiver<T>)) -> Self {
        ChannelConsumer {
            tx,
            rx,
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
        let mut by_zone: [Vec<ReadyEvent>; 3] = Default::default();
        for e in events {
            by_zone[e.zone.index()].push(e);
        }
        for (topic, events) in self.ready.iter().zip(by_zone) {
            if !events.is_empty() {
                topic.publish(events).map_err(Unsent::fatal)?;
            }
        }
        Ok(())
    }
    async fn publish_results(&self, events: Vec<ResultEvent>) -> Published<ResultEvent> {
        self.results.publish(events).map_err(Unsent::fatal)
    }
    async fn publish_progress(&self, events: Vec<ProgressEvent>) -> Published<ProgressEvent> {
        self.progress.publish(events).map_err(Unsent::fatal)
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
        group: &str,
    ) -> Result<Box<dyn Consumer<ReadyEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer::new(
            self.ready[zone.index()].join(group),
        )))
    }
    async fn result_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ResultEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer::new(self.results.join(group))))
    }
    async fn progress_consumer(
        &self,
        group: &str,
    ) -> Result<Box<dyn Consumer<ProgressEvent>>, BusError> {
        Ok(Box::new(ChannelConsumer::new(self.progress.join(group))))
    }
    async fn publish_control(&self, events: Vec<ControlEvent>) -> Published<ControlEvent> {
        self.control.publish(events).map_err(Unsent::fatal)
    }
    async fn control_consumer(
        &self,
        member: &str,
    ) -> Result<Box<dyn Consumer<ControlEvent>>, BusError> {
        let n = self
            .control_members
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = format!("{member}#{n}");
        Ok(Box::new(ChannelConsumer::new(self.control.join(&group))))
    }
}
