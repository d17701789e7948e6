//! Pollutant codes → canonical parameters and the unit HJ 212 implies for them.
//!
//! Sources (standards.md §6.6): HJ 212-2017 Appendix B style codes for ambient air (ST=22) and
//! surface water (ST=21); HJ/T 212-2005 water codes (001 pH, 010 BOD5, 011 COD, 060 NH3-N, 065 TN,
//! 101 TP) from the 2005 code list in lingkejia/bocon-operation-app `src/lib/polcodeList05.js`;
//! legacy ambient names (`PM25`, `PM10`, `SO2`, …) seen on 2005-era devices.
//! Lookup is case-insensitive. An unknown code is not an error: the caller keeps it under its own
//! lower-case code.

/// (code, canonical parameter, unit). Codes in lower case. `""` unit = dimensionless.
pub const TABLE: &[(&str, &str, &str)] = &[
    // Ambient air, HJ 212-2017.
    ("a34004", "pm25", "ug/m3"),
    ("a34002", "pm10", "ug/m3"),
    ("a21026", "so2", "ug/m3"),
    ("a21004", "no2", "ug/m3"),
    ("a21005", "co", "mg/m3"),
    ("a05024", "o3", "ug/m3"),
    ("a34001", "tsp", "ug/m3"),
    ("a01001", "temp", "degC"),
    ("a01002", "rh", "%"),
    ("a01006", "pressure", "kPa"),
    ("a01007", "wind_speed", "m/s"),
    ("a01008", "wind_dir", "deg"),
    // Surface water, HJ 212-2017.
    ("w01001", "ph", ""),
    ("w01009", "do", "mg/L"),
    ("w01010", "water_temp", "degC"),
    ("w01014", "conductivity", "uS/cm"),
    ("w01003", "turbidity", "NTU"),
    ("w01019", "codmn", "mg/L"),
    ("w01018", "cod", "mg/L"),
    ("w01017", "bod5", "mg/L"),
    ("w21003", "nh3n", "mg/L"),
    ("w21011", "tp", "mg/L"),
    ("w21001", "tn", "mg/L"),
    ("w01016", "chla", "mg/L"),
    ("w19011", "algae_density", "cells/L"),
    // HJ/T 212-2005 water codes.
    ("001", "ph", ""),
    ("010", "bod5", "mg/L"),
    ("011", "cod", "mg/L"),
    ("060", "nh3n", "mg/L"),
    ("065", "tn", "mg/L"),
    ("101", "tp", "mg/L"),
    // Legacy names used by 2005-era ambient devices.
    ("pm25", "pm25", "ug/m3"),
    ("pm2.5", "pm25", "ug/m3"),
    ("pm10", "pm10", "ug/m3"),
    ("so2", "so2", "ug/m3"),
    ("no2", "no2", "ug/m3"),
    ("co", "co", "mg/m3"),
    ("o3", "o3", "ug/m3"),
    ("tsp", "tsp", "ug/m3"),
];

/// Built-in lookup; `code` must already be lower case.
pub fn builtin(code: &str) -> Option<(&'static str, &'static str)> {
    // A `match` compiles to a length-then-bytes comparison: cheaper than scanning TABLE.
    let (p, u) = match code {
        "a34004" => ("pm25", "ug/m3"),
        "a34002" => ("pm10", "ug/m3"),
        "a21026" => ("so2", "ug/m3"),
        "a21004" => ("no2", "ug/m3"),
        "a21005" => ("co", "mg/m3"),
        "a05024" => ("o3", "ug/m3"),
        "a34001" => ("tsp", "ug/m3"),
        "a01001" => ("temp", "degC"),
        "a01002" => ("rh", "%"),
        "a01006" => ("pressure", "kPa"),
        "a01007" => ("wind_speed", "m/s"),
        "a01008" => ("wind_dir", "deg"),
        "w01001" => ("ph", ""),
        "w01009" => ("do", "mg/L"),
        "w01010" => ("water_temp", "degC"),
        "w01014" => ("conductivity", "uS/cm"),
        "w01003" => ("turbidity", "NTU"),
        "w01019" => ("codmn", "mg/L"),
        "w01018" => ("cod", "mg/L"),
        "w01017" => ("bod5", "mg/L"),
        "w21003" => ("nh3n", "mg/L"),
        "w21011" => ("tp", "mg/L"),
        "w21001" => ("tn", "mg/L"),
        "w01016" => ("chla", "mg/L"),
        "w19011" => ("algae_density", "cells/L"),
        "001" => ("ph", ""),
        "010" => ("bod5", "mg/L"),
        "011" => ("cod", "mg/L"),
        "060" => ("nh3n", "mg/L"),
        "065" => ("tn", "mg/L"),
        "101" => ("tp", "mg/L"),
        "pm25" | "pm2.5" => ("pm25", "ug/m3"),
        "pm10" => ("pm10", "ug/m3"),
        "so2" => ("so2", "ug/m3"),
        "no2" => ("no2", "ug/m3"),
        "co" => ("co", "mg/m3"),
        "o3" => ("o3", "ug/m3"),
        "tsp" => ("tsp", "ug/m3"),
        _ => return None,
    };
    Some((p, u))
}

/// The HJ 212-2017 code the encoder writes for a canonical parameter (first entry in [`TABLE`]).
pub fn code_for_param(param: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(_, p, _)| *p == param)
        .map(|(c, _, _)| *c)
}

/// Unit implied for a canonical parameter by the built-in table.
pub fn unit_for_param(param: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(_, p, _)| *p == param)
        .map(|(_, _, u)| *u)
}

/// Lower-case `s` into `buf` when it fits (codes are short); `None` for longer strings.
pub fn lower_into<'b>(s: &str, buf: &'b mut [u8; 32]) -> Option<&'b str> {
    let b = s.as_bytes();
    if b.len() > buf.len() {
        return None;
    }
    for (d, c) in buf.iter_mut().zip(b) {
        *d = c.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..b.len()]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_and_table_agree() {
        for (c, p, u) in TABLE {
            assert_eq!(builtin(c), Some((*p, *u)), "{c}");
        }
        assert_eq!(builtin("a99999"), None);
        assert_eq!(code_for_param("pm25"), Some("a34004"));
        assert_eq!(code_for_param("ph"), Some("w01001"));
    }
}
