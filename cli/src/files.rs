//! Which area files the command accepts (the global `--allow-*` options),
//! user names resolved to uids, and the message for a refused file.
//!
//! The library refuses an area file owned by another user than the
//! effective one, or writable by its group or by every user, unless the
//! opener allows it (`promshm::FileOptions`). The documented exporter setup
//! runs the command as another user than the application: these options are
//! its way to say which owner it trusts.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use promshm::FileOptions;

use crate::common::{exit, CliError};

/// Longest wait for another process's lock on the file at each open: the
/// command only reads, and `serve` reopens a replaced file between scrapes,
/// so it never waits long (the library's own default is 10 s).
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The global options that widen which area files are accepted.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FileArgs {
    /// Also read area files owned by this user (a name or a uid), e.g. the
    /// application's user when the command runs as an exporter user.
    /// Repeatable; PROMSHM_ALLOW_OWNER takes a comma-separated list.
    #[arg(
        long = "allow-owner",
        value_name = "USER|UID",
        value_parser = parse_owner,
        global = true,
        env = "PROMSHM_ALLOW_OWNER",
        value_delimiter = ','
    )]
    pub allow_owner: Vec<u32>,
    /// Also read area files that their group may write (mode g+w).
    #[arg(long, global = true, env = "PROMSHM_ALLOW_GROUP_WRITE",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_group_write: bool,
    /// Also read area files that every user may write (mode o+w): any local
    /// user can then forge what is read.
    #[arg(long, global = true, env = "PROMSHM_ALLOW_OTHER_WRITE",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_other_write: bool,
}

impl FileArgs {
    /// The library's options for every open: these allowances, and a short
    /// lock wait ([`LOCK_WAIT`]).
    pub fn options(&self) -> FileOptions {
        self.allow_owner
            .iter()
            .fold(FileOptions::new(), |o, &uid| o.allow_owner(uid))
            .allow_group_write(self.allow_group_write)
            .allow_other_write(self.allow_other_write)
            .timeout(LOCK_WAIT)
    }

    /// The error for a file the library refused with `reason`: which option
    /// would accept it, found from `meta` (fstat of our descriptor of that
    /// file) in the library's order of checks; the library's reason if
    /// `meta` explains nothing (the file changed meanwhile, or it is not a
    /// regular file).
    pub fn refused(&self, path: &Path, reason: &str, meta: Option<&std::fs::Metadata>) -> CliError {
        let me = effective_uid();
        let hint = meta.filter(|m| m.file_type().is_file()).and_then(|m| {
            let (owner, mode) = (m.uid(), m.mode() & 0o7777);
            if owner != me && !self.allow_owner.contains(&owner) {
                Some(format!(
                    "owned by uid {owner}, not by you (uid {me}); \
                     pass --allow-owner {owner} to read it"
                ))
            } else if mode & 0o002 != 0 && !self.allow_other_write {
                Some(format!(
                    "every user may write it (mode {mode:04o}); make it 0600, or pass \
                     --allow-other-write to read it anyway"
                ))
            } else if mode & 0o020 != 0 && !self.allow_group_write {
                Some(format!(
                    "its group may write it (mode {mode:04o}); make it 0600, or pass \
                     --allow-group-write to read it"
                ))
            } else {
                None
            }
        });
        let why = hint.unwrap_or_else(|| reason.replace('\n', " "));
        CliError::new(
            exit::AREA_REFUSED,
            format!("{}: refused: {why}", path.display()),
        )
    }
}

/// `--allow-owner` value: a uid, or a user name resolved with `getpwnam_r`.
fn parse_owner(s: &str) -> Result<u32, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(uid) if uid != u32::MAX => Ok(uid),
            _ => Err(format!("{s:?} is not a valid uid")),
        };
    }
    match user_uid(s) {
        Ok(Some(uid)) => Ok(uid),
        Ok(None) => Err(format!("no user named {s:?}")),
        Err(e) => Err(format!("cannot look up user {s:?}: {e}")),
    }
}

/// The uid of the user named `name`, if there is one.
fn user_uid(name: &str) -> std::io::Result<Option<u32>> {
    let cname =
        CString::new(name).map_err(|_| std::io::Error::other("a user name has no NUL byte"))?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: a zeroed passwd is a valid out-parameter (pointers null).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `pwd`, `buf` (with its length)
        // and `found` are valid for writes for the whole call; the strings
        // it stores point into `buf`, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => return Ok(None),
            0 => return Ok(Some(pwd.pw_uid)),
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            // Not found, as some NSS modules report it.
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(None),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(parse_owner("0"), Ok(0));
        assert_eq!(parse_owner("65534"), Ok(65534));
        assert_eq!(parse_owner("root"), Ok(0));
        assert!(parse_owner("4294967295").is_err());
        assert!(parse_owner("99999999999").is_err());
        assert!(parse_owner("no-such-user-promshm").is_err());
        assert!(parse_owner("").is_err());
        assert!(parse_owner("a\0b").is_err());
    }
}
