//! HJ 212 codec: real frames with known CRCs, rejection rules, encoder round trip.

use chrono::{TimeZone, Utc};
use envmon::decode::hj212::{self, encode, Hj212Options};
use envmon::decode::DecodeContext;
use envmon::model::{Flag, Interval, Reading};
use envmon::registry::Registry;
use proptest::prelude::*;

fn ctx<'a>(opts: &'a Hj212Options, reg: Option<&'a Registry>) -> DecodeContext<'a> {
    DecodeContext {
        registry: reg,
        now: Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        vendor: None,
        hj212: opts,
    }
}

fn dec(frame: &str) -> Result<Vec<Reading>, hj212::Hj212Error> {
    let o = Hj212Options::default();
    hj212::decode("t", frame.as_bytes(), &ctx(&o, None))
}

fn find<'a>(rs: &'a [Reading], p: &str) -> &'a Reading {
    rs.iter()
        .find(|r| r.param == p)
        .unwrap_or_else(|| panic!("{p} missing"))
}

// HJ 212-2017 appendix example (CN=1062 set real-time interval), CRC 1C80. Quoted in many repos,
// e.g. xiaoyao9184/hj-t212-parser hj-t212-parser/src/test/.../T212MapperTest.java (comment) and
// standards.md §6.2.
const OFFICIAL_1062: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

// Hourly air frame, CRC C181: commented sample in xiaoyao9184/hj-t212-parser
// T212MapperTest.java (fork com.hj212 …/T212MapperTest.java) and a C# TcpClient sample.
const AIR_HOUR_C181: &str = "##0285QN=20190925181031464;ST=22;CN=2061;PW=BF470F88957588DE902D1A52;MN=Z13401000010301;Flag=5;CP=&&DataTime=20190924220000;a34006-Avg=2.69700,a34006-Flag=N;a34007-Avg=7.96600,a34007-Flag=N;a34048-Avg=3.30600,a34048-Flag=N;a34047-Avg=7.35700,a34047-Flag=N;a34049-Avg=10.66300,a34049-Flag=N&&C181\r\n";

// Construction-dust frame ST=39, no QN/Flag, no CRLF, CRC D801: NationalStandard212 Java parser
// main() (standards.md §6.2 "dust frame").
const DUST_D801: &str = "##0249QN=20180507000558;ST=39;CN=2011;PW=123456;MN=010000A00000000000A00654;CP=&&DataTime=20180507000558;a01001-Rtd=26.0,a01001-Flag=N;a01002-Rtd=30.4,a01002-Flag=N;a34001-Rtd=0.0,a34001-Flag=N;a34002-Rtd=24.0,a34002-Flag=N;a34004-Rtd=23.0,a34004-Flag=N&&D801";

// Surface-water hourly frame with 15 factors, Flag=9, CRC 4C80: netty client sample
// (com.xmmems, Client.java sendMessage) — standards.md §6.2.
pub const WATER_HOUR_4C80: &str = "##0561QN=20201030000000437;ST=21;CN=2061;PW=123456;MN=NM100000_0005;Flag=9;CP=&&DataTime=20201129210001;w01010-Avg=23.1,w01010-Flag=N;w01001-Avg=7.64,w01001-Flag=N;w01009-Avg=6.60,w01009-Flag=N;w01014-Avg=300,w01014-Flag=N;w01003-Avg=17,w01003-Flag=N;w01019-Avg=1.4,w01019-Flag=N;w21011-Avg=0.042,w21011-Flag=N;w21001-Avg=3.04,w21001-Flag=N;w21003-Avg=0.16,w21003-Flag=N;w20120-Avg=0.00011,w20120-Flag=N;w20119-Avg=0.00000,w20119-Flag=N;w23002-Avg=0.0005,w23002-Flag=N;w21016-Avg=0.002,w21016-Flag=N;w20115-Avg=0.00001,w20115-Flag=N;w20122-Avg=0.00005,w20122-Flag=N&&4C80\r\n";

