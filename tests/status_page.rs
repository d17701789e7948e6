//! The status page (`GET /`) in a real headless browser (Debian `chromium`) against a running
//! `envmon demo`: it shows the city AQI the API gives, one map marker per registry station, the
//! station that never reported, the water sections, and no JavaScript error; it references no
//! external URL. A screenshot is taken (copied to `$ENVMON_STATUS_SCREENSHOT` when set, which is
//! how docs/status-page.png is made).

#![cfg_attr(not(feature = "demo"), allow(dead_code, unused_imports))]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

fn get_json(port: u16, path: &str) -> Option<(u16, Value)> {
    let (code, body) = get(port, path)?;
    Some((code, serde_json::from_str(&body).ok()?))
}

/// Kills the child on drop (also when an assertion fails).
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Run headless chromium on `url` with `extra` args (bounded to 60 s); (stdout, stderr).
fn chromium(url: &str, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let (out, err) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    // As root, headless chromium needs --no-sandbox; without the background-networking flags
    // it tries to reach Google's services, which are refused here.
    let child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run /usr/bin/chromium (Debian package chromium; .ci/run installs it)");
    let mut child = Killed(child);
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            assert!(st.success(), "chromium failed: {st}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "chromium did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default(),
    )
}

/// What the page shows for the city: the newest published hour, as the page queries it.
fn api_city_aqi(port: u16) -> Option<(u64, String)> {
    let (code, v) = get_json(port, "/api/v1/air/aqi?scope=city&id=suzhou&period=hour")?;
    if code != 200 {
        return None;
    }
    let e = v
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["aqi"].as_u64().is_some())?;
    Some((
        e["aqi"].as_u64()?,
        e["category"]["zh"].as_str()?.to_string(),
    ))
}

/// The value of `attr="…"` on the element whose opening tag contains `anchor`.
fn attr(dom: &str, anchor: &str, attr: &str) -> Option<String> {
    let i = dom.find(anchor)?;
    let tag_start = dom[..i].rfind('<')?;
    let tag_end = i + dom[i..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let j = tag.find(&key)? + key.len();
    Some(tag[j..j + tag[j..].find('"')?].to_string())
}

/// Opening tags of rendered elements `<{tag} class="{class}" data-id="X…` (not the script's
/// own string literals, where `data-id="` is followed by a quote of the JS string).
fn rendered(dom: &str, tag: &str, class: &str) -> Vec<String> {
    let pat = format!("<{tag} class=\"{class}\" data-id=\"");
    dom.match_indices(&pat)
        .filter_map(|(i, _)| {
            let rest = &dom[i + pat.len()..];
            let id = &rest[..rest.find('"')?];
            (!id.is_empty() && !id.starts_with('\'')).then(|| id.to_string())
        })
        .collect()
}

fn registry_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.trim() == "[[station]]")
        .count()
}

