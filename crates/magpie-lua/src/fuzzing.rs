//! Entry points for the fuzz targets (crates/magpie-lua/fuzz): the cjson decoder and the
//! cmsgpack unpacker on arbitrary bytes, outside any script.

use mlua::{Lua, LuaOptions, StdLib, Value};

/// A Lua state with the sandbox's libraries, reused across inputs.
pub struct Decoders {
    lua: Lua,
}

impl Decoders {
    pub fn new() -> mlua::Result<Self> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::new())?;
        crate::sandbox::prepare(&lua, true)?;
        lua.set_memory_limit(256 << 20)?;
        Ok(Decoders { lua })
    }

    /// `cjson.decode(data)`; on success the value encoded again with `cjson.encode` (when it
    /// can be: NaN and infinities cannot).
    pub fn json(&self, data: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let v = crate::cjson::decode_default(&self.lua, data).map_err(|e| e.to_string())?;
        Ok(crate::cjson::encode_value(&self.lua, &v).ok())
    }

    /// `cjson.encode(cjson.decode(text))` for text produced by `cjson.encode`.
    pub fn json_roundtrip(&self, text: &[u8]) -> Result<Vec<u8>, String> {
        let v = crate::cjson::decode_default(&self.lua, text).map_err(|e| e.to_string())?;
        crate::cjson::encode_value(&self.lua, &v).map_err(|e| e.to_string())
    }

    /// `cmsgpack.unpack(data)`; on success the values packed again with `cmsgpack.pack`.
    pub fn msgpack(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let values = crate::cmsgpack::unpack_bytes(&self.lua, data).map_err(|e| e.to_string())?;
        let values: Vec<Value> = values.into_vec();
        crate::cmsgpack::pack_values(&values).map_err(|e| e.to_string())
    }

    /// Memory the decoders' Lua state holds.
    pub fn memory(&self) -> usize {
        let _ = self.lua.gc_collect();
        self.lua.used_memory()
    }
}
