//! The filesystem driver's own tests: distribution's parameter parsing, the on-disk layout,
//! resume across instances, crash safety of PutContent under SIGKILL, confinement to the root,
//! and the CLI over it.
//!
//! The binary doubles as the crash test's child: with `REGSTORE_PUT_LOOP=<root>` it writes
//! PutContent versions in a loop until it is killed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "support/registry_tree.rs"]
mod registry_tree;

use libtest_mimic::{Arguments, Failed, Trial};
use regstore::{ErrorKind, Params, Registry, StorageDriver, WalkControl};
use serde_json::{Value, json};

const PUT_LOOP_ENV: &str = "REGSTORE_PUT_LOOP";

fn params(value: Value) -> Params {
    value.as_object().cloned().unwrap()
}

async fn open(root: &Path) -> regstore::Driver {
    let p = params(json!({ "rootdirectory": root.display().to_string() }));
    Registry::new().create("filesystem", &p).await.expect("filesystem driver")
}

/// Version `i` of the crash test's content: distinguishable by byte and by length.
fn version(i: usize) -> Vec<u8> {
    vec![(i % 251) as u8 + 1; (256 << 10) + (i % 64) * 4099]
}

/// Every file below `dir`, relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

async fn parameters_as_distribution() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().display().to_string();
    let registry = Registry::new();
    let err = registry
        .create("filesystem", &params(json!({ "rootdirectory": root, "maxthreads": "fail" })))
        .await
        .err()
        .ok_or("maxthreads=fail must be refused")?;
    assert_eq!(err.kind(), ErrorKind::InvalidParameter, "{err}");
    assert!(err.to_string().starts_with("filesystem: maxthreads config error: "), "{err}");
    for good in [json!("100"), json!(100), json!(1)] {
        registry.create("filesystem", &params(json!({ "rootdirectory": root, "maxthreads": good }))).await?;
    }
    // A missing root is created, as distribution does on first use.
    let nested = dir.path().join("a/b/registry");
    open(&nested).await;
    assert!(nested.is_dir());
    Ok(())
}

async fn layout_matches_distribution() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let d = open(dir.path()).await;
    d.put_content("/docker/registry/v2/blobs/sha256/ab/abcd/data", b"blob").await?;
    assert_eq!(files_below(dir.path()), ["docker/registry/v2/blobs/sha256/ab/abcd/data"]);
    assert_eq!(std::fs::read(dir.path().join("docker/registry/v2/blobs/sha256/ab/abcd/data"))?, b"blob");
    // A tree written as distribution writes it is served as it is.
    let link = dir.path().join("docker/registry/v2/repositories/library/alpine/_layers/sha256/abcd/link");
    std::fs::create_dir_all(link.parent().unwrap())?;
    std::fs::write(&link, b"sha256:abcd")?;
    assert_eq!(
        d.get_content("/docker/registry/v2/repositories/library/alpine/_layers/sha256/abcd/link").await?,
        b"sha256:abcd"
    );
    assert_eq!(d.list("/docker/registry/v2").await?, ["/docker/registry/v2/blobs", "/docker/registry/v2/repositories"]);
    let mut walked = 0;
    d.walk("/", None, &mut |_| {
        walked += 1;
        Ok(WalkControl::Continue)
    })
    .await?;
    assert_eq!(walked, 15);
    d.delete("/docker").await?;
    assert_eq!(files_below(dir.path()), Vec::<String>::new());
    assert!(std::fs::read_dir(dir.path())?.next().is_none(), "emptied directories are pruned");
    Ok(())
}

