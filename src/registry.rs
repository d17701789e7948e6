//! Station registry: `config/stations.toml`, the one source of truth for station metadata.
//!
//! Owns: parsing and validating the registry, lookups by id and by HJ 212 MN. Knows nothing of
//! brokers or databases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::model::{BodyType, StationKind};
pub use crate::model::{Station, WaterClass};

/// Errors reading or validating the registry; each names the offending key path.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read station registry {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// `station registry config/stations.toml:12: station "WJ-A01": kind: unknown variant …`.
    #[error(
        "station registry {path}{}: {}{}{reason}",
        line.map(|l| format!(":{l}")).unwrap_or_default(),
        station.as_ref().map(|s| format!("station {s:?}: ")).unwrap_or_default(),
        if key.is_empty() { String::new() } else { format!("{key}: ") }
    )]
    Invalid {
        path: String,
        /// 1-based line of the key (or of the entry's `[[station]]`), when known.
        line: Option<usize>,
        /// The entry's station id, when it has one.
        station: Option<String>,
        /// The key within the entry (`kind`), or the path for errors outside an entry.
        key: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    station: Vec<RawStation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    id: String,
    name: String,
    name_en: String,
    kind: StationKind,
    district: String,
    lat: f64,
    lon: f64,
    timezone: Option<String>,
    mn: Option<String>,
    /// HJ 212 access password; better given as `pw_env` (name of an environment variable).
    pw: Option<String>,
    pw_env: Option<String>,
    /// Accept this station's frames on the HJ 212 TCP listener without a password (an explicit
    /// opt-out: without `pw`/`pw_env` and without this, its frames are refused there).
    #[serde(default)]
    hj212_no_password: bool,
    water_body: Option<String>,
    body_type: Option<BodyType>,
    target_class: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// Expected reporting interval in seconds (used by the silent-station alert).
    expected_interval_s: Option<u64>,
}

/// The loaded registry: stations by id and by MN.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    by_id: HashMap<String, Arc<Station>>,
    by_mn: HashMap<String, Arc<Station>>,
    order: Vec<Arc<Station>>,
    /// Ids of the stations with `hj212_no_password = true`.
    no_password: HashSet<String>,
}

