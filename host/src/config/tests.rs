use super::*;
use serde_json::json;

/// distribution's documented configuration example, with its elided values filled in.
const DOCUMENTED_EXAMPLE: &str = "\
storage:
  s3:
    accesskey: awsaccesskey
    secretkey: awssecretkey
    region: us-west-1
    regionendpoint: http://myobjects.local
    forcepathstyle: true
    accelerate: false
    bucket: bucketname
    encrypt: true
    keyid: mykeyid
    secure: true
    v4auth: true
    chunksize: 5242880
    multipartcopychunksize: 33554432
    multipartcopymaxconcurrency: 100
    multipartcopythresholdsize: 33554432
    rootdirectory: /s3/object/name/prefix
    usefipsendpoint: false
    loglevel: debug
  delete:
    enabled: false
  cache:
    blobdescriptor: inmemory
    blobdescriptorsize: 10000
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
    readonly:
      enabled: false
  redirect:
    disable: false
middleware:
  storage:
    - name: cloudfront
      options:
        baseurl: https://my.cloudfronted.domain.com/
        privatekey: /path/to/pem
        keypairid: cloudfrontkeypairid
        duration: 3000s
        ipfilteredby: awsregion
        awsregion: \"us-east-1, use-east-2\"
        updatefrequency: 12h
        iprangesurl: https://ip-ranges.amazonaws.com/ip-ranges.json
";

