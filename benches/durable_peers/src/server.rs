//! A `redis-server` of the benchmark's own, stopped on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process with nothing on disk, killed on drop.
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl RedisServer {
    /// Starts a server listening on a unix socket in a fresh directory, or
    /// on a free loopback port if `tcp`.
    pub async fn start(tcp: bool) -> Result<RedisServer, String> {
        let dir = std::env::temp_dir().join(format!("durable-peers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let socket = dir.join("redis.sock");
        let mut cmd = Command::new("redis-server");
        let url = if tcp {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("find a free port: {e}"))?
                .port();
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
            format!("redis://127.0.0.1:{port}/")
        } else {
            cmd.args(["--port", "0", "--unixsocket"])
                .arg(&socket)
                .args(["--unixsocketperm", "700"]);
            format!("redis+unix://{}", socket.display())
        };
        cmd.args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("start redis-server (is it installed?): {e}"))?;
        crate::clock::set_redis_pid(child.id());
        let server = RedisServer { child, dir, url };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.ping().await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("redis-server did not answer PING within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL every peer connects to.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn ping(&self) -> redis::RedisResult<()> {
        let mut con = self.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut con).await?;
        Ok(())
    }

    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url.as_str())?
            .get_multiplexed_async_connection()
            .await
    }

    /// Empties the database between peers and rounds.
    pub async fn flush(&self) -> Result<(), String> {
        let mut con = self.connection().await.map_err(|e| e.to_string())?;
        redis::cmd("FLUSHALL")
            .query_async::<()>(&mut con)
            .await
            .map_err(|e| format!("FLUSHALL: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
