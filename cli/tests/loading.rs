//! The factory and the loader: unknown names, and files that are not driver components, fail
//! with an error naming the file and the reason, never a panic.

use std::path::Path;

use regstore::{Error, Params, Registry, Sandbox, StorageDriver};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

async fn load_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.wasm", bytes);
    match Registry::empty().register_file(None, &file).await {
        Ok(name) => panic!("{name} loaded"),
        Err(e @ Error::Load { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&file.display().to_string()), "the error must name the file: {message}");
            assert!(!message.contains('\n'), "one line: {message}");
            message
        }
        Err(e) => panic!("expected a load error, got {e:?}"),
    }
}

#[tokio::test]
async fn unknown_driver_is_invalid_storage_driver() {
    let err = Registry::new().create("nosuch", &Params::new()).await.err().unwrap();
    assert_eq!(err, Error::InvalidStorageDriver("nosuch".into()));
    assert_eq!(err.to_string(), "StorageDriver not registered: nosuch");
}

#[tokio::test]
async fn random_bytes_are_not_webassembly() {
    let message = load_error(b"\x13\x37 this is not wasm at all").await;
    assert!(message.contains("not a WebAssembly file"), "{message}");
}

#[tokio::test]
async fn a_core_module_is_not_a_component() {
    let message = load_error(&wat::parse_str("(module)").unwrap()).await;
    assert!(message.contains("not a component"), "{message}");
}

#[tokio::test]
async fn a_truncated_component_fails_to_parse() {
    let mut bytes = wat::parse_str("(component (core module))").unwrap();
    bytes.truncate(bytes.len() - 3);
    load_error(&bytes).await;
}

#[tokio::test]
async fn a_component_without_the_driver_interface() {
    let message = load_error(&wat::parse_str("(component)").unwrap()).await;
    assert!(message.contains("does not export registry:storage/driver"), "{message}");
}

#[tokio::test]
async fn a_component_built_for_another_version() {
    let wat = r#"(component
        (instance $driver)
        (export "registry:storage/driver@0.3.0" (instance $driver)))"#;
    let message = load_error(&wat::parse_str(wat).unwrap()).await;
    for version in ["registry:storage@0.3.0", "registry:storage@0.2.0", "registry:storage@0.1.0"] {
        assert!(message.contains(version), "{version} missing: {message}");
    }
}

#[tokio::test]
async fn a_component_whose_exports_do_not_match_its_version() {
    // It claims 0.2.0, but its `file-writer.size` returns u32: refused at load, not at a call.
    let bytes = std::fs::read(regstore_bundled::test_components::MISMATCHED).unwrap();
    let message = load_error(&bytes).await;
    assert!(message.contains("registry:storage@0.2.0"), "the version it claims: {message}");
    assert!(message.contains("size"), "the function: {message}");
    assert!(message.contains("u64") && message.contains("u32"), "both types: {message}");
}

#[tokio::test]
async fn a_component_for_the_old_contract_loads_and_declares_nothing() {
    let registry = Registry::empty();
    let name = registry.register_file(Some("legacy"), Path::new(regstore_bundled::test_components::LEGACY_V0_1)).await;
    assert_eq!(name.unwrap(), "legacy");
    let info = registry.drivers().await.into_iter().find(|i| i.name == "legacy").unwrap();
    assert_eq!(info.wit_version.unwrap(), "0.1.0");
    let description = registry.describe("legacy", &Params::new()).await.unwrap();
    assert!(!description.declared);
    assert!(description.requirements.keeps_state, "an undeclared driver keeps its one instance");
    let driver = registry.create("legacy", &Params::new()).await.unwrap();
    driver.put_content("/x", b"y").await.unwrap();
    assert_eq!(driver.get_content("/x").await.unwrap(), b"y");
}

#[tokio::test]
async fn a_component_importing_what_drivers_may_not() {
    let wat = r#"(component
        (import "evil:host/backdoor" (instance (export "open" (func))))
        (instance $driver)
        (export "registry:storage/driver@0.1.0" (instance $driver)))"#;
    let message = load_error(&wat::parse_str(wat).unwrap()).await;
    assert!(message.contains("evil:host/backdoor"), "{message}");
}

