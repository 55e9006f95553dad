//! The at-least-once consumer, in the shape of Vector's Kafka source.
//!
//! * **A task per assigned partition.** Each partition gets its own queue
//!   (`split_partition_queue`) and task; a partition whose events are slow never holds back
//!   another. Within a partition, events with different keys (conversations) are handled
//!   concurrently, each key's in offset order; an offset is stored only when every earlier
//!   event of its partition is settled.
//! * **Pause, not block.** A partition with [`KafkaConfig::concurrency`] events in flight is
//!   paused at the broker and resumed when half of them are done. The client's main queue is
//!   polled all the while on its own thread, so heartbeats, rebalances and `max.poll.interval`
//!   never wait for a handler.
//! * **Rebalances drain.** The client's rebalance callback hands revoked partitions to the
//!   coordinator and waits: their tasks stop taking events, finish the ones in hand (retries
//!   are cut short), store their settled offsets and end — aborted after [`DRAIN`] — and the
//!   offsets are committed before the partition is given up. A revoked partition's task no
//!   longer exists, so it can store no offset after another member took the partition.
//! * **Poison and transient failures are different things.** An event that cannot be decoded
//!   or is rejected goes to `<topic>.dlq` at once. A transient failure (database or broker
//!   unavailable) is retried without limit, with backoff; an event failing for longer than
//!   [`STUCK`] makes the consumer's readiness condition hold (NOT_SERVING) until it succeeds.
//! * **Supervised.** A partition task that dies, a partition that has unread events but
//!   delivers none for [`STALL`], and a group in which nobody consumes (nothing assigned to
//!   this client, unread events, committed offsets standing still: tansu 0.6 settles a group
//!   like that when a member rejoins before its crashed predecessor expired) restart the whole
//!   client: it rejoins the group and continues from the committed offsets.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    consumer::{
        BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
        stream_consumer::StreamPartitionQueue,
    },
    error::{KafkaError, RDKafkaErrorCode},
    statistics::Statistics,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, backoff, dead_letter, topics,
};
use crate::{
    metrics::{GroupLabels, KafkaMetrics, OutcomeLabels, TopicLabels},
    readiness::Readiness,
    telemetry,
};

/// Longest a revoked partition (or, at shutdown, every partition) may take to finish the
/// events in hand before they are abandoned to the next owner.
pub const DRAIN: Duration = Duration::from_secs(10);
/// An event failing this long makes the consumer not ready.
pub const STUCK: Duration = Duration::from_secs(10);
/// A partition with unread events that delivers none this long, a group that does not
/// settle this long, or a client with nothing assigned while its group's committed offsets
/// stand still behind unread events this long, restarts the client.
pub const STALL: Duration = Duration::from_secs(30);

/// What one consumer consumes and with what.
#[derive(Clone)]
pub struct ConsumerSpec {
    pub cfg: KafkaConfig,
    pub group: String,
    pub topics: Vec<String>,
    pub handler: Arc<dyn Handler>,
    pub producer: Producer,
    pub metrics: KafkaMetrics,
    pub readiness: Readiness,
    /// Events failing for longer than [`STUCK`] right now.
    stuck: Arc<AtomicUsize>,
}

