//! The standards' tables as data: HJ 633 breakpoints (2012 and 2026 editions), AQI levels, and the
//! GB 3095 concentration limits (2012, 2026 transition stage, 2026 final stage).
//!
//! Every number here is cited to its standard and clause; code paths take numbers only from here.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// HJ 633 edition (环境空气质量指数(AQI)技术规定).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Edition {
    /// HJ 633-2012 (试行), in force until 2026-02-28.
    #[serde(rename = "2012")]
    Hj633_2012,
    /// HJ 633-2026, in force from 2026-03-01 (HJ 633-2026 foreword; standards.md §8.2).
    #[serde(rename = "2026")]
    Hj633_2026,
}

/// First day (Asia/Shanghai calendar date) on which HJ 633-2026 and GB 3095-2026 apply
/// (GB 3095-2026 foreword / HJ 633-2026 foreword: 自2026年3月1日起实施; standards.md §8.1, §8.2).
pub fn edition_2026_effective() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).expect("valid constant date")
}

/// First day of the GB 3095-2026 final-stage limits (GB 3095-2026 §4.4: transition limits until
/// 2030-12-31, Table 1 final limits from 2031-01-01; standards.md §8.1).
pub fn gb3095_2026_final_effective() -> NaiveDate {
    NaiveDate::from_ymd_opt(2031, 1, 1).expect("valid constant date")
}

impl Edition {
    /// The edition in force on a calendar date (Asia/Shanghai).
    pub fn for_date(date: NaiveDate) -> Edition {
        if date < edition_2026_effective() {
            Edition::Hj633_2012
        } else {
            Edition::Hj633_2026
        }
    }

    /// `"2012"` or `"2026"`.
    pub fn label(self) -> &'static str {
        match self {
            Edition::Hj633_2012 => "2012",
            Edition::Hj633_2026 => "2026",
        }
    }

    /// Parse `2012`, `2026`, `hj633-2012`, `HJ 633-2026`, …
    pub fn parse(s: &str) -> Option<Edition> {
        let t: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match t.as_str() {
            "2012" | "hj6332012" | "hj633_2012" => Some(Edition::Hj633_2012),
            "2026" | "hj6332026" | "hj633_2026" => Some(Edition::Hj633_2026),
            _ => None,
        }
    }

    /// The breakpoint table of this edition.
    pub fn table(self) -> &'static BreakpointTable {
        match self {
            Edition::Hj633_2012 => &HJ633_2012,
            Edition::Hj633_2026 => &HJ633_2026,
        }
    }
}

/// A column of the IAQI breakpoint table (pollutant + averaging time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(non_camel_case_types)]
pub enum Column {
    So2_24h,
    So2_1h,
    No2_24h,
    No2_1h,
    Co_24h,
    Co_1h,
    O3_1h,
    O3_8h,
    Pm10_24h,
    Pm25_24h,
}

impl Column {
    /// All columns, in the order of the table.
    pub const ALL: [Column; 10] = [
        Column::So2_24h,
        Column::So2_1h,
        Column::No2_24h,
        Column::No2_1h,
        Column::Co_24h,
        Column::Co_1h,
        Column::O3_1h,
        Column::O3_8h,
        Column::Pm10_24h,
        Column::Pm25_24h,
    ];

    /// Snake-case name (`so2_24h`, `pm25_24h`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Column::So2_24h => "so2_24h",
            Column::So2_1h => "so2_1h",
            Column::No2_24h => "no2_24h",
            Column::No2_1h => "no2_1h",
            Column::Co_24h => "co_24h",
            Column::Co_1h => "co_1h",
            Column::O3_1h => "o3_1h",
            Column::O3_8h => "o3_8h",
            Column::Pm10_24h => "pm10_24h",
            Column::Pm25_24h => "pm25_24h",
        }
    }

    /// Whether the concentration is in mg/m³ (CO) rather than µg/m³ (HJ 633 Table 1 / Table 3 units).
    pub fn is_mg(self) -> bool {
        matches!(self, Column::Co_24h | Column::Co_1h)
    }

    /// Decimal places kept by the HJ 633-2026 §4.2.2/§4.2.3 rounding (GB/T 8170) before the IAQI:
    /// integers for µg/m³, one decimal for CO in mg/m³.
    pub fn rounding_digits_2026(self) -> u32 {
        if self.is_mg() {
            1
        } else {
            0
        }
    }
}