// 2026 water frames, CRC 1540 (real-time) and 5280 (hourly): python unit tests found by code
// search (tests of app.services.hj212 parse_message) — standards.md §6.2.
const WATER_RT_1540: &str = "##0247QN=20260706103512345;ST=21;CN=2011;PW=123456;MN=A110000_0001;Flag=9;CP=&&DataTime=20260706103000;w01010-Rtd=28.6,w01010-Flag=N;w01014-Rtd=7.8,w01014-Flag=N;w01001-Rtd=6.5,w01001-Flag=N;w01017-Rtd=15.2,w01017-Flag=N;w01019-Rtd=1.023,w01019-Flag=N&&1540\r\n";
const WATER_HOUR_5280: &str = "##0247QN=20260706103512345;ST=21;CN=2061;PW=123456;MN=A110000_0001;Flag=9;CP=&&DataTime=20260706100000;w01010-Avg=28.4,w01010-Flag=N;w01014-Avg=7.7,w01014-Flag=N;w01001-Avg=6.6,w01001-Flag=N;w01017-Avg=15.0,w01017-Flag=N;w01019-Avg=1.022,w01019-Flag=N&&5280\r\n";

// Real-time air frame with the odd `LA-td` field, lower-case CRC c0c1: xiaoyao9184/hj-t212-parser
// T212MapperTest.readStringData/answer (fork) — standards.md §6.2.
const AIR_RT_C0C1: &str = "##0453QN=20160801085000001;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=7;CP=&&DataTime=20160801084000;a21005-Rtd=1.1,a21005-Flag=N;a21004-Rtd=112,a21004-Flag=N;a21026-Rtd=58,a21026-Flag=N;LA-td=50.1,LA-Flag=N;a34004-Rtd=207,a34004-Flag=N;a34002-Rtd=295,a34002-Flag=N;a01001-Rtd=12.6,a01001-Flag=N;a01002-Rtd=32,a01002-Flag=N;a01006-Rtd=101.02,a01006-Flag=N;a01007-Rtd=2.1,a01007-Flag=N;a01008-Rtd=120,a01008-Flag=N;a34001-Rtd=217,a34001-Flag=N;&&c0c1\r\n";

// Correct CRC 4f40, wrong length field (481, data has 482 bytes): NationalStandard212 main()
// comment — standards.md §6.2.
const BAD_LEN_4F40: &str = "##0481QN=20160801085000001;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=7;CP=&&DataTime=20160801084000;a21005-Rtd=1.1,a21005-Flag=N;a21004-Rtd=112,a21004-Flag=N;a21026-Rtd=58,a21026-Flag=N;a21030-Rtd=64,a21030-Flag=N;LA-Rtd=50.1,LA-Flag=N;a34004-Rtd=207,a34004-Flag=N;a34002-Rtd=295,a34002-Flag=N;a01001-Rtd=12.6,a01001-Flag=N;a01002-Rtd=32,a01002-Flag=N;a01006-Rtd=101.02,a01006-Flag=N;a01007-Rtd=2.1,a01007-Flag=N;a01008-Rtd=120,a01008-Flag=N;a34001-Rtd=217,a34001-Flag=N;&&4f40";

