//! The factory and the loader: unknown names, and files that are not driver components, fail
//! with an error naming the file and the reason, never a panic.

use std::path::Path;

use regstore::{Error, Params, Registry, StorageDriver};

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
        (export "registry:storage/driver@0.2.0" (instance $driver)))"#;
    let message = load_error(&wat::parse_str(wat).unwrap()).await;
    assert!(message.contains("registry:storage@0.2.0") && message.contains("registry:storage@0.1.0"), "{message}");
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
async fn a_missing_file() {
    let err = Registry::empty().register_file(None, Path::new("/nonexistent/driver.wasm")).await.unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/driver.wasm"), "{err}");
}

#[tokio::test]
async fn bundled_drivers_are_listed_with_their_contract_version() {
    let registry = Registry::new();
    let infos = registry.describe().await;
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
    let driver = registry.create("thirdparty", &Params::new()).await.unwrap();
    driver.put_content("/x", b"y").await.unwrap();
    assert_eq!(driver.get_content("/x").await.unwrap(), b"y");
    // Its own Name() is what errors carry.
    assert_eq!(driver.get_content("/nope").await.unwrap_err().to_string(), "inmemory: Path not found: /nope");
}