impl Registry {
    /// Read and validate a registry file.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Registry::parse(&text, &path.display().to_string())
    }

    /// Parse registry text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Registry, RegistryError> {
        // Station ids of the entries in file order, to name an entry in its errors (the
        // entry's index means nothing to an operator).
        let ids: Vec<Option<String>> = toml_edit::ImDocument::parse(text)
            .ok()
            .and_then(|d| {
                d.get("station")?.as_array_of_tables().map(|a| {
                    a.iter()
                        .map(|t| t.get("id")?.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default();
        // A key path `station[3].kind` becomes entry 3's id, the line and the key `kind`.
        let invalid = |path: String, reason: String| {
            let entry = path
                .strip_prefix("station[")
                .and_then(|r| r.split_once(']'))
                .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)));
            let (station, key) = match entry {
                Some((i, rest)) => (
                    ids.get(i).cloned().flatten(),
                    rest.trim_start_matches('.').to_string(),
                ),
                None => (None, path.clone()),
            };
            RegistryError::Invalid {
                path: origin.to_string(),
                line: crate::text::toml_line(text, &path),
                station,
                key,
                reason,
            }
        };
        let de = toml::Deserializer::new(text);
        let raw: RawRegistry = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = inner.message().trim().to_string();
            match (key.as_str(), inner.span()) {
                // A syntax error: no key path, but the parser's position.
                (".", Some(span)) => RegistryError::Invalid {
                    path: origin.to_string(),
                    line: Some(crate::text::line_col(text, span.start).0),
                    station: None,
                    key: String::new(),
                    reason: format!("TOML syntax error: {reason}"),
                },
                (".", None) => invalid(String::new(), reason),
                _ => invalid(key, reason),
            }
        })?;
        let mut reg = Registry::default();
        for (i, rs) in raw.station.into_iter().enumerate() {
            let key = |field: &str| format!("station[{i}].{field}");
            if rs.id.trim().is_empty() {
                return Err(invalid(key("id"), "must not be empty".into()));
            }
            if rs.id.contains(['/', '+', '#', ' ']) {
                return Err(invalid(
                    key("id"),
                    format!("{:?} must not contain '/', '+', '#' or spaces", rs.id),
                ));
            }
            if !(-90.0..=90.0).contains(&rs.lat) {
                return Err(invalid(key("lat"), format!("{} is not a latitude", rs.lat)));
            }
            if !(-180.0..=180.0).contains(&rs.lon) {
                return Err(invalid(
                    key("lon"),
                    format!("{} is not a longitude", rs.lon),
                ));
            }
            let timezone: Tz = match &rs.timezone {
                None => chrono_tz::Asia::Shanghai,
                Some(tz) => tz.parse().map_err(|_| {
                    invalid(key("timezone"), format!("unknown IANA time zone {tz:?}"))
                })?,
            };
            let target_class = match &rs.target_class {
                None => None,
                Some(c) => match WaterClass::parse(c) {
                    Some(wc) if wc.0 <= 5 => Some(wc),
                    _ => {
                        return Err(invalid(
                            key("target_class"),
                            format!("{c:?} is not a class I..V"),
                        ))
                    }
                },
            };
            if rs.kind == StationKind::WaterAuto {
                if rs.water_body.is_none() {
                    return Err(invalid(
                        key("water_body"),
                        "required for water_auto stations".into(),
                    ));
                }
                if rs.body_type.is_none() {
                    return Err(invalid(
                        key("body_type"),
                        "required for water_auto stations (river, lake or reservoir)".into(),
                    ));
                }
                if target_class.is_none() {
                    return Err(invalid(
                        key("target_class"),
                        "required for water_auto stations (I..V)".into(),
                    ));
                }
            }
            let pw = match (&rs.pw, &rs.pw_env) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        key("pw"),
                        "give either pw or pw_env, not both".into(),
                    ))
                }
                (Some(p), None) => Some(p.clone()),
                (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                    invalid(
                        key("pw_env"),
                        format!("environment variable {var} is not set"),
                    )
                })?),
                (None, None) => None,
            };
            if rs.hj212_no_password {
                if pw.is_some() {
                    return Err(invalid(
                        key("hj212_no_password"),
                        "the station has a password (pw / pw_env): remove hj212_no_password".into(),
                    ));
                }
                if rs.mn.is_none() {
                    return Err(invalid(
                        key("hj212_no_password"),
                        "only means something for a station with an HJ 212 mn".into(),
                    ));
                }
                reg.no_password.insert(rs.id.clone());
            }
            let st = Arc::new(Station {
                id: rs.id.clone(),
                name: rs.name,
                name_en: rs.name_en,
                kind: rs.kind,
                district: rs.district,
                lat: rs.lat,
                lon: rs.lon,
                timezone,
                mn: rs.mn.clone(),
                pw,
                water_body: rs.water_body,
                body_type: rs.body_type,
                target_class,
                groups: rs.groups,
                expected_interval_s: rs.expected_interval_s,
            });
            if reg.by_id.insert(rs.id.clone(), st.clone()).is_some() {
                return Err(invalid(
                    key("id"),
                    format!("duplicate station id {:?}", rs.id),
                ));
            }
            if let Some(mn) = rs.mn {
                if reg.by_mn.insert(mn.clone(), st.clone()).is_some() {
                    return Err(invalid(key("mn"), format!("duplicate MN {mn:?}")));
                }
            }
            reg.order.push(st);
        }
        Ok(reg)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Station>> {
        self.by_id.get(id)
    }

    pub fn by_mn(&self, mn: &str) -> Option<&Arc<Station>> {
        self.by_mn.get(mn)
    }

    /// True when the registry lets station `id` send HJ 212 frames over TCP without a
    /// password (`hj212_no_password = true`).
    pub fn hj212_no_password(&self, id: &str) -> bool {
        self.no_password.contains(id)
    }

    /// Stations with `hj212_no_password = true`, in file order (for `check-config`).
    pub fn hj212_no_password_stations(&self) -> impl Iterator<Item = &Arc<Station>> {
        self.order
            .iter()
            .filter(|s| self.no_password.contains(&s.id))
    }

    /// Stations in file order.
    pub fn stations(&self) -> &[Arc<Station>] {
        &self.order
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Count of stations per (kind, district), for `check-config`.
    pub fn summary(&self) -> BTreeMap<(String, String), usize> {
        let mut m = BTreeMap::new();
        for st in &self.order {
            *m.entry((st.kind.to_string(), st.district.clone()))
                .or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[[station]]
id = "WJ-A01"
name = "吴江开发区"
name_en = "Wujiang Development Zone"
kind = "air_national"
district = "Wujiang"
lat = 31.16
lon = 120.64
mn = "32050900000001"

[[station]]
id = "W-TP01"
name = "太浦河金泽"
name_en = "Taipu River Jinze"
kind = "water_auto"
district = "Qingpu"
lat = 31.03
lon = 120.92
water_body = "太浦河"
body_type = "river"
target_class = "III"
groups = ["一河三湖", "demo-zone"]
"#;

    #[test]
    fn parses_and_indexes() {
        let r = Registry::parse(OK, "t").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.by_mn("32050900000001").unwrap().id, "WJ-A01");
        let w = r.get("W-TP01").unwrap();
        assert_eq!(w.target_class, Some(WaterClass(3)));
        assert_eq!(w.timezone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn errors_name_the_key() {
        let bad = OK.replace("kind = \"water_auto\"", "kind = \"water\"");
        let line_of =
            |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let e = Registry::parse(&bad, "t").unwrap_err().to_string();
        let l = line_of(&bad, "kind = \"water\"");
        assert!(
            e.starts_with(&format!(
                "station registry t:{l}: station \"W-TP01\": kind: "
            )),
            "{e}"
        );
        assert!(e.contains("expected one of"), "{e}");
        let bad = OK.replace("target_class = \"III\"", "target_class = \"VII\"");
        let e = Registry::parse(&bad, "t").unwrap_err().to_string();
        let l = line_of(&bad, "VII");
        assert!(
            e.starts_with(&format!(
                "station registry t:{l}: station \"W-TP01\": target_class: "
            )),
            "{e}"
        );
        let bad = OK.replace("lat = 31.16", "lat = 131.16");
        let e = Registry::parse(&bad, "t").unwrap_err().to_string();
        let l = line_of(&bad, "131.16");
        assert!(
            e.starts_with(&format!(
                "station registry t:{l}: station \"WJ-A01\": lat: "
            )),
            "{e}"
        );
        let e = Registry::parse("[[station]\nid = 1\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("station registry t:1: TOML syntax error"),
            "{e}"
        );
        let bad = OK.replace("\"W-TP01\"", "\"WJ-A01\"");
        let e = Registry::parse(&bad, "t").unwrap_err().to_string();
        assert!(e.contains("duplicate station id"), "{e}");
        let bad = format!("{OK}\ncolour = 1\n");
        assert!(Registry::parse(&bad, "t").is_err());
    }

    #[test]
    fn hj212_no_password_is_explicit_and_checked() {
        let r = Registry::parse(OK, "t").unwrap();
        assert!(!r.hj212_no_password("WJ-A01"));
        let opted = OK.replace(
            "mn = \"32050900000001\"\n",
            "mn = \"32050900000001\"\nhj212_no_password = true\n",
        );
        let r = Registry::parse(&opted, "t").unwrap();
        assert!(r.hj212_no_password("WJ-A01"));
        assert_eq!(r.hj212_no_password_stations().count(), 1);
        let both = opted.replace(
            "hj212_no_password = true\n",
            "hj212_no_password = true\npw = \"x\"\n",
        );
        let e = Registry::parse(&both, "t").unwrap_err().to_string();
        assert!(
            e.contains("hj212_no_password: the station has a password"),
            "{e}"
        );
        let no_mn = OK.replace("groups = [", "hj212_no_password = true\ngroups = [");
        let e = Registry::parse(&no_mn, "t").unwrap_err().to_string();
        assert!(
            e.contains("W-TP01") && e.contains("hj212_no_password"),
            "{e}"
        );
    }
}
