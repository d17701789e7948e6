//! The WeCom (企业微信) and DingTalk (钉钉) group robots: markdown messages, `errcode` checked,
//! DingTalk signing, and the per-robot rate limit enforced by MERGING: while the budget of
//! `max_per_minute` messages per `rate_window` is spent, queued notifications are held and then
//! combined into as few messages as fit `max_bytes`; nothing is dropped for the rate limit.
//!
//! Sources (also in docs/alerts.md): WeCom developer document 91770 (group robot: `key`,
//! markdown `content` ≤ 4096 bytes, `errcode`); DingTalk open platform, custom robot
//! documentation (`access_token`, `timestamp` + `sign` = urlencode(base64(HMAC-SHA256(secret,
//! timestamp + "\n" + secret))), markdown `title`/`text`, `at.atMobiles`, `errcode`, 20 messages
//! per minute).

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;

use crate::config::Secret;

use super::format::{merged_header, notification_markdown};
use super::queue::{classify_reqwest, classify_status, short, Failure, Item, Worker};
use crate::text::truncate_bytes;

pub(crate) enum Robot {
    Wecom {
        key: Secret,
    },
    Dingtalk {
        access_token: Secret,
        secret: Option<Secret>,
        at_mobiles: Vec<String>,
    },
}

/// DingTalk's signature before URL encoding: base64(HMAC-SHA256(key = secret,
/// message = `<timestamp ms>\n<secret>`)). The caller URL-encodes it as the `sign` parameter.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

pub(crate) struct RobotWorker {
    pub robot: Robot,
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub max_per_window: u32,
    pub window: Duration,
    pub max_bytes: usize,
}

impl RobotWorker {
    fn request_url(&self) -> Result<reqwest::Url, Failure> {
        let mut url = self.url.clone();
        match &self.robot {
            Robot::Wecom { key } => {
                url.query_pairs_mut().append_pair("key", key.expose());
            }
            Robot::Dingtalk {
                access_token,
                secret,
                ..
            } => {
                let mut q = url.query_pairs_mut();
                q.append_pair("access_token", access_token.expose());
                if let Some(s) = secret {
                    let ts = chrono::Utc::now().timestamp_millis();
                    let sign = dingtalk_sign(s.expose(), ts).ok_or(Failure::Permanent {
                        kind: "sign",
                        detail: "cannot compute the signature".into(),
                    })?;
                    q.append_pair("timestamp", &ts.to_string());
                    q.append_pair("sign", &sign);
                }
            }
        }
        Ok(url)
    }

    /// The `@…` line DingTalk needs in the text for a mention to notify.
    fn at_line(&self) -> String {
        match &self.robot {
            Robot::Dingtalk { at_mobiles, .. } if !at_mobiles.is_empty() => {
                let at: Vec<String> = at_mobiles.iter().map(|m| format!("@{m}")).collect();
                format!("\n\n{}", at.join(" "))
            }
            _ => String::new(),
        }
    }

    fn body(&self, title: &str, text: String) -> Value {
        match &self.robot {
            Robot::Wecom { .. } => json!({
                "msgtype": "markdown",
                "markdown": { "content": text },
            }),
            Robot::Dingtalk { at_mobiles, .. } => json!({
                "msgtype": "markdown",
                "markdown": { "title": title, "text": text },
                "at": { "atMobiles": at_mobiles, "isAtAll": false },
            }),
        }
    }

    async fn post(&self, title: &str, text: String) -> Result<(), Failure> {
        let url = self.request_url()?;
        let resp = self
            .client
            .post(url)
            .json(&self.body(title, text))
            .send()
            .await
            .map_err(classify_reqwest)?;
        let status = resp.status().as_u16();
        let reply = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(classify_status(status, &reply));
        }
        let v: Value = serde_json::from_str(&reply).map_err(|_| Failure::Retry {
            kind: "bad_reply",
            detail: format!("reply is not JSON: {}", short(&reply)),
        })?;
        match v.get("errcode").and_then(Value::as_i64) {
            Some(0) => Ok(()),
            Some(code) => Err(Failure::Retry {
                kind: "errcode",
                detail: format!(
                    "errcode {code}: {}",
                    short(v.get("errmsg").and_then(Value::as_str).unwrap_or(""))
                ),
            }),
            None => Err(Failure::Retry {
                kind: "bad_reply",
                detail: format!("reply has no errcode: {}", short(&reply)),
            }),
        }
    }

    /// One message for the head of `pending`: (title, text, how many items it covers). With
    /// enough budget for every pending notification, one message each; otherwise as many
    /// notifications as fit in one merged message (at least one, cut to the limit if alone it is
    /// too long).
    fn compose(&self, pending: &VecDeque<Item>, budget: usize) -> (String, String, usize) {
        let limit = self.max_bytes.saturating_sub(self.at_line().len());
        let at = self.at_line();
        if pending.len() <= budget || pending.len() == 1 {
            let n = &pending[0].n;
            let (text, _) = notification_markdown(n, limit);
            return (n.title_zh.clone(), format!("{text}{at}"), 1);
        }
        let reserve = merged_header(pending.len()).len();
        let room = limit.saturating_sub(reserve);
        let mut blocks: Vec<String> = Vec::new();
        let mut used = 0usize;
        for item in pending {
            let (text, _) = notification_markdown(&item.n, room);
            let add = text.len() + 2;
            if !blocks.is_empty() && used + add > room {
                break;
            }
            used += add;
            blocks.push(text);
        }
        let count = blocks.len();
        let title = format!("【合并】{count} 条通知 / [Merged] {count} notifications");
        let text = format!("{}\n\n{}", merged_header(count), blocks.join("\n\n"));
        (title, format!("{}{at}", truncate_bytes(text, limit)), count)
    }
}

