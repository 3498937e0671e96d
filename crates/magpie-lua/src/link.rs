//! How the Rust functions a script calls reach the server: the [`Link`] of a Lua state.
//!
//! The server lends its [`Host`] to a run as a `&mut dyn Host` borrowed for the call of
//! `EvalEngine::run`, `FunctionEngine::call` or `FunctionEngine::load`. The functions a script
//! calls (`redis.call`, `redis.log`, the count hook, ...) are Lua functions that the state keeps
//! between runs, so they cannot hold that borrow. The link holds it instead, as a pointer
//! whose lifetime is erased, for exactly the length of the run: [`Link::lend`] puts it there
//! and returns a guard ([`Lent`]) that holds the borrow and takes the pointer back when
//! dropped (at the end of the run, on an error, or while a panic unwinds). The functions reach
//! the host through [`Link::with_host`], which takes the pointer out of the link while the host
//! runs, so that the host is never reachable twice at once.
//!
//! The link also carries what `redis.call` needs on every call without looking through mlua's
//! app data: the protocol the script chose (`redis.setresp`) and the buffers the arguments and
//! the reply are made in, kept from call to call.
//!
//! Each state has one link, in its app data as an `Rc` (the engines keep another); mlua drops
//! the app data only after closing the state, so the link outlives every Lua function of the
//! state (`redis.call` holds a plain pointer to it).

#![allow(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::rc::Rc;

use magpie_protocol::{ArgVec, Reply, Resp};
use mlua::{Lua, WeakLua};

use crate::host::Host;

/// Buffers `redis.call` reuses: its arguments, copied once into one buffer (`numbers` is where
/// an argument that is a number is written as text first), and the command's reply.
pub(crate) struct Buffers {
    pub numbers: Vec<u8>,
    pub args: ArgVec,
    pub reply: Reply,
}

