//! Process plumbing shared by the server helpers: free ports, binary lookup,
//! bounded waits, spawning with logs in the temp dir, SIGTERM/SIGKILL, log tails.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for a server to become ready after spawn.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a graceful stop (SIGTERM) before the helper falls back to SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Poll interval of all readiness / condition waits.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How many log lines a failure message shows per log file.
pub const LOG_TAIL_LINES: usize = 40;

/// A free TCP port on 127.0.0.1, chosen by the OS (bind to port 0, read it, release it).
///
/// There is an unavoidable window between release and the server's own bind; the
/// helpers retry start-up on a fresh port when a server dies during start-up.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of 127.0.0.1:0")
        .port()
}

/// True when the effective uid is 0. Reads `/proc/self/status` (no libc needed),
/// falls back to `id -u`.
pub fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix("Uid:") {
                // Uid: real effective saved fs
                if let Some(euid) = rest.split_whitespace().nth(1) {
                    return euid == "0";
                }
            }
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds a server binary: `$<env_var>` if set, else `name` on `$PATH`, else the
/// given fixed candidates (Debian puts mosquitto in /usr/sbin, which is not on a
/// normal user's PATH). Panics with an install hint when nothing is found.
pub fn find_binary(env_var: &str, name: &str, candidates: &[&str], package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env_var}={} does not name an existing file",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` not found (looked at ${env_var}, $PATH and {candidates:?}). \
         Install the Debian package: `sudo apt-get install {package}` (or run `bash .ci/run`)."
    );
}

/// Runs `f` where blocking is allowed. On a multi-thread tokio runtime this uses
/// `block_in_place` so a helper call made from inside a spawned task does not stall
/// the other tasks on that worker; elsewhere it just calls `f`.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Starts a server again after a stop on its old port: calls `spawn` up to 5 times, a second
/// apart (the port may be briefly taken), and panics naming `what` and `port` with the last
/// error if it never comes up.
pub fn start_again_with_retries(
    what: &str,
    port: u16,
    mut spawn: impl FnMut() -> Result<(), String>,
) {
    blocking(|| {
        let mut last_err = String::new();
        for _attempt in 0..5 {
            match spawn() {
                Ok(()) => return,
                Err(e) => {
                    last_err = e;
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        panic!("{what} did not come back on port {port}; last error:\n{last_err}");
    })
}

/// Polls `f` every [`POLL_INTERVAL`] until it returns `Some`, or `timeout` passes
/// (then `None`). `f` is always called at least once, and once more at the deadline.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    blocking(|| {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
        }
    })
}

/// True if something accepts TCP connections on 127.0.0.1:`port`.
pub fn tcp_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Last `n` lines of a file (reads at most the last 64 KiB), or a note why not.
pub fn tail_file(path: &Path, n: usize) -> String {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("(cannot open {}: {e})", path.display()),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return format!("(cannot seek {})", path.display());
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    if lines.is_empty() {
        "(empty)".to_string()
    } else {
        lines[from..].join("\n")
    }
}

/// One server child process with its stdout/stderr appended to files in its dir.
///
/// The child is wrapped in `setpriv --pdeathsig KILL` when `setpriv` (util-linux)
/// exists, so it is also killed if the test binary itself dies without unwinding
/// (SIGKILL, abort). Caveat of PR_SET_PDEATHSIG: it fires when the *thread* that
/// spawned the child exits, so start servers on the test's own thread (the body of a
/// `#[test]` or `#[tokio::test]`), not in `spawn_blocking` or a short-lived thread.
/// Set `ENVMON_TEST_NO_PDEATHSIG=1` to disable the wrapper.
pub struct ServerProcess {
    pub name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    dir: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    extra_logs: Vec<PathBuf>,
    child: Option<Child>,
    last_exit: Option<ExitStatus>,
}

impl ServerProcess {
    pub fn new(
        name: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        dir: &Path,
        extra_logs: Vec<PathBuf>,
    ) -> Self {
        ServerProcess {
            name,
            program,
            args,
            stdout_path: dir.join(format!("{name}.stdout.log")),
            stderr_path: dir.join(format!("{name}.stderr.log")),
            dir: dir.to_path_buf(),
            extra_logs,
            child: None,
            last_exit: None,
        }
    }

