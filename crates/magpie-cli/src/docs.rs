//! What the shell knows about commands, taken from the server's `COMMAND DOCS`: names for
//! completion, argument lists for hints and `help`.

use std::collections::BTreeMap;

use magpie_client::Frame;

/// One command (or subcommand, named `client setname`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Doc {
    pub name: String,
    pub summary: String,
    pub since: String,
    pub group: String,
    /// Top-level arguments as they are written in a usage line: `key`, `[NX|XX]`, ...
    pub args: Vec<String>,
    /// How many leading arguments are required and single (safe to skip once typed).
    pub required: usize,
    /// Subcommands by their lowercase second word.
    pub subcommands: BTreeMap<String, Doc>,
}

impl Doc {
    /// `SET key value [NX|XX] ...`
    pub(crate) fn usage(&self) -> String {
        let mut s = self.name.to_uppercase();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Every command the server documented, by lowercase name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Docs {
    pub commands: BTreeMap<String, Doc>,
}

/// The key-value pairs of a map reply, or of a RESP2 flat array of them.
fn pairs(f: &Frame) -> Vec<(&Frame, &Frame)> {
    match f.without_attributes() {
        Frame::Map(p) => p.iter().map(|(k, v)| (k, v)).collect(),
        Frame::Array(items) if items.len() % 2 == 0 => items.chunks(2).map(|kv| (&kv[0], &kv[1])).collect(),
        _ => Vec::new(),
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Integer(n) => n.to_string(),
        other => other.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default(),
    }
}

fn field<'a>(fields: &[(&'a Frame, &'a Frame)], name: &str) -> Option<&'a Frame> {
    fields.iter().find(|(k, _)| k.as_bytes() == Some(name.as_bytes())).map(|(_, v)| *v)
}

/// One argument's text, and whether it is required and single.
fn argument(arg: &Frame) -> (String, bool) {
    let fields = pairs(arg);
    let get = |name| field(&fields, name).map(text).filter(|s| !s.is_empty());
    let kind = get("type").unwrap_or_default();
    let flags: Vec<String> =
        field(&fields, "flags").and_then(Frame::as_slice).unwrap_or_default().iter().map(text).collect();
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    let children = || -> Vec<String> {
        field(&fields, "arguments")
            .and_then(Frame::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| argument(a).0)
            .collect()
    };
    let token = get("token");
    let base = match kind.as_str() {
        "pure-token" => token.clone().unwrap_or_else(|| get("name").unwrap_or_default()),
        "oneof" => children().join("|"),
        "block" => children().join(" "),
        _ => get("display_text").or_else(|| get("name")).unwrap_or_default(),
    };
    let one = match (&token, kind.as_str()) {
        (Some(t), k) if k != "pure-token" => format!("{t} {base}"),
        _ => base.clone(),
    };
    let mut s = if has("multiple") {
        if has("multiple_token") { format!("{one} [{one} ...]") } else { format!("{one} [{base} ...]") }
    } else {
        one
    };
    let optional = has("optional");
    if optional {
        s = format!("[{s}]");
    }
    (s, !optional && !has("multiple"))
}

fn doc(name: &str, value: &Frame) -> Doc {
    let fields = pairs(value);
    let get = |f| field(&fields, f).map(text).unwrap_or_default();
    let mut d = Doc {
        name: name.replace('|', " ").to_lowercase(),
        summary: get("summary"),
        since: get("since"),
        group: get("group"),
        ..Doc::default()
    };
    let mut leading = true;
    for arg in field(&fields, "arguments").and_then(Frame::as_slice).unwrap_or_default() {
        let (s, single) = argument(arg);
        leading &= single;
        if leading {
            d.required += 1;
        }
        d.args.push(s);
    }
    if let Some(subs) = field(&fields, "subcommands") {
        for (k, v) in pairs(subs) {
            let full = text(k).to_lowercase();
            let short = full.split('|').nth(1).unwrap_or(&full).to_owned();
            d.subcommands.insert(short, doc(&full, v));
        }
    }
    d
}

impl Docs {
    /// Reads a `COMMAND DOCS` reply (RESP2 or RESP3).
    pub(crate) fn from_reply(reply: &Frame) -> Docs {
        let mut docs = Docs::default();
        for (k, v) in pairs(reply) {
            let name = text(k).to_lowercase();
            docs.commands.insert(name.clone(), doc(&name, v));
        }
        docs
    }

    /// The command (or subcommand) named by the first words of a line, and how many words
    /// its name took.
    pub(crate) fn find(&self, words: &[String]) -> Option<(&Doc, usize)> {
        let cmd = self.commands.get(&words.first()?.to_lowercase())?;
        match words.get(1).and_then(|w| cmd.subcommands.get(&w.to_lowercase())) {
            Some(sub) => Some((sub, 2)),
            None => Some((cmd, 1)),
        }
    }

    /// The hint to show after `line` (the cursor at its end), like redis-cli: the arguments
    /// still to type. `None` when there is nothing useful to say.
    pub(crate) fn hint(&self, line: &str) -> Option<String> {
        let words: Vec<String> = magpie_protocol::split_line(line.as_bytes())?
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect();
        let (doc, used) = self.find(&words)?;
        let at_space = line.ends_with(char::is_whitespace);
        if !at_space {
            // Right after the command's name: the whole argument list, after a space.
            if words.len() != used {
                return None;
            }
            let all = self.rest(doc, 0)?;
            return Some(format!(" {all}"));
        }
        self.rest(doc, words.len() - used)
    }

    /// The arguments after the first `typed` ones, or `None` if it cannot be told which are
    /// left.
    fn rest(&self, doc: &Doc, typed: usize) -> Option<String> {
        if doc.args.is_empty() && !doc.subcommands.is_empty() && typed == 0 {
            let names: Vec<String> = doc.subcommands.keys().map(|s| s.to_uppercase()).collect();
            return Some(names.join("|"));
        }
        if typed > doc.required {
            return None;
        }
        let rest = doc.args[typed.min(doc.args.len())..].join(" ");
        (!rest.is_empty()).then_some(rest)
    }

    /// Candidates for the word being typed, given the words before it.
    pub(crate) fn complete(&self, before: &[&str], word: &str) -> Vec<String> {
        let lower = word.to_lowercase();
        // Complete in the case the user types in: lowercase once they type lowercase.
        let upper = !word.chars().any(char::is_lowercase);
        let case = |s: &str| if upper { s.to_uppercase() } else { s.to_lowercase() };
        let names: Vec<&String> = match before {
            [] | ["help" | "HELP"] => self.commands.keys().collect(),
            [cmd] => match self.commands.get(&cmd.to_lowercase()) {
                Some(doc) => doc.subcommands.keys().collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let mut out: Vec<String> = names.into_iter().filter(|n| n.starts_with(&lower)).map(|n| case(n)).collect();
        if before.is_empty() {
            out.extend(["help", "quit", "exit", "clear"].iter().filter(|n| n.starts_with(&lower)).map(|n| case(n)));
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Frame {
        Frame::Bulk(s.as_bytes().to_vec())
    }

    fn map(pairs: Vec<(&str, Frame)>) -> Frame {
        Frame::Map(pairs.into_iter().map(|(k, v)| (b(k), v)).collect())
    }

    fn arg(name: &str, kind: &str, extra: Vec<(&str, Frame)>) -> Frame {
        let mut p = vec![("name", b(name)), ("type", b(kind))];
        p.extend(extra);
        map(p)
    }

    fn flags(f: &[&str]) -> Frame {
        Frame::Set(f.iter().map(|s| Frame::Simple(s.as_bytes().to_vec())).collect())
    }

    /// SET and MSET as Redis 7 documents them, CLIENT with one subcommand.
    fn sample() -> Docs {
        Docs::from_reply(&sample_reply())
    }

    fn sample_reply() -> Frame {
        let token = |t: &str| arg(&t.to_lowercase(), "pure-token", vec![("token", b(t))]);
        let set = map(vec![
            ("summary", b("Sets the string value of a key.")),
            ("since", b("1.0.0")),
            ("group", b("string")),
            (
                "arguments",
                Frame::Array(vec![
                    arg("key", "key", vec![]),
                    arg("value", "string", vec![]),
                    arg(
                        "condition",
                        "oneof",
                        vec![
                            ("flags", flags(&["optional"])),
                            ("arguments", Frame::Array(vec![token("NX"), token("XX")])),
                        ],
                    ),
                    arg("get", "pure-token", vec![("token", b("GET")), ("flags", flags(&["optional"]))]),
                    arg(
                        "expiration",
                        "oneof",
                        vec![
                            ("flags", flags(&["optional"])),
                            (
                                "arguments",
                                Frame::Array(vec![
                                    arg("seconds", "integer", vec![("token", b("EX"))]),
                                    token("KEEPTTL"),
                                ]),
                            ),
                        ],
                    ),
                ]),
            ),
        ]);
        let mset = map(vec![(
            "arguments",
            Frame::Array(vec![arg(
                "data",
                "block",
                vec![
                    ("flags", flags(&["multiple"])),
                    ("arguments", Frame::Array(vec![arg("key", "key", vec![]), arg("value", "string", vec![])])),
                ],
            )]),
        )]);
        let setname = map(vec![("arguments", Frame::Array(vec![arg("connection-name", "string", vec![])]))]);
        let client = map(vec![("subcommands", map(vec![("client|setname", setname)]))]);
        map(vec![("set", set), ("mset", mset), ("client", client)])
    }

    #[test]
    fn usage_lines_from_command_docs() {
        let docs = sample();
        assert_eq!(docs.commands["set"].usage(), "SET key value [NX|XX] [GET] [EX seconds|KEEPTTL]");
        assert_eq!(docs.commands["mset"].usage(), "MSET key value [key value ...]");
        assert_eq!(docs.commands["client"].subcommands["setname"].usage(), "CLIENT SETNAME connection-name");
        assert_eq!(docs.commands["set"].summary, "Sets the string value of a key.");
    }

    #[test]
    fn resp2_flat_arrays_read_the_same() {
        fn flatten(f: &Frame) -> Frame {
            match f {
                Frame::Map(p) => Frame::Array(p.iter().flat_map(|(k, v)| [flatten(k), flatten(v)]).collect()),
                Frame::Array(v) | Frame::Set(v) => Frame::Array(v.iter().map(flatten).collect()),
                other => other.clone(),
            }
        }
        let resp2 = Docs::from_reply(&flatten(&sample_reply()));
        assert_eq!(resp2.commands, sample().commands);
        assert_eq!(resp2.commands.len(), 3);
    }

    #[test]
    fn hints_show_the_arguments_left() {
        let docs = sample();
        assert_eq!(docs.hint("SET").as_deref(), Some(" key value [NX|XX] [GET] [EX seconds|KEEPTTL]"));
        assert_eq!(docs.hint("set ").as_deref(), Some("key value [NX|XX] [GET] [EX seconds|KEEPTTL]"));
        assert_eq!(docs.hint("set k ").as_deref(), Some("value [NX|XX] [GET] [EX seconds|KEEPTTL]"));
        assert_eq!(docs.hint("set k \"a b\" ").as_deref(), Some("[NX|XX] [GET] [EX seconds|KEEPTTL]"));
        assert_eq!(docs.hint("set k v NX "), None, "which optional ones are left cannot be told");
        assert_eq!(docs.hint("set k"), None, "no hint in the middle of a word");
        assert_eq!(docs.hint("client ").as_deref(), Some("SETNAME"));
        assert_eq!(docs.hint("client setname ").as_deref(), Some("connection-name"));
        assert_eq!(docs.hint("nosuch "), None);
        assert_eq!(docs.hint("set \"open "), None);
    }

    #[test]
    fn completion_of_names_in_the_case_typed() {
        let docs = sample();
        assert_eq!(docs.complete(&[], "se"), ["set"]);
        assert_eq!(docs.complete(&[], "M"), ["MSET"]);
        assert_eq!(docs.complete(&[], "c"), ["clear", "client"]);
        assert_eq!(docs.complete(&["CLIENT"], "S"), ["SETNAME"]);
        assert_eq!(docs.complete(&["help"], "ms"), ["mset"]);
        assert!(docs.complete(&["set", "k"], "").is_empty());
    }
}
