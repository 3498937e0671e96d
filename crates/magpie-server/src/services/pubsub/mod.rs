//! Pub/Sub: who listens to which channel or pattern, and each subscriber's mailbox.
//!
//! PUBLISH runs on the publisher's thread: it finds the subscribers (a read lock on the
//! channel table, a scan of the patterns) and appends the message to each one's mailbox, in
//! order, then wakes its connection, which writes what is in its mailbox. So the messages of
//! one publisher reach each subscriber in the order they were published, and a publisher never
//! waits for a subscriber's socket.
//!
//! A mailbox counts the bytes waiting in it and the bytes taken out but not yet written to the
//! socket: the subscriber's output buffer, as Redis's limits see it. A subscriber that does not
//! read is disconnected when that passes `client-output-buffer-limit pubsub` (hard limit at
//! once, soft limit once it has stayed above for more than the given seconds), so it cannot
//! grow memory without bound.
//!
//! Lock order: a client's own [`Subscriptions`] → a table → a mailbox. PUBLISH takes only the
//! last two.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use bytes::Bytes;
use indexmap::IndexSet;
use parking_lot::{Mutex, RwLock};

use magpie_store::glob_match;

use crate::core::events;

mod mailbox;

pub(crate) use mailbox::{Limits, Mailbox, encode_message};

#[derive(Clone)]
struct Sub {
    client: u64,
    mailbox: Arc<Mailbox>,
}

/// Which table a subscription is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    fn index(self) -> usize {
        self as usize
    }

    /// The first element of the confirmation of a subscription.
    pub(crate) fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    pub(crate) fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Table {
    /// Channel (or pattern) -> subscribers, in subscription order.
    subs: Map<Bytes, Vec<Sub>>,
}

impl Table {
    /// Adds a subscriber the caller knows is not subscribed to `name` yet.
    fn add(&mut self, name: &Bytes, client: u64, mailbox: &Arc<Mailbox>) {
        self.subs.entry(name.clone()).or_default().push(Sub { client, mailbox: mailbox.clone() });
    }

    fn remove(&mut self, name: &[u8], client: u64) {
        if let Some(subs) = self.subs.get_mut(name) {
            // Order kept: a channel's subscribers receive in the order they subscribed.
            if let Some(i) = subs.iter().position(|s| s.client == client) {
                subs.remove(i);
            }
            if subs.is_empty() {
                self.subs.remove(name);
            }
        }
    }
}

/// Every subscription on the server, and the keyspace notification settings.
pub(crate) struct PubSub {
    channels: RwLock<Table>,
    patterns: RwLock<Table>,
    shard: RwLock<Table>,
    /// `notify-keyspace-events`, as Redis's flags (see `crate::core::events`); a copy of the setting
    /// (see `Server::apply_settings`).
    pub events: AtomicU32,
    /// The `pubsub` class of `client-output-buffer-limit`; a copy of the setting.
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

    /// Subscribes a client to `name`; returns its subscription count for the reply.
    pub(crate) fn subscribe(&self, client: &ClientPubSub, id: u64, kind: Kind, name: &[u8]) -> usize {
        let mut own = client.subs.lock();
        let list = own.list(kind);
        if !list.contains(name) {
            let name = Bytes::copy_from_slice(name);
            self.table(kind).write().add(&name, id, &client.mailbox);
            list.insert(name);
            client.counts[kind.index()].store(list.len(), Ordering::Relaxed);
        }
        own.count(kind)
    }

    /// Unsubscribes a client from `name` (if it was); returns its subscription count for the
    /// reply.
    pub(crate) fn unsubscribe(&self, client: &ClientPubSub, id: u64, kind: Kind, name: &[u8]) -> usize {
        let mut own = client.subs.lock();
        let list = own.list(kind);
        let removed = match kind {
            // Redis 7.0 keeps a client's patterns in a list: the others keep their order.
            Kind::Pattern => list.shift_remove(name),
            _ => list.swap_remove(name),
        };
        if removed {
            self.table(kind).write().remove(name, id);
            client.counts[kind.index()].store(list.len(), Ordering::Relaxed);
        }
        own.count(kind)
    }

    /// The names a client is subscribed to in `kind`, in the order an UNSUBSCRIBE without
    /// arguments reports them.
    pub(crate) fn subscribed(&self, client: &ClientPubSub, kind: Kind) -> Vec<Bytes> {
        client.subs.lock().list(kind).iter().cloned().collect()
    }

    /// Drops every subscription of a client (disconnect, RESET).
    pub(crate) fn unsubscribe_all(&self, client: &ClientPubSub, id: u64) {
        for kind in Kind::ALL {
            for name in self.subscribed(client, kind) {
                self.unsubscribe(client, id, kind, &name);
            }
        }
    }