/// The IAQI values that head the rows of the breakpoint table (HJ 633-2012 Table 1 /
/// HJ 633-2026 Table 3, column "空气质量分指数(IAQI)").
pub const IAQI_ROWS: [u32; 8] = [0, 50, 100, 150, 200, 300, 400, 500];

/// One edition's breakpoint table; `None` marks a cell the standard leaves empty (see notes).
#[derive(Debug)]
pub struct BreakpointTable {
    pub edition: Edition,
    /// Citation of the table.
    pub source: &'static str,
    /// Concentration breakpoints per column, aligned with [`IAQI_ROWS`].
    pub columns: [(Column, [Option<u32>; 8]); 10],
}

impl BreakpointTable {
    /// The breakpoints of a column.
    pub fn column(&self, c: Column) -> &[Option<u32>; 8] {
        // The array holds every column exactly once (checked by a unit test).
        let mut found = &self.columns[0].1;
        for (col, bps) in &self.columns {
            if *col == c {
                found = bps;
            }
        }
        found
    }
}

const fn s(v: u32) -> Option<u32> {
    Some(v)
}

/// HJ 633-2012 Table 1 空气质量分指数及对应的污染物项目浓度限值 (standards.md §1.1).
/// Units: CO mg/m³, others µg/m³. SO2 1h above 800: note (2) of Table 1, no 1-hour IAQI (the 24-hour
/// sub-index is used); O3 8h above 800: note (3), no 8-hour IAQI (the 1-hour sub-index is used).
#[rustfmt::skip]
pub static HJ633_2012: BreakpointTable = BreakpointTable {
    edition: Edition::Hj633_2012,
    source: "HJ 633-2012 表1 (Table 1)",
    columns: [
        (Column::So2_24h, [s(0), s(50), s(150), s(475), s(800), s(1600), s(2100), s(2620)]),
        (Column::So2_1h, [s(0), s(150), s(500), s(650), s(800), None, None, None]),
        (Column::No2_24h, [s(0), s(40), s(80), s(180), s(280), s(565), s(750), s(940)]),
        (Column::No2_1h, [s(0), s(100), s(200), s(700), s(1200), s(2340), s(3090), s(3840)]),
        (Column::Co_24h, [s(0), s(2), s(4), s(14), s(24), s(36), s(48), s(60)]),
        (Column::Co_1h, [s(0), s(5), s(10), s(35), s(60), s(90), s(120), s(150)]),
        (Column::O3_1h, [s(0), s(160), s(200), s(300), s(400), s(800), s(1000), s(1200)]),
        (Column::O3_8h, [s(0), s(100), s(160), s(215), s(265), s(800), None, None]),
        (Column::Pm10_24h, [s(0), s(50), s(150), s(250), s(350), s(420), s(500), s(600)]),
        (Column::Pm25_24h, [s(0), s(35), s(75), s(115), s(150), s(250), s(350), s(500)]),
    ],
};

/// HJ 633-2026 Table 3 (standards.md §8.2, read in the official text). Only the PM10/PM2.5 24-hour
/// breakpoints at IAQI 100 change (PM10 150 → 120, PM2.5 75 → 60). SO2 1h above 800 counts as
/// IAQI 200 (note b), O3 8h above 800 counts as IAQI 300 (note c) – see [`over_800_rule`].
#[rustfmt::skip]
pub static HJ633_2026: BreakpointTable = BreakpointTable {
    edition: Edition::Hj633_2026,
    source: "HJ 633-2026 表3 (Table 3)",
    columns: [
        (Column::So2_24h, [s(0), s(50), s(150), s(475), s(800), s(1600), s(2100), s(2620)]),
        (Column::So2_1h, [s(0), s(150), s(500), s(650), s(800), None, None, None]),
        (Column::No2_24h, [s(0), s(40), s(80), s(180), s(280), s(565), s(750), s(940)]),
        (Column::No2_1h, [s(0), s(100), s(200), s(700), s(1200), s(2340), s(3090), s(3840)]),
        (Column::Co_24h, [s(0), s(2), s(4), s(14), s(24), s(36), s(48), s(60)]),
        (Column::Co_1h, [s(0), s(5), s(10), s(35), s(60), s(90), s(120), s(150)]),
        (Column::O3_1h, [s(0), s(160), s(200), s(300), s(400), s(800), s(1000), s(1200)]),
        (Column::O3_8h, [s(0), s(100), s(160), s(215), s(265), s(800), None, None]),
        (Column::Pm10_24h, [s(0), s(50), s(120), s(250), s(350), s(420), s(500), s(600)]),
        (Column::Pm25_24h, [s(0), s(35), s(60), s(115), s(150), s(250), s(350), s(500)]),
    ],
};

