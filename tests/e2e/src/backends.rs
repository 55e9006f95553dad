//! A broker and a PostgreSQL server of a test's own, which it may crash, stop and restart
//! without disturbing the other tests (they share `make test`'s broker and PostgreSQL).
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::free_port;

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_port(port: u16, what: &str, log: &Path) {
    for _ in 0..300 {
        if port_open(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} did not listen on {port}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The pinned tansu broker (`make test` installs it), on a port and folder of its own.
pub struct PrivateBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn tansu() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo = Path::new(&home).join(".cargo/bin/tansu");
    if cargo.exists() {
        cargo
    } else {
        PathBuf::from("tansu")
    }
}

impl PrivateBroker {
    pub fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kefu-broker-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut b = Self {
            port: free_port(),
            dir,
            child: None,
        };
        b.run();
        b
    }

    fn run(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("broker log");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("tansu (make test installs it)");
        self.child = Some(child);
        wait_port(self.port, "tansu", &self.dir.join("broker.log"));
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Whether the broker panicked (its log says so).
    pub fn panicked(&self) -> bool {
        std::fs::read_to_string(self.dir.join("broker.log"))
            .unwrap_or_default()
            .contains("panicked")
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A PostgreSQL server of its own (initdb into a temporary folder, trust authentication on
/// 127.0.0.1), run as the `postgres` user when the test runs as root.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .filter(|p| p.join("pg_ctl").exists())
        .expect("PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL program, run as `postgres` when the test runs as root (PostgreSQL refuses
/// to run as root).
fn pg_command(argv: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(argv);
        c
    } else {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..]);
        c
    }
}

impl PrivatePostgres {
    pub fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "kefu-pg-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).expect("pg dir");
        let pg = Self {
            port: free_port(),
            dir,
            bin: pg_bin(),
        };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(ok.success(), "chown the PostgreSQL folder");
        }
        let data = pg.dir.join("data");
        pg.run(&[
            pg.bin.join("initdb").to_str().expect("path"),
            "-D",
            data.to_str().expect("path"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        pg.ctl("start");
        pg
    }

    /// Runs a PostgreSQL program to its end; it must succeed.
    fn run(&self, argv: &[&str]) {
        let out = pg_command(argv).output().expect("PostgreSQL program");
        assert!(
            out.status.success(),
            "{argv:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("postgres.log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mut argv = vec![
            self.bin.join("pg_ctl").to_str().expect("path").to_owned(),
            "-D".into(),
            data.to_str().expect("path").into(),
            "-l".into(),
            log.to_str().expect("path").into(),
            "-o".into(),
            opts,
            "-w".into(),
        ];
        if action != "start" {
            argv.extend(["-m".into(), "fast".into()]);
        }
        argv.push(action.into());
        self.run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// A database of its own on this server: its URL.
    pub async fn database(&self, name: &str) -> String {
        let admin = kefu_runtime::db::connect(&self.url("postgres"))
            .await
            .expect("private PostgreSQL");
        use sea_orm::ConnectionTrait;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A fast restart: every connection is dropped, in-flight transactions roll back.
    pub fn restart(&self) {
        self.ctl("restart");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let pg_ctl = self.bin.join("pg_ctl");
        let argv = [
            pg_ctl.to_str().unwrap_or_default(),
            "-D",
            data.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "stop",
        ];
        let _ = pg_command(&argv).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