    /// PUBLISH: delivers to the channel's subscribers and to those of matching patterns;
    /// returns how many received it (a client subscribed both ways counts twice, as in Redis).
    pub(crate) fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let mut n = 0;
        {
            let t = self.channels.read();
            if let Some(subs) = t.subs.get(channel) {
                let msg = encode_message(b"message", None, channel, payload);
                for s in subs {
                    s.mailbox.deliver(&msg, &self.limits);
                }
                n += subs.len();
            }
        }
        let t = self.patterns.read();
        for (pattern, subs) in &t.subs {
            if glob_match(pattern, channel, false) {
                let msg = encode_message(b"pmessage", Some(pattern), channel, payload);
                for s in subs {
                    s.mailbox.deliver(&msg, &self.limits);
                }
                n += subs.len();
            }
        }
        n
    }

    /// SPUBLISH: delivers to the shard channel's subscribers.
    pub(crate) fn spublish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let t = self.shard.read();
        let Some(subs) = t.subs.get(channel) else { return 0 };
        let msg = encode_message(b"smessage", None, channel, payload);
        for s in subs {
            s.mailbox.deliver(&msg, &self.limits);
        }
        subs.len()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: active channels matching `pattern` (all if None).
    pub(crate) fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let t = self.table(kind).read();
        t.subs.keys().filter(|c| pattern.is_none_or(|p| glob_match(p, c, false))).cloned().collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of a channel.
    pub(crate) fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.table(kind).read().subs.get(channel).map_or(0, Vec::len)
    }

    /// Channels (or patterns, or shard channels) with at least one subscriber: PUBSUB NUMPAT
    /// and INFO's `pubsub_channels`, `pubsub_patterns`, `pubsubshard_channels`.
    pub(crate) fn active(&self, kind: Kind) -> usize {
        self.table(kind).read().subs.len()
    }

    /// Whether keyspace events of `class` are published at all.
    #[inline]
    pub(crate) fn wants(&self, class: u32) -> bool {
        let flags = self.events.load(Ordering::Relaxed);
        flags & class != 0 && flags & (events::KEYSPACE | events::KEYEVENT) != 0
    }

    /// Publishes a keyspace event (see `Ctx::notify`), as Redis's `notifyKeyspaceEvent`: on
    /// `__keyspace@<db>__:<key>` with the event as the message (K), then on
    /// `__keyevent@<db>__:<event>` with the key as the message (E).
    pub(crate) fn keyspace_event(&self, class: u32, event: &str, key: &[u8], db: usize) {
        let flags = self.events.load(Ordering::Relaxed);
        if flags & class == 0 {
            return;
        }
        if flags & events::KEYSPACE != 0 {
            let mut channel = format!("__keyspace@{db}__:").into_bytes();
            channel.extend_from_slice(key);
            self.publish(&channel, event.as_bytes());
        }
        if flags & events::KEYEVENT != 0 {
            let channel = format!("__keyevent@{db}__:{event}");
            self.publish(channel.as_bytes(), key);
        }
    }
}

/// A connection's own subscriptions.
#[derive(Default)]
pub(crate) struct Subscriptions {
    channels: IndexSet<Bytes>,
    patterns: IndexSet<Bytes>,
    shard: IndexSet<Bytes>,
}

impl Subscriptions {
    fn list(&mut self, kind: Kind) -> &mut IndexSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count Redis replies with: channels and patterns together; shard channels apart.
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }
}

/// A client's pub/sub state, kept in its `ClientInfo`: its subscriptions and mailbox, and
/// their counts, which dispatch and CLIENT LIST read without a lock.
#[derive(Default)]
pub(crate) struct ClientPubSub {
    pub mailbox: Arc<Mailbox>,
    subs: Mutex<Subscriptions>,
    /// Channels, patterns and shard channels subscribed to.
    counts: [AtomicUsize; 3],
    /// The client runs MONITOR: its mailbox gets every command's line.
    pub monitor: std::sync::atomic::AtomicBool,
}