/// What a concentration above the last defined breakpoint of a truncated column (SO2 1h, O3 8h,
/// both ending at 800 µg/m³) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over800 {
    /// HJ 633-2012 Table 1 notes (2)/(3): no sub-index from this column; use the other column.
    UseColumn(Column),
    /// HJ 633-2026 Table 3 notes (b)/(c): the sub-index is this fixed value.
    Fixed(u32),
}

/// The rule for a truncated column, `None` for complete columns.
pub fn over_800_rule(edition: Edition, column: Column) -> Option<Over800> {
    match (edition, column) {
        // HJ 633-2012 Table 1 note (2): SO2 1h > 800 → use the SO2 24h sub-index.
        (Edition::Hj633_2012, Column::So2_1h) => Some(Over800::UseColumn(Column::So2_24h)),
        // HJ 633-2012 Table 1 note (3): O3 8h > 800 → use the O3 1h sub-index.
        (Edition::Hj633_2012, Column::O3_8h) => Some(Over800::UseColumn(Column::O3_1h)),
        // HJ 633-2026 Table 3 note (b): SO2 1h > 800 → IAQI 200.
        (Edition::Hj633_2026, Column::So2_1h) => Some(Over800::Fixed(IAQI_SO2_1H_OVER_800_2026)),
        // HJ 633-2026 Table 3 note (c): O3 8h > 800 → IAQI 300.
        (Edition::Hj633_2026, Column::O3_8h) => Some(Over800::Fixed(IAQI_O3_8H_OVER_800_2026)),
        _ => None,
    }
}

/// HJ 633-2026 Table 3 note (b): SO2 1-hour above 800 µg/m³ counts as IAQI 200.
pub const IAQI_SO2_1H_OVER_800_2026: u32 = 200;
/// HJ 633-2026 Table 3 note (c): O3 8-hour above 800 µg/m³ counts as IAQI 300.
pub const IAQI_O3_8H_OVER_800_2026: u32 = 300;
/// HJ 633 §4.3 / 2026 §4.3.1: a primary pollutant is named only when AQI > 50.
pub const PRIMARY_POLLUTANT_MIN_AQI: u32 = 50;
/// HJ 633-2012 §3.3 / 5.2: 超标污染物 = IAQI > 100 (deleted in HJ 633-2026).
pub const EXCEEDING_IAQI_2012: u32 = 100;
/// HJ 633-2026 §5.3: with a missing pollutant, AQI/level/primary are published only if AQI > 100.
pub const PUBLISH_WITH_MISSING_MIN_AQI_2026: u32 = 100;
/// Good day (优良天) = daily AQI ≤ 100 (HJ 633 Table 2 levels I–II; HJ 663 达标天数; standards.md §2.3).
pub const GOOD_DAY_MAX_AQI: u32 = 100;

/// One AQI level of HJ 633-2012 Table 2 / HJ 633-2026 Table 1 and Appendix A (unchanged in 2026).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Level {
    /// 1..=6 (一级..六级).
    pub level: u8,
    /// Highest AQI of the level (`u32::MAX` for level 6, "> 300").
    pub max_aqi: u32,
    pub zh: &'static str,
    pub en: &'static str,
    /// Colour of Appendix A as hex RGB.
    pub color: &'static str,
}

/// HJ 633-2012 Table 2 and Appendix A (= HJ 633-2026 Table 1 and Appendix A.1; standards.md §1.3, §8.2).
/// English names: customary MEE translations.
#[rustfmt::skip]
pub static LEVELS: [Level; 6] = [
    Level { level: 1, max_aqi: 50, zh: "优", en: "Excellent", color: "#00E400" },
    Level { level: 2, max_aqi: 100, zh: "良", en: "Good", color: "#FFFF00" },
    Level { level: 3, max_aqi: 150, zh: "轻度污染", en: "Lightly polluted", color: "#FF7E00" },
    Level { level: 4, max_aqi: 200, zh: "中度污染", en: "Moderately polluted", color: "#FF0000" },
    Level { level: 5, max_aqi: 300, zh: "重度污染", en: "Heavily polluted", color: "#99004C" },
    Level { level: 6, max_aqi: u32::MAX, zh: "严重污染", en: "Severely polluted", color: "#7E0023" },
];