async fn resume_across_instances() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let first = open(dir.path()).await;
    let mut w = first.writer("/uploads/u1/data", false).await?;
    w.write(&[1u8; 3000]).await?;
    w.close().await?;
    drop((w, first));
    // Another instance, as another registry process over the same root would be.
    let second = open(dir.path()).await;
    let mut w = second.writer("/uploads/u1/data", true).await?;
    assert_eq!(w.size(), 3000);
    w.write(&[2u8; 1000]).await?;
    w.commit().await?;
    w.close().await?;
    assert_eq!(w.size(), 4000);
    let content = second.get_content("/uploads/u1/data").await?;
    assert_eq!(content, [vec![1u8; 3000], vec![2u8; 1000]].concat());
    let mut c = second.writer("/uploads/u2/data", false).await?;
    c.write(b"gone").await?;
    c.cancel().await?;
    assert!(
        second.stat("/uploads/u2").await.unwrap_err().is_not_found(),
        "Cancel removes the file and its emptied directory"
    );
    second.delete("/uploads").await?;
    Ok(())
}

async fn put_content_survives_sigkill() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut torn_writes_left = 0;
    for round in 0..12u64 {
        let mut child =
            Command::new(&exe).env(PUT_LOOP_ENV, dir.path()).stdout(std::process::Stdio::piped()).spawn()?;
        // Wait until the child is writing, then kill it at some point of its loop.
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready)?;
        assert_eq!(ready.trim(), "writing", "the child did not start");
        tokio::time::sleep(Duration::from_millis(20 + (round * 37) % 200)).await;
        child.kill()?;
        child.wait()?;
        torn_writes_left += files_below(dir.path()).iter().filter(|f| f.contains("~tmp-")).count();
        let d = open(dir.path()).await;
        match d.get_content("/blob").await {
            Ok(content) => {
                let byte = *content.first().ok_or("the content is empty: a torn write")?;
                let i = (byte - 1) as usize;
                let candidates = (0..4096).map(version).filter(|v| v[0] == byte);
                assert!(
                    candidates.into_iter().any(|v| v == content),
                    "round {round}: torn content ({} bytes of {byte}; base version {i})",
                    content.len()
                );
            }
            Err(e) if e.is_not_found() => {} // killed before the first write landed
            Err(e) => return Err(format!("round {round}: {e}").into()),
        }
        // Leftover temporaries are never visible.
        assert!(d.list("/").await?.iter().all(|p| p == "/blob"), "round {round}: {:?}", d.list("/").await?);
    }
    eprintln!("put_content_survives_sigkill: {torn_writes_left} interrupted writes left hidden temporaries");
    Ok(())
}

/// The crash test's child: PutContent of ever new versions until killed.
fn put_loop(root: &str) -> ! {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let d = open(Path::new(root)).await;
        for i in 0usize.. {
            d.put_content("/blob", &version(i)).await.unwrap();
            if i == 0 {
                println!("writing");
            }
        }
    });
    unreachable!()
}

async fn symlinks_do_not_escape() -> Result<(), Failed> {
    let (root, outside) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"top secret")?;
    std::os::unix::fs::symlink(&secret, root.path().join("evil"))?;
    std::os::unix::fs::symlink(outside.path(), root.path().join("evildir"))?;
    std::os::unix::fs::symlink("../../../../../../etc/hostname", root.path().join("relative"))?;
    let d = open(root.path()).await;
    for path in ["/evil", "/evildir/secret", "/relative"] {
        assert!(d.get_content(path).await.is_err(), "{path} must not be readable");
        assert!(d.reader(path, 0).await.is_err(), "{path} must not open for reading");
    }
    for path in ["/evil", "/evildir/secret", "/evildir/new"] {
        let _ = d.put_content(path, b"overwritten").await;
        if let Ok(mut w) = d.writer(path, false).await {
            let _ = w.write(b"overwritten").await;
            let _ = w.commit().await;
        }
    }
    assert_eq!(std::fs::read(&secret)?, b"top secret", "the file outside the root is unchanged");
    assert!(!outside.path().join("new").exists(), "nothing is created outside the root");
    Ok(())
}