#[cfg(feature = "demo")]
#[test]
fn status_page_renders_the_city_aqi_every_station_and_no_errors_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} missing: apt-get install chromium (.ci/run does)"
    );
    // The error detector itself works: an uncaught error is seen in chromium's log.
    let probe = tempfile::tempdir().unwrap();
    let probe_page = probe.path().join("probe.html");
    std::fs::write(
        &probe_page,
        "<html><body><script>console.error('probe-error'); nope();</script></body></html>",
    )
    .unwrap();
    let (_, err) = chromium(
        &format!("file://{}", probe_page.display()),
        &["--dump-dom", "--virtual-time-budget=1000"],
    );
    assert!(
        err.contains("Uncaught") && err.contains("probe-error"),
        "chromium logs console errors: {err}"
    );

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let expected_stations = registry_count(&root.join("config/stations.toml"));
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    // A pollution episode at GS-A01 that is on for the whole back-fill (5 h) and the run: the
    // episode is on in the first half of every period (epoch-aligned), so take a period whose
    // first half holds the last 6 h and the next hour. Its hourly PM2.5 (≥ 400 µg/m³) fires
    // the demo's hourly rule whatever the simulated weather of the day (a clean day alone
    // fires nothing).
    let now = chrono::Utc::now().timestamp();
    let period = (48..400)
        .map(|h| h * 3600)
        .find(|p| {
            let r = now.rem_euclid(*p);
            r >= 6 * 3600 && 2 * r + 2 * 3600 < *p
        })
        .expect("a period from 48 h to 400 h fits");
    let faults = format!("offline:WJ-A01,episode:GS-A01={period}s");
    let demo = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .current_dir(&root)
        .args(["demo", "--duration", "120s", "--faults", &faults, "--http"])
        .arg(format!("127.0.0.1:{http}"))
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("demo.out")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("demo.err")).unwrap())
        .spawn()
        .unwrap();
    let _demo = Killed(demo);
    let demo_log = || std::fs::read_to_string(dir.path().join("demo.out")).unwrap_or_default();

    // Ready: the back-fill is stored (every station but the offline one online) and the city
    // has an hourly AQI.
    let t0 = Instant::now();
    loop {
        let online = get_json(http, "/api/v1/stations")
            .and_then(|(_, v)| v["summary"]["total"]["online"].as_u64())
            .unwrap_or(0);
        if online as usize == expected_stations - 1 && api_city_aqi(http).is_some() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "demo not ready (online {online}):\n{}",
            demo_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The banner names the status page first.
    let banner = demo_log();
    let first_url = banner
        .lines()
        .find(|l| l.contains("http://"))
        .unwrap_or_default();
    assert!(
        first_url.contains(&format!("http://127.0.0.1:{http}/"))
            && first_url.contains("status page"),
        "{banner}"
    );

    // The page itself: served as HTML, self-contained (no URL to anywhere).
    let (code, html) = get(http, "/").unwrap();
    assert_eq!(code, 200);
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "the status page references an external URL"
    );
    assert!(
        !html.contains("<link") && !html.contains(" src="),
        "no external resources"
    );

    let before = api_city_aqi(http).unwrap();
    let url = format!("http://127.0.0.1:{http}/");
    let (dom, err) = chromium(&url, &["--dump-dom", "--virtual-time-budget=8000"]);
    let after = api_city_aqi(http).unwrap();

    assert!(
        attr(&dom, "<body", "data-loaded")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 1),
        "the page loaded its data: {}",
        &dom[..dom.len().min(3000)]
    );
    // City AQI and category as the API says (the hour may have turned meanwhile).
    let aqi: u64 = attr(&dom, "id=\"city-aqi\"", "data-aqi")
        .expect("city AQI shown")
        .parse()
        .unwrap();
    let cat = attr(&dom, "id=\"city-category\"", "data-zh").expect("category shown");
    assert!(
        (aqi, cat.clone()) == before || (aqi, cat.clone()) == after,
        "page {aqi} {cat}, API {before:?} / {after:?}"
    );
    assert!(
        dom.contains(&format!(">{aqi}</div>")),
        "the number is visible"
    );
    // One marker per registry station, WJ-A01 (offline from the start) marked `never`.
    let markers = rendered(&dom, "g", "marker");
    assert_eq!(markers.len(), expected_stations, "{markers:?}");
    let mut unique = markers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected_stations);
    assert_eq!(
        attr(&dom, "data-id=\"WJ-A01\" data-kind", "data-status").as_deref(),
        Some("never")
    );
    assert_eq!(
        rendered(&dom, "tr", "not-online"),
        ["WJ-A01"],
        "listed as not online"
    );
    assert!(
        dom.contains(&format!(
            "<b id=\"stations-expected\">{expected_stations}</b>"
        )),
        "stations expected"
    );
    // Water sections: one row per section of the API.
    let (_, w) = get_json(http, "/api/v1/water/sections").unwrap();
    let sections = rendered(&dom, "tr", "section");
    assert_eq!(sections.len() as u64, w["count"].as_u64().unwrap());
    // Alerts: "not enabled" exactly when the route does not exist.
    let (alerts_code, alerts_body) = get(http, "/api/v1/alerts").unwrap();
    // (The page's own script holds the marker once; a rendered notice adds a second.)
    assert_eq!(
        dom.matches("id=\"alerts-off\"").count() > 1,
        alerts_code == 404,
        "alerts route answered {alerts_code}"
    );
    if alerts_code == 200 {
        // The demo's rules fire on the back-fill: the panel shows the API's alerts (their
        // messages appear nowhere else on the page).
        let v: serde_json::Value = serde_json::from_str(&alerts_body).unwrap();
        let msgs: Vec<&str> = v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["message_zh"].as_str())
            .collect();
        assert!(!msgs.is_empty(), "the demo's back-fill fires alerts: {v}");
        assert!(
            msgs.iter().any(|m| dom.contains(m)),
            "no alert of the API rendered; API: {msgs:?}"
        );
    }
    // Health from /api/v1/health.
    assert!(dom.contains("运行正常 / ready"), "ready pill");
    // No error: none recorded by the page (window.onerror, unhandled rejections,
    // console.error), none in chromium's console log.
    assert!(
        dom.contains("<pre id=\"page-errors\"></pre>"),
        "page errors: {}",
        dom.split("id=\"page-errors\"").nth(1).unwrap_or("")
    );
    for l in err.lines() {
        assert!(!l.contains("Uncaught"), "{l}");
        assert!(
            !(l.contains("CONSOLE") && l.to_lowercase().contains("error")),
            "{l}"
        );
    }

    // Screenshot.
    let shot_dir = tempfile::tempdir().unwrap();
    let shot = shot_dir.path().join("status-page.png");
    chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a real picture: {} bytes", png.len());
    if let Ok(to) = std::env::var("ENVMON_STATUS_SCREENSHOT") {
        std::fs::copy(&shot, &to).unwrap();
    }
}

