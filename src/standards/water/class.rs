//! GB 3838-2002 single-factor classification (单因子评价法) of one sample.
//!
//! Tables are data ([`WaterStandard::limits`]); the rules are:
//! - per parameter the class is the best class whose limit the value meets; boundary values belong
//!   to the better class (`<=` for maximum-type items, `>=` for DO); worse than V is 劣Ⅴ (class 6);
//! - a value is compared with a limit by GB/T 8170-2008 §4.3.3 full-value comparison (全数值比较法:
//!   the value as measured or averaged, not rounded first; GB 3838-2002 prescribes no other
//!   method), in exact decimal ([`crate::num::cmp_full`]), so 1.0 mg/L NH3-N is class III and
//!   1.0001 is class IV, and binary noise of a mean cannot move a value across a limit;
//! - pH inside 6–9 meets every class (counts as I), outside is 劣Ⅴ;
//! - the class of a sample is the worst class of the evaluated parameters, and every parameter with
//!   that class is a determining parameter;
//! - routine evaluation (地表水环境质量评价办法(试行), 环办[2011]22号) leaves out water temperature, TN
//!   and fecal coliform ([`EvalOptions::routine`]); TN and fecal coliform are then still classed
//!   and reported on their own ([`SampleClass::separate`], [`SampleClass::items`] marked excluded);
//!   TN of a river never enters the class (GB 3838-2002 Table 1 gives TN for lakes and reservoirs
//!   only) but is classed against that column for reference, as Chinese bulletins report it;
//! - values flagged other than `N` are not evaluated (HJ 212-2017 §6.5).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{json, Map, Value};

use crate::model::WaterClass;
use crate::model::{BodyType, Flag};
use crate::num::{cmp_full, round_dp};

use super::WaterError;

/// Edition of the surface-water standard whose Table 1 is used. A future edition is a new variant
/// plus its table; nothing else changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WaterStandard {
    /// GB 3838-2002 地表水环境质量标准 (in force since 2002-06-01).
    #[default]
    Gb3838_2002,
}

impl WaterStandard {
    /// Label used in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            WaterStandard::Gb3838_2002 => "GB 3838-2002",
        }
    }
}

/// A GB 3838-2002 Table 1 basic item (基本项目), by its canonical envmon name (docs/schema.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    WaterTemp,
    Ph,
    Do,
    Codmn,
    Cod,
    Bod5,
    Nh3n,
    Tp,
    Tn,
    Cu,
    Zn,
    F,
    Se,
    As,
    Hg,
    Cd,
    Cr6,
    Pb,
    Cn,
    Phenol,
    Petroleum,
    Las,
    Sulfide,
    FecalColiform,
}

impl Param {
    /// All Table 1 items in the order of the standard.
    pub const ALL: [Param; 24] = [
        Param::WaterTemp,
        Param::Ph,
        Param::Do,
        Param::Codmn,
        Param::Cod,
        Param::Bod5,
        Param::Nh3n,
        Param::Tp,
        Param::Tn,
        Param::Cu,
        Param::Zn,
        Param::F,
        Param::Se,
        Param::As,
        Param::Hg,
        Param::Cd,
        Param::Cr6,
        Param::Pb,
        Param::Cn,
        Param::Phenol,
        Param::Petroleum,
        Param::Las,
        Param::Sulfide,
        Param::FecalColiform,
    ];

