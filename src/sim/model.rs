//! The physical model: what a station would measure at a time, as pure functions of
//! (seed, station, time). No state, no I/O: the engine asks for any period in any order.
//!
//! - **Weather** is regional: a repeating synoptic cycle (6 days, phase from the seed) of a
//!   clean day after a cold front, about four and a half days of stagnation building up, and a
//!   front that clears the air within hours; each cycle's intensity comes from the seed.
//! - **Air** at a point = regional level × boundary-layer diurnal cycle × rush-hour traffic ×
//!   a local field. The local field is a distance-weighted blend of smooth noise anchored on a
//!   ~15 km grid, so neighbouring stations are correlated and far ones less so. NO2 peaks at the
//!   morning and evening rush; O3 peaks mid-afternoon and is titrated by NO2 (anti-correlated).
//! - **Micro-stations** measure the truth at their own location through a device with a gain and
//!   offset of its own, a drift that grows until the quarterly calibration resets it, a humidity
//!   effect on the optical PM sensor, and more noise.
//! - **Water** sections follow a profile by water body (Taihu, other lakes, reservoirs, the
//!   Yangtze, other rivers by target class) with a seasonal water temperature, summer algae in
//!   lakes (chla, TP), DO and pH following photosynthesis over the day.
//!
//! Magnitudes are tuned to Suzhou in November: PM2.5 mostly 20–80 µg/m³, episodes to ~150.

use std::f64::consts::PI;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::noise::{fractal, gauss, hash, hash_str, mix, unit, vnoise};
use crate::model::{BodyType, StationKind};
use crate::registry::Station;

const DAY: f64 = 86_400.0;
const HOUR: f64 = 3_600.0;

/// One simulated parameter value with its unit and the decimals it is reported with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub param: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub decimals: u8,
}

/// Round to `decimals` places (the reporting resolution).
pub fn round_to(v: f64, decimals: u8) -> f64 {
    let m = 10f64.powi(i32::from(decimals));
    (v * m).round() / m
}

fn val(param: &'static str, value: f64, unit: &'static str, decimals: u8) -> Value {
    Value {
        param,
        value: round_to(value, decimals),
        unit,
        decimals,
    }
}

/// Parameters an official (national/provincial) air station reports.
pub const AIR_PARAMS: &[&str] = &[
    "pm25",
    "pm10",
    "so2",
    "no2",
    "o3",
    "co",
    "temp",
    "rh",
    "pressure",
    "wind_speed",
    "wind_dir",
];
/// Parameters a micro-station reports.
pub const MICRO_PARAMS: &[&str] = &["pm25", "pm10", "no2", "o3", "co", "temp", "rh"];
/// Parameters a surface-water automatic station reports.
pub const WATER_PARAMS: &[&str] = &[
    "ph",
    "do",
    "codmn",
    "nh3n",
    "tp",
    "tn",
    "water_temp",
    "conductivity",
    "turbidity",
    "chla",
];

/// The parameters a station of this kind reports.
pub fn params_of(kind: StationKind) -> &'static [&'static str] {
    match kind {
        StationKind::AirNational | StationKind::AirProvincial => AIR_PARAMS,
        StationKind::AirMicro => MICRO_PARAMS,
        StationKind::WaterAuto => WATER_PARAMS,
    }
}

/// Regional weather at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weather {
    /// Stagnation 0 (just after a front) … 1 (peak of the strongest episode).
    pub stagnation: f64,
    pub temp: f64,
    pub rh: f64,
    pub pressure: f64,
    pub wind_speed: f64,
    pub wind_dir: f64,
}

const CYCLE: f64 = 6.0 * DAY;