/// The acceptance commands of the issue, through the binary.
async fn cli_put_get_walk() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_regstore");
    let root = format!("rootdirectory={}", dir.path().display());
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let elsewhere = tempfile::tempdir()?;
    let source = elsewhere.path().join("source.bin");
    std::fs::write(&source, &content)?;
    let run = |args: &[&str]| Command::new(bin).args(args).output();
    let put = run(&[
        "put",
        "--driver",
        "filesystem",
        "--param",
        &root,
        "/docker/registry/v2/x",
        "--file",
        source.to_str().unwrap(),
    ])?;
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    assert_eq!(files_below(dir.path()), ["docker/registry/v2/x"]);
    assert_eq!(std::fs::read(dir.path().join("docker/registry/v2/x"))?, content);
    let get = run(&["get", "--driver", "filesystem", "--param", &root, "/docker/registry/v2/x"])?;
    assert!(get.status.success());
    assert_eq!(get.stdout, content);
    let walk = run(&["walk", "--driver", "filesystem", "--param", &root])?;
    assert_eq!(
        String::from_utf8(walk.stdout)?,
        "/docker\n/docker/registry\n/docker/registry/v2\n/docker/registry/v2/x\n"
    );
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("evil"))?;
    let evil = run(&["get", "--driver", "filesystem", "--param", &root, "/evil"])?;
    assert!(!evil.status.success(), "reading through a symlink out of the root must fail");
    let stderr = String::from_utf8(evil.stderr)?;
    assert!(stderr.starts_with("error: filesystem: ") && stderr.lines().count() == 1, "{stderr}");
    Ok(())
}

/// A relative `rootdirectory` is relative to regstore's working directory, as distribution's;
/// `drivers --describe` shows what the driver asks for and gets.
async fn relative_root_and_describe() -> Result<(), Failed> {
    let cwd = tempfile::tempdir()?;
    let bin = env!("CARGO_BIN_EXE_regstore");
    let run = |args: &[&str]| Command::new(bin).args(args).current_dir(cwd.path()).output();
    let put = run(&["put", "--driver", "filesystem", "--param", "rootdirectory=data", "/a/b", "-f", "/dev/null"])?;
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    assert_eq!(files_below(cwd.path()), ["data/a/b"]);
    let ls = run(&["ls", "--driver", "filesystem", "--param", "rootdirectory=./data", "/a"])?;
    assert_eq!(String::from_utf8(ls.stdout)?, "/a/b\n");
    let root = format!("rootdirectory={}", cwd.path().join("data").display());
    let describe = run(&["drivers", "--describe", "--driver", "filesystem", "--param", &root])?;
    let text = String::from_utf8(describe.stdout)?;
    assert!(describe.status.success(), "{text}");
    assert!(text.contains(&format!("read-write directories  {}", cwd.path().join("data").display())), "{text}");
    assert!(text.contains("concurrent calls        100"), "maxthreads' default: {text}");
    assert!(text.contains("would be granted"), "{text}");
    let bad = run(&["drivers", "--describe", "--driver", "filesystem", "--param", "maxthreads=x"])?;
    assert!(!bad.status.success());
    assert!(String::from_utf8(bad.stderr)?.contains("maxthreads config error"), "distribution's message");
    Ok(())
}

/// Concurrent calls on a stateless driver spread over a pool of instances; inmemory, whose state
/// is its memory, keeps one.
async fn concurrent_calls_use_a_pool() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let fs = open(dir.path()).await;
    let mem = Registry::new().create("inmemory", &Params::new()).await?;
    for d in [&fs, &mem] {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let d = d.clone();
                tokio::spawn(async move {
                    let path = format!("/pool/{i}");
                    let chunk = vec![i as u8; 1 << 20];
                    let mut w = d.writer(&path, false).await?;
                    for _ in 0..16 {
                        w.write(&chunk).await?;
                    }
                    w.commit().await?;
                    d.delete(&path).await
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
    }
    assert!(fs.instance_count() > 1, "filesystem ran 8 streams on {} instance(s)", fs.instance_count());
    assert!(fs.instance_count() <= 8);
    assert_eq!(mem.instance_count(), 1, "inmemory must keep its single instance");
    Ok(())
}

/// Runs `regstore put --file SOURCE PATH` over the filesystem root `root`, unwaited.
fn spawn_put(root: &Path, path: &str, source: &Path) -> std::io::Result<std::process::Child> {
    Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["put", "--driver", "filesystem", "--param"])
        .arg(format!("rootdirectory={}", root.display()))
        .arg(path)
        .arg("--file")
        .arg(source)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
}

