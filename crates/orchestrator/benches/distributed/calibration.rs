//! The broker alone, for calibration: messages per second produced, consumed and both at once,
//! and the round trip of a chain's link with no work.

use crate::{Services, partitions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The broker alone: `n` messages of the size of a Ready event produced (many in flight), then
/// consumed from the start. Messages per second each way.
pub(crate) fn calibrate(s: &Services, n: usize) -> (f64, f64) {
    let topic = "calibration";
    let rt = runtime();
    create_topic(s, &rt, topic, partitions());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let started = Instant::now();
    produce_all(&rt, &producer, topic, n, None);
    let produce = n as f64 / started.elapsed().as_secs_f64();
    let consumer = reader(s, "calibration", topic, 10);
    let started = Instant::now();
    consume_all(&consumer, n);
    let consume = n as f64 / started.elapsed().as_secs_f64();
    (produce, consume)
}

/// The broker writing and serving at once, as in a run: `n` messages of the product's shape (400
/// bytes, one `traceparent` header) sent with the product's producer settings while one consumer
/// reads them. Messages per second, each produced and consumed; a run moves two per object (its
/// Ready and its result). On Tansu's SQLite engine this is the broker's own limit (its storage is
/// one connection behind a lock); on memory, one producer and one consumer are the limit, and a
/// run's several clients go beyond it. On a topic of `partitions`.
pub(crate) fn calibrate_both(s: &Services, n: usize, partitions: i32) -> f64 {
    let topic = &format!("calibration-both-{partitions}");
    let rt = runtime();
    create_topic(s, &rt, topic, partitions);
    let producer: FutureProducer = orchestrator_bus_kafka::KafkaSettings::new(&s.bootstrap)
        .producer_config()
        .create()
        .unwrap();
    let consumer = reader_of(s, "calibration", topic, 10, partitions);
    let trace = orchestrator_protocol::traceparent(
        &orchestrator_protocol::RunId::new("run-calibration"),
        orchestrator_protocol::ObjectId(1),
        1,
    );
    let started = Instant::now();
    let reading = std::thread::spawn(move || consume_all(&consumer, n));
    produce_all(&rt, &producer, topic, n, Some(&trace));
    reading.join().unwrap();
    n as f64 / started.elapsed().as_secs_f64()
}

/// Reads `n` messages from `consumer`.
pub(crate) fn consume_all(consumer: &BaseConsumer, n: usize) {
    for read in 0..n {
        match consumer.poll(Duration::from_secs(30)) {
            Some(m) => drop(m.unwrap()),
            None => panic!("calibration: only {read} of {n} consumed"),
        }
    }
}

/// Sends `n` messages of 400 bytes to `topic`, with a `traceparent` header when `trace` is
/// given, many in flight (waiting whenever the local queue is full); returns once the broker has
/// acknowledged them all.
pub(crate) fn produce_all(
    rt: &tokio::runtime::Runtime,
    producer: &FutureProducer,
    topic: &str,
    n: usize,
    trace: Option<&str>,
) {
    use rdkafka::message::{Header, OwnedHeaders};
    let payload = "x".repeat(400);
    rt.block_on(async {
        let mut deliveries = Vec::with_capacity(n);
        for i in 0..n {
            let key = i.to_string();
            loop {
                let mut record = FutureRecord::to(topic).key(&key).payload(&payload);
                if let Some(trace) = trace {
                    record = record.headers(OwnedHeaders::new().insert(Header {
                        key: "traceparent",
                        value: Some(trace),
                    }));
                }
                match producer.send_result(record) {
                    Ok(d) => {
                        deliveries.push(d);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }
        for d in futures::future::join_all(deliveries).await {
            d.unwrap().unwrap();
        }
    });
}

/// A consumer of every partition of `topic` (`BENCH_PARTITIONS`) from its beginning, with no
/// group to join.
pub(crate) fn reader(s: &Services, group: &str, topic: &str, fetch_wait_ms: u32) -> BaseConsumer {
    reader_of(s, group, topic, fetch_wait_ms, partitions())
}

/// A consumer of `partitions` of `topic` from their beginning, with no group to join.
pub(crate) fn reader_of(
    s: &Services,
    group: &str,
    topic: &str,
    fetch_wait_ms: u32,
    partitions: i32,
) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    consumer
}

pub(crate) fn create_topic(
    s: &Services,
    rt: &tokio::runtime::Runtime,
    topic: &str,
    partitions: i32,
) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &s.bootstrap)
        .create()
        .unwrap();
    rt.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .unwrap();
}

/// The broker alone, a chain's links with no work: a message sent to one topic is read and
/// answered on another at once, and the answer read back before the next is sent; each way
/// with the product's producer settings and a consumer waiting at most `fetch_wait_ms`, as the
/// orchestrator and a worker do. Microseconds per round trip (two hops), sorted.
pub(crate) fn round_trips(s: &Services, n: usize, fetch_wait_ms: u32, tag: &str) -> Vec<i64> {
    let (ping, pong) = (
        format!("ping{tag}{fetch_wait_ms}"),
        format!("pong{tag}{fetch_wait_ms}"),
    );
    let rt = runtime();
    create_topic(s, &rt, &ping, partitions());
    create_topic(s, &rt, &pong, partitions());
    let producer = || -> FutureProducer {
        orchestrator_bus_kafka::KafkaSettings::new(&s.bootstrap)
            .producer_config()
            .create()
            .unwrap()
    };
    let (ping_in, pong_in) = (
        reader(s, "round-trip", &ping, fetch_wait_ms),
        reader(s, "round-trip", &pong, fetch_wait_ms),
    );
    let (ping_out, pong_out) = (producer(), producer());
    let send = |p: &FutureProducer, topic: &str, key: &str| {
        // Enqueued, not awaited: the answer is sent the moment the question is read.
        p.send_result(FutureRecord::to(topic).key(key).payload(key))
            .map_err(|(e, _)| e)
            .unwrap()
    };
    let answerer = std::thread::spawn({
        let pong = pong.clone();
        move || {
            let mut pending = Vec::new();
            for _ in 0..n {
                let m = ping_in
                    .poll(Duration::from_secs(30))
                    .expect("ping")
                    .unwrap();
                let key = std::str::from_utf8(m.key().unwrap()).unwrap().to_string();
                pending.push(send(&pong_out, &pong, &key));
            }
            rt.block_on(futures::future::join_all(pending));
        }
    });
    let mut trips = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        // Its answer is the proof of delivery; the delivery report itself is not needed.
        drop(send(&ping_out, &ping, &i.to_string()));
        pong_in
            .poll(Duration::from_secs(30))
            .expect("pong")
            .unwrap();
        trips.push(started.elapsed().as_micros() as i64);
    }
    answerer.join().unwrap();
    trips.sort_unstable();
    trips
}