// HJ/T 212-2005 frames (no QN, no Flag, 17-digit DataTime, legacy codes B01/011/060):
// xiaoyao9184/hj-t212-parser hj-t212-parser/src/test/java/com/xy/format/hbt212/core/T212MapperTest.java
// and hj-t212-parser/src/test/resources/AllData/2016-08-24 05.h212.
const LEGACY_4980: &str = "##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&4980\r\n";
const LEGACY_0140: &str = "##0121ST=32;CN=2011;PW=123456;MN=ZG130102201215;CP=&&DataTime=20160824045130;B01-Rtd=0.00,B01-Flag=D;011-Rtd=32.00,011-Flag=N&&0140\r\n";
const LEGACY_2051_7A80: &str = "##0593ST=31;CN=2051;PW=123456;MN=LD130131000211;CP=&&DataTime=20000202050000000;B02-Cou=198231.17,B02-Min=314.81,B02-Avg=330.38,B02-Max=344.08;S01-Min=4.75,S01-Avg=5.06,S01-Max=5.38;S02-Min=7.77,S02-Avg=8.15,S02-Max=8.49;S03-Min=135.24,S03-Avg=136.05,S03-Max=137.68;S05-Min=40.00,S05-Avg=40.00,S05-Max=40.00;S07-Min=40.50,S07-Avg=40.50,S07-Max=40.50;S08-Min=1046.48,S08-Avg=1058.44,S08-Max=1081.96;01-Cou=1.15,01-Min=5.46,01-Avg=5.82,01-Max=6.35;02-Cou=347.94,02-Min=1710.83,02-Avg=1755.24,02-Max=1799.22;01-ZsMin=5.19,01-ZsAvg=5.47,01-ZsMax=6.09;02-ZsMin=1588.25,02-ZsAvg=1652.41,02-ZsMax=1707.02&&7A80\r\n";

// The data response produced by xiaoyao9184/hj-t212-parser T212MapperTest.answer (comment).
const REPLY_C241: &str = "##0087QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&C241\r\n";

#[test]
fn official_example_checks_and_has_no_readings() {
    assert_eq!(dec(OFFICIAL_1062).unwrap(), vec![]);
    // lower-case CRC accepted
    assert_eq!(dec(&OFFICIAL_1062.replace("1C80", "1c80")).unwrap(), vec![]);
}

#[test]
fn air_hourly_c181() {
    let rs = dec(AIR_HOUR_C181).unwrap();
    assert_eq!(rs.len(), 5);
    let r = find(&rs, "a34006");
    assert_eq!(r.station, "Z13401000010301");
    assert_eq!(r.value, 2.697);
    assert_eq!(r.interval, Interval::Hour);
    assert_eq!(r.flag, Flag::N);
    // 2019-09-24 22:00 Asia/Shanghai = 14:00 UTC
    assert_eq!(r.time, Utc.with_ymd_and_hms(2019, 9, 24, 14, 0, 0).unwrap());
    assert_eq!(r.unit, None, "unknown code has no implied unit");
}

#[test]
fn dust_d801_without_crlf() {
    let rs = dec(DUST_D801).unwrap();
    assert_eq!(rs.len(), 5);
    assert_eq!(find(&rs, "pm25").value, 23.0);
    assert_eq!(find(&rs, "pm25").unit.as_deref(), Some("ug/m3"));
    assert_eq!(find(&rs, "temp").value, 26.0);
    assert_eq!(find(&rs, "temp").unit.as_deref(), Some("degC"));
    assert_eq!(find(&rs, "tsp").value, 0.0);
    assert_eq!(rs[0].interval, Interval::Rt);
}

#[test]
fn water_hourly_4c80_fifteen_factors() {
    let rs = dec(WATER_HOUR_4C80).unwrap();
    assert_eq!(rs.len(), 15);
    assert_eq!(find(&rs, "water_temp").value, 23.1);
    assert_eq!(find(&rs, "ph").value, 7.64);
    assert_eq!(find(&rs, "ph").unit, None);
    assert_eq!(find(&rs, "do").value, 6.6);
    assert_eq!(find(&rs, "conductivity").value, 300.0);
    assert_eq!(find(&rs, "conductivity").unit.as_deref(), Some("uS/cm"));
    assert_eq!(find(&rs, "turbidity").value, 17.0);
    assert_eq!(find(&rs, "codmn").value, 1.4);
    assert_eq!(find(&rs, "tp").value, 0.042);
    assert_eq!(find(&rs, "tp").unit.as_deref(), Some("mg/L"));
    assert_eq!(find(&rs, "tn").value, 3.04);
    assert_eq!(find(&rs, "nh3n").value, 0.16);
    // unknown codes kept under their own lower-case code
    assert_eq!(find(&rs, "w20120").value, 0.00011);
    assert_eq!(find(&rs, "w20122").value, 0.00005);
    // 2020-11-29 21:00:01 +08 → 13:00:01 UTC
    assert_eq!(
        rs[0].time,
        Utc.with_ymd_and_hms(2020, 11, 29, 13, 0, 1).unwrap()
    );
}