    /// Canonical name (docs/schema.md).
    pub fn name(self) -> &'static str {
        match self {
            Param::WaterTemp => "water_temp",
            Param::Ph => "ph",
            Param::Do => "do",
            Param::Codmn => "codmn",
            Param::Cod => "cod",
            Param::Bod5 => "bod5",
            Param::Nh3n => "nh3n",
            Param::Tp => "tp",
            Param::Tn => "tn",
            Param::Cu => "cu",
            Param::Zn => "zn",
            Param::F => "f",
            Param::Se => "se",
            Param::As => "as",
            Param::Hg => "hg",
            Param::Cd => "cd",
            Param::Cr6 => "cr6",
            Param::Pb => "pb",
            Param::Cn => "cn",
            Param::Phenol => "phenol",
            Param::Petroleum => "petroleum",
            Param::Las => "las",
            Param::Sulfide => "sulfide",
            Param::FecalColiform => "fecal_coliform",
        }
    }

    /// Chinese name as GB 3838-2002 Table 1 writes it.
    pub fn name_zh(self) -> &'static str {
        match self {
            Param::WaterTemp => "水温",
            Param::Ph => "pH值",
            Param::Do => "溶解氧",
            Param::Codmn => "高锰酸盐指数",
            Param::Cod => "化学需氧量",
            Param::Bod5 => "五日生化需氧量",
            Param::Nh3n => "氨氮",
            Param::Tp => "总磷",
            Param::Tn => "总氮",
            Param::Cu => "铜",
            Param::Zn => "锌",
            Param::F => "氟化物",
            Param::Se => "硒",
            Param::As => "砷",
            Param::Hg => "汞",
            Param::Cd => "镉",
            Param::Cr6 => "铬(六价)",
            Param::Pb => "铅",
            Param::Cn => "氰化物",
            Param::Phenol => "挥发酚",
            Param::Petroleum => "石油类",
            Param::Las => "阴离子表面活性剂",
            Param::Sulfide => "硫化物",
            Param::FecalColiform => "粪大肠菌群",
        }
    }

    /// Unit of the Table 1 limits (values must be given in it).
    pub fn unit(self) -> &'static str {
        match self {
            Param::WaterTemp => "°C",
            Param::Ph => "",
            Param::FecalColiform => "个/L (count/L)",
            _ => "mg/L",
        }
    }

    /// Parse a canonical name (case-insensitive).
    pub fn from_name(s: &str) -> Option<Param> {
        let s = s.trim().to_ascii_lowercase();
        Param::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Param {
    type Err = WaterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Param::from_name(s).ok_or_else(|| WaterError::UnknownParam(s.trim().to_string()))
    }
}

/// How a Table 1 item is compared with its limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limits {
    /// Value `<=` limit meets the class (limits of classes I..V).
    AtMost([f64; 5]),
    /// Value `>=` limit meets the class (DO).
    AtLeast([f64; 5]),
    /// Value inside `[lo, hi]` meets every class; outside is 劣Ⅴ (pH).
    Within { lo: f64, hi: f64 },
    /// Item without a class limit for this body type (water temperature; TN in rivers).
    NotClassified,
}

impl Limits {
    /// The limit of class `class` (1..=5), if the item has per-class limits.
    pub fn limit(self, class: WaterClass) -> Option<f64> {
        let i = usize::from(class.0).checked_sub(1)?;
        match self {
            Limits::AtMost(l) | Limits::AtLeast(l) => l.get(i).copied(),
            _ => None,
        }
    }
}

// ---- GB 3838-2002 Table 1 (地表水环境质量标准基本项目标准限值), classes I..V, mg/L unless noted ----

