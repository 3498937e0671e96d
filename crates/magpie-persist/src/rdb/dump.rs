//! DUMP and FUNCTION DUMP payloads, and their checks as RESTORE and FUNCTION RESTORE make them.
//!
//! ```text
//! payload          := type value rdb-version:u16le crc64:u64le      (DUMP)
//! function-payload := (0xF5 code:string)* rdb-version:u16le crc64:u64le
//! ```
//!
//! The CRC-64 covers everything before it, the version included.

use std::fmt;

use super::io::{Input, SliceInput, put_string, read_len, read_string};
use super::{Object, RDB_VERSION, RdbError, ReadOptions, WriteOptions, crc64, opcodes, types, value};

/// Why RESTORE refuses a payload; `Display` gives Redis's error reply (without the `-`).
#[derive(Debug)]
pub enum RestoreError {
    /// Too short, a newer RDB version, or the checksum does not match.
    VersionOrChecksum,
    /// The value cannot be read (`detail` says why, for logs).
    BadData(RdbError),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::VersionOrChecksum => f.write_str("ERR DUMP payload version or checksum are wrong"),
            RestoreError::BadData(_) => f.write_str("ERR Bad data format"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// Appends the footer: version and the CRC-64 of everything so far.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The DUMP payload of `obj` (`createDumpPayload`).
pub fn dump(obj: &Object, opts: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    value::write_object(&mut out, None, obj, opts);
    seal(out)
}

/// The DUMP payload of one of Magpie's values (as [`dump`], without making an [`Object`]).
pub fn dump_value(v: &magpie_store::Value, opts: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    value::write_value(&mut out, None, v, opts);
    seal(out)
}

/// Checks a payload's footer as `verifyDumpPayload` does: at least 10 bytes, an RDB version
/// Magpie reads, and (unless `skip_checksum`) a matching CRC-64. Returns the version.
pub fn verify_payload(p: &[u8], skip_checksum: bool) -> Result<u16, RestoreError> {
    if p.len() < 10 {
        return Err(RestoreError::VersionOrChecksum);
    }
    let footer = &p[p.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(RestoreError::VersionOrChecksum);
    }
    if !skip_checksum {
        let crc = crc64(0, &p[..p.len() - 8]);
        if crc.to_le_bytes() != footer[2..] {
            return Err(RestoreError::VersionOrChecksum);
        }
    }
    Ok(version)
}

/// Reads a DUMP payload as RESTORE does: the footer checked (the checksum unless
/// `opts.verify_checksum` is off), then one value read from the
/// start of the payload. Like Redis, bytes after the value are not looked at, and an empty
/// collection is bad data.
pub fn restore(payload: &[u8], opts: &ReadOptions) -> Result<Object, RestoreError> {
    verify_payload(payload, !opts.verify_checksum)?;
    let mut inp = SliceInput::new(payload);
    let t = inp.u8().map_err(RestoreError::BadData)?;
    if !types::is_object_type(t) {
        return Err(RestoreError::BadData(RdbError::corrupt(format!("Unknown RDB type {t}"))));
    }
    match value::read_object(&mut inp, t, opts) {
        Ok(Some(obj)) => Ok(obj),
        Ok(None) => Err(RestoreError::BadData(RdbError::corrupt("empty key"))),
        Err(e) => Err(RestoreError::BadData(e)),
    }
}

/// The FUNCTION DUMP payload of these libraries' code (`functionDumpCommand`).
pub fn function_dump<'a>(libraries: impl IntoIterator<Item = &'a [u8]>, opts: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    for code in libraries {
        out.push(opcodes::FUNCTION2);
        put_string(&mut out, code, opts.compression);
    }
    seal(out)
}

/// Why FUNCTION RESTORE refuses a payload; `Display` gives Redis's error reply.
#[derive(Debug, PartialEq, Eq)]
pub enum FunctionRestoreError {
    VersionOrChecksum,
    /// Redis's reason ("can not read data type", "given type is not a function", ...).
    Load(String),
}

impl fmt::Display for FunctionRestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunctionRestoreError::VersionOrChecksum => f.write_str("ERR DUMP payload version or checksum are wrong"),
            FunctionRestoreError::Load(m) => write!(f, "ERR {m}"),
        }
    }
}

impl std::error::Error for FunctionRestoreError {}

/// Reads a FUNCTION DUMP payload: the code of each library, in order (`functionRestoreCommand`
/// up to creating the libraries, which is the scripting engine's job).
pub fn function_restore(payload: &[u8]) -> Result<Vec<Vec<u8>>, FunctionRestoreError> {
    verify_payload(payload, false).map_err(|_| FunctionRestoreError::VersionOrChecksum)?;
    let mut inp = SliceInput::new(payload);
    let mut libraries = Vec::new();
    while payload.len() - inp.position() > 10 {
        let t = inp.u8().map_err(|_| FunctionRestoreError::Load("can not read data type".into()))?;
        if t != opcodes::FUNCTION && t != opcodes::FUNCTION2 {
            return Err(FunctionRestoreError::Load("given type is not a function".into()));
        }
        libraries.push(read_function(&mut inp, t).map_err(|e| match e {
            RdbError::Function(m) => FunctionRestoreError::Load(m),
            e => FunctionRestoreError::Load(e.to_string()),
        })?);
    }
    Ok(libraries)
}

