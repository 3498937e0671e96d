//! Eviction's steps over the shards: sampling, the candidate pool, S3-FIFO's queues,
//! W-TinyLFU's window, sketch and sampled main queue.

use super::*;

/// What one step of [`Keyspace::evict_one`] did.
#[derive(Debug)]
pub enum EvictStep {
    /// A key was evicted.
    Evicted(Evicted),
    /// Keys that had expired were removed instead (reported as expired), or S3-FIFO moved
    /// keys between its queues: memory may not have changed; step again.
    Progress,
    /// Nothing can be evicted: no key, or (volatile policies) no key with an expiry time.
    Nothing,
}

/// A key evicted: drop `entry` outside any lock; `seq` numbers the change for the log.
#[derive(Debug)]
pub struct Evicted {
    pub db: usize,
    pub key: Key,
    pub seq: u64,
    /// The key's block, freed or kept for the next key's ([`Evicted::recycle`]).
    pair: Pair,
}

impl Evicted {
    /// Frees the evicted key's block, or keeps it for the next block of its size this thread
    /// makes (see [`Pair::recycle`]).
    pub fn recycle(self) {
        self.pair.recycle();
    }
}

/// S3-FIFO's small queue's share of the keys, in percent (the simulator's best: 2).
pub(super) const S3_SMALL_PERCENT: usize = 2;

/// W-TinyLFU's window's share of the keys, in percent (the simulator's and Caffeine's: 1).
pub(super) const WT_WINDOW_PERCENT: usize = 1;

/// W-TinyLFU's aging: the sketch halves its counters every this many times the shard's keys
/// additions. The simulator (64 shards, 10M requests of warm-up) found 10 too short for Zipf
/// 0.8's long tail (57.3% against 58.6% at 30 and 58.9% never halving); longer also means
/// slower to forget keys that were popular once.
pub(super) const WT_AGING: u64 = 30;

impl Shard {
    /// S3-FIFO: a key just created at `idx` goes into the main queue if the ghost remembers
    /// it, else into the small one.
    pub(super) fn s3_admit(&mut self, idx: usize, key: &[u8]) {
        if self.ghost_hit(key) {
            self.map[idx].used.requeue(true, 0);
            self.small -= 1;
            return;
        }
        self.fifo_push(key, S3_SMALL_PERCENT);
    }

    /// Puts a key just created (and counted in `small`) at the end of the FIFO of S3-FIFO's
    /// small queue or W-TinyLFU's window, whose share of the keys is `percent`.
    fn fifo_push(&mut self, key: &[u8], percent: usize) {
        if self.fifo.len() > 2 * self.small + 64 {
            // Copies of keys since removed or moved pile up when nothing is evicted.
            let map = &self.map;
            self.fifo.retain(|k| map.get(k).is_some_and(|e| !e.used.fifo().0));
            if self.fifo.capacity() > 4 * self.fifo.len() + 64 {
                self.fifo.shrink_to_fit();
            }
        }
        self.fifo.push_back(Key::new(key));
        // While memory is under the limit nothing is evicted, and the small queue would take
        // every new key (and its copy here). Past twice its share, its oldest keys overflow
        // into the main queue as they are. Under eviction it stays near its share, and this
        // never runs (a scan cannot push keys into the main queue through it).
        let limit = 2 * (self.map.len() * percent / 100).max(1) + 16;
        while self.small > limit {
            let Some(k) = self.fifo.pop_front() else { break };
            if let Some(e) = self.map.get(&k)
                && !e.used.fifo().0
            {
                let freq = e.used.fifo().1;
                e.used.requeue(true, freq);
                self.small -= 1;
            }
        }
    }

    /// W-TinyLFU: a key just created at `idx` is counted by the sketch, takes its estimate as
    /// its frequency, and waits in the window.
    pub(super) fn wt_admit(&mut self, idx: usize, key: &[u8]) {
        let hash = self.map.hash(key);
        let keys = self.map.len();
        self.sketch.fit(keys);
        self.sketch.add(hash, 1, WT_AGING * keys as u64);
        let seen = self.sketch.estimate(hash);
        self.map[idx].used.wt_set(seen, self.sketch.epoch());
        self.fifo_push(key, WT_WINDOW_PERCENT);
    }

