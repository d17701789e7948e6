//! Grafana dashboards (deploy/grafana):
//!
//! * the committed JSON is exactly what `deploy/grafana/generate.rs` generates (one source);
//! * every dashboard type-checks against Grafana's published dashboard schema (`@grafana/schema`,
//!   which Grafana generates from its CUE kinds), with TypeScript (`tsc`, pinned in
//!   `deploy/schema-check/package.json`; `.ci/run` installs both);
//! * with the simulator's last 2 days in a real Mosquitto → envmon → InfluxDB 1.6 (indicators
//!   computed by the engines, a few `alerts` points written in the alert engine's schema), every
//!   InfluxQL panel query of every dashboard, with `$timeFilter`, `$__interval` and the template
//!   variables substituted as Grafana does (every value of every variable), runs and returns data
//!   of the shape its panel needs; every metric a PromQL panel uses is in that envmon's `/metrics`,
//!   and every PromQL panel query returns a finite value from a real Prometheus (Debian's 2.42)
//!   that scraped that envmon during the load.

#![cfg_attr(not(feature = "demo"), allow(dead_code, unused_imports))]

mod common;

#[path = "../deploy/grafana/generate.rs"]
mod generate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::{wait_until, Influx1, Mosquitto, Prometheus};
use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn registry() -> envmon::registry::Registry {
    envmon::registry::Registry::load(&repo("config/stations.toml")).expect("registry")
}

fn expected_files() -> Vec<(PathBuf, String)> {
    let reg = registry();
    let targets =
        envmon::indicators::targets::Targets::load(&repo("config/targets.toml")).expect("targets");
    let lines = generate::water_target_lines(&targets, &reg);
    let mut out: Vec<(PathBuf, String)> = generate::dashboards(&lines)
        .into_iter()
        .map(|g| {
            (
                repo("deploy/grafana/dashboards").join(g.file),
                serde_json::to_string_pretty(&g.json).unwrap() + "\n",
            )
        })
        .collect();
    out.push((
        repo("deploy/grafana/gazetteer/envmon-stations.json"),
        serde_json::to_string_pretty(&generate::gazetteer(&reg)).unwrap() + "\n",
    ));
    out
}

