//! GB 3838-2002 single-factor classes, typed from the standard's Table 1 (standards.md §4)
//! independently of the implementation's table: for every limit of every item, the value at the
//! limit and a value just beyond it, with the expected class written out by hand.

use std::collections::BTreeMap;

use envmon::indicators::water::{
    evaluate, exceedance_multiple, single_factor_class, EvalOptions, Exclusion, Obs, Param,
    WaterError, WaterStandard,
};
use envmon::model::{BodyType, Flag};
use envmon::registry::WaterClass;

const STD: WaterStandard = WaterStandard::Gb3838_2002;
const BODIES: [BodyType; 3] = [BodyType::River, BodyType::Lake, BodyType::Reservoir];

/// (item, limits I..V, class of a value AT each limit, class of a value 0.1 % ABOVE each limit).
/// 6 = 劣Ⅴ. Maximum-type items whose limits are the same for rivers and lakes/reservoirs.
type Row = (&'static str, [f64; 5], [u8; 5], [u8; 5]);
#[rustfmt::skip]
const MAX_ITEMS: &[Row] = &[
    ("codmn",          [2.0, 4.0, 6.0, 10.0, 15.0],                 [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]),
    ("cod",            [15.0, 15.0, 20.0, 30.0, 40.0],              [1, 1, 3, 4, 5], [3, 3, 4, 5, 6]),
    ("bod5",           [3.0, 3.0, 4.0, 6.0, 10.0],                  [1, 1, 3, 4, 5], [3, 3, 4, 5, 6]),
    ("nh3n",           [0.15, 0.5, 1.0, 1.5, 2.0],                  [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]),
    ("cu",             [0.01, 1.0, 1.0, 1.0, 1.0],                  [1, 2, 2, 2, 2], [2, 6, 6, 6, 6]),
    ("zn",             [0.05, 1.0, 1.0, 2.0, 2.0],                  [1, 2, 2, 4, 4], [2, 4, 4, 6, 6]),
    ("f",              [1.0, 1.0, 1.0, 1.5, 1.5],                   [1, 1, 1, 4, 4], [4, 4, 4, 6, 6]),
    ("se",             [0.01, 0.01, 0.01, 0.02, 0.02],              [1, 1, 1, 4, 4], [4, 4, 4, 6, 6]),
    ("as",             [0.05, 0.05, 0.05, 0.1, 0.1],                [1, 1, 1, 4, 4], [4, 4, 4, 6, 6]),
    ("hg",             [0.00005, 0.00005, 0.0001, 0.001, 0.001],    [1, 1, 3, 4, 4], [3, 3, 4, 6, 6]),
    ("cd",             [0.001, 0.005, 0.005, 0.005, 0.01],          [1, 2, 2, 2, 5], [2, 5, 5, 5, 6]),
    ("cr6",            [0.01, 0.05, 0.05, 0.05, 0.1],               [1, 2, 2, 2, 5], [2, 5, 5, 5, 6]),
    ("pb",             [0.01, 0.01, 0.05, 0.05, 0.1],               [1, 1, 3, 3, 5], [3, 3, 5, 5, 6]),
    ("cn",             [0.005, 0.05, 0.2, 0.2, 0.2],                [1, 2, 3, 3, 3], [2, 3, 6, 6, 6]),
    ("phenol",         [0.002, 0.002, 0.005, 0.01, 0.1],            [1, 1, 3, 4, 5], [3, 3, 4, 5, 6]),
    ("petroleum",      [0.05, 0.05, 0.05, 0.5, 1.0],                [1, 1, 1, 4, 5], [4, 4, 4, 5, 6]),
    ("las",            [0.2, 0.2, 0.2, 0.3, 0.3],                   [1, 1, 1, 4, 4], [4, 4, 4, 6, 6]),
    ("sulfide",        [0.05, 0.1, 0.2, 0.5, 1.0],                  [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]),
    ("fecal_coliform", [200.0, 2000.0, 10000.0, 20000.0, 40000.0],  [1, 2, 3, 4, 5], [2, 3, 4, 5, 6]),
];

/// GB 3838-2002 Table 1 TP (as P): rivers 0.02/0.1/0.2/0.3/0.4; lakes, reservoirs
/// 0.01/0.025/0.05/0.1/0.2. TN (lakes, reservoirs) 0.2/0.5/1.0/1.5/2.0.
const TP_RIVER: [f64; 5] = [0.02, 0.1, 0.2, 0.3, 0.4];
const TP_LAKE: [f64; 5] = [0.01, 0.025, 0.05, 0.1, 0.2];
const TN_LAKE: [f64; 5] = [0.2, 0.5, 1.0, 1.5, 2.0];
const STRICT: [u8; 5] = [1, 2, 3, 4, 5];
const STRICT_ABOVE: [u8; 5] = [2, 3, 4, 5, 6];

fn p(name: &str) -> Param {
    Param::from_name(name).unwrap_or_else(|| panic!("{name} must be a known parameter"))
}

fn class(param: Param, body: BodyType, v: f64) -> u8 {
    single_factor_class(STD, param, body, v)
        .unwrap_or_else(|| panic!("{param} must have a class for {body}"))
        .0
}

fn check(name: &str, body: BodyType, limits: [f64; 5], at: [u8; 5], above: [u8; 5]) {
    for i in 0..5 {
        let lim = limits[i];
        assert_eq!(class(p(name), body, lim), at[i], "{name} {body} at {lim}");
        let up = lim * 1.001;
        assert_eq!(class(p(name), body, up), above[i], "{name} {body} at {up}");
    }
}

#[test]
fn every_maximum_item_limit_for_every_body_type() {
    for body in BODIES {
        for (name, limits, at, above) in MAX_ITEMS {
            check(name, body, *limits, *at, *above);
        }
    }
}

#[test]
fn tp_uses_the_river_or_lake_column() {
    check("tp", BodyType::River, TP_RIVER, STRICT, STRICT_ABOVE);
    check("tp", BodyType::Lake, TP_LAKE, STRICT, STRICT_ABOVE);
    check("tp", BodyType::Reservoir, TP_LAKE, STRICT, STRICT_ABOVE);
    // The same value differs by body type: 0.15 is river III but lake/reservoir V.
    assert_eq!(class(Param::Tp, BodyType::River, 0.15), 3);
    assert_eq!(class(Param::Tp, BodyType::Lake, 0.15), 5);
    assert_eq!(class(Param::Tp, BodyType::River, 0.35), 5);
    assert_eq!(class(Param::Tp, BodyType::Lake, 0.35), 6);
}

#[test]
fn tn_has_lake_limits_and_no_river_class() {
    check("tn", BodyType::Lake, TN_LAKE, STRICT, STRICT_ABOVE);
    check("tn", BodyType::Reservoir, TN_LAKE, STRICT, STRICT_ABOVE);
    assert_eq!(
        single_factor_class(STD, Param::Tn, BodyType::River, 0.1),
        None
    );
    assert_eq!(
        single_factor_class(STD, Param::WaterTemp, BodyType::Lake, 20.0),
        None
    );
}

#[test]
fn dissolved_oxygen_is_a_minimum() {
    // DO ≥ 7.5 / 6 / 5 / 3 / 2 mg/L (GB 3838-2002 Table 1 item 3).
    let limits = [7.5, 6.0, 5.0, 3.0, 2.0];
    for body in BODIES {
        for (i, &lim) in limits.iter().enumerate() {
            assert_eq!(class(Param::Do, body, lim), i as u8 + 1, "DO at {lim}");
            let below = lim * 0.999;
            assert_eq!(class(Param::Do, body, below), i as u8 + 2, "DO at {below}");
        }
        assert_eq!(class(Param::Do, body, 12.0), 1);
        assert_eq!(class(Param::Do, body, 0.0), 6);
    }
}

#[test]
fn ph_is_6_to_9_else_worse_than_v() {
    for body in BODIES {
        for (v, c) in [(6.0, 1), (9.0, 1), (7.3, 1), (5.99, 6), (9.01, 6), (2.0, 6)] {
            assert_eq!(class(Param::Ph, body, v), c, "pH {v}");
        }
    }
    // pH has no exceedance multiple; it is listed as an exceedance with no multiple.
    let obs = BTreeMap::from([(Param::Ph, Obs::new(9.5)), (Param::Nh3n, Obs::new(0.3))]);
    let r = evaluate(
        BodyType::River,
        &obs,
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(6)));
    assert_eq!(r.determining, vec![Param::Ph]);
    assert_eq!(r.exceedances.len(), 1);
    assert_eq!(r.exceedances[0].multiple, None);
    assert_eq!(r.exceedances[0].limit, None);
}

