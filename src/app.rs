//! Wiring: binds listeners, starts the workers, reloads on SIGHUP, stops on SIGTERM/SIGINT.

use crate::config::{CommandLine, Config};
use crate::control::Control;
use crate::dns::socket::{self, Proto};
use crate::dns::{tcp, udp};
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Said once, whole: the address, which socket, the system's reason and what to do.
    #[error("cannot bind {what} on {addr}: {error}; {}", socket::bind_hint(*addr, error, option))]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        error: std::io::Error,
        option: &'static str,
    },
    #[error("cannot set up {what}: {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start: {0}")]
    Control(#[from] crate::control::SetupError),
}

/// Where a ready server listens, as `serve --ready-file` writes it: one JSON object,
/// `{"dns": ["127.0.0.1:5353", …], "admin": "127.0.0.1:8053"}` (`admin` is null when the admin
/// API is off). The actual addresses: port 0 in the configuration shows as the port it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    pub dns: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
}

impl Listening {
    pub fn to_json(&self) -> String {
        let text = |a: &SocketAddr| a.to_string();
        serde_json::json!({
            "dns": self.dns.iter().map(text).collect::<Vec<_>>(),
            "admin": self.admin.as_ref().map(text),
        })
        .to_string()
            + "\n"
    }
}

/// After the grace period, how long connections get to notice they are cut before their
/// tasks are aborted outright.
const ABORT_WAIT: Duration = Duration::from_millis(500);