impl ConsumerSpec {
    pub fn new(
        cfg: KafkaConfig,
        group: String,
        topics: Vec<String>,
        handler: Arc<dyn Handler>,
        producer: Producer,
        metrics: KafkaMetrics,
        readiness: Readiness,
    ) -> Self {
        Self {
            cfg,
            group,
            topics,
            handler,
            producer,
            metrics,
            readiness,
            stuck: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn condition(&self) -> String {
        format!("kafka-consumer {}", self.group)
    }

    fn handler_condition(&self) -> String {
        format!("handler {}", self.group)
    }
}

type TopicPartition = (String, i32);

enum Callback {
    /// Split these partitions' queues and start their tasks; drop the sender when done.
    Assigned(Vec<TopicPartition>, std::sync::mpsc::SyncSender<()>),
    /// Drain these partitions' tasks; drop the sender when done.
    Revoked(Vec<TopicPartition>, std::sync::mpsc::SyncSender<()>),
}

/// What the latest client statistics say.
#[derive(Clone, Default)]
struct StatsView {
    at: Option<Instant>,
    broker_up: bool,
    /// The group membership is settled ("up" and "steady").
    group_steady: bool,
    /// Unread events (high watermark minus position) per assigned partition.
    lag: HashMap<TopicPartition, i64>,
}

struct Ctx {
    callbacks: mpsc::UnboundedSender<Callback>,
    stats: Mutex<StatsView>,
}

impl ClientContext for Ctx {
    fn stats(&self, s: Statistics) {
        let broker_up = s.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP");
        let lag = s
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.partition >= 0 && p.desired)
                    .map(|p| ((t.topic.clone(), p.partition), p.consumer_lag))
            })
            .collect();
        let group_steady = s
            .cgrp
            .as_ref()
            .is_some_and(|g| g.state == "up" && g.join_state == "steady");
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = StatsView {
            at: Some(Instant::now()),
            broker_up,
            group_steady,
            lag,
        };
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl Ctx {
    /// Hands a rebalance to the coordinator and waits until it is done with it. Runs on the
    /// client's polling thread, never on a runtime worker.
    fn rendezvous(&self, make: impl FnOnce(std::sync::mpsc::SyncSender<()>) -> Callback) {
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        if self.callbacks.send(make(tx)).is_ok() {
            // Returns when the coordinator drops its sender (or is gone).
            while rx.recv().is_ok() {}
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            // rust-rdkafka#681: an empty list may come with an invalid pointer.
            Rebalance::Assign(tpl) if tpl.capacity() > 0 => {
                let list = partitions(tpl);
                self.rendezvous(|tx| Callback::Assigned(list, tx));
            }
            Rebalance::Revoke(tpl) if tpl.capacity() > 0 => {
                let list = partitions(tpl);
                self.rendezvous(|tx| Callback::Revoked(list, tx));
                commit(consumer, "rebalance");
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "consumer group rebalance failed"),
            _ => {}
        }
    }
}

fn commit<C: Consumer<X>, X: ConsumerContext>(consumer: &C, when: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(error = %e, when, "committing offsets failed; the events after the last commit are delivered again")
        }
    }
}

type Client = StreamConsumer<Ctx>;

/// Consumes until `shutdown`, restarting the client when it fails (module docs).
pub async fn run_consumer(spec: ConsumerSpec, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut restarts = 0u32;
    loop {
        match consume_once(&spec, &shutdown).await {
            Ok(()) => {
                spec.readiness.restore(&spec.condition());
                return Ok(());
            }
            Err(reason) => {
                restarts += 1;
                spec.metrics
                    .consumer_restarts
                    .get_or_create(&GroupLabels {
                        group: spec.group.clone(),
                    })
                    .inc();
                spec.readiness.degrade(
                    &spec.condition(),
                    format!("restarting the Kafka consumer: {reason}"),
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff(restarts.min(6))) => {}
                }
            }
        }
    }
}

/// Events settled (or abandoned) by the tasks of one client.
struct Part {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    /// Events read but not settled.
    in_flight: Arc<AtomicUsize>,
    /// When an event last arrived (ms since the Unix epoch).
    last_event_ms: Arc<AtomicI64>,
}

