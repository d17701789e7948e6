//! Realism sanity of the simulator's model: diurnal cycles, episodes, spatial correlation,
//! micro-station bias, water chemistry within plausible GB 3838 ranges. Pure (no I/O but the
//! sample registry), bounded loops.

#![cfg(feature = "demo")]

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use envmon::registry::Registry;
use envmon::sim::{SimConfig, Simulator};

fn sim(start: DateTime<Utc>) -> Simulator {
    let reg = Registry::load(std::path::Path::new("config/stations.toml")).unwrap();
    Simulator::new(
        reg.stations(),
        SimConfig {
            start,
            ..SimConfig::default()
        },
    )
    .unwrap()
}

fn value(s: &Simulator, st: &str, t: DateTime<Utc>, p: &str) -> f64 {
    s.values_at(st, t)
        .unwrap_or_else(|| panic!("no station {st}"))
        .iter()
        .find(|v| v.param == p)
        .unwrap_or_else(|| panic!("{st} has no {p}"))
        .value
}

fn nov1() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn hourly(days: i64) -> impl Iterator<Item = DateTime<Utc>> {
    (0..days * 24).map(|h| nov1() + Duration::hours(h))
}

fn local_hour(t: DateTime<Utc>) -> usize {
    t.with_timezone(&chrono_tz::Asia::Shanghai).hour() as usize
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn corr(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn diurnal_cycles_of_no2_o3_pm25() {
    let s = sim(nov1());
    let mut by_hour = vec![(Vec::new(), Vec::new(), Vec::new()); 24];
    let (mut no2s, mut o3s) = (Vec::new(), Vec::new());
    for t in hourly(28) {
        // The hourly value labelled t averages t..t+1h; its representative instant is t+30min.
        let h = local_hour(t);
        let (no2, o3, pm) = (
            value(&s, "GS-A01", t, "no2"),
            value(&s, "GS-A01", t, "o3"),
            value(&s, "GS-A01", t, "pm25"),
        );
        by_hour[h].0.push(no2);
        by_hour[h].1.push(o3);
        by_hour[h].2.push(pm);
        no2s.push(no2);
        o3s.push(o3);
    }
    let m = |k: usize, hours: &[usize]| {
        let v: Vec<f64> = hours
            .iter()
            .flat_map(|h| match k {
                0 => by_hour[*h].0.clone(),
                1 => by_hour[*h].1.clone(),
                _ => by_hour[*h].2.clone(),
            })
            .collect();
        mean(&v)
    };
    let rush = m(0, &[7, 8, 17, 18, 19]);
    let afternoon = m(0, &[12, 13, 14, 15]);
    assert!(
        rush > 1.25 * afternoon,
        "NO2 rush {rush:.1} vs afternoon {afternoon:.1}"
    );
    let o3_peak = (0..24)
        .max_by(|a, b| m(1, &[*a]).total_cmp(&m(1, &[*b])))
        .unwrap();
    assert!((12..=16).contains(&o3_peak), "O3 peaks at {o3_peak}:00");
    assert!(m(1, &[13, 14, 15]) > 2.0 * m(1, &[0, 1, 2, 3, 4, 5]));
    let pm_night_morning = m(2, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22, 23]);
    let pm_afternoon = m(2, &[13, 14, 15, 16]);
    assert!(
        pm_night_morning > 1.2 * pm_afternoon,
        "PM2.5 night/morning {pm_night_morning:.1} vs afternoon {pm_afternoon:.1}"
    );
    let r = corr(&no2s, &o3s);
    assert!(r < -0.3, "NO2/O3 correlation {r:.2} should be negative");
}

#[test]
fn november_magnitudes_and_episodes() {
    let s = sim(nov1());
    let pm: Vec<f64> = hourly(30).map(|t| value(&s, "GS-A01", t, "pm25")).collect();
    let mut sorted = pm.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let max = sorted[sorted.len() - 1];
    assert!((20.0..=80.0).contains(&median), "median PM2.5 {median}");
    assert!((95.0..=230.0).contains(&max), "max PM2.5 {max}");
    assert!(sorted[0] < 25.0, "min PM2.5 {}", sorted[0]);
    // A front clears an episode: some 12-hour drop of more than half, from above 80.
    let fronts = (12..pm.len())
        .filter(|&i| pm[i - 12] > 80.0 && pm[i] < 0.5 * pm[i - 12])
        .count();
    assert!(fronts > 0, "no clean-out front in 30 days");
    // Wind picks up behind the front: mean wind in the cleanest decile > in the dirtiest.
    let wind: Vec<f64> = hourly(30)
        .map(|t| value(&s, "GS-A01", t, "wind_speed"))
        .collect();
    let (lo, hi) = (sorted[pm.len() / 10], sorted[pm.len() * 9 / 10]);
    let clean: Vec<f64> = (0..pm.len())
        .filter(|&i| pm[i] <= lo)
        .map(|i| wind[i])
        .collect();
    let dirty: Vec<f64> = (0..pm.len())
        .filter(|&i| pm[i] >= hi)
        .map(|i| wind[i])
        .collect();
    assert!(mean(&clean) > mean(&dirty) + 1.0);
}

#[test]
fn neighbours_are_more_correlated_than_distant_stations() {
    let s = sim(nov1());
    let series =
        |st: &str| -> Vec<f64> { hourly(20).map(|t| value(&s, st, t, "pm25").ln()).collect() };
    let (a, near, far) = (series("GS-A01"), series("WZ-A02"), series("ZJG-A01"));
    // Remove the shared diurnal/regional signal: compare the station differences' spread.
    let near_r = corr(&a, &near);
    let far_r = corr(&a, &far);
    assert!(near_r > 0.85, "neighbour correlation {near_r:.3}");
    assert!(near_r > far_r, "near {near_r:.3} vs far {far_r:.3}");
    let spread = |x: &[f64], y: &[f64]| {
        let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
        let m = mean(&d);
        (d.iter().map(|v| (v - m).powi(2)).sum::<f64>() / d.len() as f64).sqrt()
    };
    assert!(spread(&a, &near) < spread(&a, &far));
}

#[test]
fn micro_stations_have_a_device_bias_against_their_nearest_national_station() {
    let s = sim(nov1());
    let micro: Vec<String> = s
        .stations()
        .filter(|st| st.kind == envmon::model::StationKind::AirMicro)
        .map(|st| st.id.clone())
        .collect();
    assert!(micro.len() >= 10);
    let mut ratios = Vec::new();
    for id in &micro {
        let dev = s.micro_device(id).unwrap().clone();
        let near = dev.nearest_official_id.clone().unwrap();
        let times: Vec<_> = hourly(7).collect();
        let m: Vec<f64> = times.iter().map(|t| value(&s, id, *t, "pm25")).collect();
        let n: Vec<f64> = times.iter().map(|t| value(&s, &near, *t, "pm25")).collect();
        let r = corr(&m, &n);
        assert!(r > 0.6, "{id} vs {near}: correlation {r:.2}");
        let ratio = mean(&m) / mean(&n);
        let gain = dev.pm_gain_at(times[times.len() / 2].timestamp() as f64);
        assert!(
            ratio > 0.7 * gain && ratio < 1.5 * gain,
            "{id}: ratio {ratio:.2} vs device gain {gain:.2}"
        );
        // Drift: the gain changes over a month unless a calibration fell in between.
        let later = dev.pm_gain_at(times[0].timestamp() as f64 + 20.0 * 86_400.0);
        assert_ne!(later, dev.pm_gain_at(times[0].timestamp() as f64));
        ratios.push(ratio);
    }
    let biased = ratios.iter().filter(|r| (*r - 1.0).abs() > 0.05).count();
    assert!(
        biased * 2 >= ratios.len(),
        "only {biased} of {} devices are biased",
        ratios.len()
    );
    let spread = ratios.iter().cloned().fold(f64::MIN, f64::max)
        - ratios.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.2, "device ratios too alike: {ratios:?}");
}