#[test]
fn water_2026_frames() {
    let rt = dec(WATER_RT_1540).unwrap();
    assert_eq!(rt.len(), 5);
    assert_eq!(find(&rt, "codmn").value, 1.023);
    assert_eq!(find(&rt, "bod5").value, 15.2);
    assert_eq!(rt[0].interval, Interval::Rt);
    let h = dec(WATER_HOUR_5280).unwrap();
    assert_eq!(find(&h, "codmn").value, 1.022);
    assert_eq!(h[0].interval, Interval::Hour);
    assert_eq!(
        h[0].time,
        Utc.with_ymd_and_hms(2026, 7, 6, 2, 0, 0).unwrap()
    );
}

#[test]
fn air_rt_c0c1_lowercase_crc() {
    let rs = dec(AIR_RT_C0C1).unwrap();
    // 12 pollutant groups; LA has only `-td` (not a value suffix) → no reading
    assert_eq!(rs.len(), 11);
    assert!(rs.iter().all(|r| r.param != "la"));
    assert_eq!(find(&rs, "co").value, 1.1);
    assert_eq!(find(&rs, "co").unit.as_deref(), Some("mg/m3"));
    assert_eq!(find(&rs, "no2").value, 112.0);
    assert_eq!(find(&rs, "so2").value, 58.0);
    assert_eq!(find(&rs, "pm25").value, 207.0);
    assert_eq!(find(&rs, "pm10").value, 295.0);
    assert_eq!(find(&rs, "pressure").value, 101.02);
    assert_eq!(find(&rs, "wind_dir").value, 120.0);
}

#[test]
fn wrong_length_rejected_by_default_accepted_when_configured() {
    let e = dec(BAD_LEN_4F40).unwrap_err();
    assert_eq!(e.reason(), "bad length");
    assert!(e.to_string().contains("481"), "{e}");
    let before = hj212::bad_length_accepted_total();
    let o = Hj212Options {
        accept_bad_length: true,
        ..Default::default()
    };
    let rs = hj212::decode("t", BAD_LEN_4F40.as_bytes(), &ctx(&o, None)).unwrap();
    assert_eq!(find(&rs, "a21030").value, 64.0);
    assert_eq!(find(&rs, "la").value, 50.1);
    assert!(hj212::bad_length_accepted_total() > before);
}

#[test]
fn legacy_2005_frames() {
    let rs = dec(LEGACY_4980).unwrap();
    assert_eq!(rs.len(), 3);
    assert_eq!(find(&rs, "cod").value, 231.0);
    assert_eq!(find(&rs, "nh3n").value, 1.803);
    assert_eq!(find(&rs, "b01").value, 36.91);
    // 17-digit DataTime 2016-08-24 00:38:17.000 +08
    assert_eq!(
        rs[0].time,
        Utc.with_ymd_and_hms(2016, 8, 23, 16, 38, 17).unwrap()
    );
    let rs = dec(LEGACY_0140).unwrap();
    assert_eq!(find(&rs, "b01").flag, Flag::D);
    assert_eq!(find(&rs, "cod").flag, Flag::N);
    let rs = dec(LEGACY_2051_7A80).unwrap();
    let b02 = find(&rs, "b02");
    assert_eq!(b02.interval, Interval::Min);
    assert_eq!(b02.value, 330.38);
    assert_eq!(b02.min, Some(314.81));
    assert_eq!(b02.max, Some(344.08));
    assert_eq!(b02.cou, Some(198231.17));
    assert_eq!(find(&rs, "01").cou, Some(1.15));
}

