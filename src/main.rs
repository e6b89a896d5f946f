//! The `pgflip` command: parse flags, set up logging, run the chosen role, and shut
//! down cleanly on SIGTERM or Ctrl-C.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgflip::controller::Progress;
use pgflip::proxy::config::{ProxyArgs, ProxyConfig};
use pgflip::telemetry::{self, LogFormat, LogWriter, Logs};

#[derive(Debug, Parser)]
#[command(
    name = "pgflip",
    version,
    about = "Switch a PostgreSQL application between blue and green databases without restarts"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    /// Log lines on stderr at info where they are hidden by default: `demo` (whose logs
    /// otherwise go to a file only) and `cutover` at a terminal (otherwise warnings only).
    /// RUST_LOG sets any level, and counts as asking.
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar: a PostgreSQL proxy that can move its sessions between upstreams.
    Proxy(ProxyArgs),
    /// Validate a sidecar configuration (the same flags as `proxy`) and print it.
    CheckConfig(ProxyArgs),
    /// Call a sidecar's admin API: status, pause, resume, switch, standby. Prints the JSON answer;
    /// exits 0 on 2xx, 1 on another status, 2 when the sidecar cannot be reached.
    Ctl(pgflip::ctl::CtlArgs),
    /// Move the application from blue to a migrated copy, green: preflight, snapshot,
    /// restore, migrate, smoke, catch-up, cutover and validation (`run`), then `rollback`
    /// or `promote`, recorded in a journal so a run resumes.
    Cutover(CutoverArgs),
    /// The whole runbook on throwaway local clusters with an application running through
    /// sidecars: seed blue, cut over to a migrated green (and back and forth with
    /// --rollback), promote, and report what the application saw. Exits 1 when a write
    /// was lost, a client saw an error or a step failed.
    Demo(pgflip::demo::DemoArgs),
}

#[derive(Debug, clap::Args)]
struct CutoverArgs {
    /// The plan file (TOML).
    #[arg(long, value_name = "FILE")]
    plan: std::path::PathBuf,
    #[command(subcommand)]
    action: CutoverAction,
}

