//! The bus's producer: librdkafka's, each send answered through a oneshot channel by a thread
//! that serves delivery reports as they come and otherwise sleeps in one-second polls.
//!
//! rdkafka's `FutureProducer` polls every 100 ms and spins through the last part of each poll,
//! whose deadline it rounds down to whole milliseconds: about 1 % of a core in a process with
//! nothing to send (most of an idle worker's or serve's CPU).
//!
//! A workaround for librdkafka 2.12 lives here too: sends go out in waves. A send made while an
//! earlier one is unacknowledged is held, and every send held leaves at once when the last one in
//! flight is acknowledged (Nagle's algorithm, per producer); a send with nothing in flight (a link
//! of a chain) is handed over at once. librdkafka caps an idempotent producer's requests in flight per
//! partition with its count of *messages* in flight (five), so under load a partition had one
//! request in flight, the messages queued behind it waited for its answer, and the broker thread
//! polled its socket without sleeping meanwhile: more CPU than the rest of serve's work. Handed
//! over a wave at a time (and gathered for `linger.ms`, 1 ms by default, into one request per
//! partition), what librdkafka holds it can always send. The cost: a partition whose leader is
//! gone holds back the producer's other sends until librdkafka's retries find the new one.

use crate::errors::is_too_large;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the report thread sleeps in one poll when nothing is reported.
const POLL: Duration = Duration::from_secs(1);

/// Sends held at most (as many as librdkafka's local queue, `queue.buffering.max.messages`):
/// past it a send is refused as a full queue, the caller's back-pressure.
const MAX_HELD: usize = 100_000;

/// How a send ended: delivered, or the error and the size of the payload not delivered.
pub(crate) type Delivered = Result<(), (KafkaError, usize)>;

/// A delivery that the broker has yet to acknowledge; `Err` if the producer went away first.
pub(crate) type Delivery = oneshot::Receiver<Delivered>;

/// One send waiting for the wave in flight to end.
struct Held {
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
    reply: oneshot::Sender<Delivered>,
}

/// The sends handed to librdkafka and not yet acknowledged, the ones held for the next wave, and
/// how the wave in flight failed, if a send of it did (a message too large fails alone).
#[derive(Default)]
struct Wave {
    unacknowledged: usize,
    held: Vec<Held>,
    failed: Option<KafkaError>,
}

/// Reports of the wave in flight, answered together when its last one comes: each answer wakes
/// the send that waits for it, and one wake for a wave (not one per message, the waiter going
/// back to sleep in between) spares both threads a context switch per message. Sends made
/// meanwhile are held for the next wave, so every wave ends.
type Answers = Arc<Mutex<Vec<(oneshot::Sender<Delivered>, Delivered)>>>;

/// Hands each delivery report to the send that waits for it and, with the last of a wave, sends
/// the held ones (from the report thread, inside its poll).
pub(crate) struct Reports {
    wave: Arc<Mutex<Wave>>,
    producer: OnceLock<Weak<BaseProducer<Reports>>>,
    answers: Answers,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(_) => Ok(()),
            Err((e, message)) => Err((e.clone(), message.payload().map_or(0, <[u8]>::len))),
        };
        let (over, ended) = {
            let mut wave = lock(&self.wave);
            wave.unacknowledged = wave.unacknowledged.saturating_sub(1);
            if let Err((e, _)) = &delivered
                && !is_too_large(e)
            {
                wave.failed.get_or_insert_with(|| e.clone());
            }
            if wave.unacknowledged == 0 && wave.held.is_empty() {
                wave.failed = None; // the wave is over and nobody waits on it
            }
            let over = wave.unacknowledged == 0;
            (over, over && !wave.held.is_empty())
        };
        // The report thread holds a handle while it polls: this one is never the last.
        if ended && let Some(producer) = self.producer.get().and_then(Weak::upgrade) {
            send_held(&producer, &self.wave);
        }
        if let Ok(mut answers) = self.answers.lock() {
            answers.push((*reply, delivered));
        }
        if over {
            answer(&self.answers);
        }
    }
}

/// Answers the reports taken so far; a send that waited may be gone (a dropped publish).
fn answer(answers: &Answers) {
    let taken = answers
        .lock()
        .map(|mut a| std::mem::take(&mut *a))
        .unwrap_or_default();
    for (reply, delivered) in taken {
        let _ = reply.send(delivered);
    }
}