/// Stagnation index of the synoptic cycle at unix time `t`.
pub fn stagnation(seed: u64, t: f64) -> f64 {
    let phase = unit(hash(&[seed, 0x5EA5])) * CYCLE;
    let x = t + phase;
    let cycle = (x / CYCLE).floor();
    let u = x - cycle * CYCLE;
    // Intensity of this cycle's episode, and of the previous one (still clearing at u = 0).
    let intensity = |c: f64| 0.5 + 0.5 * unit(hash(&[seed, 0xE915, c as i64 as u64]));
    let build_end = 5.5 * DAY;
    let floor = 0.05;
    let peak = |c: f64| floor + (1.0 - floor) * intensity(c);
    if u < DAY {
        // After the front of the previous cycle: finish clearing, then clean.
        let prev_peak = peak(cycle - 1.0);
        let since = u + (CYCLE - build_end);
        floor + (prev_peak - floor) * (-since / (3.0 * HOUR)).exp()
    } else if u < build_end {
        let r = (u - DAY) / (build_end - DAY);
        floor + (peak(cycle) - floor) * r.powf(1.3)
    } else {
        let since = u - build_end;
        floor + (peak(cycle) - floor) * (-since / (3.0 * HOUR)).exp()
    }
}

fn gbump(h: f64, mu: f64, sigma: f64) -> f64 {
    (-0.5 * ((h - mu) / sigma).powi(2)).exp()
}

/// Traffic: morning (08:00) and evening (18:30) rush hours.
pub fn rush(h: f64) -> f64 {
    gbump(h, 8.0, 1.3) + 1.1 * gbump(h, 18.5, 1.6)
}

/// Photochemistry, lagging the sun: 0 at night, peak at 14:30.
fn o3_sun(h: f64) -> f64 {
    if h > 9.0 && h < 20.0 {
        (PI * (h - 9.0) / 11.0).sin()
    } else {
        0.0
    }
}

/// Daylight (November: about 06:30–17:30).
fn sun(h: f64) -> f64 {
    if h > 6.5 && h < 17.5 {
        (PI * (h - 6.5) / 11.0).sin()
    } else {
        0.0
    }
}

/// Boundary layer: shallow at night (pollutants accumulate), deep mid-afternoon.
fn boundary_layer(h: f64) -> f64 {
    1.0 + 0.22 * (2.0 * PI * (h - 3.0) / 24.0).cos()
}

/// Regional weather at unix time `t` with local hour `h`.
pub fn weather(seed: u64, t: f64, h: f64) -> Weather {
    let s = stagnation(seed, t);
    let n = |k: u64, scale: f64| fractal(hash(&[seed, k]), t, scale);
    let diurnal = (2.0 * PI * (h - 8.0) / 24.0).sin(); // max 14:00, min 02:00
    let temp = 12.0 + 6.0 * (s - 0.3) + 4.0 * diurnal + 1.5 * n(1, DAY);
    let rh = (58.0 + 28.0 * s - 14.0 * diurnal + 8.0 * n(2, 12.0 * HOUR)).clamp(22.0, 98.0);
    let pressure = 1028.0 - 10.0 * s + 2.5 * n(3, DAY);
    let wind_speed =
        (1.0 + 4.0 * (1.0 - s).powi(2) + 0.6 * sun(h) + 0.7 * n(4, 6.0 * HOUR)).clamp(0.2, 12.0);
    let base_dir = if s < 0.25 { 340.0 } else { 125.0 };
    let wind_dir = (base_dir + 40.0 * n(5, 4.0 * HOUR)).rem_euclid(360.0);
    Weather {
        stagnation: s,
        temp,
        rh,
        pressure,
        wind_speed,
        wind_dir,
    }
}

/// Seasonal surface water temperature (°C) by day of year: ~7 °C late January, ~29 °C late July.
pub fn seasonal_water_temp(doy: u32) -> f64 {
    18.0 + 11.0 * (2.0 * PI * (f64::from(doy) - 210.0) / 365.0).cos()
}

/// A micro-station's device characteristics against the truth at its location.
#[derive(Debug, Clone, PartialEq)]
pub struct MicroDevice {
    /// Index (in the simulator's station list) of the nearest official air station.
    pub nearest_official: Option<usize>,
    /// Id of that station.
    pub nearest_official_id: Option<String>,
    /// PM gain right after calibration.
    pub pm_gain: f64,
    /// PM offset, µg/m³.
    pub pm_offset: f64,
    /// Gain drift per day since the last calibration (signed).
    pub drift_per_day: f64,
    /// Calibration phase (seconds into the 90-day calibration cycle at t = 0).
    pub cal_phase: f64,
    /// Gas sensor gain and offset (NO2, O3).
    pub gas_gain: f64,
    pub gas_offset: f64,
}