async fn consume_once(spec: &ConsumerSpec, shutdown: &CancellationToken) -> Result<(), String> {
    let (cb_tx, mut callbacks) = mpsc::unbounded_channel();
    let ctx = Ctx {
        callbacks: cb_tx,
        stats: Mutex::new(StatsView::default()),
    };
    let cfg = &spec.cfg;
    let consumer: Arc<Client> = Arc::new(
        cfg.client()
            .set("group.id", &spec.group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (cfg.session_timeout_ms / 4).max(250).to_string(),
            )
            .set("topic.metadata.refresh.interval.ms", "5000")
            // Also the rebalance timeout: how long the group waits for a member that died
            // without leaving (SIGKILL) before reassigning its partitions.
            .set("max.poll.interval.ms", "60000")
            // tansu answers every fetch only when this expires (it sleeps out the wait even when
            // data is there), so it is the per-hop latency and the broker's polling load.
            .set("fetch.wait.max.ms", cfg.fetch_wait_ms.to_string())
            .set("statistics.interval.ms", "5000")
            .create_with_context(ctx)
            .map_err(|e| format!("creating the consumer: {e}"))?,
    );
    let names: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|e| format!("subscribing to {names:?}: {e}"))?;
    tracing::info!(group = %spec.group, topics = ?spec.topics, concurrency = cfg.concurrency, "consuming");

    // The client's main queue, polled on a thread of its own: it serves rebalances (which
    // block in the callback while partitions drain), heartbeats and errors. Events never
    // arrive there: every assigned partition has its own queue.
    let (err_tx, mut client_errors) = mpsc::unbounded_channel::<String>();
    let driver_stop = CancellationToken::new();
    let driver = {
        let (consumer, stop) = (consumer.clone(), driver_stop.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        m = consumer.recv() => {
                            let report = match m {
                                Ok(m) => format!("an event of {}/{} arrived on the main queue", m.topic(), m.partition()),
                                Err(e) => e.to_string(),
                            };
                            if err_tx.send(report).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        })
    };

    let mut parts: HashMap<TopicPartition, Part> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut broker_lost: Option<Instant> = None;
    let mut unsettled: Option<Instant> = None;
    // Nothing assigned since, and the group's committed offsets and lag seen then.
    let mut idle: Option<(Instant, Option<GroupProgress>)> = None;
    let started = Instant::now();
    let result = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            Some(cb) = callbacks.recv() => match cb {
                Callback::Assigned(list, done) => {
                    for tp in list {
                        if let Some(old) = parts.remove(&tp) {
                            old.stop.cancel();
                            old.handle.abort();
                        }
                        match consumer.split_partition_queue(&tp.0, tp.1) {
                            Some(queue) => {
                                tracing::debug!(topic = %tp.0, partition = tp.1, "partition assigned");
                                parts.insert(tp.clone(), start_partition(spec, &consumer, tp, queue));
                            }
                            None => tracing::error!(topic = %tp.0, partition = tp.1, "no queue for an assigned partition"),
                        }
                    }
                    drop(done);
                }
                Callback::Revoked(list, done) => {
                    let revoked: Vec<Part> = list.iter().filter_map(|tp| parts.remove(tp)).collect();
                    tracing::debug!(group = %spec.group, partitions = ?list, "partitions revoked; draining");
                    drain(revoked).await;
                    drop(done);
                }
            },
            Some(report) = client_errors.recv() => {
                if report.contains("main queue") {
                    break Err(report);
                }
                tracing::warn!(group = %spec.group, error = %report, "consumer error");
            }
            _ = tick.tick() => {
                if let Some((tp, _)) = parts.iter().find(|(_, p)| p.handle.is_finished()) {
                    break Err(format!("the task of partition {}/{} ended", tp.0, tp.1));
                }
                let stats = consumer.context().stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if stats.at.is_none() {
                    continue;
                }
                if stats.broker_up {
                    // Connected again, or a restarted client running: ready (as far as the
                    // consumer goes).
                    broker_lost = None;
                    spec.readiness.restore(&spec.condition());
                } else {
                    let since = *broker_lost.get_or_insert_with(Instant::now);
                    if since.elapsed() > super::producer::STALL {
                        spec.readiness.degrade(&spec.condition(), format!(
                            "no connection to the Kafka broker ({}) for {} s", cfg.brokers, since.elapsed().as_secs()));
                    }
                }
                // A group that stays unsettled with nothing assigned never recovers by itself
                // (tansu after a pause): rejoin as a new member.
                if stats.broker_up && parts.is_empty() && !stats.group_steady {
                    let since = *unsettled.get_or_insert_with(Instant::now);
                    if since.elapsed() > STALL {
                        break Err(format!("the consumer group has not settled for {} s", since.elapsed().as_secs()));
                    }
                } else {
                    unsettled = None;
                }
                if started.elapsed() > STALL
                    && let Some(stalled) = stalled_partition(&parts, &stats.lag)
                {
                    break Err(stalled);
                }
                // Nothing assigned here: is anyone consuming? Checked every STALL.
                if !parts.is_empty() || !stats.broker_up {
                    idle = None;
                } else {
                    let (since, seen) = idle.get_or_insert_with(|| (Instant::now(), None));
                    if since.elapsed() > STALL {
                        let now = group_progress(&consumer, &spec.topics).await;
                        if let (Some(before), Some(now)) = (seen.as_ref(), now.as_ref())
                            && now.unread > 0
                            && now.committed == before.committed
                        {
                            break Err(format!(
                                "nothing is assigned to this member and the group's committed offsets stood still for {} s with {} unread event(s)",
                                since.elapsed().as_secs(),
                                now.unread
                            ));
                        }
                        *since = Instant::now();
                        *seen = now;
                    }
                }
            }
        }
    };
    // Give up every partition: finish what is in hand, store it, commit, leave the group.
    drain(parts.into_values().collect()).await;
    // From here no rebalance waits for this loop: a callback's rendezvous fails at once.
    drop(callbacks);
    driver_stop.cancel();
    let _ = driver.await;
    let _ = tokio::task::spawn_blocking(move || {
        commit(&*consumer, "stop");
        drop(consumer);
    })
    .await;
    tracing::info!(group = %spec.group, "consumer stopped");
    result
}

