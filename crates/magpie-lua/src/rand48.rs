//! Redis's `redisLrand48` (src/rand.c): the generator behind `math.random`, the same sequence
//! on every platform. Redis 7.0 keeps one generator for the whole process, shared by EVAL and
//! FUNCTION scripts, and never reseeds it between scripts (only `math.randomseed` does): the
//! n-th `math.random()` since start-up gives the same number as in Redis.

/// 48-bit linear congruential generator, kept as three 16-bit words as Redis does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rand48 {
    x: [u32; 3],
}

const X0: u32 = 0x330E;
const X1: u32 = 0xABCD;
const X2: u32 = 0x1234;
const A: [u32; 3] = [0xE66D, 0xDEEC, 0x5];
const C: u32 = 0xB;
const MASK: u32 = 0xFFFF;

/// `REDIS_LRAND48_MAX`: the values are below 2^31.
pub(crate) const LRAND48_MAX: i32 = i32::MAX;

impl Default for Rand48 {
    fn default() -> Self {
        Rand48 { x: [X0, X1, X2] }
    }
}

impl Rand48 {
    /// `redisSrand48`: the low 32 bits of the seed become the high words of the state.
    pub fn seed(&mut self, seed: i32) {
        let s = seed as u32;
        self.x = [X0, s & MASK, (s >> 16) & MASK];
    }

    /// `redisLrand48`: the next value in `0..2^31`.
    pub fn next_i32(&mut self) -> i32 {
        // The state is x2:x1:x0 (16 bits each); next = (a * x + c) mod 2^48.
        let x = u64::from(self.x[0]) | u64::from(self.x[1]) << 16 | u64::from(self.x[2]) << 32;
        let a = u64::from(A[0]) | u64::from(A[1]) << 16 | u64::from(A[2]) << 32;
        let next = (a.wrapping_mul(x).wrapping_add(u64::from(C))) & ((1 << 48) - 1);
        self.x = [(next & 0xFFFF) as u32, ((next >> 16) & 0xFFFF) as u32, ((next >> 32) & 0xFFFF) as u32];
        // (x2 << 15) + (x1 >> 1): the top 31 bits.
        ((self.x[2] << 15) + (self.x[1] >> 1)) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_first_values() {
        // `EVAL "return math.random(1000)" 0` twice on a fresh redis-server 7.0.15: 397, 841.
        let mut r = Rand48::default();
        let mut draw = |u: f64| {
            let v = f64::from(r.next_i32() % LRAND48_MAX) / f64::from(LRAND48_MAX);
            (v * u).floor() + 1.0
        };
        assert_eq!(draw(1000.0), 397.0);
        assert_eq!(draw(1000.0), 841.0);
    }

    #[test]
    fn seeding_restarts_the_sequence() {
        let mut a = Rand48::default();
        a.seed(42);
        let first: Vec<i32> = (0..5).map(|_| a.next_i32()).collect();
        a.seed(42);
        let again: Vec<i32> = (0..5).map(|_| a.next_i32()).collect();
        assert_eq!(first, again);
        assert!(first.iter().all(|&v| v >= 0));
    }
}
