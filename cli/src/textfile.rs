//! `promshm textfile`: the node_exporter textfile-collector file.
//!
//! Written atomically: a temporary file in the same directory (a name that
//! does not end in `.prom`, so the collector never reads it half-written),
//! fsync, rename over PATH, fsync of the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use promshm::Format;

use crate::common::{
    every, install_signal_handlers, log, parse_duration, AreaSource, CliError, CliResult,
    RenderOpts,
};
use crate::files::FileArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The area file.
    pub area: PathBuf,
    /// The file to write, e.g. /var/lib/prometheus/node-exporter/myapp.prom.
    pub path: PathBuf,
    /// Write again every DURATION until SIGTERM/SIGINT (default: write once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    #[command(flatten)]
    pub render: RenderOpts,
}

/// Replace `path` with `data` atomically (same-directory temp file, fsync, rename, fsync dir).
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn run(a: Args, files: &FileArgs) -> CliResult {
    a.render.check()?;
    if a.path.extension().is_none_or(|e| e != "prom") {
        log(&format!(
            "warning: {}: node_exporter's textfile collector only reads files ending in .prom",
            a.path.display()
        ));
    }
    let area = AreaSource::open(&a.area, files)?;
    let write_once = |area: &AreaSource| -> CliResult {
        let mut text = Vec::new();
        area.render(&a.render, Format::Prometheus, &mut text)?;
        write_atomically(&a.path, &text)
            .map_err(|e| CliError::failure(format!("writing {}: {e}", a.path.display())))
    };
    match a.interval {
        None => write_once(&area),
        Some(interval) => {
            install_signal_handlers()?;
            every(interval, || write_once(&area))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("promshm-tf-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.prom");
        write_atomically(&p, b"a 1\n").unwrap();
        write_atomically(&p, b"a 2\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"a 2\n");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
