//! PLACEHOLDER on main until the `notify` branch (the real notifiers) is merged: it keeps the
//! contract's signatures so the engine compiles. It sends nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Notification;

pub struct NotifyContext {
    pub influxdb: Option<crate::config::InfluxSettings>,
    pub metrics: crate::telemetry::Metrics,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct NotifierConfig(toml::Value);

impl NotifierConfig {
    pub fn name(&self, index: usize) -> String {
        format!("notifier#{index}")
    }
    pub fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("notifier: {0}")]
pub struct NotifyError(String);

pub struct Notifiers;

impl Notifiers {
    pub fn start(
        _configs: &[NotifierConfig],
        _ctx: NotifyContext,
        _stop: CancellationToken,
    ) -> Result<Notifiers, NotifyError> {
        Ok(Notifiers)
    }
    pub fn dispatch(&self, _n: Arc<Notification>) {}
    pub async fn shutdown(self, _deadline: Duration) {}
}
