//! Normalisation: [`Reading`] → [`Sample`]: canonical parameter names and units, plausibility,
//! station metadata.
//!
//! Owns: the canonical parameter table ([`PARAMS`], documented in docs/schema.md), the alias
//! table, unit parsing and conversion (gas ppb/ppm → mass concentration at the GB 3095-2026
//! reference state) and the plausibility ranges. Knows nothing of wire formats or databases.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, SubsecRound, Utc};

use crate::model::{Measurement, Reading, Sample, Station};
use crate::num::{self, Dec};
use crate::registry::Registry;

/// Molar gas constant R in J/(mol·K) (exact in the 2019 SI, CODATA 2018).
pub const GAS_CONSTANT: f64 = 8.314_462_618;
/// Reference temperature of GB 3095-2012/2026 (§3 definitions): 298.15 K.
pub const REFERENCE_T_K: f64 = 298.15;
/// Reference pressure of GB 3095-2012/2026: 1013.25 hPa = 101 325 Pa.
pub const REFERENCE_P_PA: f64 = 101_325.0;

/// Molar volume of an ideal gas at the GB 3095 reference state, in L/mol: V = R·T/p
/// (8.314462618 × 298.15 / 101325 m³/mol = 24.4654 L/mol).
pub fn reference_molar_volume_l() -> f64 {
    GAS_CONSTANT * REFERENCE_T_K / REFERENCE_P_PA * 1000.0
}

/// Which measurement (and which plausibility logic) a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Air pollutants (measurement `air`).
    Air,
    /// Meteorology at air stations (measurement `air`).
    Meteo,
    /// Surface water (measurement `water`).
    Water,
}

/// What kind of quantity a parameter is; decides which units convert into its canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Mass concentration in air, canonical µg/m³ (particulates; no ppb/ppm).
    AirMassUg,
    /// Gas, canonical µg/m³, ppb/ppm converted with the molar mass (g/mol).
    GasUg(f64),
    /// Gas, canonical mg/m³ (CO), ppb/ppm converted with the molar mass (g/mol).
    GasMg(f64),
    /// Temperature, canonical °C.
    Temperature,
    /// Relative humidity, canonical %.
    Humidity,
    /// Pressure, canonical hPa.
    Pressure,
    /// Speed, canonical m/s.
    Speed,
    /// Direction, canonical degrees.
    Direction,
    /// pH, dimensionless.
    Ph,
    /// Mass concentration in water, canonical mg/L.
    WaterMg,
    /// Mass concentration in water, canonical µg/L (chlorophyll-a).
    WaterUg,
    /// Count per litre (fecal coliform).
    Coliform,
    /// Cells per litre (algae density).
    Algae,
    /// Conductivity, canonical µS/cm.
    Conductivity,
    /// Turbidity, canonical NTU.
    Turbidity,
    /// Length, canonical m (Secchi depth).
    Length,
}

/// One canonical parameter: name, unit, plausible range (inclusive, in the canonical unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub domain: Domain,
    pub quantity: Quantity,
    pub min: f64,
    pub max: f64,
}

const fn p(
    name: &'static str,
    unit: &'static str,
    domain: Domain,
    quantity: Quantity,
    min: f64,
    max: f64,
) -> ParamSpec {
    ParamSpec {
        name,
        unit,
        domain,
        quantity,
        min,
        max,
    }
}

/// Molar masses in g/mol (IUPAC standard atomic weights).
pub const M_SO2: f64 = 64.066;
pub const M_NO2: f64 = 46.0055;
pub const M_O3: f64 = 47.997;
pub const M_CO: f64 = 28.010;

use Domain::{Air, Meteo, Water};
use Quantity::*;

