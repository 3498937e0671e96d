//! Command arguments: borrowed ([`Args`], spans into a read buffer) and owned ([`ArgVec`], for
//! commands kept beyond the buffer they arrived in: queued by MULTI, waiting on a key, read
//! back from the log, built by a script or an HTTP request).

use std::fmt;

/// The arguments of one command, borrowed from the read buffer.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    buf: &'a [u8],
    spans: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    /// Arguments over `buf` at the given `(start, end)` spans.
    pub fn new(buf: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Args { buf, spans }
    }

    /// The buffer the arguments point into (the read buffer, or the decoder's scratch buffer
    /// for an inline command).
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// Where each argument lies in [`Args::buf`].
    pub fn spans(&self) -> &'a [(usize, usize)] {
        self.spans
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i` (0 is the command name).
    ///
    /// # Panics
    /// When `i >= len()`: callers check the arity first.
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.spans[i];
        &self.buf[s..e]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + DoubleEndedIterator + Clone + use<'a> {
        let buf = self.buf;
        self.spans.iter().map(move |&(s, e)| &buf[s..e])
    }

    /// The arguments from `from` on, as a new `Args`.
    pub fn skip(&self, from: usize) -> Args<'a> {
        Args { buf: self.buf, spans: &self.spans[from.min(self.spans.len())..] }
    }
}

impl fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

/// Arguments that own their bytes: one buffer and the spans of each argument in it, so a
/// command of any number of arguments costs two allocations. [`ArgVec::args`] lends them as
/// [`Args`], which is what commands run on.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArgVec {
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl ArgVec {
    pub fn new() -> ArgVec {
        ArgVec::default()
    }

    /// A copy of `args`.
    pub fn from_args(args: Args<'_>) -> ArgVec {
        let mut v = ArgVec {
            buf: Vec::with_capacity(args.iter().map(<[u8]>::len).sum()),
            spans: Vec::with_capacity(args.len()),
        };
        v.extend(args.iter());
        v
    }

    /// Arguments from anything that yields byte strings.
    pub fn from_slices<I, A>(items: I) -> ArgVec
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let mut v = ArgVec::new();
        v.extend(items);
        v
    }

    /// Empty, with room for `args` arguments of `bytes` bytes in all.
    pub fn with_capacity(args: usize, bytes: usize) -> ArgVec {
        ArgVec { buf: Vec::with_capacity(bytes), spans: Vec::with_capacity(args) }
    }

    /// A copy of `items`, its two buffers allocated to size.
    pub fn copy_of(items: &[&[u8]]) -> ArgVec {
        let mut v = ArgVec::new();
        v.assign(items);
        v
    }

    /// Replaces the arguments with a copy of `items`, growing each buffer at most once.
    pub fn assign(&mut self, items: &[&[u8]]) {
        self.clear();
        self.buf.reserve(items.iter().map(|a| a.len()).sum());
        self.spans.reserve(items.len());
        self.extend(items);
    }

    /// Appends one argument.
    pub fn push(&mut self, arg: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(arg);
        self.spans.push((start, self.buf.len()));
    }

    /// Appends each argument of `items`.
    pub fn extend<I, A>(&mut self, items: I)
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        for a in items {
            self.push(a.as_ref());
        }
    }

    /// Empties it, keeping its capacity, except what one huge command made it hold (as
    /// [`crate::Reply::clear`]): a buffer reused from command to command (a script's
    /// `redis.call`, the log's replay) does not keep the largest arguments it ever saw.
    pub fn clear(&mut self) {
        const KEEP: usize = 64 * 1024;
        if self.buf.capacity() > KEEP * 16 {
            self.buf = Vec::with_capacity(KEEP);
        } else {
            self.buf.clear();
        }
        if self.spans.capacity() * std::mem::size_of::<(usize, usize)>() > KEEP * 16 {
            self.spans = Vec::new();
        } else {
            self.spans.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The arguments, borrowed.
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &self.spans)
    }

    /// Bytes held (the arguments' lengths, plus the spans).
    pub fn heap_size(&self) -> usize {
        self.buf.capacity() + self.spans.capacity() * std::mem::size_of::<(usize, usize)>()
    }
}

impl fmt::Debug for ArgVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.args().fmt(f)
    }
}

impl<'a> From<Args<'a>> for ArgVec {
    fn from(args: Args<'a>) -> ArgVec {
        ArgVec::from_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_gives_back_what_a_huge_command_took() {
        let mut v = ArgVec::new();
        v.push(&vec![b'x'; 4 << 20]);
        v.clear();
        assert!(v.is_empty());
        assert!(v.heap_size() <= 64 * 1024 + 1024, "kept {} bytes", v.heap_size());
        // 200k one-byte arguments: 3.2 MB of spans, given back; 200 KB of bytes, kept.
        let many: Vec<&[u8]> = vec![b"a"; 200_000];
        v.extend(many.iter());
        v.clear();
        assert!(v.heap_size() <= 1024 * 1024, "kept {} bytes", v.heap_size());
        // A small command keeps its buffers for the next one.
        v.push(b"SET");
        v.push(b"k");
        let held = v.heap_size();
        v.clear();
        assert_eq!(v.heap_size(), held);
    }

    #[test]
    fn owned_arguments_lend_what_they_hold() {
        let mut v = ArgVec::from_slices(["SET", "k", ""]);
        v.push(b"\x00v");
        let args = v.args();
        assert_eq!(args.len(), 4);
        assert_eq!(args.iter().collect::<Vec<_>>(), vec![&b"SET"[..], b"k", b"", b"\x00v"]);
        assert_eq!(ArgVec::from_args(args.skip(1)).args().get(0), b"k");
        v.clear();
        assert!(v.is_empty() && v.args().is_empty());
    }
}
