//! Wiring: binds listeners, starts the workers, reloads on SIGHUP, stops on SIGTERM/SIGINT.

use crate::config::{self, Config};
use crate::dns::{tcp, udp};
use crate::events::Events;
use crate::health::scheduler::{Scheduler, Settings};
use crate::state::Store;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up {what}: {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
}

/// A UDP socket and a TCP listener on the same address.
struct Bound {
    addr: SocketAddr,
    udp: UdpSocket,
    tcp: StdTcpListener,
}

/// Receive buffer asked for each UDP socket: room for bursts while a worker is busy. The kernel
/// caps it at net.core.rmem_max.
const UDP_RECV_BUFFER: usize = 4 << 20;

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer only means drops under heavier bursts.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Binds UDP and TCP on `addr`. With port 0, UDP picks the port and TCP takes the same one.
fn bind(addr: SocketAddr) -> Result<Bound, AppError> {
    let bind_err = |source| AppError::Bind { addr, source };
    for _ in 0..16 {
        let udp = bind_udp(addr).map_err(bind_err)?;
        let local = udp.local_addr().map_err(bind_err)?;
        match StdTcpListener::bind(local) {
            Ok(tcp) => {
                return Ok(Bound {
                    addr: local,
                    udp,
                    tcp,
                });
            }
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(bind_err(e)),
        }
    }
    Err(bind_err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no port free for both UDP and TCP",
    )))
}

/// Serves `config` until SIGTERM or SIGINT. SIGHUP re-reads the file at `config.path`.
pub async fn serve(config: Config) -> Result<(), AppError> {
    let stop_udp = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let events = Arc::new(Events::default());
    let scheduler = Scheduler::new(
        Settings {
            max_concurrent: config.health.max_concurrent.get(),
            partition_guard: config.health.partition_guard,
        },
        events.clone(),
        stop.child_token(),
    );
    let health = scheduler.sync(&config.datacenters);
    if scheduler.probe_count() > 0 {
        // The first answers must already reflect health: wait for one round of probes.
        let wait = config
            .health
            .startup_wait
            .unwrap_or_else(|| longest_timeout(&config) + Duration::from_millis(100));
        let started = std::time::Instant::now();
        scheduler.first_round(wait).await;
        tracing::info!(probes = scheduler.probe_count(), took = ?started.elapsed(), "first round of health checks done");
    }
    let store = Arc::new(Store::new(config.clone(), health));
    let mut udp_threads = Vec::new();
    let mut tcp_tasks = tokio::task::JoinSet::new();
    let limits = tcp::TcpLimits {
        idle_timeout: config.dns.tcp_idle_timeout,
        max_connections: config.dns.tcp_max_connections.get(),
    };
    for &addr in &config.dns.listen {
        let bound = bind(addr)?;
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
                config.dns.udp_workers.get(),
                store.clone(),
                stop_udp.clone(),
            )
            .map_err(|source| AppError::Setup {
                what: "udp workers",
                source,
            })?,
        );
        tcp_tasks.spawn(tcp::serve(listener, store.clone(), limits, stop.clone()));
        tracing::info!(addr = %bound.addr, "serving DNS on UDP and TCP");
    }
    let mut background = tokio::task::JoinSet::new();
    if config.geoip.is_some() {
        background.spawn(watch_geoip(
            store.clone(),
            config.geoip_check_interval,
            stop.clone(),
        ));
    }
    tracing::info!(zones = config.zones.len(), config = %config.path.display(), "ready");

    let setup = |source| AppError::Setup {
        what: "signal handler",
        source,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(setup)?;
    let mut term = signal(SignalKind::terminate()).map_err(setup)?;
    let mut int = signal(SignalKind::interrupt()).map_err(setup)?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&config.path, &config, &store, &scheduler).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    stop.cancel();
    stop_udp.store(true, Ordering::Relaxed);
    while tcp_tasks.join_next().await.is_some() {}
    while background.join_next().await.is_some() {}
    scheduler.shutdown().await;
    tokio::task::spawn_blocking(move || udp_threads.into_iter().for_each(|t| _ = t.join()))
        .await
        .ok();
    Ok(())
}

/// The longest timeout of any check in use.
pub fn longest_timeout(config: &Config) -> Duration {
    config
        .datacenters
        .iter()
        .flat_map(|d| &d.endpoints)
        .filter_map(|e| e.check.as_ref().map(|c| c.timeout))
        .max()
        .unwrap_or_default()
}

/// Watches the GeoIP database file and swaps in a replacement (as `geoipupdate` writes it)
/// without a reload. A file that cannot be read keeps the old database serving.
async fn watch_geoip(store: Arc<Store>, every: std::time::Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed_at = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(current) = store.load().geo.clone() else {
            return;
        };
        let modified = std::fs::metadata(&current.path).and_then(|m| m.modified()).ok();
        if modified.is_none() || modified == current.modified || modified == failed_at {
            continue;
        }
        let path = current.path.clone();
        match tokio::task::spawn_blocking(move || crate::geo::GeoDb::open(&path)).await {
            Ok(Ok(db)) => {
                let records = db.len();
                let generation = store.replace_geo(Arc::new(db));
                failed_at = None;
                tracing::info!(path = %current.path.display(), records, generation, "GeoIP database reloaded");
            }
            Ok(Err(e)) => {
                failed_at = modified;
                tracing::error!(error = %e, "GeoIP database not reloaded; still using the previous one");
            }
            Err(e) => tracing::error!(error = %e, "GeoIP reload task failed"),
        }
    }
}

/// Re-reads the config and zones; publishes them whole, or keeps the old ones on any problem.
async fn reload(path: &Path, running: &Config, store: &Store, scheduler: &Arc<Scheduler>) {
    let path: PathBuf = path.to_path_buf();
    let previous_geo = store.load().geo.clone();
    let loaded = tokio::task::spawn_blocking(move || config::reload(&path, previous_geo.as_ref())).await;
    match loaded {
        Ok(Ok(new)) => {
            if new.dns != running.dns || new.log != running.log {
                tracing::warn!("dns and log settings changed; they take effect at the next restart");
            }
            let zones = new.zones.len();
            let health = scheduler.sync(&new.datacenters);
            let generation = store.publish(new, health);
            tracing::info!(zones, generation, "reloaded");
        }
        Ok(Err(problems)) => {
            for p in &problems.0 {
                tracing::error!(problem = %p, "reload rejected; still serving the previous config");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "reload task failed; still serving the previous config")
        }
    }
}