/// The canonical parameter table. docs/schema.md shows the same table (a test checks they agree).
pub const PARAMS: &[ParamSpec] = &[
    p("pm25", "ug/m3", Air, AirMassUg, 0.0, 3000.0),
    p("pm10", "ug/m3", Air, AirMassUg, 0.0, 10000.0),
    p("tsp", "ug/m3", Air, AirMassUg, 0.0, 20000.0),
    p("so2", "ug/m3", Air, GasUg(M_SO2), 0.0, 10000.0),
    p("no2", "ug/m3", Air, GasUg(M_NO2), 0.0, 5000.0),
    p("o3", "ug/m3", Air, GasUg(M_O3), 0.0, 2000.0),
    p("co", "mg/m3", Air, GasMg(M_CO), 0.0, 200.0),
    p("temp", "degC", Meteo, Temperature, -60.0, 60.0),
    p("rh", "%", Meteo, Humidity, 0.0, 100.0),
    p("pressure", "hPa", Meteo, Pressure, 500.0, 1100.0),
    p("wind_speed", "m/s", Meteo, Speed, 0.0, 75.0),
    p("wind_dir", "deg", Meteo, Direction, 0.0, 360.0),
    p("ph", "", Water, Ph, 0.0, 14.0),
    p("do", "mg/L", Water, WaterMg, 0.0, 30.0),
    p("codmn", "mg/L", Water, WaterMg, 0.0, 200.0),
    p("cod", "mg/L", Water, WaterMg, 0.0, 2000.0),
    p("bod5", "mg/L", Water, WaterMg, 0.0, 1000.0),
    p("nh3n", "mg/L", Water, WaterMg, 0.0, 200.0),
    p("tp", "mg/L", Water, WaterMg, 0.0, 50.0),
    p("tn", "mg/L", Water, WaterMg, 0.0, 200.0),
    p("cu", "mg/L", Water, WaterMg, 0.0, 100.0),
    p("zn", "mg/L", Water, WaterMg, 0.0, 100.0),
    p("f", "mg/L", Water, WaterMg, 0.0, 100.0),
    p("se", "mg/L", Water, WaterMg, 0.0, 10.0),
    p("as", "mg/L", Water, WaterMg, 0.0, 10.0),
    p("hg", "mg/L", Water, WaterMg, 0.0, 1.0),
    p("cd", "mg/L", Water, WaterMg, 0.0, 10.0),
    p("cr6", "mg/L", Water, WaterMg, 0.0, 10.0),
    p("pb", "mg/L", Water, WaterMg, 0.0, 10.0),
    p("cn", "mg/L", Water, WaterMg, 0.0, 10.0),
    p("phenol", "mg/L", Water, WaterMg, 0.0, 100.0),
    p("petroleum", "mg/L", Water, WaterMg, 0.0, 1000.0),
    p("las", "mg/L", Water, WaterMg, 0.0, 100.0),
    p("sulfide", "mg/L", Water, WaterMg, 0.0, 100.0),
    p("fecal_coliform", "count/L", Water, Coliform, 0.0, 1.0e9),
    p("conductivity", "uS/cm", Water, Conductivity, 0.0, 100_000.0),
    p("turbidity", "NTU", Water, Turbidity, 0.0, 10_000.0),
    p("chla", "ug/L", Water, WaterUg, 0.0, 5000.0),
    p("water_temp", "degC", Water, Temperature, -2.0, 45.0),
    p("algae_density", "cells/L", Water, Algae, 0.0, 1.0e11),
    p("sd", "m", Water, Length, 0.0, 50.0),
];