fn parse(text: &str, env: &[(&str, &str)]) -> Result<StorageConfig, Error> {
    StorageConfig::parse(text, "config.yml", env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn message(text: &str, env: &[(&str, &str)]) -> String {
    let e = parse(text, env).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
    e.to_string()
}

#[test]
fn the_documented_example_gives_s3_with_typed_parameters() {
    let config = parse(DOCUMENTED_EXAMPLE, &[]).unwrap();
    assert_eq!(config.driver, "s3");
    let p = &config.params;
    assert_eq!(p.len(), 18, "reserved keys are not parameters: {p:?}");
    assert_eq!((&p["bucket"], &p["secure"], &p["chunksize"]), (&json!("bucketname"), &json!(true), &json!(5242880)));
    assert_eq!(p["rootdirectory"], "/s3/object/name/prefix");
    assert!(config.component.is_none() && config.warnings.is_empty());
}

#[test]
fn environment_overrides_follow_distribution() {
    let env = [
        ("REGISTRY_STORAGE_S3_BUCKET", "other"),
        ("REGISTRY_STORAGE_S3_CHUNKSIZE", "10485760"),
        ("REGISTRY_STORAGE_S3_NEWKEY", "yes"),
        ("REGISTRY_HTTP_ADDR", ":5000"),
        ("HOME", "/root"),
    ];
    let config = parse(DOCUMENTED_EXAMPLE, &env).unwrap();
    let p = &config.params;
    assert_eq!((&p["bucket"], &p["chunksize"], &p["newkey"]), (&json!("other"), &json!(10485760), &json!(true)));
    assert_eq!(p["region"], "us-west-1", "what is not overridden stays");

    // REGISTRY_STORAGE switches the driver; it sorts before the variables that set its keys.
    let env = [("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/tmp/root"), ("REGISTRY_STORAGE", "filesystem")];
    let config = parse(DOCUMENTED_EXAMPLE, &env).unwrap();
    assert_eq!(config.driver, "filesystem");
    assert_eq!(config.params, json!({"rootdirectory": "/tmp/root"}).as_object().unwrap().clone());

    // A variable for another driver adds a second driver key: refused, as distribution refuses it.
    let e = message(DOCUMENTED_EXAMPLE, &[("REGISTRY_STORAGE_AZURE_ACCOUNTNAME", "a")]);
    assert!(e.contains("multiple storage drivers specified in configuration or environment: "), "{e}");
    assert!(e.starts_with("config.yml: ") && e.contains("azure") && e.contains("s3"), "{e}");

    // Only the environment: a configuration with no storage section.
    let config = parse("version: 0.1\n", &[("REGISTRY_STORAGE", "inmemory")]).unwrap();
    assert_eq!((config.driver.as_str(), config.params.len()), ("inmemory", 0));
}

#[test]
fn nested_maps_stay_maps_and_overrides_reach_into_them() {
    let text =
        "storage:\n  gcs:\n    bucket: b\n    credentials:\n      type: service_account\n      client_email: a@b\n";
    let config = parse(text, &[("REGISTRY_STORAGE_GCS_CREDENTIALS_PRIVATE", "k")]).unwrap();
    assert_eq!(config.params["credentials"], json!({"type": "service_account", "client_email": "a@b", "private": "k"}));
    // A value in the way that is not a map: ignored with a warning, as distribution does.
    let config = parse(text, &[("REGISTRY_STORAGE_GCS_BUCKET_X", "1")]).unwrap();
    assert_eq!(config.params["bucket"], "b");
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("REGISTRY_STORAGE_GCS_BUCKET_X"), "{:?}", config.warnings);
}

#[test]
fn bare_names_and_empty_drivers() {
    let config = parse("storage: inmemory\n", &[]).unwrap();
    assert_eq!((config.driver.as_str(), config.params.len()), ("inmemory", 0));
    let config = parse("storage:\n  filesystem:\n  delete:\n    enabled: true\n", &[]).unwrap();
    assert_eq!((config.driver.as_str(), config.params.len()), ("filesystem", 0));
}

#[test]
fn bad_configurations_name_the_key_and_the_reason() {
    let cases: &[(&str, &str)] = &[
        ("", "no storage configuration provided"),
        ("storage:\n  delete:\n    enabled: true\n", "no storage configuration provided"),
        ("storage:\n  s3: {}\n  azure: {}\n", "must provide exactly one storage type. Provided: ["),
        ("storage: [s3]\n", "storage: expected a driver's name or a mapping, found a list"),
        ("storage:\n  s3: 5\n", "storage.s3: expected a mapping of parameters, found a number"),
        ("version: 0.2\nstorage: inmemory\n", "version: unsupported version: \"0.2\""),
        ("- a\n- b\n", "expected a mapping at the top, found a list"),
        ("storage:\n  s3: [\n", "not valid YAML"),
        ("storage: inmemory\nregstore: 5\n", "regstore: expected a mapping, found a number"),
        ("storage: inmemory\nregstore:\n  components: x\n", "regstore.components: unknown key"),
        ("storage: inmemory\nregstore:\n  component: [a]\n", "regstore.component: expected a string, found a list"),
        (
            "storage: inmemory\nregstore:\n  sandbox:\n    allow-hosts: [a]\n",
            "regstore.sandbox.allow-hosts: unknown key",
        ),
        (
            "storage: inmemory\nregstore:\n  sandbox:\n    memory-limit: 0\n",
            "regstore.sandbox.memory-limit: expected an integer from 1 to 4096",
        ),
        (
            "storage: inmemory\nregstore:\n  sandbox:\n    deadline: inf\n",
            "regstore.sandbox.deadline: expected seconds",
        ),
        (
            "storage: inmemory\nregstore:\n  sandbox:\n    grant-requested: maybe\n",
            "regstore.sandbox.grant-requested: expected true or false",
        ),
    ];
    for (text, wanted) in cases {
        let e = message(text, &[]);
        assert!(e.starts_with("config.yml: ") && e.contains(wanted), "{text:?}: {e}");
    }
    let e = message("storage: inmemory\n", &[("REGISTRY_STORAGE", "[unclosed")]);
    assert!(e.contains("parsing environment variable REGISTRY_STORAGE: "), "{e}");
}

#[test]
fn regstore_section_names_the_component_and_its_grants() {
    let text = "\
version: 0.1
storage:
  mydriver:
    endpoint: https://objects.example:9000
regstore:
  component: /opt/regstore/mydriver.wasm
  sandbox:
    allow-host: objects.example:9000
    allow-dir: [/var/lib/a, /var/lib/b]
    allow-env: [TOKEN]
    memory-limit: 512
    deadline: 2.5
    instances: 4
    grant-requested: no
";
    let config = parse(text, &[]).unwrap();
    assert_eq!(config.driver, "mydriver");
    assert_eq!(config.component.as_deref(), Some(Path::new("/opt/regstore/mydriver.wasm")));
    let s = &config.sandbox;
    assert_eq!(s.hosts, ["objects.example:9000"]);
    assert_eq!(s.dirs, [PathBuf::from("/var/lib/a"), PathBuf::from("/var/lib/b")]);
    assert_eq!(s.env_names, ["TOKEN"]);
    assert_eq!((s.memory_limit, s.instances, s.grant_requested), (Some(512 << 20), Some(4), false));
    assert_eq!(s.call_deadline, Some(Duration::from_millis(2500)));
}
