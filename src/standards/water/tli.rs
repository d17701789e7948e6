//! Lake (reservoir) comprehensive trophic level index TLI(Σ) (综合营养状态指数).
//!
//! Method: CNEMC 湖泊(水库)富营养化评价方法及分级技术规定 (总站生字[2001]090号), as reproduced
//! in standards.md §5: `TLI(Σ) = Σ W_j · TLI(j)`, `W_j = r_ij² / Σ r_ij²` with chlorophyll-a as
//! the reference parameter; a missing parameter drops out and the weights are renormalised over
//! the available ones.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::WaterError;
use crate::num::{self, cmp_full, decimals_to_show, round_dp};

/// A TLI parameter (canonical names of docs/schema.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TliParam {
    /// Chlorophyll-a 叶绿素a, mg/m³ (= µg/L).
    Chla,
    /// Total phosphorus 总磷, mg/L.
    Tp,
    /// Total nitrogen 总氮, mg/L.
    Tn,
    /// Secchi-disk transparency 透明度, m.
    Sd,
    /// Permanganate index 高锰酸盐指数, mg/L.
    Codmn,
}

impl TliParam {
    pub const ALL: [TliParam; 5] = [
        TliParam::Chla,
        TliParam::Tp,
        TliParam::Tn,
        TliParam::Sd,
        TliParam::Codmn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TliParam::Chla => "chla",
            TliParam::Tp => "tp",
            TliParam::Tn => "tn",
            TliParam::Sd => "sd",
            TliParam::Codmn => "codmn",
        }
    }

    pub fn from_name(s: &str) -> Option<TliParam> {
        let s = s.trim().to_ascii_lowercase();
        TliParam::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Correlation r_ij of the parameter with chlorophyll-a (CNEMC 总站生字[2001]090号 table of
    /// r_ij for Chinese lakes): chla 1, TP 0.84, TN 0.82, SD −0.83, CODMn 0.83.
    pub fn r_with_chla(self) -> f64 {
        match self {
            TliParam::Chla => 1.0,
            TliParam::Tp => 0.84,
            TliParam::Tn => 0.82,
            TliParam::Sd => -0.83,
            TliParam::Codmn => 0.83,
        }
    }

    /// Per-parameter index TLI(j) (CNEMC 总站生字[2001]090号; ln = natural log):
    /// chla `10(2.5 + 1.086 ln chla)`, TP `10(9.436 + 1.624 ln TP)`, TN `10(5.453 + 1.694 ln TN)`,
    /// SD `10(5.118 − 1.94 ln SD)`, CODMn `10(0.109 + 2.661 ln CODMn)`.
    /// The value must be > 0 (checked by [`tli`]).
    pub fn index(self, value: f64) -> f64 {
        let ln = value.ln();
        10.0 * match self {
            TliParam::Chla => 2.5 + 1.086 * ln,
            TliParam::Tp => 9.436 + 1.624 * ln,
            TliParam::Tn => 5.453 + 1.694 * ln,
            TliParam::Sd => 5.118 - 1.94 * ln,
            TliParam::Codmn => 0.109 + 2.661 * ln,
        }
    }
}

impl fmt::Display for TliParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Trophic grade (营养状态分级) of CNEMC 总站生字[2001]090号.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrophicGrade {
    /// TLI < 30 贫营养.
    Oligotrophic,
    /// 30 ≤ TLI ≤ 50 中营养.
    Mesotrophic,
    /// 50 < TLI ≤ 60 轻度富营养.
    LightEutrophic,
    /// 60 < TLI ≤ 70 中度富营养.
    MiddleEutrophic,
    /// TLI > 70 重度富营养.
    HyperEutrophic,
}

/// The grade boundaries of CNEMC 总站生字[2001]090号: TLI 30, 50, 60, 70.
pub const GRADE_BOUNDARIES: [f64; 4] = [30.0, 50.0, 60.0, 70.0];

/// Fewest and most decimals of a printed TLI: 1 as the method reports it, more (up to 8) when
/// 1 decimal would put the printed value on the other side of (or on) a grade boundary than
/// the full value ([`num::decimals_to_show`]).
pub const TLI_DECIMALS: (u32, u32) = (1, 8);

impl TrophicGrade {
    /// Grade of a TLI value by GB/T 8170-2008 §4.3.3 full-value comparison (the value as
    /// computed, at [`num::MAX_SIG`] significant digits, not the 1-decimal reported value): a TLI
    /// of 50.006 is light eutrophic. The boundaries 50, 60 and 70 belong to the lower grade and
    /// 30 to mesotrophic, as the CNEMC text writes them. A value that is not finite is graded
    /// hyper eutrophic (it cannot occur: [`tli`] rejects such inputs).
    pub fn from_tli(tli: f64) -> TrophicGrade {
        let c = |b: f64| cmp_full(tli, b).unwrap_or(std::cmp::Ordering::Greater);
        if c(30.0).is_lt() {
            TrophicGrade::Oligotrophic
        } else if c(50.0).is_le() {
            TrophicGrade::Mesotrophic
        } else if c(60.0).is_le() {
            TrophicGrade::LightEutrophic
        } else if c(70.0).is_le() {
            TrophicGrade::MiddleEutrophic
        } else {
            TrophicGrade::HyperEutrophic
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            TrophicGrade::Oligotrophic => "贫营养",
            TrophicGrade::Mesotrophic => "中营养",
            TrophicGrade::LightEutrophic => "轻度富营养",
            TrophicGrade::MiddleEutrophic => "中度富营养",
            TrophicGrade::HyperEutrophic => "重度富营养",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            TrophicGrade::Oligotrophic => "oligotrophic",
            TrophicGrade::Mesotrophic => "mesotrophic",
            TrophicGrade::LightEutrophic => "light eutrophic",
            TrophicGrade::MiddleEutrophic => "middle eutrophic",
            TrophicGrade::HyperEutrophic => "hyper eutrophic",
        }
    }

    /// True for the three eutrophic grades (TLI > 50).
    pub fn is_eutrophic(self) -> bool {
        self >= TrophicGrade::LightEutrophic
    }
}

/// A transparency (Secchi depth) reading. SD is usually read by hand from a boat, so it is kept
/// with the time it was measured; `measured_at` is `None` only for ad-hoc calculations (CLI
/// without `--sd-time`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transparency {
    /// Secchi depth in metres.
    pub metres: f64,
    pub measured_at: Option<DateTime<Utc>>,
}

