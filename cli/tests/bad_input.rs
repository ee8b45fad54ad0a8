//! Bad input through the CLI: invalid paths, parameters, option values, offsets and component
//! files, each run against a filesystem root holding sentinel objects. Every case must exit
//! non-zero without a panic, say why in one `error: ` line on stderr, print nothing on stdout,
//! and leave every byte under the root as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};

/// What the root holds before every case: keys as files, with their contents.
const TREE: &[(&str, &str)] = &[
    ("sentinel", "sentinel content, version 1"),
    ("dir/child", "a child"),
    ("dir/sub/grandchild", "a grandchild"),
    ("docker/registry/v2/blobs/sha256/ab/abcd/data", "a blob"),
];

/// One bad input: the arguments (`{root}` is the case's root, `{fs}` the filesystem driver on
/// it, `{files}` a directory of bad component files) and what goes to standard input.
struct Case {
    name: String,
    args: Vec<String>,
    stdin: Vec<u8>,
    /// Environment variables set for the command (`{root}` filled in as in `args`).
    env: Vec<(String, String)>,
}

fn case(name: impl Into<String>, args: &[&str]) -> Case {
    Case { name: name.into(), args: args.iter().map(|a| a.to_string()).collect(), stdin: Vec::new(), env: Vec::new() }
}

fn with_env(name: &str, env: &[(&str, &str)], args: &[&str]) -> Case {
    Case { env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..case(name, args) }
}

/// Configuration files (distribution's config.yml) that are wrong, by name in `{files}`.
const BAD_CONFIGS: &[(&str, &[u8])] = &[
    ("not_yaml", b"storage: [\n"),
    ("not_utf8", b"storage:\n  filesystem:\n    rootdirectory: \xff\xfe\n"),
    ("top_list", b"- storage\n"),
    ("empty", b""),
    ("no_driver", b"storage:\n  delete:\n    enabled: true\n"),
    ("two_drivers", b"storage:\n  filesystem: {}\n  inmemory: {}\n"),
    ("storage_number", b"storage: 5\n"),
    ("parameters_not_a_map", b"storage:\n  filesystem: [rootdirectory]\n"),
    ("version", b"version: 0.2\nstorage: inmemory\n"),
    ("unknown_driver", b"storage:\n  nosuchdriver: {}\n"),
    ("bad_parameter", b"storage:\n  filesystem:\n    maxthreads: many\n"),
    ("regstore_not_a_map", b"storage: inmemory\nregstore: [a]\n"),
    ("regstore_unknown_key", b"storage: inmemory\nregstore:\n  sandboxes: {}\n"),
    ("component_missing", b"storage:\n  mine: {}\nregstore:\n  component: /nonexistent/mine.wasm\n"),
    ("sandbox_unknown_key", b"storage: inmemory\nregstore:\n  sandbox:\n    allow-everything: true\n"),
    ("sandbox_memory", b"storage: inmemory\nregstore:\n  sandbox:\n    memory-limit: 99999\n"),
    ("sandbox_deadline", b"storage: inmemory\nregstore:\n  sandbox:\n    deadline: forever\n"),
    ("sandbox_dirs_not_strings", b"storage: inmemory\nregstore:\n  sandbox:\n    allow-dir: [{a: b}]\n"),
    ("good", b"storage: inmemory\n"),
];