/// GB 3838-2002 Table 1 item 2: pH 6–9 (dimensionless), the same range for classes I–V.
pub(super) const PH_RANGE: (f64, f64) = (6.0, 9.0);
/// GB 3838-2002 Table 1 item 3: DO 溶解氧 ≥ 7.5 (or 90 % saturation; the saturation alternative
/// of class I is not implemented), 6, 5, 3, 2.
const DO: [f64; 5] = [7.5, 6.0, 5.0, 3.0, 2.0];
/// GB 3838-2002 Table 1 item 4: CODMn 高锰酸盐指数 ≤ 2, 4, 6, 10, 15.
const CODMN: [f64; 5] = [2.0, 4.0, 6.0, 10.0, 15.0];
/// GB 3838-2002 Table 1 item 5: COD 化学需氧量 ≤ 15, 15, 20, 30, 40.
const COD: [f64; 5] = [15.0, 15.0, 20.0, 30.0, 40.0];
/// GB 3838-2002 Table 1 item 6: BOD5 五日生化需氧量 ≤ 3, 3, 4, 6, 10.
const BOD5: [f64; 5] = [3.0, 3.0, 4.0, 6.0, 10.0];
/// GB 3838-2002 Table 1 item 7: NH3-N 氨氮 ≤ 0.15, 0.5, 1.0, 1.5, 2.0.
const NH3N: [f64; 5] = [0.15, 0.5, 1.0, 1.5, 2.0];
/// GB 3838-2002 Table 1 item 8: TP 总磷 (as P), rivers ≤ 0.02, 0.1, 0.2, 0.3, 0.4.
const TP_RIVER: [f64; 5] = [0.02, 0.1, 0.2, 0.3, 0.4];
/// GB 3838-2002 Table 1 item 8: TP 总磷 (as P), lakes and reservoirs (湖、库)
/// ≤ 0.01, 0.025, 0.05, 0.1, 0.2.
const TP_LAKE: [f64; 5] = [0.01, 0.025, 0.05, 0.1, 0.2];
/// GB 3838-2002 Table 1 item 9: TN 总氮 (lakes and reservoirs, as N) ≤ 0.2, 0.5, 1.0, 1.5, 2.0.
const TN_LAKE: [f64; 5] = [0.2, 0.5, 1.0, 1.5, 2.0];
/// GB 3838-2002 Table 1 item 10: Cu 铜 ≤ 0.01, 1.0, 1.0, 1.0, 1.0.
const CU: [f64; 5] = [0.01, 1.0, 1.0, 1.0, 1.0];
/// GB 3838-2002 Table 1 item 11: Zn 锌 ≤ 0.05, 1.0, 1.0, 2.0, 2.0.
const ZN: [f64; 5] = [0.05, 1.0, 1.0, 2.0, 2.0];
/// GB 3838-2002 Table 1 item 12: fluoride 氟化物 (as F⁻) ≤ 1.0, 1.0, 1.0, 1.5, 1.5.
const F: [f64; 5] = [1.0, 1.0, 1.0, 1.5, 1.5];
/// GB 3838-2002 Table 1 item 13: Se 硒 ≤ 0.01, 0.01, 0.01, 0.02, 0.02.
const SE: [f64; 5] = [0.01, 0.01, 0.01, 0.02, 0.02];
/// GB 3838-2002 Table 1 item 14: As 砷 ≤ 0.05, 0.05, 0.05, 0.1, 0.1.
const AS: [f64; 5] = [0.05, 0.05, 0.05, 0.1, 0.1];
/// GB 3838-2002 Table 1 item 15: Hg 汞 ≤ 0.00005, 0.00005, 0.0001, 0.001, 0.001.
const HG: [f64; 5] = [0.00005, 0.00005, 0.0001, 0.001, 0.001];
/// GB 3838-2002 Table 1 item 16: Cd 镉 ≤ 0.001, 0.005, 0.005, 0.005, 0.01.
const CD: [f64; 5] = [0.001, 0.005, 0.005, 0.005, 0.01];
/// GB 3838-2002 Table 1 item 17: Cr(VI) 铬(六价) ≤ 0.01, 0.05, 0.05, 0.05, 0.1.
const CR6: [f64; 5] = [0.01, 0.05, 0.05, 0.05, 0.1];
/// GB 3838-2002 Table 1 item 18: Pb 铅 ≤ 0.01, 0.01, 0.05, 0.05, 0.1.
const PB: [f64; 5] = [0.01, 0.01, 0.05, 0.05, 0.1];
/// GB 3838-2002 Table 1 item 19: cyanide 氰化物 ≤ 0.005, 0.05, 0.2, 0.2, 0.2.
const CN: [f64; 5] = [0.005, 0.05, 0.2, 0.2, 0.2];
/// GB 3838-2002 Table 1 item 20: volatile phenol 挥发酚 ≤ 0.002, 0.002, 0.005, 0.01, 0.1.
const PHENOL: [f64; 5] = [0.002, 0.002, 0.005, 0.01, 0.1];
/// GB 3838-2002 Table 1 item 21: petroleum 石油类 ≤ 0.05, 0.05, 0.05, 0.5, 1.0.
const PETROLEUM: [f64; 5] = [0.05, 0.05, 0.05, 0.5, 1.0];
/// GB 3838-2002 Table 1 item 22: LAS 阴离子表面活性剂 ≤ 0.2, 0.2, 0.2, 0.3, 0.3.
const LAS: [f64; 5] = [0.2, 0.2, 0.2, 0.3, 0.3];
/// GB 3838-2002 Table 1 item 23: sulfide 硫化物 ≤ 0.05, 0.1, 0.2, 0.5, 1.0.
const SULFIDE: [f64; 5] = [0.05, 0.1, 0.2, 0.5, 1.0];
/// GB 3838-2002 Table 1 item 24: fecal coliform 粪大肠菌群 (个/L) ≤ 200, 2000, 10000, 20000, 40000.
const FECAL_COLIFORM: [f64; 5] = [200.0, 2000.0, 10000.0, 20000.0, 40000.0];

