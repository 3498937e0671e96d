//! A subscriber's mailbox: the messages published to it and not yet written to its socket,
//! with the output buffer limits that cut off a subscriber that does not read.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use magpie_protocol::{Reply, Resp};

/// A message as every subscriber receives it, encoded once per publish: RESP2's array
/// (`*3 message channel payload`, `*4 pmessage pattern channel payload`, `*3 smessage ...`);
/// a RESP3 subscriber gets the same bytes with `>` (a push) in place of the leading `*`.
pub(crate) fn encode_message(kind: &[u8], pattern: Option<&[u8]>, channel: &[u8], payload: &[u8]) -> Vec<u8> {
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
pub(crate) struct Mailbox {
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
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Bytes in the subscriber's output buffer (queued, or taken and not yet written).
    pub(crate) fn pending(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The protocol messages are encoded for from now on (SUBSCRIBE, HELLO).
    pub(crate) fn set_protocol(&self, proto: Resp) {
        self.resp3.store(proto == Resp::V3, Ordering::Relaxed);
    }

    /// Takes every queued message, oldest first, into `out`; returns the bytes they count
    /// for, to be given back with [`Mailbox::release`] once they are written.
    pub(crate) fn take_into(&self, out: &mut Reply) -> usize {
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
    pub(crate) fn release(&self, size: usize, limits: &Limits) {
        let left = self.bytes.fetch_sub(size, Ordering::Relaxed) - size;
        let (_, soft, _) = limits.get();
        if left < soft || soft == 0 {
            self.soft_since.store(0, Ordering::Relaxed);
        }
    }

    /// Whether messages are encoded for RESP3 (the client's protocol, see `set_protocol`).
    pub(crate) fn is_resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    /// Queues a message (see [`encode_message`]), enforcing the limits; false if the
    /// subscriber is over them.
    pub(super) fn deliver(&self, msg: &[u8], limits: &Limits) -> bool {
        self.queue_bytes(msg, limits, self.resp3.load(Ordering::Relaxed))
    }

    /// Queues bytes to write as they are, already encoded for the client (MONITOR's lines, a
    /// client-side caching invalidation), enforcing the limits.
    pub(crate) fn deliver_raw(&self, msg: &[u8], limits: &Limits) -> bool {
        self.queue_bytes(msg, limits, false)
    }

    fn queue_bytes(&self, msg: &[u8], limits: &Limits, push: bool) -> bool {
        if self.overflowed() {
            return false;
        }
        let (was_empty, total) = {
            let mut q = self.queue.lock();
            let was_empty = q.is_empty();
            if push {
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
pub(crate) struct Limits {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_secs: AtomicU64,
    epoch: Instant,
}

impl Limits {
    pub(crate) fn new(hard: u64, soft: u64, soft_secs: u64) -> Limits {
        Limits {
            hard: AtomicU64::new(hard),
            soft: AtomicU64::new(soft),
            soft_secs: AtomicU64::new(soft_secs),
            epoch: Instant::now(),
        }
    }

    pub(crate) fn get(&self) -> (usize, usize, u64) {
        (
            usize::try_from(self.hard.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            usize::try_from(self.soft.load(Ordering::Relaxed)).unwrap_or(usize::MAX),
            self.soft_secs.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn set(&self, hard: u64, soft: u64, soft_secs: u64) {
        self.hard.store(hard, Ordering::Relaxed);
        self.soft.store(soft, Ordering::Relaxed);
        self.soft_secs.store(soft_secs, Ordering::Relaxed);
    }
}
