//! `envmon alerts check` (validate the rules file, list rules with their scope sizes) and
//! `envmon alerts backtest` (evaluate one rule against the readings or indicator points already
//! stored in InfluxDB and print when it would have fired and resolved), so thresholds are
//! tuned on last month's data before they wake anyone.
//!
//! The backtest runs the same [`Engine`] as the service, on the data's own time: a reading is
//! "arrival" at its own time, and the engine is ticked at every step, so `for`,
//! `keep_firing_for`, hysteresis, consecutive counts, flap detection and grouping behave as live.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::alerts::engine::Engine;
use crate::alerts::rules::{Condition, Rule, RuleKind, RuleSet};
use crate::alerts::{AlertEvent, Status};
use crate::config::Settings;
use crate::model::{Flag, Sample};
use crate::registry::Registry;
use crate::store::line::{FieldValue, Point};
use crate::store::query::{ident, influxql, literal, Series};

/// Errors of the alert commands.
#[derive(Debug, thiserror::Error)]
pub enum AlertCliError {
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Rules(#[from] crate::alerts::rules::RulesError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Query(#[from] crate::store::query::QueryError),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "config/envmon.toml")]
    pub config: PathBuf,
    /// The rules file (default: `alerts.file` of the config, else config/alerts.toml).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    #[arg(long, default_value = "config/envmon.toml")]
    pub config: PathBuf,
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The rule id to evaluate.
    #[arg(long)]
    pub rule: String,
    /// Start: RFC 3339 or a date (local midnight, Asia/Shanghai).
    #[arg(long)]
    pub from: String,
    /// End (exclusive): RFC 3339 or a date.
    #[arg(long)]
    pub to: String,
    /// Print the transitions as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn rules_path(settings: &Settings, given: &Option<PathBuf>) -> Result<PathBuf, AlertCliError> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    settings.alerts.file.clone().map(Ok).unwrap_or_else(|| {
        let d = PathBuf::from("config/alerts.toml");
        if d.exists() {
            Ok(d)
        } else {
            Err(AlertCliError::Usage(
                "no rules file: set alerts.file in the config or pass --rules".into(),
            ))
        }
    })
}

fn describe(r: &Rule) -> String {
    let cond = match &r.condition {
        Some(Condition::Compare { op, value, clear }) => {
            let vf = r
                .value_field
                .as_deref()
                .map(|f| format!("field {f}"))
                .unwrap_or_else(|| value.to_string());
            if clear != value && r.value_field.is_none() {
                format!("{} {vf} (clear {clear})", op.as_str())
            } else {
                format!("{} {vf}", op.as_str())
            }
        }
        Some(Condition::Outside {
            lo,
            hi,
            clear_lo,
            clear_hi,
        }) => {
            if (clear_lo, clear_hi) != (lo, hi) {
                format!("outside [{lo}, {hi}] (clear inside [{clear_lo}, {clear_hi}])")
            } else {
                format!("outside [{lo}, {hi}]")
            }
        }
        None => String::new(),
    };
    let what = match r.kind {
        RuleKind::Threshold => {
            format!("{} {} {cond}", r.param.as_deref().unwrap_or(""), r.interval)
        }
        RuleKind::Flag => format!(
            "{} flags {} × {}",
            r.param.as_deref().unwrap_or("any parameter"),
            r.flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join("/"),
            r.consecutive
        ),
        RuleKind::NoData => format!(
            "silence of {}{}",
            r.param.as_deref().unwrap_or("any parameter"),
            if r.for_ > Duration::zero() {
                format!(" > {}s", r.for_.num_seconds())
            } else {
                " > cadence × factor".into()
            }
        ),
        RuleKind::Indicator => {
            let w: Vec<String> = r.where_.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{}.{} {cond}{}{}",
                r.measurement.as_deref().unwrap_or(""),
                r.field.as_deref().unwrap_or(""),
                if w.is_empty() {
                    String::new()
                } else {
                    format!(" where {}", w.join(","))
                },
                if r.consecutive > 1 {
                    format!(" × {}", r.consecutive)
                } else {
                    String::new()
                }
            )
        }
    };
    let mut timing = Vec::new();
    if r.for_ > Duration::zero() && r.kind != RuleKind::NoData {
        timing.push(format!("for {}s", r.for_.num_seconds()));
    }
    if r.keep_firing_for > Duration::zero() {
        timing.push(format!(
            "keep_firing_for {}s",
            r.keep_firing_for.num_seconds()
        ));
    }
    format!(
        "{:<24} {:<9} {:<8} {}{}",
        r.id,
        r.kind.as_str(),
        r.level.as_str(),
        what.trim(),
        if timing.is_empty() {
            String::new()
        } else {
            format!(" [{}]", timing.join(", "))
        }
    )
}

