//! Starting and stopping a throwaway regtest `bitcoind` on 127.0.0.1.
//!
//! Each [`Node`] owns a fresh data directory and its own ports, and is stopped
//! (RPC `stop`, then SIGTERM, then SIGKILL, each bounded) and its data directory
//! removed when it is dropped, including while a test is unwinding from a panic.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::rpc::{RpcClient, RpcError};

/// Environment variable naming the `bitcoind` binary to use.
pub const ENV_BITCOIND: &str = "BITCOIND";
/// When set to `1`, a missing `bitcoind` fails the test instead of skipping it.
pub const ENV_REQUIRE: &str = "KILN_REQUIRE_BITCOIND";
/// When set to `1`, data directories are kept (and their paths printed) on drop.
pub const ENV_KEEP_DATADIR: &str = "KILN_KEEP_DATADIR";
/// What a skipped test prints.
pub const SKIP_MESSAGE: &str = "skipped: no bitcoind (set BITCOIND)";

/// How the test talks to the node's RPC server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `-rpcuser`/`-rpcpassword` with a random password (the default).
    UserPass,
    /// No credentials on the command line; Core writes `<datadir>/regtest/.cookie`.
    Cookie,
}

/// Options for [`Node::start`].
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Extra command-line arguments, appended after the defaults (so they win
    /// where Core takes the last value), e.g. `-connect=127.0.0.1:PORT`.
    pub extra_args: Vec<String>,
    /// Accept P2P connections on 127.0.0.1 at a free port (`-listen=1`). When
    /// false, `-listen=0` is passed and [`Node::p2p_addr`] is `None`.
    pub listen: bool,
    pub auth: Auth,
    /// How long to wait for the RPC server to answer.
    pub start_timeout: Duration,
    /// How long to wait for a clean shutdown before SIGKILL.
    pub stop_timeout: Duration,
    /// Use this binary instead of looking at `$BITCOIND` and `$PATH`.
    pub bitcoind: Option<PathBuf>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            extra_args: Vec::new(),
            listen: true,
            auth: Auth::UserPass,
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(15),
            bitcoind: None,
        }
    }
}

impl NodeOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
}

/// Why a node could not be started.
#[derive(Debug)]
pub enum NodeError {
    /// No `bitcoind` was found (neither `$BITCOIND` nor `$PATH`) and
    /// `KILN_REQUIRE_BITCOIND` is not `1`: the test should skip.
    NoBitcoind,
    /// `$BITCOIND` (or [`NodeOptions::bitcoind`]) names something unusable.
    BadBinary { path: PathBuf, reason: String },
    /// Creating the data directory or a log file failed.
    Io(io::Error),
    /// The process could not be spawned.
    Spawn { path: PathBuf, error: io::Error },
    /// `bitcoind` exited during start-up.
    Exited { status: String, log_tail: String },
    /// The RPC server did not answer in time.
    Timeout { waited: Duration, last_error: String, log_tail: String },
    /// A port was taken between choosing it and `bitcoind` binding it, on every try.
    PortsBusy { attempts: u32, log_tail: String },
}

impl NodeError {
    /// True when the caller should skip rather than fail.
    pub fn is_skip(&self) -> bool {
        matches!(self, NodeError::NoBitcoind)
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::NoBitcoind => f.write_str(SKIP_MESSAGE),
            NodeError::BadBinary { path, reason } => write!(f, "bitcoind {}: {reason}", path.display()),
            NodeError::Io(e) => write!(f, "i/o error while starting bitcoind: {e}"),
            NodeError::Spawn { path, error } => write!(f, "cannot run {}: {error}", path.display()),
            NodeError::Exited { status, log_tail } => {
                write!(f, "bitcoind exited during start-up ({status}); log tail:\n{log_tail}")
            }
            NodeError::Timeout { waited, last_error, log_tail } => write!(
                f,
                "bitcoind RPC did not answer within {waited:?} (last error: {last_error}); log tail:\n{log_tail}"
            ),
            NodeError::PortsBusy { attempts, log_tail } => {
                write!(f, "bitcoind could not bind its ports in {attempts} attempts; log tail:\n{log_tail}")
            }
        }
    }
}

impl std::error::Error for NodeError {}

impl From<io::Error> for NodeError {
    fn from(e: io::Error) -> Self {
        NodeError::Io(e)
    }
}

/// True when `KILN_REQUIRE_BITCOIND=1`.
pub fn bitcoind_required() -> bool {
    std::env::var_os(ENV_REQUIRE).is_some_and(|v| v == "1")
}