/// The manual SD readings of one lake, to pick the one that goes with a TLI computed at time `t`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SdLog {
    readings: Vec<Transparency>,
}

impl SdLog {
    /// Add a timed reading (a reading without time is rejected: the log is for the engine).
    pub fn record(&mut self, metres: f64, measured_at: DateTime<Utc>) -> Result<(), WaterError> {
        positive(TliParam::Sd, metres)?;
        self.readings.push(Transparency {
            metres,
            measured_at: Some(measured_at),
        });
        self.readings.sort_by_key(|r| r.measured_at);
        Ok(())
    }

    /// The latest reading taken at or before `t` and no older than `max_age` (e.g. 31 days for a
    /// monthly manual survey); `None` when there is none, so that the TLI renormalises without SD.
    pub fn latest_at(&self, t: DateTime<Utc>, max_age: Duration) -> Option<Transparency> {
        self.readings
            .iter()
            .rev()
            .find(|r| r.measured_at.is_some_and(|m| m <= t && t - m <= max_age))
            .copied()
    }
}

/// Inputs of one TLI; any subset (at least one).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TliInput {
    pub chla: Option<f64>,
    pub tp: Option<f64>,
    pub tn: Option<f64>,
    pub sd: Option<Transparency>,
    pub codmn: Option<f64>,
}

impl TliInput {
    fn get(&self, p: TliParam) -> Option<f64> {
        match p {
            TliParam::Chla => self.chla,
            TliParam::Tp => self.tp,
            TliParam::Tn => self.tn,
            TliParam::Sd => self.sd.map(|s| s.metres),
            TliParam::Codmn => self.codmn,
        }
    }
}