/// The group's committed offset of every partition of `topics`, and the events after them.
#[derive(Debug, PartialEq)]
struct GroupProgress {
    committed: Vec<(String, i32, i64)>,
    unread: i64,
}

async fn group_progress(consumer: &Arc<Client>, topics: &[String]) -> Option<GroupProgress> {
    let (consumer, topics) = (consumer.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(5);
        let mut tpl = TopicPartitionList::new();
        let mut high = HashMap::new();
        for t in &topics {
            let md = consumer.fetch_metadata(Some(t), timeout).ok()?;
            for p in md.topics().first()?.partitions() {
                let (low, hi) = consumer.fetch_watermarks(t, p.id(), timeout).ok()?;
                tpl.add_partition(t, p.id());
                high.insert((t.clone(), p.id()), (low, hi));
            }
        }
        let committed = consumer.committed_offsets(tpl, timeout).ok()?;
        let mut out = GroupProgress {
            committed: Vec::new(),
            unread: 0,
        };
        for e in committed.elements() {
            let (low, hi) = high[&(e.topic().to_owned(), e.partition())];
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            out.unread += (hi - at).max(0);
            out.committed
                .push((e.topic().to_owned(), e.partition(), at));
        }
        out.committed.sort();
        Some(out)
    })
    .await
    .ok()
    .flatten()
}

/// A partition this client owns that has unread events, none in flight, and has delivered
/// nothing for [`STALL`].
fn stalled_partition(
    parts: &HashMap<TopicPartition, Part>,
    lag: &HashMap<TopicPartition, i64>,
) -> Option<String> {
    let now = chrono::Utc::now().timestamp_millis();
    parts.iter().find_map(|(tp, p)| {
        let unread = lag.get(tp).copied().unwrap_or(0);
        let quiet =
            Duration::from_millis((now - p.last_event_ms.load(Ordering::Relaxed)).max(0) as u64);
        (unread > 0 && p.in_flight.load(Ordering::Relaxed) == 0 && quiet > STALL).then(|| {
            format!(
                "partition {}/{} has {unread} unread event(s) but delivered none for {} s",
                tp.0,
                tp.1,
                quiet.as_secs()
            )
        })
    })
}