/// Finds `bitcoind`: `$BITCOIND` if set (it must then be an executable file),
/// else the first executable `bitcoind` on `$PATH`. `Ok(None)`: none found.
pub fn find_bitcoind() -> Result<Option<PathBuf>, NodeError> {
    locate_bitcoind(std::env::var_os(ENV_BITCOIND), std::env::var_os("PATH"))
}

/// [`find_bitcoind`] with the two environment values passed in (testable).
pub fn locate_bitcoind(
    bitcoind_var: Option<OsString>,
    path_var: Option<OsString>,
) -> Result<Option<PathBuf>, NodeError> {
    if let Some(p) = bitcoind_var.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(p);
        return match check_executable(&path) {
            Ok(()) => Ok(Some(path)),
            Err(reason) => Err(NodeError::BadBinary { path, reason: format!("{reason} (from ${ENV_BITCOIND})") }),
        };
    }
    if let Some(paths) = path_var {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("bitcoind");
            if check_executable(&candidate).is_ok() {
                return Ok(Some(candidate));
            }
        }
    }
    Ok(None)
}

fn check_executable(path: &Path) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("not executable".into());
    }
    Ok(())
}

/// Ports handed out by this process and not yet known to be bound by a node;
/// keeps two nodes started at the same moment from being given the same port.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Asks the kernel for `n` distinct free loopback ports (by binding port 0),
/// avoiding ports already handed out in this process.
fn pick_ports(n: usize) -> io::Result<Vec<u16>> {
    #[cfg(test)]
    if let Some(forced) = tests::FORCED_PORTS.lock().unwrap().pop() {
        return Ok(forced);
    }
    let mut held = Vec::new();
    let mut ports = Vec::new();
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = guard.get_or_insert_with(HashSet::new);
    for _ in 0..(n * 20) {
        if ports.len() == n {
            break;
        }
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = l.local_addr()?.port();
        held.push(l); // keep it bound so the next bind gets a different port
        if handed.insert(port) {
            ports.push(port);
        }
    }
    if ports.len() < n {
        return Err(io::Error::other("could not find free ports"));
    }
    Ok(ports)
}