    /// Replaces the argument list (used when a retry picks new ports).
    pub fn set_args(&mut self, args: Vec<OsString>) {
        self.args = args;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let open = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
        let stdout = open(&self.stdout_path)?;
        let stderr = open(&self.stderr_path)?;
        let use_setpriv = std::env::var_os("ENVMON_TEST_NO_PDEATHSIG").is_none()
            && Path::new("/usr/bin/setpriv").is_file();
        let mut cmd = if use_setpriv {
            let mut c = Command::new("/usr/bin/setpriv");
            c.arg("--pdeathsig")
                .arg("KILL")
                .arg("--")
                .arg(&self.program);
            c
        } else {
            Command::new(&self.program)
        };
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // Keep the servers' own environment-driven overrides out of the tests.
        for (k, _) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            if k_str.starts_with("INFLUXDB_") || k_str.starts_with("VM_") {
                cmd.env_remove(&k);
            }
        }
        self.child = Some(cmd.spawn()?);
        self.last_exit = None;
        Ok(())
    }

    /// `Some(status)` if the child has exited (and reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = match self.child.as_mut() {
            None => return self.last_exit,
            Some(c) => c.try_wait().ok().flatten(),
        };
        if let Some(s) = status {
            self.child = None;
            self.last_exit = Some(s);
        }
        status
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Spawns and polls `ready` until it returns true, the child exits, or
    /// [`START_TIMEOUT`] passes. Returns the time to readiness, or an error message
    /// with the log tails (the child is killed on timeout).
    pub fn start_and_wait(&mut self, mut ready: impl FnMut() -> bool) -> Result<Duration, String> {
        blocking(|| {
            let t0 = Instant::now();
            self.spawn().map_err(|e| {
                format!(
                    "cannot spawn {} ({}): {e}",
                    self.name,
                    self.program.display()
                )
            })?;
            loop {
                if let Some(status) = self.exited() {
                    return Err(format!(
                        "{} exited during start-up with {status}\n{}",
                        self.name,
                        self.log_tails()
                    ));
                }
                if ready() {
                    return Ok(t0.elapsed());
                }
                if t0.elapsed() > START_TIMEOUT {
                    self.kill();
                    return Err(format!(
                        "{} not ready within {START_TIMEOUT:?}\n{}",
                        self.name,
                        self.log_tails()
                    ));
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        })
    }

    /// SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL. Returns how long the
    /// graceful part took. No-op if not running.
    pub fn terminate(&mut self) -> Duration {
        blocking(|| {
            let t0 = Instant::now();
            let Some(pid) = self.pid() else {
                return Duration::ZERO;
            };
            if self.exited().is_some() {
                return Duration::ZERO;
            }
            // `kill` as a shell builtin: no libc, no procps needed.
            let _ = Command::new("sh")
                .args(["-c", "kill -TERM \"$1\"", "sh", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            while t0.elapsed() < STOP_TIMEOUT {
                if self.exited().is_some() {
                    return t0.elapsed();
                }
                std::thread::sleep(POLL_INTERVAL);
            }
            eprintln!(
                "{} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:?}; sending SIGKILL",
                self.name
            );
            self.kill();
            t0.elapsed()
        })
    }

    /// SIGKILL and reap. No-op if not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if let Ok(s) = c.wait() {
                self.last_exit = Some(s);
            }
        }
    }

    /// Tails of stdout, stderr and the server's own log files, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for p in [&self.stdout_path, &self.stderr_path]
            .into_iter()
            .chain(self.extra_logs.iter())
        {
            if p.exists() {
                out.push_str(&format!(
                    "---- {} (last {LOG_TAIL_LINES} lines) ----\n{}\n",
                    p.display(),
                    tail_file(p, LOG_TAIL_LINES)
                ));
            }
        }
        out
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "== {} was running when the test panicked; its logs:\n{}",
                self.name,
                self.log_tails()
            );
        }
        self.kill();
    }
}

/// Creates the per-server temp dir. `ENVMON_TEST_KEEP_DIRS=1` keeps it after the
/// test (its path is printed) for post-mortems.
pub fn server_tempdir(prefix: &str) -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("envmon-test-{prefix}-"))
        .tempdir()
        .expect("create temp dir");
    if std::env::var_os("ENVMON_TEST_KEEP_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("{prefix}: keeping {}", dir.path().display());
    }
    dir
}
