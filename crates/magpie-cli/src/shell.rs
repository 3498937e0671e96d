//! The interactive shell: `magpie` with no subcommand.
//!
//! On a terminal: line editing and persistent history (rustyline), completion of command
//! names and argument hints from the server's `COMMAND DOCS`, replies typed like redis-cli,
//! the prompt `host:port[db]> `. With stdin not a terminal it runs the piped lines as commands,
//! one per line, printing each reply, as redis-cli does.
//!
//! Lines are split like redis-cli's (and Magpie's inline commands): spaces separate words,
//! "double quotes" understand `\n \r \t \" \\ \xHH`, 'single quotes' understand `\'`.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use magpie_client::{Client, Frame};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor};
use tokio::runtime::Runtime;

use crate::commands::print_reply;
use crate::docs::Docs;
use crate::{Exit, Failure, Out, Session, note};

/// What the shell does after a line.
enum Flow {
    Continue,
    Quit,
}

struct Shell<'r> {
    runtime: &'r Runtime,
    session: Session,
    interactive: bool,
    /// Shared with the line editor's helper, which reads it for hints and completion.
    docs: Arc<RwLock<Docs>>,
    docs_loaded: bool,
}

impl Shell<'_> {
    /// The connection, made (again) if there is none: after connecting, switch to RESP3 so
    /// replies carry their types (maps, sets, doubles), and on a terminal read the docs.
    fn client(&mut self) -> Result<&mut Client, Failure> {
        if self.session.client.is_none() {
            let mut client = self.runtime.block_on(Client::connect(&self.session.config))?;
            self.runtime.block_on(client.hello(3))?;
            self.session.client = Some(client);
            if self.interactive {
                self.load_docs();
            }
        }
        match self.session.client.as_mut() {
            Some(c) => Ok(c),
            None => unreachable!("connected just above"),
        }
    }

    fn load_docs(&mut self) {
        if self.docs_loaded {
            return;
        }
        let Some(client) = self.session.client.as_mut() else { return };
        let mut docs = match self.runtime.block_on(client.cmd(&["COMMAND", "DOCS"])) {
            Ok(reply) if !reply.is_error() => Docs::from_reply(&reply),
            _ => Docs::default(),
        };
        if docs.commands.is_empty() {
            // An older server: at least the names, for completion.
            if let Ok(Frame::Array(names)) = self.runtime.block_on(client.cmd(&["COMMAND", "LIST"])) {
                for n in names.iter().filter_map(Frame::as_bytes) {
                    let name = String::from_utf8_lossy(n).to_lowercase();
                    docs.commands.insert(name.clone(), crate::docs::Doc { name, ..Default::default() });
                }
            }
        }
        self.docs_loaded = true;
        if let Ok(mut shared) = self.docs.write() {
            *shared = docs;
        }
    }

    fn prompt(&self) -> String {
        match &self.session.client {
            None => "not connected> ".to_owned(),
            Some(c) if c.db() != 0 => format!("{}[{}]> ", self.session.config.addr(), c.db()),
            Some(_) => format!("{}> ", self.session.config.addr()),
        }
    }

    /// Runs one line. Failures that end a piped session are returned; on a terminal they are
    /// reported and the shell goes on (reconnecting at the next command).
    fn line(&mut self, line: &[u8], out: &mut Out) -> Result<Flow, Failure> {
        let Some(words) = magpie_protocol::split_line(line) else {
            note("error: unbalanced quotes in the line");
            return Ok(Flow::Continue);
        };
        let Some(first) = words.first() else { return Ok(Flow::Continue) };
        match first.to_ascii_lowercase().as_slice() {
            b"quit" | b"exit" => return Ok(Flow::Quit),
            b"clear" if self.interactive => {
                out.write(b"\x1b[2J\x1b[H")?;
                out.flush()?;
                return Ok(Flow::Continue);
            }
            b"help" => {
                self.help(&words[1..], out)?;
                out.flush()?;
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        let runtime = self.runtime;
        let result = match self.client() {
            Ok(client) => runtime.block_on(client.cmd(&words)).map_err(Failure::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(reply) => {
                if let Some(c) = &self.session.client {
                    // Reconnect to the database SELECT chose.
                    self.session.config.db = c.db();
                }
                print_reply(out, &reply)?;
                out.flush()?;
                Ok(Flow::Continue)
            }
            Err(Failure::Output(e)) => Err(Failure::Output(e)),
            Err(e) => {
                self.session.client = None;
                if !self.interactive {
                    return Err(e);
                }
                note(&e.to_string());
                Ok(Flow::Continue)
            }
        }
    }

    fn help(&mut self, words: &[Vec<u8>], out: &mut Out) -> std::io::Result<()> {
        if words.is_empty() {
            return out.write(
                b"Type commands as in redis-cli: SET greeting \"hello world\", GET greeting.\n\
                  \"double quotes\" take \\n \\t \\\" \\xHH escapes; 'single quotes' take \\'.\n\
                  help COMMAND shows a command's arguments; Tab completes command names;\n\
                  quit, exit or Ctrl-D leaves; clear clears the screen.\n",
            );
        }
        let _ = self.client().map(|_| ());
        self.load_docs();
        let words: Vec<String> = words.iter().map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        let docs = match self.docs.read() {
            Ok(d) => d.clone(),
            Err(_) => Docs::default(),
        };
        match docs.find(&words) {
            Some((doc, _)) => {
                let mut text = format!("\n  {}\n", doc.usage());
                if !doc.summary.is_empty() {
                    text.push_str(&format!("  summary: {}\n", doc.summary));
                }
                if !doc.since.is_empty() {
                    text.push_str(&format!("  since: {}\n", doc.since));
                }
                if !doc.group.is_empty() {
                    text.push_str(&format!("  group: {}\n", doc.group));
                }
                for sub in doc.subcommands.values() {
                    text.push_str(&format!("  {}\n", sub.usage()));
                }
                out.write(format!("{text}\n").as_bytes())
            }
            None => out.write(format!("no documentation for {:?}\n", words.join(" ")).as_bytes()),
        }
    }
}

/// The line editor's helper: completion and hints from the shared docs.
struct Helper {
    docs: Arc<RwLock<Docs>>,
    color: bool,
}

impl Completer for Helper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let prior: Vec<&str> = before[..start].split_whitespace().collect();
        let candidates = match self.docs.read() {
            Ok(docs) => docs.complete(&prior, &before[start..]),
            Err(_) => Vec::new(),
        };
        Ok((start, candidates))
    }
}

