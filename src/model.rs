//! Domain types shared by every stage: readings, intervals, quality flags.
//!
//! Owns: the values that flow between stages. Knows nothing of wire formats, brokers or databases.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Averaging interval that a value represents, as HJ 212 names them (CN 2011/2051/2061/2031).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Real-time (instantaneous) value.
    #[default]
    Rt,
    /// Minute value (usually a 1-, 5- or 10-minute mean).
    Min,
    /// Hourly mean.
    Hour,
    /// Daily mean.
    Day,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Rt => "rt",
            Interval::Min => "min",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rt" | "realtime" | "real-time" => Ok(Interval::Rt),
            "min" | "minute" => Ok(Interval::Min),
            "hour" | "h" | "hourly" => Ok(Interval::Hour),
            "day" | "d" | "daily" => Ok(Interval::Day),
            other => Err(format!(
                "unknown interval {other:?} (expected rt, min, hour or day)"
            )),
        }
    }
}

/// Data quality flag (数据标记) of HJ 212-2017 §6.5; `N` is the only flag valid for statistics.
///
/// Legacy HJ/T 212-2005 flags (`P`, numeric 0–3) are mapped by the HJ 212 codec before they get here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Flag {
    /// 正常 normal.
    #[default]
    N,
    /// 停运 instrument stopped.
    F,
    /// 维护 maintenance.
    M,
    /// 手工输入的设定值 manually entered value.
    S,
    /// 故障 instrument fault.
    D,
    /// 校准 calibration.
    C,
    /// 超测上限 over the measuring upper limit.
    T,
    /// 通讯异常 communication fault between instrument and logger.
    B,
    /// HJ/T 212-2005 power fault (电源故障).
    P,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::N => "N",
            Flag::F => "F",
            Flag::M => "M",
            Flag::S => "S",
            Flag::D => "D",
            Flag::C => "C",
            Flag::T => "T",
            Flag::B => "B",
            Flag::P => "P",
        }
    }

    /// Only `N` values count for means, AQI and validity (HJ 212-2017 §6.5, GB 3095 §6.4).
    pub fn is_valid(self) -> bool {
        self == Flag::N
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Flag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "N" | "n" => Ok(Flag::N),
            "F" | "f" => Ok(Flag::F),
            "M" | "m" => Ok(Flag::M),
            "S" | "s" => Ok(Flag::S),
            "D" | "d" => Ok(Flag::D),
            "C" | "c" => Ok(Flag::C),
            "T" | "t" => Ok(Flag::T),
            "B" | "b" => Ok(Flag::B),
            "P" | "p" => Ok(Flag::P),
            other => Err(format!(
                "unknown quality flag {other:?} (expected one of N F M S D C T B P)"
            )),
        }
    }
}

/// One value of one parameter at one station and time, as a decoder produced it.
///
/// Decoders fill `param` with the lower-cased name or code they saw (after their own alias
/// table) and `unit` with the unit the payload stated, if any. [`crate::normalise`] turns it into
/// the canonical parameter name and unit and checks plausibility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub station: String,
    /// Reading time in UTC (the start of the averaging period for min/hour/day values, as the
    /// source labels it).
    pub time: DateTime<Utc>,
    pub interval: Interval,
    pub param: String,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub flag: Flag,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max: Option<f64>,
    /// Cumulative value (HJ 212 `-Cou`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cou: Option<f64>,
}

impl Reading {
    /// A reading with flag `N` and no unit, min, max or cumulative value.
    pub fn new(
        station: impl Into<String>,
        time: DateTime<Utc>,
        interval: Interval,
        param: impl Into<String>,
        value: f64,
    ) -> Self {
        Reading {
            station: station.into(),
            time,
            interval,
            param: param.into(),
            value,
            unit: None,
            flag: Flag::N,
            min: None,
            max: None,
            cou: None,
        }
    }
}

/// What a station measures; decides the InfluxDB measurement (`air` or `water`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationKind {
    AirNational,
    AirProvincial,
    AirMicro,
    WaterAuto,
}

