//! Pub/Sub: who listens to which channel or pattern, and each subscriber's mailbox.
//!
//! PUBLISH runs on the publisher's thread: it finds the subscribers (a read lock on the
//! channel table, a scan of the patterns) and appends the message to each one's mailbox, in
//! order, then wakes its connection, which writes what is in its mailbox. So the messages of
//! one publisher reach each subscriber in the order they were published, and a publisher never
//! waits for a subscriber's socket.
//!
//! A mailbox counts the bytes waiting in it. A subscriber that does not read is disconnected
//! when that passes `client-output-buffer-limit pubsub` (hard limit at once, soft limit after
//! it has stayed above for the given seconds), so it cannot grow memory without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use magpie_protocol::Reply;
use magpie_store::glob_match;

use crate::notify;

/// What a subscriber is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    Message { channel: Bytes, payload: Bytes },
    PMessage { pattern: Bytes, channel: Bytes, payload: Bytes },
    SMessage { channel: Bytes, payload: Bytes },
}

impl Push {
    /// Bytes it holds, for the output buffer limit.
    fn size(&self) -> usize {
        match self {
            Push::Message { channel, payload } | Push::SMessage { channel, payload } => {
                channel.len() + payload.len() + 32
            }
            Push::PMessage { pattern, channel, payload } => pattern.len() + channel.len() + payload.len() + 40,
        }
    }

    /// Writes it as Redis does: a push in RESP3, an array in RESP2.
    pub fn write(&self, out: &mut Reply) {
        match self {
            Push::Message { channel, payload } => {
                out.push(3);
                out.bulk(b"message");
                out.bulk(channel);
                out.bulk(payload);
            }
            Push::SMessage { channel, payload } => {
                out.push(3);
                out.bulk(b"smessage");
                out.bulk(channel);
                out.bulk(payload);
            }
            Push::PMessage { pattern, channel, payload } => {
                out.push(4);
                out.bulk(b"pmessage");
                out.bulk(pattern);
                out.bulk(channel);
                out.bulk(payload);
            }
        }
    }
}

/// A subscriber's queue of messages not yet written to its socket.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Push>>,
    bytes: AtomicUsize,
    /// Wakes the connection when messages arrive (or it must close).
    pub notify: Notify,
    /// Set when the subscriber went over its output buffer limit: the connection closes.
    overflowed: AtomicBool,
    /// When the queue went over the soft limit (ms since `epoch`), 0 if it is under.
    soft_since: AtomicU64,
}

impl Mailbox {
    pub fn new() -> Arc<Mailbox> {
        Arc::new(Mailbox::default())
    }

    /// Takes every queued message, oldest first.
    pub fn drain(&self, into: &mut Vec<Push>) {
        let mut q = self.queue.lock();
        into.extend(q.drain(..));
        self.bytes.store(0, Ordering::Relaxed);
        self.soft_since.store(0, Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }

    /// Whether the subscriber went over its limit and must be disconnected.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Queues a message, enforcing the limits; false if the subscriber is over them.
    fn deliver(&self, msg: Push, limits: &Limits) -> bool {
        if self.overflowed() {
            return false;
        }
        let size = msg.size();
        self.queue.lock().push_back(msg);
        let total = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        let (hard, soft, soft_secs) = limits.get();
        let mut over = hard > 0 && total > hard;
        if soft > 0 && total > soft {
            let now = limits.epoch.elapsed().as_millis() as u64 + 1;
            let since = match self.soft_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => now,
                Err(t) => t,
            };
            over |= now.saturating_sub(since) >= soft_secs * 1000;
        }
        if over {
            self.overflowed.store(true, Ordering::Relaxed);
            self.queue.lock().clear();
        }
        self.notify.notify_one();
        !over
    }
}

/// `client-output-buffer-limit pubsub <hard> <soft> <soft seconds>` (Redis's default 32mb 8mb
/// 60).
pub struct Limits {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_secs: AtomicU64,
    epoch: Instant,
}

impl Limits {
    pub fn new(hard: u64, soft: u64, soft_secs: u64) -> Limits {
        Limits {
            hard: AtomicU64::new(hard),
            soft: AtomicU64::new(soft),
            soft_secs: AtomicU64::new(soft_secs),
            epoch: Instant::now(),
        }
    }

    pub fn get(&self) -> (usize, usize, u64) {
        (
            self.hard.load(Ordering::Relaxed) as usize,
            self.soft.load(Ordering::Relaxed) as usize,
            self.soft_secs.load(Ordering::Relaxed),
        )
    }

