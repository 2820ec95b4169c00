//! Raw arguments and the config file become one validated options value.
//!
//! The rule is simple and tested for every key: a value given on the command
//! line wins; else the config file's; else the default. (clap's defaults are
//! never used for keys a file may set, since a default cannot be told apart
//! from the same value typed by the user.)

use std::path::Path;
use std::time::Duration;

use kiln_gbt::{Auth, Dialect, Endpoint};
use kiln_hash::{Backend, BackendKind};
use kiln_miner::source::solo::{SoloConfig, SoloOptions};
use kiln_miner::source::stratum::{ClientOptions, PoolConfig, PoolUrl};
use kiln_miner::{JobSource, MinerConfig};
use kiln_scan::gpu::{GpuScannerOptions, GpuSelection};

use crate::cli::{Level, MineArgs, SoloArgs};

/// A usage error: bad arguments or config, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// The TOML config file: the same names as the long options.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub pool: Vec<ConfigPool>,
    pub cpu_threads: Option<usize>,
    pub backend: Option<String>,
    pub gpu: Option<String>,
    pub gpu_intensity: Option<u32>,
    pub log_level: Option<Level>,
    pub api: Option<String>,
    pub api_cgminer: Option<String>,
    pub suggest_difficulty: Option<f64>,
    pub no_version_rolling: Option<bool>,
    pub status_interval: Option<u64>,
    pub duration: Option<u64>,
    pub solo: Option<bool>,
    pub rpc: Option<String>,
    pub rpc_cookie: Option<std::path::PathBuf>,
    pub rpc_user: Option<String>,
    pub rpc_pass: Option<String>,
    pub datadir: Option<std::path::PathBuf>,
    pub coinbase_addr: Option<String>,
    pub coinbase_tag: Option<String>,
    pub rpc_proposal: Option<bool>,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ConfigPool {
    pub url: String,
    pub user: String,
    #[serde(default = "default_pass")]
    pub pass: String,
}

fn default_pass() -> String {
    "x".into()
}

impl ConfigFile {
    /// Parses a config file's text. A syntax error names the line and column
    /// but never echoes the line itself, which may hold a password.
    ///
    /// # Errors
    /// Malformed TOML, unknown keys, wrong value types.
    pub fn parse(text: &str, name: &str) -> Result<Self, UsageError> {
        toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" at line {line}")
                })
                .unwrap_or_default();
            usage(format!("{name}: invalid config{at}: {}", e.message()))
        })
    }

    /// # Errors
    /// Unreadable file, or see [`ConfigFile::parse`].
    pub fn read(path: &Path) -> Result<Self, UsageError> {
        let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// Everything `kiln mine` runs with, validated.
#[derive(Debug)]
pub struct MineOptions {
    pub miner: MinerConfig,
    pub log_level: Level,
    pub status_interval: Duration,
    pub duration: Option<Duration>,
}

/// Resolves a CPU backend name (`None`: the fastest this CPU has).
///
/// # Errors
/// An unknown name, or one this CPU cannot run.
pub fn cpu_backend(name: Option<&str>) -> Result<Backend, UsageError> {
    let Some(name) = name else { return Ok(Backend::detect()) };
    if name == "gpu" {
        return Err(usage("--backend gpu is not a CPU backend; use --gpu"));
    }
    let kind = BackendKind::from_name(name).ok_or_else(|| {
        let names: Vec<_> = BackendKind::ALL.iter().map(|k| k.name()).collect();
        usage(format!("unknown backend '{name}' (known: {})", names.join(", ")))
    })?;
    Backend::from_kind(kind).ok_or_else(|| usage(format!("backend '{name}' is not supported by this CPU")))
}

fn parse_api(s: &str) -> Result<std::net::SocketAddr, UsageError> {
    parse_listen("api", s)
}

/// A listening address for `key`: PORT (on 127.0.0.1) or ADDR:PORT.
pub(crate) fn parse_listen(key: &str, s: &str) -> Result<std::net::SocketAddr, UsageError> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| usage(format!("{key} wants PORT or ADDR:PORT, got '{s}'")))
}