/// Stops partition tasks and waits for them to settle what they hold, up to [`DRAIN`].
async fn drain(parts: Vec<Part>) {
    for p in &parts {
        p.stop.cancel();
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    for p in parts {
        let abort = p.handle.abort_handle();
        if tokio::time::timeout_at(deadline, p.handle).await.is_err() {
            tracing::warn!(
                "a partition did not finish its events within {DRAIN:?}; they are delivered again to the next owner"
            );
            abort.abort();
        }
    }
}

fn start_partition(
    spec: &ConsumerSpec,
    consumer: &Arc<Client>,
    tp: TopicPartition,
    queue: StreamPartitionQueue<Ctx>,
) -> Part {
    let stop = CancellationToken::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let last_event_ms = Arc::new(AtomicI64::new(chrono::Utc::now().timestamp_millis()));
    let task = PartitionTask {
        spec: spec.clone(),
        consumer: consumer.clone(),
        tp,
        stop: stop.clone(),
        in_flight: in_flight.clone(),
        last_event_ms: last_event_ms.clone(),
    };
    Part {
        stop,
        handle: tokio::spawn(task.run(queue)),
        in_flight,
        last_event_ms,
    }
}

struct PartitionTask {
    spec: ConsumerSpec,
    consumer: Arc<Client>,
    tp: TopicPartition,
    stop: CancellationToken,
    in_flight: Arc<AtomicUsize>,
    last_event_ms: Arc<AtomicI64>,
}

impl PartitionTask {
    async fn run(self, queue: StreamPartitionQueue<Ctx>) {
        let cap = self.spec.cfg.concurrency.max(1);
        // Offsets read and whether each is settled; the settled prefix is stored.
        let mut offsets: BTreeMap<i64, bool> = BTreeMap::new();
        // Events waiting behind a running event with the same key (one key at a time).
        let mut waiting: HashMap<Option<String>, VecDeque<Delivery>> = HashMap::new();
        let mut running: JoinSet<(Option<String>, i64, bool)> = JoinSet::new();
        let mut stopping = false;
        let mut paused = false;
        loop {
            if stopping && running.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(done) = running.join_next(), if !running.is_empty() => {
                    let Ok((key, offset, settled)) = done else {
                        tracing::error!(topic = %self.tp.0, partition = self.tp.1, "a handler panicked; restarting the consumer");
                        return;
                    };
                    if settled {
                        if let Some(s) = offsets.get_mut(&offset) {
                            *s = true;
                        }
                        self.store_settled_prefix(&mut offsets);
                    }
                    match waiting.get_mut(&key).and_then(VecDeque::pop_front) {
                        Some(next) if !stopping => self.spawn(&mut running, next),
                        _ => {
                            waiting.remove(&key);
                        }
                    }
                }
                _ = self.stop.cancelled(), if !stopping => {
                    // Take nothing new; events queued behind a running one are left for
                    // the next owner (not settled, so not stored).
                    stopping = true;
                    waiting.values_mut().for_each(VecDeque::clear);
                }
                m = queue.recv(), if !stopping && offsets.len() < cap => {
                    let d = match m {
                        Ok(m) => Delivery::from_message(&m),
                        Err(e) => {
                            tracing::warn!(topic = %self.tp.0, partition = self.tp.1, error = %e, "partition read error");
                            continue;
                        }
                    };
                    self.last_event_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                    offsets.insert(d.offset, false);
                    match waiting.get_mut(&d.key) {
                        Some(queue) => queue.push_back(d),
                        None => {
                            waiting.insert(d.key.clone(), VecDeque::new());
                            self.spawn(&mut running, d);
                        }
                    }
                }
            }
            self.in_flight.store(offsets.len(), Ordering::Relaxed);
            // Back-pressure at the broker: a full partition stops fetching until half is done.
            if !paused && offsets.len() >= cap {
                paused = self.set_paused(true);
            } else if paused && offsets.len() <= cap / 2 {
                paused = !self.set_paused(false);
            }
        }
        if paused {
            self.set_paused(false);
        }
    }

    fn set_paused(&self, pause: bool) -> bool {
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&self.tp.0, self.tp.1, Offset::Invalid)
            .is_err()
        {
            return false;
        }
        let r = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(topic = %self.tp.0, partition = self.tp.1, pause, error = %e, "pausing/resuming a partition failed");
                false
            }
        }
    }

    fn spawn(&self, running: &mut JoinSet<(Option<String>, i64, bool)>, d: Delivery) {
        let spec = self.spec.clone();
        let stop = self.stop.clone();
        let span = tracing::info_span!("consume", topic = %d.topic, partition = d.partition, offset = d.offset);
        telemetry::set_parent_from(&span, &d.trace_headers());
        running.spawn(
            async move {
                let settled = process(&spec, &d, &stop).await;
                (d.key, d.offset, settled)
            }
            .instrument(span),
        );
    }

    /// Stores the offset after the longest settled prefix (nothing after an unsettled event).
    fn store_settled_prefix(&self, offsets: &mut BTreeMap<i64, bool>) {
        let mut last = None;
        while let Some((&offset, &done)) = offsets.first_key_value() {
            if !done {
                break;
            }
            offsets.pop_first();
            last = Some(offset);
        }
        if let Some(offset) = last
            && let Err(e) = self.consumer.store_offset(&self.tp.0, self.tp.1, offset)
        {
            tracing::warn!(error = %e, topic = %self.tp.0, partition = self.tp.1, "storing an offset failed; the event may be delivered again");
        }
    }
}

