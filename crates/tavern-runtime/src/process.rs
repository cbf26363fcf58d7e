//! The `process` driver: each world is a child process in its own process
//! group, under `ROOT/<slug>/` (ROOT is `DATA_DIR/instances`):
//!
//! - `data/`: Foundry's user data directory (`--dataPath`);
//! - `server.json`: the pid file (instance id, pid, the process's start
//!   time from `/proc`, port), by which a restarted Tavern adopts a server
//!   that still runs and never starts a second copy;
//! - `logs/server.log`: the server's stdout and stderr, rotated by size
//!   (copy and truncate, so an adopted server keeps writing to it).
//!
//! Children get a clean environment. A stop sends SIGTERM to the group,
//! waits for the grace period (Foundry flushes its world), then SIGKILL.

use std::collections::HashMap;
use std::io::{BufRead as _, Seek as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tavern_types::{InstanceId, Slug};

use crate::foundry_config::write_config;
use crate::{Disposal, InstanceSpec, Launch, Observed, Runtime, RuntimeError, dispose_data};

/// Rotate a server's log beyond this size; one older file is kept.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct PidFile {
    instance_id: InstanceId,
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: tells a reused pid from ours.
    start_time: u64,
    port: u16,
}

/// The driver. Cheap to clone.
#[derive(Clone)]
pub struct ProcessRuntime {
    root: PathBuf,
    archive: PathBuf,
    ports: (u16, u16),
    /// How our own children ended, by slug (adopted ones are reaped by init).
    exits: Arc<Mutex<HashMap<Slug, String>>>,
    /// Where the next port search starts: ports rotate through the range, so
    /// a port freed by one world is not at once handed to another.
    next_port: Arc<Mutex<u32>>,
    /// One operation at a time per world.
    locks: Arc<Mutex<HashMap<Slug, Arc<tokio::sync::Mutex<()>>>>>,
    /// The package library (`DATA_DIR/packages`), absolute.
    packages: Option<PathBuf>,
}

impl ProcessRuntime {
    /// `root` holds one directory per world, `archive` what `remove` moves
    /// out of the way; ports come from `ports` (inclusive).
    pub fn new(root: PathBuf, archive: PathBuf, ports: (u16, u16)) -> Self {
        // Children run in their own directories: keep every path absolute.
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        Self {
            root: absolute(root),
            archive: absolute(archive),
            ports,
            exits: Arc::default(),
            next_port: Arc::new(Mutex::new(std::process::id())),
            locks: Arc::default(),
            packages: None,
        }
    }

    /// Worlds' packages are linked from the library at `dir`.
    pub fn with_packages(mut self, dir: PathBuf) -> Self {
        self.packages = Some(std::path::absolute(&dir).unwrap_or(dir));
        self
    }

    /// The world's directory.
    pub fn instance_dir(&self, slug: &Slug) -> PathBuf {
        self.root.join(slug.as_str())
    }

    /// Foundry's data directory of a world.
    pub fn data_dir(&self, slug: &Slug) -> PathBuf {
        self.instance_dir(slug).join("data")
    }

    fn pid_path(&self, slug: &Slug) -> PathBuf {
        self.instance_dir(slug).join("server.json")
    }

    fn log_path(&self, slug: &Slug) -> PathBuf {
        self.instance_dir(slug).join("logs").join("server.log")
    }

