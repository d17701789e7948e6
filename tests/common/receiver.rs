//! A local HTTP receiver on 127.0.0.1 standing in for endpoints no real server here can play:
//! the WeCom/DingTalk robots (on the internet; never called by tests), a generic webhook, and
//! the webhook receiver Alertmanager notifies. Records every request; answers with scripted
//! replies (then a default): a status and body, or a hang (no answer until the client gives
//! up or the hang's bound passes). std only: works from any test flavour.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::process::wait_until;

/// Largest request head / body the receiver reads.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Socket read bound (a client that stops sending mid-request).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query as sent (still percent-encoded).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request was complete.
    pub at: Instant,
}

impl Request {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.text()))
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// The raw (still encoded) value of a query parameter.
    pub fn query_raw(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.to_string())
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status code and JSON body.
    Json(u16, String),
    /// Do not answer for this long (bounded), then close the connection.
    Hang(Duration),
}

impl Reply {
    /// `200 {"errcode":0,"errmsg":"ok"}`: what both robots answer on success.
    pub fn ok() -> Reply {
        Reply::Json(200, r#"{"errcode":0,"errmsg":"ok"}"#.into())
    }
    pub fn status(code: u16) -> Reply {
        Reply::Json(code, r#"{"error":"test"}"#.into())
    }
    /// `200` with a robot error code.
    pub fn errcode(code: i64) -> Reply {
        Reply::Json(
            200,
            format!(r#"{{"errcode":{code},"errmsg":"test error {code}"}}"#),
        )
    }
}

struct State {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    default: Reply,
}

/// A running receiver; stops on drop.
pub struct Receiver {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Binds 127.0.0.1:0; answers [`Reply::ok`] by default.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind receiver");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            script: VecDeque::new(),
            default: Reply::ok(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let (st, sp) = (st.clone(), sp.clone());
                    std::thread::spawn(move || handle(c, &st, &sp));
                }
            }
        });
        Receiver { port, state, stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The answer once the scripted replies are used up.
    pub fn set_default(&self, r: Reply) {
        self.state.lock().unwrap().default = r;
    }

    /// Answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// Waits (bounded) until at least `n` requests arrived; returns them all, or panics.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        wait_until(timeout, || {
            let r = self.requests();
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| {
            panic!(
                "receiver: expected {n} requests within {timeout:?}, got {}",
                self.count()
            )
        })
    }

    /// Waits (bounded) until some request satisfies `f`.
    pub fn wait_for(&self, timeout: Duration, what: &str, f: impl Fn(&Request) -> bool) -> Request {
        wait_until(timeout, || self.requests().into_iter().find(|r| f(r))).unwrap_or_else(|| {
            panic!(
                "receiver: no request {what} within {timeout:?}; got {} requests: {:?}",
                self.count(),
                self.requests().iter().map(|r| r.text()).collect::<Vec<_>>()
            )
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        );
    }
}

fn handle(mut c: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(READ_TIMEOUT));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            return;
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    let reply = {
        let mut s = state.lock().unwrap();
        s.requests.push(Request {
            method,
            target,
            headers,
            body,
            at: Instant::now(),
        });
        s.script.pop_front().unwrap_or_else(|| s.default.clone())
    };
    match reply {
        Reply::Json(code, body) => {
            let resp = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes());
            let _ = c.flush();
        }
        Reply::Hang(d) => {
            let t0 = Instant::now();
            while t0.elapsed() < d && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