impl Hinter for Helper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<String> {
        if pos < line.len() {
            return None;
        }
        self.docs.read().ok()?.hint(line)
    }
}

impl Highlighter for Helper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color { Cow::Owned(format!("\x1b[90m{hint}\x1b[0m")) } else { Cow::Borrowed(hint) }
    }
}

impl Validator for Helper {}

impl rustyline::Helper for Helper {}

/// Where history is kept: `$MAGPIE_HISTFILE` (empty: nowhere), else
/// `$XDG_STATE_HOME/magpie/history`, else `~/.magpie_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAGPIE_HISTFILE") {
        return (!p.is_empty()).then(|| PathBuf::from(p));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(state).join("magpie").join("history"));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".magpie_history"))
}

/// Lines that carry a password stay out of the history file.
fn is_secret(line: &str) -> bool {
    let words: Vec<String> = line.split_whitespace().take(3).map(str::to_lowercase).collect();
    match words.first().map(String::as_str) {
        Some("auth") => true,
        Some("hello") => line.to_lowercase().split_whitespace().any(|w| w == "auth"),
        Some("acl") => words.get(1).is_some_and(|w| w == "setuser"),
        Some("config") => line.to_lowercase().contains("requirepass"),
        _ => false,
    }
}

pub(crate) fn run(runtime: &Runtime, session: Session, out: &mut Out) -> Result<Exit, Failure> {
    let interactive = std::io::stdin().is_terminal();
    let docs = Arc::new(RwLock::new(Docs::default()));
    let mut shell = Shell { runtime, session, interactive, docs: docs.clone(), docs_loaded: false };
    if !interactive {
        // Piped commands: a connection failure ends the run, as it would in a script.
        shell.client()?;
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n =
                stdin.read_until(b'\n', &mut line).map_err(|e| Failure::Input(format!("cannot read stdin: {e}")))?;
            if n == 0 {
                return Ok(Exit::Ok);
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if let Flow::Quit = shell.line(text, out)? {
                return Ok(Exit::Ok);
            }
        }
    }

    if let Err(e) = shell.client() {
        // Start anyway, as redis-cli does: each command tries to connect again.
        note(&e.to_string());
    }
    let setup = |e: ReadlineError| Failure::Input(format!("cannot set up the line editor: {e}"));
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000)
        .and_then(|b| b.history_ignore_dups(true))
        .map_err(setup)?
        .build();
    let mut editor: Editor<Helper, DefaultHistory> = Editor::with_config(config).map_err(setup)?;
    let color = std::env::var_os("NO_COLOR").is_none();
    editor.set_helper(Some(Helper { docs, color }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    loop {
        match editor.readline(&shell.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() && !is_secret(&line) {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        if let Some(dir) = path.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let _ = editor.append_history(path);
                    }
                }
                if let Flow::Quit = shell.line(line.as_bytes(), out)? {
                    break;
                }
            }
            // Ctrl-C drops the line being typed; Ctrl-D leaves.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::Input(format!("cannot read the terminal: {e}"))),
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_history() {
        assert!(is_secret("AUTH hunter2"));
        assert!(is_secret("auth default hunter2"));
        assert!(is_secret("HELLO 3 AUTH default hunter2"));
        assert!(is_secret("config set requirepass x"));
        assert!(!is_secret("HELLO 3"));
        assert!(!is_secret("GET auth"));
    }
}
