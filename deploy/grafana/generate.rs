//! The Grafana dashboards of envmon, as code. This file is the ONE source of truth for
//! `deploy/grafana/dashboards/*.json` and `deploy/grafana/gazetteer/envmon-stations.json`:
//! the JSON files are its output, committed so Grafana's file provisioning can read them.
//!
//! Regenerate after editing this file, `config/stations.toml` (map coordinates) or
//! `config/targets.toml` (water target lines):
//!
//! ```sh
//! ENVMON_WRITE_DASHBOARDS=1 cargo test --test dashboards generated_files_are_up_to_date
//! ```
//!
//! (`tests/dashboards.rs` includes this file with `#[path]`; without the variable that test
//! fails when the committed JSON differs from what this code generates.)
//!
//! Every InfluxDB panel query is raw InfluxQL (`rawQuery: true`, the `query` field) with
//! Grafana's `$timeFilter` / `$__interval` macros, against the schema of docs/schema.md; every
//! Prometheus query uses the metric names of `src/telemetry.rs`. Titles are bilingual, Chinese
//! first.

use serde_json::{json, Value};

/// Datasource uids, fixed by `deploy/grafana/provisioning/datasources/envmon.yaml`.
pub const INFLUX_UID: &str = "envmon-influxdb";
pub const PROM_UID: &str = "envmon-prometheus";

/// Path of the station gazetteer inside Grafana (compose and k8s mount it there; Grafana
/// serves `public/` from its home directory `/usr/share/grafana`).
pub const GAZETTEER: &str = "public/gazetteer/envmon-stations.json";

/// Time zone of every dashboard (the registry's default station time zone).
pub const DASHBOARD_TZ: &str = "Asia/Shanghai";

/// One generated dashboard: file name under `deploy/grafana/dashboards/` and its JSON.
pub struct Generated {
    pub file: String,
    pub json: Value,
}

fn influx() -> Value {
    json!({"type": "influxdb", "uid": INFLUX_UID})
}

fn prom() -> Value {
    json!({"type": "prometheus", "uid": PROM_UID})
}

/// An InfluxQL target. `format`: `time_series` or `table`.
fn iq(ref_id: &str, query: &str, format: &str, alias: Option<&str>) -> Value {
    let mut t = json!({
        "refId": ref_id,
        "datasource": influx(),
        "rawQuery": true,
        "query": query,
        "resultFormat": format,
    });
    if let Some(a) = alias {
        t["alias"] = json!(a);
    }
    t
}

/// A PromQL target.
fn pq(ref_id: &str, expr: &str, legend: &str) -> Value {
    json!({
        "refId": ref_id,
        "datasource": prom(),
        "expr": expr,
        "legendFormat": legend,
        "range": true,
    })
}

/// HJ 633-2012 Table 2 (unchanged in HJ 633-2026, Appendix A.1): AQI level bounds and
/// colours — 0–50 #00E400 优, 51–100 #FFFF00 良, 101–150 #FF7E00 轻度污染, 151–200 #FF0000 中度污染,
/// 201–300 #99004C 重度污染, >300 #7E0023 严重污染 (docs/indicators.md §3). AQI is an integer,
/// so a step starts at the first value of its level.
fn aqi_thresholds() -> Value {
    json!({"mode": "absolute", "steps": [
        {"color": "#00E400", "value": null},
        {"color": "#FFFF00", "value": 51},
        {"color": "#FF7E00", "value": 101},
        {"color": "#FF0000", "value": 151},
        {"color": "#99004C", "value": 201},
        {"color": "#7E0023", "value": 301},
    ]})
}

/// GB 3838-2002 class as `class_num` (1 … 6 = 劣Ⅴ, 0 = not evaluated; docs/schema.md §6),
/// coloured as Chinese surface-water reports customarily do (Ⅰ–Ⅱ blue, Ⅲ green, Ⅳ yellow,
/// Ⅴ orange, 劣Ⅴ red). Reporting practice, not verified against a standard's text (see
/// deploy/README.md, "Grafana dashboards"); grey = not evaluated.
fn class_thresholds() -> Value {
    json!({"mode": "absolute", "steps": [
        {"color": "#808080", "value": null},
        {"color": "#1E90FF", "value": 1},
        {"color": "#00B050", "value": 3},
        {"color": "#FFFF00", "value": 4},
        {"color": "#FF7E00", "value": 5},
        {"color": "#FF0000", "value": 6},
    ]})
}

fn class_mappings() -> Value {
    let mut m = serde_json::Map::new();
    for (n, t) in [
        (0, "无有效数据 / no data"),
        (1, "Ⅰ类"),
        (2, "Ⅱ类"),
        (3, "Ⅲ类"),
        (4, "Ⅳ类"),
        (5, "Ⅴ类"),
        (6, "劣Ⅴ类"),
    ] {
        m.insert(n.to_string(), json!({"text": t, "index": n}));
    }
    json!([{"type": "value", "options": m}])
}

fn bool_mappings(yes: &str, no: &str) -> Value {
    json!([{"type": "value", "options": {
        "true": {"text": yes, "color": "green", "index": 0},
        "false": {"text": no, "color": "red", "index": 1},
    }}])
}

fn thresholds_single(color: &str) -> Value {
    json!({"mode": "absolute", "steps": [{"color": color, "value": null}]})
}

/// Lays panels out on Grafana's 24-column grid, row after row.
struct Layout {
    x: u32,
    y: u32,
    row_h: u32,
    next_id: u32,
    panels: Vec<Value>,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            x: 0,
            y: 0,
            row_h: 0,
            next_id: 1,
            panels: Vec::new(),
        }
    }

    fn add(&mut self, w: u32, h: u32, mut p: Value) {
        if self.x + w > 24 {
            self.x = 0;
            self.y += self.row_h;
            self.row_h = 0;
        }
        p["id"] = json!(self.next_id);
        p["gridPos"] = json!({"h": h, "w": w, "x": self.x, "y": self.y});
        self.next_id += 1;
        self.x += w;
        self.row_h = self.row_h.max(h);
        self.panels.push(p);
    }
}

fn legend() -> Value {
    json!({"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": true})
}

fn tooltip() -> Value {
    json!({"mode": "multi", "sort": "none"})
}

fn reduce_last() -> Value {
    json!({"calcs": ["lastNotNull"], "fields": "", "values": false})
}

