//! The bus's producer: librdkafka's, each send answered through a oneshot channel by a thread
//! that serves delivery reports as they come and otherwise sleeps in one-second polls.
//!
//! rdkafka's `FutureProducer` polls every 100 ms and spins through the last part of each poll,
//! whose deadline it rounds down to whole milliseconds: about 1 % of a core in a process with
//! nothing to send (most of an idle worker's or serve's CPU).

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the report thread sleeps in one poll when nothing is reported.
const POLL: Duration = Duration::from_secs(1);

/// How a send ended: delivered, or the error and the size of the payload not delivered.
pub(crate) type Delivered = Result<(), (KafkaError, usize)>;

/// A delivery that the broker has yet to acknowledge; `Err` if the producer went away first.
pub(crate) type Delivery = oneshot::Receiver<Delivered>;

/// Hands each delivery report to the send that waits for it.
pub(crate) struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiting: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(_) => Ok(()),
            Err((e, message)) => Err((e.clone(), message.payload().map_or(0, <[u8]>::len))),
        };
        // The send that waited may be gone (a dropped publish): nothing to tell.
        let _ = waiting.send(delivered);
    }
}

/// A cheap handle to one producer; the producer lives while a handle does.
#[derive(Clone)]
pub struct Producer {
    base: Arc<BaseProducer<Reports>>,
}

impl Producer {
    pub(crate) fn create(config: &ClientConfig) -> KafkaResult<Producer> {
        let base = Arc::new(BaseProducer::from_config_and_context(config, Reports)?);
        let reported: Weak<BaseProducer<Reports>> = Arc::downgrade(&base);
        std::thread::Builder::new()
            .name("bus delivery reports".into())
            .spawn(move || {
                // Ends once every handle is gone; the producer then goes with this thread's
                // last reference (purging and reporting what it still held).
                while let Some(producer) = reported.upgrade() {
                    producer.poll(POLL);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("delivery report thread: {e}")))?;
        Ok(Producer { base })
    }

    /// Enqueues one message; its delivery is answered through the receiver. A full local
    /// queue or a message that can never be sent is refused at once with its error.
    pub(crate) fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<Delivery, KafkaError> {
        let (tx, rx) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(tx)).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        match self.base.send(record) {
            Ok(()) => Ok(rx),
            Err((e, _)) => Err(e),
        }
    }

    /// The client underneath, for metadata requests.
    pub(crate) fn client(&self) -> &rdkafka::client::Client<Reports> {
        rdkafka::producer::Producer::client(&*self.base)
    }
}
