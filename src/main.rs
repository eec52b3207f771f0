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
    Serve {
        /// The configuration file; zones_dir and other paths in it are relative to it.
        #[arg(short, long, default_value = "meridian.yaml")]
        config: PathBuf,
        /// DNS address to serve on (UDP and TCP); repeat for several. Replaces dns.listen.
        /// Port 0 picks a free port, the same for UDP and TCP.
        #[arg(short, long, value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// Log format; overrides log.format.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
        /// Log level or filter (like `info` or `meridian=debug`); overrides log.level and RUST_LOG.
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Validate the configuration and every zone; print each problem as file:line:col: message.
    /// Exits 0 when all is well, 1 otherwise.
    Check {
        /// The configuration file.
        #[arg(short, long, default_value = "meridian.yaml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
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
        Command::Serve {
            config,
            listen,
            log_format,
            log_level,
        } => match serve(config, listen, log_format, log_level) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("meridian: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(
    path: PathBuf,
    listen: Vec<SocketAddr>,
    log_format: Option<LogFormatArg>,
    log_level: Option<String>,
) -> anyhow::Result<()> {
    let mut config =
        config::load(&path).map_err(|problems| anyhow::anyhow!("invalid configuration:\n{problems}"))?;
    if !listen.is_empty() {
        config.dns.listen = listen;
    }
    let format = match log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.log.format,
    };
    let filter = match log_level.or_else(|| std::env::var("RUST_LOG").ok()) {
        Some(l) => {
            tracing_subscriber::EnvFilter::try_new(&l).with_context(|| format!("bad log level `{l}`"))?
        }
        None => tracing_subscriber::EnvFilter::new(&config.log.level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("meridian")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(meridian::app::serve(config))?;
    Ok(())
}
