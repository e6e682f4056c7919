//! Many replicas, with real processes: two `serve --from-store` processes (the example
//! binary a deployment runs) follow the model published in one database while a load
//! generator keeps 16 connections busy against both.
//!
//! * a model published mid-load (by the `publish` example) reaches both replicas, seen in
//!   their `/ready`, with zero failed requests;
//! * a corrupt published model is refused by both (`/ready` shows `refused_model`) and the
//!   previous model keeps answering, with zero failed requests;
//! * one replica killed (SIGKILL) mid-load leaves the other answering with zero failures.
//!
//! Why an integration test of this package: `cargo test` builds a package's examples
//! before running its tests, so `target/<profile>/examples/serve` (next to this test's
//! `deps` folder) is the binary of the same build, and the README's test command
//! (`scripts/test.sh`, `cargo test --workspace`) runs this test against the database it
//! starts. Each replica binds port 0 and reports the port it got on its `listening` log
//! line, so parallel runs never collide. The HTTP client is plain `std` (HTTP/1.1 over a
//! keep-alive `TcpStream` per connection): no dependency added, and every failure (refused
//! connection, reset, non-200 status, truncated or non-JSON body) counts.
//!
//! No assertion is on speed: waits poll with generous deadlines and only fail when the
//! deadline passes; phases are bounded by request counts, not by time.

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::example_binary;
use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::recommend::Bundle;
use recsys::store::mongo::MongoStore;
use recsys::{Hyperparameters, Loss};
use serde_json::Value;

/// Connections of the load generator.
const CONNECTIONS: usize = 16;
/// The longest any wait may take before the test fails (never reached when things work:
/// the replicas poll every 100 ms).
const PATIENCE: Duration = Duration::from_secs(120);
/// Sizes of the demo shop the bundles are trained on.
const USERS: usize = 300;
const PRODUCTS: usize = 150;

// ---- the binaries under test ----------------------------------------------------------

/// A command for an example binary with no `RECSYS_*` or `MONGODB_URI` variable of the
/// caller's environment (they are flag defaults: `RECSYS_BUNDLE` would make `serve` load a
/// file instead of the store).
fn example_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RECSYS_") {
            command.env_remove(&key);
        }
    }
    command.env_remove("MONGODB_URI");
    command
}

// ---- replicas -------------------------------------------------------------------------

/// The last lines a replica printed, for failure messages.
type Log = Arc<Mutex<VecDeque<String>>>;

fn keep_line(log: &Log, line: String) {
    let mut log = log.lock().unwrap();
    if log.len() == 400 {
        log.pop_front();
    }
    log.push_back(line);
}

/// One `serve --from-store` process; dropping it kills the process (also when the test
/// fails or panics) and, when the test is failing, prints what the process logged.
struct Replica {
    name: &'static str,
    child: Child,
    address: SocketAddr,
    log: Log,
}

impl Replica {
    fn start(name: &'static str, serve: &Path, uri: &str, database: &str) -> Replica {
        let mut child = example_command(serve)
            .args(["--from-store", "--mongodb-uri", uri, "--database", database])
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--store-poll-ms",
                "100",
            ])
            .args(["--log-format", "json", "--workers", "2"])
            .env("RECSYS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", serve.display()));
        let log: Log = Arc::default();
        let (address_tx, address_rx) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stdout_log = log.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line) {
                    let _ = address_tx.send(address);
                }
                keep_line(&stdout_log, line);
            }
        });
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let stderr_log = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                keep_line(&stderr_log, line);
            }
        });
        // The guard exists before the wait, so a replica that never listens is killed too.
        let mut replica = Replica {
            name,
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            match address_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(address) => {
                    replica.address = address;
                    return replica;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = replica.child.try_wait().expect("try_wait") {
                        panic!("{name} exited ({status}) before listening");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{name} did not report its address within {PATIENCE:?}"
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = replica.child.wait().expect("wait");
                    panic!("{name} closed its output ({status}) before listening");
                }
            }
        }
    }

    /// `/ready`, or a failure naming the replica when its process has ended.
    fn ready(&mut self) -> Value {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("{} ({}) has exited: {status}", self.name, self.address);
        }
        ready(self.address)
    }

    /// SIGKILL (on Unix; `TerminateProcess` elsewhere), then waits for the process's end.
    fn kill(&mut self) -> std::process::ExitStatus {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("---- {} ({}) logged:", self.name, self.address);
            for line in log {
                eprintln!("{line}");
            }
        }
    }
}