fn timeseries(title: &str, desc: &str, unit: &str, targets: Vec<Value>) -> Value {
    let ds = targets[0]["datasource"].clone();
    json!({
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": ds,
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0,
                           "showPoints": "auto", "spanNulls": false},
                "thresholds": thresholds_single("green"),
                "color": {"mode": "palette-classic"},
            },
            "overrides": [],
        },
        "options": {"legend": legend(), "tooltip": tooltip()},
    })
}

fn stat(title: &str, desc: &str, unit: &str, thresholds: Value, targets: Vec<Value>) -> Value {
    let ds = targets[0]["datasource"].clone();
    json!({
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": ds,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": thresholds,
                         "color": {"mode": "thresholds"}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": reduce_last(),
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
            "wideLayout": true,
            "showPercentChange": false,
            "percentChangeColorMode": "standard",
        },
    })
}

fn table(title: &str, desc: &str, targets: Vec<Value>, overrides: Vec<Value>) -> Value {
    let ds = targets[0]["datasource"].clone();
    json!({
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": ds,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "filterable": true,
                                    "cellOptions": {"type": "auto"}, "inspect": false},
                         "thresholds": thresholds_single("green")},
            "overrides": overrides,
        },
        "options": {"showHeader": true, "cellHeight": "sm", "frameIndex": 0},
    })
}

/// A table override: column `name` coloured by `thresholds`, with optional value mappings.
fn colour_column(name: &str, thresholds: Value, mappings: Option<Value>) -> Value {
    let mut props = vec![
        json!({"id": "thresholds", "value": thresholds}),
        json!({"id": "custom.cellOptions", "value": {"type": "color-background"}}),
    ];
    if let Some(m) = mappings {
        props.push(json!({"id": "mappings", "value": m}));
    }
    json!({"matcher": {"id": "byName", "options": name}, "properties": props})
}

fn mapped_column(name: &str, mappings: Value) -> Value {
    json!({"matcher": {"id": "byName", "options": name},
           "properties": [{"id": "mappings", "value": mappings},
                          {"id": "custom.cellOptions", "value": {"type": "color-text"}}]})
}

fn dashboard(
    uid: &str,
    title: &str,
    desc: &str,
    from: &str,
    l: Layout,
    vars: Vec<Value>,
    annotations: Vec<Value>,
) -> Value {
    let mut list = vec![json!({
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": true,
        "hide": true,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    })];
    list.extend(annotations);
    json!({
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["envmon"],
        "editable": true,
        "graphTooltip": 1,
        // The stations' time zone (registry default): days, months and "year to date" start
        // at local midnight, as the indicator points do (docs/schema.md §5, §6).
        "timezone": DASHBOARD_TZ,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": from, "to": "now"},
        "links": [{"title": "envmon 仪表盘 / dashboards", "type": "dashboards", "tags": ["envmon"],
                   "asDropdown": true, "icon": "external link", "includeVars": false,
                   "keepTime": true, "targetBlank": false, "tooltip": "", "url": ""}],
        "annotations": {"list": list},
        "templating": {"list": vars},
        "panels": l.panels,
    })
}

/// A query-type template variable on the InfluxDB datasource.
fn query_var(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": influx(),
        "query": query,
        "refresh": 1,
        "sort": 1,
        "multi": false,
        "includeAll": false,
        "hide": 0,
    })
}

// ---------------------------------------------------------------------------------------------
// 1. City air overview
// ---------------------------------------------------------------------------------------------