#[test]
fn legacy_numeric_and_p_flags() {
    let data = "ST=22;CN=2011;PW=1;MN=M1;CP=&&DataTime=20200101000000;a34004-Rtd=1,a34004-Flag=0;a34002-Rtd=2,a34002-Flag=1;a21026-Rtd=3,a21026-Flag=2;a21004-Rtd=4,a21004-Flag=3;a21005-Rtd=5,a21005-Flag=P&&";
    let f = String::from_utf8(encode::frame(data).unwrap()).unwrap();
    let rs = dec(&f).unwrap();
    assert_eq!(find(&rs, "pm25").flag, Flag::C);
    assert_eq!(find(&rs, "pm10").flag, Flag::N);
    assert_eq!(find(&rs, "so2").flag, Flag::D);
    assert_eq!(find(&rs, "no2").flag, Flag::N);
    assert_eq!(find(&rs, "co").flag, Flag::P);
}

#[test]
fn crc_mismatch_rejected() {
    let bad = WATER_RT_1540.replace("&&1540", "&&1541");
    let e = dec(&bad).unwrap_err();
    assert_eq!(e.reason(), "bad crc");
    assert_eq!(e.station(), Some("A110000_0001"));
    // a changed value with the old CRC
    let bad = WATER_RT_1540.replace("28.6", "28.7");
    assert_eq!(dec(&bad).unwrap_err().reason(), "bad crc");
    // CRC-16/MODBUS of the same data is not accepted
    assert_eq!(dec("##0004CP=&&FFFF").unwrap_err().reason(), "bad crc");
}

#[test]
fn not_frames() {
    for s in [
        "",
        "##",
        "hello",
        "##01x1QN=1&&1C80\r\n",
        "##0101QN&&ZZZZ\r\n",
    ] {
        assert_eq!(dec(s).unwrap_err().reason(), "bad frame", "{s:?}");
    }
}

#[test]
fn encoder_reproduces_known_reply_byte_for_byte() {
    let r = encode::data_response(
        Some("20160801085000001"),
        "123456",
        "010000A8900016F000169DC0",
        7,
    );
    assert_eq!(String::from_utf8(r).unwrap(), REPLY_C241);
    // and the decoder accepts it (response CN → no readings)
    assert_eq!(dec(REPLY_C241).unwrap(), vec![]);
}

#[test]
fn encoder_frame_of_known_data_has_known_crc() {
    let data = &OFFICIAL_1062[6..OFFICIAL_1062.len() - 6];
    assert_eq!(
        String::from_utf8(encode::frame(data).unwrap()).unwrap(),
        OFFICIAL_1062
    );
    let data = &WATER_HOUR_4C80[6..WATER_HOUR_4C80.len() - 6];
    assert_eq!(
        String::from_utf8(encode::frame(data).unwrap()).unwrap(),
        WATER_HOUR_4C80
    );
}

const REG: &str = r#"
[[station]]
id = "TP-01"
name = "太浦河"
name_en = "Taipu"
kind = "water_auto"
district = "Qingpu"
lat = 31.0
lon = 120.9
mn = "A110000_0001"
pw = "123456"
water_body = "太浦河"
body_type = "river"
target_class = "III"

[[station]]
id = "UTC-01"
name = "x"
name_en = "x"
kind = "air_micro"
district = "d"
lat = 1.0
lon = 1.0
timezone = "UTC"
mn = "MNUTC"
"#;

