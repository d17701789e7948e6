//! Surface-water indicators, pure (tables as data, no I/O):
//!
//! - [`class`]: GB 3838-2002 single-factor class of a sample, determining factors, exceedance
//!   multiples against a target, routine exclusions of the 2011 evaluation method;
//! - [`tli`]: lake comprehensive trophic level index TLI(Σ) (CNEMC 总站生字[2001]090号);
//! - [`bloom`]: cyanobacteria bloom-risk level (configurable thresholds, not a standard);
//! - [`aggregate`]: daily / monthly / year-to-date means with validity rules, class and target
//!   compliance per section and period, group statistics;
//! - the `envmon calc water-class` and `envmon calc tli` commands.
//!
//! Rules and sources: docs/indicators.md (section "Water").

pub mod aggregate;
pub mod bloom;
pub mod class;
pub mod tli;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::model::WaterClass;
use crate::model::{BodyType, Flag};

pub use aggregate::{
    daily_means, evaluate_period, group_members, group_stats, section_report, AggregationRules,
    DailyRule, DayMeans, GroupStats, Period, PeriodResult, PhRule, Section, SectionReport, Stat,
    TimedObs, WorstSection, YtdBasis,
};
pub use bloom::{bloom_risk, BloomInput, BloomLevel, BloomRisk, BloomThresholds};
pub use class::{
    class_by_limits, class_label, evaluate, exceedance_multiple, multiple_by_limits, quality_label,
    single_factor_class, EvalOptions, Exceedance, Exclusion, ItemClass, Limits, Obs, Param,
    SampleClass, WaterStandard, WORSE_THAN_V,
};
pub use tli::{tli, SdLog, TliInput, TliParam, TliResult, Transparency, TrophicGrade};

/// Errors of the water calculations; every message names the parameter or argument at fault,
/// in Chinese first, English beside.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WaterError {
    #[error("未知参数 {0:?} / unknown parameter {0:?} (GB 3838-2002 items: ph, do, codmn, cod, bod5, nh3n, tp, tn, cu, zn, f, se, as, hg, cd, cr6, pb, cn, phenol, petroleum, las, sulfide, fecal_coliform, water_temp)")]
    UnknownParam(String),
    #[error("{param}: 数值无效 / value is not a finite number")]
    NotFinite { param: String },
    #[error("{param}: 数值 {value} 超出范围 / value {value} out of range (must be {range})")]
    OutOfRange {
        param: String,
        value: f64,
        range: &'static str,
    },
    #[error("{0}: 参数重复 / given more than once")]
    Duplicate(String),
    #[error("{arg:?}: 格式错误 / malformed argument: {reason}")]
    BadArg { arg: String, reason: String },
    #[error("未给出 TLI 参数 / no TLI parameter given (chla, tp, tn, sd, codmn)")]
    NoTliParam,
    #[error("配置错误 / bad configuration: {0}")]
    BadConfig(String),
    #[error("没有可评价的项目 / no item could be evaluated{0}")]
    NothingEvaluated(String),
}

/// `envmon calc water-class` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CalcWaterClassArgs {
    /// Water body type (selects the GB 3838-2002 TP column): river, lake or reservoir.
    #[arg(long, value_parser = |s: &str| s.parse::<BodyType>())]
    pub body: BodyType,
    /// Target class (I..V): adds `target`, `meets_target` and `exceedance` (multiples).
    #[arg(long)]
    pub target: Option<String>,
    /// Items to evaluate although routine evaluation leaves them out (tn, fecal_coliform);
    /// repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// name=value pairs with canonical names (mg/L; pH dimensionless; fecal_coliform count/L);
    /// an optional HJ 212 flag after a colon, e.g. `cod=18:M` (only N is evaluated).
    #[arg(required = true, value_name = "NAME=VALUE")]
    pub values: Vec<String>,
}

/// `envmon calc tli` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CalcTliArgs {
    /// When the transparency (sd) was measured, RFC 3339 (e.g. 2026-11-20T09:30:00+08:00).
    #[arg(long)]
    pub sd_time: Option<String>,
    /// name=value pairs: chla (mg/m³ = µg/L), tp, tn, codmn (mg/L), sd (m); any subset.
    #[arg(required = true, value_name = "NAME=VALUE")]
    pub values: Vec<String>,
}

