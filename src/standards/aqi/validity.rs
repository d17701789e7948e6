//! Data validity (数据统计的有效性规定): GB 3095-2012 §8 Table 4 = GB 3095-2026 §6.4 Table 4, and
//! HJ 663-2013 for the O3 MDA8 (standards.md §2.1, §8.1, §8.3).
//!
//! A statistic computed from too little data is never returned as a number: see [`Stat`].

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::model::Flag;

/// A statistic, or the reason there is none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    Value(f64),
    /// Not enough valid data: `have` of the `need` required.
    Insufficient {
        have: u32,
        need: u32,
    },
}

impl Stat {
    /// The value, if valid.
    pub fn value(self) -> Option<f64> {
        match self {
            Stat::Value(v) => Some(v),
            Stat::Insufficient { .. } => None,
        }
    }

    pub fn is_valid(self) -> bool {
        matches!(self, Stat::Value(_))
    }
}

/// One value with its HJ 212 flag. Only `N` counts (`Flag::is_valid`), and only finite values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub value: f64,
    #[serde(default)]
    pub flag: Flag,
}

impl Sample {
    /// A sample flagged `N`.
    pub fn n(value: f64) -> Sample {
        Sample {
            value,
            flag: Flag::N,
        }
    }

    /// The value if it may be used in statistics.
    pub fn valid(self) -> Option<f64> {
        (self.flag.is_valid() && self.value.is_finite()).then_some(self.value)
    }
}

fn valid(s: &Option<Sample>) -> Option<f64> {
    s.and_then(Sample::valid)
}

/// Which assessment rules (HJ 663 edition) apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssessmentEdition {
    /// HJ 663-2013 (+ GB 3095-2012 Table 4).
    Hj663_2013,
    /// HJ 663-2026: text not reviewed (standards.md §8.3); envmon keeps the 2013 rules and marks
    /// results `provisional`.
    Hj663_2026,
}

impl AssessmentEdition {
    /// In force on a date (from 2026-03-01 the 2026 edition).
    pub fn for_date(date: NaiveDate) -> AssessmentEdition {
        if date < super::tables::edition_2026_effective() {
            AssessmentEdition::Hj663_2013
        } else {
            AssessmentEdition::Hj663_2026
        }
    }

    /// Whether results under this edition are provisional (rules not verified in the text).
    pub fn provisional(self) -> bool {
        self == AssessmentEdition::Hj663_2026
    }
}

/// Validity thresholds; defaults are the standards' numbers. Configurable because HJ 663-2026 is
/// not yet reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidityRules {
    /// 1-hour mean: ≥ 45 minutes of sampling (GB 3095-2026 Table 4; GB 3095-2012 Table 4).
    pub min_minutes_per_hour: u32,
    /// 24-hour mean: ≥ 20 hourly means in the natural day (GB 3095 Table 4).
    pub min_hours_per_day: u32,
    /// O3 8-hour mean: ≥ 6 hourly means in the 8 hours (GB 3095 Table 4).
    pub min_hours_per_8h: u32,
    /// MDA8: ≥ 14 valid 8-hour means among the day's windows (HJ 663-2013 §6.1.2; standards.md §2.1,
    /// §8.3, single source for 2026).
    pub min_windows_mda8: u32,
    /// End hour of the first MDA8 window (8 = the window 00:00–08:00; windows end 08:00..24:00, the
    /// 17 windows inside the natural day; HJ 663-2013 as commonly read).
    pub mda8_first_window_end: u32,
    /// MDA8 with fewer windows still counts when its maximum exceeds the O3 8-hour limit (HJ 663-2013
    /// §6.1.2 as commonly cited; more data can only raise a maximum). Default on.
    pub mda8_exceedance_exception: bool,
    /// Annual mean: ≥ 324 daily means per year (GB 3095 Table 4).
    pub min_days_per_year: u32,
    /// Annual mean: ≥ 27 daily means in each month (GB 3095 Table 4).
    pub min_days_per_month: u32,
    /// … and ≥ 25 in February (GB 3095 Table 4).
    pub min_days_february: u32,
}

impl Default for ValidityRules {
    fn default() -> Self {
        ValidityRules {
            min_minutes_per_hour: 45,
            min_hours_per_day: 20,
            min_hours_per_8h: 6,
            min_windows_mda8: 14,
            mda8_first_window_end: 8,
            mda8_exceedance_exception: true,
            min_days_per_year: 324,
            min_days_per_month: 27,
            min_days_february: 25,
        }
    }
}

/// A sub-hourly value covering `minutes` of sampling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinuteSample {
    pub value: f64,
    #[serde(default)]
    pub flag: Flag,
    pub minutes: u32,
}

