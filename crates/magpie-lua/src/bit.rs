//! The `bit` library (LuaBitOp 1.0.2, deps/lua/src/lua_bit.c), with the CVE-2024-31449 fix of
//! `bit.tohex`.

use mlua::{Lua, MultiValue, Table};

use crate::errors::{Args, LResult, type_error};

/// `barg`: the number's value modulo 2^32, rounded as adding 2^52 + 2^51 to a double rounds.
fn barg(a: &Args<'_>, n: usize) -> LResult<u32> {
    let (d, is_number) = match a.to_number(n) {
        Some(d) => (d, true),
        None => (0.0, false),
    };
    let b = (d + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && !is_number {
        return Err(type_error(a.lua, &a.v, n, "number"));
    }
    Ok(b)
}

fn ret(b: u32) -> f64 {
    f64::from(b as i32)
}

pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    macro_rules! func {
        ($name:expr, |$a:ident| $body:expr) => {
            t.raw_set(
                $name,
                lua.create_function(|lua, args: MultiValue| {
                    let $a = Args::new(lua, args);
                    $body
                })?,
            )?;
        };
    }
    func!("tobit", |a| Ok(ret(barg(&a, 1)?)));
    func!("bnot", |a| Ok(ret(!barg(&a, 1)?)));
    func!("band", |a| fold(&a, |x, y| x & y));
    func!("bor", |a| fold(&a, |x, y| x | y));
    func!("bxor", |a| fold(&a, |x, y| x ^ y));
    func!("lshift", |a| shift(&a, |b, n| b << n));
    func!("rshift", |a| shift(&a, |b, n| b >> n));
    func!("arshift", |a| shift(&a, |b, n| ((b as i32) >> n) as u32));
    func!("rol", |a| shift(&a, u32::rotate_left));
    func!("ror", |a| shift(&a, u32::rotate_right));
    func!("bswap", |a| Ok(ret(barg(&a, 1)?.swap_bytes())));
    func!("tohex", |a| tohex(&a));
    Ok(t)
}

fn fold(a: &Args<'_>, op: fn(u32, u32) -> u32) -> LResult<f64> {
    let mut b = barg(a, 1)?;
    // Redis folds from the last argument down to the second.
    for i in (2..=a.len()).rev() {
        b = op(b, barg(a, i)?);
    }
    Ok(ret(b))
}

fn shift(a: &Args<'_>, op: fn(u32, u32) -> u32) -> LResult<f64> {
    let b = barg(a, 1)?;
    let n = barg(a, 2)? & 31;
    Ok(ret(op(b, n)))
}

fn tohex(a: &Args<'_>) -> LResult<mlua::String> {
    let mut b = barg(a, 1)?;
    let mut n: i32 = if a.get(2).is_none() { 8 } else { barg(a, 2)? as i32 };
    let mut digits: &[u8; 16] = b"0123456789abcdef";
    if n == i32::MIN {
        n = i32::MIN + 1;
    }
    if n < 0 {
        n = -n;
        digits = b"0123456789ABCDEF";
    }
    if n > 8 {
        n = 8;
    }
    let mut buf = [0u8; 8];
    for i in (0..n as usize).rev() {
        buf[i] = digits[(b & 15) as usize];
        b >>= 4;
    }
    a.lua.create_string(&buf[..n as usize])
}
