//! Generic webhook: one JSON POST per notification ([`super::format::webhook_body`]), optional
//! bearer token. 2xx = sent; 408, 429, 5xx, time-outs and connection errors are retried; other
//! 4xx are permanent failures.

use crate::alerts::Notification;
use crate::config::Secret;

use super::format::webhook_body;
use super::queue::{classify_reqwest, classify_status, Deliver, Failure};

pub(crate) struct Webhook {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub token: Option<Secret>,
}

impl Deliver for Webhook {
    async fn deliver(&mut self, n: &Notification) -> Result<(), Failure> {
        let body = webhook_body(n);
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.map_err(classify_reqwest)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(classify_status(status, &text))
    }
}