const CAL_CYCLE: f64 = 90.0 * DAY;

impl MicroDevice {
    /// Effective PM gain at unix time `t` (drift since the last quarterly calibration).
    pub fn pm_gain_at(&self, t: f64) -> f64 {
        let days = (t + self.cal_phase).rem_euclid(CAL_CYCLE) / DAY;
        self.pm_gain * (1.0 + self.drift_per_day * days)
    }
}

/// Water profile of a section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaterProfile {
    pub lake_like: bool,
    pub ph: f64,
    /// Organic load lowering DO below saturation.
    pub codmn: f64,
    pub nh3n: f64,
    pub tp: f64,
    pub tn: f64,
    pub conductivity: f64,
    pub turbidity: f64,
    pub chla_winter: f64,
    pub chla_summer: f64,
}

fn water_profile(st: &Station) -> WaterProfile {
    let body = st.water_body.as_deref().unwrap_or("");
    let kind = st.body_type.unwrap_or(BodyType::River);
    let class = st.target_class.map(|c| c.0).unwrap_or(3);
    if body.contains("太湖") {
        WaterProfile {
            lake_like: true,
            ph: 8.1,
            codmn: 4.2,
            nh3n: 0.15,
            tp: 0.07,
            tn: 1.3,
            conductivity: 480.0,
            turbidity: 45.0,
            chla_winter: 6.0,
            chla_summer: 45.0,
        }
    } else if body.contains("长江") {
        WaterProfile {
            lake_like: false,
            ph: 7.9,
            codmn: 2.2,
            nh3n: 0.1,
            tp: 0.07,
            tn: 1.8,
            conductivity: 330.0,
            turbidity: 45.0,
            chla_winter: 1.5,
            chla_summer: 3.0,
        }
    } else {
        match kind {
            BodyType::Reservoir => WaterProfile {
                lake_like: true,
                ph: 7.8,
                codmn: 2.8,
                nh3n: 0.12,
                tp: 0.03,
                tn: 1.0,
                conductivity: 380.0,
                turbidity: 8.0,
                chla_winter: 3.0,
                chla_summer: 15.0,
            },
            BodyType::Lake => WaterProfile {
                lake_like: true,
                ph: 7.9,
                codmn: 4.6,
                nh3n: 0.25,
                tp: 0.06,
                tn: 1.5,
                conductivity: 520.0,
                turbidity: 25.0,
                chla_winter: 5.0,
                chla_summer: 35.0,
            },
            BodyType::River if class <= 2 => WaterProfile {
                lake_like: false,
                ph: 7.7,
                codmn: 3.0,
                nh3n: 0.2,
                tp: 0.08,
                tn: 1.9,
                conductivity: 450.0,
                turbidity: 25.0,
                chla_winter: 2.0,
                chla_summer: 6.0,
            },
            BodyType::River => WaterProfile {
                lake_like: false,
                ph: 7.6,
                codmn: 3.8,
                nh3n: 0.35,
                tp: 0.11,
                tn: 2.2,
                conductivity: 520.0,
                turbidity: 30.0,
                chla_winter: 3.0,
                chla_summer: 10.0,
            },
        }
    }
}

/// Per-station static model data, computed once.
#[derive(Debug, Clone)]
pub struct StationModel {
    pub station: Arc<Station>,
    pub key: u64,
    /// (anchor key, weight) of the local spatial field; weights sum to 1.
    anchors: Vec<(u64, f64)>,
    /// Site factors: PM and NO2 (traffic exposure).
    site_pm: f64,
    site_no2: f64,
    pub micro: Option<MicroDevice>,
    pub water: Option<WaterProfile>,
}

/// Anchor spacing of the local field (degrees, ~15 km) and its kernel width (km).
const ANCHOR_DEG: f64 = 0.15;
const KERNEL_KM: f64 = 12.0;

fn km_between(a: (f64, f64), b: (f64, f64)) -> f64 {
    let dlat = (a.0 - b.0) * 111.2;
    let dlon = (a.1 - b.1) * 111.2 * (a.0.to_radians()).cos();
    (dlat * dlat + dlon * dlon).sqrt()
}