/// Paths that no key can be (distribution's grammar, no `.` or `..` components).
const BAD_PATHS: &[(&str, &str)] = &[
    ("empty", ""),
    ("relative", "sentinel"),
    ("double_slash", "//sentinel"),
    ("trailing_slash", "/sentinel/"),
    ("inner_double_slash", "/dir//child"),
    ("dot", "/dir/./child"),
    ("dotdot", "/dir/../sentinel"),
    ("only_dotdot", "/.."),
    ("space", "/a b"),
    ("non_ascii", "/é"),
    ("backslash", "/dir\\child"),
    ("colon", "/a:b"),
    ("star", "/a*"),
    ("newline", "/a\nb"),
];

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    // Every object command with every bad path.
    for (label, path) in BAD_PATHS {
        for command in ["get", "stat", "rm", "url"] {
            out.push(case(format!("path::{command}::{label}"), &[command, "{fs}", path]));
        }
        out.push(Case {
            stdin: b"new content".to_vec(),
            ..case(format!("path::put::{label}"), &["put", "{fs}", path])
        });
        out.push(case(format!("path::mv_from::{label}"), &["mv", "{fs}", path, "/moved"]));
        out.push(case(format!("path::mv_to::{label}"), &["mv", "{fs}", "/sentinel", path]));
        if !path.is_empty() {
            out.push(case(format!("path::ls::{label}"), &["ls", "{fs}", path]));
            out.push(case(format!("path::walk::{label}"), &["walk", "{fs}", path]));
        }
    }
    out.extend([
        case("path::put::root", &["put", "{fs}", "/", "-f", "/dev/null"]),
        case("path::rm::root", &["rm", "{fs}", "/"]),
        case("path::mv_to::root", &["mv", "{fs}", "/sentinel", "/"]),
        // What the tree makes wrong: missing keys, directories where files are wanted.
        case("tree::get_missing", &["get", "{fs}", "/missing"]),
        case("tree::stat_missing", &["stat", "{fs}", "/missing"]),
        case("tree::ls_missing", &["ls", "{fs}", "/missing"]),
        case("tree::rm_missing", &["rm", "{fs}", "/missing"]),
        case("tree::walk_missing", &["walk", "{fs}", "/missing"]),
        case("tree::mv_missing", &["mv", "{fs}", "/missing", "/moved"]),
        case("tree::mv_directory", &["mv", "{fs}", "/dir", "/moved"]),
        case("tree::get_directory", &["get", "{fs}", "/dir"]),
        case("tree::ls_file", &["ls", "{fs}", "/sentinel"]),
        case("tree::put_over_directory", &["put", "{fs}", "/dir", "-f", "/dev/null"]),
        case("tree::put_under_file", &["put", "{fs}", "/sentinel/x", "-f", "/dev/null"]),
        case("tree::mv_under_file", &["mv", "{fs}", "/dir/child", "/sentinel/x"]),
        case("tree::mv_over_directory", &["mv", "{fs}", "/sentinel", "/dir"]),
        // Local files that are not what the command needs.
        case("local::put_from_directory", &["put", "{fs}", "/sentinel", "-f", "{files}"]),
        case("local::put_from_missing_file", &["put", "{fs}", "/sentinel", "-f", "{files}/missing"]),
        case("local::get_into_directory", &["get", "{fs}", "/sentinel", "-o", "{files}"]),
        case("local::get_into_missing_directory", &["get", "{fs}", "/sentinel", "-o", "{files}/no/such/file"]),
        // Offsets.
        case("offset::negative", &["get", "{fs}", "/sentinel", "--offset", "-1"]),
        case("offset::most_negative", &["get", "{fs}", "/sentinel", "--offset", "-9223372036854775808"]),
        case("offset::past_i64", &["get", "{fs}", "/sentinel", "--offset", "9223372036854775808"]),
        case("offset::not_a_number", &["get", "{fs}", "/sentinel", "--offset", "ten"]),
        case("offset::fraction", &["get", "{fs}", "/sentinel", "--offset", "1.5"]),
        case("offset::empty", &["get", "{fs}", "/sentinel", "--offset", ""]),
    ]);
    // Configuration files and their environment overrides.
    for (label, _) in BAD_CONFIGS.iter().filter(|(label, _)| *label != "good") {
        out.push(case(format!("config::{label}"), &["stat", "--config", &format!("{{files}}/{label}.yml"), "/a"]));
    }
    out.extend([
        case("config::missing_file", &["stat", "--config", "{files}/missing.yml", "/a"]),
        case("config::directory", &["stat", "--config", "{files}", "/a"]),
        case("config::with_driver", &["stat", "--config", "{files}/good.yml", "--driver", "inmemory", "/a"]),
        case(
            "config::with_component",
            &["stat", "--config", "{files}/good.yml", "--component", "{files}/empty.wasm", "/a"],
        ),
        with_env(
            "config::env_not_yaml",
            &[("REGISTRY_STORAGE", "[unclosed")],
            &["stat", "--config", "{files}/good.yml", "/a"],
        ),
        with_env(
            "config::env_second_driver",
            &[("REGISTRY_STORAGE_S3_BUCKET", "b")],
            &["stat", "--config", "{files}/good.yml", "/a"],
        ),
        with_env(
            "config::env_unknown_driver",
            &[("REGISTRY_STORAGE", "nosuchdriver")],
            &["stat", "--config", "{files}/good.yml", "/a"],
        ),
        with_env(
            "config::env_root_is_a_file",
            &[("REGISTRY_STORAGE", "filesystem"), ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "{root}/sentinel")],
            &["put", "--config", "{files}/good.yml", "/x", "-f", "/dev/null"],
        ),
        with_env(
            "config::env_bad_parameter",
            &[("REGISTRY_STORAGE", "filesystem"), ("REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS", "[1, 2]")],
            &["rm", "--config", "{files}/good.yml", "/sentinel"],
        ),
    ]);
    // Option values, on a command that would succeed without them.
    let options: &[(&str, &str, &str)] = &[
        ("deadline", "--deadline", "inf"),
        ("deadline", "--deadline", "1e300"),
        ("deadline", "--deadline", "nan"),
        ("deadline", "--deadline", "0"),
        ("deadline", "--deadline", "-5"),
        ("deadline", "--deadline", "0.0001"),
        ("deadline", "--deadline", "86401"),
        ("deadline", "--deadline", "soon"),
        ("memory_limit", "--memory-limit", "0"),
        ("memory_limit", "--memory-limit", "4097"),
        ("memory_limit", "--memory-limit", "-1"),
        ("memory_limit", "--memory-limit", "lots"),
        ("memory_limit", "--memory-limit", "18446744073709551616"),
        ("instances", "--instances", "0"),
        ("instances", "--instances", "257"),
        ("instances", "--instances", "many"),
        ("ca_file", "--ca-file", "{files}/missing.pem"),
        ("ca_file", "--ca-file", "{files}/garbage.pem"),
        ("ca_file", "--ca-file", "{files}"),
    ];
    for (i, (label, flag, value)) in options.iter().enumerate() {
        out.push(case(format!("option::{label}::{i}"), &["stat", "{fs}", "/sentinel", flag, value]));
    }
    // Parameters: the driver's own, and their syntax.
    let params: &[(&str, &str)] = &[
        ("maxthreads_word", "maxthreads=many"),
        ("maxthreads_negative", "maxthreads=-3"),
        ("maxthreads_huge", "maxthreads=99999999999999999999999"),
        ("maxthreads_fraction", "maxthreads=2.5"),
        ("maxthreads_empty", "maxthreads="),
        ("no_equals", "maxthreads"),
        ("empty_name", "=3"),
    ];
    for (label, param) in params {
        out.push(case(format!("param::{label}"), &["stat", "{fs}", "/sentinel", "--param", param]));
    }
    out.extend([
        case(
            "param::root_is_a_file",
            &["stat", "--driver", "filesystem", "--param", "rootdirectory={root}/sentinel", "/x"],
        ),
        case("param::root_empty", &["get", "--driver", "filesystem", "--param", "rootdirectory=", "/sentinel"]),
        // Drivers and component files.
        case("driver::unknown", &["stat", "--driver", "nosuchdriver", "/sentinel"]),
        case("driver::empty_name", &["stat", "--driver", "", "/sentinel"]),
        case("driver::and_component", &["stat", "--driver", "inmemory", "--component", "{files}/empty.wasm", "/a"]),
        case("driver::none", &["stat", "/sentinel"]),
        case("component::missing", &["stat", "--component", "{files}/missing.wasm", "/a"]),
        case("component::directory", &["stat", "--component", "{files}", "/a"]),
        case("component::empty", &["stat", "--component", "{files}/empty.wasm", "/a"]),
        case("component::garbage", &["stat", "--component", "{files}/garbage.wasm", "/a"]),
        case("component::core_module", &["stat", "--component", "{files}/core.wasm", "/a"]),
        case("component::truncated", &["stat", "--component", "{files}/truncated.wasm", "/a"]),
        case("component::text", &["stat", "--component", "{files}/text.wasm", "/a"]),
        case("component::mismatched_types", &["stat", "--component", "{mismatched}", "/a"]),
        case("component::put_mismatched", &["put", "--component", "{mismatched}", "/sentinel", "-f", "/dev/null"]),
        // The command line itself.
        case("cli::unknown_command", &["frobnicate"]),
        case("cli::unknown_flag", &["stat", "{fs}", "/sentinel", "--frobnicate"]),
        case("cli::missing_path", &["stat", "{fs}"]),
        case("cli::extra_argument", &["stat", "{fs}", "/sentinel", "/extra"]),
        case("cli::mv_one_argument", &["mv", "{fs}", "/sentinel"]),
        case(
            "cli::bench_report_missing_run",
            &["bench-report", "--reference", "{files}/missing.json", "{files}/missing-run.json"],
        ),
        case(
            "cli::bench_report_garbage",
            &["bench-report", "--reference", "{files}/garbage.pem", "{files}/garbage.pem"],
        ),
    ]);
    out
}

