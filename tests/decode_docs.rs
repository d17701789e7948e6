//! docs/schema.md and docs/formats.md describe what the code does: the parameter table and the
//! reason labels are checked against the code.

use std::collections::BTreeMap;

use envmon::normalise::{Domain, PARAMS};

fn read(p: &str) -> String {
    std::fs::read_to_string(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn cell(s: &str) -> String {
    s.trim().trim_matches('`').to_string()
}

#[test]
fn schema_parameter_table_matches_code() {
    let doc = read("docs/schema.md");
    let start = doc
        .find("| param | meaning | unit |")
        .expect("table header");
    let mut rows = BTreeMap::new();
    for line in doc[start..].lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let c: Vec<&str> = line.split('|').collect();
        let unit = cell(c[3]);
        let unit = if unit == "(none)" {
            String::new()
        } else {
            unit
        };
        rows.insert(
            cell(c[1]),
            (
                unit,
                cell(c[4]),
                cell(c[5]).parse::<f64>().unwrap(),
                cell(c[6]).parse::<f64>().unwrap(),
            ),
        );
    }
    assert_eq!(rows.len(), PARAMS.len(), "row count");
    for p in PARAMS {
        let (unit, domain, min, max) = rows
            .get(p.name)
            .unwrap_or_else(|| panic!("{} missing in schema.md", p.name));
        let d = match p.domain {
            Domain::Air => "air",
            Domain::Meteo => "meteo",
            Domain::Water => "water",
        };
        assert_eq!(
            (unit.as_str(), domain.as_str(), *min, *max),
            (p.unit, d, p.min, p.max),
            "{}",
            p.name
        );
    }
}

#[test]
fn normalise_reason_labels_are_documented() {
    let doc = read("docs/formats.md");
    for l in envmon::normalise::NormaliseError::REASONS {
        assert!(doc.contains(&format!("| `{l}` |")), "{l}");
    }
}