/// Reads one library after its opcode (`rdbFunctionLoad`): the code for FUNCTION2; for the
/// release candidates' FUNCTION, name, engine, optional description and code, turned into
/// the code with its `#!<engine> name=<name>` line as 7.0 keeps it.
pub(crate) fn read_function(inp: &mut impl Input, opcode: u8) -> Result<Vec<u8>, RdbError> {
    let fail = |m: &str| RdbError::Function(m.into());
    if opcode == opcodes::FUNCTION2 {
        return read_string(inp).map_err(|_| fail("Failed loading library payload"));
    }
    let name = read_string(inp).map_err(|_| fail("Failed loading library name"))?;
    let engine = read_string(inp).map_err(|_| fail("Failed loading engine name"))?;
    let has_desc = read_len(inp).map_err(|_| fail("Failed loading library description indicator"))?;
    if has_desc != 0 {
        read_string(inp).map_err(|_| fail("Failed loading library description"))?;
    }
    let blob = read_string(inp).map_err(|_| fail("Failed loading library blob"))?;
    let mut code = b"#!".to_vec();
    code.extend_from_slice(&engine);
    code.extend_from_slice(b" name=");
    code.extend_from_slice(&name);
    code.push(b'\n');
    code.extend_from_slice(&blob);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use magpie_store::Value;

    use super::*;

    #[test]
    fn redis_dump_payloads_of_strings_are_reproduced() {
        // DUMP of SET k <100 'a'> and of a 46-byte string, from redis-server 7.0.15.
        let a100 = b"\x00\xc3\x09\x40\x64\x01aa\xe0W\x00\x01aa\x0a\x00\xe8\xa3\xb5\x07\xb0m\xf2q";
        let hello = b"\x00\xc3\x1c\x2e\x0chello world h\xe0\x0e\x0b\x091234567890\x0a\x00\xe6\x95L\xb9\xaa\xefR\x00";
        let opts = WriteOptions::default();
        assert_eq!(dump(&Object::Value(Value::string(&[b'a'; 100])), &opts), a100);
        let s = b"hello world hello world hello world 1234567890";
        assert_eq!(dump(&Object::Value(Value::string(s)), &opts), hello);
        let back = restore(hello, &ReadOptions::default()).expect("valid");
        assert_eq!(back, Object::Value(Value::string(s)));
    }

    #[test]
    fn footer_checks_give_redis_errors() {
        let good = dump(&Object::Value(Value::Int(7)), &WriteOptions::default());
        assert!(restore(&good, &ReadOptions::default()).is_ok());
        let mut flipped = good.clone();
        flipped[1] ^= 1;
        let mut newer = good[..good.len() - 10].to_vec();
        newer.extend_from_slice(&11u16.to_le_bytes());
        let crc = crc64(0, &newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        for bad in [&flipped[..], &good[..9], &newer] {
            let e = restore(bad, &ReadOptions::default()).expect_err("refused");
            assert_eq!(e.to_string(), "ERR DUMP payload version or checksum are wrong");
        }
        // A sound footer over a type Redis does not know: bad data.
        let bogus = seal(vec![8, 0]);
        assert_eq!(restore(&bogus, &ReadOptions::default()).expect_err("refused").to_string(), "ERR Bad data format");
    }

    #[test]
    fn function_payloads_round_trip_and_refuse_other_types() {
        let libs: [&[u8]; 2] =
            [b"#!lua name=a\nredis.register_function('f', function() return 1 end)", b"#!lua name=b\n"];
        let p = function_dump(libs, &WriteOptions::default());
        assert_eq!(function_restore(&p), Ok(libs.iter().map(|l| l.to_vec()).collect()));
        assert_eq!(function_restore(&seal(Vec::new())), Ok(vec![]));
        assert_eq!(
            function_restore(&seal(vec![0, 1, b'x'])).map_err(|e| e.to_string()),
            Err("ERR given type is not a function".into())
        );
        // The release candidates' format: name, engine, description, code.
        let mut old = vec![opcodes::FUNCTION, 1, b'n', 3, b'L', b'U', b'A', 1, 1, b'd', 4, b'c', b'o', b'd', b'e'];
        old = seal(std::mem::take(&mut old));
        assert_eq!(function_restore(&old), Ok(vec![b"#!LUA name=n\ncode".to_vec()]));
    }
}