fn release_ports(ports: &[u16]) {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = guard.as_mut() {
        for p in ports {
            set.remove(p);
        }
    }
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

fn fresh_datadir() -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = base.join(format!(
            "kiln-testkit-{}-{}-{:08x}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed),
            nanos
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("could not create a unique data directory"))
}

fn random_hex(bytes: usize) -> String {
    use bitcoin::secp256k1::rand::RngCore;
    let mut buf = vec![0u8; bytes];
    bitcoin::secp256k1::rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Last `max` bytes of a file, lossily decoded; empty if unreadable.
fn file_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

unsafe extern "C" {
    // libc's kill(2); std only offers SIGKILL, and bitcoind shuts down cleanly on SIGTERM.
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
const SIGTERM: i32 = 15;

/// A running regtest `bitcoind`. Dropping it stops the process and deletes
/// its data directory.
pub struct Node {
    child: Option<Child>,
    /// RPC answered at least once (so `stop` is worth trying).
    up: bool,
    datadir: PathBuf,
    bitcoind: PathBuf,
    rpc: RpcClient,
    rpc_addr: SocketAddr,
    p2p_addr: Option<SocketAddr>,
    ports: Vec<u16>,
    stop_timeout: Duration,
    /// What the node was started with, for [`Node::restart`].
    args: Vec<String>,
    auth: Auth,
    start_timeout: Duration,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("pid", &self.pid())
            .field("rpc", &self.rpc_addr)
            .field("p2p", &self.p2p_addr)
            .field("datadir", &self.datadir)
            .finish()
    }
}

impl Node {
    /// Starts a node. Panics when no binary is found and
    /// `KILN_REQUIRE_BITCOIND=1`; returns [`NodeError::NoBitcoind`] when none is
    /// found otherwise (see [`Node::start_or_skip`] and [`crate::require_node!`]).
    pub fn start(opts: NodeOptions) -> Result<Node, NodeError> {
        let bin = match opts.bitcoind.clone() {
            Some(p) => {
                check_executable(&p).map_err(|reason| NodeError::BadBinary { path: p.clone(), reason })?;
                p
            }
            None => match find_bitcoind()? {
                Some(p) => p,
                None if bitcoind_required() => panic!(
                    "{ENV_REQUIRE}=1 but no bitcoind was found: set {ENV_BITCOIND}=/path/to/bitcoind \
                     or put bitcoind on PATH (scripts/bitcoind can build one)"
                ),
                None => return Err(NodeError::NoBitcoind),
            },
        };
        const ATTEMPTS: u32 = 5;
        let mut last_tail = String::new();
        for _ in 0..ATTEMPTS {
            match Self::try_start(&bin, &opts) {
                Err(StartFailure::PortsBusy(tail)) => last_tail = tail,
                Err(StartFailure::Other(e)) => return Err(e),
                Ok(node) => return Ok(node),
            }
        }
        Err(NodeError::PortsBusy { attempts: ATTEMPTS, log_tail: last_tail })
    }

    /// Starts a node, or returns `None` (after printing [`SKIP_MESSAGE`]) when
    /// there is no `bitcoind` and none is required. Any other failure panics,
    /// so the calling test fails.
    pub fn start_or_skip(opts: NodeOptions) -> Option<Node> {
        match Node::start(opts) {
            Ok(n) => Some(n),
            Err(NodeError::NoBitcoind) => {
                eprintln!("{SKIP_MESSAGE}");
                None
            }
            Err(e) => panic!("could not start bitcoind: {e}"),
        }
    }

    fn try_start(bin: &Path, opts: &NodeOptions) -> Result<Node, StartFailure> {
        let datadir = fresh_datadir().map_err(|e| StartFailure::Other(e.into()))?;
        let ports = match pick_ports(if opts.listen { 2 } else { 1 }) {
            Ok(p) => p,
            Err(e) => {
                let _ = fs::remove_dir_all(&datadir);
                return Err(StartFailure::Other(e.into()));
            }
        };
        let rpc_port = ports[0];
        let rpc_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, rpc_port));
        let p2p_addr = opts.listen.then(|| SocketAddr::from((Ipv4Addr::LOCALHOST, ports[1])));

        let mut args: Vec<String> = vec![
            "-regtest".into(),
            "-daemon=0".into(),
            format!("-datadir={}", datadir.display()),
            "-printtoconsole=0".into(),
            "-server=1".into(),
            "-rpcbind=127.0.0.1".into(),
            "-rpcallowip=127.0.0.1".into(),
            format!("-rpcport={rpc_port}"),
            "-dnsseed=0".into(),
            "-fixedseeds=0".into(),
            "-discover=0".into(),
            "-listenonion=0".into(),
            "-natpmp=0".into(),
        ];
        match p2p_addr {
            Some(a) => {
                args.push("-listen=1".into());
                args.push("-bind=127.0.0.1".into());
                args.push(format!("-port={}", a.port()));
            }
            None => args.push("-listen=0".into()),
        }
        let (user, password) = match opts.auth {
            Auth::UserPass => {
                let (u, p) = ("kiln".to_string(), random_hex(16));
                args.push(format!("-rpcuser={u}"));
                args.push(format!("-rpcpassword={p}"));
                (u, p)
            }
            Auth::Cookie => (String::new(), String::new()),
        };
        args.extend(opts.extra_args.iter().cloned());

        let child = match spawn_bitcoind(bin, &args, &datadir) {
            Ok(c) => c,
            Err(error) => {
                release_ports(&ports);
                let _ = fs::remove_dir_all(&datadir);
                return Err(StartFailure::Other(NodeError::Spawn { path: bin.to_owned(), error }));
            }
        };
        let mut node = Node {
            child: Some(child),
            up: false,
            datadir,
            bitcoind: bin.to_owned(),
            rpc: RpcClient::new(rpc_addr, &user, &password),
            rpc_addr,
            p2p_addr,
            ports,
            stop_timeout: opts.stop_timeout,
            args,
            auth: opts.auth.clone(),
            start_timeout: opts.start_timeout,
        };
        // From here on an early return drops `node`, which kills the process
        // and removes the data directory.
        node.wait_ready()?;
        release_ports(&node.ports); // bound by bitcoind now; the OS will not hand them out
        Ok(node)
    }

    /// Stops the node (cleanly), waits `down_for`, and starts it again on the
    /// same data directory and ports: a node restart as a user sees one.
    ///
    /// # Errors
    /// The node does not come back.
    pub fn restart(&mut self, down_for: Duration) -> Result<(), NodeError> {
        self.shut_down();
        self.up = false;
        std::thread::sleep(down_for);
        let child = spawn_bitcoind(&self.bitcoind, &self.args, &self.datadir)
            .map_err(|error| NodeError::Spawn { path: self.bitcoind.clone(), error })?;
        self.child = Some(child);
        self.wait_ready().map_err(|f| match f {
            StartFailure::PortsBusy(log_tail) => NodeError::PortsBusy { attempts: 1, log_tail },
            StartFailure::Other(e) => e,
        })
    }

    /// Waits until the RPC server answers as a regtest node.
    fn wait_ready(&mut self) -> Result<(), StartFailure> {
        let node = self;
        let rpc_addr = node.rpc_addr;
        let started = Instant::now();
        let mut last_error = String::from("no attempt yet");
        loop {
            if let Some(status) = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let tail = node.log_tail(4000);
                let busy = tail.contains("Unable to bind") || tail.contains("Unable to start HTTP server");
                return Err(if busy {
                    StartFailure::PortsBusy(tail)
                } else {
                    StartFailure::Other(NodeError::Exited { status: status.to_string(), log_tail: tail })
                });
            }
            if started.elapsed() > node.start_timeout {
                return Err(StartFailure::Other(NodeError::Timeout {
                    waited: node.start_timeout,
                    last_error,
                    log_tail: node.log_tail(4000),
                }));
            }
            if node.auth == Auth::Cookie {
                match fs::read_to_string(node.cookie_path()) {
                    Ok(c) => {
                        let (u, p) = c.trim().split_once(':').unwrap_or(("", ""));
                        node.rpc = RpcClient::new(rpc_addr, u, p);
                    }
                    Err(e) => {
                        last_error = format!("no cookie yet: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
            }
            match node.rpc.call_with_timeout("getblockchaininfo", json!([]), Duration::from_secs(1)) {
                Ok(info) if info.get("chain").and_then(Value::as_str) == Some("regtest") => break,
                Ok(info) => {
                    return Err(StartFailure::Other(NodeError::Exited {
                        status: format!("answering RPC is not a regtest node: {info}"),
                        log_tail: node.log_tail(4000),
                    }));
                }
                // 401 can come from someone else's server that grabbed our
                // port; ours will then fail to bind and exit (handled above).
                // 503 is a node shutting down (its P2P port was taken, say):
                // its exit, and the reason in its log, come next.
                Err(e) if e.is_transient() || matches!(e, RpcError::Http { status: 401 | 503, .. }) => {
                    last_error = e.to_string();
                }
                Err(e) => {
                    return Err(StartFailure::Other(NodeError::Exited {
                        status: format!("unexpected RPC answer: {e}"),
                        log_tail: node.log_tail(4000),
                    }));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        node.up = true;
        Ok(())
    }

    /// Calls an RPC method; `params` is a JSON array or object (`Value::Null` = none).
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.rpc.call(method, params)
    }

    /// The client used by [`Node::rpc`] (clone it to change timeout/dialect).
    pub fn rpc_client(&self) -> &RpcClient {
        &self.rpc
    }

    /// `http://127.0.0.1:PORT/`
    pub fn rpc_url(&self) -> String {
        format!("http://{}/", self.rpc_addr)
    }

    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// The P2P listening address (`None` when started with `listen: false`).
    pub fn p2p_addr(&self) -> Option<SocketAddr> {
        self.p2p_addr
    }

    /// The `-datadir` (chain data is under `regtest/`).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// `<datadir>/regtest/.cookie` (only written with [`Auth::Cookie`]).
    pub fn cookie_path(&self) -> PathBuf {
        self.datadir.join("regtest").join(".cookie")
    }

    pub fn debug_log_path(&self) -> PathBuf {
        self.datadir.join("regtest").join("debug.log")
    }

    pub fn bitcoind_path(&self) -> &Path {
        &self.bitcoind
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The end of the node's stdout/stderr and `debug.log` (about `max` bytes of each).
    pub fn log_tail(&self, max: u64) -> String {
        let console = file_tail(&self.datadir.join("console.log"), max);
        let debug = file_tail(&self.debug_log_path(), max);
        format!("--- stdout/stderr ---\n{console}\n--- debug.log ---\n{debug}")
    }

    /// Stops the node now (same as dropping it).
    pub fn stop(self) {}

    fn shut_down(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let alive = |c: &mut Child| matches!(c.try_wait(), Ok(None));
        let wait_for_exit = |c: &mut Child, limit: Duration| {
            let until = Instant::now() + limit;
            while Instant::now() < until {
                if !matches!(c.try_wait(), Ok(None)) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        };
        let mut exited = !alive(&mut child);
        if !exited && self.up {
            let asked = self.rpc.call_with_timeout("stop", json!([]), Duration::from_secs(5)).is_ok();
            if asked {
                exited = wait_for_exit(&mut child, self.stop_timeout);
            }
        }
        if !exited {
            // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
            let pid = i32::try_from(child.id()).unwrap_or(0);
            if pid > 0 {
                unsafe { libc_kill(pid, SIGTERM) };
            }
            exited = wait_for_exit(&mut child, self.stop_timeout);
        }
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Starts `bitcoind` with its output appended to `<datadir>/console.log`.
fn spawn_bitcoind(bin: &Path, args: &[String], datadir: &Path) -> std::io::Result<Child> {
    let out = fs::OpenOptions::new().create(true).append(true).open(datadir.join("console.log"))?;
    let err = out.try_clone()?;
    Command::new(bin).args(args).stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).spawn()
}

enum StartFailure {
    PortsBusy(String),
    Other(NodeError),
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() && self.up {
            eprintln!(
                "kiln-testkit: test panicked; bitcoind log tail ({}):\n{}",
                self.datadir.display(),
                self.log_tail(3000)
            );
        }
        self.shut_down();
        release_ports(&self.ports);
        if std::env::var_os(ENV_KEEP_DATADIR).is_some_and(|v| v == OsStr::new("1")) {
            eprintln!("kiln-testkit: kept datadir {}", self.datadir.display());
            return;
        }
        // A just-exited bitcoind may still have files being closed; retry briefly.
        for _ in 0..20 {
            match fs::remove_dir_all(&self.datadir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        eprintln!("kiln-testkit: could not remove {}", self.datadir.display());
    }
}

/// Starts a node or skips the current test.
///
/// `require_node!()` / `require_node!(opts)` evaluate to a [`Node`]; when no
/// `bitcoind` is found (and `KILN_REQUIRE_BITCOIND` is not `1`) they print
/// "skipped: no bitcoind (set BITCOIND)" and `return` from the enclosing
/// function. For a test returning `Result`, give the value to return:
/// `require_node!(opts, Ok(()))`.
#[macro_export]
macro_rules! require_node {
    () => {
        $crate::require_node!($crate::NodeOptions::default())
    };
    ($opts:expr) => {
        match $crate::Node::start_or_skip($opts) {
            Some(node) => node,
            None => return,
        }
    };
    ($opts:expr, $skip_value:expr) => {
        match $crate::Node::start_or_skip($opts) {
            Some(node) => node,
            None => return $skip_value,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_prefers_env_then_path() {
        let dir = fresh_datadir().unwrap();
        let exe = dir.join("bitcoind");
        fs::write(&exe, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.join("plain");
        fs::write(&plain, "").unwrap();

        // $BITCOIND wins and must be executable.
        let got = locate_bitcoind(Some(exe.clone().into()), Some("/nonexistent".into())).unwrap();
        assert_eq!(got, Some(exe.clone()));
        assert!(matches!(
            locate_bitcoind(Some(plain.clone().into()), Some(dir.clone().into())),
            Err(NodeError::BadBinary { .. })
        ));
        assert!(matches!(locate_bitcoind(Some(dir.join("missing").into()), None), Err(NodeError::BadBinary { .. })));
        // Empty $BITCOIND counts as unset; then PATH is searched in order.
        let path = std::env::join_paths(["/nonexistent".into(), dir.clone()]).unwrap();
        assert_eq!(locate_bitcoind(Some("".into()), Some(path)).unwrap(), Some(exe));
        assert_eq!(locate_bitcoind(None, Some("/nonexistent".into())).unwrap(), None);
        assert_eq!(locate_bitcoind(None, None).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    /// Port lists the next `pick_ports` calls return (last first), to
    /// simulate a port being taken between choosing and binding it.
    pub(super) static FORCED_PORTS: Mutex<Vec<Vec<u16>>> = Mutex::new(Vec::new());

    /// Both kinds of collision (P2P port, then RPC port taken by someone
    /// else) are retried with fresh ports. Needs `$BITCOIND`.
    #[test]
    fn retries_when_ports_are_taken() {
        let Ok(Some(bin)) = find_bitcoind() else {
            eprintln!("{SKIP_MESSAGE}");
            return;
        };
        let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let free = {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        for forced in [vec![free, taken], vec![taken]] {
            let listen = forced.len() == 2;
            FORCED_PORTS.lock().unwrap().push(forced);
            let opts = NodeOptions { bitcoind: Some(bin.clone()), ..NodeOptions::new().listen(listen) };
            let t = Instant::now();
            let node = Node::start(opts).expect("retry with fresh ports");
            assert_ne!(node.rpc_addr().port(), taken);
            assert_ne!(node.p2p_addr().map(|a| a.port()), Some(taken));
            assert!(FORCED_PORTS.lock().unwrap().is_empty(), "forced ports were used");
            eprintln!("listen={listen}: started after a collision in {:?}", t.elapsed());
        }
        drop(squatter);
    }

    #[test]
    fn ports_are_distinct() {
        let a = pick_ports(2).unwrap();
        let b = pick_ports(2).unwrap();
        let all: HashSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 4);
        release_ports(&a);
        release_ports(&b);
    }
}
