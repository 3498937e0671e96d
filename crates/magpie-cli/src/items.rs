//! How `get`, `del` and `set` read keys and values from their arguments.
//!
//! - A comma separates items: `get a,b c` names the keys a, b and c.
//! - In a `set` pair, the first `=` separates the key from the value: `k=a=b` sets k to `a=b`.
//! - `\,` is a literal comma, `\=` a literal `=`, `\\` a backslash; any other backslash is kept
//!   as it is (so `C:\dir` needs no escaping).
//! - `set KEY VALUE` takes VALUE exactly as given; `--literal` turns splitting and escapes off.

use std::ffi::OsStr;

/// A mistake in the arguments, explained.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// The bytes of a command-line argument (on Unix, exactly the bytes given).
pub(crate) fn arg_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().into_owned().into_bytes()
    }
}

/// Splits `s` at every `sep` that is not escaped, leaving the escapes in the parts.
fn split_unescaped(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < s.len() {
        match s[i] {
            b'\\' if matches!(s.get(i + 1), Some(b',' | b'=' | b'\\')) => i += 2,
            c if c == sep => {
                parts.push(&s[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Splits at the first `=` that is not escaped.
fn split_pair(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if matches!(s.get(i + 1), Some(b',' | b'=' | b'\\')) => i += 2,
            b'=' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Undoes `\,` `\=` `\\`.
pub(crate) fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (s[i], s.get(i + 1)) {
            (b'\\', Some(&c @ (b',' | b'=' | b'\\'))) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The keys named by `get` and `del` arguments.
pub(crate) fn keys(args: &[Vec<u8>], literal: bool) -> Result<Vec<Vec<u8>>, UsageError> {
    if literal {
        return Ok(args.to_vec());
    }
    let mut keys = Vec::new();
    for arg in args {
        for part in split_unescaped(arg, b',') {
            if part.is_empty() {
                return Err(UsageError(format!(
                    "empty key in {:?}: commas separate keys (write a literal comma as \\, or use --literal)",
                    show(arg)
                )));
            }
            keys.push(unescape(part));
        }
    }
    Ok(keys)
}

/// What `set` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SetItems {
    /// One key whose value comes from `--value-file`.
    KeyOnly(Vec<u8>),
    /// Keys and their values, in order.
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
}

/// Reads `set`'s arguments by the rules in the module documentation.
pub(crate) fn set_items(args: &[Vec<u8>], literal: bool, value_file: bool) -> Result<SetItems, UsageError> {
    if value_file {
        let [arg] = args else {
            return Err(UsageError("--value-file sets one key: give just the KEY".into()));
        };
        if literal {
            return Ok(SetItems::KeyOnly(arg.clone()));
        }
        let parts = split_unescaped(arg, b',');
        if parts.len() > 1 || split_pair(arg).is_some() {
            return Err(UsageError(format!(
                "--value-file sets one key, got {:?} (escape a comma or '=' in a key as \\, or \\=, or use --literal)",
                show(arg)
            )));
        }
        return Ok(SetItems::KeyOnly(unescape(arg)));
    }
    if literal {
        if !args.len().is_multiple_of(2) {
            return Err(UsageError("with --literal, give KEY VALUE pairs (an even number of arguments)".into()));
        }
        return Ok(SetItems::Pairs(args.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect()));
    }
    // `set KEY VALUE`: two arguments, the first without an unescaped '=' or ','.
    if let [key, value] = args
        && split_pair(key).is_none()
    {
        if split_unescaped(key, b',').len() > 1 {
            return Err(UsageError(format!(
                "{:?}: a key cannot hold an unescaped comma (write it as \\, or use --literal)",
                show(key)
            )));
        }
        return Ok(SetItems::Pairs(vec![(unescape(key), value.clone())]));
    }
    let mut pairs = Vec::new();
    for arg in args {
        for part in split_unescaped(arg, b',') {
            let Some((key, value)) = split_pair(part) else {
                let hint = if args.len() == 1 && part.len() == arg.len() {
                    " (to set one key: magpie set KEY VALUE, or --value-file)"
                } else {
                    " (to put a comma in a value, write it as \\,)"
                };
                return Err(UsageError(format!("expected KEY=VALUE, got {:?}{hint}", show(part))));
            };
            if key.is_empty() {
                return Err(UsageError(format!("empty key in {:?}", show(part))));
            }
            pairs.push((unescape(key), unescape(value)));
        }
    }
    Ok(SetItems::Pairs(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn keys_of(a: &[&str]) -> Vec<String> {
        keys(&args(a), false).unwrap().into_iter().map(|k| String::from_utf8(k).unwrap()).collect()
    }

    fn pairs(a: &[&str]) -> Vec<(String, String)> {
        match set_items(&args(a), false, false).unwrap() {
            SetItems::Pairs(p) => {
                p.into_iter().map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap())).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn keys_split_on_commas_and_arguments() {
        assert_eq!(keys_of(&["a"]), ["a"]);
        assert_eq!(keys_of(&["a,b", "c"]), ["a", "b", "c"]);
        assert_eq!(keys_of(&[r"a\,b", "c=d"]), ["a,b", "c=d"]);
        assert_eq!(keys_of(&[r"back\\,x"]), [r"back\", "x"]);
        assert_eq!(keys_of(&[r"C:\dir\n"]), [r"C:\dir\n"], "other backslashes are kept");
        assert!(keys(&args(&["a,,b"]), false).unwrap_err().0.contains("empty key"));
        assert!(keys(&args(&["a,"]), false).is_err());
        assert_eq!(keys(&args(&["a,b", ""]), true).unwrap(), args(&["a,b", ""]));
    }

    #[test]
    fn key_value_form_takes_the_value_exactly() {
        assert_eq!(pairs(&["k", "v"]), [p("k", "v")]);
        assert_eq!(pairs(&["note", "x=1,y=2"]), [p("note", "x=1,y=2")]);
        assert_eq!(pairs(&["k", r"a\,b"]), [p("k", r"a\,b")], "no unescaping in the value either");
        assert_eq!(pairs(&[r"a\=b", "v"]), [p("a=b", "v")]);
        assert!(set_items(&args(&["a,b", "v"]), false, false).unwrap_err().0.contains("unescaped comma"));
    }

    #[test]
    fn pairs_split_on_commas_then_the_first_equals() {
        assert_eq!(pairs(&["k=v"]), [p("k", "v")]);
        assert_eq!(pairs(&["a=1,b=2", "c=3"]), [p("a", "1"), p("b", "2"), p("c", "3")]);
        assert_eq!(pairs(&["a=1", "b=2"]), [p("a", "1"), p("b", "2")], "two pairs, not KEY VALUE");
        assert_eq!(pairs(&["k=a=b"]), [p("k", "a=b")]);
        assert_eq!(pairs(&[r"list=a\,b\,c"]), [p("list", "a,b,c")]);
        assert_eq!(pairs(&[r"a\=b=c"]), [p("a=b", "c")]);
        assert_eq!(pairs(&["k="]), [p("k", "")], "an empty value is a value");
        assert_eq!(pairs(&[r"k=v\\,j=w"]), [p("k", r"v\"), p("j", "w")]);
    }

    #[test]
    fn pair_mistakes_are_explained() {
        let err = |a: &[&str]| set_items(&args(a), false, false).unwrap_err().0;
        assert!(err(&["k"]).contains("to set one key: magpie set KEY VALUE"));
        assert!(err(&["a=1,b"]).contains(r"write it as \,"));
        assert!(err(&["a=1", "b", "c"]).contains(r#"got "b""#));
        assert!(err(&["=v"]).contains("empty key"));
        assert!(err(&["a=1,,b=2"]).contains("expected KEY=VALUE"));
    }

    #[test]
    fn literal_and_value_file() {
        let lit = set_items(&args(&["a,b", "x=y", "k", ""]), true, false).unwrap();
        assert_eq!(lit, SetItems::Pairs(vec![(b"a,b".to_vec(), b"x=y".to_vec()), (b"k".to_vec(), vec![])]));
        assert!(set_items(&args(&["a", "b", "c"]), true, false).is_err());
        assert_eq!(set_items(&args(&[r"a\,b"]), false, true).unwrap(), SetItems::KeyOnly(b"a,b".to_vec()));
        assert_eq!(set_items(&args(&["a,b"]), true, true).unwrap(), SetItems::KeyOnly(b"a,b".to_vec()));
        assert!(set_items(&args(&["a", "b"]), false, true).is_err());
        assert!(set_items(&args(&["a,b"]), false, true).is_err());
        assert!(set_items(&args(&["a=b"]), false, true).is_err());
    }
}