impl WaterStandard {
    /// The Table 1 limits of `param` for a water body of type `body`.
    pub fn limits(self, param: Param, body: BodyType) -> Limits {
        match self {
            WaterStandard::Gb3838_2002 => gb3838_2002(param, body),
        }
    }

    /// The limits an item is classed against when it is reported on its own: [`Self::limits`],
    /// except TN of a river, which GB 3838-2002 does not limit: classed against the Table 1 TN
    /// column (湖、库) for reference, never entering the class.
    pub fn reference_limits(self, param: Param, body: BodyType) -> Limits {
        match (self, param) {
            (WaterStandard::Gb3838_2002, Param::Tn) => Limits::AtMost(TN_LAKE),
            _ => self.limits(param, body),
        }
    }
}

fn gb3838_2002(param: Param, body: BodyType) -> Limits {
    use Limits::AtMost;
    match param {
        // Item 1 (water temperature) limits the man-made change, not a class threshold.
        Param::WaterTemp => Limits::NotClassified,
        Param::Ph => Limits::Within {
            lo: PH_RANGE.0,
            hi: PH_RANGE.1,
        },
        Param::Do => Limits::AtLeast(DO),
        Param::Codmn => AtMost(CODMN),
        Param::Cod => AtMost(COD),
        Param::Bod5 => AtMost(BOD5),
        Param::Nh3n => AtMost(NH3N),
        Param::Tp if body.is_lake_like() => AtMost(TP_LAKE),
        Param::Tp => AtMost(TP_RIVER),
        Param::Tn if body.is_lake_like() => AtMost(TN_LAKE),
        Param::Tn => Limits::NotClassified,
        Param::Cu => AtMost(CU),
        Param::Zn => AtMost(ZN),
        Param::F => AtMost(F),
        Param::Se => AtMost(SE),
        Param::As => AtMost(AS),
        Param::Hg => AtMost(HG),
        Param::Cd => AtMost(CD),
        Param::Cr6 => AtMost(CR6),
        Param::Pb => AtMost(PB),
        Param::Cn => AtMost(CN),
        Param::Phenol => AtMost(PHENOL),
        Param::Petroleum => AtMost(PETROLEUM),
        Param::Las => AtMost(LAS),
        Param::Sulfide => AtMost(SULFIDE),
        Param::FecalColiform => AtMost(FECAL_COLIFORM),
    }
}

/// 劣Ⅴ (worse than class V).
pub const WORSE_THAN_V: WaterClass = WaterClass(6);

/// Single-factor class of one value; `None` for items without class limits (water temperature,
/// river TN). The value is not validated here (see [`validate`]).
pub fn single_factor_class(
    standard: WaterStandard,
    param: Param,
    body: BodyType,
    value: f64,
) -> Option<WaterClass> {
    class_by_limits(standard.limits(param, body), value)
}

/// Class of `value` against `limits` by full-value comparison (GB/T 8170-2008 §4.3.3); a value
/// that is not finite is 劣Ⅴ (it meets no limit). `None` for [`Limits::NotClassified`].
pub fn class_by_limits(limits: Limits, value: f64) -> Option<WaterClass> {
    let meets = |lim: f64, ok: fn(Ordering) -> bool| cmp_full(value, lim).is_some_and(ok);
    let class = match limits {
        Limits::AtMost(l) => l
            .iter()
            .position(|&lim| meets(lim, Ordering::is_le))
            .map_or(6, |i| i as u8 + 1),
        Limits::AtLeast(l) => l
            .iter()
            .position(|&lim| meets(lim, Ordering::is_ge))
            .map_or(6, |i| i as u8 + 1),
        Limits::Within { lo, hi } => {
            if meets(lo, Ordering::is_ge) && meets(hi, Ordering::is_le) {
                1
            } else {
                6
            }
        }
        Limits::NotClassified => return None,
    };
    Some(WaterClass(class))
}

