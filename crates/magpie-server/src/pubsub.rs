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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use indexmap::IndexSet;
use parking_lot::{Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use magpie_protocol::{Reply, Resp};
use magpie_store::glob_match;

use crate::client::ClientInfo;
use crate::command::{Command, Ctx};
use crate::error::{CmdResult, Error};
use crate::notify;
use crate::server::Shared;

/// A message as every subscriber receives it, encoded once per publish: RESP2's array
/// (`*3 message channel payload`, `*4 pmessage pattern channel payload`, `*3 smessage ...`);
/// a RESP3 subscriber gets the same bytes with `>` (a push) in place of the leading `*`.
pub fn encode_message(kind: &[u8], pattern: Option<&[u8]>, channel: &[u8], payload: &[u8]) -> Vec<u8> {
    let parts = [Some(kind), pattern, Some(channel), Some(payload)];
    let mut out = Vec::with_capacity(48 + pattern.map_or(0, <[u8]>::len) + channel.len() + payload.len());
    out.extend_from_slice(if pattern.is_some() { b"*4\r\n" } else { b"*3\r\n" });
    for part in parts.into_iter().flatten() {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(part.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A subscriber's output buffer for messages: the bytes not yet written to its socket, in
/// the order they were published, already encoded for its protocol (as Redis appends a
/// message to each subscriber's reply buffer when it is published).
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<Vec<u8>>,
    /// The buffer the connection writes from, swapped with the queue by
    /// [`Mailbox::take_into`]: both keep their capacity for a busy subscriber.
    spare: Mutex<Vec<u8>>,
    /// Bytes queued, plus bytes taken but not yet written (see [`Mailbox::release`]).
    bytes: AtomicUsize,
    /// Messages are encoded as RESP3 pushes (the protocol of the subscriber when they are
    /// published, as in Redis).
    resp3: AtomicBool,
    /// Wakes the connection when messages arrive in an empty queue, or it must close.
    pub notify: Notify,
    /// Set when the subscriber went over its output buffer limit: the connection closes.
    overflowed: AtomicBool,
    /// When the buffer went over the soft limit (ms since the limits' epoch, plus 1), 0 if it
    /// is under.
    soft_since: AtomicU64,
}

/// A subscriber's buffers keep at most this much capacity between bursts.
const KEEP_CAPACITY: usize = 1 << 20;

impl Mailbox {
    /// Whether the subscriber went over its limit and must be disconnected.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Bytes in the subscriber's output buffer (queued, or taken and not yet written).
    pub fn pending(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The protocol messages are encoded for from now on (SUBSCRIBE, HELLO).
    pub fn set_protocol(&self, proto: Resp) {
        self.resp3.store(proto == Resp::V3, Ordering::Relaxed);
    }

    /// Takes every queued message, oldest first, into `out`; returns the bytes they count
    /// for, to be given back with [`Mailbox::release`] once they are written.
    pub fn take_into(&self, out: &mut Reply) -> usize {
        let mut spare = self.spare.lock();
        std::mem::swap(&mut *self.queue.lock(), &mut *spare);
        let size = spare.len();
        out.raw(&spare);
        spare.clear();
        if spare.capacity() > KEEP_CAPACITY {
            *spare = Vec::new();
        }
        size
    }

    /// Gives back the bytes of messages taken with [`Mailbox::take_into`] and now written.
    pub fn release(&self, size: usize, limits: &Limits) {
        let left = self.bytes.fetch_sub(size, Ordering::Relaxed) - size;
        let (_, soft, _) = limits.get();
        if left < soft || soft == 0 {
            self.soft_since.store(0, Ordering::Relaxed);
        }
    }

    /// Queues a message (see [`encode_message`]), enforcing the limits; false if the
    /// subscriber is over them.
    fn deliver(&self, msg: &[u8], limits: &Limits) -> bool {
        if self.overflowed() {
            return false;
        }
        let (was_empty, total) = {
            let mut q = self.queue.lock();
            let was_empty = q.is_empty();
            if self.resp3.load(Ordering::Relaxed) {
                q.push(b'>');
                q.extend_from_slice(&msg[1..]);
            } else {
                q.extend_from_slice(msg);
            }
            // Counted under the queue's lock: bytes taken (and given back) are always counted.
            (was_empty, self.bytes.fetch_add(msg.len(), Ordering::Relaxed) + msg.len())
        };
        if self.over_limits(total, limits) {
            self.overflowed.store(true, Ordering::Relaxed);
            // Nothing more will be written to it: free the memory now.
            drop(std::mem::take(&mut *self.queue.lock()));
            self.notify.notify_one();
            return false;
        }
        // The connection takes the whole queue when woken: one wake-up per batch.
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Redis's rule (`checkClientOutputBufferLimits`): over the hard limit at once; over the
    /// soft limit once it has been above it for more than the soft seconds.
    fn over_limits(&self, total: usize, limits: &Limits) -> bool {
        let (hard, soft, soft_secs) = limits.get();
        if hard > 0 && total >= hard {
            return true;
        }
        if soft == 0 || total < soft {
            if self.soft_since.load(Ordering::Relaxed) != 0 {
                self.soft_since.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let now = u64::try_from(limits.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        match self.soft_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => false,
            Err(since) => now.saturating_sub(since) > soft_secs.saturating_mul(1000),
        }
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
            usize::try_from(self.hard.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            usize::try_from(self.soft.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
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

impl Kind {
    const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    fn index(self) -> usize {
        self as usize
    }

    /// The first element of the confirmation of a subscription.
    pub fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    pub fn unsubscribe_word(self) -> &'static [u8] {
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
pub struct PubSub {
    channels: RwLock<Table>,
    patterns: RwLock<Table>,
    shard: RwLock<Table>,
    /// `notify-keyspace-events`, as Redis's flags (see [`notify`]); a copy of the setting
    /// (see [`follow_config`]).
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
    pub fn subscribe(&self, client: &ClientPubSub, id: u64, kind: Kind, name: &[u8]) -> usize {
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
    pub fn unsubscribe(&self, client: &ClientPubSub, id: u64, kind: Kind, name: &[u8]) -> usize {
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
    pub fn subscribed(&self, client: &ClientPubSub, kind: Kind) -> Vec<Bytes> {
        client.subs.lock().list(kind).iter().cloned().collect()
    }

    /// Drops every subscription of a client (disconnect, RESET).
    pub fn unsubscribe_all(&self, client: &ClientPubSub, id: u64) {
        for kind in Kind::ALL {
            for name in self.subscribed(client, kind) {
                self.unsubscribe(client, id, kind, &name);
            }
        }
    }

    /// PUBLISH: delivers to the channel's subscribers and to those of matching patterns;
    /// returns how many received it (a client subscribed both ways counts twice, as in Redis).
    pub fn publish(&self, channel: &[u8], payload: &[u8]) -> usize {
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
    pub fn spublish(&self, channel: &[u8], payload: &[u8]) -> usize {
        let t = self.shard.read();
        let Some(subs) = t.subs.get(channel) else { return 0 };
        let msg = encode_message(b"smessage", None, channel, payload);
        for s in subs {
            s.mailbox.deliver(&msg, &self.limits);
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

    /// Channels (or patterns, or shard channels) with at least one subscriber: PUBSUB NUMPAT
    /// and INFO's `pubsub_channels`, `pubsub_patterns`, `pubsubshard_channels`.
    pub fn active(&self, kind: Kind) -> usize {
        self.table(kind).read().subs.len()
    }

    /// Whether keyspace events of `class` are published at all.
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        let flags = self.events.load(Ordering::Relaxed);
        flags & class != 0 && flags & (notify::KEYSPACE | notify::KEYEVENT) != 0
    }

    /// Publishes a keyspace event (see `Ctx::notify`), as Redis's `notifyKeyspaceEvent`: on
    /// `__keyspace@<db>__:<key>` with the event as the message (K), then on
    /// `__keyevent@<db>__:<event>` with the key as the message (E).
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

/// A client's pub/sub state, kept in its [`ClientInfo`]: its subscriptions and mailbox, and
/// their counts, which dispatch and CLIENT LIST read without a lock.
#[derive(Default)]
pub struct ClientPubSub {
    pub mailbox: Arc<Mailbox>,
    subs: Mutex<Subscriptions>,
    /// Channels, patterns and shard channels subscribed to.
    counts: [AtomicUsize; 3],
}

impl ClientPubSub {
    /// Subscribed to anything: Redis's `CLIENT_PUBSUB` flag (CLIENT LIST's `P`), which in
    /// RESP2 limits the client to the subscription commands.
    #[inline]
    pub fn active(&self) -> bool {
        self.counts.iter().any(|c| c.load(Ordering::Relaxed) != 0)
    }

    /// The count a (un)subscription of `kind` replies with: channels and patterns together;
    /// shard channels apart.
    pub fn count(&self, kind: Kind) -> usize {
        let [c, p, s] = self.counts();
        if kind == Kind::Shard { s } else { c + p }
    }

    /// CLIENT LIST's `sub`, `psub` and `ssub`.
    pub fn counts(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.counts[i].load(Ordering::Relaxed))
    }
}

/// In RESP2, a subscribed client may only (un)subscribe, PING, QUIT and RESET; in RESP3 it
/// may run anything. Checked by dispatch before a command runs.
#[inline]
pub fn allowed(ctx: &Ctx<'_>, cmd: &Command) -> CmdResult {
    if ctx.out.proto == Resp::V3 || !ctx.client.info.pubsub.active() {
        return Ok(());
    }
    refuse_in_subscribe_mode(cmd)
}

#[cold]
fn refuse_in_subscribe_mode(cmd: &Command) -> CmdResult {
    const ALLOWED: &[&str] = &[
        "ping",
        "subscribe",
        "ssubscribe",
        "psubscribe",
        "unsubscribe",
        "sunsubscribe",
        "punsubscribe",
        "quit",
        "reset",
    ];
    if ALLOWED.contains(&cmd.name) {
        return Ok(());
    }
    Err(Error::msg(format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in \
         this context",
        cmd.name
    )))
}

/// Writes the messages already in the client's own mailbox into its reply, where Redis would
/// have put them: a RESP3 client that publishes to (or changes a key it watches through
/// keyspace events on) a channel it listens to gets the message before the command's reply;
/// a subscription's confirmation comes after the messages that arrived before it.
pub fn deliver_own(ctx: &mut Ctx<'_>) {
    let pubsub = &ctx.client.info.pubsub;
    if pubsub.mailbox.pending() == 0 {
        return;
    }
    let size = pubsub.mailbox.take_into(ctx.out);
    pubsub.mailbox.release(size, &ctx.shared.pubsub.limits);
}

/// Waits until the client's mailbox has something to write (or overflowed); never, for a
/// client with no subscriptions. One branch of the connection's wait for input.
pub async fn messages(info: &ClientInfo) {
    if info.pubsub.active() || info.pubsub.mailbox.pending() != 0 {
        info.pubsub.mailbox.notify.notified().await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// The client went over its output buffer limit, or its socket failed.
#[derive(Debug)]
pub struct Closed;

/// Writes what is in the client's mailbox, until it is empty. Fails when the client went over
/// its output buffer limit (also while a write is stuck because it does not read) or its
/// socket failed: the connection then closes. `out` is empty, and left empty.
pub async fn write_messages(
    shared: &Shared,
    info: &ClientInfo,
    out: &mut Reply,
    stream: &mut TcpStream,
) -> Result<(), Closed> {
    let mailbox = &info.pubsub.mailbox;
    loop {
        if mailbox.overflowed() {
            let (hard, soft, secs) = shared.pubsub.limits.get();
            tracing::info!(
                "closing client {}: its pub/sub output buffer went over client-output-buffer-limit pubsub \
                 {hard} {soft} {secs}",
                info.id
            );
            return Err(Closed);
        }
        // Let the publishers that are ready run first: their messages then go out in this
        // write rather than one write each (as Redis writes once per event loop iteration).
        tokio::task::yield_now().await;
        let size = mailbox.take_into(out);
        if out.is_empty() {
            return Ok(());
        }
        let overflow = async {
            while !mailbox.overflowed() {
                mailbox.notify.notified().await;
            }
        };
        tokio::select! {
            written = stream.write_all(out.as_bytes()) => {
                if written.is_err() {
                    return Err(Closed);
                }
            }
            () = overflow => continue,
        }
        crate::stats::local().wrote(out.len());
        out.clear();
        mailbox.release(size, &shared.pubsub.limits);
    }
}

/// A client leaves: it is removed from every table, and its mailbox is emptied.
pub fn disconnect(shared: &Shared, info: &ClientInfo) {
    if info.pubsub.active() {
        shared.pubsub.unsubscribe_all(&info.pubsub, info.id);
    }
}

/// Copies `notify-keyspace-events` and `client-output-buffer-limit pubsub` from the settings
/// into the live state (at start and after CONFIG SET). Expired events need the store to
/// report the keys it removes because they expired (the append-only log uses that report too).
pub fn follow_config(shared: &Shared) {
    let events = shared.settings.notify_keyspace_events();
    shared.pubsub.events.store(events, Ordering::Relaxed);
    let (hard, soft, secs) = shared.settings.output_buffer_limit(crate::config::ClientClass::Pubsub);
    shared.pubsub.limits.set(hard, soft, secs);
    if events & notify::EXPIRED != 0 {
        let tap = shared.keyspace.tap();
        shared.keyspace.with_all_locked(|| tap.set_expired_tap(true));
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

    #[test]
    fn event_flags_parse_and_print_as_redis() {
        let show = |s: &str| parse_events(s).map(format_events);
        assert_eq!(show("KEA").as_deref(), Some("AKE"));
        assert_eq!(show("Kx$").as_deref(), Some("$xK"));
        assert_eq!(show("").as_deref(), Some(""));
        assert_eq!(show("mK").as_deref(), Some("Km"));
        assert_eq!(show("Agn").as_deref(), Some("A"));
        assert_eq!(show("glshzxetd$KE").as_deref(), Some("AKE"));
        assert_eq!(show("n").as_deref(), Some("n"));
        assert_eq!(parse_events("Kq"), None);
    }
}