    /// W-TinyLFU: main's victim, the least frequent of `n` sampled keys of the main queue (an
    /// expired key first), and its frequency. A sampled key not in the main queue while the
    /// window holds far more than its share was left there by another policy (the window's
    /// FIFO does not know it): it joins the main queue here.
    fn wt_victim(&mut self, n: usize, now: u64) -> Option<(usize, u8)> {
        let epoch = self.sketch.epoch();
        let len = self.map.len();
        let strays = self.small > 2 * (len * WT_WINDOW_PERCENT / 100).max(1) + 16 || self.fifo.is_empty();
        let mut best: Option<(usize, u8, bool)> = None;
        if len == 0 {
            return None;
        }
        // Independent random places, not a run from one (as `sample` takes): keys written
        // together sit together, and a run of keys that were all read often would give one of
        // them up while keys never read are left.
        // At most as many samples as the shard has keys (`maxmemory-samples` goes up to
        // 2^31 - 1, as in Redis, whose sampling stops at the table's size too).
        for _ in 0..n.min(len) {
            let idx = fastrand::usize(..len);
            let Some(e) = self.map.get_index(idx) else { continue };
            let (main, _) = e.used.fifo();
            if !main {
                if !strays {
                    continue;
                }
                e.used.requeue(true, 0);
                self.small -= 1;
            }
            let expired = self.view(e).is_expired(now);
            let f = e.used.wt_freq(epoch);
            if best.is_none_or(|(_, bf, bx)| !bx && (expired || f < bf)) {
                best = Some((idx, f, expired));
            }
        }
        best.map(|(idx, f, _)| (idx, f))
    }

    /// W-TinyLFU, before the entry at `idx` (whose frequency is `freq`) is evicted: the sketch
    /// is told what the entry counted beyond the sketch's estimate (its reads while held), so
    /// that the key keeps its standing if it comes back.
    fn wt_deposit(&mut self, idx: usize, freq: u8, keys: usize) {
        let Some(k) = self.map.get_index(idx).map(Stored::key) else { return };
        let hash = self.map.hash(k);
        let seen = self.sketch.estimate(hash);
        if freq > seen {
            self.sketch.add(hash, freq - seen, WT_AGING * keys as u64);
        }
    }

    /// Whether `key` was evicted from S3-FIFO's small queue lately (and forgets it).
    pub(super) fn ghost_hit(&mut self, key: &[u8]) -> bool {
        if self.ghost.is_empty() {
            return false;
        }
        let (i, fp) = self.ghost_slot(key);
        if self.ghost[i] == fp {
            self.ghost[i] = 0;
            return true;
        }
        false
    }

    pub(super) fn ghost_slot(&self, key: &[u8]) -> (usize, u32) {
        let h = self.map.hash(key);
        ((h as usize) & (self.ghost.len() - 1), (h >> 32) as u32 | 1)
    }

    /// Remembers a key evicted from S3-FIFO's small queue. The table has about half as many
    /// slots as the main queue has keys (the simulator's best ghost size; 4 bytes a slot); it
    /// is remade when the shard has grown or shrunk a lot (which forgets).
    pub(super) fn ghost_add(&mut self, key: &[u8]) {
        let want = ((self.map.len() - self.small) / 2).next_power_of_two().max(64);
        if self.ghost.len() < want / 2 || self.ghost.len() > want * 2 {
            self.ghost = vec![0; want];
        }
        let (i, fp) = self.ghost_slot(key);
        self.ghost[i] = fp;
    }

    /// Up to `n` random live entries (of those with an expiry time, for `volatile`), and
    /// their indices; `r`, a random number, picks where they start.
    /// The key is read only if `f` asks for it (from the entry's block, another line).
    pub(super) fn sample(&self, r: u64, n: usize, volatile: bool, mut f: impl FnMut(usize, &Stored, EntryRef<'_>)) {
        // Consecutive entries from a random start, as Redis's dictGetSomeKeys walks buckets:
        // one random jump, then neighbours.
        let Some((len, start)) = self.sample_start(r, volatile) else { return };
        for i in 0..n.min(len) {
            let pos = (start + i) % len;
            let idx = if volatile { self.volatile[pos] as usize } else { pos };
            if let Some(e) = self.map.get_index(idx) {
                f(idx, e, self.view(e));
            }
        }
    }

    /// The number of entries a sample picks from, and where the sample that `r` names starts;
    /// `None` if there are none.
    fn sample_start(&self, r: u64, volatile: bool) -> Option<(usize, usize)> {
        let len = if volatile { self.volatile.len() } else { self.map.len() };
        (len > 0).then(|| (len, (r % len as u64) as usize))
    }

    /// Asks for the lines [`Shard::sample`] with the same arguments will read (the entries
    /// themselves; for `volatile`, the positions that lead to them).
    fn prefetch_sample(&self, r: u64, n: usize, volatile: bool) {
        let Some((len, start)) = self.sample_start(r, volatile) else { return };
        if volatile {
            let n = n.min(len - start);
            crate::lines::prefetch(self.volatile[start..].as_ptr().cast(), n * size_of::<u32>());
        } else {
            for i in 0..n.min(len) {
                self.map.prefetch((start + i) % len);
            }
        }
    }
}

impl Keyspace {
    /// Reads the shards' sizes for sampling (each read-locked in turn).
    pub(super) fn refresh_sizes(&self, policy: Policy, pool: &mut Pool) {
        pool.sizes.clear();
        pool.total = 0;
        for (d, db) in self.dbs.iter().enumerate() {
            for (i, shard) in db.shards.iter().enumerate() {
                let g = shard.0.read();
                let n = if policy.volatile() { g.volatile.len() } else { g.map.len() };
                if n > 0 {
                    pool.sizes.push((d, i, n));
                    pool.total += n;
                }
            }
        }
        // Sizes change by one key a step: a few hundred steps move them little, and reading
        // them locks every shard in turn (it was 2% of the time of SETs under eviction).
        pool.stale_in = 512;
    }