/// The committed dashboards as parsed JSON: (file name, dashboard).
fn committed() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_dir(repo("deploy/grafana/dashboards"))
        .expect("deploy/grafana/dashboards")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            (e.file_name().to_string_lossy().into_owned(), json)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn generated_files_are_up_to_date() {
    let write = std::env::var_os("ENVMON_WRITE_DASHBOARDS").is_some();
    let mut stale = Vec::new();
    for (path, text) in expected_files() {
        let now = std::fs::read_to_string(&path).unwrap_or_default();
        if now != text {
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated from deploy/grafana/generate.rs differs from the committed files {stale:?}; \
         run: ENVMON_WRITE_DASHBOARDS=1 cargo test --test dashboards generated_files_are_up_to_date"
    );
    // Six dashboards, unique uids, bilingual titles (Chinese first, English after " / ").
    let dashes = committed();
    assert_eq!(
        dashes.len(),
        6,
        "{:?}",
        dashes.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    let uids: BTreeSet<&str> = dashes
        .iter()
        .map(|d| d.1["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), 6);
    for (file, d) in &dashes {
        // Panels fit Grafana's 24-column grid and do not overlap; ids are unique.
        let boxes: Vec<(u64, u64, u64, u64)> = panels(d)
            .iter()
            .map(|p| {
                let g = &p["gridPos"];
                let n = |k: &str| {
                    g[k].as_u64()
                        .unwrap_or_else(|| panic!("{file}: gridPos.{k}"))
                };
                (n("x"), n("y"), n("w"), n("h"))
            })
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            assert!(
                a.0 + a.2 <= 24 && a.2 > 0 && a.3 > 0,
                "{file}: panel {i} {a:?}"
            );
            for b in &boxes[i + 1..] {
                let apart =
                    a.0 + a.2 <= b.0 || b.0 + b.2 <= a.0 || a.1 + a.3 <= b.1 || b.1 + b.3 <= a.1;
                assert!(apart, "{file}: panels {a:?} and {b:?} overlap");
            }
        }
        let ids: BTreeSet<u64> = panels(d)
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.len(), boxes.len(), "{file}: duplicate panel ids");
        let mut titles = vec![d["title"].as_str().unwrap_or_default().to_string()];
        titles.extend(
            panels(d)
                .iter()
                .map(|p| p["title"].as_str().unwrap_or_default().to_string()),
        );
        for t in titles {
            assert!(
                bilingual(&t),
                "{file}: title {t:?} is not \"中文 / English\""
            );
        }
    }
}

/// "中文 / English": Chinese before the first " / ", English (Latin letters) after it.
fn bilingual(t: &str) -> bool {
    let Some((zh, en)) = t.split_once(" / ") else {
        return false;
    };
    zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
        && en.chars().any(|c| c.is_ascii_alphabetic())
}

fn panels(d: &Value) -> Vec<&Value> {
    d["panels"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Grafana's dashboard schema (TypeScript types of @grafana/schema)
// ---------------------------------------------------------------------------------------------

/// Panel type → (module of @grafana/schema, has a custom FieldConfig type).
fn panel_module(ty: &str) -> Option<(&'static str, bool)> {
    Some(match ty {
        "timeseries" => ("timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen", true),
        "stat" => ("stat/panelcfg/x/StatPanelCfg_types.gen", false),
        "table" => ("table/panelcfg/x/TablePanelCfg_types.gen", true),
        "geomap" => ("geomap/panelcfg/x/GeomapPanelCfg_types.gen", false),
        "state-timeline" => (
            "statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen",
            true,
        ),
        "bargauge" => ("bargauge/panelcfg/x/BarGaugePanelCfg_types.gen", false),
        _ => return None,
    })
}

/// The TypeScript module that checks one dashboard: the dashboard object `satisfies` the
/// schema's `Dashboard`, each panel `Panel`, each panel's `options` (and `fieldConfig.defaults
/// .custom`) the Options (FieldConfig) type of its panel plugin. Enums are compared by their
/// string values (JSON holds strings), via `J<T>`.
fn typescript_for(name: &str, d: &Value) -> String {
    let ident = |s: &str| s.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let mut ts = String::new();
    ts.push_str(
        "import type { Dashboard, Panel, AnnotationQuery } from \
         '@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen';\n",
    );
    let mut imported = BTreeSet::new();
    for p in panels(d) {
        let ty = p["type"].as_str().unwrap_or_default();
        let (module, _) = panel_module(ty)
            .unwrap_or_else(|| panic!("{name}: no schema module for panel type {ty}"));
        if imported.insert(ty.to_string()) {
            ts.push_str(&format!(
                "import type * as {} from '@grafana/schema/dist/esm/raw/composable/{module}';\n",
                ident(ty)
            ));
        }
    }
    ts.push_str(
        "type J<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T \
         : T extends Array<infer U> ? Array<J<U>> : T extends object ? { [K in keyof T]: J<T[K]> } : T;\n\
         // Grafana's AnnotationQuery.target is typed for the built-in Grafana annotations only; the\n\
         // InfluxDB datasource stores an InfluxQL query there (its fields, from Grafana's influxdb\n\
         // datasource annotation support):\n\
         type InfluxAnnotationTarget = { refId: string; rawQuery: boolean; resultFormat: 'table';\n\
           fromAnnotations: boolean; query: string; textColumn?: string; titleColumn?: string;\n\
           tagsColumn?: string; timeEndColumn?: string };\n",
    );
    let mut dash = d.clone();
    let mut annos = Vec::new();
    if let Some(list) = dash["annotations"]["list"].as_array_mut() {
        for a in list.iter_mut() {
            if a["datasource"]["type"] == "influxdb" {
                annos.push(a["target"].take());
                a.as_object_mut().unwrap().remove("target");
            }
        }
    }
    let mut parts = Vec::new();
    if let Some(ps) = dash["panels"].as_array_mut() {
        for p in ps.iter_mut() {
            let ty = p["type"].as_str().unwrap_or_default().to_string();
            let id = p["id"].as_u64().unwrap_or_default();
            let options = p
                .as_object_mut()
                .unwrap()
                .remove("options")
                .unwrap_or_default();
            let custom = p["fieldConfig"]["defaults"]
                .as_object_mut()
                .and_then(|o| o.remove("custom"));
            parts.push((ty, id, options, custom));
        }
    }
    ts.push_str(&format!(
        "export const dashboard = {} satisfies J<Dashboard>;\n",
        serde_json::to_string_pretty(&dash).unwrap()
    ));
    for p in panels(&dash) {
        ts.push_str(&format!(
            "export const panel_{} = {} satisfies J<Panel>;\n",
            p["id"],
            serde_json::to_string(p).unwrap()
        ));
    }
    for (ty, id, options, custom) in parts {
        let m = ident(&ty);
        ts.push_str(&format!(
            "export const options_{id} = {} satisfies J<{m}.Options>;\n",
            serde_json::to_string(&options).unwrap()
        ));
        if let Some(c) = custom {
            let (_, has_custom) = panel_module(&ty).unwrap();
            assert!(
                has_custom,
                "{name}: panel {id} ({ty}) has a custom field config"
            );
            ts.push_str(&format!(
                "export const custom_{id} = {} satisfies J<{m}.FieldConfig>;\n",
                serde_json::to_string(&c).unwrap()
            ));
        }
    }
    for (i, a) in annos.iter().enumerate() {
        ts.push_str(&format!(
            "export const annotation_target_{i} = {} satisfies InfluxAnnotationTarget;\n",
            serde_json::to_string(a).unwrap()
        ));
    }
    // The annotation entries themselves (without their target) against AnnotationQuery.
    ts.push_str(
        "export const annotations_ok: J<AnnotationQuery>[] = dashboard.annotations.list;\n",
    );
    ts
}

#[test]
fn dashboards_validate_against_grafana_schema() {
    let dir = repo("deploy/schema-check");
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    let schema = dir.join("node_modules/@grafana/schema/package.json");
    assert!(
        tsc.exists() && schema.exists(),
        "TypeScript and @grafana/schema are not installed: run `npm ci --prefix {}` \
         (.ci/run does it)",
        dir.display()
    );
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let dashes = committed();
    for (file, d) in &dashes {
        let ts = typescript_for(file, d);
        std::fs::write(out.join(file.replace(".json", ".ts")), ts).unwrap();
    }
    // A deliberately broken dashboard must fail: proves the check can fail.
    let mut bad = dashes[0].1.clone();
    bad["panels"][0]["gridPos"]["wdth"] = Value::from(3);
    bad["panels"][0]["options"]["reduceOptions"] = Value::from("nonsense");
    std::fs::write(out.join("broken.ts.txt"), typescript_for("broken", &bad)).unwrap();

    let run = |project: &Path| {
        Command::new("node")
            .arg(&tsc)
            .arg("-p")
            .arg(project)
            .current_dir(&dir)
            .output()
            .expect("run node (install nodejs)")
    };
    let good = run(&dir.join("tsconfig.json"));
    assert!(
        good.status.success(),
        "dashboards do not match Grafana's schema:\n{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    std::fs::rename(out.join("broken.ts.txt"), out.join("broken.ts")).unwrap();
    let broken = run(&dir.join("tsconfig.json"));
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "the broken dashboard passed");
    assert!(
        text.contains("broken.ts") && text.contains("wdth"),
        "{text}"
    );
    // reduceOptions is an object (ReduceDataOptions), not a string.
    assert!(
        text.contains("is not assignable to type '{ calcs: string[];"),
        "{text}"
    );
    std::fs::remove_file(out.join("broken.ts")).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Every panel query against real data
// ---------------------------------------------------------------------------------------------

/// Simulated messages of the last `backfill` up to now, as `envmon simulate --backfill` (the
/// compose file's simulator) publishes them first. Micro-stations every 10 min to keep the test
/// short (their cadence does not change any panel's shape).
#[cfg(feature = "demo")]
fn backfill(broker: &str, backfill: Duration, now: DateTime<Utc>) -> Vec<(String, Vec<u8>)> {
    let reg = registry();
    let mut args = envmon::sim::SimArgs::new(broker.to_string());
    args.backfill = Some(backfill);
    args.micro_period = Duration::from_secs(600);
    // Some malformed payloads so that dead-letters (and their metric) exist.
    args.faults = "malformed=1%".parse().unwrap();
    args.format = "mixed".parse().unwrap();
    let cfg = args.sim_config(now).unwrap();
    let mut sim = envmon::sim::Simulator::new(reg.stations(), cfg).unwrap();
    let mut out = Vec::new();
    while out.len() < 100_000 {
        let Some(m) = sim.next_message().unwrap() else {
            break;
        };
        if m.publish_time > now {
            break;
        }
        out.push((m.topic, m.payload));
    }
    assert!(out.len() < 100_000, "bound reached");
    out
}

/// Alerts in the alert engine's contract schema (tags rule, level, kind, status, station, area,
/// district, param; fields value, threshold, message_zh, message_en, title_zh, starts_at,
/// ends_at, duration_s, flapping, repeat; time = starts_at or ends_at).
fn alert_lines(now: DateTime<Utc>) -> String {
    let t = |min: i64| now.timestamp() - min * 60;
    let mut s = String::new();
    for (rule, kind, station, district, param, status, at) in [
        (
            "pm25_high",
            "air_national",
            "GS-A01",
            "Gusu",
            "pm25",
            "firing",
            t(90),
        ),
        (
            "pm25_high",
            "air_national",
            "GS-A01",
            "Gusu",
            "pm25",
            "resolved",
            t(30),
        ),
        (
            "nh3n_high",
            "water_auto",
            "W-TP01",
            "Wujiang",
            "nh3n",
            "firing",
            t(200),
        ),
        (
            "station_silent",
            "air_micro",
            "MS-GS-001",
            "Gusu",
            "",
            "firing",
            t(20),
        ),
    ] {
        let param_tag = if param.is_empty() {
            String::new()
        } else {
            format!(",param={param}")
        };
        s.push_str(&format!(
            "alerts,rule={rule},level=warning,kind={kind},status={status},station={station},\
             area=suzhou,district={district}{param_tag} value=120,threshold=75,\
             message_zh=\"{station} 超过阈值\",message_en=\"{station} above threshold\",\
             title_zh=\"{rule} 告警\",starts_at={}i,ends_at={}i,duration_s={}i,flapping=false,\
             repeat=false {at}000000000\n",
            t(90),
            if status == "resolved" { at } else { 0 },
            if status == "resolved" { 3600 } else { 0 },
        ));
    }
    s
}

/// Grafana's relative times used by the dashboards: `now`, `now-<n><unit>`, `now/y`.
fn resolve(expr: &str, now: DateTime<Utc>) -> DateTime<Utc> {
    if expr == "now" {
        return now;
    }
    if expr == "now/y" {
        // Start of the year in the dashboards' time zone, as Grafana rounds.
        let tz: chrono_tz::Tz = generate::DASHBOARD_TZ.parse().unwrap();
        let local = now.with_timezone(&tz);
        return tz
            .with_ymd_and_hms(local.year(), 1, 1, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
    }
    let rel = expr.strip_prefix("now-").unwrap_or(expr);
    now - span(rel).unwrap_or_else(|| panic!("time {expr:?} not understood"))
}

fn span(s: &str) -> Option<chrono::Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    Some(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        "y" => chrono::Duration::days(365 * n),
        _ => return None,
    })
}

/// `$__interval` as Grafana computes it: the range over the number of data points (a
/// 1,000-pixel-wide panel), rounded to a nice interval, at least the panel's `interval`.
fn interval(from: DateTime<Utc>, to: DateTime<Utc>, min: Option<&str>) -> String {
    let raw = (to - from).num_seconds() / 1000;
    let nice = [1, 10, 60, 300, 600, 1200, 3600, 10800, 43200, 86400];
    let mut secs = *nice.iter().find(|n| **n >= raw).unwrap_or(&86400);
    if let Some(m) = min.and_then(span) {
        secs = secs.max(m.num_seconds());
    }
    format!("{secs}s")
}

struct QueryCtx<'a> {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    min_interval: Option<&'a str>,
    vars: &'a BTreeMap<String, String>,
}

fn substitute(q: &str, c: &QueryCtx) -> String {
    let mut q = q
        .replace(
            "$timeFilter",
            &format!(
                "time >= {}ms and time <= {}ms",
                c.from.timestamp_millis(),
                c.to.timestamp_millis()
            ),
        )
        .replace("$__interval", &interval(c.from, c.to, c.min_interval));
    // Longest names first so `$station_x` is not cut by `$station`.
    let mut vars: Vec<_> = c.vars.iter().collect();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in vars {
        q = q.replace(&format!("${k}"), v);
    }
    let left = q
        .match_indices('$')
        .any(|(i, _)| q[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
    assert!(!left, "unsubstituted macro or variable left in {q}");
    q
}

/// One query's result: every series' columns, tags and rows.
struct Series {
    columns: Vec<String>,
    tags: BTreeMap<String, Value>,
    values: Vec<Vec<Value>>,
}

fn run_query(influx: &Influx1, q: &str) -> Vec<Series> {
    let v = influx.query_epoch("envmon", q, "ms");
    let r = &v["results"][0];
    assert!(
        r.get("error").is_none(),
        "InfluxDB error {} for {q}",
        r["error"]
    );
    r["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Series {
            columns: s["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect(),
            tags: s["tags"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            values: s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect(),
        })
        .collect()
}

/// Does the result have what a panel of type `ty` draws? Returns why not.
fn shape_problem(ty: &str, query: &str, result: &[Series], panel: &Value) -> Option<String> {
    if result.is_empty() || result.iter().all(|s| s.values.is_empty()) {
        return Some("no rows".into());
    }
    // Every column the query names (`AS "…"`) has a value somewhere: a misspelt field gives a
    // column of nulls.
    for alias in query
        .split(" AS \"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
    {
        let filled = result.iter().any(|s| {
            s.columns.iter().position(|c| c == alias).is_some_and(|i| {
                s.values
                    .iter()
                    .any(|row| row.get(i).is_some_and(|v| !v.is_null()))
            })
        });
        if !filled {
            return Some(format!("column {alias:?} has no value"));
        }
    }
    let non_time = |s: &Series, pred: &dyn Fn(&Value) -> bool| {
        s.values.iter().any(|row| {
            row.iter()
                .zip(&s.columns)
                .any(|(v, c)| c != "time" && pred(v))
        })
    };
    match ty {
        "timeseries" | "state-timeline" | "bargauge" => {
            if !result.iter().any(|s| non_time(s, &|v| v.is_number())) {
                return Some("no numeric value".into());
            }
        }
        "stat" => {
            if !result.iter().any(|s| non_time(s, &|v| !v.is_null())) {
                return Some("only nulls".into());
            }
        }
        "table" | "geomap" => {
            if !result.iter().any(|s| non_time(s, &|v| !v.is_null())) {
                return Some("only nulls".into());
            }
        }
        other => return Some(format!("unknown panel type {other}")),
    }
    // Columns the panel's overrides refer to by name must be there.
    let names: BTreeSet<String> = result
        .iter()
        .flat_map(|s| s.columns.iter().cloned().chain(s.tags.keys().cloned()))
        .collect();
    for o in panel["fieldConfig"]["overrides"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if o["matcher"]["id"] == "byName" && ty == "table" {
            let n = o["matcher"]["options"].as_str().unwrap_or_default();
            if !names.contains(n) {
                return Some(format!("override column {n:?} not in the result {names:?}"));
            }
        }
    }
    None
}

/// Values of a query variable, as Grafana lists them (`SHOW TAG VALUES` → the `value` column).
fn variable_values(influx: &Influx1, q: &str) -> Vec<String> {
    let mut out: Vec<String> = run_query(influx, q)
        .iter()
        .flat_map(|s| {
            let i = s.columns.iter().position(|c| c == "value").unwrap_or(0);
            s.values
                .iter()
                .filter_map(move |r| r.get(i)?.as_str().map(str::to_string))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Indicator points settle: `envmon_indicator_points_written_total` unchanged for 5 s.
fn wait_settled(envmon: &Envmon) {
    let t0 = Instant::now();
    let mut last = (-1.0, Instant::now());
    while t0.elapsed() < Duration::from_secs(120) {
        let n = envmon.metric("envmon_indicator_points_written_total");
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0.0 && last.1.elapsed() > Duration::from_secs(5) {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "indicator points did not settle in 120 s:\n{}",
        envmon.log()
    );
}

#[cfg(feature = "demo")]
#[test]
fn every_panel_query_returns_data_from_the_simulated_centre() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.stations = std::fs::read_to_string(repo("config/stations.toml")).unwrap();
    opts.extra = format!(
        "[targets]\nfile = {:?}\n",
        repo("config/targets.toml").display().to_string()
    );
    let envmon = Envmon::start(&opts);
    // Prometheus scrapes envmon every second from before the data arrives, so the rates of the
    // "envmon service" panels cover the load.
    let prom = Prometheus::start(envmon.http_port);
    // Scraping must have begun before the load, or a short load is over before the first
    // scrapes and every rate over it is 0/0.
    assert!(
        prom.wait_series("count_over_time(up[1m]) >= 2", Duration::from_secs(30)),
        "Prometheus did not start scraping envmon"
    );
    let now = Utc::now();
    let t0 = Instant::now();
    let msgs = backfill(&broker.url(), Duration::from_secs(2 * 86_400), now);
    let n = msgs.len();
    let acked = common::envmon::runtime().block_on(publish_all(
        broker.port(),
        "pub-dashboards",
        msgs,
        Duration::from_secs(240),
    ));
    assert_eq!(acked, n, "published and acknowledged");
    let stored = wait_until(Duration::from_secs(120), || {
        let done = envmon.metric("envmon_messages_received_total") as usize >= n
            && envmon.metric("envmon_acks_pending") == 0.0;
        done.then_some(())
    });
    assert!(
        stored.is_some(),
        "envmon did not take every message:\n{}",
        envmon.log()
    );
    // The PromQL panels are evaluated at the end of the load (rates over the last minute of
    // writes), not after the settling below: on a busy machine that can take over a minute,
    // and a rate over a minute without writes is NaN (the panel would rightly say "no data").
    // Evaluated a few seconds after the load: the window [t - 1m, t] then holds the scrapes
    // during the load and some after it, so a rate has its two samples even when a loaded
    // machine delayed a scrape or two during a load of a few seconds (seen in CI: an empty
    // result at exactly the end of the load).
    let load_done = Utc::now() + chrono::Duration::seconds(5);
    wait_settled(&envmon);
    while Utc::now() < load_done + chrono::Duration::seconds(2) {
        std::thread::sleep(Duration::from_millis(200));
    }
    influx.write("envmon", &alert_lines(now));
    eprintln!(
        "{n} messages stored and indicators settled in {:?}",
        t0.elapsed()
    );

    let gazetteer: BTreeSet<String> = generate::gazetteer(&registry())
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    let metrics = envmon.get("/metrics").expect("/metrics").1;
    assert!(
        prom.wait_series(
            "count_over_time(envmon_acks_sent_total[1m]) > 5",
            Duration::from_secs(30)
        ),
        "Prometheus did not scrape envmon"
    );
    let to = Utc::now();
    let mut ran = 0;
    let mut ran_prom = 0;
    let mut problems = Vec::new();
    for (file, d) in committed() {
        let d_from = resolve(d["time"]["from"].as_str().unwrap(), to);
        let d_to = resolve(d["time"]["to"].as_str().unwrap(), to);
        // Every value of every query variable (Grafana's default is the first one).
        let mut var_sets: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            assert_eq!(v["type"], "query", "{file}: only query variables are used");
            let q = substitute(
                v["query"].as_str().unwrap(),
                &QueryCtx {
                    from: d_from,
                    to: d_to,
                    min_interval: None,
                    vars: &BTreeMap::new(),
                },
            );
            let values = variable_values(&influx, &q);
            assert!(
                !values.is_empty(),
                "{file}: variable {} has no values",
                v["name"]
            );
            let name = v["name"].as_str().unwrap().to_string();
            var_sets = var_sets
                .into_iter()
                .flat_map(|set| {
                    values.iter().map({
                        let name = name.clone();
                        move |val| {
                            let mut s = set.clone();
                            s.insert(name.clone(), val.clone());
                            s
                        }
                    })
                })
                .collect();
        }
        for (set_i, vars) in var_sets.iter().enumerate() {
            for p in panels(&d) {
                let ty = p["type"].as_str().unwrap();
                let title = p["title"].as_str().unwrap();
                let (from, to_p) = match p["timeFrom"].as_str() {
                    Some(tf) => (to - span(tf).expect("timeFrom"), to),
                    None => (d_from, d_to),
                };
                let ctx = QueryCtx {
                    from,
                    to: to_p,
                    min_interval: p["interval"].as_str(),
                    vars,
                };
                let mut panel_has_data = false;
                let mut target_problems = Vec::new();
                for t in p["targets"].as_array().unwrap() {
                    match t["datasource"]["type"].as_str() {
                        Some("influxdb") => {
                            assert_eq!(t["rawQuery"], true, "{file} {title}: raw InfluxQL");
                            let q = substitute(t["query"].as_str().unwrap(), &ctx);
                            let res = run_query(&influx, &q);
                            ran += 1;
                            let problem = shape_problem(ty, &q, &res, p).or_else(|| {
                                (ty == "geomap")
                                    .then(|| geomap_problem(p, &res, &gazetteer))
                                    .flatten()
                            });
                            match problem {
                                None => panel_has_data = true,
                                Some(why) => target_problems.push(format!("{why}: {q}")),
                            }
                        }
                        Some("prometheus") => {
                            let expr = t["expr"].as_str().unwrap();
                            for m in metric_names(expr) {
                                if !metric_exists(&metrics, &m) {
                                    problems.push(format!(
                                        "{file} {title}: metric {m} not in /metrics"
                                    ));
                                }
                            }
                            // Grafana's $__rate_interval with the datasource's 15 s scrape
                            // interval: max($__interval + 15 s, 4 × 15 s) = 1m for these ranges.
                            let q = expr
                                .replace("$__rate_interval", "1m")
                                .replace("$__range", &format!("{}s", (to_p - from).num_seconds()))
                                .replace("$__interval", &interval(from, to_p, None));
                            let v = prom.query_at(&q, load_done.timestamp_millis() as f64 / 1000.0);
                            ran_prom += 1;
                            let finite = v["data"]["result"].as_array().is_some_and(|r| {
                                r.iter().any(|x| {
                                    x["value"][1]
                                        .as_str()
                                        .and_then(|n| n.parse::<f64>().ok())
                                        .is_some_and(f64::is_finite)
                                })
                            });
                            if v["status"] != "success" || !finite {
                                target_problems.push(format!("Prometheus {q}: {v}"));
                            } else {
                                panel_has_data = true;
                            }
                        }
                        other => panic!("{file} {title}: datasource {other:?}"),
                    }
                }
                // With the default (first) value every target must return data; with the other
                // values every panel (a micro-station has no SO2, so not every IAQI target).
                if set_i == 0 && !target_problems.is_empty() || !panel_has_data {
                    problems.push(format!("{file} [{vars:?}] {title}: {target_problems:?}"));
                }
            }
            // Annotations (alerts): the query runs and has the columns it maps.
            for a in d["annotations"]["list"].as_array().into_iter().flatten() {
                if a["datasource"]["type"] != "influxdb" {
                    continue;
                }
                let q = substitute(
                    a["target"]["query"].as_str().unwrap(),
                    &QueryCtx {
                        from: d_from,
                        to: d_to,
                        min_interval: None,
                        vars,
                    },
                );
                let res = run_query(&influx, &q);
                ran += 1;
                let cols: BTreeSet<&str> = res
                    .iter()
                    .flat_map(|s| s.columns.iter().map(String::as_str))
                    .collect();
                let wanted = [
                    a["target"]["textColumn"].as_str().unwrap(),
                    a["target"]["titleColumn"].as_str().unwrap(),
                ];
                let station_filtered = q.contains("\"station\" =~");
                if res.iter().all(|s| s.values.is_empty()) {
                    // The station dashboard's alerts are for that station only.
                    if !station_filtered
                        || ["GS-A01", "W-TP01", "MS-GS-001"]
                            .contains(&vars.get("station").map(String::as_str).unwrap_or(""))
                    {
                        problems.push(format!("{file} [{vars:?}] annotation: no alerts: {q}"));
                    }
                } else if !wanted.iter().all(|c| cols.contains(c)) {
                    problems.push(format!(
                        "{file} annotation: columns {cols:?} lack {wanted:?}"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(ran > 50, "only {ran} queries ran");
    assert!(ran_prom > 10, "only {ran_prom} PromQL queries ran");
    eprintln!("{ran} InfluxQL and {ran_prom} PromQL queries ran, every panel has data");
}

/// The geomap's lookup field holds station ids that the gazetteer knows.
fn geomap_problem(p: &Value, res: &[Series], gazetteer: &BTreeSet<String>) -> Option<String> {
    let layer = &p["options"]["layers"][0];
    let lookup = layer["location"]["lookup"].as_str()?;
    let color = layer["config"]["style"]["color"]["field"].as_str()?;
    let mut ids = Vec::new();
    for s in res {
        if let Some(id) = s.tags.get(lookup).and_then(Value::as_str) {
            ids.push(id.to_string());
        }
        if !s.columns.iter().any(|c| c == color) {
            return Some(format!("colour field {color} missing"));
        }
    }
    if ids.is_empty() {
        return Some(format!("no {lookup} tag"));
    }
    let unknown: Vec<_> = ids.iter().filter(|i| !gazetteer.contains(*i)).collect();
    (!unknown.is_empty()).then(|| format!("ids not in the gazetteer: {unknown:?}"))
}

fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("envmon_") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(expr[start..end].to_string());
        i = end;
    }
    out
}

/// A sample of that name is exposed, or its family is declared (`# TYPE`) and the name is the
/// family's counter/histogram sample (a labelled family with no series yet, e.g. no write error).
fn metric_exists(metrics: &str, name: &str) -> bool {
    let sample = metrics.lines().filter(|l| !l.starts_with('#')).any(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
    });
    sample
        || ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| {
                name.strip_suffix(suffix).is_some_and(|family| {
                    metrics
                        .lines()
                        .any(|l| l.starts_with(&format!("# TYPE {family} ")))
                })
            })
}

#[test]
fn panel_datasources_are_the_provisioned_ones() {
    let text = std::fs::read_to_string(repo("deploy/grafana/provisioning/datasources/envmon.yaml"))
        .unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("datasources yaml");
    let mut uids = BTreeMap::new();
    for ds in docs[0]["datasources"].as_vec().expect("datasources list") {
        uids.insert(
            ds["uid"].as_str().unwrap().to_string(),
            ds["type"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(
        uids.get(generate::INFLUX_UID).map(String::as_str),
        Some("influxdb")
    );
    assert_eq!(
        uids.get(generate::PROM_UID).map(String::as_str),
        Some("prometheus")
    );
    // InfluxQL mode (works against 1.x and the v1 API of 2.x/3.x).
    let influx = docs[0]["datasources"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|d| d["type"].as_str() == Some("influxdb"))
        .unwrap();
    assert_eq!(influx["jsonData"]["version"].as_str(), Some("InfluxQL"));
    for (file, d) in committed() {
        let mut refs = Vec::new();
        for p in panels(&d) {
            refs.push(p["datasource"].clone());
            refs.extend(
                p["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["datasource"].clone()),
            );
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            refs.push(v["datasource"].clone());
        }
        for r in refs {
            let uid = r["uid"].as_str().unwrap_or_default();
            assert_eq!(
                uids.get(uid).map(String::as_str),
                r["type"].as_str(),
                "{file}: datasource {r} is not provisioned"
            );
        }
    }
    // The dashboards provider points at the folder compose and k8s mount the JSON into.
    let prov = std::fs::read_to_string(repo("deploy/grafana/provisioning/dashboards/envmon.yaml"))
        .unwrap();
    let p = &yaml_rust2::YamlLoader::load_from_str(&prov).unwrap()[0];
    assert_eq!(
        p["providers"][0]["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards/envmon")
    );
}
