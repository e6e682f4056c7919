//! A FerretDB process of a test's own (the binary scripts/db.sh caches), to stop and start
//! without touching the shared database.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mongodb::bson::doc;

/// True when `RECSYS_REQUIRE_DB=1`: a missing database is a failure, not a skip.
pub fn require_db() -> bool {
    std::env::var("RECSYS_REQUIRE_DB").is_ok_and(|v| v == "1")
}

/// The shared database's `MONGODB_URI`, or `None` (the test skips with a message; a
/// failure when [`require_db`]).
pub fn uri_from_env() -> Option<String> {
    match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.trim().is_empty() => Some(uri.trim().to_string()),
        _ => {
            assert!(
                !require_db(),
                "RECSYS_REQUIRE_DB=1 but MONGODB_URI is not set (run scripts/test.sh, or eval \"$(scripts/db.sh start)\")"
            );
            eprintln!("skipping: MONGODB_URI is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A FerretDB of the test's own (`name` tells its data folder apart), answering; or `None`
/// when its binary is missing (the test skips with a message; a failure when
/// [`require_db`]).
pub async fn own_ferretdb(name: &str) -> Option<Ferret> {
    let Some(bin) = ferretdb_binary() else {
        assert!(
            !require_db(),
            "RECSYS_REQUIRE_DB=1 but the FerretDB binary is not in ~/.cache/recsys/bin (or $RECSYS_TOOLS): run scripts/db.sh start once to build it"
        );
        eprintln!(
            "skipping: no FerretDB binary in ~/.cache/recsys/bin (scripts/db.sh start builds it)"
        );
        return None;
    };
    let ferret = Ferret::start_named(bin, name);
    ferret.wait_ready().await;
    Some(ferret)
}

/// Drops a test's database (best effort: the test's assertions are already made).
pub async fn drop_database(uri: &str, database: &str) {
    if let Ok(client) = mongodb::Client::with_uri_str(uri).await {
        let _ = client.database(database).drop().await;
    }
}

pub fn ferretdb_binary() -> Option<PathBuf> {
    let tools = std::env::var_os("RECSYS_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/recsys/bin")))?;
    let bin = tools.join("ferretdb");
    bin.is_file().then_some(bin)
}

pub fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 65000 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of loopback ports");
}

/// A FerretDB process of our own (killed on drop).
pub struct Ferret {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Ferret {
    pub fn start(bin: PathBuf) -> Ferret {
        Ferret::start_named(bin, "main")
    }

    pub fn start_named(bin: PathBuf, name: &str) -> Ferret {
        let data = std::env::temp_dir().join(format!(
            "recsys-server-ferret-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(data.join("state")).unwrap();
        let mut f = Ferret {
            bin,
            data,
            port: free_port_pair(),
            child: None,
        };
        f.spawn();
        f
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    pub fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .arg("--handler=sqlite")
            .arg(format!("--sqlite-url=file:{}/", self.data.display()))
            .arg(format!("--listen-addr=127.0.0.1:{}", self.port))
            .arg(format!("--debug-addr=127.0.0.1:{}", self.port + 1))
            .arg(format!("--state-dir={}", self.data.join("state").display()))
            .arg("--telemetry=disable")
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ferretdb");
        self.child = Some(child);
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = async {
                let mut options = mongodb::options::ClientOptions::parse(self.uri())
                    .await
                    .ok()?;
                options.server_selection_timeout = Some(Duration::from_millis(500));
                let client = mongodb::Client::with_options(options).ok()?;
                client
                    .database("admin")
                    .run_command(doc! { "ping": 1 })
                    .await
                    .ok()
            }
            .await;
            if ok.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "FerretDB did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Ferret {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