    /// One step of eviction under `policy` (see `evict.rs`): samples `samples` keys of one
    /// shard and evicts the best candidate seen. Locks one shard at a time.
    pub fn evict_one(&self, policy: Policy, samples: usize, now: u64, pool: &mut Pool) -> EvictStep {
        if policy == Policy::NoEviction {
            return EvictStep::Nothing;
        }
        let samples = samples.max(1);
        if pool.stale_in == 0 || pool.total == 0 {
            self.refresh_sizes(policy, pool);
        } else {
            pool.stale_in -= 1;
        }
        for attempt in 0..4 {
            if attempt > 0 {
                self.refresh_sizes(policy, pool);
            }
            let Some((db, shard)) = pool.pick_shard() else { return EvictStep::Nothing };
            let lock = &self.dbs[db].shards[shard].0;
            if is_random(policy) {
                let mut g = lock.write();
                let len = if policy.volatile() { g.volatile.len() } else { g.map.len() };
                if len == 0 {
                    continue;
                }
                let pos = fastrand::usize(..len);
                let idx = if policy.volatile() { g.volatile[pos] as usize } else { pos };
                return self.finish(db, &mut g, idx, now);
            }
            if policy == Policy::AllKeysS3Fifo {
                return self.evict_s3fifo(db, shard, now);
            }
            if policy == Policy::AllKeysWTinyLfu {
                return self.evict_wtinylfu(db, shard, samples, now);
            }
            // Redis's pool, one step ahead: the pool's best goes first, then the pool takes
            // in the sample chosen at the end of the last step, then the next step's sample and
            // best are chosen and their lines asked for. Those lines (random places: a miss
            // each) then arrive while the server goes on with other commands, instead of being
            // waited for here. An empty pool (the first step, or every candidate gone) is
            // filled first.
            let mut sampled = false;
            if pool.best.is_empty() {
                let planned = pool.plan.take().unwrap_or((db, shard, fastrand::u64(..)));
                self.fill_pool(policy, samples, now, pool, planned);
                sampled = true;
            }
            while let Some(c) = pool.take_best() {
                let mut g = self.dbs[c.db].shards[c.shard].0.write();
                // Most often the entry has not moved since it was sampled (and its bucket is
                // still in the cache): no probe of the table.
                let found = match g.map.get_index(c.idx) {
                    Some(e) if e.key() == &*c.key => Some(c.idx),
                    _ => g.map.find_from_hash(c.hash, |k| k == &*c.key),
                };
                let Some(idx) = found else { continue };
                let step = self.finish(c.db, &mut g, idx, now);
                drop(g);
                if !sampled && let Some(planned) = pool.plan.take() {
                    self.fill_pool(policy, samples, now, pool, planned);
                }
                self.plan_next(policy, samples, pool);
                return step;
            }
        }
        EvictStep::Nothing
    }

    /// Offers the sample `planned` names (db, shard, random start) to the pool.
    fn fill_pool(&self, policy: Policy, samples: usize, now: u64, pool: &mut Pool, planned: (usize, usize, u64)) {
        let (db, shard, r) = planned;
        let g = self.dbs[db].shards[shard].0.read();
        let map = &g.map;
        g.sample(r, samples, policy.volatile(), |idx, s, e| {
            let score = if e.is_expired(now) { u64::MAX } else { score(policy, &e, now) };
            pool.offer(score, || Candidate { score, db, shard, hash: map.hash(s.key()), idx, key: Key::new(s.key()) });
        });
    }

    /// Chooses the next step's sample, and asks for its entries and for what evicting the
    /// pool's best will read (see [`Shard::prefetch_removal`]).
    fn plan_next(&self, policy: Policy, samples: usize, pool: &mut Pool) {
        if let Some((db, shard)) = pool.pick_shard() {
            let r = fastrand::u64(..);
            self.dbs[db].shards[shard].0.read().prefetch_sample(r, samples, policy.volatile());
            pool.plan = Some((db, shard, r));
        }
        if let Some(c) = pool.peek_best() {
            self.dbs[c.db].shards[c.shard].0.read().map.prefetch_removal(c.idx, c.hash);
        }
    }