/// The address of serve's JSON `listening` log line
/// (`{"fields":{"message":"listening","address":"127.0.0.1:…"},…}`).
fn listening_address(line: &str) -> Option<SocketAddr> {
    let event: Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields")?;
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    fields.get("address")?.as_str()?.parse().ok()
}

// ---- HTTP/1.1 --------------------------------------------------------------------------

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive connection to one server (reconnecting only after the server said
/// `connection: close`; an error drops the connection and is returned).
struct Client {
    address: SocketAddr,
    connection: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(address: SocketAddr) -> Client {
        Client {
            address,
            connection: None,
        }
    }

    fn get(&mut self, path: &str) -> Result<Response, String> {
        if self.connection.is_none() {
            let stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(30))
                .map_err(|e| format!("connecting to {}: {e}", self.address))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .and_then(|()| stream.set_nodelay(true))
                .map_err(|e| e.to_string())?;
            self.connection = Some(BufReader::new(stream));
        }
        let connection = self.connection.as_mut().expect("connected");
        let answer =
            exchange(connection, path).map_err(|e| format!("GET {path} on {}: {e}", self.address));
        let keep = matches!(&answer, Ok(r) if !r.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")));
        if !keep {
            self.connection = None;
        }
        answer
    }
}

fn exchange(connection: &mut BufReader<TcpStream>, path: &str) -> Result<Response, String> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    connection
        .get_mut()
        .write_all(request.as_bytes())
        .map_err(|e| format!("writing the request: {e}"))?;
    let mut line = String::new();
    let read_line = |connection: &mut BufReader<TcpStream>, line: &mut String| {
        line.clear();
        match connection.read_line(line) {
            Ok(0) => Err("the connection closed before a complete answer".to_string()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("reading: {e}")),
        }
    };
    read_line(connection, &mut line)?;
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        read_line(connection, &mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("not a header: {header:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(length) = find("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("content-length {length:?}"))?;
        body.resize(length, 0);
        connection
            .read_exact(&mut body)
            .map_err(|e| format!("reading a body of {length} bytes: {e}"))?;
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            read_line(connection, &mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("chunk size {:?}", line.trim_end()))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    read_line(connection, &mut line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            connection
                .read_exact(&mut body[start..])
                .map_err(|e| format!("reading a chunk of {size} bytes: {e}"))?;
            body.truncate(start + size);
        }
    } else {
        connection
            .read_to_end(&mut body)
            .map_err(|e| format!("reading a body to its end: {e}"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `/ready` of the server at `address`, as JSON (fails the test when it does not answer
/// 200 with JSON).
fn ready(address: SocketAddr) -> Value {
    let answer = Client::new(address)
        .get("/ready")
        .unwrap_or_else(|e| panic!("/ready: {e}"));
    assert_eq!(
        answer.status,
        200,
        "/ready of {address}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    serde_json::from_slice(&answer.body).expect("/ready answers JSON")
}

/// Polls `check` until it holds; fails the test with `what` (and the last value seen)
/// after [`PATIENCE`].
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not after {PATIENCE:?} (last: {last})"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- the load generator ----------------------------------------------------------------

/// What the load generator saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    /// The first failures, described.
    errors: Mutex<Vec<String>>,
    /// Requests answered 200, per (replica, model version of the answer).
    answers: Mutex<HashMap<(SocketAddr, String), usize>>,
}

impl Tally {
    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(error);
        }
    }

    fn answered(&self, replica: SocketAddr, model: &str) -> usize {
        let answers = self.answers.lock().unwrap();
        answers
            .get(&(replica, model.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// [`CONNECTIONS`] threads, each with one keep-alive connection to one of `targets` (in
/// turn), asking for recommendations and similar products until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(targets: &[SocketAddr]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let workers = (0..CONNECTIONS)
            .map(|w| {
                let (stop, tally, target) =
                    (stop.clone(), tally.clone(), targets[w % targets.len()]);
                std::thread::spawn(move || {
                    let mut client = Client::new(target);
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let path = request_path(w, i);
                        match client.get(&path) {
                            Ok(answer) => check_answer(&tally, target, &path, &answer),
                            Err(e) => tally.fail(e),
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            workers,
        }
    }

    fn ok(&self) -> usize {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Waits until `more` requests beyond the current count were answered; fails at the
    /// first failed request.
    fn wait_for(&self, more: usize, what: &str) {
        let goal = self.ok() + more;
        eventually(what, || {
            let (ok, failed) = (self.ok(), self.tally.failed.load(Ordering::Relaxed));
            assert_eq!(
                failed,
                0,
                "{what}: failed requests (first ones: {:#?})",
                self.tally.errors.lock().unwrap()
            );
            if ok >= goal {
                Ok(())
            } else {
                Err(format!("{ok} of {goal} answered, {failed} failed"))
            }
        });
    }

    /// Stops the workers; the tally of the whole run.
    fn finish(mut self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            worker.join().expect("a load worker panicked");
        }
        self.tally.clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The `i`-th request of load worker `worker`: in turn a known user, a stranger viewing a
/// product, a product's similar products and the seed's contract route.
fn request_path(worker: usize, i: usize) -> String {
    let user = 1 + (worker * 37 + i * 7) % USERS;
    let product = 10_001 + (worker * 19 + i * 11) % PRODUCTS;
    match i % 4 {
        0 => format!("/recommendations/{user}?n=5"),
        1 => format!("/recommendations/visitor-{worker}-{i}?n=5&productId={product}"),
        2 => format!("/products/{product}/similar?n=5"),
        _ => format!("/similar-products?productId={product}&userId={user}&n=5"),
    }
}

/// A request succeeded when it was answered 200 with a JSON body and the model header.
fn check_answer(tally: &Tally, target: SocketAddr, path: &str, answer: &Response) {
    let body_is_json = serde_json::from_slice::<Value>(&answer.body).is_ok();
    match (answer.status, body_is_json, answer.header("x-recsys-model")) {
        (200, true, Some(model)) => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
            *tally
                .answers
                .lock()
                .unwrap()
                .entry((target, model.to_string()))
                .or_default() += 1;
        }
        (status, _, model) => tally.fail(format!(
            "GET {path} on {target}: status {status}, model header {model:?}, body {}",
            String::from_utf8_lossy(&answer.body)
        )),
    }
}

fn assert_no_failure(tally: &Tally, phase: &str) -> usize {
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    println!("{phase}: {ok} requests answered 200, {failed} failed");
    assert_eq!(
        failed,
        0,
        "{phase}: failed requests (first ones: {:#?})",
        tally.errors.lock().unwrap()
    );
    assert!(ok > 0, "{phase}: the load generator ran");
    ok
}

// ---- models ----------------------------------------------------------------------------

/// A bundle trained on the small demo shop; `seed` changes the model and so its id.
fn train_bundle(seed: u64) -> Bundle {
    let mut shop = generate(&DemoConfig {
        users: USERS,
        products: PRODUCTS,
        interactions: 6_000,
        seed: 5,
    });
    let products = shop.products.clone();
    let experiment = Experiment::load(&mut shop, &ExperimentConfig::demo_hybrid(), Split::None)
        .expect("the demo shop loads");
    let params = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(16)
        .seed(seed)
        .build()
        .expect("hyperparameters");
    let (model, _) = experiment.fit(params, 5, 1, |_| {}).expect("training");
    experiment
        .bundle(model)
        .products(products)
        .neighbours(10)
        .description(format!("replicas test, seed {seed}"))
        .build()
        .expect("the bundle")
}

/// Drops the test's database when dropped (declared before the replicas, so they are
/// killed first).
struct DropDatabase(MongoStore);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = self.0.drop_database();
    }
}

/// A real replica's `/ready` against the `Readiness` schema of docs/openapi.json: every
/// field documented, the required ones present, with their documented types, and
/// `model_source` and `refused_model` as documented (the server crate's openapi test
/// checks the other routes and kinds with in-process servers).
fn assert_documented(ready: &Value) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).expect("docs/openapi.json is JSON");
    let schema = &doc["components"]["schemas"]["Readiness"];
    assert_object_documented(schema, ready, "/ready");
    let kind = &ready["model_source"]["kind"];
    let variant = schema["properties"]["model_source"]["anyOf"]
        .as_array()
        .expect("model_source is documented per kind (anyOf)")
        .iter()
        .find(|variant| &variant["properties"]["kind"]["const"] == kind)
        .unwrap_or_else(|| panic!("model_source kind {kind} is not documented"));
    assert_object_documented(variant, &ready["model_source"], "/ready model_source");
    if let Some(refused) = ready.get("refused_model") {
        let schema = &schema["properties"]["refused_model"];
        assert_object_documented(schema, refused, "/ready refused_model");
    }
}

/// `value`'s fields are `schema`'s properties, with every required one and the documented
/// types and constants.
fn assert_object_documented(schema: &Value, value: &Value, at: &str) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{at} is not an object: {value}"));
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{at}: no documented properties"));
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().expect("required names");
        assert!(
            object.contains_key(required),
            "{at}: the documented field {required} is missing: {value}"
        );
    }
    for (key, field) in object {
        let documented = properties.get(key).unwrap_or_else(|| {
            panic!("{at}: the field {key} is not documented in docs/openapi.json: {value}")
        });
        let typed = match documented["type"].as_str() {
            Some("string") => field.is_string(),
            Some("integer") => field.is_i64() || field.is_u64(),
            Some("boolean") => field.is_boolean(),
            Some("object") => field.is_object(),
            _ => true,
        };
        assert!(typed, "{at}: {key} is {field}, documented as {documented}");
        if let Some(constant) = documented.get("const") {
            assert_eq!(field, constant, "{at}: {key}");
        }
    }
}

fn model_version(ready: &Value) -> &str {
    ready["model_version"].as_str().unwrap_or("")
}

// ---- the test --------------------------------------------------------------------------

#[test]
fn two_serve_processes_follow_published_models_under_load() {
    let uri = match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.trim().is_empty() => uri.trim().to_string(),
        _ => {
            assert!(
                std::env::var("RECSYS_REQUIRE_DB").as_deref() != Ok("1"),
                "RECSYS_REQUIRE_DB=1 but MONGODB_URI is not set (run scripts/test.sh, or eval \"$(scripts/db.sh start)\")"
            );
            eprintln!("skipping: MONGODB_URI is not set (scripts/test.sh sets it)");
            return;
        }
    };
    let (serve, publish) = (example_binary("serve"), example_binary("publish"));
    // A database of this run's own: runs from several checkouts may share one server.
    let database = format!("recsys_test_replicas_{}", std::process::id());
    let store = MongoStore::connect(&uri)
        .expect("connecting to the test database")
        .with_database(&database);
    store
        .drop_database()
        .expect("dropping a leftover database of this name");
    let _drop_database = DropDatabase(store.clone());
    let files = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&database);
    std::fs::create_dir_all(&files).expect("a folder for bundle files");

    let (v1, v2, v3) = (train_bundle(1), train_bundle(2), train_bundle(3));
    let ids = [&v1, &v2, &v3].map(|b| b.metadata().model_id.clone());
    let [id1, id2, id3] = &ids;
    assert!(
        id1 != id2 && id2 != id3 && id1 != id3,
        "three models: {ids:?}"
    );

    // ---- two replicas start from the published model
    store
        .publish_model(id1, &v1.to_bytes().expect("bundle bytes"))
        .expect("publishing the first model");
    let mut replicas = vec![
        Replica::start("replica A", &serve, &uri, &database),
        Replica::start("replica B", &serve, &uri, &database),
    ];
    let addresses: Vec<SocketAddr> = replicas.iter().map(|r| r.address).collect();
    assert_ne!(addresses[0], addresses[1]);
    for replica in &mut replicas {
        let ready = replica.ready();
        assert_eq!(model_version(&ready), id1, "{}: {ready}", replica.name);
        assert_eq!(ready["model_source"]["kind"], "store", "{ready}");
        assert_eq!(ready["model_source"]["model_id"], id1.as_str(), "{ready}");
        assert!(ready.get("refused_model").is_none(), "{ready}");
        assert_documented(&ready);
    }

    // ---- a model published mid-load reaches both, with zero failed requests
    let load = Load::start(&addresses);
    load.wait_for(500, "the load generator answered before the publication");
    let file = files.join(format!("{id2}.rsb"));
    v2.save(&file).expect("saving the second bundle");
    let published = Instant::now();
    let output = example_command(&publish)
        .args(["--uri", &uri, "--database", &database])
        .arg(&file)
        .output()
        .expect("running the publish example");
    assert!(
        output.status.success(),
        "publish {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for replica in &mut replicas {
        eventually(&format!("{} serves {id2}", replica.name), || {
            let ready = replica.ready();
            if model_version(&ready) == id2 {
                Ok(())
            } else {
                Err(ready.to_string())
            }
        });
    }
    println!(
        "both replicas report {id2} in /ready {:.2}s after `publish` started",
        published.elapsed().as_secs_f64()
    );
    // Both replicas answer the load with the new model, then the load stops.
    for &address in &addresses {
        eventually(
            &format!("{address} answers the load with {id2}"),
            || match load.tally.answered(address, id2) {
                n if n >= 300 => Ok(()),
                n => Err(format!("{n} answers with {id2}")),
            },
        );
    }
    let tally = load.finish();
    assert_no_failure(&tally, "publishing a new model");
    for &address in &addresses {
        assert!(
            tally.answered(address, id1) > 0 && tally.answered(address, id2) > 0,
            "{address} answered the load with both models: {:?}",
            tally.answers.lock().unwrap()
        );
    }
    for replica in &mut replicas {
        let ready = replica.ready();
        assert_eq!(ready["model_source"]["kind"], "store", "{ready}");
        assert_eq!(ready["model_source"]["model_id"], id2.as_str(), "{ready}");
        assert_documented(&ready);
    }

    // ---- a corrupt model is refused by both; they keep answering with the old one
    let mut damaged = v3.to_bytes().expect("bundle bytes");
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    // The publish example checks a file before publishing it, so it refuses this one...
    let file = files.join(format!("{id3}-damaged.rsb"));
    std::fs::write(&file, &damaged).expect("writing the damaged bundle");
    let output = example_command(&publish)
        .args(["--uri", &uri, "--database", &database])
        .arg(&file)
        .output()
        .expect("running the publish example");
    assert!(
        !output.status.success(),
        "publish accepted a damaged bundle: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    // ... and the damaged bytes reach the store through the library call, as a writer
    // that does not check (or damage in transit or at rest) would leave them.
    let load = Load::start(&addresses);
    load.wait_for(300, "the load generator answered before the damaged model");
    store
        .publish_model(id3, &damaged)
        .expect("publishing the damaged model");
    for replica in &mut replicas {
        eventually(&format!("{} refuses {id3}", replica.name), || {
            let ready = replica.ready();
            if ready["refused_model"]["model_id"].as_str() == Some(id3.as_str()) {
                Ok(())
            } else {
                Err(ready.to_string())
            }
        });
        let ready = replica.ready();
        assert_eq!(model_version(&ready), id2, "{}: {ready}", replica.name);
        let reason = ready["refused_model"]["reason"].as_str().unwrap_or("");
        assert!(reason.contains("checksum"), "{}: {ready}", replica.name);
        println!("{} /ready after the damaged model: {ready}", replica.name);
        assert_documented(&ready);
    }
    load.wait_for(300, "the load generator answered after the refusal");
    let tally = load.finish();
    let answered = assert_no_failure(&tally, "refusing a damaged model");
    for &address in &addresses {
        assert_eq!(
            tally.answered(address, id3),
            0,
            "{address} answered with the refused model"
        );
    }
    assert_eq!(
        tally.answered(addresses[0], id2) + tally.answered(addresses[1], id2),
        answered,
        "every answer came from the model serving before the damaged one"
    );

    // ---- one replica killed mid-load; the other keeps answering
    let survivor = addresses[1];
    let load = Load::start(&[survivor]);
    load.wait_for(300, "the load generator answered before the kill");
    let mut killed = replicas.remove(0);
    let status = killed.kill();
    assert!(!status.success(), "replica A was killed: {status}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "replica A ended by SIGKILL: {status}"
        );
    }
    assert!(
        TcpStream::connect_timeout(&killed.address, Duration::from_secs(5)).is_err(),
        "nothing listens on the killed replica's port {}",
        killed.address
    );
    load.wait_for(1_000, "the surviving replica answered after the kill");
    let tally = load.finish();
    assert_no_failure(&tally, "killing the other replica");
    let ready = replicas[0].ready();
    assert_eq!(model_version(&ready), id2, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");
    let _ = std::fs::remove_dir_all(&files);
}