/// A pseudo-random number below `n`, from the clock (no seed to manage in a test).
fn below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    (nanos.wrapping_mul(6364136223846793005) >> 17) % n.max(1)
}

/// `regstore put` over an existing object, killed (SIGKILL, SIGTERM, SIGINT in turn) at random
/// moments: the object is always the old content or the new, whole, for small content (one
/// PutContent) and for large (staged through a writer, then moved into place). 36 kills, two
/// thirds of them small; `REGSTORE_PUT_KILLS` sets how many.
async fn cli_put_survives_kills() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let sources = tempfile::tempdir()?;
    let kills: u32 = std::env::var("REGSTORE_PUT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(36);
    for (size, runs) in [(4usize << 20, kills - kills / 3), (20 << 20, kills / 3)] {
        let old: Vec<u8> = vec![1; size];
        let new: Vec<u8> = (0..size + 7).map(|i| (i % 253) as u8).collect();
        let source = sources.path().join(format!("new-{size}"));
        std::fs::write(&source, &new)?;
        let key = format!("/docker/registry/v2/blob-{size}");
        let file = dir.path().join(key.trim_start_matches('/'));
        // How long a whole put takes: kills land anywhere within it.
        std::fs::create_dir_all(file.parent().unwrap())?;
        std::fs::write(&file, &old)?;
        let started = std::time::Instant::now();
        let out = spawn_put(dir.path(), &key, &source)?.wait_with_output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let full = started.elapsed().as_micros() as u64;
        let (mut olds, mut news) = (0, 0);
        for run in 0..runs {
            std::fs::write(&file, &old)?;
            let mut child = spawn_put(dir.path(), &key, &source)?;
            tokio::time::sleep(Duration::from_micros(below(full))).await;
            let signal = ["-KILL", "-TERM", "-INT"][run as usize % 3];
            let _ = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
            let _ = child.wait();
            let at_rest = std::fs::read(&file)?;
            if at_rest == old {
                olds += 1;
            } else if at_rest == new {
                news += 1;
            } else {
                return Err(format!(
                    "run {run} ({signal}, {size} bytes): the object holds {} bytes that are neither the old \
                     content nor the new",
                    at_rest.len()
                )
                .into());
            }
        }
        println!("filesystem: {runs} killed puts of {size} bytes: {olds} left the old content, {news} the new");
    }
    Ok(())
}

/// Eight concurrent puts of different content to one key, five rounds: the key holds exactly
/// one of the contents, whole.
async fn cli_concurrent_puts_to_one_key() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let sources = tempfile::tempdir()?;
    for size in [1usize << 20, 12 << 20] {
        let contents: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i + 1; size + i as usize]).collect();
        let files: Vec<_> = contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let f = sources.path().join(format!("c{size}-{i}"));
                std::fs::write(&f, c).map(|_| f)
            })
            .collect::<Result<_, _>>()?;
        for round in 0..5 {
            let children: Vec<_> = files.iter().map(|f| spawn_put(dir.path(), "/k", f)).collect::<Result<_, _>>()?;
            for child in children {
                let out = child.wait_with_output()?;
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
            let at_rest = std::fs::read(dir.path().join("k"))?;
            assert!(
                contents.contains(&at_rest),
                "round {round} ({size} bytes): the key holds {} bytes that are none of the contents",
                at_rest.len()
            );
        }
    }
    Ok(())
}

