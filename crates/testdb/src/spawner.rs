//! A process-lifetime thread that spawns the postmasters.
//!
//! Linux sends the parent-death signal when the *thread* that forked the child exits, not the
//! process. Test threads (one per `#[test]`) and the helper threads that start the shared
//! cluster end long before the process does, so a postmaster forked from them would be shut
//! down mid-run. Forking from this thread, which only ends when the process does, ties the
//! server's lifetime to the process as intended.

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

type Request = (Command, Sender<io::Result<Child>>);

static SPAWNER: OnceLock<io::Result<Sender<Request>>> = OnceLock::new();

/// Spawns `cmd` from the spawner thread and returns the child.
pub(crate) fn spawn(cmd: Command) -> io::Result<Child> {
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("cons-testdb-spawner".into())
                .spawn(move || {
                    // The sender lives in a static and is never dropped, so this loop (and the
                    // thread) ends only with the process.
                    for (mut cmd, reply) in rx {
                        // The requester may have given up; nothing to do about that here.
                        let _ = reply.send(cmd.spawn());
                    }
                })?;
            Ok(tx)
        })
        .as_ref()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the spawner thread: {e}")))?;
    let (reply_tx, reply_rx) = channel();
    sender
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the spawner thread has exited"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}
