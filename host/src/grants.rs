//! Reconciles what a driver declares with what the operator grants. A trusted driver (bundled,
//! or any with `grant_requested`) gets what it declares; another gets it only where the
//! operator's [`Sandbox`] covers it, and otherwise nothing at all: one error lists every
//! missing grant with the flag that gives it.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use regstore_api::Error;

use crate::describe::{DEFAULT_CALL_TIMEOUT, DEFAULT_MEMORY, Requirements};
use crate::http_client::TlsTrust;
use crate::sandbox::{DirGrant, Grants, Sandbox, authority_covers, split_authority};

/// How many instances serve a driver that keeps no state in memory, unless the operator says:
/// enough for a registry's concurrent uploads on a small machine; each is created only when
/// the others are busy.
pub const POOL_SIZE: usize = 8;

/// One thing a driver asks for that it was not granted.
struct Missing {
    what: String,
    flag: String,
}

/// What `driver` gets for `req` under the operator's `sandbox`.
pub(crate) fn reconcile(driver: &str, req: &Requirements, sandbox: &Sandbox, trusted: bool) -> Result<Grants, Error> {
    let trusted = trusted || sandbox.grant_requested;
    let mut missing = Vec::new();
    let not_granted = |what: String, flag: String| Missing { what, flag };

    let mut dirs = Vec::new();
    let declared = req.read_write_dirs.iter().map(|d| (d, true)).chain(req.read_only_dirs.iter().map(|d| (d, false)));
    for (dir, writable) in declared {
        let host = normalize(dir).map_err(|e| Error::other(driver, e))?;
        let covered = trusted
            || sandbox.dirs.iter().any(|g| normalize_path(g).is_ok_and(|g| host.starts_with(g)))
            || (!writable
                && sandbox.read_only_dirs.iter().any(|g| normalize_path(g).is_ok_and(|g| host.starts_with(g))));
        if covered {
            dirs.push(DirGrant { host, guest: dir.clone(), writable });
        } else {
            let (kind, flag) = if writable { ("read-write", "--allow-dir") } else { ("read-only", "--allow-read") };
            missing.push(not_granted(
                format!("{kind} directory {}", host.display()),
                format!("{flag} {}", host.display()),
            ));
        }
    }
    for (dir, writable) in
        sandbox.dirs.iter().map(|d| (d, true)).chain(sandbox.read_only_dirs.iter().map(|d| (d, false)))
    {
        let host = normalize_path(dir).map_err(|e| Error::other(driver, e))?;
        let guest = dir.to_str().ok_or_else(|| Error::other(driver, format!("{} is not UTF-8", dir.display())))?;
        if !dirs.iter().any(|d| d.guest == guest) {
            dirs.push(DirGrant { host, guest: guest.to_string(), writable });
        }
    }

    let mut hosts = sandbox.hosts.clone();
    for authority in &req.http_authorities {
        let (host, port) = split_authority(authority);
        if trusted || sandbox.hosts.iter().any(|g| authority_covers(g, &host, port)) {
            hosts.push(authority.clone());
        } else {
            missing.push(not_granted(format!("HTTP authority {authority}"), format!("--allow-host {authority}")));
        }
    }

    let mut env = sandbox.env.clone();
    let from_host = req.env.iter().filter(|name| !sandbox.env.iter().any(|(k, _)| k == *name));
    for name in from_host.chain(sandbox.env_names.iter()) {
        if env.iter().any(|(k, _)| k == name) {
            continue;
        }
        if trusted || sandbox.env_names.contains(name) {
            if let Ok(value) = std::env::var(name) {
                env.push((name.clone(), value));
            }
        } else {
            missing.push(not_granted(format!("environment variable {name}"), format!("--allow-env {name}")));
        }
    }

    let memory_limit = match sandbox.memory_limit {
        Some(limit) => limit,
        None if trusted || req.memory_bytes <= DEFAULT_MEMORY => {
            usize::try_from(req.memory_bytes).unwrap_or(usize::MAX)
        }
        None => {
            let mib = req.memory_bytes.div_ceil(1 << 20);
            missing.push(not_granted(
                format!("{mib} MiB of memory (a third-party driver gets {} MiB)", DEFAULT_MEMORY >> 20),
                format!("--memory-limit {mib}"),
            ));
            DEFAULT_MEMORY as usize
        }
    };
    let call_deadline = match sandbox.call_deadline {
        Some(deadline) => deadline,
        None if trusted || req.call_timeout <= DEFAULT_CALL_TIMEOUT => req.call_timeout.max(Duration::from_millis(1)),
        None => {
            let secs = req.call_timeout.as_secs_f64().ceil();
            missing.push(not_granted(
                format!("{secs} s per call (a third-party driver gets {} s)", DEFAULT_CALL_TIMEOUT.as_secs()),
                format!("--deadline {secs}"),
            ));
            DEFAULT_CALL_TIMEOUT
        }
    };

    if !missing.is_empty() {
        let items: Vec<String> = missing.iter().map(|m| format!("{} ({})", m.what, m.flag)).collect();
        return Err(Error::NotGranted {
            driver: driver.to_string(),
            detail: format!(
                "the driver asks for what its sandbox does not grant: {}; grant these, or everything it asks for \
                 with --grant-requested (Sandbox::grant_requested)",
                items.join(", ")
            ),
        });
    }
    // A driver that keeps state in its memory must see every call in its one instance.
    let instances = if req.keeps_state { 1 } else { sandbox.instances.unwrap_or(POOL_SIZE).max(1) };
    let max_concurrent_calls = req.max_concurrent_calls.map(|n| n as usize);
    // The operator's CA files, read once for this driver, whatever it is.
    let tls = TlsTrust::with_ca_files(&sandbox.ca_files)
        .map_err(|detail| Error::InvalidParameter { driver: driver.to_string(), detail })?;
    let keeps_state = req.keeps_state;
    Ok(Grants { dirs, hosts, env, memory_limit, call_deadline, instances, keeps_state, max_concurrent_calls, tls })
}