impl ClientPubSub {
    /// Subscribed to anything: Redis's `CLIENT_PUBSUB` flag (CLIENT LIST's `P`), which in
    /// RESP2 limits the client to the subscription commands.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.counts.iter().any(|c| c.load(Ordering::Relaxed) != 0)
    }

    /// The count a (un)subscription of `kind` replies with: channels and patterns together;
    /// shard channels apart.
    pub(crate) fn count(&self, kind: Kind) -> usize {
        let [c, p, s] = self.counts();
        if kind == Kind::Shard { s } else { c + p }
    }

    /// CLIENT LIST's `sub`, `psub` and `ssub`.
    pub(crate) fn counts(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.counts[i].load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_protocol::{Reply, Resp};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn drain(m: &Mailbox) -> Vec<u8> {
        let mut out = Reply::new(Resp::V2);
        m.take_into(&mut out);
        out.as_bytes().to_vec()
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers_in_order() {
        let ps = PubSub::default();
        let (a, p) = (ClientPubSub::default(), ClientPubSub::default());
        assert_eq!(ps.subscribe(&a, 1, Kind::Channel, b"news"), 1);
        assert_eq!(ps.subscribe(&a, 1, Kind::Channel, b"news"), 1); // twice: once
        assert_eq!(ps.subscribe(&p, 2, Kind::Pattern, b"n*"), 1);
        assert!(a.active() && p.active());
        assert_eq!(ps.publish(b"news", b"one"), 2);
        assert_eq!(ps.publish(b"news", b"two"), 2);
        assert_eq!(ps.publish(b"other", b"x"), 0);
        assert_eq!(
            drain(&a.mailbox),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\none\r\n*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\ntwo\r\n"
        );
        assert!(drain(&p.mailbox).starts_with(b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$3\r\none\r\n"));
        assert_eq!((ps.numsub(Kind::Channel, b"news"), ps.active(Kind::Pattern)), (1, 1));
        assert_eq!(ps.unsubscribe(&a, 1, Kind::Channel, b"news"), 0);
        assert!(!a.active());
        assert_eq!(ps.channels(Kind::Channel, None), Vec::<Bytes>::new());
        assert_eq!(ps.publish(b"news", b"three"), 1);
        ps.unsubscribe_all(&p, 2);
        assert_eq!((ps.active(Kind::Pattern), p.counts()), (0, [0, 0, 0]));
    }

    #[test]
    fn messages_are_encoded_for_the_subscribers_protocol_when_published() {
        let ps = PubSub::default();
        let c = ClientPubSub::default();
        ps.subscribe(&c, 1, Kind::Shard, b"s");
        ps.spublish(b"s", b"two");
        c.mailbox.set_protocol(Resp::V3);
        ps.spublish(b"s", b"three");
        assert_eq!(
            drain(&c.mailbox),
            b"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$3\r\ntwo\r\n>3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$5\r\nthree\r\n"
        );
    }

    #[test]
    fn patterns_unsubscribe_in_subscription_order() {
        let ps = PubSub::default();
        let c = ClientPubSub::default();
        for p in ["c", "a", "b"] {
            ps.subscribe(&c, 1, Kind::Pattern, p.as_bytes());
        }
        ps.unsubscribe(&c, 1, Kind::Pattern, b"c");
        assert_eq!(ps.subscribed(&c, Kind::Pattern), vec![b("a"), b("b")]);
        assert_eq!(ps.subscribe(&c, 1, Kind::Shard, b"s"), 1);
        assert_eq!(c.counts(), [0, 2, 1]);
    }

    #[test]
    fn a_subscriber_over_the_hard_limit_overflows_and_written_bytes_are_given_back() {
        let ps = PubSub::default();
        ps.limits.set(1000, 0, 0);
        let c = ClientPubSub::default();
        ps.subscribe(&c, 1, Kind::Channel, b"c");
        for _ in 0..5 {
            ps.publish(b"c", &[b'x'; 100]);
        }
        // Taken but not written yet: still counted.
        let mut out = Reply::new(Resp::V2);
        let size = c.mailbox.take_into(&mut out);
        assert!(size > 500 && c.mailbox.pending() == size);
        c.mailbox.release(size, &ps.limits);
        assert_eq!(c.mailbox.pending(), 0);
        for _ in 0..7 {
            ps.publish(b"c", &[b'x'; 100]);
        }
        assert!(!c.mailbox.overflowed());
        for _ in 0..3 {
            ps.publish(b"c", &[b'x'; 100]);
        }
        assert!(c.mailbox.overflowed());
        assert!(drain(&c.mailbox).is_empty());
    }

    #[test]
    fn accounting_holds_while_publishers_and_the_writer_race() {
        let ps = Arc::new(PubSub::default());
        let c = Arc::new(ClientPubSub::default());
        ps.subscribe(&c, 1, Kind::Channel, b"c");
        let publishers: Vec<_> = (0..3)
            .map(|_| {
                let ps = ps.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        ps.publish(b"c", b"payload");
                    }
                })
            })
            .collect();
        let mut written = 0;
        let mut out = Reply::new(Resp::V2);
        while publishers.iter().any(|p| !p.is_finished()) || c.mailbox.pending() > 0 {
            let size = c.mailbox.take_into(&mut out);
            written += out.len();
            out.clear();
            c.mailbox.release(size, &ps.limits);
        }
        for p in publishers {
            p.join().unwrap();
        }
        let one = encode_message(b"message", None, b"c", b"payload").len();
        assert_eq!((written, c.mailbox.pending(), c.mailbox.overflowed()), (60_000 * one, 0, false));
    }

    #[test]
    fn the_soft_limit_needs_time() {
        let ps = PubSub::default();
        ps.limits.set(0, 100, 0);
        let c = ClientPubSub::default();
        ps.subscribe(&c, 1, Kind::Channel, b"c");
        ps.publish(b"c", &[b'x'; 200]); // over the soft limit: the clock starts
        assert!(!c.mailbox.overflowed());
        std::thread::sleep(std::time::Duration::from_millis(5));
        ps.publish(b"c", b"x"); // still over, for longer than 0 s
        assert!(c.mailbox.overflowed());
    }
}