    /// Evicts the entry at `idx` of a write-locked shard (or reclaims it, if it expired).
    pub(super) fn finish(&self, db: usize, g: &mut Shard, idx: usize, now: u64) -> EvictStep {
        if g.is_expired_index(idx, now) {
            g.expire_index(idx); // reclaimed and reported as expired
            return EvictStep::Progress;
        }
        match g.take_index(idx) {
            Some((e, _, seq)) => EvictStep::Evicted(Evicted { db, key: Key::new(e.key()), seq, pair: e.pair }),
            None => EvictStep::Progress,
        }
    }

    /// S3-FIFO's eviction in one shard (see `evict.rs`).
    pub(super) fn evict_s3fifo(&self, db: usize, shard: usize, now: u64) -> EvictStep {
        let mut g = self.dbs[db].shards[shard].0.write();
        let g = &mut *g;
        // Each key is passed at most a few times (its frequency is at most 3): bounded.
        for _ in 0..4 * g.map.len() + 16 {
            let len = g.map.len();
            if len == 0 {
                return EvictStep::Nothing;
            }
            let target = (len * S3_SMALL_PERCENT / 100).max(1);
            if (g.small > target || g.small == len)
                && let Some(k) = g.fifo.pop_front()
            {
                let Some(idx) = g.map.get_index_of(&k) else { continue };
                let (main, freq) = g.map[idx].used.fifo();
                if main {
                    continue; // moved already (a copy left in the queue)
                }
                if freq >= 1 {
                    g.map[idx].used.requeue(true, 0);
                    g.small -= 1;
                    continue;
                }
                g.ghost_add(&k);
                return self.finish(db, g, idx, now);
            }
            // The CLOCK hand over the main queue (every key, when the small queue has none).
            if g.hand >= len {
                g.hand = 0;
            }
            let idx = g.hand;
            let e = &g.map[idx];
            let (main, freq) = e.used.fifo();
            if !main && !g.fifo.is_empty() {
                g.hand += 1;
                continue;
            }
            if freq > 0 {
                e.used.requeue(main, freq - 1);
                g.hand += 1;
                continue;
            }
            g.hand += 1;
            return self.finish(db, g, idx, now);
        }
        EvictStep::Progress
    }

    /// W-TinyLFU's eviction in one shard (see `evict.rs`): at most one step through the
    /// window's FIFO per key copy it holds (each is popped once), and sampling.
    pub(super) fn evict_wtinylfu(&self, db: usize, shard: usize, samples: usize, now: u64) -> EvictStep {
        let mut g = self.dbs[db].shards[shard].0.write();
        let g = &mut *g;
        let n = 2 * samples;
        // Set when main's sampling found nothing: the window's oldest goes without competing.
        let mut window_only = false;
        for _ in 0..g.fifo.len() + 8 {
            let len = g.map.len();
            if len == 0 {
                return EvictStep::Nothing;
            }
            // Every key leaving the window competes, however full the window is: eviction
            // visits shards at random, not the one a key was just written to, so a window held
            // at its share would let the keys written between two visits into the main queue
            // unopposed (a scan got half its keys in). Only past the bound the window is held
            // to while nothing is evicted (see `fifo_push`) do keys join main as they are.
            let over = 2 * (len * WT_WINDOW_PERCENT / 100).max(1) + 16;
            if let Some(k) = g.fifo.pop_front() {
                let Some(idx) = g.map.get_index_of(&k) else { continue };
                let used = &g.map[idx].used;
                if used.fifo().0 {
                    continue; // moved already (a copy left in the queue)
                }
                used.requeue(true, 0);
                g.small -= 1;
                let freq = used.wt_freq(g.sketch.epoch());
                if window_only {
                    g.wt_deposit(idx, freq, len);
                    return self.finish(db, g, idx, now);
                }
                if g.small > over {
                    continue;
                }
                // The newcomer against main's victim: the less frequent goes (the newcomer,
                // on a tie). Either may be the other, or expired (then it is reclaimed).
                let Some((v, vfreq)) = g.wt_victim(n, now) else { continue };
                let (idx, freq) = if freq > vfreq || g.is_expired_index(v, now) { (v, vfreq) } else { (idx, freq) };
                g.wt_deposit(idx, freq, len);
                return self.finish(db, g, idx, now);
            }
            match g.wt_victim(n, now) {
                Some((v, vfreq)) => {
                    g.wt_deposit(v, vfreq, len);
                    return self.finish(db, g, v, now);
                }
                // Nothing of the main queue in the sample: the window's oldest goes, or if the
                // window's FIFO is empty, the key at a random place.
                None if !g.fifo.is_empty() => window_only = true,
                None => {
                    let idx = fastrand::usize(..len);
                    return self.finish(db, g, idx, now);
                }
            }
        }
        EvictStep::Progress
    }
}
