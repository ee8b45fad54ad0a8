//! `regstore drivers`: what is registered, and with `--describe`, what one driver declares and
//! what it would be granted.

use regstore::{Grants, Origin, Registry};

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
        let name = match (&args.driver, registered.as_slice()) {
            (Some(name), _) => name.clone(),
            (None, [one]) => one.clone(),
            _ => return Err(Failure::Message("--describe needs --driver NAME or one --component FILE".into())),
        };
        let params = args.params.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        return describe(registry, &name, &params, &args.grants.sandbox()).await;
    }
    let drivers = registry.drivers().await;
    if args.json {
        for info in &drivers {
            let (origin, source) = match &info.origin {
                Origin::Bundled => ("bundled", None),
                Origin::File(p) => ("file", Some(p.display().to_string())),
            };
            let (wit, error) = match &info.wit_version {
                Ok(v) => (Some(format!("registry:storage@{v}")), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let entry = serde_json::json!({ "name": info.name, "origin": origin, "source": source, "wit": wit, "error": error });
            println!("{entry}");
        }
        for (file, e) in &unloadable {
            let entry = serde_json::json!({ "name": null, "origin": "file", "source": file, "wit": null, "error": e.to_string() });
            println!("{entry}");
        }
        return unloadable_files(&unloadable);
    }
    println!("{:<16} {:<10} {:<24} SOURCE", "NAME", "ORIGIN", "WIT");
    for info in drivers {
        let (origin, source) = match &info.origin {
            Origin::Bundled => ("bundled", String::from("-")),
            Origin::File(p) => ("file", p.display().to_string()),
        };
        let wit = match &info.wit_version {
            Ok(v) => format!("registry:storage@{v}"),
            Err(e) => format!("unloadable: {e}"),
        };
        println!("{:<16} {:<10} {:<24} {source}", info.name, origin, wit);
    }
    for (file, e) in &unloadable {
        println!("{:<16} {:<10} {:<24} {file}", "-", "file", format!("unloadable: {e}"));
    }
    unloadable_files(&unloadable)
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