/// Merges the command line over the config file.
///
/// # Errors
/// Any key that does not validate, named.
pub fn mine_options(a: MineArgs, file: ConfigFile) -> Result<MineOptions, UsageError> {
    let source = if a.solo.solo || file.solo == Some(true) {
        if !a.urls.is_empty() {
            return Err(usage("--solo mines for a node; it cannot be combined with -o/--url"));
        }
        JobSource::Solo(solo_config(&a.solo, &file)?)
    } else {
        stratum_source(&a, &file)?
    };
    mine_rest(a, file, source)
}

/// Pools from the command line, else from the file.
fn stratum_source(a: &MineArgs, file: &ConfigFile) -> Result<JobSource, UsageError> {
    let mut pools = Vec::new();
    if a.urls.is_empty() {
        for p in &file.pool {
            let url = p.url.parse::<PoolUrl>().map_err(usage)?;
            pools.push(PoolConfig { url, user: p.user.clone(), pass: p.pass.clone() });
        }
    } else {
        for (i, url) in a.urls.iter().enumerate() {
            let user = a.users.get(i).or(a.users.last()).ok_or_else(|| usage("each pool needs a user (-u)"))?;
            let pass = a.passes.get(i).or(a.passes.last()).cloned().unwrap_or_else(default_pass);
            pools.push(PoolConfig { url: url.parse::<PoolUrl>().map_err(usage)?, user: user.clone(), pass });
        }
    }
    if pools.is_empty() {
        return Err(usage(
            "no pool given: use -o stratum+tcp://HOST:PORT -u USER -p PASS (or [[pool]] in --config), \
             or --solo --coinbase-addr ADDR for your own node",
        ));
    }
    let mut client = ClientOptions {
        suggest_difficulty: a.suggest_difficulty.or(file.suggest_difficulty),
        ..ClientOptions::default()
    };
    if a.no_version_rolling || file.no_version_rolling == Some(true) {
        client.version_rolling = None;
    }
    Ok(JobSource::Stratum { pools, client })
}

/// `--solo` and its keys, validated as far as possible without the node.
fn solo_config(a: &SoloArgs, file: &ConfigFile) -> Result<SoloConfig, UsageError> {
    let rpc = a.rpc.as_deref().or(file.rpc.as_deref()).unwrap_or("http://127.0.0.1:8332");
    let endpoint: Endpoint = rpc.parse().map_err(|e| usage(format!("--rpc: {e}")))?;
    let user = a.rpc_user.clone().or_else(|| file.rpc_user.clone());
    let pass = a.rpc_pass.clone().or_else(|| file.rpc_pass.clone());
    let cookie = a.rpc_cookie.clone().or_else(|| file.rpc_cookie.clone());
    let auth = match (user, pass, cookie) {
        (Some(_), _, Some(_)) => return Err(usage("give either --rpc-cookie or --rpc-user/--rpc-pass, not both")),
        (Some(user), Some(pass), None) => Auth::UserPass { user, pass },
        (Some(_), None, None) | (None, Some(_), None) => {
            return Err(usage("--rpc-user and --rpc-pass go together"));
        }
        (None, _, Some(path)) => Auth::Cookie(path),
        (None, None, None) => {
            let network = kiln_gbt::chain::network_of_port(endpoint.port).ok_or_else(|| {
                usage(format!(
                    "cannot tell the node's chain from port {} for its cookie file: give --rpc-cookie FILE \
                     or --rpc-user/--rpc-pass",
                    endpoint.port
                ))
            })?;
            let datadir = a
                .datadir
                .clone()
                .or_else(|| file.datadir.clone())
                .or_else(kiln_gbt::chain::default_datadir)
                .ok_or_else(|| usage("no HOME to find ~/.bitcoin in: give --datadir or --rpc-cookie"))?;
            Auth::Cookie(kiln_gbt::chain::cookie_path(&datadir, network))
        }
    };
    let address = a
        .coinbase_addr
        .clone()
        .or_else(|| file.coinbase_addr.clone())
        .ok_or_else(|| usage("--solo needs --coinbase-addr ADDR: where the block reward goes"))?;
    kiln_gbt::chain::check_address_syntax(&address).map_err(|e| usage(format!("--coinbase-addr: {e}")))?;
    let tag = a.coinbase_tag.clone().or_else(|| file.coinbase_tag.clone()).unwrap_or_else(|| "/kiln/".into());
    if tag.len() > 40 {
        return Err(usage(format!("--coinbase-tag is {} bytes; at most 40 fit in a coinbase", tag.len())));
    }
    Ok(SoloConfig {
        endpoint,
        auth,
        address,
        tag: tag.into_bytes(),
        dialect: Dialect::default(),
        proposal: a.rpc_proposal || file.rpc_proposal == Some(true),
        opts: SoloOptions::default(),
    })
}