#[test]
fn water_chemistry_is_plausible_and_seasonal() {
    let nov = sim(nov1());
    let water: Vec<(String, bool, bool)> = nov
        .stations()
        .filter(|st| st.kind == envmon::model::StationKind::WaterAuto)
        .map(|st| {
            (
                st.id.clone(),
                st.body_type.is_some_and(|b| b.is_lake_like()),
                st.water_body.as_deref() == Some("太湖"),
            )
        })
        .collect();
    assert!(water.len() >= 10);
    let four_hourly = |start: DateTime<Utc>, days: i64| {
        (0..days * 6).map(move |k| start + Duration::hours(4 * k))
    };
    let mut do_by_hour = [Vec::new(), Vec::new()]; // lakes: 16:00 vs 04:00 local
    for (id, lake, _) in &water {
        for t in four_hourly(nov1(), 30) {
            let vals = nov.values_at(id, t).unwrap();
            let get = |p: &str| vals.iter().find(|v| v.param == p).unwrap().value;
            let (ph, d, codmn, nh3n, tp, tn) = (
                get("ph"),
                get("do"),
                get("codmn"),
                get("nh3n"),
                get("tp"),
                get("tn"),
            );
            assert!((6.5..=9.3).contains(&ph), "{id} {t}: pH {ph}");
            assert!((4.0..=16.0).contains(&d), "{id} {t}: DO {d}");
            assert!(codmn > 1.0 && codmn <= 10.0, "{id} {t}: CODMn {codmn}");
            assert!(nh3n > 0.0 && nh3n <= 1.5, "{id} {t}: NH3-N {nh3n}");
            let tp_max = if *lake { 0.2 } else { 0.4 };
            assert!(tp > 0.0 && tp <= tp_max, "{id} {t}: TP {tp}");
            assert!(tn > 0.2 && tn <= 4.0, "{id} {t}: TN {tn}");
            let wt = get("water_temp");
            assert!(
                (8.0..=20.0).contains(&wt),
                "{id} {t}: November water {wt} °C"
            );
            // Times are 4-hourly from 00:00 UTC = 08:00 local: 08, 12, 16, 20, 00, 04.
            if *lake {
                match local_hour(t + Duration::hours(2)) {
                    18 => do_by_hour[0].push(d),
                    6 => do_by_hour[1].push(d),
                    _ => {}
                }
            }
        }
    }
    assert!(
        mean(&do_by_hour[0]) > mean(&do_by_hour[1]),
        "lake DO afternoon {:.2} vs night {:.2}",
        mean(&do_by_hour[0]),
        mean(&do_by_hour[1])
    );
    // Summer algae in Taihu.
    let jul = sim(Utc.with_ymd_and_hms(2026, 7, 15, 0, 0, 0).unwrap());
    let chla = |s: &Simulator, start: DateTime<Utc>| -> f64 {
        let v: Vec<f64> = water
            .iter()
            .filter(|w| w.2)
            .flat_map(|w| four_hourly(start, 10).map(move |t| (w.0.clone(), t)))
            .map(|(id, t)| value(s, &id, t, "chla"))
            .collect();
        mean(&v)
    };
    let summer = chla(&jul, Utc.with_ymd_and_hms(2026, 7, 15, 0, 0, 0).unwrap());
    let autumn = chla(&nov, nov1());
    assert!(
        summer > 2.5 * autumn,
        "Taihu chla summer {summer:.1} vs November {autumn:.1}"
    );
    assert!(summer > 20.0 && autumn < 25.0);
}