/// The level of an AQI value.
pub fn level_of(aqi: u32) -> &'static Level {
    LEVELS
        .iter()
        .find(|l| aqi <= l.max_aqi)
        .unwrap_or(&LEVELS[5])
}

// ---------------------------------------------------------------------------------------------
// GB 3095 limits
// ---------------------------------------------------------------------------------------------

/// Which GB 3095 limit table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitRegime {
    /// GB 3095-2012 Table 1 (until 2026-02-28).
    Gb3095_2012,
    /// GB 3095-2026 Table 1, transition stage (2026-03-01..2030-12-31, §4.4).
    Gb3095_2026Transition,
    /// GB 3095-2026 Table 1, final stage (from 2031-01-01, §4.4).
    Gb3095_2026Final,
}

impl LimitRegime {
    /// The regime in force on a date.
    pub fn for_date(date: NaiveDate) -> LimitRegime {
        if date < edition_2026_effective() {
            LimitRegime::Gb3095_2012
        } else if date < gb3095_2026_final_effective() {
            LimitRegime::Gb3095_2026Transition
        } else {
            LimitRegime::Gb3095_2026Final
        }
    }
}

/// Limit grade (GB 3095 §4.1/§4.2: class-1 zones grade I, class-2 zones grade II).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Grade {
    #[serde(rename = "I")]
    I,
    /// Default: urban monitoring compares with grade II (class-2 zones).
    #[serde(rename = "II")]
    #[default]
    II,
}

/// The pollutants of GB 3095 Table 1 that envmon evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pollutant {
    So2,
    No2,
    Co,
    O3,
    Pm10,
    Pm25,
}

impl Pollutant {
    pub const ALL: [Pollutant; 6] = [
        Pollutant::So2,
        Pollutant::No2,
        Pollutant::Co,
        Pollutant::O3,
        Pollutant::Pm10,
        Pollutant::Pm25,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Pollutant::So2 => "so2",
            Pollutant::No2 => "no2",
            Pollutant::Co => "co",
            Pollutant::O3 => "o3",
            Pollutant::Pm10 => "pm10",
            Pollutant::Pm25 => "pm25",
        }
    }
}

/// Averaging time of a GB 3095 limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Averaging {
    Annual,
    /// 24-hour mean (日平均).
    Daily,
    /// Daily maximum 8-hour mean (日最大8小时平均), O3 only.
    Mda8,
    Hourly,
}

/// One row of a GB 3095 limit table: (pollutant, averaging, grade I, grade II).
pub type LimitRow = (Pollutant, Averaging, f64, f64);

/// GB 3095-2012 Table 1 基本项目浓度限值 (standards.md §3). µg/m³, CO mg/m³.
#[rustfmt::skip]
pub static GB3095_2012: [LimitRow; 14] = [
    (Pollutant::So2, Averaging::Annual, 20.0, 60.0),
    (Pollutant::So2, Averaging::Daily, 50.0, 150.0),
    (Pollutant::So2, Averaging::Hourly, 150.0, 500.0),
    (Pollutant::No2, Averaging::Annual, 40.0, 40.0),
    (Pollutant::No2, Averaging::Daily, 80.0, 80.0),
    (Pollutant::No2, Averaging::Hourly, 200.0, 200.0),
    (Pollutant::Co, Averaging::Daily, 4.0, 4.0),
    (Pollutant::Co, Averaging::Hourly, 10.0, 10.0),
    (Pollutant::O3, Averaging::Mda8, 100.0, 160.0),
    (Pollutant::O3, Averaging::Hourly, 160.0, 200.0),
    (Pollutant::Pm10, Averaging::Annual, 40.0, 70.0),
    (Pollutant::Pm10, Averaging::Daily, 50.0, 150.0),
    (Pollutant::Pm25, Averaging::Annual, 15.0, 35.0),
    (Pollutant::Pm25, Averaging::Daily, 35.0, 75.0),
];

