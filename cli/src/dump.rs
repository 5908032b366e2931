//! `promshm dump`: the rendered exposition on stdout.

use std::io::Write;
use std::path::PathBuf;

use promshm::Format;

use crate::common::{open_area, render, CliError, CliResult, RenderOpts};
use crate::files::FileArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    Openmetrics,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Prometheus => Format::Prometheus,
            FormatArg::Openmetrics => Format::OpenMetrics,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The area file.
    pub area: PathBuf,
    /// Exposition format.
    #[arg(long, value_enum, default_value = "prometheus")]
    pub format: FormatArg,
    #[command(flatten)]
    pub render: RenderOpts,
}

pub fn run(a: Args, files: &FileArgs) -> CliResult {
    a.render.check()?;
    let area = open_area(&a.area, files)?;
    let mut out = Vec::new();
    render(&area, &a.render, a.format.into(), &mut out)?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        // `promshm dump AREA | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("writing to stdout: {e}"))),
    }
}
