//! Exact stored values (docs/schema.md, "Stored precision"), checked on the line-protocol text
//! envmon writes and on what a real InfluxDB 1.6 returns:
//! - a conversion by a decimal factor gives the decimal result (HJ 212 101.02 kPa → `1010.2`);
//! - a conversion that is not by a decimal factor is rounded to 8 significant digits
//!   (1000 ppb CO → `1.144882` mg/m³);
//! - a value in its canonical unit is stored as received;
//! - over many generated inputs (every unit normalise accepts, inputs of up to 7 significant
//!   digits, the most an instrument resolves), no stored value has more digits than that.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::Influx1;
use envmon::decode::hj212::{self, encode, Hj212Options};
use envmon::decode::DecodeContext;
use envmon::model::{Interval, Reading, Sample};
use envmon::normalise::{self, normalise};
use envmon::num;
use envmon::store::line;

fn ctx(opts: &Hj212Options) -> DecodeContext<'_> {
    DecodeContext {
        registry: None,
        now: Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        vendor: None,
        hj212: opts,
    }
}

/// The text of field `key` in a line-protocol line (tags and values here contain no spaces or
/// commas).
fn field_text<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let fields = line.split(' ').nth(1)?;
    fields
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn encode_samples(samples: &[Sample]) -> String {
    let mut out = String::new();
    line::encode(samples, &mut out);
    out
}

/// One HJ 212-2017 hourly frame with pressure in kPa (the HJ 212 unit of a01006), CO in ppb
/// and air temperature in K (units configured, as for a logger that sends them), and TP in µg/L.
fn hj212_samples() -> Vec<Sample> {
    let mut o = Hj212Options::default();
    o.units.insert("a21005".into(), "ppb".into());
    o.units.insert("a01001".into(), "K".into());
    o.units.insert("w21011".into(), "ug/L".into());
    let data = "QN=20261123080000000;ST=22;CN=2061;PW=123456;MN=EXACT01;Flag=4;CP=&&\
                DataTime=20261123080000;a01006-Avg=101.02,a01006-Flag=N;\
                a21005-Avg=1000,a21005-Flag=N;a01001-Avg=296.45,a01001-Flag=N;\
                w21011-Avg=30,w21011-Flag=N&&";
    let frame = encode::frame(data).expect("frame");
    let readings = hj212::decode("env/hj212/EXACT01", &frame, &ctx(&o)).expect("decodes");
    assert_eq!(readings.len(), 4);
    readings
        .into_iter()
        .map(|r| normalise(r, None).expect("normalises"))
        .collect()
}

#[test]
fn hj212_decimal_conversions_are_exact_in_the_line_written() {
    let samples = hj212_samples();
    let text = encode_samples(&samples);
    let air = text
        .lines()
        .find(|l| l.starts_with("air,"))
        .unwrap_or_else(|| panic!("{text}"));
    // 101.02 kPa × 10 = 1010.2 hPa; binary f64 arithmetic gives 1010.1999999999999.
    assert_eq!(101.02f64 * 10.0, 1010.1999999999999);
    assert_eq!(field_text(air, "pressure"), Some("1010.2"), "{air}");
    // 296.45 K − 273.15 = 23.3 °C (f64: 23.30000000000001).
    assert_eq!(field_text(air, "temp"), Some("23.3"), "{air}");
    // 1000 ppb CO × 28.010 g/mol / 24.46539 L/mol / 1000 = 1.14488198… mg/m³ → 8 digits.
    assert_eq!(field_text(air, "co"), Some("1.144882"), "{air}");
    let water = text
        .lines()
        .find(|l| l.starts_with("water,"))
        .unwrap_or_else(|| panic!("{text}"));
    // 30 µg/L × 0.001 = 0.03 mg/L (f64: 0.03 happens to be exact here; 0.3 µg/L would not be).
    assert_eq!(field_text(water, "tp"), Some("0.03"), "{water}");
}