fn river_sample() -> BTreeMap<Param, Obs> {
    [
        (Param::Ph, 7.2),
        (Param::Do, 5.5),    // III (≥5)
        (Param::Codmn, 5.8), // III (≤6)
        (Param::Cod, 12.0),  // I
        (Param::Nh3n, 1.2),  // IV (≤1.5)
        (Param::Tp, 0.25),   // river IV (≤0.3), lake 劣Ⅴ (>0.2)
        (Param::Tn, 2.6),    // lake 劣Ⅴ; not a river item
    ]
    .into_iter()
    .map(|(p, v)| (p, Obs::new(v)))
    .collect()
}

#[test]
fn multi_parameter_sample_worst_item_decides_with_exceedances() {
    let r = evaluate(
        BodyType::River,
        &river_sample(),
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(4)));
    assert_eq!(r.determining, vec![Param::Nh3n, Param::Tp]);
    assert_eq!(r.per_param[&Param::Do], WaterClass(3));
    assert_eq!(r.per_param[&Param::Cod], WaterClass(1));
    assert_eq!(r.meets_target, Some(false));
    assert_eq!(r.excluded, vec![Param::Tn]);
    // River TN: GB 3838-2002 has no river TN limit, so it never enters the class, but it is
    // classed against the Table 1 TN column for reference: 2.6 > 2.0 (class V limit) → 劣Ⅴ.
    assert_eq!(r.separate[&Param::Tn], WaterClass(6));
    let tn = r.items[&Param::Tn];
    assert_eq!(tn.class, Some(WaterClass(6)));
    assert_eq!(tn.excluded, Some(Exclusion::NoLimitForBody));
    assert_eq!(tn.limit, Some(2.0));
    assert_eq!(r.items[&Param::Nh3n].excluded, None);
    assert_eq!(r.items[&Param::Nh3n].limit, Some(1.5));
    // Multiples against class III: TP (0.25 − 0.2)/0.2 = 0.25, NH3-N (1.2 − 1.0)/1.0 = 0.2;
    // largest first.
    let ex: Vec<(Param, f64)> = r
        .exceedances
        .iter()
        .map(|e| (e.param, e.multiple.unwrap()))
        .collect();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].0, Param::Tp);
    // Exact in decimal (binary arithmetic gives 0.24999999999999994 and 0.19999999999999996).
    assert_eq!(ex[0].1, 0.25);
    assert_eq!(ex[1].0, Param::Nh3n);
    assert_eq!(ex[1].1, 0.2);
    assert_eq!(r.exceedances[0].limit, Some(0.2));
}