/// Reject values that cannot be a measurement of `param`: not finite, negative, pH outside 0–14.
pub fn validate(param: Param, value: f64) -> Result<(), WaterError> {
    let name = param.name().to_string();
    if !value.is_finite() {
        return Err(WaterError::NotFinite { param: name });
    }
    match param {
        // Water temperature may be slightly below 0 °C; only finiteness matters.
        Param::WaterTemp => Ok(()),
        Param::Ph if !(0.0..=14.0).contains(&value) => Err(WaterError::OutOfRange {
            param: name,
            value,
            range: "0–14",
        }),
        _ if value < 0.0 => Err(WaterError::OutOfRange {
            param: name,
            value,
            range: "≥ 0",
        }),
        _ => Ok(()),
    }
}

/// Exceedance multiple (超标倍数) of `value` against the limit of `target` class:
/// `(C − limit) / limit` for maximum-type items, `(limit − C) / limit` for DO (a minimum; an
/// envmon convention – the 2011 evaluation method is commonly quoted as not computing multiples
/// for pH and DO). `None` for pH (a range has no multiple) and items without limits, and when the
/// value meets the target.
pub fn exceedance_multiple(
    standard: WaterStandard,
    param: Param,
    body: BodyType,
    value: f64,
    target: WaterClass,
) -> Option<f64> {
    multiple_by_limits(standard.limits(param, body), value, target)
}

/// [`exceedance_multiple`] against given limits, computed in exact decimal ([`crate::num::ratio`]).
pub fn multiple_by_limits(limits: Limits, value: f64, target: WaterClass) -> Option<f64> {
    let limit = limits.limit(target)?;
    if limit <= 0.0 {
        return None;
    }
    let m = match limits {
        Limits::AtMost(_) => crate::num::ratio(crate::num::diff(value, limit)?, limit)?,
        Limits::AtLeast(_) => crate::num::ratio(crate::num::diff(limit, value)?, limit)?,
        _ => return None,
    };
    (m > 0.0 && class_by_limits(limits, value)? > target).then_some(m)
}

/// One value to evaluate, with its HJ 212 quality flag (only `N` is evaluated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    pub value: f64,
    pub flag: Flag,
}

impl Obs {
    /// A value flagged `N`.
    pub fn new(value: f64) -> Obs {
        Obs {
            value,
            flag: Flag::N,
        }
    }
}

/// What enters the class. [`EvalOptions::routine`] (the default) follows the 2011 evaluation method.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    pub standard: WaterStandard,
    /// Items left out of the class (classed separately where they have limits).
    pub exclude: BTreeSet<Param>,
}

impl EvalOptions {
    /// 地表水环境质量评价办法(试行) (环办[2011]22号): water temperature, TN and fecal coliform are
    /// not part of the routine class (TN of lakes/reservoirs and fecal coliform are reported
    /// separately).
    pub fn routine() -> EvalOptions {
        EvalOptions {
            standard: WaterStandard::Gb3838_2002,
            exclude: [Param::WaterTemp, Param::Tn, Param::FecalColiform]
                .into_iter()
                .collect(),
        }
    }

    /// Every Table 1 item that has a limit for the body type enters the class.
    pub fn all_items() -> EvalOptions {
        EvalOptions {
            standard: WaterStandard::Gb3838_2002,
            exclude: BTreeSet::new(),
        }
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions::routine()
    }
}

/// One factor worse than the target class.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceedance {
    pub param: Param,
    pub value: f64,
    pub class: WaterClass,
    /// Limit of the target class (`None` for pH, whose limit is the 6–9 range).
    pub limit: Option<f64>,
    /// Exceedance multiple, see [`exceedance_multiple`].
    pub multiple: Option<f64>,
}

