//! Two envmon instances share one subscription (`mqtt.shared_group`): the broker splits the
//! messages between them and every reading lands exactly once (real Mosquitto + InfluxDB 1.6).

mod common;

use std::time::Duration;

use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto};

#[test]
fn two_instances_split_the_load_and_every_reading_lands_once() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut a = EnvmonOpts::v1(broker.port(), influx.url());
    a.indicators = false;
    let mut b = a.clone();
    b.client_id = format!("{}-b", a.client_id);
    // shared_group belongs to [mqtt]: put it right after the client id.
    for o in [&mut a, &mut b] {
        o.client_id = format!("{}\"\nshared_group = \"centre", o.client_id);
    }
    let ea = Envmon::start(&a);
    let eb = Envmon::start(&b);
    // Both subscribed before publishing.
    for e in [&ea, &eb] {
        assert!(
            common::wait_until(Duration::from_secs(10), || {
                (e.metric("envmon_mqtt_subscribed") == 1.0).then_some(())
            })
            .is_some(),
            "{}",
            e.log()
        );
    }
    let n = 2000;
    let msgs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let s = i % 50;
            let t = 1_793_462_400 + (i / 50) as i64 * 3600;
            (
                format!("env/json/A{s:03}"),
                format!(
                    r#"{{"station":"A{s:03}","time":{t},"interval":"hour","readings":{{"pm25":{i}}}}}"#
                )
                .into_bytes(),
            )
        })
        .collect();
    let rt = common::envmon::runtime();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-shared",
            msgs,
            Duration::from_secs(60)
        )),
        n
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", n as u64, Duration::from_secs(60)),
        n as u64
    );
    let (ra, rb) = (
        ea.metric("envmon_messages_received_total"),
        eb.metric("envmon_messages_received_total"),
    );
    assert_eq!(
        ra + rb,
        n as f64,
        "each message went to exactly one instance"
    );
    assert!(
        ra > 0.0 && rb > 0.0,
        "both instances took a share: {ra} / {rb}"
    );
    let rows = influx.rows("envmon", "SELECT sum(pm25) FROM air");
    let want: f64 = (0..n).map(|i| i as f64).sum();
    assert_eq!(rows[0]["sum"].as_f64(), Some(want));
}