    pub fn set(&self, hard: u64, soft: u64, soft_secs: u64) {
        self.hard.store(hard, Ordering::Relaxed);
        self.soft.store(soft, Ordering::Relaxed);
        self.soft_secs.store(soft_secs, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Sub {
    client: u64,
    mailbox: Arc<Mailbox>,
}

/// Which table a subscription is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

#[derive(Default)]
struct Table {
    /// Channel (or pattern) -> subscribers, in subscription order.
    subs: HashMap<Bytes, Vec<Sub>>,
}

impl Table {
    fn add(&mut self, name: &Bytes, client: u64, mailbox: &Arc<Mailbox>) {
        let subs = self.subs.entry(name.clone()).or_default();
        if !subs.iter().any(|s| s.client == client) {
            subs.push(Sub { client, mailbox: mailbox.clone() });
        }
    }

    fn remove(&mut self, name: &[u8], client: u64) {
        if let Some(subs) = self.subs.get_mut(name) {
            subs.retain(|s| s.client != client);
            if subs.is_empty() {
                self.subs.remove(name);
            }
        }
    }
}

/// Every subscription on the server, and the keyspace notification settings.
pub struct PubSub {
    channels: RwLock<Table>,
    patterns: RwLock<Table>,
    shard: RwLock<Table>,
    /// `notify-keyspace-events`, as Redis's flags (see [`notify`]).
    pub events: AtomicU32,
    pub limits: Limits,
}

impl Default for PubSub {
    fn default() -> PubSub {
        PubSub {
            channels: RwLock::default(),
            patterns: RwLock::default(),
            shard: RwLock::default(),
            events: AtomicU32::new(0),
            limits: Limits::new(32 << 20, 8 << 20, 60),
        }
    }
}

impl PubSub {
    fn table(&self, kind: Kind) -> &RwLock<Table> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }

    pub fn subscribe(&self, kind: Kind, name: &Bytes, client: u64, mailbox: &Arc<Mailbox>) {
        self.table(kind).write().add(name, client, mailbox);
    }

    pub fn unsubscribe(&self, kind: Kind, name: &[u8], client: u64) {
        self.table(kind).write().remove(name, client);
    }

    /// PUBLISH: delivers to the channel's subscribers and to those of matching patterns;
    /// returns how many received it.
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let channel_b = Bytes::copy_from_slice(channel);
        let payload_b = Bytes::copy_from_slice(payload);
        let mut n = 0;
        {
            let t = self.channels.read();
            if let Some(subs) = t.subs.get(channel) {
                for s in subs {
                    s.mailbox.deliver(
                        Push::Message { channel: channel_b.clone(), payload: payload_b.clone() },
                        &self.limits,
                    );
                    n += 1;
                }
            }
        }
        let t = self.patterns.read();
        for (pattern, subs) in &t.subs {
            if glob_match(pattern, channel, false) {
                for s in subs {
                    let msg = Push::PMessage {
                        pattern: pattern.clone(),
                        channel: channel_b.clone(),
                        payload: payload_b.clone(),
                    };
                    s.mailbox.deliver(msg, &self.limits);
                    n += 1;
                }
            }
        }
        n
    }

    /// SPUBLISH: delivers to the shard channel's subscribers.
    pub fn spublish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let t = self.shard.read();
        let Some(subs) = t.subs.get(channel) else { return 0 };
        let (channel, payload) = (Bytes::copy_from_slice(channel), Bytes::copy_from_slice(payload));
        for s in subs {
            s.mailbox.deliver(Push::SMessage { channel: channel.clone(), payload: payload.clone() }, &self.limits);
        }
        subs.len()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: active channels matching `pattern` (all if None).
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let t = self.table(kind).read();
        t.subs.keys().filter(|c| pattern.is_none_or(|p| glob_match(p, c, false))).cloned().collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of a channel.
    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.table(kind).read().subs.get(channel).map_or(0, Vec::len)
    }

    /// PUBSUB NUMPAT: patterns subscribed to (by anyone).
    pub fn numpat(&self) -> usize {
        self.patterns.read().subs.len()
    }

    /// Whether any keyspace event of `class` is to be published.
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        self.events.load(Ordering::Relaxed) & class != 0
    }

    /// Publishes a keyspace event (see `Ctx::notify`).
    pub fn keyspace_event(&self, class: u32, event: &str, key: &[u8], db: usize) {
        let flags = self.events.load(Ordering::Relaxed);
        if flags & class == 0 {
            return;
        }
        if flags & notify::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            self.publish(&channel, event.as_bytes());
        }
        if flags & notify::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            self.publish(channel.as_bytes(), key);
        }
    }
}