/// A directory as the input is an error, and the object already at the path stays as it was.
async fn cli_put_of_a_directory_keeps_the_object() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let input = tempfile::tempdir()?;
    std::fs::write(dir.path().join("k"), b"kept")?;
    let out = spawn_put(dir.path(), "/k", input.path())?.wait_with_output()?;
    assert!(!out.status.success(), "a directory as --file must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a directory"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["put", "--driver", "filesystem", "--param"])
        .arg(format!("rootdirectory={}", dir.path().display()))
        .arg("/k")
        .stdin(std::fs::File::open(input.path())?)
        .output()?;
    assert!(!out.status.success(), "a directory as standard input must fail");
    assert_eq!(std::fs::read(dir.path().join("k"))?, b"kept", "the object must be left as it was");
    Ok(())
}

/// An offset far past the end, up to the largest the API takes, is an empty stream (D3), not
/// WASI's refusal of the offset.
async fn huge_offsets_read_nothing() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let d = open(dir.path()).await;
    d.put_content("/k", b"hello").await?;
    for offset in [6, 1 << 40, 9_223_372_036_854_775_000, i64::MAX] {
        let mut r = d.reader("/k", offset).await.map_err(|e| format!("Reader at {offset}: {e}"))?;
        let got = r.read_chunk().await.map_err(|e| format!("Read at {offset}: {e}"))?;
        assert!(got.is_none(), "offset {offset}: read {:?} bytes", got.map(|c| c.len()));
    }
    Ok(())
}

fn trial<F, Fut>(name: &str, f: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), Failed>>,
{
    Trial::test(name, move || tokio::runtime::Runtime::new().unwrap().block_on(f()))
}

/// `--json` prints one object per entry with the documented fields, for stat, ls, walk, url and
/// drivers.
async fn cli_json_output() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("a/b"))?;
    std::fs::write(dir.path().join("a/b/c"), b"12345")?;
    let root = format!("rootdirectory={}", dir.path().display());
    let bin = env!("CARGO_BIN_EXE_regstore");
    let json_lines = |args: &[&str]| -> Result<Vec<Value>, Failed> {
        let out = Command::new(bin).args(args).output()?;
        if !out.status.success() {
            return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let text = String::from_utf8(out.stdout)?;
        Ok(text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?)
    };
    let fs = |cmd: &'static str, rest: &[&'static str]| {
        let mut args = vec![cmd, "--driver", "filesystem", "--param", &root];
        args.extend_from_slice(rest);
        args.push("--json");
        json_lines(&args)
    };
    let stat = fs("stat", &["/a/b/c"])?;
    assert_eq!(stat.len(), 1);
    assert_eq!((&stat[0]["path"], &stat[0]["is_dir"], &stat[0]["size"]), (&json!("/a/b/c"), &json!(false), &json!(5)));
    let modified = stat[0]["modified_ns"].as_u64().ok_or("modified_ns is a number")?;
    let mtime = std::fs::metadata(dir.path().join("a/b/c"))?.modified()?;
    assert_eq!(modified as u128, mtime.duration_since(std::time::UNIX_EPOCH)?.as_nanos());
    assert_eq!(fs("ls", &["/a"])?, [json!({ "path": "/a/b" })]);
    let walked: Vec<(Value, Value)> =
        fs("walk", &["/"])?.into_iter().map(|v| (v["path"].clone(), v["is_dir"].clone())).collect();
    assert_eq!(walked, [(json!("/a"), json!(true)), (json!("/a/b"), json!(true)), (json!("/a/b/c"), json!(false))]);
    assert_eq!(fs("url", &["/a/b/c"])?, [json!({ "path": "/a/b/c", "method": "GET", "url": null })]);
    let drivers = json_lines(&["drivers", "--json"])?;
    let fs_entry = drivers.iter().find(|d| d["name"] == "filesystem").ok_or("filesystem is listed")?;
    assert_eq!(
        (&fs_entry["origin"], &fs_entry["source"], &fs_entry["error"]),
        (&json!("bundled"), &Value::Null, &Value::Null)
    );
    assert!(fs_entry["wit"].as_str().is_some_and(|w| w.starts_with("registry:storage@")), "{fs_entry}");
    // A file that cannot be loaded is listed with why, and the command fails in one line.
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"not wasm")?;
    let out = Command::new(bin).args(["drivers", "--json", "--component", bad.to_str().unwrap()]).output()?;
    assert!(!out.status.success());
    let listed: Vec<Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let entry =
        listed.iter().find(|d| d["source"] == json!(bad.display().to_string())).ok_or("the bad file is listed")?;
    assert!(entry["name"].is_null() && entry["error"].as_str().is_some_and(|e| !e.is_empty()), "{entry}");
    assert!(listed.iter().any(|d| d["name"] == "inmemory"), "the other drivers are still listed");
    let stderr = String::from_utf8(out.stderr)?;
    assert!(stderr.starts_with("error: ") && stderr.lines().count() == 1, "{stderr}");
    Ok(())
}

