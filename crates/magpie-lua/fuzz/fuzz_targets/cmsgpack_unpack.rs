//! `cmsgpack.unpack` on arbitrary bytes: never panics, never allocates according to a declared
//! length; what it decodes packs and unpacks again without a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_lua::fuzzing::Decoders;

thread_local! {
    static DECODERS: Decoders = Decoders::new().expect("lua state");
}

fuzz_target!(|data: &[u8]| {
    DECODERS.with(|d| {
        if let Ok(packed) = d.msgpack(data)
            && !packed.is_empty()
        {
            // Not necessarily the same bytes, nor even valid input: maps come back in another
            // order, nils inside arrays are lost, and tables nested deeper than 16 are packed as
            // nil, which as a map key makes `table index is nil` (as in Redis). Only: no panic.
            let _ = d.msgpack(&packed);
        }
    });
});