fn split_pair(arg: &str) -> Result<(&str, &str), WaterError> {
    let bad = |reason: &str| WaterError::BadArg {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected name=value"))?;
    if name.trim().is_empty() {
        return Err(bad("empty parameter name"));
    }
    Ok((name.trim(), value.trim()))
}

fn parse_number(param: &str, s: &str) -> Result<f64, WaterError> {
    let v: f64 = s.parse().map_err(|_| WaterError::BadArg {
        arg: format!("{param}={s}"),
        reason: format!("{s:?} is not a number / 不是数字"),
    })?;
    if !v.is_finite() {
        return Err(WaterError::NotFinite {
            param: param.to_string(),
        });
    }
    Ok(v)
}

/// Parse `name=value[:FLAG]` arguments into GB 3838 observations.
pub fn parse_water_values(args: &[String]) -> Result<BTreeMap<Param, Obs>, WaterError> {
    let mut out = BTreeMap::new();
    for arg in args {
        let (name, rest) = split_pair(arg)?;
        let param = Param::from_name(name).ok_or_else(|| match name.to_ascii_lowercase().as_str() {
            "chla" | "sd" => WaterError::BadArg {
                arg: arg.clone(),
                reason: format!(
                    "{name} 不是 GB 3838-2002 表1项目 / is not a GB 3838-2002 Table 1 item (use `envmon calc tli`)"
                ),
            },
            _ => WaterError::UnknownParam(name.to_string()),
        })?;
        let (value, flag) = match rest.split_once(':') {
            Some((v, f)) => (
                v,
                f.parse::<Flag>().map_err(|e| WaterError::BadArg {
                    arg: arg.clone(),
                    reason: e,
                })?,
            ),
            None => (rest, Flag::N),
        };
        let value = parse_number(param.name(), value)?;
        if out.insert(param, Obs { value, flag }).is_some() {
            return Err(WaterError::Duplicate(param.name().into()));
        }
    }
    Ok(out)
}

fn water_class_cli(args: &CalcWaterClassArgs) -> Result<String, WaterError> {
    let obs = parse_water_values(&args.values)?;
    let target = match &args.target {
        None => None,
        Some(t) => match WaterClass::parse(t) {
            Some(c) if (1..=5).contains(&c.0) => Some(c),
            _ => {
                return Err(WaterError::BadArg {
                    arg: format!("--target {t}"),
                    reason: "目标类别应为 I..V / target class must be I..V".into(),
                })
            }
        },
    };
    let mut opts = EvalOptions::routine();
    for name in &args.include {
        let p: Param = name.parse()?;
        opts.exclude.remove(&p);
    }
    let res = evaluate(args.body, &obs, target, &opts)?;
    if res.class.is_none() {
        let why = if res.excluded.is_empty() && res.not_evaluated.is_empty() {
            String::new()
        } else {
            let names = |it: &mut dyn Iterator<Item = &Param>| {
                it.map(|p| p.name()).collect::<Vec<_>>().join(", ")
            };
            format!(
                " (excluded: [{}], flagged: [{}])",
                names(&mut res.excluded.iter()),
                names(&mut res.not_evaluated.keys())
            )
        };
        return Err(WaterError::NothingEvaluated(why));
    }
    Ok(res.to_json().to_string())
}

/// Run `envmon calc water-class`: the JSON to print, or a message for stderr.
pub fn calc_water_class_cli(args: &CalcWaterClassArgs) -> Result<String, String> {
    water_class_cli(args).map_err(|e| e.to_string())
}

fn tli_cli(args: &CalcTliArgs) -> Result<String, WaterError> {
    let mut input = TliInput::default();
    let sd_time: Option<DateTime<Utc>> = match &args.sd_time {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|e| WaterError::BadArg {
                    arg: format!("--sd-time {t}"),
                    reason: format!("透明度测量时间应为 RFC 3339 / expected RFC 3339 time: {e}"),
                })?
                .with_timezone(&Utc),
        ),
    };
    for arg in &args.values {
        let (name, value) = split_pair(arg)?;
        let p = TliParam::from_name(name).ok_or_else(|| WaterError::BadArg {
            arg: arg.clone(),
            reason: format!(
                "{name} 不是 TLI 参数 / is not a TLI parameter (chla, tp, tn, sd, codmn)"
            ),
        })?;
        let v = parse_number(p.name(), value)?;
        let slot_taken = match p {
            TliParam::Chla => input.chla.replace(v).is_some(),
            TliParam::Tp => input.tp.replace(v).is_some(),
            TliParam::Tn => input.tn.replace(v).is_some(),
            TliParam::Codmn => input.codmn.replace(v).is_some(),
            TliParam::Sd => input
                .sd
                .replace(Transparency {
                    metres: v,
                    measured_at: sd_time,
                })
                .is_some(),
        };
        if slot_taken {
            return Err(WaterError::Duplicate(p.name().into()));
        }
    }
    if sd_time.is_some() && input.sd.is_none() {
        return Err(WaterError::BadArg {
            arg: "--sd-time".into(),
            reason: "给出了测量时间但没有 sd / --sd-time given without sd=".into(),
        });
    }
    Ok(tli(&input)?.to_json().to_string())
}

/// Run `envmon calc tli`: the JSON to print, or a message for stderr.
pub fn calc_tli_cli(args: &CalcTliArgs) -> Result<String, String> {
    tli_cli(args).map_err(|e| e.to_string())
}
