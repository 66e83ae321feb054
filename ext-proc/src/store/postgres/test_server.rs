//! A real PostgreSQL server for tests: started on first use, one per test process, from
//! the newest `/usr/lib/postgresql/*/bin`. [`database`] hands each caller a new empty
//! database on it. [`TestServer::start`] starts a private one, for a test that stops and
//! restarts its server.
//!
//! PostgreSQL refuses to run as root: then `initdb` and `postgres` run as the `postgres`
//! OS user (the uid and gid of `id postgres`, set on the child process), owning the data
//! directory. A watchdog shell stops the server and deletes its directory once the test
//! process is gone (statics are never dropped, so nothing else would).

use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The role every database belongs to (trust authentication: no password).
pub(crate) const USER: &str = "aigw";

/// A URL of a new, empty database on this process's shared server.
pub(crate) fn database() -> String {
    shared().create_database()
}

/// The server [`database`] uses, started on first use.
pub(crate) fn shared() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(TestServer::start)
}

pub(crate) struct TestServer {
    /// Holds `data/` (the cluster), the socket and `postgres.log`.
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    /// The `postgres` OS user's (uid, gid) when we are root.
    run_as: Option<(u32, u32)>,
    postmaster: Mutex<Option<Child>>,
}

impl TestServer {
    /// initdb into a new temporary directory, then start the server on a free port.
    pub(crate) fn start() -> TestServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("aigw-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL")
            .keep();
        let run_as = if is_root() {
            let ids = postgres_user_ids();
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "chown -R postgres:postgres {dir:?}");
            Some(ids)
        } else {
            None
        };
        let server = TestServer {
            port: free_port(),
            dir,
            bin,
            run_as,
            postmaster: Mutex::new(None),
        };
        server.watch();
        let output = server
            .command("initdb")
            .arg("-D")
            .arg(server.data_dir())
            .args(["-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        server.resume();
        server
    }

    /// `postgres://aigw@127.0.0.1:<port>/<dbname>`.
    pub(crate) fn url(&self, dbname: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// A new empty database, `t_<n>`; its URL.
    pub(crate) fn create_database(&self) -> String {
        self.create_database_with("")
    }

    /// A new empty database, `t_<n>`, created with `options` appended to `CREATE DATABASE`
    /// (e.g. `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`); its URL.
    pub(crate) fn create_database_with(&self, options: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("t_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.execute(&format!("CREATE DATABASE {name} {options}"));
        self.url(&name)
    }

    /// Runs `sql` (simple protocol, so `CREATE DATABASE` works) in the `postgres` database.
    pub(crate) fn execute(&self, sql: &str) {
        off_runtime(|| {
            let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
                .expect("connect to the test server");
            admin
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        })
    }

    /// Stops the server (fast shutdown: sessions are cut) and waits until it is gone.
    pub(crate) fn stop(&self) {
        let mut postmaster = self
            .postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mut child) = postmaster.take() {
            let _ = Command::new("sh")
                .args(["-c", "kill -INT \"$1\"", "kill"])
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts
    /// connections.
    pub(crate) fn resume(&self) {
        let mut postmaster = self
            .postmaster
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        assert!(postmaster.is_none(), "the test server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("postgres.log");
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("postgres.log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = self.url("postgres");
            if off_runtime(|| postgres::Client::connect(&url, postgres::NoTls).is_ok()) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("postgres exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        *postmaster = Some(child);
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> String {
        let mut log = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.join("postgres.log")) {
            let _ = file.read_to_string(&mut log);
        }
        log
    }

    /// One of the server's programs, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(&self.dir).env("LC_ALL", "C.UTF-8");
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Once this process is gone: stop the server (its pid is the first line of
    /// `postmaster.pid`), then delete the directory. Never waited for: it outlives us.
    #[allow(clippy::zombie_processes)]
    fn watch(&self) {
        const SCRIPT: &str = r#"
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            pidfile="$2/data/postmaster.pid"
            if [ -f "$pidfile" ]; then
                pid=$(head -n 1 "$pidfile")
                kill -INT "$pid" 2>/dev/null
                i=0
                while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
                kill -KILL "$pid" 2>/dev/null
            fi
            rm -rf "$2"
        "#;
        Command::new("sh")
            .args(["-c", SCRIPT, "aigw-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the test server's watchdog");
    }
}

/// The sync client cannot run on a thread that drives async tasks (the lead's async tests
/// call [`database`] too): there, `f` runs on a thread of its own.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| scope.spawn(f).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The newest installed version's `bin` directory.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (PostgreSQL server binaries needed)",
                root.display()
            )
        })
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no {}/*/bin/postgres", root.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_user_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("running as root needs a `postgres` OS user"))
    };
    (id("-u"), id("-g"))
}

/// A port nobody listens on now (the OS picks it; a race with another process is unlikely).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
