//! A real `redis-server` per test, on a free loopback port, stopped when
//! dropped; and bounded polling for state that Redis changes.
//!
//! Each test starts its own server (`--save "" --appendonly no`: nothing
//! on disk), so tests never share state and run in parallel. Readiness is
//! polled with PING, a bounded number of times, never assumed after a sleep.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use taskplan::durable::Client;

/// How many times to poll before a wait fails the test.
const POLLS: u32 = 500;
/// The pause between polls: 500 polls bound a wait at about 10 s.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A `redis-server` child process, killed on drop.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// With persistence: the data directory, removed on drop.
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a server on a free loopback port, retrying with another port
    /// if the one found is taken before the server binds it.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// Starts a server that writes every change to an append-only file
    /// (`appendfsync always`) in a fresh directory, so that it keeps its
    /// data across [`restart`](Self::restart), even after a SIGKILL.
    pub fn start_persistent() -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "taskplan-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a redis data dir");
        RedisServer::start_with(Some(dir))
    }

    fn start_with(dir: Option<PathBuf>) -> RedisServer {
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = spawn(port, dir.as_deref()) {
                return RedisServer { child, port, dir };
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url())
            .await
            .expect("connect to the test redis")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port (with the same data, if
    /// persistent), after [`kill`](Self::kill).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if let Some(child) = spawn(self.port, self.dir.as_deref()) {
                self.child = child;
                return;
            }
            std::thread::sleep(POLL_EVERY);
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Spawns a server on `port` and waits for it to answer; `None` if it
/// exited or never answered (it is killed then).
fn spawn(port: u16, dir: Option<&Path>) -> Option<Child> {
    let mut command = Command::new("redis-server");
    command
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match dir {
        Some(dir) => command
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(dir),
        None => command.args(["--appendonly", "no"]),
    };
    let mut child = command
        .spawn()
        .expect("redis-server is not installed: `apt-get install redis-server`");
    if wait_for_ping(&mut child, port) {
        return Some(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local addr").port()
}

/// Polls PING until the server answers, or it exits, or the bound passes.
fn wait_for_ping(child: &mut Child, port: u16) -> bool {
    for _ in 0..POLLS {
        if let Ok(Some(_)) = child.try_wait() {
            return false; // It exited: most likely the port was taken.
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut reply = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
            {
                return true;
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
    false
}

/// Polls `check` until it returns `Some`, failing the test after the bound.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..POLLS {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    panic!("timed out waiting for {what}");
}

/// A TCP proxy in front of a Redis server, for faults a test controls:
/// holding all traffic (a stalled network or host), or cutting the
/// connection in place of one reply (a reply lost after Redis ran the
/// command). Runs on the test's runtime; stops accepting when dropped.
pub struct Proxy {
    port: u16,
    shared: std::sync::Arc<ProxyShared>,
    accept: tokio::task::JoinHandle<()>,
}

struct ProxyShared {
    /// While `true`, no byte goes through in either direction.
    paused: tokio::sync::watch::Sender<bool>,
    /// Cut the connection instead of passing the first server reply chunk
    /// that contains these bytes (once).
    cut_on: std::sync::Mutex<Option<Vec<u8>>>,
    cuts: std::sync::atomic::AtomicUsize,
}

impl Proxy {
    /// Starts a proxy to `redis` on a free loopback port.
    pub async fn start(redis: &RedisServer) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = redis.port();
        let shared = std::sync::Arc::new(ProxyShared {
            paused: tokio::sync::watch::channel(false).0,
            cut_on: std::sync::Mutex::new(None),
            cuts: std::sync::atomic::AtomicUsize::new(0),
        });
        let accept = tokio::spawn({
            let shared = std::sync::Arc::clone(&shared);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let shared = std::sync::Arc::clone(&shared);
                    tokio::spawn(async move {
                        let Ok(server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        // Either direction ending ends both: dropping the
                        // halves closes the sockets.
                        tokio::select! {
                            _ = pump(&shared, cr, sw, false) => {}
                            _ = pump(&shared, sr, cw, true) => {}
                        }
                    });
                }
            }
        });
        Proxy {
            port,
            shared,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A client whose every call goes through this proxy.
    pub async fn client(&self) -> Client {
        Client::connect(&self.url())
            .await
            .expect("connect through the proxy")
    }

    /// Holds all traffic until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Cuts the connection in place of the next reply that contains
    /// `marker`: Redis has run the command, its caller never hears.
    pub fn cut_reply_containing(&self, marker: &str) {
        *self.shared.cut_on.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    /// How many replies were cut.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(
    shared: &ProxyShared,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    replies: bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut paused = shared.paused.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a marker split across two reads
    // is still found.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        if replies {
            let mut cut = shared.cut_on.lock().unwrap();
            if let Some(marker) = cut.as_ref() {
                let mut seen = std::mem::take(&mut tail);
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(marker.len()).any(|w| w == marker.as_slice()) {
                    *cut = None;
                    shared
                        .cuts
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                let keep = seen.len().min(marker.len());
                tail = seen[seen.len() - keep..].to_vec();
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
