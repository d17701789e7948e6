//! GB 3838 water class and lake TLI. (Stub: being written.)

/// `envmon calc water-class` arguments. (Stub.)
#[derive(Debug, Clone, clap::Args)]
pub struct CalcWaterClassArgs {
    /// param=value pairs.
    pub values: Vec<String>,
}

/// `envmon calc tli` arguments. (Stub.)
#[derive(Debug, Clone, clap::Args)]
pub struct CalcTliArgs {
    /// param=value pairs.
    pub values: Vec<String>,
}

pub fn calc_water_class_cli(_args: &CalcWaterClassArgs) -> Result<String, String> {
    Err("not implemented yet".into())
}

pub fn calc_tli_cli(_args: &CalcTliArgs) -> Result<String, String> {
    Err("not implemented yet".into())
}