#[tokio::test]
async fn a_component_importing_a_wasi_interface_outside_the_world() {
    let wat = r#"(component
        (import "wasi:http/incoming-handler@0.2.0" (instance))
        (instance $driver)
        (export "registry:storage/driver@0.2.0" (instance $driver)))"#;
    let message = load_error(&wat::parse_str(wat).unwrap()).await;
    assert!(
        message.contains("it imports wasi:http/incoming-handler@0.2.0, which is outside the storage-driver world"),
        "{message}"
    );
}

/// Language runtimes on wasi-libc import the sockets interfaces whatever they use; they link
/// (every socket operation is refused at run time), so only the exports are wrong here.
#[tokio::test]
async fn sockets_imports_link() {
    let wat = r#"(component
        (import "wasi:sockets/tcp@0.2.9" (instance))
        (instance $driver)
        (export "registry:storage/driver@0.2.0" (instance $driver)))"#;
    let message = load_error(&wat::parse_str(wat).unwrap()).await;
    assert!(!message.contains("sockets"), "{message}");
    assert!(message.contains("exports do not match"), "{message}");
}

#[tokio::test]
async fn a_missing_file() {
    let err = Registry::empty().register_file(None, Path::new("/nonexistent/driver.wasm")).await.unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/driver.wasm"), "{err}");
}

#[tokio::test]
async fn bundled_drivers_are_listed_with_their_contract_version() {
    let registry = Registry::new();
    let infos = registry.drivers().await;
    let inmemory = infos.iter().find(|i| i.name == "inmemory").expect("inmemory is bundled");
    assert_eq!(inmemory.wit_version.as_deref().ok(), Some(regstore::WIT_VERSION));
    assert_eq!(inmemory.origin, regstore::Origin::Bundled);
}

#[tokio::test]
async fn a_driver_file_registers_under_its_name() {
    // The bundled inmemory component, loaded from a file as a third party's would be.
    let dir = tempfile::tempdir().unwrap();
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/guest/wasm32-wasip2/release/regstore_driver_inmemory.wasm");
    let file = dir.path().join("regstore_driver_thirdparty.wasm");
    std::fs::copy(&wasm, &file).unwrap();
    let registry = Registry::empty();
    let name = registry.register_file(None, &file).await.unwrap();
    assert_eq!(name, "thirdparty");
    // As a third party's, its 4 GiB are not granted without the operator's word.
    let e = registry.create("thirdparty", &Params::new()).await.err().unwrap();
    assert_eq!(e.kind(), regstore::ErrorKind::NotGranted, "{e}");
    assert!(e.to_string().contains("--memory-limit 4096"), "{e}");
    let sandbox = Sandbox { memory_limit: Some(64 << 20), ..Sandbox::default() };
    let driver = registry.create_with("thirdparty", &Params::new(), sandbox).await.unwrap();
    driver.put_content("/x", b"y").await.unwrap();
    assert_eq!(driver.get_content("/x").await.unwrap(), b"y");
    // Its own Name() is what errors carry.
    assert_eq!(driver.get_content("/nope").await.unwrap_err().to_string(), "inmemory: Path not found: /nope");
}

/// `regstore wit --out DIR` writes the contract as the repository (and the SDK, which links it)
/// carries it: the same files, byte for byte. After a change to the WIT, regenerate the binary
/// packages with `regstore wit --out wit`.
#[test]
fn regstore_wit_writes_what_the_repository_carries() {
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_regstore"))
        .args(["wit", "--out"])
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let written = files(out.path());
    assert_eq!(written, files(&repo), "regstore wit and wit/ hold different files");
    for file in &written {
        let (ours, theirs) = (std::fs::read(out.path().join(file)).unwrap(), std::fs::read(repo.join(file)).unwrap());
        assert!(ours == theirs, "{file} differs from wit/{file}; run `regstore wit --out wit`");
    }
    assert!(written.iter().any(|f| f.ends_with(".wasm")), "{written:?}");
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}
