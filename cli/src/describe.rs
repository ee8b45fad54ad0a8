//! `regstore drivers`: what is registered, and with `--describe`, what one driver declares and
//! what it would be granted.

use regstore::{Grants, Origin, Params, Registry, Sandbox, StorageConfig};

use super::{DriversArgs, Failure};

pub async fn drivers(registry: &Registry, args: DriversArgs) -> Result<(), Failure> {
    // A file that cannot be loaded is listed with its reason; the others still are.
    let mut unloadable = Vec::new();
    let mut registered = Vec::new();
    for file in &args.components {
        match registry.register_file(None, file).await {
            Ok(name) => registered.push(name),
            Err(e) => unloadable.push((file.display().to_string(), e)),
        }
    }
    if args.describe {
        let (name, mut params, mut sandbox) = match (&args.config, &args.driver, registered.as_slice()) {
            (Some(file), ..) => {
                let config = StorageConfig::load(file)?;
                if let Some(component) = &config.component {
                    registry.register_file(Some(&config.driver), component).await?;
                }
                (config.driver, config.params, config.sandbox)
            }
            (None, Some(name), _) => (name.clone(), Params::new(), Sandbox::default()),
            (None, None, [one]) => (one.clone(), Params::new(), Sandbox::default()),
            _ => {
                let needs = "--describe needs --driver NAME, --config FILE or one --component FILE";
                return Err(Failure::Message(needs.into()));
            }
        };
        for (k, v) in &args.params {
            params.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        args.grants.add_to(&mut sandbox);
        return describe(registry, &name, &params, &sandbox).await;
    }
    let mut rows: Vec<Row> = registry.drivers().await.iter().map(Row::registered).collect();
    rows.extend(unloadable.iter().map(|(file, e)| Row {
        name: None,
        origin: "file",
        source: Some(file.clone()),
        wit: Err(e.to_string()),
    }));
    if args.json {
        rows.iter().for_each(|row| println!("{}", row.json()));
    } else {
        println!("{:<16} {:<10} {:<24} SOURCE", "NAME", "ORIGIN", "WIT");
        rows.iter().for_each(|row| println!("{}", row.text()));
    }
    unloadable_files(&unloadable)
}

/// One line of `regstore drivers`: a registered driver, or a file that could not be loaded.
struct Row {
    name: Option<String>,
    origin: &'static str,
    source: Option<String>,
    /// The contract version, or why the component cannot be used.
    wit: Result<String, String>,
}

impl Row {
    fn registered(info: &regstore::DriverInfo) -> Row {
        let (origin, source) = match &info.origin {
            Origin::Bundled => ("bundled", None),
            Origin::File(p) => ("file", Some(p.display().to_string())),
        };
        let wit = info.wit_version.as_ref().map(|v| format!("registry:storage@{v}")).map_err(|e| e.to_string());
        Row { name: Some(info.name.clone()), origin, source, wit }
    }

    fn json(&self) -> serde_json::Value {
        let (wit, error) = match &self.wit {
            Ok(wit) => (Some(wit), None),
            Err(e) => (None, Some(e)),
        };
        serde_json::json!({ "name": self.name, "origin": self.origin, "source": self.source, "wit": wit, "error": error })
    }

    fn text(&self) -> String {
        let wit = match &self.wit {
            Ok(wit) => wit.clone(),
            Err(e) => format!("unloadable: {e}"),
        };
        let (name, source) = (self.name.as_deref().unwrap_or("-"), self.source.as_deref().unwrap_or("-"));
        format!("{name:<16} {:<10} {wit:<24} {source}", self.origin)
    }
}

/// The listing went on past files that cannot be loaded; the command still fails, saying so.
fn unloadable_files(unloadable: &[(String, regstore::Error)]) -> Result<(), Failure> {
    match unloadable.len() {
        0 => Ok(()),
        1 => Err(Failure::Message(format!("{} cannot be loaded (listed above)", unloadable[0].0))),
        n => Err(Failure::Message(format!("{n} component files cannot be loaded (listed above)"))),
    }
}

async fn describe(
    registry: &Registry,
    name: &str,
    params: &regstore::Params,
    sandbox: &regstore::Sandbox,
) -> Result<(), Failure> {
    let plan = registry.plan(name, params, sandbox).await?;
    let (req, caps) = (&plan.description.requirements, &plan.description.capabilities);
    let list = |items: &[String]| if items.is_empty() { "-".to_string() } else { items.join(", ") };
    let known = |v: Option<bool>| v.map_or("undeclared".to_string(), |b| if b { "yes" } else { "no" }.to_string());
    println!("driver {name} ({})", if plan.trusted { "bundled: granted what it declares" } else { "third-party" });
    if !plan.description.declared {
        println!("  declares nothing (built for registry:storage@0.1.0): it gets only what is granted");
    }
    println!("needs");
    println!("  read-write directories  {}", list(&req.read_write_dirs));
    println!("  read-only directories   {}", list(&req.read_only_dirs));
    println!("  HTTP authorities        {}", list(&req.http_authorities));
    println!("  environment variables   {}", list(&req.env));
    println!("  keeps state in memory   {}", if req.keeps_state { "yes (one instance)" } else { "no (pooled)" });
    println!("  memory                  {} MiB", req.memory_bytes >> 20);
    println!("  time per call           {:?}", req.call_timeout);
    println!("  concurrent calls        {}", req.max_concurrent_calls.map_or("no limit".into(), |n| n.to_string()));
    println!("can");
    println!("  walk natively           {}", known(caps.native_walk));
    println!("  redirect methods        {}", caps.redirect_methods.as_deref().map_or("undeclared".into(), list));
    println!("  append to committed     {}", known(caps.appends_to_committed));
    println!("  largest object          {}", caps.max_object_size.map_or("no limit".into(), |n| format!("{n} bytes")));
    match &plan.grants {
        Ok(grants) => {
            println!("would be granted");
            println!("  {}", grants_line(grants));
            Ok(())
        }
        Err(e) => {
            println!("would not open: {e}");
            Err(Failure::Silent)
        }
    }
}

/// What a driver gets, on one line; environment variables by name only, never their values.
pub fn grants_line(grants: &Grants) -> String {
    let dirs: Vec<String> = grants
        .dirs
        .iter()
        .map(|d| {
            let mode = if d.writable { "rw" } else { "ro" };
            if d.host.to_str() == Some(d.guest.as_str()) {
                format!("{} ({mode})", d.guest)
            } else {
                format!("{} as {} ({mode})", d.host.display(), d.guest)
            }
        })
        .collect();
    let env: Vec<&str> = grants.env.iter().map(|(k, _)| k.as_str()).collect();
    let none = |v: String| if v.is_empty() { "-".to_string() } else { v };
    let cas: Vec<String> = grants.tls.ca_files().iter().map(|f| f.display().to_string()).collect();
    let trust = if cas.is_empty() { String::new() } else { format!(" (also trusting {})", cas.join(", ")) };
    format!(
        "directories {}; HTTP {}{trust}; environment {}; memory {} MiB; {:?} per call; {} instance(s){}",
        none(dirs.join(", ")),
        none(grants.hosts.join(", ")),
        none(env.join(", ")),
        grants.memory_limit >> 20,
        grants.call_deadline,
        grants.instances,
        grants.max_concurrent_calls.map_or(String::new(), |n| format!("; at most {n} calls at once"))
    )
}