fn air_overview() -> Value {
    let mut l = Layout::new();
    let now_desc = "最新一小时 AQI（HJ 633，aqi_hourly），颜色为 HJ 633 级别颜色；首要污染物仅在 AQI > 50 时给出。\n\
                    Latest hourly AQI (HJ 633, measurement aqi_hourly) in the HJ 633 category colours; \
                    the primary pollutant is given only when AQI > 50.";
    let mut city = stat(
        "城市 AQI（当前） / City AQI now",
        now_desc,
        "none",
        aqi_thresholds(),
        vec![iq(
            "A",
            "SELECT \"aqi\" AS \"AQI\", \"category_zh\" AS \"类别\", \"category_en\" AS \"Category\", \
             \"primary\" AS \"首要污染物 Primary\" FROM \"aqi_hourly\" WHERE \"scope\" = 'city' \
             AND \"aqi\" >= 0 AND $timeFilter GROUP BY \"id\" ORDER BY time DESC LIMIT 1",
            "table",
            None,
        )],
    );
    city["options"]["reduceOptions"]["fields"] = json!("/.*/");
    city["options"]["textMode"] = json!("value_and_name");
    l.add(8, 6, city);
    l.add(
        16,
        6,
        table(
            "各区 AQI（当前） / District AQI now",
            now_desc,
            vec![iq(
                "A",
                "SELECT last(\"aqi\") AS \"AQI\", last(\"category_zh\") AS \"类别\", \
                 last(\"category_en\") AS \"Category\", last(\"primary\") AS \"首要污染物 Primary\" \
                 FROM \"aqi_hourly\" WHERE \"scope\" = 'district' AND \"aqi\" >= 0 AND $timeFilter \
                 GROUP BY \"id\"",
                "table",
                None,
            )],
            vec![colour_column("AQI", aqi_thresholds(), None)],
        ),
    );
    let mut ts = timeseries(
        "各区 AQI（近 48 小时） / AQI per district, last 48 h",
        "每区每小时 AQI（aqi_hourly, scope = district）；未发布的小时（NA，写作 -1）不画。\n\
         Hourly AQI per district (aqi_hourly, scope = district); unpublished hours (NA, stored as -1) are left out.",
        "none",
        vec![iq(
            "A",
            "SELECT mean(\"aqi\") FROM \"aqi_hourly\" WHERE \"scope\" = 'district' AND \"aqi\" >= 0 \
             AND $timeFilter GROUP BY time($__interval), \"id\" fill(none)",
            "time_series",
            Some("$tag_id"),
        )],
    );
    ts["timeFrom"] = json!("48h");
    ts["interval"] = json!("1h");
    ts["fieldConfig"]["defaults"]["thresholds"] = aqi_thresholds();
    ts["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "dashed"});
    l.add(24, 9, ts);
    let mut map = json!({
        "type": "geomap",
        "title": "站点地图（按 AQI 着色） / Stations coloured by AQI",
        "description": "每个空气站最新一小时 AQI；坐标来自站点登记表（config/stations.toml，经 deploy/grafana/gazetteer/envmon-stations.json）。\n\
                        Latest hourly AQI of each air station; coordinates from the station registry \
                        (config/stations.toml, via the gazetteer deploy/grafana/gazetteer/envmon-stations.json).",
        "datasource": influx(),
        "targets": [iq(
            "A",
            "SELECT last(\"aqi\") AS \"AQI\", last(\"category_zh\") AS \"类别\" FROM \"aqi_hourly\" \
             WHERE \"scope\" = 'station' AND \"aqi\" >= 0 AND $timeFilter GROUP BY \"id\"",
            "table",
            None,
        )],
        "fieldConfig": {
            "defaults": {"thresholds": aqi_thresholds(), "color": {"mode": "thresholds"}},
            "overrides": [],
        },
        "options": {
            "view": {"id": "coords", "lat": 31.3, "lon": 120.75, "zoom": 8.5,
                     "allLayers": true},
            "controls": {"showZoom": true, "mouseWheelZoom": true, "showAttribution": true},
            "tooltip": {"mode": "details"},
            "basemap": {"type": "default", "name": "Basemap"},
            "layers": [{
                "type": "markers",
                "name": "AQI",
                "tooltip": true,
                "location": {"mode": "lookup", "lookup": "id", "gazetteer": GAZETTEER},
                "config": {
                    "showLegend": true,
                    "style": {
                        "color": {"field": "AQI", "fixed": "dark-green"},
                        "size": {"fixed": 8, "min": 4, "max": 15},
                        "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                        "opacity": 0.9,
                        "text": {"mode": "field", "field": "AQI", "fixed": ""},
                        "textConfig": {"fontSize": 10, "offsetX": 0, "offsetY": -12,
                                       "textAlign": "center", "textBaseline": "middle"},
                    },
                },
            }],
        },
    });
    map["options"]["layers"][0]["opacity"] = json!(1);
    l.add(12, 14, map);
    l.add(
        12,
        14,
        table(
            "站点最新浓度 / Latest value per pollutant and station",
            "每个空气站（含微站）时间范围内最新的浓度（air 测量，µg/m³，CO 为 mg/m³）；微站不测 SO2，空格为无数据。\n\
             Latest concentration per air station (micro-stations included; measurement air, µg/m³, CO mg/m³); \
             micro-stations do not measure SO2, an empty cell is no data.",
            vec![iq(
                "A",
                "SELECT last(\"pm25\") AS \"PM2.5\", last(\"pm10\") AS \"PM10\", last(\"so2\") AS \"SO2\", \
                 last(\"no2\") AS \"NO2\", last(\"o3\") AS \"O3\", last(\"co\") AS \"CO\" FROM \"air\" \
                 WHERE $timeFilter GROUP BY \"station\", \"district\", \"kind\"",
                "table",
                None,
            )],
            vec![],
        ),
    );
    dashboard(
        "envmon-air-overview",
        "城市空气质量总览 / City air overview",
        "城市与各区 AQI、近 48 小时走势、站点浓度与地图。City and district AQI, the last 48 hours, stations and map.",
        "now-48h",
        l,
        vec![],
        vec![alerts_annotation("air")],
    )
}

// ---------------------------------------------------------------------------------------------
// 2. Station detail
// ---------------------------------------------------------------------------------------------

fn station_detail() -> Value {
    let mut l = Layout::new();
    let sel = "\"station\" =~ /^$station$/";
    let mut aqi = stat(
        "站点 AQI（当前） / Station AQI now",
        "该站最新一小时 AQI 与首要污染物（aqi_hourly, scope = station）。Latest hourly AQI and primary pollutant of the station.",
        "none",
        aqi_thresholds(),
        vec![iq(
            "A",
            "SELECT \"aqi\" AS \"AQI\", \"category_zh\" AS \"类别\", \"primary\" AS \"首要污染物 Primary\" \
             FROM \"aqi_hourly\" WHERE \"scope\" = 'station' AND \"id\" =~ /^$station$/ AND \"aqi\" >= 0 \
             AND $timeFilter ORDER BY time DESC LIMIT 1",
            "table",
            None,
        )],
    );
    aqi["options"]["reduceOptions"]["fields"] = json!("/.*/");
    aqi["options"]["textMode"] = json!("value_and_name");
    l.add(24, 5, aqi);
    let mut conc = timeseries(
        "颗粒物与气态污染物 / Particulates and gases",
        "air 测量的原始读数（µg/m³）。Raw readings of measurement air (µg/m³).",
        "µg/m³",
        vec![iq(
            "A",
            &format!(
                "SELECT mean(\"pm25\") AS \"PM2.5\", mean(\"pm10\") AS \"PM10\", mean(\"so2\") AS \"SO2\", \
                 mean(\"no2\") AS \"NO2\", mean(\"o3\") AS \"O3\" FROM \"air\" WHERE {sel} AND $timeFilter \
                 GROUP BY time($__interval) fill(none)"
            ),
            "time_series",
            None,
        )],
    );
    conc["fieldConfig"]["defaults"]["unit"] = json!("conµgm3");
    l.add(12, 8, conc);
    let mut co = timeseries(
        "一氧化碳 CO / Carbon monoxide",
        "CO 读数（mg/m³）。CO readings (mg/m³).",
        "conmgm3",
        vec![iq(
            "A",
            &format!(
                "SELECT mean(\"co\") AS \"CO\" FROM \"air\" WHERE {sel} AND $timeFilter \
                 GROUP BY time($__interval) fill(none)"
            ),
            "time_series",
            None,
        )],
    );
    co["fieldConfig"]["defaults"]["decimals"] = json!(2);
    l.add(12, 8, co);
    // One query per indicator: a sub-index without a value is stored as -1 (docs/schema.md §5)
    // and must not enter the mean. The hourly AQI's indicators (HJ 633-2026 §4.2.3,
    // docs/indicators.md §3): the 8-hour O3 is not one of them under the 2026 edition.
    let iaqi: Vec<Value> = [
        ("A", "pm25", "PM2.5"),
        ("B", "pm10", "PM10"),
        ("C", "so2", "SO2"),
        ("D", "no2", "NO2"),
        ("E", "co", "CO"),
        ("F", "o3_1h", "O3 1h"),
    ]
    .iter()
    .map(|(r, f, a)| {
        iq(
            r,
            &format!(
                "SELECT mean(\"iaqi_{f}\") AS \"{a}\" FROM \"aqi_hourly\" WHERE \"scope\" = 'station' \
                 AND \"id\" =~ /^$station$/ AND \"iaqi_{f}\" >= 0 AND $timeFilter \
                 GROUP BY time($__interval) fill(none)"
            ),
            "time_series",
            None,
        )
    })
    .collect();
    let mut ts = timeseries(
        "分指数 IAQI / Individual AQI per pollutant",
        "每小时各污染物分指数（HJ 633；aqi_hourly 的 iaqi_* 字段）；无值（-1）不画。Hourly IAQI per pollutant (fields iaqi_*); values without an IAQI (-1) are left out.",
        "none",
        iaqi,
    );
    ts["interval"] = json!("1h");
    ts["fieldConfig"]["defaults"]["thresholds"] = aqi_thresholds();
    ts["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({"mode": "dashed"});
    l.add(12, 8, ts);
    l.add(
        12,
        8,
        timeseries(
            "气象 / Meteorology",
            "气温 °C、相对湿度 %（微站也测）；风速 m/s。Air temperature °C, relative humidity %, wind speed m/s.",
            "none",
            vec![iq(
                "A",
                &format!(
                    "SELECT mean(\"temp\") AS \"气温 temp °C\", mean(\"rh\") AS \"湿度 RH %\", \
                     mean(\"wind_speed\") AS \"风速 wind m/s\" FROM \"air\" WHERE {sel} AND $timeFilter \
                     GROUP BY time($__interval) fill(none)"
                ),
                "time_series",
                None,
            )],
        ),
    );
    let mut raw = table(
        "全部参数及数据标记 / Every parameter with its flags",
        "该站时间范围内最新 48 条原始读数，所有字段：<param> 为值，<param>_flag 为数据标记（HJ 212：N 有效，F/M/S/D/C/T/B 等）；空 = N（有效，envmon 不写 N）。\n\
         The station's newest 48 readings with every field: <param> is the value, <param>_flag its data flag \
         (HJ 212: F, M, S, D, C, T, B …); empty = N (valid; envmon does not store N). \
         QA/QC flags of a later issue will appear here as further fields.",
        vec![iq(
            "A",
            &format!(
                "SELECT * FROM \"air\" WHERE {sel} AND $timeFilter ORDER BY time DESC LIMIT 48"
            ),
            "table",
            None,
        )],
        vec![],
    );
    raw["fieldConfig"]["defaults"]["noValue"] = json!("");
    l.add(24, 10, raw);
    dashboard(
        "envmon-station",
        "站点详情 / Station detail",
        "单站（国控、省控）全部参数、数据标记和分指数；微站不计算 AQI（envmon 空气引擎只对国控、省控站计算），其读数见总览的站点表。\
         Every parameter, flag and IAQI of one national or provincial station; envmon's air engine computes no \
         AQI for micro-stations, their readings are in the overview's station table.",
        "now-48h",
        l,
        vec![query_var(
            "station",
            "站点 / Station",
            "SHOW TAG VALUES FROM \"air\" WITH KEY = \"station\" WHERE \"kind\" =~ /^air_(national|provincial)$/",
        )],
        vec![alerts_annotation("station")],
    )
}

// ---------------------------------------------------------------------------------------------
// 3. Water sections
// ---------------------------------------------------------------------------------------------

/// 一河三湖: Taipu River and the lakes Dianshan, Yuandang and Fen (the demo zone's cross-border
/// waters), by water body as the registry names them.
const YHSH: &str = "\"water_body\" =~ /^(太浦河|淀山湖|元荡|汾湖)$/";

fn water_sections() -> Value {
    let mut l = Layout::new();
    let overrides = vec![
        colour_column("类别 Class", class_thresholds(), Some(class_mappings())),
        colour_column("目标 Target", class_thresholds(), Some(class_mappings())),
        mapped_column("达标 Meets", bool_mappings("达标 yes", "未达标 no")),
    ];
    l.add(
        24,
        10,
        table(
            "断面水质类别与目标（最新一日） / Class vs target per section (latest day)",
            "每个断面最新一日 GB 3838 类别（water_class, period = day）与目标类别；定类项目与超标倍数。\n\
             Latest daily GB 3838 class of each section (water_class, period = day) against its target; \
             determining items and exceedance multiples.",
            vec![iq(
                "A",
                "SELECT last(\"class_num\") AS \"类别 Class\", last(\"target_num\") AS \"目标 Target\", \
                 last(\"meets\") AS \"达标 Meets\", last(\"determining\") AS \"定类项目 Determining\", \
                 last(\"exceeding\") AS \"超标 Exceeding\" FROM \"water_class\" WHERE \"period\" = 'day' \
                 AND $timeFilter GROUP BY \"station\", \"water_body\", \"district\"",
                "table",
                None,
            )],
            overrides.clone(),
        ),
    );
    let mut hist = json!({
        "type": "state-timeline",
        "title": "一河三湖 月度类别 / 一河三湖 (Taipu River, Dianshan, Yuandang, Fen lakes): monthly class",
        "description": "太浦河、淀山湖、元荡、汾湖各断面每月（月至今）类别（water_class, period = month）。\n\
                        Monthly (month-to-date) class of every section of the Taipu River and the Dianshan, \
                        Yuandang and Fen lakes (water_class, period = month).",
        "datasource": influx(),
        "targets": [iq(
            "A",
            &format!(
                "SELECT last(\"class_num\") FROM \"water_class\" WHERE \"period\" = 'month' AND {YHSH} \
                 AND $timeFilter GROUP BY time(1d), \"station\" fill(none)"
            ),
            "time_series",
            Some("$tag_station"),
        )],
        "timeFrom": "1y",
        "fieldConfig": {
            "defaults": {"thresholds": class_thresholds(), "mappings": class_mappings(),
                         "color": {"mode": "thresholds"},
                         "custom": {"fillOpacity": 80, "lineWidth": 0}},
            "overrides": [],
        },
        "options": {"showValue": "auto", "rowHeight": 0.8, "mergeValues": true,
                    "alignValue": "center", "legend": legend(),
                    "tooltip": {"mode": "single", "sort": "none"}},
    });
    hist["options"]["legend"]["showLegend"] = json!(false);
    l.add(16, 9, hist);
    let mut share = stat(
        "一河三湖 达标与优Ⅲ比例（年初至今） / 一河三湖 attainment share, year to date",
        "一河三湖断面组（登记表 groups）年初至今：达到各自目标的断面比例与Ⅰ–Ⅲ类比例（water_group, period = ytd）。\n\
         Group 一河三湖 (registry groups), year to date: share of sections meeting their target and share in class I–III.",
        "percent",
        json!({"mode": "absolute", "steps": [{"color": "red", "value": null},
                                             {"color": "green", "value": 100}]}),
        vec![iq(
            "A",
            "SELECT last(\"meeting_target_pct\") AS \"达标比例 meeting target\", last(\"good_pct\") AS \"优Ⅲ比例 class I–III\" \
             FROM \"water_group\" WHERE \"group\" = '一河三湖' AND \"period\" = 'ytd' AND $timeFilter",
            "time_series",
            None,
        )],
    );
    share["timeFrom"] = json!("1y");
    share["options"]["textMode"] = json!("value_and_name");
    l.add(8, 9, share);
    l.add(
        12,
        9,
        table(
            "湖库综合营养状态指数 TLI / Lake trophic state TLI",
            "湖库断面最新一日 TLI(Σ)、营养状态与水华风险（lake_tli, period = day）。缺项已按权重重新归一（missing）。\n\
             Latest daily TLI(Σ), trophic grade and bloom risk of lake and reservoir sections (lake_tli, period = day); \
             missing parameters are listed (weights renormalised).",
            vec![iq(
                "A",
                "SELECT last(\"tli\") AS \"TLI\", last(\"grade_zh\") AS \"营养状态\", last(\"grade\") AS \"Grade\", \
                 last(\"bloom_label\") AS \"水华风险 Bloom\", last(\"missing\") AS \"缺项 Missing\" FROM \"lake_tli\" \
                 WHERE \"period\" = 'day' AND $timeFilter GROUP BY \"station\", \"water_body\"",
                "table",
                None,
            )],
            vec![colour_column(
                "TLI",
                // CNEMC 总站生字〔2001〕090号 grades (docs/indicators.md, TLI): < 30 oligotrophic,
                // 30–50 mesotrophic, (50, 60] light, (60, 70] middle, > 70 hyper-eutrophic; 50, 60
                // and 70 belong to the lower grade. TLI has one decimal, so the next grade's
                // colour starts at 50.1, 60.1, 70.1 (a Grafana step applies from its value up).
                json!({"mode": "absolute", "steps": [
                    {"color": "#1E90FF", "value": null}, {"color": "#00B050", "value": 30},
                    {"color": "#FFFF00", "value": 50.1}, {"color": "#FF7E00", "value": 60.1},
                    {"color": "#FF0000", "value": 70.1}]}),
                None,
            )],
        ),
    );
    let mut tli = timeseries(
        "湖库 TLI 日变化 / Lake TLI per day",
        "每日 TLI(Σ)（lake_tli, period = day）。Daily TLI(Σ).",
        "none",
        vec![iq(
            "A",
            "SELECT mean(\"tli\") FROM \"lake_tli\" WHERE \"period\" = 'day' AND $timeFilter \
             GROUP BY time(1d), \"station\" fill(none)",
            "time_series",
            Some("$tag_station"),
        )],
    );
    tli["fieldConfig"]["defaults"]["custom"]["drawStyle"] = json!("points");
    l.add(12, 9, tli);
    let mut daily = timeseries(
        "断面日类别 / Daily class per section",
        "每个断面每日类别（1 = Ⅰ … 6 = 劣Ⅴ，0 = 无有效数据）。Daily class per section (1 = I … 6 = worse than V).",
        "none",
        vec![iq(
            "A",
            "SELECT max(\"class_num\") FROM \"water_class\" WHERE \"period\" = 'day' AND $timeFilter \
             GROUP BY time(1d), \"station\" fill(none)",
            "time_series",
            Some("$tag_station"),
        )],
    );
    daily["fieldConfig"]["defaults"]["mappings"] = class_mappings();
    daily["fieldConfig"]["defaults"]["custom"]["drawStyle"] = json!("points");
    daily["fieldConfig"]["defaults"]["min"] = json!(0);
    daily["fieldConfig"]["defaults"]["max"] = json!(6);
    l.add(24, 8, daily);
    dashboard(
        "envmon-water",
        "地表水断面 / Water sections",
        "断面类别与目标、一河三湖、湖库营养状态。Section classes vs targets, the 一河三湖 board, lake trophic state.",
        "now-7d",
        l,
        vec![],
        vec![alerts_annotation("water")],
    )
}

// ---------------------------------------------------------------------------------------------
// 4. Targets
// ---------------------------------------------------------------------------------------------

/// A water target of `config/targets.toml` that the dashboard shows: its group has members.
pub struct WaterTargetLine {
    pub id: String,
    pub name: String,
    pub group: String,
    pub year: i32,
    /// `meeting_target_pct` (group_compliance) or `good_pct` (group_good_share).
    pub field: &'static str,
    pub target: f64,
}

fn targets(water: &[WaterTargetLine]) -> Value {
    let mut l = Layout::new();
    l.add(
        24,
        7,
        table(
            "PM2.5 年均浓度目标 / PM2.5 annual mean vs target",
            "air_target（metric = pm25_annual_mean），最新评估日：今年至今均值、目标（如 28 µg/m³，来自 config/targets.toml）、\
             全年达标时余下各日均值须低于多少。\n\
             air_target (metric = pm25_annual_mean), latest evaluation: mean so far, the target (e.g. 28 µg/m³, \
             from config/targets.toml) and the mean the rest of the year must stay below to meet it.",
            vec![iq(
                "A",
                "SELECT last(\"year\") AS \"年 Year\", last(\"value\") AS \"今年至今 so far µg/m³\", \
                 last(\"target\"::field) AS \"目标 target µg/m³\", \
                 last(\"remaining_mean_must_stay_under\") AS \"余下须低于 rest of year below µg/m³\", \
                 last(\"days\") AS \"天数 days\", last(\"on_track\") AS \"进度 on track\", \
                 last(\"as_of\") AS \"截至 as of\" FROM \"air_target\" \
                 WHERE \"metric\" = 'pm25_annual_mean' AND $timeFilter GROUP BY \"target\"::tag, \"area\"",
                "table",
                None,
            )],
            vec![mapped_column(
                "进度 on track",
                bool_mappings("达标进度内 on track", "落后 off track"),
            )],
        ),
    );
    l.add(
        24,
        7,
        table(
            "优良天数比例目标 / Good-day ratio vs target",
            "air_target（metric = good_day_ratio），最新评估日：今年至今优良天数比例、目标、还需优良天数、尚可容许的非优良天数。\n\
             air_target (metric = good_day_ratio), latest evaluation: ratio so far, the target, good days still \
             needed and non-good days still affordable.",
            vec![iq(
                "A",
                "SELECT last(\"year\") AS \"年 Year\", last(\"value\") AS \"今年至今 so far %\", \
                 last(\"target\"::field) AS \"目标 target %\", last(\"good_days\") AS \"优良天 good days\", \
                 last(\"valid_days\") AS \"有效天 valid days\", \
                 last(\"more_good_days_needed\") AS \"还需优良天 more good days needed\", \
                 last(\"non_good_days_affordable\") AS \"可容许非优良天 non-good days affordable\", \
                 last(\"on_track\") AS \"进度 on track\" FROM \"air_target\" \
                 WHERE \"metric\" = 'good_day_ratio' AND $timeFilter GROUP BY \"target\"::tag, \"area\"",
                "table",
                None,
            )],
            vec![mapped_column(
                "进度 on track",
                bool_mappings("达标进度内 on track", "落后 off track"),
            )],
        ),
    );
    let mut pm = timeseries(
        "PM2.5 今年至今均值走势 / PM2.5 mean so far, over the year",
        "每个评估日的今年至今 PM2.5 均值与目标（虚线）。The PM2.5 mean so far at each evaluation date and the target.",
        "conµgm3",
        vec![
            iq(
                "A",
                "SELECT last(\"value\") AS \"今年至今 so far\" FROM \"air_target\" WHERE \"metric\" = 'pm25_annual_mean' \
                 AND \"value\" >= 0 AND $timeFilter GROUP BY time(1d), \"target\"::tag fill(none)",
                "time_series",
                Some("$tag_target $col"),
            ),
            iq(
                "B",
                "SELECT last(\"target\"::field) AS \"目标 target\" FROM \"air_target\" WHERE \"metric\" = 'pm25_annual_mean' \
                 AND $timeFilter GROUP BY time(1d), \"target\"::tag fill(none)",
                "time_series",
                Some("$tag_target $col"),
            ),
        ],
    );
    pm["fieldConfig"]["overrides"] = json!([{
        "matcher": {"id": "byRegexp", "options": ".*目标 target.*"},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
    }]);
    l.add(12, 8, pm);
    let mut gd = timeseries(
        "优良天数比例走势 / Good-day ratio so far, over the year",
        "每个评估日的今年至今优良天数比例。The good-day ratio so far at each evaluation date.",
        "percent",
        vec![iq(
            "A",
            "SELECT last(\"value\") FROM \"air_target\" WHERE \"metric\" = 'good_day_ratio' AND \"value\" >= 0 \
             AND $timeFilter GROUP BY time(1d), \"target\"::tag fill(none)",
            "time_series",
            Some("$tag_target"),
        )],
    );
    gd["fieldConfig"]["defaults"]["max"] = json!(100);
    l.add(12, 8, gd);
    // Water: one query per target of config/targets.toml whose group has sections.
    let refs = ["A", "B", "C", "D", "E", "F", "G", "H"];
    let mut tq = Vec::new();
    let mut overrides = Vec::new();
    let mut lines = String::new();
    for (i, w) in water.iter().take(refs.len()).enumerate() {
        let name = format!("{} ({}, 目标 target {}%)", w.name, w.year, w.target);
        tq.push(iq(
            refs[i],
            &format!(
                "SELECT last(\"{}\") AS \"{}\" FROM \"water_group\" WHERE \"group\" = '{}' \
                 AND \"period\" = 'ytd' AND $timeFilter",
                w.field,
                name.replace('"', "'"),
                w.group
            ),
            "time_series",
            None,
        ));
        overrides.push(json!({
            "matcher": {"id": "byName", "options": name.replace('"', "'")},
            "properties": [{"id": "thresholds", "value": {"mode": "absolute", "steps": [
                {"color": "red", "value": null}, {"color": "green", "value": w.target}]}}],
        }));
        lines.push_str(&format!(
            "\n- {} ({}): {} ≥ {}%",
            w.id, w.group, w.field, w.target
        ));
    }
    if !tq.is_empty() {
        let mut bars = json!({
            "type": "bargauge",
            "title": "水质目标达成比例（年初至今） / Water attainment shares vs targets, year to date",
            "description": format!(
                "water_group（period = ytd）的达标比例（group_compliance → meeting_target_pct）或优Ⅲ比例（group_good_share → good_pct），\
                 对照 config/targets.toml 的目标（生成时读入，改目标后重新生成）：绿 = 达到目标。\n\
                 water_group (period = ytd) shares against the targets of config/targets.toml (read when the dashboards \
                 are generated: regenerate after changing them); green = target met.{lines}"
            ),
            "datasource": influx(),
            "targets": tq,
            "timeFrom": "1y",
            "fieldConfig": {
                "defaults": {"unit": "percent", "min": 0, "max": 100,
                             "thresholds": thresholds_single("blue"),
                             "color": {"mode": "thresholds"}},
                "overrides": overrides,
            },
            "options": {"reduceOptions": reduce_last(), "orientation": "horizontal",
                        "displayMode": "basic", "showUnfilled": true, "valueMode": "color",
                        "namePlacement": "auto", "sizing": "auto", "minVizHeight": 16,
                        "minVizWidth": 8, "maxVizHeight": 300,
                        "legend": legend()},
        });
        bars["options"]["legend"]["showLegend"] = json!(false);
        l.add(24, 8, bars);
    }
    dashboard(
        "envmon-targets",
        "目标考核 / Targets",
        "PM2.5、优良天数比例与水质目标的年度进度。Year-to-date progress on the PM2.5, good-day and water targets.",
        "now/y",
        l,
        vec![],
        vec![],
    )
}

// ---------------------------------------------------------------------------------------------
// 5. Data quality
// ---------------------------------------------------------------------------------------------

/// Alerts of the alert engine (measurement `alerts`, status = firing) as annotations.
/// `scope` only names the annotation in the dashboard.
fn alerts_annotation(scope: &str) -> Value {
    let filter = match scope {
        "air" => " AND \"kind\" =~ /^air/",
        "water" => " AND \"kind\" = 'water_auto'",
        "station" => " AND \"station\" =~ /^$station$/",
        _ => "",
    };
    json!({
        "name": "告警 / Alerts",
        "datasource": influx(),
        "enable": true,
        "hide": false,
        "iconColor": "red",
        "target": {
            "refId": "Anno",
            "rawQuery": true,
            "resultFormat": "table",
            "fromAnnotations": true,
            "query": format!(
                "SELECT \"title_zh\", \"message_zh\", \"message_en\", \"level\", \"rule\", \"station\" \
                 FROM \"alerts\" WHERE \"status\" = 'firing'{filter} AND $timeFilter"
            ),
            "textColumn": "message_zh",
            "titleColumn": "title_zh",
            "tagsColumn": "level,rule,station",
        },
    })
}

fn quality() -> Value {
    let mut l = Layout::new();
    l.add(
        6,
        6,
        stat(
            "在线站点 / Stations online",
            "最近 15 分钟有数据到达的站点数（envmon_stations_online，按到达时间）。Stations that sent data in the last 15 minutes.",
            "none",
            thresholds_single("blue"),
            vec![pq("A", "sum(envmon_stations_online)", "在线 online")],
        ),
    );
    l.add(
        6,
        6,
        stat(
            "死信（时间范围内） / Dead-letters in range",
            "时间范围内进入死信的消息与读数（envmon_deadletter_total）。Payloads and readings dead-lettered in the time range.",
            "none",
            json!({"mode": "absolute", "steps": [{"color": "green", "value": null},
                                                 {"color": "orange", "value": 1}]}),
            vec![pq(
                "A",
                "sum(increase(envmon_deadletter_total[$__range])) or vector(0)",
                "死信 dead-letters",
            )],
        ),
    );
    let mut dl = timeseries(
        "死信（按原因） / Dead-letters by reason",
        "每分钟进入死信的条数，按原因（envmon_deadletter_total{reason}）；原因列表见 docs/formats.md。\n\
         Dead-lettered per minute, by reason; the reasons are listed in docs/formats.md.",
        "short",
        vec![pq(
            "A",
            "sum by (reason) (increase(envmon_deadletter_total[$__rate_interval])) or vector(0)",
            "{{reason}}",
        )],
    );
    dl["fieldConfig"]["defaults"]["custom"]["drawStyle"] = json!("bars");
    l.add(12, 6, dl);
    let mut cap = table(
        "数据获取率（近 24 小时） / Data capture rate, last 24 h",
        "临时算法：每站 24 小时内收到的小时值个数 ÷ 应有个数（国控/省控空气站每小时 1 个 = 24，登记表 expected_interval_s = 3600；\
         水站每 4 小时 1 个 = 6，expected_interval_s = 14400），用 InfluxQL count()。\
         将由后续议题的数据获取率测量（data capture）替换。\n\
         Interim: readings received per station in 24 h over the number expected (hourly air stations 24, \
         registry expected_interval_s = 3600; 4-hourly water stations 6, expected_interval_s = 14400), with InfluxQL count(). \
         Will be replaced by the data-capture-rate measurement of a later issue.",
        vec![
            iq(
                "A",
                "SELECT count(\"pm25\") / 24 * 100 AS \"获取率 capture %\" FROM \"air\" WHERE \"kind\" =~ /^air_(national|provincial)$/ \
                 AND \"interval\" = 'hour' AND $timeFilter GROUP BY \"station\"",
                "table",
                None,
            ),
            iq(
                "B",
                "SELECT count(\"ph\") / 6 * 100 AS \"获取率 capture %\" FROM \"water\" WHERE $timeFilter GROUP BY \"station\"",
                "table",
                None,
            ),
        ],
        vec![colour_column(
            "获取率 capture %",
            // GB 3095 Table 4: a valid 24-hour mean needs >= 20 valid hourly values
            // (docs/indicators.md, validity): 20 / 24 = 83.33 %.
            json!({"mode": "absolute", "steps": [{"color": "red", "value": null},
                                                 {"color": "green", "value": 83.33}]}),
            None,
        )],
    );
    cap["timeFrom"] = json!("24h");
    cap["fieldConfig"]["defaults"]["unit"] = json!("percent");
    cap["transformations"] = json!([{"id": "merge", "options": {}}]);
    l.add(12, 10, cap);
    let mut last = table(
            "各站最后数据时间 / Last data per station",
            "时间范围内每站最新一条读数的时间（air 与 water）。Time of each station's newest reading in the range.",
            vec![
                iq(
                    "A",
                    "SELECT last(\"pm25\") AS \"PM2.5\" FROM \"air\" WHERE $timeFilter GROUP BY \"station\", \"kind\"",
                    "table",
                    None,
                ),
                iq(
                    "B",
                    "SELECT last(\"ph\") AS \"pH\" FROM \"water\" WHERE $timeFilter GROUP BY \"station\"",
                    "table",
                    None,
                ),
            ],
            vec![],
        );
    // One table of air and water stations.
    last["transformations"] = json!([{"id": "merge", "options": {}}]);
    l.add(12, 10, last);
    let mut counts = timeseries(
        "每小时读数条数 / Readings stored per hour",
        "InfluxDB 中每小时的读数点数（air、water）。Points per hour in InfluxDB (air, water).",
        "short",
        vec![
            iq(
                "A",
                "SELECT count(\"pm25\") AS \"air\" FROM \"air\" WHERE $timeFilter GROUP BY time(1h) fill(0)",
                "time_series",
                None,
            ),
            iq(
                "B",
                "SELECT count(\"ph\") AS \"water\" FROM \"water\" WHERE $timeFilter GROUP BY time(1h) fill(0)",
                "time_series",
                None,
            ),
        ],
    );
    counts["fieldConfig"]["defaults"]["custom"]["drawStyle"] = json!("bars");
    l.add(24, 7, counts);
    dashboard(
        "envmon-quality",
        "数据质量 / Data quality",
        "在线站点、数据获取率、死信原因、告警。Stations online, data capture, dead-letters, alerts.",
        "now-24h",
        l,
        vec![],
        vec![alerts_annotation("all")],
    )
}

// ---------------------------------------------------------------------------------------------
// 6. envmon itself
// ---------------------------------------------------------------------------------------------

fn service() -> Value {
    let mut l = Layout::new();
    let up = json!({"mode": "absolute", "steps": [{"color": "red", "value": null},
                                                  {"color": "green", "value": 1}]});
    let mut mq = stat(
        "MQTT 连接 / MQTT connected",
        "1 = 已连接并订阅（envmon_mqtt_connected）。1 = connected to the broker.",
        "none",
        up.clone(),
        vec![pq("A", "min(envmon_mqtt_connected)", "MQTT")],
    );
    mq["fieldConfig"]["defaults"]["mappings"] = json!([{"type": "value", "options": {
        "0": {"text": "断开 down", "index": 0}, "1": {"text": "正常 up", "index": 1}}}]);
    l.add(6, 5, mq.clone());
    let mut ix = mq;
    ix["title"] = json!("InfluxDB 可写 / InfluxDB up");
    ix["description"] = json!(
        "1 = 最近一次写入成功（envmon_influxdb_up）。1 = the last contact with InfluxDB succeeded."
    );
    ix["targets"] = json!([pq("A", "min(envmon_influxdb_up)", "InfluxDB")]);
    l.add(6, 5, ix);
    l.add(
        6,
        5,
        stat(
            "待确认消息 / Acks pending",
            "已收到、尚未确认（PUBACK）的 MQTT 消息（envmon_acks_pending）：InfluxDB 存下之前不确认。\
             Messages received and not yet acknowledged; they are acked only once InfluxDB stored them.",
            "none",
            thresholds_single("blue"),
            vec![pq("A", "sum(envmon_acks_pending)", "pending")],
        ),
    );
    l.add(
        6,
        5,
        stat(
            "在线站点 / Stations online",
            "最近 15 分钟有数据的站点（envmon_stations_online）。Stations heard from in the last 15 minutes.",
            "none",
            thresholds_single("blue"),
            vec![pq("A", "sum(envmon_stations_online)", "online")],
        ),
    );
    l.add(
        12,
        8,
        timeseries(
            "消息速率 / Messages per second",
            "收到的消息（按来源）与写入的读数（按测量）每秒。Payloads received per source and readings written per measurement, per second.",
            "reqps",
            vec![
                pq(
                    "A",
                    "sum by (source) (rate(envmon_messages_received_total[$__rate_interval]))",
                    "收到 received {{source}}",
                ),
                pq(
                    "B",
                    "sum by (measurement) (rate(envmon_readings_written_total[$__rate_interval]))",
                    "写入 written {{measurement}}",
                ),
                pq(
                    "C",
                    "sum(rate(envmon_indicator_points_written_total[$__rate_interval]))",
                    "指标点 indicator points",
                ),
            ],
        ),
    );
    l.add(
        12,
        8,
        timeseries(
            "写入延迟 / Write latency",
            "InfluxDB 写请求耗时（含重试）p50/p99（envmon_write_batch_seconds），以及从收到到可确认的时间 p99（envmon_ingest_latency_seconds）。\
             InfluxDB write request seconds (retries included) p50/p99, and receipt-to-ack-allowed p99.",
            "s",
            vec![
                pq(
                    "A",
                    "histogram_quantile(0.5, sum by (le) (rate(envmon_write_batch_seconds_bucket[$__rate_interval])))",
                    "写入 write p50",
                ),
                pq(
                    "B",
                    "histogram_quantile(0.99, sum by (le) (rate(envmon_write_batch_seconds_bucket[$__rate_interval])))",
                    "写入 write p99",
                ),
                pq(
                    "C",
                    "histogram_quantile(0.99, sum by (le) (rate(envmon_ingest_latency_seconds_bucket[$__rate_interval])))",
                    "收到→确认 ingest p99",
                ),
            ],
        ),
    );
    l.add(
        12,
        8,
        timeseries(
            "积压 / Backlog (acks pending; spool depth later)",
            "待确认的 MQTT 消息（envmon_acks_pending）。磁盘缓存（spool）深度指标将在后续议题中加入并替换此处。\n\
             MQTT messages waiting for their ack (envmon_acks_pending). The disk-spool depth metric of a later issue \
             will replace it here.",
            "short",
            vec![pq("A", "sum(envmon_acks_pending)", "待确认 acks pending")],
        ),
    );
    l.add(
        12,
        8,
        timeseries(
            "错误 / Errors",
            "InfluxDB 写入失败（按类别）、MQTT 连接错误、死信写入失败，每秒。\
             Failed InfluxDB writes by kind, MQTT connection errors, dead-letter write errors, per second.",
            "short",
            vec![
                pq(
                    "A",
                    "sum by (kind) (rate(envmon_write_errors_total[$__rate_interval])) or vector(0)",
                    "写入 write {{kind}}",
                ),
                pq(
                    "B",
                    "sum(rate(envmon_mqtt_connection_errors_total[$__rate_interval]))",
                    "MQTT",
                ),
                pq(
                    "C",
                    "sum(rate(envmon_deadletter_write_errors_total[$__rate_interval]))",
                    "死信写入 dead-letter write",
                ),
            ],
        ),
    );
    dashboard(
        "envmon-service",
        "envmon 运行状态 / envmon service",
        "envmon 自身指标（Prometheus，/metrics）。envmon's own metrics (Prometheus, /metrics).",
        "now-6h",
        l,
        vec![],
        vec![],
    )
}

/// All dashboards. `water` = the water targets to draw (see [`water_target_lines`]).
pub fn dashboards(water: &[WaterTargetLine]) -> Vec<Generated> {
    [
        ("air-overview.json", air_overview()),
        ("station-detail.json", station_detail()),
        ("water-sections.json", water_sections()),
        ("targets.json", targets(water)),
        ("data-quality.json", quality()),
        ("envmon-service.json", service()),
    ]
    .into_iter()
    .map(|(f, json)| Generated {
        file: f.to_string(),
        json,
    })
    .collect()
}

/// The water targets of a targets file whose group has at least one station in the registry
/// (a group without sections has no `water_group` points and would draw an empty bar).
pub fn water_target_lines(
    targets: &envmon::indicators::targets::Targets,
    registry: &envmon::registry::Registry,
) -> Vec<WaterTargetLine> {
    use envmon::indicators::targets::WaterMetric;
    let mut out = Vec::new();
    for t in &targets.water {
        let field = match t.metric {
            WaterMetric::GroupCompliance => "meeting_target_pct",
            WaterMetric::GroupGoodShare => "good_pct",
            _ => continue,
        };
        let (Some(group), Some(target)) = (t.group.clone(), t.target) else {
            continue;
        };
        if !registry
            .stations()
            .iter()
            .any(|s| s.groups.contains(&group))
        {
            continue;
        }
        out.push(WaterTargetLine {
            id: t.id.clone(),
            name: t.name.clone().unwrap_or_else(|| t.id.clone()),
            group,
            year: t.year,
            field,
            target,
        });
    }
    out
}

/// The gazetteer of the station map: Grafana's "worldmap" point format (an array of
/// `{key, latitude, longitude, name}`), one entry per station of the registry.
pub fn gazetteer(registry: &envmon::registry::Registry) -> Value {
    Value::Array(
        registry
            .stations()
            .iter()
            .map(|s| {
                json!({
                    "key": s.id,
                    "latitude": s.lat,
                    "longitude": s.lon,
                    "name": format!("{} {}", s.name, s.name_en),
                })
            })
            .collect(),
    )
}