#[test]
fn registry_station_password_and_unknown_mn() {
    let reg = Registry::parse(REG, "t").unwrap();
    let o = Hj212Options::default();
    let c = ctx(&o, Some(&reg));
    let rs = hj212::decode("t", WATER_RT_1540.as_bytes(), &c).unwrap();
    assert!(rs.iter().all(|r| r.station == "TP-01"));
    // wrong password → auth failure, password not in the message
    let data = WATER_RT_1540[6..WATER_RT_1540.len() - 6].replace("PW=123456", "PW=654321");
    let f = encode::frame(&data).unwrap();
    let e = hj212::decode("t", &f, &c).unwrap_err();
    assert_eq!(e.reason(), "auth failure");
    assert_eq!(e.station(), Some("TP-01"));
    assert!(!e.to_string().contains("123456") && !e.to_string().contains("654321"));
    // unknown MN
    let e = hj212::decode("t", AIR_HOUR_C181.as_bytes(), &c).unwrap_err();
    assert_eq!(e.reason(), "unknown station");
    assert_eq!(e.station(), Some("Z13401000010301"));
    // station time zone honoured (UTC station: DataTime is UTC)
    let data = "QN=20260706103512345;ST=22;CN=2061;PW=x;MN=MNUTC;Flag=4;CP=&&DataTime=20260706100000;a34004-Avg=12&&";
    let rs = hj212::decode("t", &encode::frame(data).unwrap(), &c).unwrap();
    assert_eq!(
        rs[0].time,
        Utc.with_ymd_and_hms(2026, 7, 6, 10, 0, 0).unwrap()
    );
}

#[test]
fn config_aliases_and_units() {
    let mut o = Hj212Options::default();
    o.codes.insert("A21030".into(), "o3".into());
    o.codes.insert("w01016".into(), "chla".into());
    o.units.insert("w01016".into(), "ug/L".into());
    o.units.insert("pm25".into(), "mg/m3".into());
    let data = "QN=1;ST=22;CN=2011;PW=x;MN=M;Flag=4;CP=&&DataTime=20260706100000;a21030-Rtd=64;W01016-Rtd=3.5;a34004-Rtd=0.035&&";
    let rs = hj212::decode("t", &encode::frame(data).unwrap(), &ctx(&o, None)).unwrap();
    assert_eq!(find(&rs, "o3").value, 64.0);
    assert_eq!(find(&rs, "o3").unit.as_deref(), Some("ug/m3"));
    assert_eq!(find(&rs, "chla").unit.as_deref(), Some("ug/L"));
    assert_eq!(find(&rs, "pm25").unit.as_deref(), Some("mg/m3"));
}

#[test]
fn bad_values_flags_times() {
    let mk = |cp: &str| {
        let d = format!("QN=1;ST=22;CN=2011;PW=x;MN=M;Flag=4;CP=&&{cp}&&");
        String::from_utf8(encode::frame(&d).unwrap()).unwrap()
    };
    assert_eq!(
        dec(&mk("DataTime=20260706100000;a34004-Rtd=NaN"))
            .unwrap_err()
            .reason(),
        "bad value"
    );
    assert_eq!(
        dec(&mk("DataTime=20260706100000;a34004-Rtd=1,a34004-Flag=X"))
            .unwrap_err()
            .reason(),
        "bad flag"
    );
    assert_eq!(
        dec(&mk("DataTime=20261306100000;a34004-Rtd=1"))
            .unwrap_err()
            .reason(),
        "bad time"
    );
    assert_eq!(
        dec(&mk("a34004-Rtd=1")).unwrap_err().reason(),
        "missing field"
    );
    assert_eq!(
        dec(&mk("DataTime=20270706100000;a34004-Rtd=1"))
            .unwrap_err()
            .reason(),
        "future time"
    );
    // empty value: no reading, not an error
    assert_eq!(
        dec(&mk("DataTime=20260706100000;a34004-Rtd=,a34004-Flag=D")).unwrap(),
        vec![]
    );
}

const PARAMS: &[&str] = &[
    "pm25",
    "pm10",
    "so2",
    "no2",
    "co",
    "o3",
    "tsp",
    "temp",
    "rh",
    "pressure",
    "wind_speed",
    "wind_dir",
    "ph",
    "do",
    "water_temp",
    "conductivity",
    "turbidity",
    "codmn",
    "cod",
    "bod5",
    "nh3n",
    "tp",
    "tn",
    "chla",
    "algae_density",
    "x99001",
];
const FLAGS: &[Flag] = &[
    Flag::N,
    Flag::F,
    Flag::M,
    Flag::S,
    Flag::D,
    Flag::C,
    Flag::T,
    Flag::B,
    Flag::P,
];

