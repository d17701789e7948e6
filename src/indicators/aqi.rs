//! HJ 633 AQI and HJ 663 / GB 3095 validity. (Stub: being written.)

/// `envmon calc aqi` arguments. (Stub.)
#[derive(Debug, Clone, clap::Args)]
pub struct CalcAqiArgs {
    /// pollutant=value pairs.
    pub values: Vec<String>,
}

/// Run `envmon calc aqi`: the JSON text to print, or a message for stderr.
pub fn calc_cli(_args: &CalcAqiArgs) -> Result<String, String> {
    Err("not implemented yet".into())
}
