//! envmon command line: parses arguments and calls the library. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "envmon",
    version,
    about = "Environmental monitoring ingest and indicators"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service.
    Run {
        #[arg(long, default_value = "config/envmon.toml")]
        config: PathBuf,
    },
    /// Validate the config, the station registry and the targets file.
    CheckConfig {
        #[arg(long, default_value = "config/envmon.toml")]
        config: PathBuf,
        /// Also try the MQTT broker (CONNECT) and InfluxDB (ping/health); exit 1 if either is
        /// unreachable.
        #[arg(long)]
        connect: bool,
    },
    /// Decode payloads from stdin (one per line) and print canonical readings as JSON lines;
    /// rejected payloads go to stderr as `line N: <reason>` and the exit code is 1.
    Decode(envmon::cli::decode::DecodeArgs),
    /// Publish realistic simulated station data (with faults on demand) to an MQTT broker.
    #[cfg(feature = "demo")]
    Simulate(Box<envmon::sim::SimArgs>),
    /// The whole job in one process: embedded broker, simulated stations, pipeline, indicators,
    /// HTTP API; data to ./data (or an InfluxDB). Ctrl-C stops it.
    #[cfg(feature = "demo")]
    Demo(Box<envmon::demo::DemoArgs>),
    /// Stations of a running envmon: online, silent or never reported, last seen, dead-letters.
    Stations(envmon::cli::stations::StationsArgs),
    /// Calculators for operators and auditors.
    Calc {
        #[command(subcommand)]
        what: CalcCmd,
    },
    /// Alert rules: validate them, or replay one against the data stored in InfluxDB.
    Alerts {
        #[command(subcommand)]
        what: AlertsCmd,
    },
    /// The durable spool, read offline: what it holds, and whether every record is intact.
    Spool {
        #[command(subcommand)]
        what: SpoolCmd,
    },
    /// Dead-letter records: count them, show them, or re-ingest them after a fix.
    Deadletter {
        #[command(subcommand)]
        what: DeadletterCmd,
    },
}

#[derive(Subcommand)]
enum SpoolCmd {
    /// Counts, time range, stations and corrupt records of what is not yet in InfluxDB.
    Inspect(envmon::cli::spool::SpoolArgs),
    /// Check every record's checksum; exit 1 if a corrupt range is found.
    Verify(envmon::cli::spool::SpoolArgs),
}

fn spool(what: SpoolCmd) -> ExitCode {
    let r = match what {
        SpoolCmd::Inspect(a) => envmon::cli::spool::inspect(&a),
        SpoolCmd::Verify(a) => envmon::cli::spool::verify(&a),
    };
    match r {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand)]
enum DeadletterCmd {
    /// Count the selected records by reason, station and file.
    List(envmon::cli::deadletter::Selection),
    /// Print the selected records (payload escaped, an HJ 212 password as ***).
    Show(envmon::cli::deadletter::Selection),
    /// Decode, normalise and store the selected records again with the current config; mark
    /// them in replayed.jsonl. Exit 1 if some still fail (listed with their new reason).
    Replay(envmon::cli::deadletter::ReplayArgs),
}

fn deadletter(what: DeadletterCmd) -> ExitCode {
    use envmon::cli::deadletter as dl;
    let r = match what {
        DeadletterCmd::List(s) => dl::list(&s),
        DeadletterCmd::Show(s) => dl::show(&s),
        DeadletterCmd::Replay(a) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the tokio runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(dl::replay(&a)) {
                Ok(report) => {
                    print!("{report}");
                    return if report.failed.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
                Err(e) => Err(e),
            }
        }
    };
    match r {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Subcommand)]
enum AlertsCmd {
    /// Validate the rules file and list every rule with the size of its scope.
    Check(envmon::cli::alerts::CheckArgs),
    /// Evaluate one rule against stored readings: when it would have fired and resolved.
    Backtest(envmon::cli::alerts::BacktestArgs),
}

fn alerts(what: AlertsCmd) -> ExitCode {
    let r = match what {
        AlertsCmd::Check(a) => envmon::cli::alerts::check(&a),
        AlertsCmd::Backtest(a) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(envmon::cli::alerts::backtest(&a)),
            Err(e) => {
                eprintln!("error: cannot start the tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    match r {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand)]
enum CalcCmd {
    /// AQI per HJ 633 (edition by date).
    Aqi(envmon::cli::calc::CalcAqiArgs),
    /// GB 3838-2002 water class of one sample.
    WaterClass(envmon::cli::calc::CalcWaterClassArgs),
    /// Lake comprehensive trophic level index TLI(Σ).
    Tli(envmon::cli::calc::CalcTliArgs),
}

fn print_calc(r: Result<String, String>) -> ExitCode {
    match r {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let (settings, registry) = envmon::app::load(config)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    // Inside the runtime: the summary task of repeated log lines runs on it.
    let _rt = rt.enter();
    envmon::telemetry::init_logging(&settings.log);
    rt.block_on(envmon::app::run(settings, registry, shutdown_signal()))?;
    Ok(())
}

#[cfg(feature = "demo")]
fn simulate(args: &envmon::sim::SimArgs) -> anyhow::Result<envmon::sim::SimReport> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            on_signal.cancel()
        });
        Ok(envmon::sim::run_simulate(args, cancel).await?)
    })
}

#[cfg(feature = "demo")]
fn demo(args: envmon::demo::DemoArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    // Inside the runtime: the summary task of repeated log lines runs on it.
    let _rt = rt.enter();
    envmon::demo::init_logging(&args)?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            on_signal.cancel()
        });
        envmon::demo::run(args, stop).await
    })?;
    Ok(())
}

fn stations(args: &envmon::cli::stations::StationsArgs) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(envmon::cli::stations::run(args))?)
}

/// `check-config --connect`: the servers' reachability, after the config checked out.
fn check_connect(config: &std::path::Path) -> ExitCode {
    let r = envmon::app::load(config)
        .map_err(|e| e.to_string())
        .and_then(|(s, _)| {
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(envmon::app::check_connect(&s))
        });
    match r {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { config } => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::CheckConfig { config, connect } => match envmon::app::check_config(&config) {
            Ok(summary) => {
                print!("{summary}");
                if connect {
                    check_connect(&config)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Decode(a) => envmon::cli::decode::main(&a),
        Cmd::Stations(a) => match stations(&a) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "demo")]
        Cmd::Demo(args) => match demo(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        #[cfg(feature = "demo")]
        Cmd::Simulate(args) => match simulate(&args) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Alerts { what } => alerts(what),
        Cmd::Deadletter { what } => deadletter(what),
        Cmd::Spool { what } => spool(what),
        Cmd::Calc { what } => match what {
            CalcCmd::Aqi(a) => print_calc(envmon::cli::calc::calc_cli(&a)),
            CalcCmd::WaterClass(a) => print_calc(envmon::cli::calc::calc_water_class_cli(&a)),
            CalcCmd::Tli(a) => print_calc(envmon::cli::calc::calc_tli_cli(&a)),
        },
    }
}
