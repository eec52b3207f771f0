use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use meridian::config::{self, LogFormat};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Meridian: an authoritative DNS server that balances traffic across data centers.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS. SIGHUP reloads config and zones; SIGTERM or SIGINT stops.
    Serve(ServeArgs),
    /// Show the answer a client would get for a name, and every step of the decision.
    Explain {
        /// The name asked, like www.gslb.example.com.
        name: String,
        /// The record type.
        #[arg(default_value = "A")]
        qtype: String,
        /// The client: an address, or a subnet as an EDNS Client Subnet would carry it.
        #[arg(long, value_name = "IP[/PREFIX]")]
        client: String,
        /// The configuration file.
        #[arg(short, long, default_value = "meridian.yaml")]
        config: PathBuf,
        /// Do not probe the endpoints first (health then comes from the configuration and the
        /// overrides persisted in state_dir alone; in cluster mode, those of its cache).
        #[arg(long)]
        no_probe: bool,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
    /// Validate the configuration and every zone; print each problem as file:line:col: message.
    /// Exits 0 when all is well, 1 otherwise.
    Check {
        /// The configuration file.
        #[arg(short, long, default_value = "meridian.yaml")]
        config: PathBuf,
    },
    /// The admin API's client: status, data centers, drain/undrain/override/weight, explain,
    /// events, reload, zone get/put. The address comes from --admin or the configuration's
    /// admin.listen; the token from --token-file or the MERIDIAN_TOKEN environment variable.
    Ctl(meridian::ctl::CtlArgs),
    /// Cluster mode: send the checks, data centers and zones to etcd, or write the cluster's
    /// state as files.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Send a configuration's checks, data centers and zones to the cluster.
    ///
    /// They are validated as a whole first (problems printed as file:line:col: message, nothing sent);
    /// the keys whose text differs are written in one transaction, which writes nothing if
    /// anyone changed the cluster since it was read; zones no longer present are deleted;
    /// overrides are left alone. A zone is sent as its file's text, so a zone with `import:`
    /// is refused: in cluster mode a zone is one self-contained document, and an imported
    /// master file is a file of one node.
    Push {
        /// The configuration whose `cluster:` section names the etcd members and prefix.
        #[arg(short, long, default_value = "meridian.yaml")]
        config: PathBuf,
        /// The configuration whose `checks:`, `datacenters:` and zones to send (default: the
        /// --config file itself), like the meridian.yaml `meridian cluster pull` writes.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Print what would change (data centers, checks, names and records) and write
        /// nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the cluster's state as files (a configuration of its own, with its zones and
    /// overrides).
    ///
    /// The files are what a server runs from without a cluster, and what `meridian check`
    /// validates: DIR/meridian.yaml (the checks and data centers, the zones
    /// directory, and this node's geoip database), DIR/zones/<zone>.yaml, and the overrides in
    /// DIR/state/overrides.json. Send it back with `push --from DIR/meridian.yaml`.
    Pull {
        /// The configuration whose `cluster:` section names the etcd members and prefix.
        #[arg(short, long, default_value = "meridian.yaml")]
        config: PathBuf,
        /// The directory to write: absent or empty.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The options of `meridian serve`.
#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file; zones_dir and other paths in it are relative to it.
    #[arg(short, long, default_value = "meridian.yaml")]
    config: PathBuf,
    /// DNS address to serve on (UDP and TCP); repeat for several. Replaces dns.listen.
    /// Port 0 picks a free port, the same for UDP and TCP.
    #[arg(short, long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Admin API address (`off` to disable); overrides admin.listen. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT|off")]
    admin_listen: Option<String>,
    /// Log format; overrides log.format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Log level or filter (like `info` or `meridian=debug`); overrides log.level and RUST_LOG.
    #[arg(long)]
    log_level: Option<String>,
    /// Once ready, write the addresses actually bound to this file (JSON:
    /// {"dns": ["ADDR:PORT", ...], "admin": "ADDR:PORT" or null}); removed at stop. For
    /// scripts and tests that listen on port 0.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum GeoipCommand {
    /// Build a MaxMind DB from CSV rows (header: network,continent,country,subdivision,latitude,longitude,city,
    /// asn,as_org; only network is required).
    Build {
        /// The CSV file.
        #[arg(long)]
        csv: PathBuf,
        /// The database to write (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// Record layout: MaxMind GeoIP2 City (also read for DB-IP), or ip-location-db's flat one.
        #[arg(long, value_enum, default_value = "maxmind")]
        schema: SchemaArg,
    },
    /// Print what a database says of an address: its network, continent, country, subdivision,
    /// coordinates and autonomous system (what the database has of them).
    Lookup {
        /// The database.
        #[arg(long)]
        db: PathBuf,
        /// The address.
        address: std::net::IpAddr,
        /// Print JSON: address, network, continent, country, subdivision, latitude, longitude,
        /// asn, as_org (null when the database has none).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaArg {
    Maxmind,
    Flat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    meridian::memory::configure();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(c) => {
                let records: usize = c
                    .zones
                    .iter()
                    .flat_map(|z| &z.nodes)
                    .flat_map(|n| &n.rrsets)
                    .map(|s| s.rdatas.len())
                    .sum();
                println!(
                    "{}: ok ({} zones, {} records)",
                    config.display(),
                    c.zones.len(),
                    records
                );
                if c.cluster.is_some() {
                    println!(
                        "cluster mode: the data centers, checks and zones checked are this node's cache of the \
                         cluster ({}); to check files before they are sent, run `meridian cluster push --dry-run`",
                        config::cluster::cache_dir(&c.state_dir).display()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for p in &problems.0 {
                    println!("{p}");
                }
                eprintln!("{} problem(s) found", problems.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Explain {
            name,
            qtype,
            client,
            config,
            no_probe,
        } => run(explain(&config, &name, &qtype, &client, !no_probe)),
        Command::Geoip { command } => run(geoip(command)),
        Command::Cluster { command } => cluster(command),
        Command::Serve(args) => run(serve(args)),
        Command::Ctl(args) => meridian::ctl::run(args),
    }
}

fn run(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `meridian cluster push` and `pull`. Problems in the configuration are printed one a line,
/// as `meridian check` prints them.
fn cluster(command: ClusterCommand) -> ExitCode {
    use meridian::cluster::files::{self, FilesError, PushRequest};
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return run(Err(anyhow::anyhow!("cannot start the async runtime: {e}"))),
    };
    let done = match command {
        ClusterCommand::Push {
            config,
            from,
            dry_run,
        } => {
            let request = PushRequest {
                from: from.as_deref().unwrap_or(&config),
                config: &config,
                dry_run,
                user: &user(),
            };
            runtime.block_on(files::push(&request)).map(|p| p.to_string())
        }
        ClusterCommand::Pull { config, out } => runtime
            .block_on(files::pull(&config, &out))
            .map(|p| p.to_string()),
    };
    match done {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(FilesError::Invalid(problems)) => {
            for p in &problems.0 {
                println!("{p}");
            }
            eprintln!("{} problem(s) found; nothing was written", problems.0.len());
            ExitCode::FAILURE
        }
        Err(e) => run(Err(e.into())),
    }
}

/// Who runs this command, for the cluster's audit record: `$USER`, else the user id.
fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            // SAFETY: getuid(2) takes nothing and cannot fail.
            let uid = unsafe { libc::getuid() };
            format!("uid {uid}")
        })
}

fn explain(path: &std::path::Path, name: &str, qtype: &str, client: &str, probe: bool) -> anyhow::Result<()> {
    let config =
        config::load(path).map_err(|problems| anyhow::anyhow!("invalid configuration:\n{problems}"))?;
    let req = meridian::explain::Request::parse(name, qtype, client)?;
    let probes = if probe { probe_once(&config)? } else { Vec::new() };
    // Overrides a running server persisted (drains, forced states, weights) apply here too.
    let overrides = meridian::overrides::Overrides::load(Some(config.overrides_dir()))?;
    let health = std::sync::Arc::new(meridian::health::HealthView::new(
        probes,
        &overrides,
        &config.datacenters,
    ));
    let snap = meridian::state::Snapshot::new(config, health, 1);
    print!(
        "{}",
        meridian::explain::run(&req, &snap, meridian::rng::Entropy::new().draw(), None)
    );
    Ok(())
}

/// Runs one round of every health check, as the server does before it answers.
fn probe_once(
    config: &config::Config,
) -> anyhow::Result<Vec<Option<std::sync::Arc<meridian::health::ProbeState>>>> {
    use meridian::health::scheduler::{Scheduler, Settings};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("async runtime")?;
    rt.block_on(async {
        let events = std::sync::Arc::new(meridian::events::Events::new(16));
        let settings = Settings {
            max_concurrent: config.health.max_concurrent.get(),
            partition_guard: false,
        };
        let scheduler = Scheduler::new(
            settings,
            events,
            Default::default(),
            tokio_util::sync::CancellationToken::new(),
        );
        let view = scheduler.sync(&config.datacenters);
        let wait = config.first_round_bound(scheduler.probe_count());
        scheduler.first_round(wait).await;
        scheduler.shutdown().await;
        Ok(view)
    })
}

fn geoip(command: GeoipCommand) -> anyhow::Result<()> {
    use meridian::geo::build::{Schema, build_file};
    match command {
        GeoipCommand::Build { csv, out, schema } => {
            let schema = match schema {
                SchemaArg::Maxmind => Schema::MaxMind,
                SchemaArg::Flat => Schema::Flat,
            };
            let n = build_file(&csv, &out, schema)?;
            println!("{}: {n} networks", out.display());
        }
        GeoipCommand::Lookup { db, address, json } => {
            let db = meridian::geo::GeoDb::open(&db)?;
            print!("{}", lookup_report(&db, address, json));
        }
    }
    Ok(())
}

/// What `meridian geoip lookup` prints: lines to read, or JSON.
fn lookup_report(db: &meridian::geo::GeoDb, address: std::net::IpAddr, json: bool) -> String {
    let found = db.lookup(address);
    let network = found
        .location
        .map(|_| format!("{}/{}", meridian::geo::mask(address, found.prefix), found.prefix));
    let loc = found.location.cloned().unwrap_or_default();
    let asn = db.asn(address);
    if json {
        let v = serde_json::json!({
            "address": address.to_string(),
            "network": network,
            "continent": loc.continent.as_deref(),
            "country": loc.country.as_deref(),
            "subdivision": loc.subdivision.as_deref(),
            "latitude": loc.coords.map(|c| c.0),
            "longitude": loc.coords.map(|c| c.1),
            "asn": asn.as_ref().map(|a| a.number),
            "as_org": asn.as_ref().and_then(|a| a.organization.as_deref()),
        });
        return format!("{v:#}\n");
    }
    let Some(network) = network else {
        return format!(
            "{address}: not in {} (a client there matches network rules and the default only)\n",
            db.path.display()
        );
    };
    let mut out = format!("{address}: in {network}\n");
    let mut line = |k: &str, v: Option<String>| {
        out.push_str(&format!("  {k:<12}{}\n", v.as_deref().unwrap_or("-")));
    };
    line("continent", loc.continent.as_deref().map(String::from));
    line("country", loc.country.as_deref().map(String::from));
    line("subdivision", loc.subdivision.as_deref().map(String::from));
    line(
        "location",
        loc.coords
            .map(|(lat, lon)| format!("{lat}, {lon} (latitude, longitude)")),
    );
    line(
        "asn",
        asn.map(|a| match a.organization {
            Some(o) => format!("AS{} {o}", a.number),
            None => format!("AS{}", a.number),
        }),
    );
    out
}

fn serve(
    ServeArgs {
        config: path,
        listen,
        admin_listen,
        log_format,
        log_level,
        ready_file,
    }: ServeArgs,
) -> anyhow::Result<()> {
    let mut config =
        config::load(&path).map_err(|problems| anyhow::anyhow!("invalid configuration:\n{problems}"))?;
    let mut command_line = config::CommandLine::default();
    if !listen.is_empty() {
        if let Some((_, problem)) = config::listen_problems(&listen).into_iter().next() {
            anyhow::bail!("--listen: {problem}");
        }
        command_line.listen = Some(listen);
    }
    command_line.admin_listen = match admin_listen.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(a) => {
            Some(Some(a.parse().with_context(|| {
                format!("--admin-listen: `{a}` is not ADDR:PORT or off")
            })?))
        }
    };
    command_line.log_format = log_format.map(|f| match f {
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    });
    command_line.apply(&mut config);
    // The level from --log-level or RUST_LOG is fixed; the configured one follows reloads.
    let fixed = log_level.or_else(|| std::env::var("RUST_LOG").ok());
    let filter = match &fixed {
        Some(l) => log_filter(l).map_err(|e| anyhow::anyhow!("bad log level `{l}`: {e}"))?,
        None => tracing_subscriber::EnvFilter::new(&config.log.level),
    };
    let reload = init_logging(config.log.format, filter);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("meridian")
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(meridian::app::serve(
        config,
        command_line,
        fixed.is_none().then_some(reload),
        ready_file,
    ));
    // Tasks still running (connections cut at the end of the grace period) are dropped here;
    // blocking work still under way does not hold the exit for more than a moment.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    served?;
    Ok(())
}

/// A log filter from a level or filter directive (like `info` or `meridian=debug`).
fn log_filter(level: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())
}

/// Installs the process's subscriber (to stderr, colours only on a terminal) and returns the
/// way to change its filter, as a reload of `log.level` does.
fn init_logging(format: LogFormat, filter: tracing_subscriber::EnvFilter) -> meridian::control::LogReload {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // The two formats are two subscriber types, hence two handle types: one `reloader` each.
    match format {
        LogFormat::Json => {
            let b = builder.json().with_filter_reloading();
            let handle = b.reload_handle();
            b.init();
            reloader(handle)
        }
        LogFormat::Text => {
            let b = builder.with_filter_reloading();
            let handle = b.reload_handle();
            b.init();
            reloader(handle)
        }
    }
}

fn reloader<S: tracing::Subscriber>(
    handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
) -> meridian::control::LogReload {
    use meridian::control::LogLevelError;
    std::sync::Arc::new(move |level: &str| {
        let filter = log_filter(level).map_err(|reason| LogLevelError::Invalid {
            level: level.to_string(),
            reason,
        })?;
        handle
            .reload(filter)
            .map_err(|e| LogLevelError::Reload(e.to_string()))
    })
}