/// Build the models of all stations.
pub fn build_models(seed: u64, stations: &[Arc<Station>]) -> Vec<StationModel> {
    let official: Vec<usize> = stations
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind.is_official_air())
        .map(|(i, _)| i)
        .collect();
    stations
        .iter()
        .map(|st| {
            let key = hash(&[seed, hash_str(&st.id)]);
            let (ilat, ilon) = (
                (st.lat / ANCHOR_DEG).floor() as i64,
                (st.lon / ANCHOR_DEG).floor() as i64,
            );
            let mut anchors = Vec::with_capacity(16);
            for dy in -1..=2 {
                for dx in -1..=2 {
                    let (alat, alon) = (
                        (ilat + dy) as f64 * ANCHOR_DEG,
                        (ilon + dx) as f64 * ANCHOR_DEG,
                    );
                    let d = km_between((st.lat, st.lon), (alat, alon));
                    let w = (-0.5 * (d / KERNEL_KM).powi(2)).exp();
                    let akey = hash(&[seed, 0xA11C, (ilat + dy) as u64, (ilon + dx) as u64]);
                    anchors.push((akey, w));
                }
            }
            let total: f64 = anchors.iter().map(|a| a.1).sum::<f64>().max(1e-12);
            for a in &mut anchors {
                a.1 /= total;
            }
            let urban = matches!(st.district.as_str(), "Gusu" | "SIP" | "Huqiu" | "Wuzhong");
            let site_pm = 0.92 + 0.16 * unit(mix(key ^ 0x11));
            let site_no2 = (0.8 + 0.4 * unit(mix(key ^ 0x12))) * if urban { 1.2 } else { 0.95 };
            let micro = (st.kind == StationKind::AirMicro).then(|| {
                let nearest = official.iter().copied().min_by(|&a, &b| {
                    let da = km_between((st.lat, st.lon), (stations[a].lat, stations[a].lon));
                    let db = km_between((st.lat, st.lon), (stations[b].lat, stations[b].lon));
                    da.total_cmp(&db)
                });
                let drift_mag = 0.0008 + 0.0017 * unit(mix(key ^ 0x23));
                MicroDevice {
                    nearest_official: nearest,
                    nearest_official_id: nearest.map(|i| stations[i].id.clone()),
                    pm_gain: 0.85 + 0.45 * unit(mix(key ^ 0x21)),
                    pm_offset: -3.0 + 8.0 * unit(mix(key ^ 0x22)),
                    drift_per_day: if mix(key ^ 0x24) & 1 == 0 {
                        drift_mag
                    } else {
                        -drift_mag
                    },
                    cal_phase: unit(mix(key ^ 0x25)) * CAL_CYCLE,
                    gas_gain: 0.75 + 0.6 * unit(mix(key ^ 0x26)),
                    gas_offset: -6.0 + 12.0 * unit(mix(key ^ 0x27)),
                }
            });
            let water = (st.kind == StationKind::WaterAuto).then(|| water_profile(st));
            StationModel {
                station: Arc::clone(st),
                key,
                anchors,
                site_pm,
                site_no2,
                micro,
                water,
            }
        })
        .collect()
}

fn local_hour_doy(st: &Station, t: DateTime<Utc>) -> (f64, u32) {
    let l = t.with_timezone(&st.timezone);
    (
        f64::from(l.hour()) + f64::from(l.minute()) / 60.0 + f64::from(l.second()) / 3600.0,
        l.ordinal(),
    )
}

/// True air concentrations at a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AirTruth {
    pub pm25: f64,
    pub pm10: f64,
    pub so2: f64,
    pub no2: f64,
    pub o3: f64,
    pub co: f64,
}

impl StationModel {
    fn local_field(&self, t: f64, scale: f64, salt: u64) -> f64 {
        self.anchors
            .iter()
            .map(|(k, w)| w * fractal(mix(k ^ salt), t, scale))
            .sum()
    }