/// Aliases (compared after [`alias_key`]: lower case, without spaces, `.`, `_`, `-`, `(`, `)`),
/// including the HJ 212-2017 pollutant codes of standards.md §6.6.
const ALIASES: &[(&str, &str)] = &[
    // particulates
    ("pm25", "pm25"),
    ("pm2p5", "pm25"),
    ("a34004", "pm25"),
    ("pm10", "pm10"),
    ("a34002", "pm10"),
    ("tsp", "tsp"),
    ("a34001", "tsp"),
    // gases
    ("so2", "so2"),
    ("a21026", "so2"),
    ("no2", "no2"),
    ("a21004", "no2"),
    ("o3", "o3"),
    ("a05024", "o3"),
    ("co", "co"),
    ("a21005", "co"),
    // meteorology
    ("temp", "temp"),
    ("temperature", "temp"),
    ("airtemp", "temp"),
    ("a01001", "temp"),
    ("rh", "rh"),
    ("humidity", "rh"),
    ("hum", "rh"),
    ("a01002", "rh"),
    ("pressure", "pressure"),
    ("press", "pressure"),
    ("pres", "pressure"),
    ("atmosphericpressure", "pressure"),
    ("a01006", "pressure"),
    ("windspeed", "wind_speed"),
    ("ws", "wind_speed"),
    ("a01007", "wind_speed"),
    ("winddir", "wind_dir"),
    ("winddirection", "wind_dir"),
    ("wd", "wind_dir"),
    ("a01008", "wind_dir"),
    // water
    ("ph", "ph"),
    ("w01001", "ph"),
    ("do", "do"),
    ("dissolvedoxygen", "do"),
    ("w01009", "do"),
    ("codmn", "codmn"),
    ("permanganateindex", "codmn"),
    ("w01019", "codmn"),
    ("cod", "cod"),
    ("codcr", "cod"),
    ("w01018", "cod"),
    ("bod5", "bod5"),
    ("bod", "bod5"),
    ("w01017", "bod5"),
    ("nh3n", "nh3n"),
    ("nh4n", "nh3n"),
    ("ammonia", "nh3n"),
    ("ammonianitrogen", "nh3n"),
    ("w21003", "nh3n"),
    ("tp", "tp"),
    ("totalphosphorus", "tp"),
    ("w21011", "tp"),
    ("tn", "tn"),
    ("totalnitrogen", "tn"),
    ("w21001", "tn"),
    ("cu", "cu"),
    ("zn", "zn"),
    ("f", "f"),
    ("fluoride", "f"),
    ("se", "se"),
    ("as", "as"),
    ("hg", "hg"),
    ("cd", "cd"),
    ("cr6", "cr6"),
    ("cr6+", "cr6"),
    ("crvi", "cr6"),
    ("pb", "pb"),
    ("cn", "cn"),
    ("cyanide", "cn"),
    ("phenol", "phenol"),
    ("volatilephenol", "phenol"),
    ("petroleum", "petroleum"),
    ("oil", "petroleum"),
    ("las", "las"),
    ("sulfide", "sulfide"),
    ("sulphide", "sulfide"),
    ("fecalcoliform", "fecal_coliform"),
    ("faecalcoliform", "fecal_coliform"),
    ("conductivity", "conductivity"),
    ("cond", "conductivity"),
    ("ec", "conductivity"),
    ("w01014", "conductivity"),
    ("turbidity", "turbidity"),
    ("turb", "turbidity"),
    ("w01003", "turbidity"),
    ("chla", "chla"),
    ("chlorophylla", "chla"),
    ("chlorophyll", "chla"),
    ("w01016", "chla"),
    ("watertemp", "water_temp"),
    ("wtemp", "water_temp"),
    ("w01010", "water_temp"),
    ("algaedensity", "algae_density"),
    ("algae", "algae_density"),
    ("w19011", "algae_density"),
    ("sd", "sd"),
    ("secchi", "sd"),
    ("secchidepth", "sd"),
    ("transparency", "sd"),
];

/// The comparison key for parameter names: lower case, without ` _-()` and `.`, except that a
/// `.` or `_` between two digits becomes `p` (a decimal point), so `PM2.5`, `pm2_5` → `pm2p5`
/// (an alias of `pm25`) while `PM1.0` → `pm1p0` does not collide with `pm10`.
/// `NH3-N` → `nh3n`; `Cr(VI)` → `crvi`.
pub fn alias_key(name: &str) -> String {
    let chars: Vec<char> = name.chars().filter(|c| *c != ' ').collect();
    let mut out = String::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '.' | '_' => {
                let digit_before = i > 0 && chars[i - 1].is_ascii_digit();
                let digit_after = chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
                if digit_before && digit_after {
                    out.push('p');
                }
            }
            '-' | '(' | ')' => {}
            other => out.extend(other.to_lowercase()),
        }
    }
    out
}

/// The canonical parameter for a name or alias (case-insensitive), if any.
pub fn canonical_param(name: &str) -> Option<&'static ParamSpec> {
    if let Some(p) = PARAMS.iter().find(|p| p.name == name) {
        return Some(p);
    }
    let key = alias_key(name);
    let canon = ALIASES.iter().find(|(a, _)| *a == key).map(|(_, c)| *c)?;
    PARAMS.iter().find(|p| p.name == canon)
}

/// True for parameters measured in water (decides the `water` measurement without a registry).
pub fn is_water_param(param: &str) -> bool {
    PARAMS
        .iter()
        .any(|p| p.name == param && p.domain == Domain::Water)
}

/// The measurement a sample goes to: from the station kind when the station is known, else from
/// the parameter (docs/schema.md). The one place this is decided.
pub fn measurement_for(station: Option<&Station>, param: &str) -> Measurement {
    match station {
        Some(st) if st.kind.is_air() => Measurement::Air,
        Some(_) => Measurement::Water,
        None if is_water_param(param) => Measurement::Water,
        None => Measurement::Air,
    }
}

