//! Throwaway PostgreSQL for tests (feature `testing`): a schema of its own
//! in the database that `TEST_POSTGRES_URL` names (`.ci/run` starts one),
//! or a private server that a test starts, stops and starts again.
//! Without PostgreSQL, tests fail under `CI=true` and skip elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// The variable that names the test database (not `TAVERN_*`: those are
/// Tavern's own configuration, and an unknown one stops it).
pub const URL_VAR: &str = "TEST_POSTGRES_URL";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails the test under CI, else says why it is skipped.
fn unavailable(why: &str) {
    assert!(
        !in_ci(),
        "CI=true but {why}: the PostgreSQL tests must run (`bash .ci/run` sets them up)"
    );
    eprintln!("skipped: {why} (`bash .ci/run` sets PostgreSQL up)");
}

/// The test database's URL, or `None` when there is none (see the module).
pub fn test_database_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            unavailable(&format!("{URL_VAR} is not set"));
            None
        }
    }
}

/// `url` with its connections confined to `schema`.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

async fn run(url: &str, sql: String) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute(AssertSqlSafe(sql)).await?;
    conn.close().await
}

/// A fresh schema in the test database, dropped (with all it holds) when
/// this is dropped.
pub struct TestSchema {
    base: String,
    name: String,
}

impl TestSchema {
    pub async fn create() -> Option<Self> {
        let base = test_database_url()?;
        // The extension lives in the database's default schema, shared by
        // every test schema (two tests creating it at once may race; the
        // loser finds it there).
        if let Err(e) = run(&base, "CREATE EXTENSION IF NOT EXISTS btree_gist".into()).await {
            eprintln!("CREATE EXTENSION btree_gist: {e} (another test may have made it)");
        }
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        run(&base, format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create a schema in {URL_VAR}'s database: {e}"));
        Some(Self { base, name })
    }

    /// A URL whose connections see only this schema.
    pub fn url(&self) -> String {
        with_search_path(&self.base, &self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (base, sql) = (
            self.base.clone(),
            format!("DROP SCHEMA {} CASCADE", self.name),
        );
        // Drop may run inside a runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(run(&base, sql))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("cannot drop test schema {}: {e}", self.name);
        }
    }
}

/// A private PostgreSQL server on a loopback port, in a temporary
/// directory, stopped (by its pid file, through `pg_ctl`) when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// The newest installed PostgreSQL's server programs.
fn server_programs() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Runs a PostgreSQL program as the `postgres` user when we are root
/// (the server refuses to run as root), else as ourselves.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Whether this process runs as root (`/proc/self` belongs to its user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Writes `dir/name` (mode 0600), owned by whoever owns `dir`.
fn write_as_owner_of(dir: &Path, name: &str, text: &str) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(dir).expect("the directory");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).expect("chown");
}

fn check(what: &str, c: &mut Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Creates and starts a server; `None` when PostgreSQL is not installed.
    pub fn start() -> Option<Self> {
        Self::create(None)
    }

    /// Like [`Cluster::start`], with TLS from this certificate chain and
    /// key (PEM), and refusing every connection without TLS.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Option<Self> {
        Self::create(Some((cert_pem, key_pem)))
    }

    fn create(tls: Option<(&str, &str)>) -> Option<Self> {
        let Some(bin) = server_programs() else {
            unavailable("PostgreSQL's server programs are not in /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        if is_root() {
            check(
                "chown postgres",
                Command::new("chown").arg("postgres:").arg(dir.path()),
            );
        }
        check(
            "initdb",
            as_server_user(&bin.join("initdb"))
                .args(["-A", "trust", "-U", "tavern", "--no-sync", "-D"])
                .arg(dir.path().join("data")),
        );
        if let Some((cert, key)) = tls {
            let data = dir.path().join("data");
            let conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("a config");
            for (name, text) in [
                ("server.crt", cert),
                ("server.key", key),
                ("postgresql.conf", &format!("{conf}\nssl = on\n")),
                (
                    "pg_hba.conf",
                    "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
                ),
            ] {
                write_as_owner_of(&data, name, text);
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self { dir, bin, port };
        cluster.start_again();
        Some(cluster)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://tavern@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut c = as_server_user(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(self.dir.path().join("data")).args(args);
        c
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        check(
            "pg_ctl stop",
            &mut self.pg_ctl(&["-m", "fast", "-w", "stop"]),
        );
    }

    /// Starts the server (again) on its port, waiting until it accepts
    /// connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        check(
            "pg_ctl start",
            &mut self.pg_ctl(&["-w", "-l", &log.to_string_lossy(), "-o", &options, "start"]),
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]).output();
    }
}
