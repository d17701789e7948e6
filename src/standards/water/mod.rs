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