/// A slice of strings, its lifetimes erased.
type Strings = *const [&'static [u8]];

pub(crate) struct Link {
    /// The host of the run in progress, its lifetime erased (see [`Link::lend`]). `None`
    /// between runs, and while a call to the host is in progress.
    host: Cell<Option<NonNull<dyn Host>>>,
    /// The KEYS and ARGV of the run in progress (a function's keys and arguments), their
    /// lifetimes erased as the host's, until the run's wrapper takes them (`call::inputs`).
    inputs: Cell<Option<(Strings, Strings)>>,
    /// The protocol chosen with `redis.setresp` (2 at the start of each run).
    pub resp: Cell<Resp>,
    pub buffers: RefCell<Buffers>,
    /// A panic caught in `redis.call`, resumed when the run returns.
    panic: Cell<Option<Box<dyn Any + Send>>>,
    /// The state (weak: the state holds the link), for its memory limit.
    lua: WeakLua,
    /// The memory limit a script runs under (0: none), turned on by [`Link::limit`].
    memory_limit: Cell<usize>,
    /// The run in progress was killed (SCRIPT KILL, FUNCTION KILL).
    pub(crate) killed: Cell<bool>,
    /// The count hook runs at every instruction (after a kill or a load timeout).
    pub(crate) fast_hook: Cell<bool>,
}

impl Link {
    pub(crate) fn new(lua: &Lua) -> Rc<Link> {
        let buffers = Buffers { numbers: Vec::new(), args: ArgVec::new(), reply: Reply::new(Resp::V2) };
        let link = Rc::new(Link {
            host: Cell::new(None),
            inputs: Cell::new(None),
            resp: Cell::new(Resp::V2),
            buffers: RefCell::new(buffers),
            panic: Cell::new(None),
            lua: lua.weak(),
            memory_limit: Cell::new(0),
            killed: Cell::new(false),
            fast_hook: Cell::new(false),
        });
        lua.set_app_data(Rc::clone(&link));
        link
    }

    /// The link of `lua`'s state.
    pub(crate) fn of(lua: &Lua) -> Option<Rc<Link>> {
        lua.app_data_ref::<Rc<Link>>().map(|l| Rc::clone(&l))
    }

    /// Lends `host` to the functions of the state until the returned guard is dropped, and
    /// `keys` and `args` to the run's wrapper, which makes KEYS and ARGV of them.
    pub(crate) fn lend<'l, 'h>(
        &'l self,
        host: &'h mut (dyn Host + 'h),
        keys: &'h [&'h [u8]],
        args: &'h [&'h [u8]],
    ) -> Lent<'l, 'h> {
        let ptr: NonNull<dyn Host + 'h> = NonNull::from(host);
        // SAFETY: only the lifetime bound of the trait object changes (same pointer, same
        // vtable). The pointer is used only through `with_host`, while the `Lent` returned here
        // is alive: the `Lent` holds the `&'h mut` borrow (its `PhantomData`), so the host
        // outlives it and nothing else uses the host meanwhile, and dropping the `Lent` (also
        // on unwinding) removes the pointer from the link. `Lent` is not `Clone`, and Magpie
        // never leaks one.
        let ptr: NonNull<dyn Host + 'static> =
            unsafe { std::mem::transmute::<NonNull<dyn Host + 'h>, NonNull<dyn Host + 'static>>(ptr) };
        let prev = self.host.replace(Some(ptr));
        // Only the lifetimes change; used by `with_inputs` while the `Lent` (which holds the
        // `'h` borrows) is alive, as the host.
        self.inputs.set(Some((keys as *const [&[u8]] as Strings, args as *const [&[u8]] as Strings)));
        Lent { link: self, prev, _host: PhantomData }
    }

    /// Runs `f` with the KEYS and ARGV of the run in progress, once per run; `None` when
    /// there is no run or they were taken already.
    pub(crate) fn with_inputs<R>(&self, f: impl FnOnce(&[&[u8]], &[&[u8]]) -> R) -> Option<R> {
        let (keys, args) = self.inputs.take()?;
        // SAFETY: the pointers were made by `lend` from slices borrowed for as long as its
        // `Lent` is alive, and the `Lent` is alive: its drop empties the cell.
        Some(f(unsafe { &*keys }, unsafe { &*args }))
    }

    /// Whether a run is in progress (and not inside a call to its host).
    pub(crate) fn active(&self) -> bool {
        // `Cell<Option<NonNull>>` is `Copy`.
        self.host.get().is_some()
    }

    /// Runs `f` with the host of the run in progress; `None` outside a run (and, were the
    /// host ever to call back into the script, inside a call to the host).
    pub(crate) fn with_host<R>(&self, f: impl FnOnce(&mut dyn Host) -> R) -> Option<R> {
        let mut ptr = self.host.take()?;
        // SAFETY: the pointer was made by `lend` from a `&mut dyn Host` whose `Lent` is still
        // alive (its drop would have emptied the cell), so the host is alive and borrowed by
        // nothing else. It is out of the cell while `f` runs: this is the only reference to it.
        let r = f(unsafe { ptr.as_mut() });
        // Put back unless `f` panicked (then the run is stopping: the host stays out of reach).
        self.host.set(Some(ptr));
        Some(r)
    }

    pub(crate) fn keep_panic(&self, payload: Box<dyn Any + Send>) {
        self.panic.set(Some(payload));
    }

    /// The panic caught in a `redis.call` of the run that just ended, if any.
    pub(crate) fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.panic.take()
    }

    pub(crate) fn set_memory_limit(&self, limit: usize) {
        self.memory_limit.set(limit);
    }

    /// Turns the state's memory limit on (around a script's function: see `Core::limit`) or
    /// off.
    pub(crate) fn limit(&self, on: bool) {
        let limit = self.memory_limit.get();
        if limit > 0
            && let Some(lua) = self.lua.try_upgrade()
        {
            let _ = lua.set_memory_limit(if on { limit } else { 0 });
        }
    }

    /// Lifts the state's memory limit until the guard is dropped (see [`Unlimited`]).
    pub(crate) fn unlimited(&self) -> Unlimited {
        match self.lua.try_upgrade() {
            Some(lua) => {
                let limit = lua.set_memory_limit(0).unwrap_or(0);
                Unlimited { lua: Some(lua), limit }
            }
            None => Unlimited { lua: None, limit: 0 },
        }
    }
}

/// The host lent to a run ([`Link::lend`]); dropping it ends the loan.
pub(crate) struct Lent<'l, 'h> {
    link: &'l Link,
    prev: Option<NonNull<dyn Host>>,
    _host: PhantomData<(&'h mut (dyn Host + 'h), &'h [&'h [u8]])>,
}

impl Drop for Lent<'_, '_> {
    fn drop(&mut self) {
        // `prev` is `None`: a state runs one script at a time (the engines' methods take
        // `&mut self`).
        self.link.host.set(self.prev.take());
        self.link.inputs.set(None);
    }
}

/// The Lua state's memory limit lifted while Magpie's own code runs inside a script (see
/// `Core::limit`), and put back when dropped: the arguments and reply of a command are bounded
/// by the request and the keyspace, as in Redis (whose Lua has no limit at all), while the
/// script's own allocations stay limited. With no limit in force, no allocation of the state
/// can fail (mlua's allocator aborts when the system has no memory left, as Redis's does).
pub(crate) struct Unlimited {
    lua: Option<Lua>,
    limit: usize,
}

impl Drop for Unlimited {
    fn drop(&mut self) {
        if let Some(lua) = &self.lua
            && self.limit > 0
        {
            let _ = lua.set_memory_limit(self.limit);
        }
    }
}