/// Creates the read-write directories granted, as distribution creates a missing root, and
/// checks that none leads out of the directory that granted it through a symbolic link.
pub(crate) fn prepare_dirs(driver: &str, grants: &Grants, sandbox: &Sandbox, trusted: bool) -> Result<(), Error> {
    for dir in grants.dirs.iter().filter(|d| d.writable) {
        std::fs::create_dir_all(&dir.host)
            .map_err(|e| Error::other(driver, format!("cannot create the directory {}: {e}", dir.host.display())))?;
    }
    if trusted || sandbox.grant_requested {
        return Ok(());
    }
    let granted: Vec<PathBuf> =
        sandbox.dirs.iter().chain(&sandbox.read_only_dirs).filter_map(|g| std::fs::canonicalize(g).ok()).collect();
    for dir in &grants.dirs {
        let real = std::fs::canonicalize(&dir.host)
            .map_err(|e| Error::other(driver, format!("cannot open the directory {}: {e}", dir.host.display())))?;
        if !granted.iter().any(|g| real.starts_with(g)) {
            return Err(Error::NotGranted {
                driver: driver.to_string(),
                detail: format!(
                    "the directory {} leads to {}, which no grant covers (--allow-dir {})",
                    dir.host.display(),
                    real.display(),
                    real.display()
                ),
            });
        }
    }
    Ok(())
}

fn normalize(dir: &str) -> Result<PathBuf, String> {
    normalize_path(Path::new(dir))
}

/// An absolute path without `.` or `..` components, resolved lexically against the working
/// directory, so that a declared `/granted/../etc` is not taken to lie under `/granted`.
fn normalize_path(dir: &Path) -> Result<PathBuf, String> {
    if dir.as_os_str().is_empty() {
        return Err("an empty directory path".into());
    }
    let absolute = std::path::absolute(dir).map_err(|e| format!("directory {}: {e}", dir.display()))?;
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants() -> Requirements {
        let mut req = crate::describe::Description::undeclared().requirements;
        req.read_write_dirs = vec!["/srv/registry".into()];
        req.http_authorities = vec!["s3.example.com:443".into()];
        req.env = vec!["REGSTORE_TEST_SECRET".into()];
        req.keeps_state = false;
        req
    }

    #[test]
    fn a_trusted_driver_gets_what_it_declares() {
        let grants = reconcile("d", &wants(), &Sandbox::default(), true).unwrap();
        assert_eq!(
            grants.dirs,
            [DirGrant { host: "/srv/registry".into(), guest: "/srv/registry".into(), writable: true }]
        );
        assert_eq!(grants.hosts, ["s3.example.com:443"]);
        assert_eq!(grants.instances, POOL_SIZE);
        assert_eq!(grants.memory_limit, DEFAULT_MEMORY as usize);
    }

    #[test]
    fn an_untrusted_driver_is_told_everything_it_lacks() {
        let mut req = wants();
        req.memory_bytes = 1 << 30;
        let e = reconcile("third", &req, &Sandbox::default(), false).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind(), regstore_api::ErrorKind::NotGranted);
        for part in [
            "--allow-dir /srv/registry",
            "--allow-host s3.example.com:443",
            "--allow-env REGSTORE_TEST_SECRET",
            "--memory-limit 1024",
            "--grant-requested",
        ] {
            assert!(text.contains(part), "{part} missing from: {text}");
        }
        let sandbox = Sandbox {
            dirs: vec!["/srv".into()],
            hosts: vec!["s3.example.com".into()],
            env_names: vec!["REGSTORE_TEST_SECRET".into()],
            memory_limit: Some(1 << 30),
            ..Sandbox::default()
        };
        let grants = reconcile("third", &req, &sandbox, false).unwrap();
        assert!(
            grants.dirs.iter().any(|d| d.guest == "/srv/registry") && grants.dirs.iter().any(|d| d.guest == "/srv")
        );
        assert!(reconcile("third", &req, &Sandbox { grant_requested: true, ..Sandbox::default() }, false).is_ok());
    }

    #[test]
    fn dot_dot_does_not_sneak_under_a_grant() {
        let mut req = wants();
        req.http_authorities.clear();
        req.env.clear();
        req.read_write_dirs = vec!["/srv/registry/../../etc".into()];
        let sandbox = Sandbox { dirs: vec!["/srv/registry".into()], ..Sandbox::default() };
        let e = reconcile("third", &req, &sandbox, false).unwrap_err();
        assert!(e.to_string().contains("read-write directory /etc"), "{e}");
    }

    #[test]
    fn a_read_only_grant_does_not_cover_writes() {
        let mut req = wants();
        req.http_authorities.clear();
        req.env.clear();
        let sandbox = Sandbox { read_only_dirs: vec!["/srv".into()], ..Sandbox::default() };
        assert!(reconcile("third", &req, &sandbox, false).is_err());
        req.read_only_dirs = std::mem::take(&mut req.read_write_dirs);
        let grants = reconcile("third", &req, &sandbox, false).unwrap();
        assert!(grants.dirs.iter().all(|d| !d.writable));
    }

    #[test]
    fn a_stateful_driver_keeps_one_instance() {
        let mut req = wants();
        req.keeps_state = true;
        let sandbox = Sandbox { instances: Some(4), ..Sandbox::default() };
        assert_eq!(reconcile("d", &req, &sandbox, true).unwrap().instances, 1);
    }
}
