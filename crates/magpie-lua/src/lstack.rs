//! Values kept on a Lua-side stack instead of in Rust handles.
//!
//! Every mlua handle (a `Table`, a `String` in Rust) takes a slot of mlua's auxiliary Lua
//! stack, which holds at most about 8,000 of them; walking a deep or wide table while holding a
//! handle per level or per element would exhaust it (mlua panics). Walkers keep the tables and
//! keys they are in the middle of here, in a Lua table, and hold only indexes.

use mlua::{FromLua, IntoLua, Lua, Table, Value};

use crate::errors::LResult;

/// The table is made on the first push: most walks (a script returning a number or a string)
/// never need one.
pub(crate) struct LStack {
    lua: Lua,
    t: Option<Table>,
    len: usize,
}

impl LStack {
    pub(crate) fn new(lua: &Lua) -> LResult<Self> {
        Ok(LStack { lua: lua.clone(), t: None, len: 0 })
    }

    fn table(&mut self) -> LResult<&Table> {
        if self.t.is_none() {
            self.t = Some(self.lua.create_table()?);
        }
        match &self.t {
            Some(t) => Ok(t),
            None => Err(crate::errors::raise_str("internal error: no stack table")),
        }
    }

    /// Pushes `v` and returns its slot.
    pub(crate) fn push(&mut self, v: impl IntoLua) -> LResult<usize> {
        self.len += 1;
        let slot = self.len;
        self.table()?.raw_set(slot, v)?;
        Ok(slot)
    }

    /// The value at `slot` (nil past the top).
    pub(crate) fn get<V: FromLua>(&self, slot: usize) -> LResult<V> {
        match &self.t {
            Some(t) => t.raw_get(slot),
            None => V::from_lua(Value::Nil, &self.lua),
        }
    }

    pub(crate) fn set(&mut self, slot: usize, v: impl IntoLua) -> LResult<()> {
        self.table()?.raw_set(slot, v)
    }

    /// Drops the slots from `len + 1` up.
    pub(crate) fn truncate(&mut self, len: usize) -> LResult<()> {
        while self.len > len {
            if let Some(t) = &self.t {
                t.raw_set(self.len, Value::Nil)?;
            }
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
