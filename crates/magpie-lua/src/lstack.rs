//! Values kept on a Lua-side stack instead of in Rust handles.
//!
//! Every mlua handle (a `Table`, a `String` in Rust) takes a slot of mlua's auxiliary Lua
//! stack, which holds at most about 8,000 of them; walking a deep or wide table while holding a
//! handle per level or per element would exhaust it (mlua panics). Walkers keep the tables and
//! keys they are in the middle of here, in a Lua table, and hold only indexes.

use mlua::{FromLua, IntoLua, Lua, Table, Value};

use crate::errors::LResult;

pub(crate) struct LStack {
    t: Table,
    len: usize,
}

impl LStack {
    pub(crate) fn new(lua: &Lua) -> LResult<Self> {
        Ok(LStack { t: lua.create_table()?, len: 0 })
    }

    /// Pushes `v` and returns its slot.
    pub(crate) fn push(&mut self, v: impl IntoLua) -> LResult<usize> {
        self.len += 1;
        self.t.raw_set(self.len, v)?;
        Ok(self.len)
    }

    pub(crate) fn get<V: FromLua>(&self, slot: usize) -> LResult<V> {
        self.t.raw_get(slot)
    }

    pub(crate) fn set(&self, slot: usize, v: impl IntoLua) -> LResult<()> {
        self.t.raw_set(slot, v)
    }

    /// Drops the slots from `len + 1` up.
    pub(crate) fn truncate(&mut self, len: usize) -> LResult<()> {
        while self.len > len {
            self.t.raw_set(self.len, Value::Nil)?;
            self.len -= 1;
        }
        Ok(())
    }
}

/// `next(t, k)` with Lua's own `next`: the key after `k` and its value, without holding any
/// iterator state in Rust.
pub(crate) fn next(lua: &Lua, t: &Table, k: Value) -> LResult<Option<(Value, Value)>> {
    let f = crate::sandbox::env(lua)?.stock_next;
    let (k, v): (Value, Value) = f.call((t, k)).map_err(crate::errors::reraise)?;
    Ok(if matches!(k, Value::Nil) { None } else { Some((k, v)) })
}

/// How many pairs `t` has (`lua_next` until the end).
pub(crate) fn count_pairs(t: &Table) -> LResult<usize> {
    let mut n = 0;
    for pair in t.pairs::<Value, Value>() {
        pair?;
        n += 1;
    }
    Ok(n)
}
