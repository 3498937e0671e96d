//! The compact syntax notation of a table entry (`key value [NX|XX] [EX seconds:integer]`),
//! turned into COMMAND DOCS arguments, which redis-cli shows as hints.

#[derive(Debug, Default, PartialEq)]
pub(crate) struct DocArg {
    pub name: String,
    pub kind: &'static str,
    pub token: Option<String>,
    pub key_spec_index: Option<usize>,
    pub optional: bool,
    pub multiple: bool,
    pub children: Vec<DocArg>,
}

#[derive(Debug)]
enum Item {
    Word(String),
    Group { optional: bool, alts: Vec<Vec<(Item, bool)>> },
}

/// Parses the `syntax` notation of a [`Command`] into documentation arguments.
pub(crate) fn parse_syntax(syntax: &str) -> Vec<DocArg> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in syntax.chars() {
        if c.is_whitespace() || "[]()|".contains(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut pos = 0;
    let alts = parse_alts(&tokens, &mut pos);
    let mut keys = 0;
    let seq = alts.into_iter().next().unwrap_or_default();
    convert_seq(seq, &mut keys)
}

fn parse_alts(tokens: &[String], pos: &mut usize) -> Vec<Vec<(Item, bool)>> {
    let mut alts: Vec<Vec<(Item, bool)>> = vec![Vec::new()];
    while let Some(t) = tokens.get(*pos) {
        *pos += 1;
        let current = alts.last_mut().expect("alternatives are never empty");
        match t.as_str() {
            "]" | ")" => break,
            "|" => alts.push(Vec::new()),
            "..." => {
                if let Some(last) = current.last_mut() {
                    last.1 = true;
                }
            }
            "[" | "(" => {
                let inner = parse_alts(tokens, pos);
                current.push((Item::Group { optional: t == "[", alts: inner }, false));
            }
            w => current.push((Item::Word(w.to_owned()), false)),
        }
    }
    alts
}

fn is_token(w: &str) -> bool {
    w.chars().any(|c| c.is_ascii_uppercase()) && !w.chars().any(|c| c.is_ascii_lowercase() || c == ':')
}

fn convert_seq(seq: Vec<(Item, bool)>, keys: &mut usize) -> Vec<DocArg> {
    let mut out = Vec::new();
    let mut iter = seq.into_iter().peekable();
    while let Some((item, multiple)) = iter.next() {
        if let Item::Word(w) = &item
            && is_token(w)
        {
            let next_is_value = matches!(iter.peek(), Some((Item::Word(n), _)) if !is_token(n));
            if next_is_value {
                let (value, m) = iter.next().expect("peeked");
                let mut arg = convert(value, m, keys);
                arg.token = Some(w.clone());
                out.push(arg);
            } else {
                out.push(DocArg {
                    name: w.to_lowercase(),
                    kind: "pure-token",
                    token: Some(w.clone()),
                    multiple,
                    ..DocArg::default()
                });
            }
            continue;
        }
        out.push(convert(item, multiple, keys));
    }
    out
}

fn convert(item: Item, multiple: bool, keys: &mut usize) -> DocArg {
    match item {
        Item::Word(w) => {
            let (name, kind) = match w.split_once(':') {
                Some((n, "integer")) => (n, "integer"),
                Some((n, "double")) => (n, "double"),
                Some((n, "pattern")) => (n, "pattern"),
                Some((n, "unix-time")) => (n, "unix-time"),
                Some((n, "key")) => (n, "key"),
                Some((n, _)) => (n, "string"),
                None if w == "key" || w.ends_with("key") || w == "source" || w == "destination" => (w.as_str(), "key"),
                None => (w.as_str(), "string"),
            };
            let key_spec_index = (kind == "key").then(|| {
                *keys += 1;
                *keys - 1
            });
            DocArg { name: name.to_owned(), kind, key_spec_index, multiple, ..DocArg::default() }
        }
        Item::Group { optional, alts } => {
            let mut arg = if alts.len() > 1 {
                let children: Vec<DocArg> = alts.into_iter().map(|alt| single_or_block(alt, keys)).collect();
                let name = children.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("-");
                DocArg { name, kind: "oneof", children, ..DocArg::default() }
            } else {
                single_or_block(alts.into_iter().next().unwrap_or_default(), keys)
            };
            arg.optional |= optional;
            arg.multiple |= multiple;
            arg
        }
    }
}

fn single_or_block(seq: Vec<(Item, bool)>, keys: &mut usize) -> DocArg {
    let mut args = convert_seq(seq, keys);
    if args.len() == 1 {
        return args.pop().expect("one element");
    }
    let name = args.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("-");
    DocArg { name, kind: "block", children: args, ..DocArg::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_becomes_doc_arguments() {
        let args = parse_syntax("key value [NX|XX] [GET] [EX seconds:integer|KEEPTTL]");
        assert_eq!(args.len(), 5);
        assert_eq!((args[0].name.as_str(), args[0].kind, args[0].key_spec_index), ("key", "key", Some(0)));
        assert_eq!((args[1].name.as_str(), args[1].kind), ("value", "string"));
        assert_eq!((args[2].kind, args[2].optional, args[2].children.len()), ("oneof", true, 2));
        assert_eq!(args[2].children[0].token.as_deref(), Some("NX"));
        assert_eq!((args[3].kind, args[3].optional), ("pure-token", true));
        let ex = &args[4].children[0];
        assert_eq!((ex.name.as_str(), ex.kind, ex.token.as_deref()), ("seconds", "integer", Some("EX")));
        let multi = parse_syntax("key [key ...]");
        assert!(multi[1].optional && multi[1].multiple);
        assert_eq!(multi[1].key_spec_index, Some(1));
        let block = parse_syntax("(key value) ...");
        assert_eq!((block[0].kind, block[0].multiple, block[0].children.len()), ("block", true, 2));
    }
}