    /// The true air concentrations at this station's location.
    pub fn air_truth(&self, seed: u64, t: f64, h: f64, wx: &Weather) -> AirTruth {
        let s = wx.stagnation;
        let regional = fractal(hash(&[seed, 0x9E61]), t, 18.0 * HOUR);
        let local = self.local_field(t, 8.0 * HOUR, 0x10CA);
        let white = 0.5 * vnoise(self.key ^ 0x77, t, 1.5 * HOUR);
        let pm_reg = 16.0 + 115.0 * s.powf(1.5);
        let pm25 = pm_reg
            * boundary_layer(h)
            * (1.0 + 0.12 * rush(h))
            * (0.25 * regional + 0.2 * local + 0.08 * white).exp()
            * self.site_pm;
        let no2_local = self.local_field(t, 6.0 * HOUR, 0x2002);
        let no2 = (18.0 + 30.0 * s)
            * self.site_no2
            * (0.7 + 0.55 * rush(h))
            * (1.0 + 0.15 * (2.0 * PI * (h - 3.0) / 24.0).cos())
            * (1.0 - 0.35 * sun(h))
            * (0.2 * no2_local + 0.1 * white).exp();
        let o3_bg = 55.0 + 20.0 * fractal(hash(&[seed, 0x0303]), t, DAY) - 15.0 * s;
        let o3 = (o3_bg * (0.35 + 1.3 * o3_sun(h)) - 0.55 * (no2 - 25.0)).max(3.0);
        let pm10 = pm25 * (1.45 + 0.15 * local) + 12.0 + 4.0 * white;
        let so2 = (6.0 + 4.0 * s + 2.0 * local + white).max(2.0);
        let co = 0.45 + 0.0075 * pm25 + 0.1 * rush(h) + 0.05 * local;
        AirTruth {
            pm25: pm25.max(1.0),
            pm10: pm10.max(pm25 + 1.0),
            so2,
            no2: no2.max(2.0),
            o3,
            co: co.max(0.1),
        }
    }

    /// Values this station reports for the period whose representative instant is `t`.
    pub fn values(&self, seed: u64, t: DateTime<Utc>) -> Vec<Value> {
        let (h, doy) = local_hour_doy(&self.station, t);
        let ts = t.timestamp() as f64;
        let wx = weather(seed, ts, h);
        let met_noise = |salt: u64| gauss(hash(&[self.key, salt, t.timestamp() as u64]));
        match self.station.kind {
            StationKind::AirNational | StationKind::AirProvincial => {
                let a = self.air_truth(seed, ts, h, &wx);
                vec![
                    val("pm25", a.pm25, "ug/m3", 0),
                    val("pm10", a.pm10, "ug/m3", 0),
                    val("so2", a.so2, "ug/m3", 0),
                    val("no2", a.no2, "ug/m3", 0),
                    val("o3", a.o3, "ug/m3", 0),
                    val("co", a.co, "mg/m3", 1),
                    val("temp", wx.temp + 0.2 * met_noise(1), "degC", 1),
                    val("rh", (wx.rh + met_noise(2)).clamp(5.0, 100.0), "%", 0),
                    val("pressure", wx.pressure + 0.3 * met_noise(3), "hPa", 1),
                    val(
                        "wind_speed",
                        (wx.wind_speed * (1.0 + 0.1 * met_noise(4))).max(0.0),
                        "m/s",
                        1,
                    ),
                    val(
                        "wind_dir",
                        (wx.wind_dir + 10.0 * met_noise(5)).rem_euclid(360.0),
                        "deg",
                        0,
                    ),
                ]
            }
            StationKind::AirMicro => {
                let a = self.air_truth(seed, ts, h, &wx);
                let d = self.micro.as_ref();
                let gain = d.map(|d| d.pm_gain_at(ts)).unwrap_or(1.0);
                let off = d.map(|d| d.pm_offset).unwrap_or(0.0);
                let (gg, go) = d.map(|d| (d.gas_gain, d.gas_offset)).unwrap_or((1.0, 0.0));
                let rh = (wx.rh + 3.0 * met_noise(2)).clamp(5.0, 100.0);
                // Optical PM sensors over-read in humid air (hygroscopic growth).
                let humid = 1.0 + 0.3 * ((rh - 75.0) / 25.0).clamp(0.0, 1.0).powi(2);
                let n = |salt: u64| 1.0 + 0.06 * met_noise(salt);
                vec![
                    val(
                        "pm25",
                        (a.pm25 * gain * humid * n(11) + off).max(0.0),
                        "ug/m3",
                        0,
                    ),
                    val(
                        "pm10",
                        (a.pm10 * gain * humid * n(12) + off).max(0.0),
                        "ug/m3",
                        0,
                    ),
                    val("no2", (a.no2 * gg * n(13) + go).max(0.0), "ug/m3", 0),
                    val("o3", (a.o3 * gg * n(14) - go).max(0.0), "ug/m3", 0),
                    val("co", (a.co * gg * n(15)).max(0.0), "mg/m3", 1),
                    val("temp", wx.temp + 0.8 + 0.4 * met_noise(1), "degC", 1),
                    val("rh", rh, "%", 0),
                ]
            }
            StationKind::WaterAuto => self.water_values(seed, ts, h, doy, &wx),
        }
    }