/// Files a case may point at instead of a component, a CA or a report.
fn write_bad_files(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join("empty.wasm"), b"")?;
    std::fs::write(dir.join("garbage.wasm"), (0..4096u32).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())?;
    std::fs::write(dir.join("core.wasm"), wat::parse_str("(module (func (export \"open\")))").unwrap())?;
    let inmemory = regstore_bundled::get("inmemory").expect("bundled inmemory").wasm;
    std::fs::write(dir.join("truncated.wasm"), &inmemory[..inmemory.len() / 2])?;
    std::fs::write(dir.join("text.wasm"), b"this is not a component\n")?;
    std::fs::write(
        dir.join("garbage.pem"),
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    )?;
    for (name, text) in BAD_CONFIGS {
        std::fs::write(dir.join(format!("{name}.yml")), text)?;
    }
    Ok(())
}

/// Everything under `dir`: files with their contents, directories as `None`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if entry.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                stack.push(path);
            } else {
                out.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn run_case(case: &Case, files: &Path) -> Result<(), Failed> {
    let root = tempfile::tempdir()?;
    for (key, content) in TREE {
        let file = root.path().join(key);
        std::fs::create_dir_all(file.parent().unwrap())?;
        std::fs::write(file, content)?;
    }
    let before = snapshot(root.path());
    let root_text = root.path().display().to_string();
    let fill = |a: &str| {
        a.replace("{root}", &root_text)
            .replace("{files}", &files.display().to_string())
            .replace("{mismatched}", regstore_bundled::test_components::MISMATCHED)
    };
    let mut args = Vec::new();
    for a in &case.args {
        match a.as_str() {
            "{fs}" => args.extend([
                "--driver".to_string(),
                "filesystem".into(),
                "--param".into(),
                fill("rootdirectory={root}"),
            ]),
            other => args.push(fill(other)),
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(&args)
        .envs(case.env.iter().map(|(k, v)| (k, fill(v))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    // A command that fails before reading its input closes the pipe; that is not our failure.
    let _ = stdin.write_all(&case.stdin);
    drop(stdin);
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = format!("regstore {args:?} exited with {:?}, stderr: {stderr:?}", out.status.code());
    match out.status.code() {
        None => return Err(format!("killed by a signal: {shown}").into()),
        Some(0) => return Err(format!("bad input accepted: {shown}").into()),
        Some(101) => return Err(format!("panicked: {shown}").into()),
        Some(_) => {}
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("panicked: {shown}").into());
    }
    let lines: Vec<&str> = stderr.lines().collect();
    if lines.len() != 1 || !lines[0].starts_with("error: ") || lines[0].len() <= "error: ".len() {
        return Err(format!("not one `error: ` line: {shown}").into());
    }
    if !out.stdout.is_empty() {
        return Err(format!("printed on stdout {:?}: {shown}", String::from_utf8_lossy(&out.stdout)).into());
    }
    if snapshot(root.path()) != before {
        return Err(format!("the root changed: {shown}").into());
    }
    Ok(())
}

fn main() {
    let files = tempfile::tempdir().expect("a temporary directory");
    write_bad_files(files.path()).expect("writing the bad files");
    let files_path = files.path().to_path_buf();
    let cases = cases();
    assert!(cases.len() >= 100, "at least 100 distinct bad inputs, not {}", cases.len());
    let trials = cases
        .into_iter()
        .map(|c| {
            let files = files_path.clone();
            Trial::test(format!("bad_input::{}", c.name), move || run_case(&c, &files))
        })
        .collect();
    let conclusion = libtest_mimic::run(&Arguments::from_args(), trials);
    drop(files);
    conclusion.exit();
}
