mod common;
use common::*;
use magpie_protocol::Resp;

#[test]
fn smoke() {
    let mut e = engine();
    let mut h = TestHost::default();
    for s in [
        "return 1",
        "return {1,2,3,'a',false,true}",
        "return redis.call('set','k','v')",
        "return redis.call('get','k')",
        "return redis.call('nosuch')",
        "return redis.pcall('nosuch')",
        "x = 1",
        "return y",
        "string.x = 1",
        "rawset(_G,'x',1)",
        "return cjson.decode('x')",
        "return {pcall(redis.call, 'nosuch')}",
        "return math.random(1000)",
        "return math.random(1000)",
        "return table.insert(nil, 1)",
        "\x1bLua",
        "return {next(string)}",
        "return getmetatable(string)",
        "return type(getmetatable(_G).__index)",
        "setmetatable(_G, {})",
        "return __redis__err__handler('x')",
        "return pcall()",
        "return {pcall()}",
        "local t = {} t[1] = t return t",
        "return {err='a\\0b'}",
        "return {ok='a\\r\\nb\\0c'}",
        "error('a\\r\\nb')",
        "local function f() return 1 + f() end return f()",
        "getmetatable('').__index = nil",
        "return bit.tohex(65535, -2147483648)",
        "return {unpack({}, -2147483648, 2147483647)}",
        "error({err=5})",
        "return redis.error_reply('My error')",
        "return redis.error_reply('x')",
        "return {double=1.5}",
        "redis.setresp(3) return redis.call('hgetall', 'x')",
    ] {
        let r = eval(&mut e, &mut h, s, &[], &[], Resp::V2);
        let r = show(&r);
        println!("{s:?} => {:?}", if r.len() > 200 { format!("{}...{}", &r[..100], &r[r.len() - 100..]) } else { r });
    }
}

#[test]
fn libs_smoke() {
    let mut e = engine();
    let mut h = TestHost::default();
    for s in [
        "return cjson.encode({1,2,3,{a=1}})",
        "return cjson.encode({a='x/y\\n', b=0.1, c=1e100, d=-0.0})",
        "return cjson.decode('[1,2,{\"a\":null}]')[3].a == cjson.null",
        "return cjson.decode('x')",
        "return cjson.encode(1/0)",
        "return {cjson.encode_sparse_array()}",
        "return cmsgpack.pack({1,2,3}, 'abc', 1.5, -1)",
        "return {cmsgpack.unpack(cmsgpack.pack({1,2,3}, 'abc', 1.5, -1))}",
        "return bit.tohex(65535, -2147483648)",
        "return {bit.band(0xff, 0x0f), bit.bor(1,2,4), bit.lshift(1, 40), bit.tobit(2^32+5)}",
        "return struct.pack('>i2Bs', 258, 3, 'hi')",
        "return {struct.unpack('>i2Bs', struct.pack('>i2Bs', 258, 3, 'hi'))}",
        "return struct.size('!4bi')",
    ] {
        let r = eval(&mut e, &mut h, s, &[], &[], Resp::V2);
        println!("{s:?} => {:?}", show(&r));
    }
}