/// The same lines through a real InfluxDB 1.6: the values read back are the decimals written.
#[test]
fn influxdb_returns_the_exact_values() {
    let influx = Influx1::start();
    influx.create_db("envmon");
    let text = encode_samples(&hj212_samples());
    let mut lines = String::new();
    for l in text.lines() {
        lines.push_str(l);
        lines.push('\n');
    }
    influx.write("envmon", &lines);
    let rows = influx.rows("envmon", "SELECT pressure, temp, co FROM air");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let get = |k: &str| {
        rows[0][k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {rows:?}"))
    };
    assert_eq!(get("pressure").to_string(), "1010.2");
    assert_eq!(get("temp").to_string(), "23.3");
    assert_eq!(get("co").to_string(), "1.144882");
    let rows = influx.rows("envmon", "SELECT tp FROM water");
    assert_eq!(
        rows[0]["tp"].as_f64().map(|v| v.to_string()).as_deref(),
        Some("0.03")
    );
}

/// How a case converts: by a decimal `factor = mant × 10^exp` plus a decimal offset (in units of
/// 10^-2), by a non-decimal factor, or not at all.
#[derive(Clone, Copy)]
enum Kind {
    Decimal {
        mant: i128,
        exp: i32,
        offset_c: i128,
    },
    Rounded,
    Identity,
}

/// (param, unit, kind, input range in that unit) — every conversion of docs/schema.md §3,
/// ranges inside the plausible ranges of §2.
const CASES: &[(&str, &str, Kind, f64, f64)] = &[
    ("pm25", "mg/m3", dec(1, 3), 0.001, 2.9),
    ("pm25", "ng/m3", dec(1, -3), 1.0, 1e6),
    ("so2", "mg/m3", dec(1, 3), 0.001, 9.0),
    ("co", "ug/m3", dec(1, -3), 1.0, 1e5),
    ("pressure", "Pa", dec(1, -2), 50_001.0, 109_999.0),
    ("pressure", "kPa", dec(1, 1), 50.1, 109.9),
    (
        "temp",
        "K",
        Kind::Decimal {
            mant: 1,
            exp: 0,
            offset_c: -27315,
        },
        214.0,
        332.0,
    ),
    ("tp", "ug/L", dec(1, -3), 0.01, 49_000.0),
    ("tp", "g/L", dec(1, 3), 0.000_001, 0.049),
    ("chla", "mg/L", dec(1, 3), 0.000_01, 4.9),
    ("fecal_coliform", "MPN/100mL", dec(1, 1), 1.0, 9e7),
    ("algae_density", "cells/mL", dec(1, 3), 1.0, 9e7),
    ("conductivity", "mS/cm", dec(1, 3), 0.001, 99.0),
    ("conductivity", "S/m", dec(1, 4), 0.000_1, 9.9),
    ("conductivity", "mS/m", dec(1, 1), 0.01, 9_999.0),
    ("sd", "cm", dec(1, -2), 0.1, 4_999.0),
    ("sd", "mm", dec(1, -3), 1.0, 49_999.0),
    ("so2", "ppb", Kind::Rounded, 0.1, 3_000.0),
    ("so2", "ppm", Kind::Rounded, 0.001, 3.0),
    ("no2", "ppb", Kind::Rounded, 0.1, 2_000.0),
    ("o3", "ppb", Kind::Rounded, 0.1, 1_000.0),
    ("co", "ppm", Kind::Rounded, 0.001, 150.0),
    ("co", "ppb", Kind::Rounded, 1.0, 150_000.0),
    ("temp", "degF", Kind::Rounded, -70.0, 139.0),
    ("wind_speed", "km/h", Kind::Rounded, 0.1, 260.0),
    ("wind_dir", "rad", Kind::Rounded, 0.001, 6.2),
    ("pm25", "ug/m3", Kind::Identity, 0.1, 2_999.0),
    ("tp", "mg/L", Kind::Identity, 0.001, 49.0),
    ("ph", "pH", Kind::Identity, 0.01, 13.99),
];

const fn dec(mant: i128, exp: i32) -> Kind {
    Kind::Decimal {
        mant,
        exp,
        offset_c: 0,
    }
}

/// Fixed point of the expected values: 10^-18.
const FP: u32 = 18;

/// `x` as `(M, E)` with `x = M × 10^E`, `M` of exactly `digits` significant digits (text of
/// Rust's `{:e}` formatting, so independent of envmon's decimal code).
fn to_sig(x: f64, digits: usize) -> (i128, i32) {
    let s = format!("{:.*e}", digits - 1, x);
    let (m, e) = s.split_once('e').unwrap();
    let e: i32 = e.parse().unwrap();
    let neg = m.starts_with('-');
    let digits_only: String = m.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut mant: i128 = digits_only.parse().unwrap();
    if neg {
        mant = -mant;
    }
    (mant, e - (digits as i32 - 1))
}

/// Plain decimal text of `v / 10^FP` without trailing zeros (how Rust prints such an f64).
fn fixed_text(v: i128) -> String {
    let p = 10i128.pow(FP);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.abs();
    let frac = format!("{:0width$}", a % p, width = FP as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{}", a / p)
    } else {
        format!("{sign}{}.{frac}", a / p)
    }
}

fn shift(v: i128, exp: i32) -> i128 {
    if exp >= 0 {
        v * 10i128.pow(exp as u32)
    } else {
        let d = 10i128.pow((-exp) as u32);
        assert_eq!(v % d, 0, "not exact at 10^-{FP}");
        v / d
    }
}

#[test]
fn no_stored_value_has_more_digits_than_documented() {
    let at: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(20261123);
    const PER_CASE: usize = 400;
    let mut checked = 0;
    for &(param, unit, kind, lo, hi) in CASES {
        for _ in 0..PER_CASE {
            let x = rng.gen_range(lo..hi);
            let mut digits = rng.gen_range(1..=7usize);
            let (mut m, mut e) = to_sig(x, digits);
            let in_range = |m: i128, e: i32| {
                let v: f64 = format!("{m}e{e}").parse().unwrap();
                (lo..=hi).contains(&v)
            };
            // Few digits can round out of the range: take more (7 always fits, the ranges
            // have margin).
            while !in_range(m, e) && digits < 7 {
                digits += 1;
                (m, e) = to_sig(x, digits);
            }
            let input: f64 = format!("{m}e{e}").parse().unwrap();
            let mut r = Reading::new("S", at, Interval::Hour, param, input);
            r.unit = Some(unit.to_string());
            let s =
                normalise(r, None).unwrap_or_else(|err| panic!("{param} {input} {unit}: {err}"));
            let text = encode_samples(std::slice::from_ref(&s));
            let got = field_text(text.trim_end(), param)
                .unwrap_or_else(|| panic!("{text}"))
                .to_string();
            let sig = num::significant_digits(got.parse().unwrap()).unwrap();
            assert!(sig <= num::MAX_SIG, "{param} {input} {unit} → {got}");
            match kind {
                Kind::Decimal {
                    mant,
                    exp,
                    offset_c,
                } => {
                    let v = shift(m, e + FP as i32);
                    let want = shift(v * mant, exp) + shift(offset_c, FP as i32 - 2);
                    assert_eq!(got, fixed_text(want), "{param}: {input} {unit}");
                }
                Kind::Rounded => {
                    assert!(
                        sig <= num::CONVERSION_SIG,
                        "{param}: {input} {unit} → {got} ({sig} digits)"
                    );
                    // Within half a unit of the 8th significant digit of the exact product.
                    let vm = normalise::reference_molar_volume_l();
                    let exact = match (param, unit) {
                        ("temp", "degF") => (input - 32.0) * 5.0 / 9.0,
                        ("wind_speed", _) => input / 3.6,
                        ("wind_dir", _) => input.to_degrees(),
                        ("so2", "ppb") => input * normalise::M_SO2 / vm,
                        ("so2", "ppm") => input * 1000.0 * normalise::M_SO2 / vm,
                        ("no2", _) => input * normalise::M_NO2 / vm,
                        ("o3", _) => input * normalise::M_O3 / vm,
                        ("co", "ppm") => input * normalise::M_CO / vm,
                        ("co", "ppb") => input * normalise::M_CO / vm / 1000.0,
                        other => panic!("no reference for {other:?}"),
                    };
                    let g: f64 = got.parse().unwrap();
                    let half_unit = 0.5 * 10f64.powi(exact.abs().log10().floor() as i32 - 7);
                    assert!(
                        (g - exact).abs() <= half_unit * 1.001 + 1e-12,
                        "{param}: {input} {unit} → {got}, exact {exact}"
                    );
                }
                Kind::Identity => {
                    assert_eq!(got, input.to_string(), "{param}: stored as received");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, CASES.len() * PER_CASE);
}

/// The rounded conversions against a factor written independently: µg/m³ = ppb × M / Vm with
/// Vm = 22.414 L/mol × 298.15 / 273.15 (the literature's 24.465 L/mol), within the 8-digit
/// rounding plus the 1e-4 relative difference of the two molar volumes.
#[test]
fn rounded_gas_conversions_match_an_independent_factor() {
    let at: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
    let vm = 22.414 * 298.15 / 273.15;
    for (param, m, unit, scale, x) in [
        ("so2", 64.066, "ppb", 1.0, 12.3),
        ("no2", 46.0055, "ppb", 1.0, 45.6),
        ("o3", 47.997, "ppb", 1.0, 78.9),
        ("co", 28.010, "ppm", 1.0, 1.23),
        ("co", 28.010, "ppb", 1e-3, 1000.0),
    ] {
        let mut r = Reading::new("S", at, Interval::Hour, param, x);
        r.unit = Some(unit.into());
        let s = normalise(r, None).unwrap();
        let want = x * m / vm * scale;
        assert!(
            ((s.value - want) / want).abs() < 1.1e-4,
            "{param} {x} {unit}: {} vs {want}",
            s.value
        );
        assert!(num::significant_digits(s.value).unwrap() <= num::CONVERSION_SIG);
    }
}