    fn water_values(&self, seed: u64, t: f64, h: f64, doy: u32, wx: &Weather) -> Vec<Value> {
        let p = self.water.unwrap_or_else(|| water_profile(&self.station));
        let n = |salt: u64, scale: f64| fractal(mix(self.key ^ salt), t, scale);
        let diurnal_amp = if p.lake_like { 0.8 } else { 0.3 };
        let wt = seasonal_water_temp(doy)
            + 0.8 * n(1, 3.0 * DAY)
            + diurnal_amp * (2.0 * PI * (h - 10.0) / 24.0).sin();
        let season = ((wt - 5.0) / 25.0).clamp(0.0, 1.0);
        let chla = (p.chla_winter + (p.chla_summer - p.chla_winter) * season * season)
            * (0.25 * n(2, 2.0 * DAY)).exp();
        // Photosynthesis over the day: peak ~16:00, minimum ~04:00.
        let photo = (2.0 * PI * (h - 10.0) / 24.0).sin();
        let codmn = p.codmn * (1.0 + 0.12 * n(3, 2.0 * DAY)) * (1.0 + 0.1 * season);
        let sat = 14.62 - 0.3898 * wt + 0.006969 * wt * wt - 0.000_058_97 * wt * wt * wt;
        let do_ = (sat * (0.93 - 0.025 * codmn + 0.004 * chla.min(60.0) * photo)
            + 0.15 * n(4, DAY))
        .clamp(2.0, 18.0);
        let ph = (p.ph + 0.012 * chla.min(60.0) * (0.5 + 0.5 * photo) + 0.08 * n(5, DAY))
            .clamp(6.5, 9.3);
        let nh3n = p.nh3n * (0.3 * n(6, 2.0 * DAY)).exp() * (1.3 - 0.5 * season);
        let turb_wind = if p.lake_like {
            (1.0 + 0.25 * (wx.wind_speed - 2.5)).max(0.6)
        } else {
            1.0
        };
        let turbidity = p.turbidity * (0.35 * n(7, DAY)).exp() * turb_wind;
        let tp_season = if p.lake_like { 0.8 + 0.4 * season } else { 1.0 };
        let tp = p.tp
            * (0.2 * n(8, 2.0 * DAY)).exp()
            * tp_season
            * (1.0 + 0.1 * (turbidity / p.turbidity - 1.0)).clamp(0.8, 1.3);
        let tn = p.tn * (0.15 * n(9, 3.0 * DAY)).exp() * (1.2 - 0.35 * season);
        let conductivity = p.conductivity * (1.0 + 0.05 * n(10, 3.0 * DAY));
        let _ = seed;
        vec![
            val("ph", ph, "", 2),
            val("do", do_, "mg/L", 2),
            val("codmn", codmn, "mg/L", 1),
            val("nh3n", nh3n, "mg/L", 3),
            val("tp", tp, "mg/L", 3),
            val("tn", tn, "mg/L", 2),
            val("water_temp", wt, "degC", 1),
            val("conductivity", conductivity, "uS/cm", 0),
            val("turbidity", turbidity, "NTU", 1),
            val("chla", chla, "ug/L", 1),
        ]
    }
}