/// GB 3095-2026 Table 1, transition-stage columns (过渡阶段, until 2030-12-31; standards.md §8.1).
#[rustfmt::skip]
pub static GB3095_2026_TRANSITION: [LimitRow; 14] = [
    (Pollutant::So2, Averaging::Annual, 20.0, 60.0),
    (Pollutant::So2, Averaging::Daily, 50.0, 150.0),
    (Pollutant::So2, Averaging::Hourly, 150.0, 500.0),
    (Pollutant::No2, Averaging::Annual, 40.0, 40.0),
    (Pollutant::No2, Averaging::Daily, 80.0, 80.0),
    (Pollutant::No2, Averaging::Hourly, 200.0, 200.0),
    (Pollutant::Co, Averaging::Daily, 4.0, 4.0),
    (Pollutant::Co, Averaging::Hourly, 10.0, 10.0),
    (Pollutant::O3, Averaging::Mda8, 100.0, 160.0),
    (Pollutant::O3, Averaging::Hourly, 160.0, 200.0),
    (Pollutant::Pm10, Averaging::Annual, 40.0, 60.0),
    (Pollutant::Pm10, Averaging::Daily, 50.0, 120.0),
    (Pollutant::Pm25, Averaging::Annual, 15.0, 30.0),
    (Pollutant::Pm25, Averaging::Daily, 35.0, 60.0),
];

/// GB 3095-2026 Table 1, final-stage columns (from 2031-01-01; standards.md §8.1).
#[rustfmt::skip]
pub static GB3095_2026_FINAL: [LimitRow; 14] = [
    (Pollutant::So2, Averaging::Annual, 20.0, 20.0),
    (Pollutant::So2, Averaging::Daily, 50.0, 50.0),
    (Pollutant::So2, Averaging::Hourly, 150.0, 150.0),
    (Pollutant::No2, Averaging::Annual, 30.0, 30.0),
    (Pollutant::No2, Averaging::Daily, 50.0, 50.0),
    (Pollutant::No2, Averaging::Hourly, 200.0, 200.0),
    (Pollutant::Co, Averaging::Daily, 4.0, 4.0),
    (Pollutant::Co, Averaging::Hourly, 10.0, 10.0),
    (Pollutant::O3, Averaging::Mda8, 100.0, 160.0),
    (Pollutant::O3, Averaging::Hourly, 160.0, 200.0),
    (Pollutant::Pm10, Averaging::Annual, 20.0, 50.0),
    (Pollutant::Pm10, Averaging::Daily, 50.0, 100.0),
    (Pollutant::Pm25, Averaging::Annual, 10.0, 25.0),
    (Pollutant::Pm25, Averaging::Daily, 25.0, 50.0),
];

/// The limit table of a regime.
pub fn limit_table(regime: LimitRegime) -> &'static [LimitRow; 14] {
    match regime {
        LimitRegime::Gb3095_2012 => &GB3095_2012,
        LimitRegime::Gb3095_2026Transition => &GB3095_2026_TRANSITION,
        LimitRegime::Gb3095_2026Final => &GB3095_2026_FINAL,
    }
}

/// A GB 3095 limit; `None` where the table has no such limit (e.g. CO annual).
pub fn limit(
    regime: LimitRegime,
    grade: Grade,
    pollutant: Pollutant,
    averaging: Averaging,
) -> Option<f64> {
    limit_table(regime)
        .iter()
        .find(|(p, a, _, _)| *p == pollutant && *a == averaging)
        .map(|(_, _, g1, g2)| match grade {
            Grade::I => *g1,
            Grade::II => *g2,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_once() {
        for t in [&HJ633_2012, &HJ633_2026] {
            for c in Column::ALL {
                assert_eq!(t.columns.iter().filter(|(x, _)| *x == c).count(), 1);
            }
        }
    }

    #[test]
    fn regimes_by_date() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            LimitRegime::for_date(d(2026, 2, 28)),
            LimitRegime::Gb3095_2012
        );
        assert_eq!(
            LimitRegime::for_date(d(2030, 12, 31)),
            LimitRegime::Gb3095_2026Transition
        );
        assert_eq!(
            LimitRegime::for_date(d(2031, 1, 1)),
            LimitRegime::Gb3095_2026Final
        );
        assert_eq!(
            limit(
                LimitRegime::Gb3095_2012,
                Grade::I,
                Pollutant::Co,
                Averaging::Annual
            ),
            None
        );
    }
}