/// Why an item given does not enter the class of the sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exclusion {
    /// Left out by the evaluation options (routine evaluation: TN, fecal coliform, water
    /// temperature; 环办[2011]22号); still classed where it has limits.
    Routine,
    /// GB 3838-2002 has no limit for this body type (TN of a river, Table 1 item 9 is for lakes
    /// and reservoirs): classed against that column for reference only.
    NoLimitForBody,
    /// The item has no class limits at all (water temperature: Table 1 limits its man-made
    /// change, not a class).
    NoClassLimits,
    /// Flagged other than `N` (HJ 212-2017 §6.5): not evaluated, not classed.
    Flagged(Flag),
}

impl Exclusion {
    /// Machine name in JSON (`routine`, `no_limit_for_body`, `no_class_limits`, `flagged`).
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::Routine => "routine",
            Exclusion::NoLimitForBody => "no_limit_for_body",
            Exclusion::NoClassLimits => "no_class_limits",
            Exclusion::Flagged(_) => "flagged",
        }
    }

    /// Bilingual reason, Chinese first.
    pub fn text(self) -> (&'static str, &'static str) {
        match self {
            Exclusion::Routine => (
                "常规评价不参与水质类别评价，单独评价",
                "left out of the class by routine evaluation; classed on its own",
            ),
            Exclusion::NoLimitForBody => (
                "GB 3838-2002 对该水体类型无此项限值，按湖、库限值单独评价（仅供参考）",
                "GB 3838-2002 sets no limit for this body type; classed against the lake/reservoir column for reference",
            ),
            Exclusion::NoClassLimits => ("无类别限值", "no class limits"),
            Exclusion::Flagged(_) => (
                "数据标记非 N，不参与评价",
                "flagged other than N; not evaluated",
            ),
        }
    }
}

/// The class of one item given, whether or not it enters the class of the sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemClass {
    /// The value judged (as given or the period mean: the full value, GB/T 8170 §4.3.3).
    pub value: f64,
    pub flag: Flag,
    /// Single-factor class; `None` without class limits or when flagged.
    pub class: Option<WaterClass>,
    /// The Table 1 limit that decided the class: the limit of the class met (for 劣Ⅴ the class V
    /// limit exceeded); `None` for pH (a range) and items without limits.
    pub limit: Option<f64>,
    /// `None`: the item enters the class of the sample.
    pub excluded: Option<Exclusion>,
}

/// Result of classifying one sample (or one period mean).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleClass {
    pub standard: WaterStandard,
    pub body: BodyType,
    /// Worst class of the evaluated items; `None` when no item could be evaluated.
    pub class: Option<WaterClass>,
    /// Every evaluated item whose class equals `class` (empty when `class` is `None`).
    pub determining: Vec<Param>,
    /// Class of each evaluated item.
    pub per_param: BTreeMap<Param, WaterClass>,
    /// Items given but not part of the class (options, or no limit for this body type).
    pub excluded: Vec<Param>,
    /// Own class of excluded items that can be classed (TN — a river's against the lake column
    /// for reference —, fecal coliform): reported separately.
    pub separate: BTreeMap<Param, WaterClass>,
    /// Items not evaluated because their flag is not `N`.
    pub not_evaluated: BTreeMap<Param, Flag>,
    /// Every item given, with its class and why it does not enter the class, if it does not.
    pub items: BTreeMap<Param, ItemClass>,
    pub target: Option<WaterClass>,
    /// `class <= target`; `None` without a target or without a class.
    pub meets_target: Option<bool>,
    /// Evaluated items worse than the target, ordered by multiple (largest first), pH last.
    pub exceedances: Vec<Exceedance>,
    /// Separately reported items worse than the target (e.g. lake TN).
    pub separate_exceedances: Vec<Exceedance>,
}

/// The limit that decided `class` under `limits` (see [`ItemClass::limit`]).
fn deciding_limit(limits: Limits, class: WaterClass) -> Option<f64> {
    limits.limit(WaterClass(class.0.min(5)))
}