/// 1-hour mean from sub-hourly values: time-weighted mean of the valid ones, valid with ≥ 45 minutes
/// of valid sampling (minutes are capped at 60).
pub fn hourly_mean(samples: &[MinuteSample], rules: &ValidityRules) -> Stat {
    let mut minutes: u32 = 0;
    let mut weighted = Vec::new();
    for s in samples {
        if s.flag.is_valid() && s.value.is_finite() && s.minutes > 0 {
            minutes = minutes.saturating_add(s.minutes);
            weighted.push((s.value, u64::from(s.minutes)));
        }
    }
    let have = minutes.min(60);
    if have < rules.min_minutes_per_hour || minutes == 0 {
        return Stat::Insufficient {
            have,
            need: rules.min_minutes_per_hour,
        };
    }
    match crate::num::weighted_mean(weighted) {
        Some(m) => Stat::Value(m),
        None => Stat::Insufficient {
            have,
            need: rules.min_minutes_per_hour,
        },
    }
}

/// The exact decimal mean of non-empty `vals` ([`crate::num::mean`]).
fn mean_stat(vals: Vec<f64>) -> Stat {
    match crate::num::mean(vals) {
        Some(m) => Stat::Value(m),
        None => Stat::Insufficient { have: 0, need: 1 },
    }
}

/// 24-hour mean of a natural day from its hourly means (index = hour starting 00:00..23:00).
pub fn daily_mean(hours: &[Option<Sample>], rules: &ValidityRules) -> Stat {
    let vals: Vec<f64> = hours.iter().take(24).filter_map(valid).collect();
    let have = vals.len() as u32;
    if have < rules.min_hours_per_day || have == 0 {
        return Stat::Insufficient {
            have,
            need: rules.min_hours_per_day,
        };
    }
    mean_stat(vals)
}

/// O3 8-hour moving average of the 8 given hours (h-7..h).
pub fn o3_8h_mean(window: &[Option<Sample>], rules: &ValidityRules) -> Stat {
    let vals: Vec<f64> = window.iter().take(8).filter_map(valid).collect();
    let have = vals.len() as u32;
    if have < rules.min_hours_per_8h || have == 0 {
        return Stat::Insufficient {
            have,
            need: rules.min_hours_per_8h,
        };
    }
    mean_stat(vals)
}

/// O(1) rolling O3 8-hour moving average: push each hour's 1-hour value in order (a missing hour as
/// `None`); the result labelled with the pushed hour h is the mean of hours h-7..h.
#[derive(Debug, Clone, Default)]
pub struct O3Rolling8h {
    ring: [Option<f64>; 8],
    pos: usize,
    sum: f64,
    count: u32,
}

impl O3Rolling8h {
    pub fn new() -> Self {
        Self::default()
    }

    /// Push the next hour and return the 8-hour moving average ending with it.
    pub fn push(&mut self, hour: Option<Sample>, rules: &ValidityRules) -> Stat {
        if let Some(old) = self.ring[self.pos].take() {
            self.sum -= old;
            self.count -= 1;
        }
        let v = hour.and_then(Sample::valid);
        if let Some(x) = v {
            self.sum += x;
            self.count += 1;
        }
        self.ring[self.pos] = v;
        self.pos = (self.pos + 1) % 8;
        if self.count < rules.min_hours_per_8h || self.count == 0 {
            Stat::Insufficient {
                have: self.count,
                need: rules.min_hours_per_8h,
            }
        } else {
            // Recompute the sum from the ring (8 additions) to avoid drift of the running sum;
            // the mean itself is exact in decimal (crate::num::mean).
            let s: f64 = self.ring.iter().flatten().sum();
            self.sum = s;
            mean_stat(self.ring.iter().flatten().copied().collect())
        }
    }
}

/// MDA8 (日最大8小时平均) with how it was decided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mda8 {
    pub stat: Stat,
    /// Valid 8-hour means among the day's windows.
    pub valid_windows: u32,
    /// Windows considered.
    pub windows: u32,
    /// Valid only through the exceedance exception.
    pub by_exceedance_exception: bool,
}