/// `--config` reads distribution's config.yml: the storage section's driver and parameters,
/// `REGISTRY_STORAGE_*` overrides, `--param` over both, and a third-party component with its
/// grants from the regstore section.
async fn cli_config_file() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let source = dir.path().join("content");
    std::fs::write(&source, b"from a config")?;
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n    maxthreads: 50\n  \
             delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: :5000\n",
            a.display()
        ),
    )?;
    let bin = env!("CARGO_BIN_EXE_regstore");
    let run = |args: &[&str], env: &[(&str, &Path)]| {
        let mut command = Command::new(bin);
        command.args(args).env_remove("REGISTRY_STORAGE");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output()
    };
    let (config, source) = (config.to_str().unwrap(), source.to_str().unwrap());
    let put = run(&["put", "--config", config, "/x", "-f", source], &[])?;
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    assert_eq!(std::fs::read(a.join("x"))?, b"from a config");
    // The environment overrides the file, and --param the environment.
    let put =
        run(&["put", "--config", config, "/y", "-f", source], &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &b)])?;
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    assert_eq!((b.join("y").exists(), a.join("y").exists()), (true, false));
    let param = format!("rootdirectory={}", c.display());
    let put = run(
        &["put", "--config", config, "--param", &param, "/z", "-f", source],
        &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &b)],
    )?;
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    assert!(c.join("z").exists() && !b.join("z").exists());

    // A third-party component, named and granted in the regstore section.
    let wasm = dir.path().join("myfs.wasm");
    std::fs::write(&wasm, regstore_bundled::get("filesystem").ok_or("bundled filesystem")?.wasm)?;
    let third = dir.path().join("third.yml");
    let storage =
        format!("storage:\n  myfs:\n    rootdirectory: {}\nregstore:\n  component: {}\n", c.display(), wasm.display());
    std::fs::write(&third, format!("{storage}  sandbox:\n    allow-dir: [{}]\n    memory-limit: 4096\n", c.display()))?;
    let stat = run(&["stat", "--config", third.to_str().unwrap(), "/z", "--json"], &[])?;
    assert!(stat.status.success(), "{}", String::from_utf8_lossy(&stat.stderr));
    let info: Value = serde_json::from_slice(&stat.stdout)?;
    assert_eq!((&info["path"], &info["size"]), (&json!("/z"), &json!(13)));
    // Without the grant, the third party is refused, in one line that says how to grant it.
    std::fs::write(&third, &storage)?;
    let refused = run(&["stat", "--config", third.to_str().unwrap(), "/z"], &[])?;
    let stderr = String::from_utf8(refused.stderr)?;
    assert!(!refused.status.success() && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.starts_with("error: myfs: ") && stderr.contains("--allow-dir"), "{stderr}");

    // A bad configuration: the file, the key and the reason, in one line; nothing is changed.
    std::fs::write(&third, format!("{storage}  sandbox:\n    allow-dirs: [/]\n"))?;
    let bad = run(&["rm", "--config", third.to_str().unwrap(), "/z"], &[])?;
    let stderr = String::from_utf8(bad.stderr)?;
    assert!(!bad.status.success() && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.contains(&format!("{}: regstore.sandbox.allow-dirs: unknown key", third.display())), "{stderr}");
    assert!(c.join("z").exists());
    let clash = run(&["stat", "--config", config, "--driver", "inmemory", "/"], &[])?;
    assert_eq!(clash.status.code(), Some(2), "--config and --driver together are a usage error");
    Ok(())
}

