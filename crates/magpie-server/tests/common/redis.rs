//! What a test that compares with redis-server does when there is none: shared by the test
//! harnesses of magpie-server and magpie-cli (included with `#[path]`).

use std::io::Write;

/// Whether a missing redis-server must fail the tests that compare with it
/// (`MAGPIE_REQUIRE_REDIS` set to anything but `0`).
pub(super) fn redis_required() -> bool {
    std::env::var_os("MAGPIE_REQUIRE_REDIS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// For a test that needs redis-server and cannot start it: fails when it is required, else
/// says loudly that the test is skipped. Written to the terminal directly, past the test
/// harness's capture of `eprintln!`, which would hide it for a test that passes.
pub(crate) fn skip_without_redis(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if redis_required() {
        panic!("{test}: redis-server is required (MAGPIE_REQUIRE_REDIS is set) but could not start: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: redis-server is not available ({why}); it compares nothing. \
         Install redis-server, or set MAGPIE_REQUIRE_REDIS=1 to make this a failure."
    );
}
