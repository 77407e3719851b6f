//! Real servers from Debian's packages, started by a test on a free loopback port: `tinyproxy`
//! (HTTP proxy). `.ci/run` installs them; a test that cannot start one fails with a message
//! that says which package is missing, it never skips.

use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The address tinyproxy binds its outgoing connections to: the emulator sees this peer for
/// every connection that went through the proxy, and 127.0.0.1 for a direct one.
pub const PROXY_EGRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until `port` accepts a TCP connection (the server's readiness; bounded).
fn wait_listening(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited at start-up ({status})"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} did not listen on 127.0.0.1:{port} within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates one named after `tag`.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "dingtalk-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `tinyproxy` on 127.0.0.1, logging every request, its outgoing connections bound to
/// [`PROXY_EGRESS`].
#[derive(Debug)]
pub struct TinyProxy {
    child: Child,
    dir: TempDir,
    port: u16,
    credentials: Option<(String, String)>,
}

impl TinyProxy {
    /// Starts one; with `credentials`, it demands Basic authentication.
    pub fn start(credentials: Option<(&str, &str)>) -> Result<Self, String> {
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or(
                "tinyproxy is not installed: `apt-get install -y tinyproxy` (.ci/run does it)",
            )?;
        let mut last = String::new();
        for _ in 0..3 {
            let dir = TempDir::new("tinyproxy");
            let port = free_port();
            let mut conf = format!(
                "Port {port}\nListen 127.0.0.1\nBind {PROXY_EGRESS}\nTimeout 30\n\
                 LogFile \"{}\"\nLogLevel Info\nMaxClients 200\n",
                dir.0.join("log").display()
            );
            if let Some((user, pass)) = credentials {
                conf.push_str(&format!("BasicAuth {user} {pass}\n"));
            }
            let path = dir.0.join("tinyproxy.conf");
            std::fs::write(&path, conf).map_err(|e| e.to_string())?;
            let mut child = Command::new(binary)
                .arg("-d")
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run {binary}: {e}"))?;
            match wait_listening(port, &mut child, "tinyproxy") {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        dir,
                        port,
                        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = e; // the port may have been taken meanwhile: try another
                }
            }
        }
        Err(last)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://[user:pass@]127.0.0.1:port`.
    pub fn url(&self) -> String {
        match &self.credentials {
            Some((u, p)) => format!("http://{u}:{p}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("log")).unwrap_or_default()
    }

    /// The request lines it received (`CONNECT host:port HTTP/1.1`, `GET http://… HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|r| r.split_once("): ").map(|(_, line)| line.to_owned()))
            .collect()
    }
}

impl Drop for TinyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `redis-server` on 127.0.0.1 (no persistence), killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    _dir: TempDir,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> Result<Self, String> {
        let binary = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or(
                "redis-server is not installed: `apt-get install -y redis-server` (.ci/run does it)",
            )?;
        let mut last = String::new();
        for _ in 0..3 {
            let dir = TempDir::new("redis");
            let port = free_port();
            let mut child = Command::new(binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir.0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run {binary}: {e}"))?;
            match wait_listening(port, &mut child, "redis-server") {
                Ok(()) => {
                    return Ok(Self {
                        child: Some(child),
                        _dir: dir,
                        port,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