/// `RUST_LOG=regstore=debug` prints one line per driver call on stderr; without it, nothing.
async fn cli_traces_driver_calls() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("k"), b"12345")?;
    let root = format!("rootdirectory={}", dir.path().display());
    let run = |log: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_regstore"));
        command.args(args).args(["--driver", "filesystem", "--param", &root]).env_remove("RUST_LOG");
        if let Some(log) = log {
            command.env("RUST_LOG", log);
        }
        command.output()
    };
    let quiet = run(None, &["stat", "/k"])?;
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
    let traced = run(Some("regstore=debug"), &["stat", "/k"])?;
    assert!(traced.status.success());
    assert_eq!(traced.stdout, quiet.stdout, "tracing goes to stderr only");
    let stderr = String::from_utf8(traced.stderr)?;
    let calls: Vec<&str> = stderr.lines().filter(|l| l.contains("storage{")).collect();
    assert_eq!(calls.len(), 1, "one line for the one call: {stderr}");
    for field in ["driver=\"filesystem\"", "method=\"Stat\"", "path=\"/k\"", "outcome=\"ok\"", "time.busy"] {
        assert!(calls[0].contains(field), "{field} in {stderr}");
    }
    let failed = run(Some("regstore=debug"), &["get", "/missing"])?;
    let stderr = String::from_utf8(failed.stderr)?;
    let calls: Vec<&str> = stderr.lines().filter(|l| l.contains("storage{")).collect();
    assert_eq!(calls.len(), 1, "{stderr}");
    assert!(calls[0].contains("method=\"Reader\"") && calls[0].contains("Path not found"), "{stderr}");
    assert!(stderr.lines().last().is_some_and(|l| l.starts_with("error: ")), "{stderr}");
    Ok(())
}