/// MDA8 of a natural day from its 24 hourly O3 values (index = hour starting 00:00..23:00).
///
/// Windows end at `mda8_first_window_end`..24 (default 08:00..24:00); a window ending at `e` covers
/// the hours starting `e-8`..`e-1`; hours before 00:00 come from `previous_day` (only needed when
/// `mda8_first_window_end < 8`). `o3_8h_limit`: the limit for the exceedance exception (e.g. 160
/// µg/m³, grade II), `None` disables it for this call.
pub fn mda8(
    previous_day: Option<&[Option<Sample>]>,
    day: &[Option<Sample>],
    o3_8h_limit: Option<f64>,
    rules: &ValidityRules,
) -> Mda8 {
    let hour = |h: i32| -> Option<Sample> {
        if h >= 0 {
            day.get(h as usize).copied().flatten()
        } else {
            previous_day
                .and_then(|p| p.get((24 + h) as usize).copied())
                .flatten()
        }
    };
    let first = rules.mda8_first_window_end.clamp(1, 24) as i32;
    let mut max: Option<f64> = None;
    let mut valid_windows = 0;
    let mut windows = 0;
    for end in first..=24 {
        windows += 1;
        let w: Vec<Option<Sample>> = (end - 8..end).map(hour).collect();
        if let Stat::Value(v) = o3_8h_mean(&w, rules) {
            valid_windows += 1;
            max = Some(max.map_or(v, |m: f64| m.max(v)));
        }
    }
    let need = rules.min_windows_mda8;
    if valid_windows >= need {
        if let Some(m) = max {
            return Mda8 {
                stat: Stat::Value(m),
                valid_windows,
                windows,
                by_exceedance_exception: false,
            };
        }
    }
    if let (true, Some(m), Some(limit)) = (rules.mda8_exceedance_exception, max, o3_8h_limit) {
        if m > limit {
            return Mda8 {
                stat: Stat::Value(m),
                valid_windows,
                windows,
                by_exceedance_exception: true,
            };
        }
    }
    Mda8 {
        stat: Stat::Insufficient {
            have: valid_windows,
            need,
        },
        valid_windows,
        windows,
        by_exceedance_exception: false,
    }
}

/// Completeness of one month within a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthCount {
    pub month: u32,
    pub have: u32,
    pub need: u32,
}

/// Completeness of daily values for an annual (or year-to-date) statistic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    pub ok: bool,
    /// Valid days in the period.
    pub have: u32,
    /// Days needed in the period.
    pub need: u32,
    /// Months that fail their minimum.
    pub short_months: Vec<MonthCount>,
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (first, next) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 30,
    }
}

/// Check the GB 3095 Table 4 annual rule for the days of `year` up to and including `through`.
///
/// Full year (`through` = 31 Dec or later): ≥ 324 days and ≥ 27 per month (25 in February).
/// Year to date (envmon's provisional extension, docs/indicators.md): each complete month needs its
/// monthly minimum; the current, incomplete month may miss no more days than the full month could
/// (days elapsed − (month length − monthly minimum)); the period as a whole needs
/// `ceil(324 × elapsed / days in year)`.
pub fn annual_completeness(
    valid_days: &[NaiveDate],
    year: i32,
    through: NaiveDate,
    rules: &ValidityRules,
) -> Completeness {
    let mut per_month = [0u32; 13];
    let mut have = 0;
    let mut seen = std::collections::BTreeSet::new();
    for d in valid_days {
        if d.year() == year && *d <= through && seen.insert(*d) {
            per_month[d.month() as usize] += 1;
            have += 1;
        }
    }
    let year_len = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
        366
    } else {
        365
    };
    let start = NaiveDate::from_ymd_opt(year, 1, 1);
    let end = NaiveDate::from_ymd_opt(year, 12, 31);
    let (Some(start), Some(end)) = (start, end) else {
        return Completeness {
            ok: false,
            have,
            need: rules.min_days_per_year,
            short_months: vec![],
        };
    };
    let last = through.min(end);
    if last < start {
        return Completeness {
            ok: false,
            have: 0,
            need: rules.min_days_per_year,
            short_months: vec![],
        };
    }
    let elapsed = (last - start).num_days() as u32 + 1;
    let need = if last == end {
        rules.min_days_per_year
    } else {
        (rules.min_days_per_year as u64 * elapsed as u64).div_ceil(year_len as u64) as u32
    };
    let mut short_months = Vec::new();
    for m in 1..=last.month() {
        let len = days_in_month(year, m);
        let min = if m == 2 {
            rules.min_days_february
        } else {
            rules.min_days_per_month
        }
        .min(len);
        let need_m = if m < last.month() || last.day() == len {
            min
        } else {
            last.day().saturating_sub(len - min)
        };
        if per_month[m as usize] < need_m {
            short_months.push(MonthCount {
                month: m,
                have: per_month[m as usize],
                need: need_m,
            });
        }
    }
    Completeness {
        ok: have >= need && short_months.is_empty() && have > 0,
        have,
        need,
        short_months,
    }
}