impl StationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StationKind::AirNational => "air_national",
            StationKind::AirProvincial => "air_provincial",
            StationKind::AirMicro => "air_micro",
            StationKind::WaterAuto => "water_auto",
        }
    }

    pub fn is_air(self) -> bool {
        !matches!(self, StationKind::WaterAuto)
    }

    /// National and provincial stations enter official figures; micro-stations never do.
    pub fn is_official_air(self) -> bool {
        matches!(self, StationKind::AirNational | StationKind::AirProvincial)
    }
}

impl fmt::Display for StationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Water body type of a surface-water section; selects the GB 3838 TP column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyType {
    River,
    Lake,
    Reservoir,
}

impl BodyType {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::River => "river",
            BodyType::Lake => "lake",
            BodyType::Reservoir => "reservoir",
        }
    }

    /// Lakes and reservoirs share the GB 3838-2002 lake/reservoir TP column and the TN item.
    pub fn is_lake_like(self) -> bool {
        !matches!(self, BodyType::River)
    }
}

impl FromStr for BodyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "river" => Ok(BodyType::River),
            "lake" => Ok(BodyType::Lake),
            "reservoir" => Ok(BodyType::Reservoir),
            other => Err(format!(
                "unknown body type {other:?} (expected river, lake or reservoir)"
            )),
        }
    }
}

impl fmt::Display for BodyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GB 3838-2002 water quality class I..V, stored as 1..=5 (劣V is 6 where results need it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaterClass(pub u8);

impl WaterClass {
    pub fn parse(s: &str) -> Option<WaterClass> {
        let n = match s.trim().to_ascii_uppercase().as_str() {
            "I" | "1" | "Ⅰ" => 1,
            "II" | "2" | "Ⅱ" => 2,
            "III" | "3" | "Ⅲ" => 3,
            "IV" | "4" | "Ⅳ" => 4,
            "V" | "5" | "Ⅴ" => 5,
            "劣V" | "劣Ⅴ" | "WORSE THAN V" | "6" => 6,
            _ => return None,
        };
        Some(WaterClass(n))
    }

    pub fn roman(self) -> &'static str {
        match self.0 {
            1 => "I",
            2 => "II",
            3 => "III",
            4 => "IV",
            5 => "V",
            _ => "劣V",
        }
    }
}

/// A station as the rest of envmon sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub id: String,
    /// Chinese name.
    pub name: String,
    pub name_en: String,
    pub kind: StationKind,
    pub district: String,
    pub lat: f64,
    pub lon: f64,
    pub timezone: Tz,
    /// HJ 212 device id (MN).
    pub mn: Option<String>,
    /// HJ 212 access password (never logged).
    pub pw: Option<String>,
    pub water_body: Option<String>,
    pub body_type: Option<BodyType>,
    pub target_class: Option<WaterClass>,
    pub groups: Vec<String>,
    pub expected_interval_s: Option<u64>,
}

/// The InfluxDB measurement a sample is stored in (docs/schema.md). Decided once, in
/// `normalise`, from the station kind when the station is known, else from the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measurement {
    Air,
    Water,
}

impl Measurement {
    pub fn as_str(self) -> &'static str {
        match self {
            Measurement::Air => "air",
            Measurement::Water => "water",
        }
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalised reading: canonical parameter and unit, plus the station metadata that becomes
/// InfluxDB tags. This is what sinks (writer, indicators, alerts) consume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub station: String,
    pub time: DateTime<Utc>,
    pub interval: Interval,
    /// Canonical parameter name (docs/schema.md), e.g. `pm25`, `nh3n`.
    pub param: String,
    /// Value in the canonical unit of `param`.
    pub value: f64,
    /// Canonical unit (docs/schema.md), e.g. `ug/m3`, `mg/L`; empty for dimensionless.
    pub unit: &'static str,
    pub flag: Flag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cou: Option<f64>,
    /// Station metadata; `None` when decoding without a registry.
    #[serde(skip)]
    pub meta: Option<std::sync::Arc<Station>>,
    /// The measurement this sample is stored in (decided by `normalise`).
    pub measurement: Measurement,
}

impl Sample {
    /// `air` or `water`: the measurement `normalise` decided.
    pub fn measurement(&self) -> &'static str {
        self.measurement.as_str()
    }
}
