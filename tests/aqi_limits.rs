//! GB 3095 limits, three regimes, typed independently from standards.md §3 and §8.1.

use chrono::NaiveDate;
use envmon::indicators::aqi::tables::{limit, Averaging, Grade, LimitRegime, Pollutant};

#[test]
fn gb3095_limits_all_regimes() {
    use Averaging::*;
    use Pollutant::*;
    // (pollutant, averaging, 2012 I, 2012 II, transition I, transition II, final I, final II)
    let rows: [(Pollutant, Averaging, [f64; 6]); 14] = [
        (So2, Annual, [20., 60., 20., 60., 20., 20.]),
        (So2, Daily, [50., 150., 50., 150., 50., 50.]),
        (So2, Hourly, [150., 500., 150., 500., 150., 150.]),
        (No2, Annual, [40., 40., 40., 40., 30., 30.]),
        (No2, Daily, [80., 80., 80., 80., 50., 50.]),
        (No2, Hourly, [200., 200., 200., 200., 200., 200.]),
        (Co, Daily, [4., 4., 4., 4., 4., 4.]),
        (Co, Hourly, [10., 10., 10., 10., 10., 10.]),
        (O3, Mda8, [100., 160., 100., 160., 100., 160.]),
        (O3, Hourly, [160., 200., 160., 200., 160., 200.]),
        (Pm10, Annual, [40., 70., 40., 60., 20., 50.]),
        (Pm10, Daily, [50., 150., 50., 120., 50., 100.]),
        (Pm25, Annual, [15., 35., 15., 30., 10., 25.]),
        (Pm25, Daily, [35., 75., 35., 60., 25., 50.]),
    ];
    let regimes = [
        LimitRegime::Gb3095_2012,
        LimitRegime::Gb3095_2026Transition,
        LimitRegime::Gb3095_2026Final,
    ];
    for (p, a, v) in rows {
        for (ri, r) in regimes.iter().enumerate() {
            assert_eq!(
                limit(*r, Grade::I, p, a),
                Some(v[2 * ri]),
                "{r:?} I {p:?} {a:?}"
            );
            assert_eq!(
                limit(*r, Grade::II, p, a),
                Some(v[2 * ri + 1]),
                "{r:?} II {p:?} {a:?}"
            );
        }
    }
    assert_eq!(limit(LimitRegime::Gb3095_2012, Grade::II, Co, Annual), None);
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    assert_eq!(
        LimitRegime::for_date(d(2026, 2, 28)),
        LimitRegime::Gb3095_2012
    );
    assert_eq!(
        LimitRegime::for_date(d(2026, 3, 1)),
        LimitRegime::Gb3095_2026Transition
    );
    assert_eq!(
        LimitRegime::for_date(d(2030, 12, 31)),
        LimitRegime::Gb3095_2026Transition
    );
    assert_eq!(
        LimitRegime::for_date(d(2031, 1, 1)),
        LimitRegime::Gb3095_2026Final
    );
}
