//! The `struct` library (Roberto Ierusalimschy's lua_struct.c 0.2 as Redis ships it):
//! `struct.pack`, `struct.unpack`, `struct.size`, on x86-64 (`long` of 8 bytes, little endian,
//! maximum alignment 8).

use mlua::{Lua, MultiValue, Table, Value};

use crate::errors::{Args, LResult, arg_error, c_i64, lua_error};
use crate::shebang::c_str;

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Big,
    Little,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Header {
    fn new() -> Self {
        Header { endian: Endian::Little, align: 1 }
    }
}

struct Fmt<'a> {
    s: &'a [u8],
    at: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.s.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    fn getnum(&mut self, lua: &Lua, df: usize) -> LResult<usize> {
        if !self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(df);
        }
        let mut a: i32 = 0;
        while let Some(&c) = self.s.get(self.at).filter(|c| c.is_ascii_digit()) {
            let d = i32::from(c - b'0');
            if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
                return Err(lua_error(lua, "integral size overflow"));
            }
            a = a * 10 + d;
            self.at += 1;
        }
        Ok(a as usize)
    }
}

fn optsize(lua: &Lua, opt: u8, fmt: &mut Fmt<'_>) -> LResult<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => fmt.getnum(lua, 1)?,
        b'i' | b'I' => {
            let sz = fmt.getnum(lua, 4)?;
            if sz > MAXINTSIZE {
                return Err(lua_error(lua, format!("integral size {sz} is larger than limit of {MAXINTSIZE}")));
            }
            sz
        }
        _ => 0,
    })
}

fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size.wrapping_sub(len & (size - 1))) & (size - 1)
}

fn controloptions(a: &Args<'_>, opt: u8, fmt: &mut Fmt<'_>, h: &mut Header) -> LResult<()> {
    match opt {
        b' ' => Ok(()),
        b'>' => {
            h.endian = Endian::Big;
            Ok(())
        }
        b'<' => {
            h.endian = Endian::Little;
            Ok(())
        }
        b'!' => {
            let n = fmt.getnum(a.lua, MAXALIGN)?;
            if n == 0 || n & (n - 1) != 0 {
                return Err(lua_error(a.lua, format!("alignment {} is not a power of 2", n as i32)));
            }
            h.align = n;
            Ok(())
        }
        _ => {
            let c = char::from(opt);
            Err(arg_error(a.lua, 1, &format!("invalid format option '{c}'")))
        }
    }
}

/// C's `(unsigned long)n` / `(unsigned long)(long)n` as putinteger does them on x86-64.
fn to_uint(n: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if n < 0.0 {
        c_i64(n) as u64
    } else if n < TWO63 {
        n as u64
    } else {
        (c_i64(n - TWO63) as u64) ^ (1 << 63)
    }
}

fn pack(lua: &Lua, args: MultiValue) -> LResult<mlua::String> {
    let mut a = Args::new(lua, args);
    // b_pack pushes a nil after its arguments (to separate them from the string buffer): the
    // first missing argument is seen as nil, not as no value.
    let nargs = a.len();
    a.v.push(Value::Nil);
    let a = Args { lua, v: a.v };
    let _ = nargs;
    let f = a.check_bytes(1)?;
    let mut fmt = Fmt { s: c_str(&f), at: 0 };
    let mut h = Header::new();
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = optsize(lua, opt, &mut fmt)?;
        let toalign = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = a.check_number(arg)?;
                arg += 1;
                let mut value = to_uint(n);
                let mut buf = [0u8; MAXINTSIZE];
                for i in 0..size {
                    let at = if h.endian == Endian::Little { i } else { size - 1 - i };
                    buf[at] = (value & 0xff) as u8;
                    value = value.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&buf[..size]);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = a.check_number(arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.endian == Endian::Little { f.to_le_bytes() } else { f.to_be_bytes() });
            }
            b'd' => {
                let d = a.check_number(arg)?;
                arg += 1;
                out.extend_from_slice(&if h.endian == Endian::Little { d.to_le_bytes() } else { d.to_be_bytes() });
            }
            b'c' | b's' => {
                let s = a.check_bytes(arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(arg_error(lua, arg, "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => controloptions(&a, opt, &mut fmt, &mut h)?,
        }
    }
    lua.create_string(out)
}

fn getinteger(buf: &[u8], endian: Endian, signed: bool) -> f64 {
    let size = buf.len();
    let mut l: u64 = 0;
    for i in 0..size {
        let b = if endian == Endian::Big { buf[i] } else { buf[size - 1 - i] };
        l = (l << 8) | u64::from(b);
    }
    if !signed {
        return l as f64;
    }
    let mask = u64::MAX.wrapping_shl((size * 8).wrapping_sub(1) as u32);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    let a = Args::new(lua, args);
    let f = a.check_bytes(1)?;
    let mut fmt = Fmt { s: c_str(&f), at: 0 };
    let data = a.check_bytes(2)?;
    let ld = data.len();
    let pos = if a.is_none_or_nil(3) { 1 } else { c_i64(a.check_number(3)?) };
    if pos <= 0 && (pos as u64) == 0 {
        return Err(arg_error(lua, 3, "offset must be 1 or greater"));
    }
    let mut pos = (pos as u64 as usize).wrapping_sub(1);
    let mut h = Header::new();
    let mut out: Vec<Value> = Vec::new();
    while let Some(opt) = fmt.next() {
        let mut size = optsize(lua, opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(arg_error(lua, 2, "data string too short"));
        }
        if a.len() + out.len() + 2 > 8000 {
            return Err(lua_error(lua, "stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                out.push(Value::Number(getinteger(&data[pos..pos + size], h.endian, signed)));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.endian == Endian::Little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) };
                out.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.endian == Endian::Little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let prev = out.last().and_then(|v| crate::errors::to_number(lua, v));
                    let Some(n) = prev else {
                        return Err(lua_error(lua, "format 'c0' needs a previous size"));
                    };
                    out.pop();
                    size = to_uint(n) as usize;
                    if !(size <= ld && pos <= ld - size) {
                        return Err(arg_error(lua, 2, "data string too short"));
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err(lua_error(lua, "unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + e])?));
                size = e + 1;
            }
            _ => controloptions(&a, opt, &mut fmt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_vec(out))
}

fn size(lua: &Lua, args: MultiValue) -> LResult<f64> {
    let a = Args::new(lua, args);
    let f = a.check_bytes(1)?;
    let mut fmt = Fmt { s: c_str(&f), at: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next() {
        let size = optsize(lua, opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(lua, 1, "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(&a, opt, &mut fmt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(pos as i64 as f64)
}

pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(pack)?)?;
    t.raw_set("unpack", lua.create_function(unpack)?)?;
    t.raw_set("size", lua.create_function(size)?)?;
    Ok(t)
}