/// Counts events failing for longer than [`STUCK`]; the consumer is not ready while any is.
struct StuckGuard<'a> {
    spec: &'a ConsumerSpec,
    entered: bool,
}

impl<'a> StuckGuard<'a> {
    fn new(spec: &'a ConsumerSpec) -> Self {
        Self {
            spec,
            entered: false,
        }
    }

    fn failing(&mut self, since: Instant, error: &HandleError, d: &Delivery) {
        if since.elapsed() < STUCK {
            return;
        }
        if !self.entered {
            self.entered = true;
            self.spec.stuck.fetch_add(1, Ordering::Relaxed);
        }
        self.spec.readiness.degrade(
            &self.spec.handler_condition(),
            format!(
                "{} event(s) failing for more than {} s (retried until they succeed); latest: {}/{}@{}: {error}",
                self.spec.stuck.load(Ordering::Relaxed),
                STUCK.as_secs(),
                d.topic,
                d.partition,
                d.offset
            ),
        );
    }
}

impl Drop for StuckGuard<'_> {
    fn drop(&mut self) {
        if self.entered && self.spec.stuck.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.spec.readiness.restore(&self.spec.handler_condition());
        }
    }
}

/// Handles one event: retried without limit while the failure is transient, dead-lettered at
/// once when it is poison. Returns false only when `stop` interrupted it before it settled.
async fn process(spec: &ConsumerSpec, d: &Delivery, stop: &CancellationToken) -> bool {
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut stuck = StuckGuard::new(spec);
    let outcome = loop {
        attempt += 1;
        match spec.handler.handle(d).await {
            Ok(Handled::Done) => break "ok",
            Ok(Handled::Duplicate) => break "duplicate",
            Err(e) => {
                let poison = matches!(e, HandleError::Undecodable(_) | HandleError::Rejected(_));
                // Dead letters are never dead-lettered again (there is no `.dlq.dlq`), nor
                // are the events of consumers that opted out (observers): retry until it
                // clears.
                let may_dead_letter =
                    spec.cfg.dead_letter && !d.topic.ends_with(topics::DLQ_SUFFIX);
                if poison && may_dead_letter {
                    if !dead_letter(&spec.group, d, &e, attempt, &spec.producer, stop).await {
                        return false;
                    }
                    break "dead_lettered";
                }
                spec.metrics
                    .consumed
                    .get_or_create(&OutcomeLabels {
                        topic: d.topic.clone(),
                        outcome: "retried".into(),
                    })
                    .inc();
                tracing::warn!(error = %e, attempt, "handling failed; retrying");
                stuck.failing(started, &e, d);
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
            }
        }
    };
    spec.metrics
        .handle_seconds
        .get_or_create(&TopicLabels {
            topic: d.topic.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    spec.metrics
        .consumed
        .get_or_create(&OutcomeLabels {
            topic: d.topic.clone(),
            outcome: outcome.into(),
        })
        .inc();
    true
}
