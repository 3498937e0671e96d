//! A request's session, and running one command in it through the dispatcher.
//!
//! Each request gets a [`model::Session`](crate::model::Session) of its own, registered with
//! the clients (CLIENT LIST shows it while it runs) and logged in as the request's caller;
//! interactive transactions and subscriptions keep theirs for longer. Commands run through
//! `exec::Batch::run`, with a RESP3 reply writer; the reply is read back as a frame.

use std::sync::Arc;
use std::time::Duration;

use magpie_protocol::{ArgVec, Frame, FrameDecoder, FrameLimits, Reply, Resp};

use super::guard::Caller;
use crate::exec::{Batch, waiters};
use crate::model::Session;
use crate::services::Server;
use crate::services::blocking::Waiter;
use crate::services::journal::Fsync;
use crate::services::stats;

/// A session owned by the HTTP front end; it leaves the clients' registry (and lets go of its
/// transaction and subscriptions) when dropped.
pub(super) struct HttpSession {
    pub(super) session: Session,
    server: Arc<Server>,
}

impl HttpSession {
    /// A session for `caller`, as the user its credentials opened.
    pub(super) fn new(server: &Arc<Server>, caller: &Caller) -> HttpSession {
        let acl = server.acl();
        let info = server.clients().connect(caller.conn.addr, caller.conn.laddr);
        *info.name.lock() = Some(b"http".to_vec());
        let mut login = acl.login();
        if let Some((account, name)) = &caller.user {
            acl.log_in(&mut login, account.clone());
            *info.user.lock() = name.clone().into_boxed_slice();
        }
        let session = Session::new(info, login);
        session.info().resp.store(3, std::sync::atomic::Ordering::Relaxed);
        HttpSession { session, server: server.clone() }
    }

    /// Runs one command: its reply as a frame (RESP3 shapes). A blocking command that finds
    /// nothing waits here, as it would on a RESP connection.
    pub(super) async fn run(&mut self, args: &ArgVec) -> Frame {
        let server = self.server.clone();
        let bytes = match self.start(&server, args) {
            Ran::Done(bytes) => bytes,
            Ran::Blocked(waiter) => {
                let (reply, wrote) = wait(&server, waiter, self.session.block_timeout()).await;
                self.session.note_write(wrote);
                reply
            }
        };
        stats::local().read(args.heap_size());
        stats::local().wrote(bytes.len());
        wait_durable(&server, &self.session).await;
        let info = self.session.info();
        info.db.store(self.session.db(), std::sync::atomic::Ordering::Relaxed);
        parse_reply(&bytes)
    }

    /// The synchronous part: the gate and the batch are held only here, never across an
    /// `.await`.
    fn start(&mut self, server: &Server, args: &ArgVec) -> Ran {
        let mut out = Reply::new(Resp::V3);
        let mut batch = Batch::new(server);
        let ran = batch.run(&mut self.session, &mut out, args.args());
        if let Some(cmd) = ran {
            *self.session.info().last_cmd.lock() = cmd.name;
        }
        if !self.session.is_blocked() {
            return Ran::Done(out.as_bytes().to_vec());
        }
        batch.pause();
        drop(batch);
        Ran::Blocked(waiters::waiter(&self.session, Resp::V3, args.args()))
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        self.session.end(self.server.keyspace(), self.server.pubsub());
        self.server.clients().disconnect(self.session.id());
    }
}

enum Ran {
    Done(Vec<u8>),
    Blocked(Arc<Waiter>),
}

/// Waits as a blocked client until served, timed out or the server stops; the reply. If the
/// request goes away meanwhile (the client disconnected), the waiter leaves its queues.
async fn wait(server: &Arc<Server>, waiter: Arc<Waiter>, timeout: crate::model::Timeout) -> (Vec<u8>, u64) {
    struct Waiting<'a> {
        server: &'a Server,
        waiter: Arc<Waiter>,
        done: bool,
    }
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            if !self.done && self.server.blocking().leave(self.server.keyspace(), &self.waiter).is_none() {
                waiters::count_unserved(&self.waiter);
            }
        }
    }
    waiters::register(server, &waiter);
    let mut w = Waiting { server, waiter, done: false };
    let expiry = async {
        match timeout {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    let mut stop = server.shutdown_signal();
    tokio::select! {
        () = w.waiter.served() => {}
        () = expiry => {}
        () = super::stopped(&mut stop) => {}
    }
    w.done = true;
    match server.blocking().leave(server.keyspace(), &w.waiter) {
        Some(served) => served,
        None => {
            waiters::count_unserved(&w.waiter);
            (b"_\r\n".to_vec(), 0) // RESP3's null: the timeout passed
        }
    }
}

/// Under `appendfsync always`, the answer waits until the log is on disk up to this session's
/// last write (as the RESP connection's replies do); otherwise only while the log is
/// backlogged.
async fn wait_durable(server: &Server, session: &Session) {
    let journal = server.journal();
    let wrote = session.wrote();
    if wrote == 0 || (journal.policy() != Fsync::Always && !journal.backlogged()) || journal.durable_now() >= wrote {
        return;
    }
    let mut durable = journal.durable();
    // Counted among the waiters, as a RESP connection is: the writer cuts its nap short, and
    // the watermark reaches this task through the journal's relay.
    let _waiting = journal.wait_guard();
    let _ = durable.wait_for(|&d| d >= wrote || !journal.is_on()).await;
}

/// The dispatcher's reply (always one whole RESP3 reply) as a frame.
fn parse_reply(bytes: &[u8]) -> Frame {
    let limits = FrameLimits { max_bulk_len: usize::MAX, max_depth: 1024, ..FrameLimits::default() };
    match FrameDecoder::new(limits).decode(bytes) {
        Ok((_, Some(frame))) => frame,
        // The server's own replies are well-formed; should one not be, say so.
        Ok((_, None)) => Frame::Error(b"ERR incomplete reply".to_vec()),
        Err(e) => Frame::Error(format!("ERR unreadable reply: {e}").into_bytes()),
    }
}