/// Classify one sample. Errors name the first `N`-flagged item whose value is impossible.
pub fn evaluate(
    body: BodyType,
    obs: &BTreeMap<Param, Obs>,
    target: Option<WaterClass>,
    opts: &EvalOptions,
) -> Result<SampleClass, WaterError> {
    let std = opts.standard;
    let mut per_param = BTreeMap::new();
    let mut excluded = Vec::new();
    let mut separate = BTreeMap::new();
    let mut not_evaluated = BTreeMap::new();
    let mut items = BTreeMap::new();
    for (&param, o) in obs {
        if !o.flag.is_valid() {
            not_evaluated.insert(param, o.flag);
            items.insert(
                param,
                ItemClass {
                    value: o.value,
                    flag: o.flag,
                    class: None,
                    limit: None,
                    excluded: Some(Exclusion::Flagged(o.flag)),
                },
            );
            continue;
        }
        validate(param, o.value)?;
        let limits = std.limits(param, body);
        let reference = std.reference_limits(param, body);
        let (class, exclusion, used) = match class_by_limits(limits, o.value) {
            Some(c) if !opts.exclude.contains(&param) => {
                per_param.insert(param, c);
                (Some(c), None, limits)
            }
            Some(c) => {
                excluded.push(param);
                separate.insert(param, c);
                (Some(c), Some(Exclusion::Routine), limits)
            }
            None => {
                excluded.push(param);
                match class_by_limits(reference, o.value) {
                    Some(c) => {
                        separate.insert(param, c);
                        (Some(c), Some(Exclusion::NoLimitForBody), reference)
                    }
                    None => (None, Some(Exclusion::NoClassLimits), reference),
                }
            }
        };
        items.insert(
            param,
            ItemClass {
                value: o.value,
                flag: o.flag,
                class,
                limit: class.and_then(|c| deciding_limit(used, c)),
                excluded: exclusion,
            },
        );
    }
    let class = per_param.values().copied().max();
    let determining = match class {
        Some(worst) => per_param
            .iter()
            .filter(|(_, &c)| c == worst)
            .map(|(&p, _)| p)
            .collect(),
        None => Vec::new(),
    };
    let exceed = |classes: &BTreeMap<Param, WaterClass>| -> Vec<Exceedance> {
        let Some(t) = target else { return Vec::new() };
        let mut v: Vec<Exceedance> = classes
            .iter()
            .filter(|(_, &c)| c > t)
            .map(|(&param, &class)| {
                let value = items[&param].value;
                let limits = std.reference_limits(param, body);
                Exceedance {
                    param,
                    value,
                    class,
                    limit: limits.limit(t),
                    multiple: multiple_by_limits(limits, value, t),
                }
            })
            .collect();
        v.sort_by(|a, b| {
            let key = |e: &Exceedance| e.multiple.unwrap_or(f64::NEG_INFINITY);
            key(b).total_cmp(&key(a))
        });
        v
    };
    Ok(SampleClass {
        standard: std,
        body,
        class,
        determining,
        exceedances: exceed(&per_param),
        separate_exceedances: exceed(&separate),
        per_param,
        excluded,
        separate,
        not_evaluated,
        items,
        target,
        meets_target: target.zip(class).map(|(t, c)| c <= t),
    })
}

/// Bilingual label: `Ⅲ类` / `class III`, `劣Ⅴ类` / `worse than class V`.
pub fn class_label(c: WaterClass) -> (&'static str, &'static str) {
    match c.0 {
        1 => ("Ⅰ类", "class I"),
        2 => ("Ⅱ类", "class II"),
        3 => ("Ⅲ类", "class III"),
        4 => ("Ⅳ类", "class IV"),
        5 => ("Ⅴ类", "class V"),
        _ => ("劣Ⅴ类", "worse than class V"),
    }
}

