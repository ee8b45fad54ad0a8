//! The example drivers of `examples/`, built as a third party builds them and checked with
//! `regstore conformance --component`, the command an author runs:
//!
//! - `rust-cargo`: `examples/driver-rust` copied out of the repository, its SDK dependency
//!   pointed at this clone as its README says, built with `cargo build --target wasm32-wasip2`;
//! - `rust-cargo-component`: the same copy built with `cargo component build`;
//! - `python`: `examples/driver-python`, built with componentize-py;
//! - `js`: `examples/driver-js`, built with ComponentizeJS;
//!
//! the last two against the contract as `regstore wit --out` writes it.
//!
//! The toolchains come from `scripts/driver-tools` (into the git-ignored `.tools/`); one that
//! cannot be installed fails its trial with the reason. Each trial prints the suite's summary.
//! They run one at a time: each conformance run already keeps both cores busy.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

/// The large stream of the language runtimes' runs, as for the cloud drivers; the Rust
/// example's is larger, since it costs little there.
const LARGE_STREAM_RUNTIMES: u64 = 256 << 20;
const LARGE_STREAM_RUST: u64 = 1 << 30;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ is inside the repository").to_path_buf()
}

/// Runs `command`, failing with its output when it fails.
fn run(what: &str, command: &mut Command) -> Result<String, Failed> {
    let output = command.output().map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() { Ok(text) } else { Err(format!("{what} failed ({}):\n{text}", output.status).into()) }
}

/// Installs a toolchain with `scripts/driver-tools` unless it is there, and returns its program.
fn tool(name: &str, program: &str) -> Result<PathBuf, Failed> {
    let path = repo().join(".tools").join(program);
    if !path.exists() {
        run(&format!("installing {name}"), Command::new(repo().join("scripts/driver-tools")).args(["install", name]))?;
    }
    Ok(path)
}

/// `regstore conformance --component wasm` with `flags`, as an author runs it: the suite
/// makes and grants its own scratch root. Prints the run's summary lines.
fn conformance(wasm: &Path, large_stream: u64, flags: &[&str]) -> Result<(), Failed> {
    let size = std::fs::metadata(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?.len();
    let output = Command::new(env!("CARGO_BIN_EXE_regstore"))
        .arg("conformance")
        .arg("--component")
        .arg(wasm)
        .arg(format!("--large-stream-size={large_stream}"))
        .args(["--jobs", "2"])
        .args(flags)
        .output()
        .map_err(|e| format!("cannot run regstore: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("TestWriteReadLargeStreams") || l.contains(" passed, ") || l.starts_with("hint:"))
        .collect();
    println!("{} ({:.1} MiB): {}", wasm.display(), size as f64 / (1 << 20) as f64, summary.join(" / "));
    let ok = output.status.success() && stdout.lines().any(|l| l.ends_with(" passed, 0 failed"));
    if ok {
        Ok(())
    } else {
        Err(format!("conformance failed ({}):\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr))
            .into())
    }
}

/// `examples/driver-rust` copied to an empty folder outside the repository, with its SDK
/// dependency pointed at this clone as its README says.
fn rust_template_copy() -> Result<tempfile::TempDir, Failed> {
    let outside = tempfile::tempdir().map_err(|e| e.to_string())?;
    let template = repo().join("examples/driver-rust");
    for file in ["Cargo.toml", "Cargo.lock", "README.md", "src/lib.rs"] {
        let to = outside.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(template.join(file), &to).map_err(|e| format!("copying {file}: {e}"))?;
    }
    // The README's `sed` line: the SDK's path, as it is in the repository, becomes this clone's.
    let manifest = outside.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
    let in_repo = "\"../../drivers/sdk\"";
    if !text.contains(in_repo) {
        return Err(format!("examples/driver-rust/Cargo.toml no longer has {in_repo}, which its README edits").into());
    }
    let sdk = format!("{:?}", repo().join("drivers/sdk").display().to_string());
    std::fs::write(&manifest, text.replace(in_repo, &sdk)).map_err(|e| e.to_string())?;
    Ok(outside)
}

/// Where the example builds keep their artifacts between runs (git-ignored, like all of target/).
fn target_dir(name: &str) -> PathBuf {
    repo().join("target/examples").join(name)
}

fn rust_cargo() -> Result<(), Failed> {
    let copy = rust_template_copy()?;
    let target = target_dir("rust");
    run(
        "cargo build --release --target wasm32-wasip2",
        Command::new("cargo")
            .current_dir(copy.path())
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target),
    )?;
    conformance(&target.join("wasm32-wasip2/release/my_driver.wasm"), LARGE_STREAM_RUST, &[])
}

fn rust_cargo_component() -> Result<(), Failed> {
    let cargo_component = tool("cargo-component", "cargo-component/bin/cargo-component")?;
    let copy = rust_template_copy()?;
    let target = target_dir("rust-component");
    let path = std::env::join_paths(
        std::iter::once(cargo_component.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .map_err(|e| e.to_string())?;
    run(
        "cargo component build --release",
        Command::new("cargo")
            .current_dir(copy.path())
            .args(["component", "build", "--release"])
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", &target),
    )?;
    conformance(&target.join("wasm32-wasip1/release/my_driver.wasm"), LARGE_STREAM_RUST, &[])
}

/// Builds `examples/<example>` with its `build` script, the toolchain's program in `variable`.
fn language_example(example: &str, tool_name: &str, program: &str, variable: &str) -> Result<(), Failed> {
    let tool = tool(tool_name, program)?;
    let out = target_dir(example);
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let wasm = out.join("driver.wasm");
    // The contract as an author gets it: from `regstore wit`, not from the repository.
    let wit = tempfile::tempdir().map_err(|e| e.to_string())?;
    run("regstore wit --out", Command::new(env!("CARGO_BIN_EXE_regstore")).args(["wit", "--out"]).arg(wit.path()))?;
    let started = std::time::Instant::now();
    run(
        &format!("examples/{example}/build"),
        Command::new(repo().join("examples").join(example).join("build"))
            .arg(&wasm)
            .arg(wit.path().join(regstore::WIT_VERSION))
            .env(variable, tool),
    )?;
    println!("examples/{example}: built in {:.1} s", started.elapsed().as_secs_f64());
    // What the driver declares, memory included, granted as an operator who read it would.
    conformance(&wasm, LARGE_STREAM_RUNTIMES, &["--grant-requested"])
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = vec![
        Trial::test("rust-cargo", rust_cargo),
        Trial::test("rust-cargo-component", rust_cargo_component),
        Trial::test("python", || {
            language_example(
                "driver-python",
                "componentize-py",
                "venv-componentize-py/bin/componentize-py",
                "COMPONENTIZE_PY",
            )
        }),
        Trial::test("js", || {
            language_example(
                "driver-js",
                "componentize-js",
                "node/node_modules/.bin/componentize-js",
                "COMPONENTIZE_JS",
            )
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