#[derive(Debug, Subcommand)]
enum CutoverAction {
    /// Run the phases not yet done, in order, resuming after the last completed one.
    Run {
        /// Stop after this phase (preflight, snapshot, restore, migrate, smoke, catchup,
        /// cutover, validate).
        #[arg(long, value_name = "PHASE")]
        until: Option<pgflip::controller::Phase>,
    },
    /// Flip the fleet back to blue after a cutover, losing nothing green took in; `run`
    /// cuts over again afterwards.
    Rollback,
    /// Keep green for good: remove replication both ways, archive blue, run the retire command.
    Promote,
    /// Print the journal, the next phase, and both servers' replication slots (with the
    /// WAL they retain) and subscriptions.
    Status,
    /// Give the cutover up while blue serves: remove every slot, publication and
    /// subscription pgflip made on both sides, its schema and any fence on blue. The
    /// journal then refuses every other command.
    Abandon,
    /// Report the standby (the side writes do not go to) and its replication lag to every
    /// sidecar, every interval, following the journal across flips; after promote, report
    /// blue retired once and stop.
    StandbyReport {
        /// Time between reports: seconds, or a number with a unit (500ms, 10s, 1m).
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = pgflip::controller::parse_interval)]
        interval: std::time::Duration,
        /// Report once and exit.
        #[arg(long)]
        once: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Demo(args) = cli.command {
        return demo(args, cli.log_format, cli.verbose);
    }
    let asked = cli.verbose || telemetry::level_asked();
    let logs = match cli.command {
        // The proxy's worker threads must never wait on stderr.
        Command::Proxy(_) => stderr_logs(cli.log_format, "info", LogWriter::Background),
        // At a terminal the progress lines tell the story; the log has the detail.
        Command::Cutover(_) if !asked && std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            stderr_logs(cli.log_format, "warn", LogWriter::Direct)
        }
        _ => stderr_logs(cli.log_format, "info", LogWriter::Direct),
    };
    let _log = telemetry::init(logs);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            // Every error here already says what caused it; the chain would repeat it.
            eprintln!("pgflip: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Proxy(args) => {
            let config = ProxyConfig::load(&args)?;
            // Accepting, the admin API and signals; sessions run on the proxy's worker threads.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
            runtime.block_on(pgflip::proxy::run(config, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig(args) => {
            let config = ProxyConfig::load(&args)?;
            // Build what `proxy` would build at start, so missing CA or key files show here.
            for (name, url) in &config.upstreams {
                pgflip::proxy::upstream::Upstream::new(name, url.clone())?;
            }
            if let Some((cert, key)) = &config.client_tls {
                pgflip::proxy::tls::server(cert, key)?;
            }
            if let Some((cert, key)) = &config.admin_tls {
                pgflip::proxy::tls::admin_server(cert, key)?;
            }
            println!("listen        {}", config.listen);
            match &config.listen_unix {
                Some(unix) => println!("listen_unix   {} (mode {:04o})", unix.path.display(), unix.mode),
                None => println!("listen_unix   off"),
            }
            let admin_scheme = if config.admin_tls.is_some() { "https" } else { "http" };
            println!("admin_listen  {} ({admin_scheme})", config.admin_listen);
            match &config.admin_token {
                Some(_) => println!("admin token   admin_token_file"),
                None => println!(
                    "admin token   made at start, in {}",
                    pgflip::admin_token::default_path(config.admin_listen.port()).display()
                ),
            }
            let admin = &config.admin;
            println!(
                "admin limits  upstream hosts {}; max pause lease {}; query text {}; {} connections",
                admin.allowed_upstream_hosts,
                pgflip::duration::display(admin.max_pause_lease),
                if admin.show_queries { "shown" } else { "hidden" },
                admin.max_connections
            );
            for (name, url) in &config.upstreams {
                let mark = if *name == config.active { " (active)" } else { "" };
                println!("upstream      {name} = {url}{mark}");
            }
            println!(
                "client auth   {}",
                if config.auth.is_some() {
                    "auth file"
                } else {
                    "trust (local clients only: loopback and the Unix socket)"
                }
            );
            println!("client TLS    {}", if config.client_tls.is_some() { "offered" } else { "off" });
            match &config.standby {
                Some(standby) => println!(
                    "standby       {} (fallback {}, max lag {})",
                    standby.listen,
                    standby.fallback.as_str(),
                    standby.max_lag.map_or("none".to_owned(), |d| format!("{} s", d.as_secs_f64()))
                ),
                None => println!("standby       off"),
            }
            println!("config OK");
            Ok(ExitCode::SUCCESS)
        }
        // The client reports its own errors: its exit code tells 2xx, refusals and no answer apart.
        Command::Ctl(args) => Ok(ExitCode::from(pgflip::ctl::run(args))),
        Command::Demo(_) => unreachable!("main runs the demo"),
        Command::Cutover(args) => {
            let action = args.action;
            {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?;
                let plan = &args.plan;
                runtime.block_on(async {
                    match action {
                        CutoverAction::Run { until } => pgflip::controller::run(plan, until, Progress::Stdout).await,
                        CutoverAction::Rollback => pgflip::controller::rollback(plan, Progress::Stdout).await,
                        CutoverAction::Promote => pgflip::controller::promote(plan, Progress::Stdout).await,
                        CutoverAction::StandbyReport { interval, once } => {
                            let every = (!once).then_some(interval);
                            pgflip::controller::standby_report(plan, every, shutdown_signal()).await
                        }
                        CutoverAction::Status => {
                            let text = pgflip::controller::status(plan).await?;
                            println!("{text}");
                            Ok(())
                        }
                        CutoverAction::Abandon => pgflip::controller::abandon(plan, Progress::Stdout).await,
                    }
                })?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn stderr_logs(format: LogFormat, default_level: &'static str, writer: LogWriter) -> Logs {
    Logs { format, default_level, stderr: Some(writer), file: None }
}

/// `pgflip demo`: its story on stdout, its logs in a file in its directory (and on stderr
/// when asked).
fn demo(args: pgflip::demo::DemoArgs, format: LogFormat, verbose: bool) -> ExitCode {
    let demo = match pgflip::demo::Demo::prepare(args) {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("pgflip demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log_path = demo.log_path();
    let file = match std::fs::File::create(&log_path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("pgflip demo: creating the log {}: {e}", log_path.display());
            return ExitCode::FAILURE;
        }
    };
    let on_stderr = (verbose || telemetry::level_asked()).then_some(LogWriter::Direct);
    let _log = telemetry::init(Logs { format, default_level: "info", stderr: on_stderr, file: Some(file) });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pgflip demo: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(async {
        tokio::select! {
            report = demo.run() => Some(report),
            // Dropping the demo stops its clusters and sidecars and deletes its directory.
            _ = shutdown_signal() => None,
        }
    });
    match report {
        None => {
            eprintln!("pgflip demo: interrupted; its clusters and sidecars are stopped and its directory deleted");
            ExitCode::from(130)
        }
        Some(Ok(report)) => {
            println!("{}", report.summary());
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Err(e)) => {
            eprintln!("pgflip demo: {e}\nthe log is kept: {}", log_path.display());
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (Kubernetes starts a graceful shutdown with it) or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the proxy");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
