//! A TCP fault proxy: a real listener on 127.0.0.1 that forwards to a simulator and breaks
//! the link on command, as a network or a crashed peer would (reliability.md R9). The
//! faults are the kernel's own: an RST from `SO_LINGER 0`, a port nothing listens on, a
//! listen queue that drops SYNs, bytes that are read and never answered.
//!
//! The mode applies to every connection, open or new, from the moment it is set, because
//! the clients under test keep connections alive in a pool.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFault {
    /// Forward both ways.
    Pass,
    /// Forward requests; when the peer answers, reset the caller's connection (RST via
    /// `SO_LINGER 0`) instead of passing the answer on: the peer acted, the caller sees
    /// "connection reset" after its request was sent.
    Reset,
    /// Accept connections and read requests, but never forward or answer them: only the
    /// caller's request timeout ends the call.
    BlackHole,
    /// New connections hang in the handshake (SYNs are dropped by a full listen queue)
    /// until the caller's connect timeout; open connections are black holes.
    Unreachable,
    /// Nothing listens: connecting is refused at once, open connections are reset (the
    /// peer was stopped).
    Refuse,
}

/// What the proxy did, so a test can check that its fault really happened.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    pub connections: AtomicU64,
    /// Reads from callers passed on to the peer.
    pub forwarded: AtomicU64,
    /// Connections reset.
    pub resets: AtomicU64,
    /// Reads from callers that went into a black hole.
    pub swallowed: AtomicU64,
}

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<TcpFault>,
    counts: Arc<ProxyCounts>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy in front of `127.0.0.1:<upstream_port>`, passing everything, on the current
    /// tokio runtime.
    pub async fn start(upstream_port: u16) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port));
        let (mode, watching) = watch::channel(TcpFault::Pass);
        let counts = Arc::new(ProxyCounts::default());
        let task = tokio::spawn(accept_loop(listener, upstream, watching, counts.clone()));
        Ok(FaultProxy {
            addr,
            upstream,
            mode,
            counts,
            task,
        })
    }

    pub fn set(&self, fault: TcpFault) {
        self.mode.send_replace(fault);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `base_url` of the upstream simulator, pointed at this proxy instead.
    pub fn url_for(&self, base_url: &str) -> String {
        base_url.replacen(&self.upstream.to_string(), &self.addr.to_string(), 1)
    }

    pub fn counts(&self) -> &ProxyCounts {
        &self.counts
    }

    pub fn resets(&self) -> u64 {
        self.counts.resets.load(Ordering::Relaxed)
    }

    pub fn swallowed(&self) -> u64 {
        self.counts.swallowed.load(Ordering::Relaxed)
    }

    pub fn forwarded(&self) -> u64 {
        self.counts.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Connection tasks end when they see the mode channel close.
        self.task.abort();
    }
}

/// Serves the proxy's port in the current mode: a listener for `Pass`, `Reset` and
/// `BlackHole`, a full one for `Unreachable`, none for `Refuse`. Rebinding the same port
/// works because tokio listeners set `SO_REUSEADDR`.
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut mode: watch::Receiver<TcpFault>,
    counts: Arc<ProxyCounts>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    let mut full: Option<FullListener> = None;
    loop {
        // Copied out: a borrow of the channel must not be held across an await.
        let fault = *mode.borrow_and_update();
        match fault {
            TcpFault::Refuse => {
                listener = None;
                full = None;
            }
            TcpFault::Unreachable => {
                listener = None;
                if full.is_none() {
                    full = FullListener::bind(addr).await.ok();
                }
            }
            TcpFault::Pass | TcpFault::Reset | TcpFault::BlackHole => {
                full = None;
                if listener.is_none() {
                    listener = TcpListener::bind(addr).await.ok();
                }
            }
        }
        tokio::select! {
            accepted = accept(listener.as_ref()) => {
                if let Ok((stream, _)) = accepted {
                    counts.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(relay(stream, upstream, mode.clone(), counts.clone()));
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// A listener that never accepts, with a listen queue of one filled by a connection of
/// its own: Linux drops further SYNs, so callers hang in `connect` as if the host had
/// gone away.
struct FullListener {
    _listener: TcpListener,
    _filler: Vec<TcpStream>,
}

impl FullListener {
    async fn bind(addr: SocketAddr) -> io::Result<FullListener> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(0)?;
        // Connect until one hangs: then the queue is full (its length is the backlog plus
        // one on Linux, but that is the kernel's business).
        let mut filler = Vec::new();
        while filler.len() < 8 {
            match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => filler.push(stream),
                Ok(Err(error)) => return Err(error),
                Err(_hung) => break,
            }
        }
        Ok(FullListener {
            _listener: listener,
            _filler: filler,
        })
    }
}

/// One caller's connection: forwards or breaks each read according to the mode at that
/// moment. A connection that swallowed a request stays a black hole: passing later bytes
/// on would hand the peer half a request.
async fn relay(
    mut client: TcpStream,
    upstream_addr: SocketAddr,
    mut mode: watch::Receiver<TcpFault>,
    counts: Arc<ProxyCounts>,
) {
    let _ = client.set_nodelay(true);
    let mut upstream: Option<TcpStream> = None;
    let mut black_hole = false;
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let fault = *mode.borrow();
                black_hole |= matches!(fault, TcpFault::BlackHole | TcpFault::Unreachable);
                if fault == TcpFault::Refuse {
                    return reset(client, &counts);
                }
                if black_hole {
                    counts.swallowed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if upstream.is_none() {
                    match TcpStream::connect(upstream_addr).await {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            upstream = Some(stream);
                        }
                        Err(_) => return reset(client, &counts),
                    }
                }
                let Some(peer) = upstream.as_mut() else { return };
                if peer.write_all(&from_client[..n]).await.is_err() {
                    return reset(client, &counts);
                }
                counts.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            read = read_from(upstream.as_mut(), &mut from_upstream) => {
                let n = match read {
                    // The peer closed: close the caller's side the ordinary way.
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let fault = *mode.borrow();
                match fault {
                    TcpFault::Pass if !black_hole => {
                        if client.write_all(&from_upstream[..n]).await.is_err() {
                            return;
                        }
                    }
                    TcpFault::Reset | TcpFault::Refuse => return reset(client, &counts),
                    // The answer is lost on the way.
                    _ => black_hole = true,
                }
            }
            changed = mode.changed() => {
                let fault = *mode.borrow();
                if changed.is_err() || fault == TcpFault::Refuse {
                    return reset(client, &counts);
                }
            }
        }
    }
}

async fn read_from(stream: Option<&mut TcpStream>, buffer: &mut [u8]) -> io::Result<usize> {
    match stream {
        Some(stream) => stream.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// Closes with an RST instead of a FIN.
fn reset(client: TcpStream, counts: &ProxyCounts) {
    let _ = client.set_zero_linger();
    counts.resets.fetch_add(1, Ordering::Relaxed);
    drop(client);
}