/// Result of [`tli`].
#[derive(Debug, Clone, PartialEq)]
pub struct TliResult {
    /// TLI(Σ), the full value: as computed, at [`num::MAX_SIG`] significant digits.
    pub tli: f64,
    /// TLI(Σ) as reported: rounded per GB/T 8170 to 1 decimal, or to as many more as needed for
    /// the printed value to be on the same side of every grade boundary as the full value
    /// ([`TLI_DECIMALS`]): 54.918 → 54.9, 50.006 → 50.01.
    pub tli_reported: f64,
    /// Decimals of `tli_reported`.
    pub reported_decimals: u32,
    /// Grade of the full value (GB/T 8170 §4.3.3), see [`TrophicGrade::from_tli`].
    pub grade: TrophicGrade,
    /// TLI(j) of each available parameter, unrounded.
    pub per_param: BTreeMap<TliParam, f64>,
    /// Weight W_j used for each available parameter (they sum to 1).
    pub weights: BTreeMap<TliParam, f64>,
    /// Parameters not given (the weights were renormalised without them).
    pub missing: Vec<TliParam>,
    pub sd_measured_at: Option<DateTime<Utc>>,
}

fn positive(p: TliParam, v: f64) -> Result<f64, WaterError> {
    if !v.is_finite() {
        return Err(WaterError::NotFinite {
            param: p.name().into(),
        });
    }
    if v <= 0.0 {
        return Err(WaterError::OutOfRange {
            param: p.name().into(),
            value: v,
            range: "> 0 (the TLI takes its logarithm)",
        });
    }
    Ok(v)
}

/// Compute TLI(Σ). Errors: no parameter, or a value that is not finite and > 0 (named).
pub fn tli(input: &TliInput) -> Result<TliResult, WaterError> {
    let mut per_param = BTreeMap::new();
    let mut missing = Vec::new();
    for p in TliParam::ALL {
        match input.get(p) {
            Some(v) => {
                per_param.insert(p, p.index(positive(p, v)?));
            }
            None => missing.push(p),
        }
    }
    if per_param.is_empty() {
        return Err(WaterError::NoTliParam);
    }
    let r2_sum: f64 = per_param.keys().map(|p| p.r_with_chla().powi(2)).sum();
    let weights: BTreeMap<TliParam, f64> = per_param
        .keys()
        .map(|&p| (p, p.r_with_chla().powi(2) / r2_sum))
        .collect();
    let tli = num::stored(per_param.iter().map(|(p, t)| weights[p] * t).sum());
    let dp = decimals_to_show(tli, &GRADE_BOUNDARIES, TLI_DECIMALS.0, TLI_DECIMALS.1);
    Ok(TliResult {
        tli,
        tli_reported: round_dp(tli, dp),
        reported_decimals: dp,
        grade: TrophicGrade::from_tli(tli),
        per_param,
        weights,
        missing,
        sd_measured_at: input.sd.and_then(|s| s.measured_at),
    })
}

impl TliResult {
    /// JSON as printed by `envmon calc tli`: `tli` as reported ([`TliResult::tli_reported`]),
    /// `tli_raw` the full value the grade was judged on, per-parameter TLI 1 decimal, weights
    /// 4 decimals.
    pub fn to_json(&self) -> Value {
        let map = |m: &BTreeMap<TliParam, f64>, d: u32| {
            m.iter()
                .map(|(p, v)| (p.name().to_string(), Value::from(round_dp(*v, d))))
                .collect::<Map<_, _>>()
        };
        let mut o = json!({
            "tli": self.tli_reported,
            "tli_raw": self.tli,
            "grade": {"zh": self.grade.zh(), "en": self.grade.en()},
            "per_param": map(&self.per_param, 1),
            "weights": map(&self.weights, 4),
            "missing": self.missing.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "renormalised": !self.missing.is_empty(),
        });
        if let Some(t) = self.sd_measured_at {
            o["sd_measured_at"] = Value::from(t.to_rfc3339());
        }
        o
    }
}