/// A unit as envmon understands it (after [`unit_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    UgM3,
    MgM3,
    NgM3,
    Ppb,
    Ppm,
    MgL,
    UgL,
    GL,
    DegC,
    Kelvin,
    DegF,
    Percent,
    HPa,
    Pa,
    KPa,
    MetrePerS,
    KmPerH,
    Degree,
    Radian,
    Dimensionless,
    CountPerL,
    CountPer100Ml,
    CellsPerL,
    CellsPerMl,
    UsCm,
    MsCm,
    SM,
    MsM,
    Ntu,
    Metre,
    Centimetre,
    Millimetre,
}

/// The comparison key for unit strings: trimmed, lower case, `µ`/`μ` → `u`, `³` → `3`,
/// `²` → `2`, spaces removed.
pub fn unit_key(unit: &str) -> String {
    unit.trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'µ' | 'μ' => 'u',
            '³' => '3',
            '²' => '2',
            other => other,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Parse a unit string (case-insensitive; SenML spellings such as `Cel`, `%RH`, `S/m` included).
pub fn parse_unit(unit: &str) -> Option<Unit> {
    use Unit::*;
    Some(match unit_key(unit).as_str() {
        "ug/m3" | "ugm-3" | "ug.m-3" | "ug/m^3" => UgM3,
        "mg/m3" | "mgm-3" | "mg.m-3" | "mg/m^3" => MgM3,
        "ng/m3" | "ng/m^3" => NgM3,
        "ppb" | "ppbv" | "nmol/mol" => Ppb,
        "ppm" | "ppmv" | "umol/mol" => Ppm,
        "mg/l" => MgL,
        "ug/l" => UgL,
        "g/l" => GL,
        "degc" | "°c" | "℃" | "c" | "cel" | "celsius" => DegC,
        "k" | "kelvin" => Kelvin,
        "degf" | "°f" | "℉" | "f" | "fahrenheit" => DegF,
        "%" | "%rh" | "rh%" | "percent" => Percent,
        "hpa" | "mbar" | "mb" => HPa,
        "pa" => Pa,
        "kpa" => KPa,
        "m/s" | "mps" => MetrePerS,
        "km/h" | "kph" | "kmh" => KmPerH,
        "deg" | "°" | "degree" | "degrees" => Degree,
        "rad" => Radian,
        "" | "ph" | "1" | "/" | "-" => Dimensionless,
        "count/l" | "个/l" | "mpn/l" | "cfu/l" | "/l" => CountPerL,
        "count/100ml" | "个/100ml" | "mpn/100ml" | "cfu/100ml" | "/100ml" => CountPer100Ml,
        "cells/l" | "cell/l" => CellsPerL,
        "cells/ml" | "cell/ml" => CellsPerMl,
        "us/cm" => UsCm,
        "ms/cm" => MsCm,
        "s/m" => SM,
        "ms/m" => MsM,
        "ntu" => Ntu,
        "m" => Metre,
        "cm" => Centimetre,
        "mm" => Millimetre,
        _ => return None,
    })
}

/// How a value in some unit becomes a value in the canonical unit: `canon = v × factor + offset`.
///
/// Stored precision (docs/schema.md, "Stored precision"):
/// - [`Conversion::Identity`]: the value is stored as received (its shortest decimal);
/// - [`Conversion::Decimal`]: factor and offset are decimals (×10, ×0.001, −273.15), so the result
///   is computed exactly in decimal: 101.02 kPa → 1010.2 hPa (binary `f64` arithmetic gives
///   1010.1999999999999); at most [`num::MAX_SIG`] significant digits are kept;
/// - [`Conversion::Rounded`]: the factor is no decimal (ppb × M / Vm, °F × 5/9, km/h ÷ 3.6,
///   rad × 180/π), so the result is rounded to [`num::CONVERSION_SIG`] significant digits
///   (GB/T 8170 half-to-even): 1000 ppb CO → 1.1448820 mg/m³, stored `1.144882`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Conversion {
    Identity,
    Decimal { factor: Dec, offset: Dec },
    Rounded { factor: f64, offset: f64 },
}

impl Conversion {
    fn times(mant: i64, scale: u32) -> Conversion {
        Conversion::Decimal {
            factor: Dec::new(mant, scale),
            offset: Dec::ZERO,
        }
    }