fn arb_readings() -> impl Strategy<Value = Vec<Reading>> {
    let one = (
        0..PARAMS.len(),
        -1.0e6f64..1.0e6,
        0..FLAGS.len(),
        proptest::option::of(-1.0e3f64..1.0e3),
        proptest::option::of(-1.0e3f64..1.0e3),
        proptest::option::of(0.0f64..1.0e7),
    );
    (
        proptest::collection::vec(one, 1..20),
        0i64..1_700_000_000,
        0..4usize,
    )
        .prop_map(|(items, secs, iv)| {
            let time = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            let interval = [Interval::Rt, Interval::Min, Interval::Hour, Interval::Day][iv];
            let mut seen = std::collections::HashSet::new();
            items
                .into_iter()
                .filter(|(p, ..)| seen.insert(*p))
                .map(|(p, value, f, min, max, cou)| {
                    let param = PARAMS[p].to_string();
                    let unit = hj212::codes::unit_for_param(&param)
                        .filter(|u| !u.is_empty())
                        .map(str::to_string);
                    Reading {
                        station: "MN-PROP-1".into(),
                        time,
                        interval,
                        param,
                        value,
                        unit,
                        flag: FLAGS[f],
                        min,
                        max,
                        cou,
                    }
                })
                .collect()
        })
}

proptest! {
    #[test]
    fn encode_decode_identity(rs in arb_readings(), ack in any::<bool>()) {
        let f = encode::encode_readings("20260101000000000", "22", "pw", "MN-PROP-1", ack,
            hj212::DEFAULT_TZ, &rs).unwrap();
        let back = dec(std::str::from_utf8(&f).unwrap()).unwrap();
        prop_assert_eq!(back, rs);
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let o = Hj212Options::default();
        let _ = hj212::decode("t", &bytes, &ctx(&o, None));
    }

    #[test]
    fn decode_never_panics_on_mutated_frames(idx in 0usize..600, b in any::<u8>(), cut in 0usize..600) {
        let mut f = WATER_HOUR_4C80.as_bytes().to_vec();
        let i = idx % f.len();
        f[i] = b;
        f.truncate(cut.max(1));
        let o = Hj212Options { accept_bad_length: true, ..Default::default() };
        let _ = hj212::decode("t", &f, &ctx(&o, None));
        // and the segment parser on a valid CRC re-framing of the mutated data
        if f.len() > 12 {
            if let Ok(s) = std::str::from_utf8(&f[6..f.len() - 6]) {
                let f2 = encode::frame(s).unwrap();
                let _ = hj212::decode("t", &f2, &ctx(&o, None));
            }
        }
    }
}

proptest! {
    #[test]
    fn fast_crc_equals_reference(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        prop_assert_eq!(hj212::crc::crc16(&bytes), hj212::crc::crc16_reference(&bytes));
    }
}

#[test]
fn options_from_toml_with_defaults_and_unknown_keys_rejected() {
    let o: Hj212Options = toml::from_str(
        r#"
listen = "0.0.0.0:9010"
accept_bad_length = true
max_connections = 50
time_calibration = true
[codes]
a21030 = "o3"
[units]
w01016 = "ug/L"
"#,
    )
    .unwrap();
    assert_eq!(o.listen.as_deref(), Some("0.0.0.0:9010"));
    assert!(o.accept_bad_length && o.time_calibration);
    assert_eq!(o.max_connections, 50);
    assert_eq!(o.max_frame_len, 4096, "default kept");
    assert_eq!(o.idle_timeout_s, 600);
    assert_eq!(o.codes["a21030"], "o3");
    let d: Hj212Options = toml::from_str("").unwrap();
    assert_eq!(d.listen, None);
    assert!(!d.accept_bad_length);
    assert!(toml::from_str::<Hj212Options>("lisen = \"x\"").is_err());
}
