//! An async client for Magpie (and any server that speaks the Redis protocol), on tokio.
//!
//! ```no_run
//! # async fn demo() -> Result<(), magpie_client::Error> {
//! use magpie_client::{Client, Config, Frame};
//!
//! let config = Config::from_url("redis://127.0.0.1:6379/0")?;
//! let mut client = Client::connect(&config).await?;
//! client.cmd(&["SET", "greeting", "hello"]).await?;
//! match client.cmd(&["GET", "greeting"]).await? {
//!     Frame::Bulk(value) => println!("{}", String::from_utf8_lossy(&value)),
//!     Frame::Error(msg) => eprintln!("(error) {}", String::from_utf8_lossy(&msg)),
//!     other => println!("{other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! A command's reply, error replies included, is a [`Frame`]: `Err` is kept for what stops
//! the conversation (the connection, the protocol), so a caller can print an error reply and go
//! on.

mod config;
mod error;
mod tls;

pub use config::{Config, DEFAULT_HOST, DEFAULT_PORT, Tls};
pub use error::Error;
pub use magpie_protocol::Frame;

use magpie_protocol::{FrameDecoder, encode_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tls::Stream;

/// One connection to a server. Commands run one at a time (`&mut self`); send several at once
/// with [`Client::pipeline`].
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    addr: String,
    /// Bytes read but not yet taken by the decoder.
    buf: Vec<u8>,
    decoder: FrameDecoder,
    /// Requests being encoded.
    out: Vec<u8>,
    protocol: u8,
    db: u32,
}

impl Client {
    /// Connects (with TLS when the config asks for it), then authenticates (`AUTH`) and
    /// selects the database (`SELECT`) when the config asks for them. A refused password or
    /// database is an error.
    pub async fn connect(config: &Config) -> Result<Client, Error> {
        let addr = config.addr();
        let connecting = TcpStream::connect((config.host.as_str(), config.port));
        let stream = match tokio::time::timeout(config.connect_timeout, connecting).await {
            Err(_) => return Err(Error::ConnectTimeout { addr, after: config.connect_timeout }),
            Ok(Err(source)) => return Err(Error::Connect { addr, source }),
            Ok(Ok(stream)) => stream,
        };
        // Requests are written whole; there is nothing to gain from Nagle's delay.
        let _ = stream.set_nodelay(true);
        let stream = match &config.tls {
            Some(tls) => {
                let tls_err = |message: String| Error::Tls { addr: addr.clone(), message };
                let name = tls.sni.as_deref().unwrap_or(&config.host);
                let handshake = tls::connect(tls, name, stream).map_err(tls_err)?;
                match tokio::time::timeout(config.connect_timeout, handshake).await {
                    Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                    Ok(Err(e)) => return Err(tls_err(e.to_string())),
                    Err(_) => return Err(tls_err("the handshake did not finish in time".into())),
                }
            }
            None => Stream::Plain(stream),
        };
        let mut client = Client {
            stream,
            addr,
            buf: Vec::with_capacity(16 * 1024),
            decoder: FrameDecoder::default(),
            out: Vec::new(),
            protocol: 2,
            db: 0,
        };
        if let Some(password) = &config.password {
            let reply = match &config.username {
                Some(user) => client.cmd(&["AUTH", user, password]).await?,
                None => client.cmd(&["AUTH", password]).await?,
            };
            if let Frame::Error(msg) = reply {
                return Err(Error::Auth { addr: client.addr, message: String::from_utf8_lossy(&msg).into_owned() });
            }
        }
        if config.db != 0 {
            let reply = client.cmd(&["SELECT".to_owned(), config.db.to_string()]).await?;
            if let Frame::Error(msg) = reply {
                return Err(Error::Select { db: config.db, message: String::from_utf8_lossy(&msg).into_owned() });
            }
        }
        Ok(client)
    }

    /// Runs one command and returns its reply. An error reply is `Ok(Frame::Error(..))`.
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Frame, Error> {
        self.out.clear();
        encode_request(&mut self.out, args);
        self.write_out().await?;
        let reply = self.read_frame().await?;
        self.track(args, &reply);
        Ok(reply)
    }

    /// Sends every command at once and returns their replies in order.
    pub async fn pipeline<C: AsRef<[A]>, A: AsRef<[u8]>>(&mut self, cmds: &[C]) -> Result<Vec<Frame>, Error> {
        self.out.clear();
        for cmd in cmds {
            encode_request(&mut self.out, cmd.as_ref());
        }
        self.write_out().await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let reply = self.read_frame().await?;
            self.track(cmd.as_ref(), &reply);
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Switches the connection's protocol with `HELLO proto` (2 or 3) and returns the server's
    /// answer, a map describing it. A server that does not know HELLO answers with an error
    /// reply, and the connection stays on RESP2.
    pub async fn hello(&mut self, proto: u8) -> Result<Frame, Error> {
        self.cmd(&["HELLO".to_owned(), proto.to_string()]).await
    }

    /// Reads the next reply: for a command sent by other means, or a RESP3 push message.
    pub async fn read_frame(&mut self) -> Result<Frame, Error> {
        loop {
            let (used, frame) =
                self.decoder.decode(&self.buf).map_err(|source| Error::Protocol { addr: self.addr.clone(), source })?;
            self.buf.drain(..used);
            if let Some(frame) = frame {
                return Ok(frame);
            }
            self.buf.reserve(16 * 1024);
            let read = match &mut self.stream {
                Stream::Plain(s) => s.read_buf(&mut self.buf).await,
                Stream::Tls(s) => s.read_buf(&mut self.buf).await,
            };
            match read {
                Ok(0) => {
                    let mid_reply = !self.buf.is_empty() || self.decoder.in_progress();
                    return Err(Error::Closed { addr: self.addr.clone(), mid_reply });
                }
                Ok(_) => {}
                Err(source) => return Err(Error::Io { addr: self.addr.clone(), source }),
            }
        }
    }

    /// The protocol the connection speaks: 2, or 3 after a successful `HELLO 3`.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// The database selected (by the config or a later successful `SELECT`).
    pub fn db(&self) -> u32 {
        self.db
    }

    /// The server's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn write_out(&mut self) -> Result<(), Error> {
        let written = match &mut self.stream {
            Stream::Plain(s) => s.write_all(&self.out).await,
            Stream::Tls(s) => s.write_all(&self.out).await,
        };
        written.map_err(|source| Error::Io { addr: self.addr.clone(), source })
    }

    /// Keeps track of the connection state that commands change: the protocol after `HELLO`,
    /// the database after `SELECT`.
    fn track<A: AsRef<[u8]>>(&mut self, args: &[A], reply: &Frame) {
        if reply.is_error() {
            return;
        }
        let number = |i: usize| args.get(i).and_then(|a| std::str::from_utf8(a.as_ref()).ok()?.parse().ok());
        match args.first().map(AsRef::as_ref) {
            Some(name) if name.eq_ignore_ascii_case(b"hello") => {
                if let Some(v @ (2 | 3)) = number(1) {
                    self.protocol = v as u8;
                }
            }
            Some(name) if name.eq_ignore_ascii_case(b"select") => {
                if let Some(db) = number(1).and_then(|n| u32::try_from(n).ok()) {
                    self.db = db;
                }
            }
            _ => {}
        }
    }
}