/// A connection's own subscriptions.
#[derive(Default)]
pub struct Subscriptions {
    pub mailbox: Option<Arc<Mailbox>>,
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    pub shard: Vec<Bytes>,
}

impl Subscriptions {
    pub fn list(&mut self, kind: Kind) -> &mut Vec<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count Redis replies with: channels and patterns together; shard channels apart.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// In RESP2, a client with subscriptions may only (un)subscribe, PING, QUIT and RESET.
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }

    /// Drops every subscription (disconnect, RESET).
    pub fn clear(&mut self, pubsub: &PubSub, client: u64) {
        for (kind, list) in
            [(Kind::Channel, &mut self.channels), (Kind::Pattern, &mut self.patterns), (Kind::Shard, &mut self.shard)]
        {
            for name in list.drain(..) {
                pubsub.unsubscribe(kind, &name, client);
            }
        }
    }
}

/// Parses `notify-keyspace-events` as Redis does; None for an unknown letter.
pub fn parse_events(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => notify::ALL,
            'g' => notify::GENERIC,
            '$' => notify::STRING,
            'l' => notify::LIST,
            's' => notify::SET,
            'h' => notify::HASH,
            'z' => notify::ZSET,
            'x' => notify::EXPIRED,
            'e' => notify::EVICTED,
            'K' => notify::KEYSPACE,
            'E' => notify::KEYEVENT,
            't' => notify::STREAM,
            'm' => notify::KEY_MISS,
            'd' => notify::MODULE,
            'n' => notify::NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Formats the flags as Redis's `CONFIG GET notify-keyspace-events` does.
pub fn format_events(flags: u32) -> String {
    let mut s = String::new();
    if flags & notify::ALL == notify::ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (notify::GENERIC, 'g'),
            (notify::STRING, '$'),
            (notify::LIST, 'l'),
            (notify::SET, 's'),
            (notify::HASH, 'h'),
            (notify::ZSET, 'z'),
            (notify::EXPIRED, 'x'),
            (notify::EVICTED, 'e'),
            (notify::STREAM, 't'),
            (notify::MODULE, 'd'),
            (notify::NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(notify::KEYSPACE, 'K'), (notify::KEYEVENT, 'E'), (notify::KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers_in_order() {
        let ps = PubSub::default();
        let (a, p) = (Mailbox::new(), Mailbox::new());
        ps.subscribe(Kind::Channel, &b("news"), 1, &a);
        ps.subscribe(Kind::Channel, &b("news"), 1, &a); // twice: once
        ps.subscribe(Kind::Pattern, &b("n*"), 2, &p);
        assert_eq!(ps.publish(b"news", b"one"), 2);
        assert_eq!(ps.publish(b"news", b"two"), 2);
        assert_eq!(ps.publish(b"other", b"x"), 0);
        let mut got = Vec::new();
        a.drain(&mut got);
        assert_eq!(
            got,
            vec![
                Push::Message { channel: b("news"), payload: b("one") },
                Push::Message { channel: b("news"), payload: b("two") }
            ]
        );
        got.clear();
        p.drain(&mut got);
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Push::PMessage { pattern, .. } if pattern == &b("n*")));
        assert_eq!((ps.numsub(Kind::Channel, b"news"), ps.numpat()), (1, 1));
        ps.unsubscribe(Kind::Channel, b"news", 1);
        assert_eq!(ps.channels(Kind::Channel, None), Vec::<Bytes>::new());
        assert_eq!(ps.publish(b"news", b"three"), 1);
    }

    #[test]
    fn a_subscriber_over_the_hard_limit_overflows() {
        let ps = PubSub::default();
        ps.limits.set(1000, 0, 0);
        let m = Mailbox::new();
        ps.subscribe(Kind::Channel, &b("c"), 1, &m);
        for _ in 0..5 {
            ps.publish(b"c", &[b'x'; 100]);
        }
        assert!(!m.overflowed());
        for _ in 0..10 {
            ps.publish(b"c", &[b'x'; 100]);
        }
        assert!(m.overflowed() && m.is_empty());
    }

    #[test]
    fn event_flags_parse_and_print_as_redis() {
        assert_eq!(parse_events("KEA").map(format_events).as_deref(), Some("AKE"));
        assert_eq!(parse_events("Ex$").map(format_events).as_deref(), Some("$xE"));
        assert_eq!(parse_events("").map(format_events).as_deref(), Some(""));
        assert_eq!(parse_events("Kq"), None);
    }
}