/// Serves `config` until SIGTERM or SIGINT. SIGHUP re-reads the file at `config.path`.
/// Stopping takes at most `dns.shutdown_grace` (plus a moment to close what is left): UDP
/// stops and listeners close at once, open TCP connections and admin requests get the grace
/// period to finish, then they are cut.
/// `log_reload` applies a changed `log.level` at reload (`None` when the level was fixed on the
/// command line). `ready_file`, when given, is written once the server is ready (`Listening`)
/// and removed when it stops.
pub async fn serve(
    config: Config,
    command_line: CommandLine,
    log_reload: Option<crate::control::LogReload>,
    ready_file: Option<PathBuf>,
) -> Result<(), AppError> {
    // Signals first: until a handler is installed, SIGHUP and SIGTERM kill the process outright.
    // One that arrives while the server starts (the first round of probes can take seconds)
    // waits here and is handled once it serves.
    let setup = |source| AppError::Setup {
        what: "signal handler",
        source,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(setup)?;
    let mut term = signal(SignalKind::terminate()).map_err(setup)?;
    let mut int = signal(SignalKind::interrupt()).map_err(setup)?;
    match socket::raise_open_files_limit() {
        Ok((limit, before)) if limit != before => {
            tracing::info!(limit, before, "open files limit raised to the hard limit")
        }
        Ok((limit, _)) => tracing::info!(limit, "open files limit (already the hard limit)"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let stop_udp = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let ctl = Control::with_command_line(config, command_line, &stop)?;
    // The settings as running, without the records: those live in the snapshot alone (a copy
    // kept here held every record twice).
    let config = ctl.settings();
    if let Some(r) = log_reload {
        ctl.set_log_reload(r);
    }
    // Bind every address before anything else, so a bad one fails the start at once.
    let mut bound = Vec::with_capacity(config.dns.listen.len());
    // One UDP socket per worker (SO_REUSEPORT), or one that they share.
    let sockets = if config.dns.udp_reuseport {
        config.dns.udp_workers.get()
    } else {
        1
    };
    for &addr in &config.dns.listen {
        bound.push(
            socket::bind(addr, sockets).map_err(|(proto, error)| AppError::Bind {
                addr,
                what: match proto {
                    Proto::Udp => "DNS over UDP",
                    Proto::Tcp => "DNS over TCP",
                },
                error,
                option: "--listen",
            })?,
        );
    }
    let admin_listener = match config.admin.listen {
        None => None,
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|error| AppError::Bind {
                    addr,
                    what: "the admin API",
                    error,
                    option: "--admin-listen",
                })?,
        ),
    };
    // The first answers must already reflect health: wait for one round of probes. A stop asked
    // for meanwhile is a stop: nothing serves yet, so there is nothing to drain.
    let (store, scheduler) = (ctl.store(), ctl.scheduler());
    let mut tasks = tokio::task::JoinSet::new();
    // In cluster mode: the shared state is followed from the start (the first state to serve
    // comes from it), and the health views are shared from the first probe on.
    tasks.spawn(ctl.clone().follow_cluster(stop.clone()));
    tasks.spawn(ctl.clone().exchange_health(stop.clone()));
    tokio::select! {
        _ = ctl.start(config.health.startup_wait) => {}
        _ = term.recv() => return stopped_while_starting(&scheduler).await,
        _ = int.recv() => return stopped_while_starting(&scheduler).await,
    }

    let mut udp_threads = Vec::new();
    let limits = tcp::TcpLimits {
        idle_timeout: config.dns.tcp_idle_timeout,
        max_connections: config.dns.tcp_max_connections.get(),
    };
    let mut listening = Listening {
        dns: Vec::with_capacity(bound.len()),
        admin: None,
    };
    for bound in bound {
        listening.dns.push(bound.addr);
        bound
            .tcp
            .set_nonblocking(true)
            .map_err(|source| AppError::Setup {
                what: "tcp listener",
                source,
            })?;
        let listener = tokio::net::TcpListener::from_std(bound.tcp).map_err(|source| AppError::Setup {
            what: "tcp listener",
            source,
        })?;
        udp_threads.extend(
            udp::spawn(
                bound.udp,
                bound.pktinfo,
                config.dns.udp_workers.get(),
                store.clone(),
                stop_udp.clone(),
            )
            .map_err(|source| AppError::Setup {
                what: "udp workers",
                source,
            })?,
        );
        let tcp_stop = tcp::Stop {
            stop: stop.clone(),
            abort: abort.clone(),
        };
        tasks.spawn(tcp::serve(listener, store.clone(), limits, tcp_stop));
        tracing::info!(addr = %bound.addr, "serving DNS on UDP and TCP");
    }
    if let Some(listener) = admin_listener {
        let local = listener.local_addr().map_err(|source| AppError::Setup {
            what: "admin listener",
            source,
        })?;
        listening.admin = Some(local);
        let (ctl, stop) = (ctl.clone(), stop.clone());
        tasks.spawn(async move {
            if let Err(e) = crate::admin::serve(listener, ctl, stop).await {
                tracing::error!(error = %e, "admin API stopped");
            }
        });
        if config.admin.tokens.is_empty() {
            tracing::warn!(admin = %local, "admin API listening without tokens: reads are open, writes are refused");
        } else {
            tracing::info!(admin = %local, tokens = config.admin.tokens.len(), "admin API listening");
        }
    }
    // Always watched: a reload may configure a GeoIP database the start had none of.
    tasks.spawn(ctl.clone().watch_geoip(config.geoip_check_interval, stop.clone()));
    tasks.spawn(ctl.clone().release_memory_after_changes(stop.clone()));
    ctl.set_ready(true);
    if let Some(path) = &ready_file {
        crate::files::write_atomic(path, listening.to_json().as_bytes()).map_err(|source| {
            AppError::Setup {
                what: "the ready file (--ready-file)",
                source,
            }
        })?;
    }
    tracing::info!(zones = ctl.snapshot().zones.len(), config = %config.path.display(), "ready");

    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = ctl.reload().await; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let grace = config.dns.shutdown_grace;
    tracing::info!(grace = ?grace, "stopping");
    let stopping = tokio::time::Instant::now();
    ctl.set_ready(false);
    if let Some(path) = &ready_file
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the ready file");
    }
    stop.cancel();
    stop_udp.store(true, Ordering::Relaxed);
    let drain = async {
        while tasks.join_next().await.is_some() {}
        scheduler.shutdown().await;
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(grace = ?grace, "grace period over: closing the connections still open");
        abort.cancel();
        let cut = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(ABORT_WAIT, cut).await.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
    tokio::task::spawn_blocking(move || udp_threads.into_iter().for_each(|t| _ = t.join()))
        .await
        .ok();
    tracing::info!(took = ?stopping.elapsed(), "stopped");
    Ok(())
}

/// A SIGTERM or SIGINT before the server was ready: the probes stop and the process exits
/// cleanly.
async fn stopped_while_starting(scheduler: &crate::health::scheduler::Scheduler) -> Result<(), AppError> {
    tracing::info!("stopped before ready");
    scheduler.shutdown().await;
    Ok(())
}
