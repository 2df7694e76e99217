//! The `mcpgate` command line.

use clap::{Parser, Subcommand};
use mcpgate::policy::auth::api_key;
use mcpgate::{config, demo, observability, runtime, server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "mcpgate",
    version,
    about = "A high-throughput gateway for the Model Context Protocol"
)]
struct Cli {
    /// The config file (YAML or JSON).
    #[arg(short = 'c', long = "conf", global = true)]
    conf: Option<PathBuf>,
    /// Validate the config and exit: 0 when valid, 2 with every problem listed otherwise.
    #[arg(short = 't', long = "test", global = true)]
    test: bool,
    /// Run in the background.
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Take the listening sockets over from a running instance (graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway on conf/mcpgate.yaml (or -c FILE) in front of the built-in demo MCP server,
    /// which listens on the loopback addresses of the config's backend hosts.
    Demo {
        /// Run only the demo MCP server, on this address, without the gateway.
        #[arg(long, value_name = "ADDR")]
        upstream_only: Option<SocketAddr>,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Print the SHA-256 hash of an API key, for `api_keys.keys[].sha256` (reads the key from
    /// standard input when not given, so it stays out of shell history).
    HashKey {
        /// The key.
        key: Option<String>,
    },
    /// Print a new random API key (and its hash on standard error).
    GenerateKey,
    /// Print a KrakenD configuration (krakend.json) as mcpgate YAML on standard output, with
    /// comments where a setting changes meaning; problems go to standard error (exit 2 when
    /// some setting cannot be honoured).
    Convert {
        /// The KrakenD file.
        file: PathBuf,
    },
}

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// objects (Pingora's and ours), which glibc's malloc serves at about twice the cost
/// (benches/RESULTS.md, "Round 3").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    observability::init_logging();
    match cli.command {
        Some(Command::Schema) => {
            let schema = runtime::load::schema_json();
            match serde_json::to_string_pretty(&schema) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("cannot print the schema: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Some(Command::HashKey { key }) => {
            let key = match key {
                Some(k) => k,
                None => {
                    let mut line = String::new();
                    if std::io::stdin().read_line(&mut line).is_err() {
                        eprintln!("cannot read the key from standard input");
                        return ExitCode::FAILURE;
                    }
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            if key.is_empty() {
                eprintln!("the key is empty");
                return ExitCode::FAILURE;
            }
            println!("{}", api_key::hash_key(&key));
            ExitCode::SUCCESS
        }
        Some(Command::Convert { file }) => convert(&file),
        Some(Command::GenerateKey) => match api_key::generate_key() {
            Ok(key) => {
                println!("{key}");
                eprintln!("sha256: {}", api_key::hash_key(&key));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot generate a key: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Demo {
            upstream_only: Some(addr),
        }) => match demo_upstreams(&[addr]) {
            Ok(handle) => {
                eprintln!("demo MCP server on http://{addr}/mcp");
                let _ = handle.join();
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Demo {
            upstream_only: None,
        }) => {
            let conf = cli
                .conf
                .unwrap_or_else(|| PathBuf::from("conf/mcpgate.yaml"));
            let snapshot = match server::load(&conf) {
                Ok(s) => s,
                Err(e) => return config_failure(&e),
            };
            if cli.daemon {
                eprintln!("demo runs in the foreground; drop -d");
                return ExitCode::FAILURE;
            }
            let addrs: Vec<SocketAddr> = snapshot
                .endpoints
                .iter()
                .flat_map(|ep| ep.backend.hosts.iter().map(|h| h.addr))
                .filter(|a| a.ip().is_loopback())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if addrs.is_empty() {
                eprintln!("{}: no backend host is on a loopback address, so the demo server has nowhere to listen", conf.display());
                return ExitCode::FAILURE;
            }
            if let Err(e) = demo_upstreams(&addrs) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            for a in &addrs {
                eprintln!("demo MCP server on http://{a}/mcp");
            }
            for l in snapshot.source.listen.entries() {
                let path = snapshot
                    .endpoints
                    .first()
                    .map_or("/mcp", |e| e.path.as_str());
                eprintln!("mcpgate: point an MCP client at http://{}{path}", l.address);
            }
            server::run(
                snapshot,
                server::RunFlags {
                    config_path: Some(conf),
                    ..Default::default()
                },
            )
        }
        None => {
            let Some(conf) = cli.conf else {
                eprintln!("mcpgate: give a config file with -c FILE (or try `mcpgate demo`)");
                return ExitCode::from(2);
            };
            let snapshot = match server::load(&conf) {
                Ok(s) => s,
                Err(e) => return config_failure(&e),
            };
            if cli.test {
                println!("{}: the configuration is valid", conf.display());
                return ExitCode::SUCCESS;
            }
            server::run(
                snapshot,
                server::RunFlags {
                    daemon: cli.daemon,
                    upgrade: cli.upgrade,
                    config_path: Some(conf),
                },
            )
        }
    }
}

/// `mcpgate convert FILE`.
fn convert(file: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read the file: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: not JSON: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    if !config::krakend::is_krakend(&value) {
        eprintln!(
            "{}: not a KrakenD configuration (expected \"version\": 3 and endpoints[] with endpoint and backend)",
            file.display()
        );
        return ExitCode::from(2);
    }
    let t = config::krakend::translate(&value);
    print!(
        "{}",
        config::krakend::to_commented_yaml(&t.config, &t.notes)
    );
    for w in &t.warnings {
        eprintln!("{}: warning: {w} (skipped)", file.display());
    }
    for e in &t.errors {
        eprintln!("{}: error: {e}", file.display());
    }
    if t.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn config_failure(e: &config::ConfigError) -> ExitCode {
    eprint!("{e}");
    ExitCode::from(2)
}

/// Starts the demo MCP server on each address, in a thread with its own runtime.
fn demo_upstreams(addrs: &[SocketAddr]) -> Result<std::thread::JoinHandle<()>, String> {
    let mut listeners = Vec::new();
    for a in addrs {
        let l = std::net::TcpListener::bind(a)
            .map_err(|e| format!("demo MCP server: cannot listen on {a}: {e}"))?;
        l.set_nonblocking(true)
            .map_err(|e| format!("demo MCP server: {e}"))?;
        listeners.push(l);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("demo MCP server: {e}"))?;
    std::thread::Builder::new()
        .name("demo-mcp".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                for l in listeners {
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => tasks.push(tokio::spawn(demo::serve(l))),
                        Err(e) => eprintln!("demo MCP server: {e}"),
                    }
                }
                for t in tasks {
                    if let Ok(Err(e)) = t.await {
                        eprintln!("demo MCP server stopped: {e}");
                    }
                }
            })
        })
        .map_err(|e| format!("demo MCP server: {e}"))
}