/// `envmon alerts check`: the report, or the first error with its key path.
pub fn check(args: &CheckArgs) -> Result<String, AlertCliError> {
    let (settings, registry) = crate::app::load(&args.config)?;
    let path = rules_path(&settings, &args.rules)?;
    let set = RuleSet::load(&path, &registry)?;
    Ok(check_report(&path, &set))
}

pub fn check_report(path: &Path, set: &RuleSet) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "alert rules {}: OK — {} rules, {} maintenance windows, {} notifiers",
        path.display(),
        set.rules.len(),
        set.maintenance.len(),
        set.notifiers.len()
    );
    for r in &set.rules {
        let _ = writeln!(out, "  {}", describe(r));
        let _ = writeln!(out, "  {:<24} scope: {}", "", r.scope_text);
    }
    for m in &set.maintenance {
        let _ = writeln!(out, "  maintenance {}: {}", m.id, m.comment);
    }
    for (i, n) in set.notifiers.iter().enumerate() {
        let _ = writeln!(out, "  notifier {}", n.name(i));
    }
    out
}

fn static_measurement(m: &str) -> Option<&'static str> {
    Some(match m {
        "aqi_hourly" => "aqi_hourly",
        "aqi_daily" => "aqi_daily",
        "water_class" => "water_class",
        "water_group" => "water_group",
        "lake_tli" => "lake_tli",
        "air_target" => "air_target",
        _ => return None,
    })
}

fn static_tag(t: &str) -> Option<&'static str> {
    const TAGS: [&str; 13] = [
        "scope",
        "id",
        "kind",
        "district",
        "station",
        "water_body",
        "body_type",
        "period",
        "group",
        "target",
        "area",
        "metric",
        "track",
    ];
    TAGS.iter().find(|x| **x == t).copied()
}

fn epoch(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    v.as_i64()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
}