    fn lock(&self, slug: &Slug) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(slug.clone()).or_default().clone()
    }

    fn read_pid(&self, slug: &Slug) -> Option<PidFile> {
        let text = std::fs::read_to_string(self.pid_path(slug)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn observed(&self, slug: &Slug, pf: &PidFile) -> Observed {
        let alive = is_alive(pf.pid, pf.start_time);
        let exit = if alive {
            None
        } else {
            let exits = self.exits.lock().unwrap_or_else(|e| e.into_inner());
            Some(
                exits
                    .get(slug)
                    .cloned()
                    .unwrap_or_else(|| "exited".to_owned()),
            )
        };
        Observed {
            id: pf.instance_id,
            slug: slug.clone(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], pf.port)),
            alive,
            exit,
            kept: false,
        }
    }

    /// A port in the range that no live world of ours holds and that can be
    /// bound now.
    fn pick_port(&self, taken: &[u16]) -> Result<u16, RuntimeError> {
        let (from, to) = self.ports;
        let span = u32::from(to - from) + 1;
        let mut next = self.next_port.lock().unwrap_or_else(|e| e.into_inner());
        let offset = *next % span;
        let port = (0..span)
            .map(|i| from + u16::try_from((offset + i) % span).unwrap_or(0))
            .find(|p| {
                !taken.contains(p)
                    && std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, *p)))
                        .is_ok()
            })
            .ok_or(RuntimeError::NoPort { from, to })?;
        *next = u32::from(port - from) + 1;
        Ok(port)
    }

    fn live_ports(&self) -> Vec<u16> {
        self.all_pid_files()
            .into_iter()
            .filter(|(_, pf)| is_alive(pf.pid, pf.start_time))
            .map(|(_, pf)| pf.port)
            .collect()
    }

    fn all_pid_files(&self) -> Vec<(Slug, PidFile)> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| Slug::parse(e.file_name().to_str()?).ok())
            .filter_map(|slug| self.read_pid(&slug).map(|pf| (slug, pf)))
            .collect()
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError> {
        let slug = &spec.slug;
        let io = |op| move |e| RuntimeError::io(op, slug, e);
        let data = self.data_dir(slug);
        let port = self.pick_port(&self.live_ports())?;
        write_config(&data, port, &spec.config).map_err(io("write Foundry's Config files"))?;
        if let Some(lib) = &self.packages {
            let linked = crate::packages::link_packages(&data, &spec.config.packages, lib, lib)
                .map_err(io("link the world's packages"))?;
            crate::packages::log_clashes(slug, &linked);
        } else if !spec.config.packages.is_empty() {
            return Err(RuntimeError::Refused {
                slug: slug.to_string(),
                message: "it uses library packages and this runtime has no package library".into(),
            });
        }
        let log_path = self.log_path(slug);
        std::fs::create_dir_all(log_path.parent().unwrap_or(&self.root))
            .map_err(io("create the log directory"))?;
        rotate_log(&log_path).map_err(io("rotate the log"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("open the log"))?;
        let log_err = log.try_clone().map_err(io("open the log"))?;

        let mut cmd = match &spec.launch {
            Launch::Node { node, main_js } => {
                let mut c = tokio::process::Command::new(node);
                c.arg(main_js);
                c
            }
            Launch::Stub { exe } => {
                let mut c = tokio::process::Command::new(exe);
                c.arg("foundry-stub");
                c
            }
            Launch::Container { .. } | Launch::Pod { .. } | Launch::Task { .. } => {
                unreachable!("refused above")
            }
        };
        cmd.arg(format!("--dataPath={}", data.display()))
            .arg(format!("--port={port}"))
            .args(["--noupnp", "--noupdate"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.instance_dir(slug))
            .current_dir(self.instance_dir(slug))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(io("start the server"))?;
        let pid = child.id().ok_or_else(|| RuntimeError::Refused {
            slug: slug.to_string(),
            message: "the server exited at once".into(),
        })?;
        let start_time = proc_start_time(pid).unwrap_or(0);
        let pf = PidFile {
            instance_id: spec.id,
            pid,
            start_time,
            port,
        };
        let text = serde_json::to_string(&pf)
            .map_err(|e| io("write the pid file")(std::io::Error::other(e)))?;
        let pid_path = self.pid_path(slug);
        let tmp = pid_path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &pid_path))
            .map_err(io("write the pid file"))?;
        self.exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(slug);

        // Reap the child and remember how it ended.
        let exits = self.exits.clone();
        let reaped_slug = slug.clone();
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(e) => format!("lost track of the process: {e}"),
            };
            exits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(reaped_slug, how);
        });
        tracing::info!(slug = %slug, pid, port, "started server");
        Ok(self.observed(slug, &pf))
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("unknown signal");
            format!("killed by {name}")
        }
        _ => "exited".to_owned(),
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot),
/// and whether the process is a zombie.
fn proc_stat(pid: u32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let zombie = fields.first() == Some(&"Z") || fields.first() == Some(&"X");
    let start = fields.get(19)?.parse().ok()?;
    Some((start, zombie))
}

fn proc_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(t, _)| t)
}

/// Our process still runs (not a zombie, and not a newer process that
/// reuses its pid).
fn is_alive(pid: u32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((t, false)) if start_time == 0 || t == start_time)
}

/// Signals a server's process group and the server itself (a server not
/// started by us, adopted from a pid file, may lead no group). Never pid 0
/// or 1: `killpg(1)` would be `kill(-1)`, every process there is.
fn signal_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        tracing::error!(pid, "refusing to signal pid {pid}");
        return;
    }
    let _ = killpg(Pid::from_raw(raw), signal);
    let _ = nix::sys::signal::kill(Pid::from_raw(raw), signal);
}

/// Copy-and-truncate rotation, so a server that holds the file open (also
/// one adopted after a restart) keeps appending to the live file.
fn rotate_log(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > LOG_ROTATE_BYTES => {
            std::fs::copy(path, path.with_extension("log.1"))?;
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(0)
        }
        _ => Ok(()),
    }
}