    fn rounded(factor: f64) -> Conversion {
        Conversion::Rounded {
            factor,
            offset: 0.0,
        }
    }

    /// The value in the canonical unit (see the type's documentation for its precision).
    /// A value that is not finite stays not finite.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Conversion::Identity => v,
            Conversion::Decimal { factor, offset } => Dec::from_f64(v)
                .and_then(|d| d.checked_mul(factor)?.checked_add(offset))
                .map(|d| d.round_sig(num::MAX_SIG).to_f64())
                // Beyond the exact range (|v| > 1e15, never plausible): binary arithmetic.
                .unwrap_or_else(|| v * factor.to_f64() + offset.to_f64()),
            Conversion::Rounded { factor, offset } => {
                num::round_sig(v * factor + offset, num::CONVERSION_SIG)
            }
        }
    }
}

/// How to turn a value in `from` into the canonical unit of a quantity.
/// `None` when the unit does not apply to the quantity (e.g. ppb for PM2.5).
pub fn conversion(quantity: Quantity, from: Unit) -> Option<Conversion> {
    use Conversion::Identity;
    use Unit::*;
    let vm = reference_molar_volume_l();
    let x = |mant: i64, scale: u32| Some(Conversion::times(mant, scale));
    let r = |f: f64| Some(Conversion::rounded(f));
    match (quantity, from) {
        (AirMassUg, UgM3) | (GasUg(_), UgM3) => Some(Identity),
        (AirMassUg, MgM3) | (GasUg(_), MgM3) => x(1000, 0),
        (AirMassUg, NgM3) | (GasUg(_), NgM3) => x(1, 3),
        // µg/m³ = ppb × M / Vm (Vm in L/mol at 298.15 K, 1013.25 hPa).
        (GasUg(m), Ppb) => r(m / vm),
        (GasUg(m), Ppm) => r(1000.0 * m / vm),
        (GasMg(_), MgM3) => Some(Identity),
        (GasMg(_), UgM3) => x(1, 3),
        // mg/m³ = ppm × M / Vm.
        (GasMg(m), Ppm) => r(m / vm),
        (GasMg(m), Ppb) => r(m / vm / 1000.0),
        (Temperature, DegC) => Some(Identity),
        // 0 °C = 273.15 K exactly (SI definition of the degree Celsius).
        (Temperature, Kelvin) => Some(Conversion::Decimal {
            factor: Dec::new(1, 0),
            offset: Dec::new(-27315, 2),
        }),
        (Temperature, DegF) => Some(Conversion::Rounded {
            factor: 5.0 / 9.0,
            offset: -32.0 * 5.0 / 9.0,
        }),
        (Humidity, Percent) => Some(Identity),
        (Pressure, HPa) => Some(Identity),
        (Pressure, Pa) => x(1, 2),
        (Pressure, KPa) => x(10, 0),
        (Speed, MetrePerS) => Some(Identity),
        (Speed, KmPerH) => r(1.0 / 3.6),
        (Direction, Degree) => Some(Identity),
        (Direction, Radian) => r(180.0 / std::f64::consts::PI),
        (Ph, Dimensionless) => Some(Identity),
        (WaterMg, MgL) => Some(Identity),
        (WaterMg, UgL) => x(1, 3),
        (WaterMg, GL) => x(1000, 0),
        (WaterUg, UgL) => Some(Identity),
        // 1 mg/m³ = 1 µg/L.
        (WaterUg, MgM3) => Some(Identity),
        (WaterUg, MgL) => x(1000, 0),
        (Coliform, CountPerL) => Some(Identity),
        (Coliform, CountPer100Ml) => x(10, 0),
        (Algae, CellsPerL) => Some(Identity),
        (Algae, CellsPerMl) => x(1000, 0),
        (Conductivity, UsCm) => Some(Identity),
        (Conductivity, MsCm) => x(1000, 0),
        (Conductivity, SM) => x(10_000, 0),
        (Conductivity, MsM) => x(10, 0),
        (Turbidity, Ntu) => Some(Identity),
        (Length, Metre) => Some(Identity),
        (Length, Centimetre) => x(1, 2),
        (Length, Millimetre) => x(1, 3),
        _ => None,
    }
}