/// Readings of `series` as samples (value column `param`, flag column `param_flag`).
fn samples_of(series: &[Series], rule: &Rule, registry: &Registry) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in series {
        let Some(station) = s.tags.get("station") else {
            continue;
        };
        let meta = registry.get(station).cloned();
        let col = |name: &str| s.columns.iter().position(|c| c == name);
        let params: Vec<(String, usize, Option<usize>)> = match &rule.param {
            Some(p) => col(p)
                .map(|i| vec![(p.clone(), i, col(&format!("{p}_flag")))])
                .unwrap_or_default(),
            None => s
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    *c != "time"
                        && !c.ends_with("_flag")
                        && !c.ends_with("_min")
                        && !c.ends_with("_max")
                        && !c.ends_with("_cou")
                })
                .map(|(i, c)| (c.clone(), i, col(&format!("{c}_flag"))))
                .collect(),
        };
        for row in &s.values {
            let Some(t) = row.first().and_then(epoch) else {
                continue;
            };
            for (p, vi, fi) in &params {
                let Some(v) = row.get(*vi).and_then(|v| v.as_f64()) else {
                    continue;
                };
                let flag = fi
                    .and_then(|i| row.get(i))
                    .and_then(|f| f.as_str())
                    .and_then(|f| f.parse::<Flag>().ok())
                    .unwrap_or(Flag::N);
                let unit = crate::normalise::canonical_param(p)
                    .map(|x| x.unit)
                    .unwrap_or("");
                out.push(Sample {
                    station: station.clone(),
                    time: t,
                    interval: rule.interval,
                    param: p.clone(),
                    value: v,
                    unit,
                    flag,
                    min: None,
                    max: None,
                    cou: None,
                    measurement: crate::normalise::measurement_for(meta.as_deref(), p),
                    meta: meta.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.station.cmp(&b.station)));
    out
}

fn points_of(series: &[Series]) -> Vec<Point> {
    let mut out = Vec::new();
    for s in series {
        let Some(m) = static_measurement(&s.name) else {
            continue;
        };
        let tags: Vec<(&'static str, String)> = s
            .tags
            .iter()
            .filter_map(|(k, v)| static_tag(k).map(|k| (k, v.clone())))
            .collect();
        for row in &s.values {
            let Some(t) = row.first().and_then(|v| v.as_i64()) else {
                continue;
            };
            let mut fields = Vec::new();
            for (i, c) in s.columns.iter().enumerate().skip(1) {
                let Some(v) = row.get(i) else { continue };
                let fv = match v {
                    serde_json::Value::Bool(b) => FieldValue::Bool(*b),
                    serde_json::Value::Number(n) => FieldValue::F64(n.as_f64().unwrap_or(f64::NAN)),
                    serde_json::Value::String(x) => FieldValue::Str(x.clone()),
                    _ => continue,
                };
                fields.push((c.clone(), fv));
            }
            out.push(Point {
                measurement: m,
                tags: tags.clone(),
                fields,
                time: t,
            });
        }
    }
    out.sort_by_key(|p| p.time);
    out
}

/// The result of a backtest: every transition, in order, and the notifications it would have
/// sent (after grouping).
#[derive(Debug, Clone, Default)]
pub struct Backtest {
    pub events: Vec<AlertEvent>,
    pub notifications: usize,
    pub observations: usize,
    pub still_firing: Vec<String>,
}

/// Evaluate `rule` of `set` over data already fetched (pure; the test entry point).
pub fn backtest_data(
    set: &RuleSet,
    rule_id: &str,
    registry: Arc<Registry>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    samples: Vec<Sample>,
    points: Vec<Point>,
) -> Result<Backtest, AlertCliError> {
    let Some(rule) = set.rules.iter().find(|r| r.id == rule_id) else {
        return Err(AlertCliError::Usage(format!(
            "no enabled rule {rule_id:?} in {} (rules: {})",
            set.path,
            set.rules
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let mut one = set.clone();
    one.rules = vec![rule.clone()];
    let mut engine = Engine::new(one, registry, from);
    let mut notifications = 0;
    let observations = samples.len() + points.len();
    let step = Duration::minutes(1);
    match rule.kind {
        RuleKind::Indicator => {
            let mut i = 0;
            while i < points.len() {
                let t = DateTime::<Utc>::from_timestamp(points[i].time, 0).unwrap_or(from);
                let mut j = i;
                while j < points.len() && points[j].time == points[i].time {
                    j += 1;
                }
                engine.on_points(&points[i..j], t);
                notifications += engine.tick(t).len();
                i = j;
            }
        }
        _ => {
            // Walk the clock minute by minute (silence needs time to pass without data).
            let mut i = 0;
            let mut t = from;
            while t < to {
                let next = t + step;
                let mut j = i;
                while j < samples.len() && samples[j].time < next {
                    j += 1;
                }
                if j > i {
                    for s in &samples[i..j] {
                        engine.on_samples(std::slice::from_ref(s), s.time.max(t));
                    }
                }
                i = j;
                notifications += engine.tick(next).len();
                t = next;
            }
        }
    }
    notifications += engine.flush_all(to).len();
    let still_firing = engine
        .active(to)
        .into_iter()
        .filter(|a| a.state == crate::alerts::engine::Phase::Firing)
        .map(|a| a.key)
        .collect();
    Ok(Backtest {
        events: engine.history().iter().cloned().collect(),
        notifications,
        observations,
        still_firing,
    })
}

/// `envmon alerts backtest`.
pub async fn backtest(args: &BacktestArgs) -> Result<String, AlertCliError> {
    let (settings, registry) = crate::app::load(&args.config)?;
    let path = rules_path(&settings, &args.rules)?;
    let set = RuleSet::load(&path, &registry)?;
    let parse = |s: &str, k: &str| {
        crate::alerts::http::parse_time(s).ok_or_else(|| {
            AlertCliError::Usage(format!(
                "--{k} {s:?}: expected an RFC 3339 time or a date YYYY-MM-DD"
            ))
        })
    };
    let from = parse(&args.from, "from")?;
    let to = parse(&args.to, "to")?;
    if to <= from {
        return Err(AlertCliError::Usage("--to must be after --from".into()));
    }
    let Some(rule) = set.rules.iter().find(|r| r.id == args.rule).cloned() else {
        return Err(AlertCliError::Usage(format!(
            "no enabled rule {:?} in {} (rules: {})",
            args.rule,
            path.display(),
            set.rules
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let range = format!(
        "time >= {}s AND time < {}s",
        from.timestamp(),
        to.timestamp()
    );
    let registry = Arc::new(registry);
    let (mut samples, mut points) = (Vec::new(), Vec::new());
    match rule.kind {
        RuleKind::Threshold | RuleKind::Flag => {
            let fields = match &rule.param {
                Some(p) => format!("{}, {}", ident(p), ident(&format!("{p}_flag"))),
                None => "*".into(),
            };
            let q = format!(
                "SELECT {fields} FROM \"air\",\"water\" WHERE \"interval\" = {} AND {range} GROUP BY \"station\"",
                literal(rule.interval.as_str())
            );
            samples = samples_of(&influxql(&settings.influxdb, &q).await?, &rule, &registry);
        }
        RuleKind::NoData => {
            // Minutes with data per station (count of any field), enough to see silence.
            let field = rule
                .param
                .as_deref()
                .map(ident)
                .unwrap_or_else(|| "*".into());
            let q = format!(
                "SELECT count({field}) FROM \"air\",\"water\" WHERE {range} GROUP BY time(1m), \"station\" fill(none)"
            );
            let series = influxql(&settings.influxdb, &q).await?;
            let p = rule.param.clone().unwrap_or_else(|| "data".into());
            for s in &series {
                let Some(station) = s.tags.get("station") else {
                    continue;
                };
                for row in &s.values {
                    let Some(t) = row.first().and_then(epoch) else {
                        continue;
                    };
                    if row
                        .iter()
                        .skip(1)
                        .any(|v| v.as_f64().is_some_and(|c| c > 0.0))
                    {
                        samples.push(Sample {
                            station: station.clone(),
                            time: t,
                            interval: rule.interval,
                            param: p.clone(),
                            value: 0.0,
                            unit: "",
                            flag: Flag::N,
                            min: None,
                            max: None,
                            cou: None,
                            measurement: crate::normalise::measurement_for(
                                registry.get(station).map(|s| &**s),
                                "",
                            ),
                            meta: registry.get(station).cloned(),
                        });
                    }
                }
            }
            samples.sort_by_key(|a| a.time);
        }
        RuleKind::Indicator => {
            let m = rule.measurement.clone().unwrap_or_default();
            let q = format!("SELECT * FROM {} WHERE {range} GROUP BY *", ident(&m));
            points = points_of(&influxql(&settings.influxdb, &q).await?);
        }
    }
    let bt = backtest_data(&set, &args.rule, registry, from, to, samples, points)?;
    Ok(render(&rule, &bt, from, to, args.json))
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The backtest report: one line per transition, then a summary.
pub fn render(
    rule: &Rule,
    bt: &Backtest,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    json: bool,
) -> String {
    let mut out = String::new();
    if json {
        for e in &bt.events {
            let _ = writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default());
        }
        return out;
    }
    let _ = writeln!(out, "rule {}", describe(rule));
    let _ = writeln!(
        out,
        "range {} → {} (Asia/Shanghai), {} observations; scope: {}",
        local(from),
        local(to),
        bt.observations,
        rule.scope_text
    );
    let mut episodes: BTreeMap<String, usize> = BTreeMap::new();
    for e in &bt.events {
        let subject = e.key.split_once('/').map(|x| x.1).unwrap_or(&e.key);
        match e.status {
            Status::Firing => {
                *episodes.entry(subject.to_string()).or_default() += 1;
                let _ = writeln!(
                    out,
                    "FIRING    since {}  {:<10} {}",
                    local(e.starts_at),
                    subject,
                    e.message_en
                );
            }
            Status::Resolved => {
                let end = e.ends_at.unwrap_or(e.starts_at);
                let (_, den) =
                    crate::alerts::notify::format::duration_text((end - e.starts_at).num_seconds());
                let _ = writeln!(
                    out,
                    "RESOLVED at    {}  {:<10} after {den}",
                    local(end),
                    subject
                );
            }
        }
    }
    let n: usize = episodes.values().sum();
    let _ = writeln!(
        out,
        "summary: {n} episodes at {} stations/areas, {} still firing at the end, {} notifications after grouping",
        episodes.len(),
        bt.still_firing.len(),
        bt.notifications
    );
    out
}