/// The last `n` lines of `path` (and of its rotated predecessor when the
/// live file has fewer).
fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    fn read(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // Read at most the last 1 MiB: enough for any sensible tail.
        let len = f.metadata()?.len();
        let skip = len.saturating_sub(1024 * 1024);
        f.seek(std::io::SeekFrom::Start(skip))?;
        let mut lines: Vec<String> = std::io::BufReader::new(f)
            .lines()
            .map(|l| l.unwrap_or_default())
            .collect();
        if skip > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        let from = lines.len().saturating_sub(n);
        Ok(lines.split_off(from))
    }
    let mut lines = read(path, n)?;
    if lines.len() < n {
        let mut older = read(&path.with_extension("log.1"), n - lines.len())?;
        older.append(&mut lines);
        lines = older;
    }
    Ok(lines)
}

#[async_trait]
impl Runtime for ProcessRuntime {
    async fn ensure(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError> {
        if let Launch::Container { .. } | Launch::Pod { .. } | Launch::Task { .. } = spec.launch {
            return Err(RuntimeError::Refused {
                slug: spec.slug.to_string(),
                message: "a container world does not run as a process".into(),
            });
        }
        let lock = self.lock(&spec.slug);
        let _held = lock.lock().await;
        if let Some(pf) = self.read_pid(&spec.slug)
            && is_alive(pf.pid, pf.start_time)
        {
            if pf.instance_id != spec.id {
                return Err(RuntimeError::Refused {
                    slug: spec.slug.to_string(),
                    message: format!(
                        "its directory is in use by the server of instance {}",
                        pf.instance_id
                    ),
                });
            }
            return Ok(self.observed(&spec.slug, &pf));
        }
        self.spawn(spec).await
    }

    async fn stop(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        let lock = self.lock(slug);
        let _held = lock.lock().await;
        let Some(pf) = self.read_pid(slug) else {
            return Ok(());
        };
        if is_alive(pf.pid, pf.start_time) {
            signal_group(pf.pid, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while is_alive(pf.pid, pf.start_time) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if is_alive(pf.pid, pf.start_time) {
                tracing::warn!(slug = %slug, pid = pf.pid, ?grace, "server ignored SIGTERM; killing it");
                signal_group(pf.pid, Signal::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(10);
                while is_alive(pf.pid, pf.start_time) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            if is_alive(pf.pid, pf.start_time) {
                return Err(RuntimeError::Refused {
                    slug: slug.to_string(),
                    message: format!("process {} survived SIGKILL", pf.pid),
                });
            }
            tracing::info!(slug = %slug, pid = pf.pid, "stopped server");
        }
        match std::fs::remove_file(self.pid_path(slug)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RuntimeError::io("remove the pid file", slug, e))
            }
            _ => Ok(()),
        }
    }

    async fn remove(
        &self,
        slug: &Slug,
        grace: Duration,
        data: Disposal,
    ) -> Result<(), RuntimeError> {
        self.stop(slug, grace).await?;
        dispose_data(&self.instance_dir(slug), &self.archive, slug, data)?;
        self.exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(slug);
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(slug);
        Ok(())
    }

    fn data_dir(&self, slug: &Slug) -> Option<PathBuf> {
        Some(ProcessRuntime::data_dir(self, slug))
    }

    async fn observe_all(&self) -> Result<Vec<Observed>, RuntimeError> {
        let all = self.all_pid_files();
        let mut out = Vec::with_capacity(all.len());
        for (slug, pf) in all {
            let _ = rotate_log(&self.log_path(&slug));
            out.push(self.observed(&slug, &pf));
        }
        Ok(out)
    }

    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError> {
        let path = self.log_path(slug);
        tokio::task::spawn_blocking(move || tail_lines(&path, tail))
            .await
            .map_err(|e| RuntimeError::io("read the log", slug, std::io::Error::other(e)))?
            .map_err(|e| RuntimeError::io("read the log", slug, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        std::fs::write(log.with_extension("log.1"), "a\nb\nc\n").unwrap();
        std::fs::write(&log, "d\ne\n").unwrap();
        assert_eq!(tail_lines(&log, 1).unwrap(), ["e"]);
        assert_eq!(tail_lines(&log, 4).unwrap(), ["b", "c", "d", "e"]);
        assert_eq!(
            tail_lines(&dir.path().join("none.log"), 4).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn knows_its_own_process_and_not_a_stranger() {
        let me = std::process::id();
        let start = proc_start_time(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1), "a reused pid is not ours");
        assert!(!is_alive(u32::MAX - 1, 0));
    }
}
