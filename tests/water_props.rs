//! Properties of the water calculations over arbitrary inputs.

use std::collections::BTreeMap;

use envmon::indicators::water::{
    evaluate, single_factor_class, tli, EvalOptions, Obs, Param, TliInput, Transparency,
    WaterStandard,
};
use envmon::model::{BodyType, Flag};
use envmon::registry::WaterClass;
use proptest::prelude::*;

fn any_param() -> impl Strategy<Value = Param> {
    (0..Param::ALL.len()).prop_map(|i| Param::ALL[i])
}

fn any_body() -> impl Strategy<Value = BodyType> {
    prop_oneof![
        Just(BodyType::River),
        Just(BodyType::Lake),
        Just(BodyType::Reservoir)
    ]
}

proptest! {
    /// A larger concentration never gives a better class; for DO a larger value never a worse one.
    #[test]
    fn class_is_monotonic(p in any_param(), body in any_body(), a in 0.0f64..50_000.0, b in 0.0f64..50_000.0) {
        prop_assume!(p != Param::Ph);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let c = |v| single_factor_class(WaterStandard::Gb3838_2002, p, body, v);
        match (c(lo), c(hi)) {
            (Some(cl), Some(ch)) if p == Param::Do => prop_assert!(cl >= ch),
            (Some(cl), Some(ch)) => prop_assert!(cl <= ch),
            (None, None) => {}
            other => prop_assert!(false, "inconsistent: {other:?}"),
        }
    }

    /// Any input, including NaN, infinities and negative values, gives Ok or Err, never a panic;
    /// an Ok result's class is the worst per-item class.
    #[test]
    fn evaluate_never_panics(
        items in proptest::collection::vec((any_param(), any::<f64>(), any::<bool>()), 0..12),
        body in any_body(),
        target in 1u8..=5,
    ) {
        let obs: BTreeMap<Param, Obs> = items
            .into_iter()
            .map(|(p, v, ok)| (p, Obs { value: v, flag: if ok { Flag::N } else { Flag::D } }))
            .collect();
        if let Ok(r) = evaluate(body, &obs, Some(WaterClass(target)), &EvalOptions::routine()) {
            prop_assert_eq!(r.class, r.per_param.values().copied().max());
            for e in &r.exceedances {
                prop_assert!(e.class > WaterClass(target));
                if let Some(m) = e.multiple { prop_assert!(m > 0.0); }
            }
        }
    }

    /// Weights sum to 1 over any non-empty subset and TLI(Σ) lies between the per-item indices.
    #[test]
    fn tli_is_a_weighted_mean(
        chla in proptest::option::of(0.01f64..500.0),
        tp in proptest::option::of(0.001f64..2.0),
        tn in proptest::option::of(0.01f64..20.0),
        sd in proptest::option::of(0.05f64..10.0),
        codmn in proptest::option::of(0.1f64..40.0),
    ) {
        let input = TliInput {
            chla, tp, tn, codmn,
            sd: sd.map(|m| Transparency { metres: m, measured_at: None }),
        };
        let n = [chla, tp, tn, sd, codmn].iter().filter(|x| x.is_some()).count();
        match tli(&input) {
            Ok(r) => {
                prop_assert_eq!(r.weights.len(), n);
                prop_assert!((r.weights.values().sum::<f64>() - 1.0).abs() < 1e-12);
                prop_assert_eq!(r.missing.len(), 5 - n);
                let lo = r.per_param.values().copied().fold(f64::INFINITY, f64::min);
                let hi = r.per_param.values().copied().fold(f64::NEG_INFINITY, f64::max);
                // r.tli is kept at 10 significant digits (envmon::num::MAX_SIG).
                let tol = 1e-9 * hi.abs().max(lo.abs()).max(1.0);
                prop_assert!(r.tli >= lo - tol && r.tli <= hi + tol);
            }
            Err(_) => prop_assert_eq!(n, 0),
        }
    }
}