#[test]
fn same_sample_in_a_lake_uses_lake_tp_and_reports_tn_separately() {
    let r = evaluate(
        BodyType::Lake,
        &river_sample(),
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(6)));
    assert_eq!(r.determining, vec![Param::Tp]);
    // TP against lake class III (0.05): (0.25 − 0.05)/0.05 = 4.
    let tp = &r.exceedances[0];
    assert_eq!(tp.param, Param::Tp);
    assert!((tp.multiple.unwrap() - 4.0).abs() < 1e-12);
    // TN is excluded from the class but classed separately (2.6 > 2.0 → 劣Ⅴ), with its multiple
    // against III: (2.6 − 1.0)/1.0 = 1.6.
    assert_eq!(r.excluded, vec![Param::Tn]);
    assert_eq!(r.separate[&Param::Tn], WaterClass(6));
    assert_eq!(r.separate_exceedances.len(), 1);
    assert!((r.separate_exceedances[0].multiple.unwrap() - 1.6).abs() < 1e-12);
}

#[test]
fn exclusions_are_configurable() {
    let mut obs = BTreeMap::from([
        (Param::Nh3n, Obs::new(0.4)),              // II
        (Param::Tn, Obs::new(1.2)),                // lake IV
        (Param::FecalColiform, Obs::new(30000.0)), // V
        (Param::WaterTemp, Obs::new(28.0)),
    ]);
    let routine = evaluate(BodyType::Lake, &obs, None, &EvalOptions::routine()).unwrap();
    assert_eq!(routine.class, Some(WaterClass(2)));
    assert_eq!(
        routine.excluded,
        vec![Param::WaterTemp, Param::Tn, Param::FecalColiform]
    );
    assert_eq!(routine.separate[&Param::Tn], WaterClass(4));
    assert_eq!(routine.separate[&Param::FecalColiform], WaterClass(5));
    assert!(!routine.separate.contains_key(&Param::WaterTemp));

    let all = evaluate(BodyType::Lake, &obs, None, &EvalOptions::all_items()).unwrap();
    assert_eq!(all.class, Some(WaterClass(5)));
    assert_eq!(all.determining, vec![Param::FecalColiform]);
    assert_eq!(all.excluded, vec![Param::WaterTemp]);

    // Even when not excluded, river TN never enters the class.
    obs.insert(Param::Tn, Obs::new(5.0));
    let river = evaluate(BodyType::River, &obs, None, &EvalOptions::all_items()).unwrap();
    assert_eq!(river.class, Some(WaterClass(5)));
    assert!(river.excluded.contains(&Param::Tn));

    // Excluding NH3-N as well leaves nothing: no class.
    let mut opts = EvalOptions::routine();
    opts.exclude.insert(Param::Nh3n);
    let none = evaluate(BodyType::Lake, &obs, Some(WaterClass(3)), &opts).unwrap();
    assert_eq!(none.class, None);
    assert_eq!(none.meets_target, None);
    assert!(none.determining.is_empty());
}