/// Without the indicator engines (their routes answer 404) and before any data, the page still
/// loads without an error: the air and water panels say "not enabled", every station is
/// `never` (real Mosquitto + InfluxDB + `envmon run`).
#[test]
fn status_page_degrades_gracefully_without_engines_and_without_data() {
    use common::envmon::{stations_toml, Envmon, EnvmonOpts};
    let broker = common::Mosquitto::start();
    let influx = common::Influx1::start();
    influx.create_db("envmon");
    let mut o = EnvmonOpts::v1(broker.port(), influx.url());
    o.indicators = false;
    o.stations = stations_toml(3, 2);
    let envmon = Envmon::start(&o);
    let (code, _) = envmon.get("/api/v1/air/aqi?scope=city&id=suzhou").unwrap();
    assert_eq!(code, 404, "air engine off");
    let url = format!("http://127.0.0.1:{}/", envmon.http_port);
    let (dom, err) = chromium(&url, &["--dump-dom", "--virtual-time-budget=6000"]);
    assert!(
        attr(&dom, "<body", "data-loaded").is_some_and(|n| n != "0"),
        "loaded: {}",
        &dom[..dom.len().min(2000)]
    );
    assert!(
        dom.contains("空气质量引擎未启用 / air engine not enabled"),
        "city panel"
    );
    assert!(
        dom.contains("水质引擎未启用 / water engine not enabled"),
        "water panel"
    );
    let markers = rendered(&dom, "g", "marker");
    assert_eq!(markers.len(), 5, "{markers:?}");
    assert_eq!(dom.matches("data-status=\"never\"").count(), 5);
    assert_eq!(rendered(&dom, "tr", "not-online").len(), 5);
    let pat = "id=\"city-aqi\" data-aqi=\"";
    assert!(
        !dom.match_indices(pat)
            .any(|(i, _)| dom[i + pat.len()..].starts_with(|c: char| c.is_ascii_digit())),
        "no AQI invented"
    );
    assert!(
        dom.contains("<pre id=\"page-errors\"></pre>"),
        "page errors"
    );
    assert!(!err.contains("Uncaught"), "{err}");
}
