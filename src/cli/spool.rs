//! `envmon spool inspect|verify`: read a spool directory offline (`crate::spool::inspect`).
//! Safe while envmon runs: nothing is written; the newest segment may end in a record being
//! appended, reported as `tail`.

use std::path::PathBuf;

/// Arguments shared by `inspect` and `verify`.
#[derive(Debug, clap::Args)]
pub struct SpoolArgs {
    /// The spool directory; default: `spool.dir` of the config.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value = "config/envmon.toml")]
    pub config: PathBuf,
    /// Also read the part before the drain cursor (already in InfluxDB, not yet deleted).
    #[arg(long)]
    pub all: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn dir_of(a: &SpoolArgs) -> Result<PathBuf, String> {
    match &a.dir {
        Some(d) => Ok(d.clone()),
        None => crate::config::Settings::load(&a.config)
            .map(|s| s.spool.dir)
            .map_err(|e| format!("{e} (or give --dir)")),
    }
}

/// `inspect`: the report; `Err` only when the directory cannot be read.
pub fn inspect(a: &SpoolArgs) -> Result<String, String> {
    let dir = dir_of(a)?;
    if !dir.is_dir() {
        return Err(format!("{}: not a spool directory", dir.display()));
    }
    let r = crate::spool::inspect::inspect(&dir, a.all)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(if a.json {
        serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"
    } else {
        crate::spool::inspect::render(&r)
    })
}

/// `verify`: like `inspect`; `Err` (exit 1) when a corrupt range is found.
pub fn verify(a: &SpoolArgs) -> Result<String, String> {
    let dir = dir_of(a)?;
    if !dir.is_dir() {
        return Err(format!("{}: not a spool directory", dir.display()));
    }
    let r = crate::spool::inspect::inspect(&dir, true)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = if a.json {
        serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"
    } else {
        crate::spool::inspect::render(&r)
    };
    if r.corrupt.is_empty() {
        Ok(format!(
            "{text}verify: OK ({} records checked)\n",
            r.records
        ))
    } else {
        Err(format!(
            "{text}verify: {} corrupt ranges (the next start quarantines them and replays the rest)",
            r.corrupt.len()
        ))
    }
}