/// Why a reading could not be normalised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NormaliseError {
    #[error("unknown station {station:?}: not in the station registry")]
    UnknownStation { station: String },
    #[error("station {station:?}, parameter {param:?}: unknown unit {unit:?}")]
    UnknownUnit {
        station: String,
        param: String,
        unit: String,
    },
    #[error(
        "station {station:?}, parameter {param:?}: unit {unit:?} cannot be converted to {canonical:?}"
    )]
    IncompatibleUnit {
        station: String,
        param: String,
        unit: String,
        canonical: &'static str,
    },
    #[error(
        "station {station:?}, parameter {param:?}: {what} {value} {unit} is outside the plausible range {min}..={max} {unit}"
    )]
    Implausible {
        station: String,
        param: String,
        what: &'static str,
        value: f64,
        unit: &'static str,
        min: f64,
        max: f64,
    },
    #[error("station {station:?}, parameter {param:?}: {what} is not a finite number")]
    NonFinite {
        station: String,
        param: String,
        what: &'static str,
    },
    #[error("station {station:?}: bad parameter name {param:?}: {why}")]
    BadParam {
        station: String,
        param: String,
        why: &'static str,
    },
}

impl NormaliseError {
    /// Every label [`NormaliseError::reason`] can return.
    pub const REASONS: [&'static str; 6] = [
        "unknown station",
        "unknown unit",
        "incompatible unit",
        "implausible value",
        "non-finite value",
        "bad parameter name",
    ];

    /// Short, fixed label for metrics and the dead-letter.
    pub fn reason(&self) -> &'static str {
        match self {
            NormaliseError::UnknownStation { .. } => "unknown station",
            NormaliseError::UnknownUnit { .. } => "unknown unit",
            NormaliseError::IncompatibleUnit { .. } => "incompatible unit",
            NormaliseError::Implausible { .. } => "implausible value",
            NormaliseError::NonFinite { .. } => "non-finite value",
            NormaliseError::BadParam { .. } => "bad parameter name",
        }
    }

    /// The station the reading named.
    pub fn station(&self) -> &str {
        match self {
            NormaliseError::UnknownStation { station }
            | NormaliseError::UnknownUnit { station, .. }
            | NormaliseError::IncompatibleUnit { station, .. }
            | NormaliseError::Implausible { station, .. }
            | NormaliseError::NonFinite { station, .. }
            | NormaliseError::BadParam { station, .. } => station,
        }
    }
}

/// Longest accepted parameter name (unknown parameters become InfluxDB field names).
pub const MAX_PARAM_LEN: usize = 64;
/// Longest unit string kept for an unknown parameter.
pub const MAX_UNIT_LEN: usize = 32;
/// How many distinct unit spellings of unknown parameters are remembered (bounded memory).
pub const MAX_INTERNED_UNITS: usize = 1024;

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// Canonical spelling of a known unit, used for unknown parameters whose unit envmon knows.
fn unit_symbol(u: Unit) -> &'static str {
    use Unit::*;
    match u {
        UgM3 => "ug/m3",
        MgM3 => "mg/m3",
        NgM3 => "ng/m3",
        Ppb => "ppb",
        Ppm => "ppm",
        MgL => "mg/L",
        UgL => "ug/L",
        GL => "g/L",
        DegC => "degC",
        Kelvin => "K",
        DegF => "degF",
        Percent => "%",
        HPa => "hPa",
        Pa => "Pa",
        KPa => "kPa",
        MetrePerS => "m/s",
        KmPerH => "km/h",
        Degree => "deg",
        Radian => "rad",
        Dimensionless => "",
        CountPerL => "count/L",
        CountPer100Ml => "count/100mL",
        CellsPerL => "cells/L",
        CellsPerMl => "cells/mL",
        UsCm => "uS/cm",
        MsCm => "mS/cm",
        SM => "S/m",
        MsM => "mS/m",
        Ntu => "NTU",
        Metre => "m",
        Centimetre => "cm",
        Millimetre => "mm",
    }
}

/// Keep an unknown parameter's unit as given. Units envmon knows get their canonical spelling;
/// other spellings are interned (at most [`MAX_INTERNED_UNITS`], each at most [`MAX_UNIT_LEN`]
/// characters), so `Sample::unit` can stay `&'static str` with bounded memory.
fn intern_unit(unit: &str) -> Option<&'static str> {
    if let Some(u) = parse_unit(unit) {
        return Some(unit_symbol(u));
    }
    let unit = unit.trim();
    if unit.chars().count() > MAX_UNIT_LEN || unit.chars().any(char::is_control) {
        return None;
    }
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = SET
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = set.get(unit) {
        return Some(s);
    }
    if set.len() >= MAX_INTERNED_UNITS {
        return None;
    }
    let s: &'static str = Box::leak(unit.to_string().into_boxed_str());
    set.insert(s);
    Some(s)
}