#[test]
fn flagged_values_are_not_evaluated() {
    let obs = BTreeMap::from([
        (Param::Nh3n, Obs::new(0.4)),
        (
            Param::Cod,
            Obs {
                value: 55.0,
                flag: Flag::M,
            },
        ),
        (
            Param::Tp,
            Obs {
                value: -9999.0,
                flag: Flag::D,
            },
        ),
    ]);
    let r = evaluate(
        BodyType::River,
        &obs,
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(2)));
    assert_eq!(r.not_evaluated[&Param::Cod], Flag::M);
    assert_eq!(r.not_evaluated[&Param::Tp], Flag::D);
    assert!(!r.per_param.contains_key(&Param::Cod));
    assert_eq!(r.meets_target, Some(true));
    assert!(r.exceedances.is_empty());
}

#[test]
fn ties_are_all_determining_and_meeting_the_target_exactly() {
    let obs = BTreeMap::from([
        (Param::Codmn, Obs::new(6.0)), // III at the limit
        (Param::Nh3n, Obs::new(1.0)),  // III at the limit
        (Param::Cod, Obs::new(20.0)),  // III at the limit
        (Param::Do, Obs::new(5.0)),    // III at the limit
    ]);
    let r = evaluate(
        BodyType::River,
        &obs,
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(3)));
    assert_eq!(
        r.determining,
        vec![Param::Do, Param::Codmn, Param::Cod, Param::Nh3n]
    );
    assert_eq!(r.meets_target, Some(true));
    assert!(r.exceedances.is_empty());
}

#[test]
fn exceedance_multiples_by_hand() {
    let m = |p, b, v, t| exceedance_multiple(STD, p, b, v, WaterClass(t));
    // COD 30 vs II (15): (30 − 15)/15 = 1.0
    assert!((m(Param::Cod, BodyType::River, 30.0, 2).unwrap() - 1.0).abs() < 1e-12);
    // DO 2.5 vs III (5): (5 − 2.5)/5 = 0.5 (minimum-type)
    assert!((m(Param::Do, BodyType::River, 2.5, 3).unwrap() - 0.5).abs() < 1e-12);
    // Hg 0.0003 vs III (0.0001): (0.0003 − 0.0001)/0.0001 = 2.0
    assert!((m(Param::Hg, BodyType::Lake, 0.0003, 3).unwrap() - 2.0).abs() < 1e-9);
    // At or below the target limit: no multiple.
    assert_eq!(m(Param::Cod, BodyType::River, 20.0, 3), None);
    assert_eq!(m(Param::Do, BodyType::River, 5.0, 3), None);
    // pH has no multiple.
    assert_eq!(m(Param::Ph, BodyType::River, 10.0, 3), None);
}

#[test]
fn impossible_values_are_errors_naming_the_parameter() {
    let bad = |p: Param, v: f64| {
        let obs = BTreeMap::from([(p, Obs::new(v))]);
        evaluate(BodyType::River, &obs, None, &EvalOptions::routine()).unwrap_err()
    };
    let e = bad(Param::Cod, -1.0);
    assert!(matches!(&e, WaterError::OutOfRange { param, .. } if param == "cod"));
    assert!(e.to_string().contains("cod"), "{e}");
    let e = bad(Param::Ph, 15.0);
    assert!(matches!(&e, WaterError::OutOfRange { param, .. } if param == "ph"));
    let e = bad(Param::Nh3n, f64::NAN);
    assert_eq!(
        e,
        WaterError::NotFinite {
            param: "nh3n".into()
        }
    );
}

#[test]
fn canonical_names_round_trip() {
    for name in [
        "ph",
        "do",
        "codmn",
        "cod",
        "bod5",
        "nh3n",
        "tp",
        "tn",
        "cu",
        "zn",
        "f",
        "se",
        "as",
        "hg",
        "cd",
        "cr6",
        "pb",
        "cn",
        "phenol",
        "petroleum",
        "las",
        "sulfide",
        "fecal_coliform",
        "water_temp",
    ] {
        assert_eq!(p(name).name(), name);
    }
    assert_eq!(Param::from_name("NH3N"), Some(Param::Nh3n));
    assert_eq!(Param::from_name("chla"), None);
    assert!(matches!(
        "xyz".parse::<Param>(),
        Err(WaterError::UnknownParam(s)) if s == "xyz"
    ));
}