fn lock(wave: &Mutex<Wave>) -> MutexGuard<'_, Wave> {
    // The state stays whole at every step, so one a panicking thread left is still good.
    wave.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cheap handle to one producer; the producer lives while a handle does.
#[derive(Clone)]
pub struct Producer {
    base: Arc<BaseProducer<Reports>>,
    wave: Arc<Mutex<Wave>>,
}

impl Producer {
    pub(crate) fn create(config: &ClientConfig) -> KafkaResult<Producer> {
        let wave = Arc::new(Mutex::new(Wave::default()));
        let answers = Answers::default();
        let reports = Reports {
            wave: wave.clone(),
            producer: OnceLock::new(),
            answers: answers.clone(),
        };
        let base = Arc::new(BaseProducer::from_config_and_context(config, reports)?);
        let reported: Weak<BaseProducer<Reports>> = Arc::downgrade(&base);
        let _ = rdkafka::producer::Producer::context(&*base)
            .producer
            .set(reported.clone());
        std::thread::Builder::new()
            .name("bus delivery reports".into())
            .spawn(move || {
                // Ends once every handle is gone; the producer then goes with this thread's
                // last reference (purging and reporting what it still held), or with another
                // thread's: either way what it reported is answered.
                while let Some(producer) = reported.upgrade() {
                    producer.poll(POLL);
                }
                answer(&answers);
            })
            .map_err(|e| KafkaError::ClientCreation(format!("delivery report thread: {e}")))?;
        Ok(Producer { base, wave })
    }

    /// Enqueues one message; its delivery is answered through the receiver. A full local
    /// queue or a message that can never be sent is refused at once with its error (or, for
    /// one that was held, through the receiver).
    pub(crate) fn send(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<Delivery, KafkaError> {
        let (reply, rx) = oneshot::channel();
        let mut wave = lock(&self.wave);
        if wave.unacknowledged > 0 || !wave.held.is_empty() {
            if wave.held.len() >= MAX_HELD {
                return Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
            }
            wave.held.push(Held {
                topic: topic.to_owned(),
                key: key.map(str::to_owned),
                payload: payload.to_vec(),
                headers,
                reply,
            });
            return Ok(rx);
        }
        hand_over(&self.base, topic, key, payload, headers, reply).map_err(|(e, _)| e)?;
        wave.unacknowledged += 1;
        Ok(rx)
    }

    /// The client underneath, for metadata requests.
    pub(crate) fn client(&self) -> &rdkafka::client::Client<Reports> {
        rdkafka::producer::Producer::client(&*self.base)
    }
}

/// Sends every held send as the next wave, unless one is in flight; a send librdkafka refuses
/// is answered with its error. After a wave that failed (the broker away, the producer fenced),
/// the held sends fail at once with its error instead: their callers try again (with a fresh
/// producer) without waiting out a second message timeout here.
fn send_held(base: &BaseProducer<Reports>, wave: &Mutex<Wave>) {
    let mut wave = lock(wave);
    if wave.unacknowledged > 0 {
        return;
    }
    if let Some(e) = wave.failed.take() {
        for h in std::mem::take(&mut wave.held) {
            let _ = h.reply.send(Err((e.clone(), h.payload.len())));
        }
        return;
    }
    for h in std::mem::take(&mut wave.held) {
        let size = h.payload.len();
        match hand_over(
            base,
            &h.topic,
            h.key.as_deref(),
            &h.payload,
            h.headers,
            h.reply,
        ) {
            Ok(()) => wave.unacknowledged += 1,
            Err((e, reply)) => {
                let _ = reply.send(Err((e, size)));
            }
        }
    }
}

/// One message to librdkafka; on refusal, the error and the reply channel back.
fn hand_over(
    base: &BaseProducer<Reports>,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    headers: Option<OwnedHeaders>,
    reply: oneshot::Sender<Delivered>,
) -> Result<(), (KafkaError, oneshot::Sender<Delivered>)> {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(reply)).payload(payload);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(h) = headers {
        record = record.headers(h);
    }
    base.send(record)
        .map_err(|(e, record)| (e, *record.delivery_opaque))
}
