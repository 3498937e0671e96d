//! `cjson.decode` on arbitrary bytes: never panics, never holds on to memory; what it decodes
//! encodes to text that decodes again.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use magpie_lua::fuzzing::Decoders;

thread_local! {
    static DECODERS: Decoders = Decoders::new().expect("lua state");
}

static BASELINE: OnceLock<usize> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    DECODERS.with(|d| {
        if let Ok(Some(text)) = d.json(data) {
            // Not necessarily the same text: object keys come back in the order of the new
            // table's hash part, nulls inside arrays decide between array and object.
            d.json_roundtrip(&text).expect("cjson.encode output must decode");
        }
        let base = *BASELINE.get_or_init(|| d.memory());
        assert!(d.memory() < base + (8 << 20), "the Lua state keeps growing");
    });
});