/// The rest of `kiln mine`'s options, given a job source.
fn mine_rest(a: MineArgs, file: ConfigFile, source: JobSource) -> Result<MineOptions, UsageError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let backend = cpu_backend(a.backend.as_deref().or(file.backend.as_deref()))?;
    let gpu = match a.gpu.gpu {
        Some(g) => g,
        None => file.gpu.as_deref().map(str::parse::<GpuSelection>).transpose().map_err(usage)?.unwrap_or_default(),
    };
    let gpu_intensity = a.gpu.gpu_intensity.or(file.gpu_intensity);
    if let Some(n) = gpu_intensity
        && !(10..=32).contains(&n)
    {
        return Err(usage(format!("gpu-intensity must be 10..=32, got {n}")));
    }
    let api = a.api.as_deref().or(file.api.as_deref()).map(parse_api).transpose()?;
    let cgminer_api =
        a.api_cgminer.as_deref().or(file.api_cgminer.as_deref()).map(|s| parse_listen("api-cgminer", s)).transpose()?;
    let status_interval = a.status_interval.or(file.status_interval).unwrap_or(10).max(1);
    Ok(MineOptions {
        miner: MinerConfig {
            source,
            cpu_threads: a.cpu_threads.or(file.cpu_threads).unwrap_or(cores),
            backend,
            gpu,
            gpu_options: GpuScannerOptions { intensity: gpu_intensity, ..Default::default() },
            api,
            max_solutions_per_second: None,
            cgminer_api,
        },
        log_level: a.log_level.or(file.log_level).unwrap_or(Level::Info),
        status_interval: Duration::from_secs(status_interval),
        duration: a.duration.or(file.duration).map(Duration::from_secs),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Cmd};

    /// A config file that sets every key to a value no default has.
    const FILE: &str = r#"
cpu-threads = 3
backend = "scalar"
gpu = "off"
gpu-intensity = 12
log-level = "warn"
api = "127.0.0.1:4100"
api-cgminer = "127.0.0.1:4128"
suggest-difficulty = 64.0
no-version-rolling = true
status-interval = 30
duration = 50

[[pool]]
url = "stratum+tcp://file.example:3333"
user = "file-user"
pass = "file-pass"
"#;

    fn args(extra: &[&str]) -> MineArgs {
        let mut argv = vec!["kiln", "mine"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parses").command {
            Cmd::Mine(a) => *a,
            _ => unreachable!(),
        }
    }

    fn merged(extra: &[&str]) -> MineOptions {
        mine_options(args(extra), ConfigFile::parse(FILE, "test.toml").expect("config parses")).expect("valid")
    }

    fn stratum(o: &MineOptions) -> (&[PoolConfig], &ClientOptions) {
        match &o.miner.source {
            JobSource::Stratum { pools, client } => (pools, client),
            other => panic!("not a pool source: {other:?}"),
        }
    }

    #[test]
    fn the_file_applies_when_the_command_line_is_silent() {
        let o = merged(&[]);
        assert_eq!(o.miner.cpu_threads, 3);
        assert_eq!(o.miner.backend.name(), "scalar");
        assert_eq!(o.miner.gpu, GpuSelection::Off);
        assert_eq!(o.miner.gpu_options.intensity, Some(12));
        assert_eq!(o.log_level, Level::Warn);
        assert_eq!(o.miner.api, Some("127.0.0.1:4100".parse().unwrap()));
        assert_eq!(o.miner.cgminer_api, Some("127.0.0.1:4128".parse().unwrap()));
        assert_eq!(o.status_interval, Duration::from_secs(30));
        assert_eq!(o.duration, Some(Duration::from_secs(50)));
        let (pools, client) = stratum(&o);
        assert_eq!(pools[0].url.host, "file.example");
        assert_eq!(pools[0].user, "file-user");
        assert_eq!(pools[0].pass, "file-pass");
        assert_eq!(client.suggest_difficulty, Some(64.0));
        assert_eq!(client.version_rolling, None);
    }

    /// Every key, given on the command line, beats the file — including
    /// values equal to the built-in defaults (the bug this module fixed).
    #[test]
    fn the_command_line_beats_the_file_for_every_key() {
        let o = merged(&["--cpu-threads", "1"]);
        assert_eq!(o.miner.cpu_threads, 1);
        let o = merged(&["-t", "2"]);
        assert_eq!(o.miner.cpu_threads, 2, "-t is --cpu-threads, as in cpuminer");
        let o = merged(&["--backend", "scalar"]);
        assert_eq!(o.miner.backend.name(), "scalar");
        let o = merged(&["--gpu", "auto"]);
        assert_eq!(o.miner.gpu, GpuSelection::Auto);
        let o = merged(&["--gpu-intensity", "20"]);
        assert_eq!(o.miner.gpu_options.intensity, Some(20));
        let o = merged(&["--log-level", "info"]);
        assert_eq!(o.log_level, Level::Info);
        let o = merged(&["--api", "4200"]);
        assert_eq!(o.miner.api, Some("127.0.0.1:4200".parse().unwrap()));
        let o = merged(&["--api-cgminer", "4028"]);
        assert_eq!(o.miner.cgminer_api, Some("127.0.0.1:4028".parse().unwrap()), "a bare port is loopback");
        let o = merged(&["--api-cgminer", "0.0.0.0:4029"]);
        assert_eq!(o.miner.cgminer_api, Some("0.0.0.0:4029".parse().unwrap()));
        let o = merged(&["--suggest-difficulty", "2"]);
        assert_eq!(stratum(&o).1.suggest_difficulty, Some(2.0));
        let o = merged(&["--status-interval", "10"]);
        assert_eq!(o.status_interval, Duration::from_secs(10));
        let o = merged(&["--duration", "7"]);
        assert_eq!(o.duration, Some(Duration::from_secs(7)));
        let o = merged(&["-o", "stratum+tcp://cli.example:1", "-u", "cli-user", "-p", "cli-pass"]);
        let (pools, _) = stratum(&o);
        assert_eq!(pools.len(), 1);
        assert_eq!(
            (pools[0].url.host.as_str(), pools[0].user.as_str(), pools[0].pass.as_str()),
            ("cli.example", "cli-user", "cli-pass")
        );
    }

    #[test]
    fn no_version_rolling_from_either_place() {
        let no_file = |extra: &[&str]| {
            mine_options(args(extra), ConfigFile::parse("[[pool]]\nurl = \"h:1\"\nuser = \"u\"\n", "t").unwrap())
                .unwrap()
        };
        assert!(stratum(&no_file(&[])).1.version_rolling.is_some());
        assert!(stratum(&no_file(&["--no-version-rolling"])).1.version_rolling.is_none());
        assert!(stratum(&merged(&[])).1.version_rolling.is_none());
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_key() {
        let bad = |toml: &str| {
            ConfigFile::parse(toml, "t.toml").and_then(|f| mine_options(args(&["-o", "h:1", "-u", "u"]), f))
        };
        assert!(bad("gpu-intensity = 40").unwrap_err().0.contains("gpu-intensity"));
        assert!(bad("backend = \"nope\"").unwrap_err().0.contains("unknown backend"));
        assert!(bad("api = \"x\"").unwrap_err().0.contains("api"));
        assert!(bad("api-cgminer = \"4028x\"").unwrap_err().0.contains("api-cgminer"));
        assert!(bad("gpu = \"0,x\"").is_err());
    }

    #[test]
    fn a_config_syntax_error_never_echoes_the_password() {
        let text = "[[pool]]\nurl = \"h:1\"\nuser = \"u\"\npass = \"hunter2\n";
        let e = ConfigFile::parse(text, "t.toml").unwrap_err();
        assert!(!e.0.contains("hunter2"), "{e}");
        assert!(e.0.contains("line 4"), "{e}");
    }
}