/// Qualitative water status (水质状况) of a class as used with the 2011 evaluation method:
/// I–II 优 excellent, III 良好 good, IV 轻度污染 slightly polluted, V 中度污染 moderately polluted,
/// 劣Ⅴ 重度污染 heavily polluted. (Mapping from the 2011 method as commonly quoted; standards.md
/// §4 marks it UNVERIFIED.)
pub fn quality_label(c: WaterClass) -> (&'static str, &'static str) {
    match c.0 {
        1 | 2 => ("优", "excellent"),
        3 => ("良好", "good"),
        4 => ("轻度污染", "slightly polluted"),
        5 => ("中度污染", "moderately polluted"),
        _ => ("重度污染", "heavily polluted"),
    }
}

fn bilingual(pair: (&str, &str)) -> Value {
    json!({"zh": pair.0, "en": pair.1})
}

fn exceedance_json(list: &[Exceedance]) -> Value {
    let mut m = Map::new();
    for e in list {
        m.insert(
            e.param.name().into(),
            json!({
                "value": e.value,
                "class": e.class.roman(),
                "limit": e.limit,
                "multiple": e.multiple.map(|x| round_dp(x, 2)),
            }),
        );
    }
    Value::Object(m)
}

/// `{"<param>": {"value", "class", "class_num", "limit", "excluded", "reason"?}}` for every item
/// given; `reason` (`{"code", "zh", "en"}`) only for excluded items, `flag` only when not `N`.
fn items_json(items: &BTreeMap<Param, ItemClass>) -> Value {
    let mut m = Map::new();
    for (p, it) in items {
        let mut o = Map::new();
        o.insert("value".into(), it.value.into());
        o.insert("class".into(), it.class.map(WaterClass::roman).into());
        o.insert("class_num".into(), it.class.map(|c| c.0).into());
        o.insert("limit".into(), it.limit.into());
        o.insert("excluded".into(), it.excluded.is_some().into());
        if let Some(e) = it.excluded {
            let (zh, en) = e.text();
            o.insert(
                "reason".into(),
                json!({"code": e.as_str(), "zh": zh, "en": en}),
            );
        }
        if it.flag != Flag::N {
            o.insert("flag".into(), it.flag.as_str().into());
        }
        m.insert(p.name().into(), Value::Object(o));
    }
    Value::Object(m)
}

impl SampleClass {
    /// The JSON object the CLI prints and the HTTP API serves (keys `class`, `class_num`,
    /// `determining`, `per_param`, `excluded` are fixed; the rest are extensions).
    pub fn to_json(&self) -> Value {
        let names = |v: &[Param]| v.iter().map(|p| p.name()).collect::<Vec<_>>();
        let classes = |m: &BTreeMap<Param, WaterClass>| {
            m.iter()
                .map(|(p, c)| (p.name().to_string(), Value::from(c.roman())))
                .collect::<Map<_, _>>()
        };
        let mut o = Map::new();
        o.insert("standard".into(), self.standard.as_str().into());
        o.insert("body".into(), self.body.as_str().into());
        o.insert("class".into(), self.class.map(WaterClass::roman).into());
        o.insert("class_num".into(), self.class.map(|c| c.0).into());
        o.insert(
            "label".into(),
            self.class
                .map_or(Value::Null, |c| bilingual(class_label(c))),
        );
        o.insert(
            "quality".into(),
            self.class
                .map_or(Value::Null, |c| bilingual(quality_label(c))),
        );
        o.insert("determining".into(), json!(names(&self.determining)));
        o.insert("per_param".into(), Value::Object(classes(&self.per_param)));
        o.insert("excluded".into(), json!(names(&self.excluded)));
        o.insert("separate".into(), Value::Object(classes(&self.separate)));
        o.insert("items".into(), items_json(&self.items));
        if !self.not_evaluated.is_empty() {
            let ne: Map<_, _> = self
                .not_evaluated
                .iter()
                .map(|(p, f)| (p.name().to_string(), Value::from(f.as_str())))
                .collect();
            o.insert("not_evaluated".into(), Value::Object(ne));
        }
        if let Some(t) = self.target {
            o.insert("target".into(), t.roman().into());
            o.insert("meets_target".into(), self.meets_target.into());
            o.insert("exceedance".into(), exceedance_json(&self.exceedances));
            o.insert(
                "separate_exceedance".into(),
                exceedance_json(&self.separate_exceedances),
            );
        }
        Value::Object(o)
    }
}
