//! `envmon calc aqi | water-class | tli`: the calculators for operators and auditors.
//!
//! Arguments are `name=value` pairs. One parser names them for all three calculators
//! ([`canonical_name`]): the aliases envmon accepts from station feeds (`PM2.5`, `NH3-N`,
//! `COD_Mn`, `Chl-a`, … as in docs/schema.md) are accepted here too, with an averaging suffix
//! for the AQI (`pm2.5_24h`, `O3-8h`). The results are printed as the standards' modules
//! serialise them (`AqiResult`, `SampleClass::to_json`, `TliResult::to_json`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::{BodyType, Flag, WaterClass};
use crate::normalise::canonical_param;
use crate::standards::aqi::{
    aqi, concentration, AirValues, AqiError, AqiOptions, Edition, Indicator, Period,
};
use crate::standards::water::{
    evaluate, tli, EvalOptions, Obs, Param, TliInput, TliParam, Transparency, WaterError,
};

/// The canonical name of a calculator argument: the feed aliases of [`canonical_param`]
/// (case-insensitive, `.`/`-`/`_` variants), keeping an AQI averaging suffix (`_1h`, `_8h`,
/// `_24h`); a name envmon does not know is returned lower-cased for the calculator to reject
/// with its own list of valid names.
pub fn canonical_name(raw: &str) -> String {
    let lower = raw.trim().to_ascii_lowercase();
    for suffix in ["_24h", "-24h", ".24h", "_8h", "-8h", "_1h", "-1h"] {
        if let Some(stem) = lower.strip_suffix(suffix) {
            if let Some(p) = canonical_param(stem) {
                return format!("{}_{}", p.name, &suffix[1..]);
            }
        }
    }
    match canonical_param(&lower) {
        Some(p) => p.name.to_string(),
        None => lower,
    }
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
        let (raw, rest) = split_pair(arg)?;
        let canon = canonical_name(raw);
        let name = canon.as_str();
        let param = Param::from_name(name).ok_or_else(|| match name.to_ascii_lowercase().as_str() {
            "chla" | "sd" => WaterError::BadArg {
                arg: arg.clone(),
                reason: format!(
                    "{name} 不是 GB 3838-2002 表1项目 / is not a GB 3838-2002 Table 1 item (use `envmon calc tli`)"
                ),
            },
            _ => WaterError::UnknownParam(raw.to_string()),
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
        let p: Param = canonical_name(name).parse()?;
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
        let (raw, value) = split_pair(arg)?;
        let canon = canonical_name(raw);
        let name = canon.as_str();
        let p = TliParam::from_name(name).ok_or_else(|| WaterError::BadArg {
            arg: arg.clone(),
            reason: format!(
                "{raw} 不是 TLI 参数 / is not a TLI parameter (chla, tp, tn, sd, codmn)"
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

/// `envmon calc aqi` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CalcAqiArgs {
    /// hour: 1-hour values (real-time report); day: 24-hour means, o3_8h = MDA8.
    #[arg(long, value_enum)]
    pub period: Period,
    /// HJ 633 edition: 2012 or 2026 (default: the edition in force on --date).
    #[arg(long)]
    pub edition: Option<String>,
    /// Date of the data, YYYY-MM-DD (Asia/Shanghai; default today).
    #[arg(long)]
    pub date: Option<String>,
    /// HJ 633-2012 daily AQI: let the O3 1-hour daily maximum enter the AQI.
    #[arg(long)]
    pub include_o3_1h: bool,
    /// pollutant=value pairs: so2 no2 co pm10 pm25 o3_1h o3_8h so2_24h pm10_24h pm25_24h
    /// (µg/m³; co in mg/m³).
    pub values: Vec<String>,
}

/// Parse `name=value` pairs.
pub fn parse_values(pairs: &[String]) -> Result<AirValues, AqiError> {
    let mut v = AirValues::default();
    for p in pairs {
        let (k, val) = p.split_once('=').ok_or_else(|| {
            AqiError::BadArgument(format!("{p:?} 应为 name=value 形式 should be name=value"))
        })?;
        let ind: Indicator = canonical_name(k).parse().map_err(|e| match e {
            AqiError::UnknownIndicator { expected, .. } => AqiError::UnknownIndicator {
                name: k.to_string(),
                expected,
            },
            e => e,
        })?;
        if v.get(ind).is_some() {
            return Err(AqiError::Duplicate {
                name: ind.as_str().to_string(),
            });
        }
        let x: f64 = val.trim().parse().map_err(|_| AqiError::NotANumber {
            name: ind.as_str().to_string(),
            value: val.to_string(),
        })?;
        concentration(ind.as_str(), x)?;
        v.set(ind, Some(x));
    }
    Ok(v)
}

fn today_shanghai() -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
}

/// Run `envmon calc aqi`: the JSON text to print, or a message for stderr.
pub fn calc_cli(args: &CalcAqiArgs) -> Result<String, String> {
    let date = match &args.date {
        Some(d) => NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .map_err(|_| format!("--date {d:?}: 日期格式应为 YYYY-MM-DD, expected YYYY-MM-DD"))?,
        None => today_shanghai(),
    };
    let edition = match &args.edition {
        Some(e) => Edition::parse(e)
            .ok_or_else(|| format!("--edition {e:?}: 应为 2012 或 2026, expected 2012 or 2026"))?,
        None => Edition::for_date(date),
    };
    if args.values.is_empty() {
        return Err(
            "未给出污染物浓度 no pollutant values given (e.g. pm25=75 o3_8h=120)".to_string(),
        );
    }
    let values = parse_values(&args.values).map_err(|e| e.to_string())?;
    let options = AqiOptions {
        daily_include_o3_1h_2012: args.include_o3_1h,
    };
    let res = aqi(args.period, edition, &values, &options).map_err(|e| e.to_string())?;
    serde_json::to_string(&res).map_err(|e| format!("JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_calculator_name_survives_the_canonical_parser() {
        for p in Param::ALL {
            assert_eq!(Param::from_name(&canonical_name(p.name())), Some(p), "{p}");
        }
        for p in TliParam::ALL {
            assert_eq!(TliParam::from_name(&canonical_name(p.name())), Some(p));
        }
        for i in Indicator::ALL {
            let parsed: Indicator = canonical_name(i.as_str()).parse().unwrap();
            assert_eq!(parsed, i);
        }
    }

    #[test]
    fn feed_aliases_are_accepted_by_every_calculator() {
        assert_eq!(canonical_name("NH3-N"), "nh3n");
        assert_eq!(canonical_name("PM2.5"), "pm25");
        assert_eq!(canonical_name("PM2.5_24h"), "pm25_24h");
        assert_eq!(canonical_name("O3-8h"), "o3_8h");
        assert_eq!(canonical_name("COD_Mn"), "codmn");
        assert_eq!(canonical_name("nonsense"), "nonsense");
    }
}