fn expire(pending: &mut VecDeque<Item>, w: &Worker) {
    let before = pending.len();
    pending.retain(|i| i.enqueued.elapsed() <= w.retry.max_age);
    let gone = before - pending.len();
    if gone > 0 {
        w.failed(gone as u64);
        tracing::warn!(notifier = %w.name, host = %w.host, count = gone, "notifications given up (max_retry_age)");
    }
}

/// The robot's loop. See the module doc for the policy.
pub(crate) async fn run_robot(r: RobotWorker, mut rx: mpsc::Receiver<Item>, w: Worker) {
    let cap = w.capacity.max(1);
    let max = r.max_per_window.max(1) as usize;
    let mut pending: VecDeque<Item> = VecDeque::new();
    // Start times of the requests of the current window (attempts count, failed or not).
    let mut sends: VecDeque<Instant> = VecDeque::new();
    let mut attempt = 0u32;
    let mut retry_at: Option<Instant> = None;
    let mut closed = false;
    loop {
        if pending.is_empty() {
            if closed {
                break;
            }
            tokio::select! {
                biased;
                _ = w.stop.cancelled() => break,
                m = rx.recv() => match m {
                    Some(i) => pending.push_back(i),
                    None => {
                        closed = true;
                        continue;
                    }
                },
            }
        }
        while pending.len() < cap {
            match rx.try_recv() {
                Ok(i) => pending.push_back(i),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        w.depth(&rx, pending.len());
        expire(&mut pending, &w);
        if pending.is_empty() {
            continue;
        }
        let now = Instant::now();
        while sends
            .front()
            .is_some_and(|t| now.duration_since(*t) >= r.window)
        {
            sends.pop_front();
        }
        let mut wake = retry_at.filter(|t| *t > now);
        if sends.len() >= max {
            if let Some(front) = sends.front() {
                let free = *front + r.window;
                wake = Some(wake.map_or(free, |w| w.max(free)));
            }
        }
        if let Some(t) = wake {
            tokio::select! {
                biased;
                _ = w.stop.cancelled() => break,
                _ = tokio::time::sleep_until(t) => {}
                m = rx.recv(), if pending.len() < cap && !closed => match m {
                    Some(i) => pending.push_back(i),
                    None => closed = true,
                },
            }
            continue;
        }
        let (title, text, count) = r.compose(&pending, max - sends.len());
        sends.push_back(Instant::now());
        let res = tokio::select! {
            biased;
            _ = w.stop.cancelled() => break,
            res = r.post(&title, text) => res,
        };
        match res {
            Ok(()) => {
                for item in pending.drain(..count) {
                    w.sent(&item);
                }
                if count > 1 {
                    tracing::info!(notifier = %w.name, count, "rate limit: notifications merged into one message");
                }
                attempt = 0;
                retry_at = None;
            }
            Err(f @ Failure::Permanent { .. }) => {
                w.error(&f);
                w.failed(count as u64);
                pending.drain(..count);
                tracing::warn!(notifier = %w.name, host = %w.host, count, kind = f.kind(), detail = f.detail(), "robot refused the message; not retried");
            }
            Err(f) => {
                w.error(&f);
                let delay = w.retry.delay(attempt);
                attempt = attempt.saturating_add(1);
                retry_at = Some(Instant::now() + delay);
                tracing::warn!(notifier = %w.name, host = %w.host, count, attempt, kind = f.kind(), detail = f.detail(), retry_in_ms = delay.as_millis() as u64, "robot message failed; will retry");
            }
        }
        w.depth(&rx, pending.len());
    }
    w.abandon(&mut rx, pending.len());
}