fn check_param_name(station: &str, param: &str) -> Result<(), NormaliseError> {
    let why = if param.trim().is_empty() {
        Some("empty")
    } else if param.chars().count() > MAX_PARAM_LEN {
        Some("longer than 64 characters")
    } else if param.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    };
    match why {
        Some(why) => Err(NormaliseError::BadParam {
            station: station.to_string(),
            param: truncate(param, MAX_PARAM_LEN),
            why,
        }),
        None => Ok(()),
    }
}

/// Drop sub-second digits: the InfluxDB point time has second precision (docs/schema.md).
fn to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(0)
}

/// Normalise one reading. With a registry, an unknown station is an error.
///
/// - A known parameter (any alias, case-insensitive) gets its canonical name; its value, `min`
///   and `max` are converted to the canonical unit (a missing unit means "already canonical")
///   and checked against the plausible range. `cou` is kept as given.
/// - An unknown parameter is kept under its lower-cased name with its unit as given; only
///   finiteness is checked.
/// - The flag travels unchanged. The time is truncated to whole seconds.
pub fn normalise(r: Reading, registry: Option<&Registry>) -> Result<Sample, NormaliseError> {
    let meta = match registry {
        Some(reg) => Some(Arc::clone(reg.get(&r.station).ok_or_else(|| {
            NormaliseError::UnknownStation {
                station: truncate(&r.station, 64),
            }
        })?)),
        None => None,
    };
    let station = r.station;
    check_param_name(&station, &r.param)?;
    let non_finite = |what: &'static str, param: &str| NormaliseError::NonFinite {
        station: station.clone(),
        param: param.to_string(),
        what,
    };
    for (what, v) in [("value", Some(r.value)), ("min", r.min), ("max", r.max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(non_finite(what, &r.param));
        }
    }
    if r.cou.is_some_and(|v| !v.is_finite()) {
        return Err(non_finite("cou", &r.param));
    }

    let (param, unit, value, min, max) = match canonical_param(&r.param) {
        Some(spec) => {
            let conv = match r.unit.as_deref() {
                None => Conversion::Identity,
                Some(u) => {
                    let parsed = parse_unit(u).ok_or_else(|| NormaliseError::UnknownUnit {
                        station: station.clone(),
                        param: spec.name.to_string(),
                        unit: truncate(u, MAX_UNIT_LEN),
                    })?;
                    conversion(spec.quantity, parsed).ok_or_else(|| {
                        NormaliseError::IncompatibleUnit {
                            station: station.clone(),
                            param: spec.name.to_string(),
                            unit: truncate(u, MAX_UNIT_LEN),
                            canonical: if spec.unit.is_empty() {
                                "(dimensionless)"
                            } else {
                                spec.unit
                            },
                        }
                    })?
                }
            };
            let conv = |v: f64| conv.apply(v);
            let check = |what: &'static str, v: f64| -> Result<f64, NormaliseError> {
                if !v.is_finite() {
                    return Err(non_finite(what, spec.name));
                }
                if v < spec.min || v > spec.max {
                    return Err(NormaliseError::Implausible {
                        station: station.clone(),
                        param: spec.name.to_string(),
                        what,
                        value: v,
                        unit: spec.unit,
                        min: spec.min,
                        max: spec.max,
                    });
                }
                Ok(v)
            };
            let value = check("value", conv(r.value))?;
            let min = r.min.map(|v| check("min", conv(v))).transpose()?;
            let max = r.max.map(|v| check("max", conv(v))).transpose()?;
            (spec.name.to_string(), spec.unit, value, min, max)
        }
        None => {
            let unit = match r.unit.as_deref() {
                None => "",
                Some(u) => intern_unit(u).ok_or_else(|| NormaliseError::UnknownUnit {
                    station: station.clone(),
                    param: r.param.to_lowercase(),
                    unit: truncate(u, MAX_UNIT_LEN),
                })?,
            };
            (r.param.to_lowercase(), unit, r.value, r.min, r.max)
        }
    };
    let measurement = measurement_for(meta.as_deref(), &param);
    Ok(Sample {
        station,
        time: to_second(r.time),
        interval: r.interval,
        param,
        value,
        unit,
        flag: r.flag,
        min,
        max,
        cou: r.cou,
        meta,
        measurement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Interval;

    fn reading(param: &str, value: f64, unit: Option<&str>) -> Reading {
        let mut r = Reading::new(
            "WJ-A01",
            "2026-11-23T00:00:00Z".parse().unwrap(),
            Interval::Hour,
            param,
            value,
        );
        r.unit = unit.map(str::to_string);
        r
    }

    #[test]
    fn molar_volume_is_24_465() {
        assert!((reference_molar_volume_l() - 24.465).abs() < 0.001);
    }

    #[test]
    fn decimal_conversions_are_exact_and_others_rounded() {
        let v = |x: f64, u: &str, p: &str| normalise(reading(p, x, Some(u)), None).unwrap().value;
        assert_eq!(v(101.02, "kPa", "pressure").to_string(), "1010.2");
        assert_eq!(v(101325.0, "Pa", "pressure").to_string(), "1013.25");
        assert_eq!(v(296.45, "K", "temp").to_string(), "23.3");
        assert_eq!(v(0.3, "ug/L", "tp").to_string(), "0.0003");
        // 1000 ppb CO = 1 ppm × 28.010 / 24.46539… = 1.14488198… mg/m³ → 8 digits 1.1448820.
        assert_eq!(v(1000.0, "ppb", "co").to_string(), "1.144882");
        // 68.3 °F = 20.1666… °C → 20.166667.
        assert_eq!(v(68.3, "degF", "temp").to_string(), "20.166667");
        // Identity: stored as received.
        assert_eq!(v(0.1 + 0.2, "ug/m3", "pm25"), 0.1 + 0.2);
    }

    #[test]
    fn aliases_are_case_insensitive() {
        for a in ["PM2.5", "pm2_5", "PM25", "pm2.5", "a34004"] {
            assert_eq!(canonical_param(a).unwrap().name, "pm25", "{a}");
        }
        assert_eq!(canonical_param("NH3-N").unwrap().name, "nh3n");
        assert_eq!(canonical_param("CODMn").unwrap().name, "codmn");
        assert_eq!(canonical_param("Cr(VI)").unwrap().name, "cr6");
        assert_eq!(canonical_param("Wind_Speed").unwrap().name, "wind_speed");
        assert!(canonical_param("voc").is_none());
        // PM1.0 is not PM10.
        assert!(canonical_param("PM1.0").is_none());
        assert!(canonical_param("pm1_0").is_none());
        assert_eq!(canonical_param("PM 2.5").unwrap().name, "pm25");
        // every canonical name maps to itself
        for p in PARAMS {
            assert_eq!(canonical_param(p.name).unwrap().name, p.name);
        }
    }

    #[test]
    fn converts_and_checks() {
        let s = normalise(reading("NO2", 10.0, Some("ppb")), None).unwrap();
        assert_eq!(s.param, "no2");
        assert_eq!(s.unit, "ug/m3");
        assert!((s.value - 10.0 * 46.0055 / 24.465).abs() < 0.01);
        let e = normalise(reading("pm25", -1.0, None), None).unwrap_err();
        assert_eq!(e.reason(), "implausible value");
        let e = normalise(reading("pm25", 1.0, Some("ppb")), None).unwrap_err();
        assert_eq!(e.reason(), "incompatible unit");
        let e = normalise(reading("pm25", 1.0, Some("furlong")), None).unwrap_err();
        assert_eq!(e.reason(), "unknown unit");
        for e in [
            normalise(reading("", 1.0, None), None).unwrap_err(),
            normalise(reading("pm25", f64::NAN, None), None).unwrap_err(),
            normalise(reading("x", 1.0, None), Some(&Registry::default())).unwrap_err(),
        ] {
            assert!(NormaliseError::REASONS.contains(&e.reason()), "{e}");
        }
        let s = normalise(reading("VOC", 1.5, Some("ppb")), None).unwrap();
        assert_eq!((s.param.as_str(), s.unit), ("voc", "ppb"));
        let s = normalise(reading("Odd", 1.5, Some("widgets/h")), None).unwrap();
        assert_eq!((s.param.as_str(), s.unit), ("odd", "widgets/h"));
    }
}