/// `regstore copy` between two filesystem roots: a registry's tree of a few GiB (2 GiB in CI;
/// `REGSTORE_COPY_TRIAL_MIB` sets it) copied whole with at most 64 MiB of peak memory, a
/// second run that skips everything, and a corrupt source blob that is reported, not copied.
async fn cli_copy_between_roots() -> Result<(), Failed> {
    let mib: u64 = std::env::var("REGSTORE_COPY_TRIAL_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let (from, to) = (tempfile::tempdir()?, tempfile::tempdir()?);
    registry_tree::write(from.path(), &registry_tree::sizes(mib << 20, 120))?;
    let side = |dir: &Path| format!("rootdirectory={}", dir.display());
    let copy = |to: &Path, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_regstore"));
        command.args(["copy", "--from", "filesystem", "--to", "filesystem", "--json"]);
        command.args(["--from-param", &side(from.path()), "--to-param", &side(to)]).args(extra);
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        command
    };
    let child = copy(to.path(), &[]).spawn()?;
    let (out, peak_kib) = wait_measuring_peak(child)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout)?;
    let objects = registry_tree::files(from.path()).len() as u64;
    assert_eq!(
        (&summary["objects"], &summary["copied"], &summary["failed"]),
        (&json!(objects), &json!(objects), &json!([]))
    );
    registry_tree::same_trees(from.path(), to.path())?;
    let seconds = summary["seconds"].as_f64().unwrap_or(0.0);
    println!(
        "copy of {objects} objects, {mib} MiB, filesystem to filesystem: peak RSS {:.1} MiB, {:.0} MiB/s",
        peak_kib as f64 / 1024.0,
        mib as f64 / seconds.max(1e-3)
    );
    assert!(peak_kib < 64 << 10, "peak memory {peak_kib} KiB, over 64 MiB");

    let again = copy(to.path(), &[]).output()?;
    let summary: Value = serde_json::from_slice(&again.stdout)?;
    assert_eq!((&summary["copied"], &summary["skipped"]), (&json!(0), &json!(objects)), "{summary}");

    // A source blob whose bytes no longer match its digest is reported and left out.
    let small = tempfile::tempdir()?;
    let blobs = registry_tree::write(small.path(), &[10, 2000, 300_000, 5 << 20])?;
    let mut content = std::fs::read(&blobs[3])?;
    content[1000] ^= 0xff;
    std::fs::write(&blobs[3], content)?;
    let dest = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["copy", "--from", "filesystem", "--to", "filesystem", "--from-param", &side(small.path())])
        .args(["--to-param", &side(dest.path())])
        .output()?;
    let stderr = String::from_utf8(out.stderr)?;
    let key = format!("/{}", blobs[3].strip_prefix(small.path())?.display());
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("failed {key}: the source's content does not match its digest")), "{stderr}");
    assert!(stderr.lines().last().is_some_and(|l| l.starts_with("error: 1 of ")), "{stderr}");
    assert!(!dest.path().join(&key[1..]).exists() && dest.path().join(blobs[2].strip_prefix(small.path())?).exists());
    assert!(!dest.path().join("regstore-staging").exists(), "nothing is left staged");
    Ok(())
}

/// Waits for `child`, sampling its peak resident memory (VmHWM, KiB) as it runs.
fn wait_measuring_peak(mut child: std::process::Child) -> std::io::Result<(std::process::Output, u64)> {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
    });
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("the stdout reader")?;
    let stderr = err.join().expect("the stderr reader")?;
    Ok((std::process::Output { status, stdout, stderr }, peak))
}

fn main() {
    if let Ok(root) = std::env::var(PUT_LOOP_ENV) {
        put_loop(&root);
    }
    let trials = vec![
        trial("filesystem::parameters_as_distribution", parameters_as_distribution),
        trial("filesystem::layout_matches_distribution", layout_matches_distribution),
        trial("filesystem::resume_across_instances", resume_across_instances),
        trial("filesystem::put_content_survives_sigkill", put_content_survives_sigkill),
        trial("filesystem::symlinks_do_not_escape", symlinks_do_not_escape),
        trial("filesystem::cli_put_get_walk", cli_put_get_walk),
        trial("filesystem::concurrent_calls_use_a_pool", concurrent_calls_use_a_pool),
        trial("filesystem::relative_root_and_describe", relative_root_and_describe),
        trial("filesystem::cli_put_survives_kills", cli_put_survives_kills),
        trial("filesystem::huge_offsets_read_nothing", huge_offsets_read_nothing),
        trial("filesystem::cli_concurrent_puts_to_one_key", cli_concurrent_puts_to_one_key),
        trial("filesystem::cli_put_of_a_directory_keeps_the_object", cli_put_of_a_directory_keeps_the_object),
        trial("filesystem::cli_json_output", cli_json_output),
        trial("filesystem::cli_config_file", cli_config_file),
        trial("filesystem::cli_traces_driver_calls", cli_traces_driver_calls),
        trial("filesystem::cli_copy_between_roots", cli_copy_between_roots),
    ];
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
