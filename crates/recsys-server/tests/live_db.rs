//! Live events against a real MongoDB-compatible server.
//!
//! * `two_servers_sharing_one_database_see_each_others_events`: two servers (each its own
//!   state, live state, poller and database client, served over loopback TCP by
//!   [`serve`]) on one database (`MONGODB_URI`): an event posted to one changes the
//!   other's answer within the poll delay.
//! * `two_server_processes_share_events`: the same with two server *processes* (copies of
//!   this test binary that serve until their stdin closes).
//! * `no_accepted_event_is_lost_when_the_database_dies`: a FerretDB of the test's own is
//!   killed while events stream in, then started again: every event answered 200 is in
//!   the database, every other request was answered 503.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ferret::{drop_database, own_ferretdb, uri_from_env};
use common::net::{http, start};
use common::*;
use mongodb::bson::{doc, Document};
use recsys_server::{router, serve, AppState, MongoEvents, ServerConfig};
use recsys_store::mongo::INTERACTIONS;
use serde_json::{json, Value};

async fn replica(uri: &str, database: &str, config: &ServerConfig) -> AppState {
    let events = MongoEvents::open(uri, Some(database), config.events_timeout)
        .await
        .expect("open");
    AppState::with_events(bundle(), None, Some(Arc::new(events)), config.clone())
}

fn strategy_of(head: &str) -> &str {
    head.lines()
        .find_map(|l| l.strip_prefix("x-recsys-strategy: "))
        .unwrap_or("")
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_sharing_one_database_see_each_others_events() {
    let Some(uri) = uri_from_env() else { return };
    let database = format!("rs_live_two_{}", std::process::id());
    drop_database(&uri, &database).await;
    let config = ServerConfig::default(); // the default poll interval: 1 s
    let a = start(replica(&uri, &database, &config).await).await;
    let b = start(replica(&uri, &database, &config).await).await;

    let path = "/recommendations/visitor-7?n=5";
    assert_eq!(
        strategy_of(&http(b.address, "GET", path, "").await.1),
        "popular"
    );
    let event = json!([
        {"user_id": "visitor-7", "product_id": 113, "interaction_type": "view", "event_id": "a1"},
        {"user_id": "visitor-7", "product_id": 116, "interaction_type": "cart", "event_id": "a2"}
    ]);
    let (status, _, body) = http(a.address, "POST", "/events", &event.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let posted = Instant::now();
    // At once on the replica that took it.
    let (_, head, body) = http(a.address, "GET", path, "").await;
    assert_eq!(strategy_of(&head), "recent-activity", "{body}");
    // On the other one within the poll delay (deadline generous; the delay is printed).
    let (head, body) = loop {
        let (_, head, body) = http(b.address, "GET", path, "").await;
        if strategy_of(&head) == "recent-activity" {
            break (head, body);
        }
        assert!(
            posted.elapsed() < Duration::from_secs(10),
            "replica b did not see the events within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "event visible on the other replica after {:?}",
        posted.elapsed()
    );
    assert!(head.contains("x-recsys-strategy: recent-activity"));
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["reason"], "recent-activity");
        assert!(![113, 116].contains(&item["product_id"].as_i64().unwrap()));
    }
    // A retry of the same request on the other replica stores nothing twice.
    let (status, _, body) = http(b.address, "POST", "/events", &event.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["already_stored"], 2, "{body}");
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let stored = client
        .database(&database)
        .collection::<Document>(INTERACTIONS)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(stored, 2);
    drop(a);
    drop(b);
    drop_database(&uri, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_event_is_lost_when_the_database_dies() {
    let Some(mut ferret) = own_ferretdb("events").await else {
        return;
    };
    let config = ServerConfig {
        events_timeout: Duration::from_millis(500),
        db_retry_interval: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let state = replica(&ferret.uri(), "shop", &config).await;
    let app = router(state).expect("valid config");

    // (event ids, status) of every request, in order.
    let mut answers: Vec<(Vec<String>, u16)> = Vec::new();
    let mut killed_at = None;
    let mut restarted_at = None;
    let mut successes_after_restart = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut request = 0;
    while successes_after_restart < 10 {
        assert!(
            Instant::now() < deadline,
            "the stream did not recover within 120 s"
        );
        let ids: Vec<String> = (0..5).map(|j| format!("r{request}-e{j}")).collect();
        let batch: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(j, id)| {
                json!({"user_id": request % 7, "product_id": 100 + (j as i64 * 5 + request) % 24,
                       "interaction_type": "view", "event_id": id})
            })
            .collect();
        let a = post_json(&app, "/events", &Value::from(batch).to_string()).await;
        let status = a.status.as_u16();
        if status == 503 {
            assert!(a.headers.contains_key("retry-after"), "{}", a.text());
        }
        answers.push((ids, status));
        request += 1;
        if request == 20 {
            ferret.kill();
            killed_at = Some(answers.len());
        }
        if request == 30 {
            ferret.spawn();
            ferret.wait_ready().await;
            restarted_at = Some(answers.len());
        }
        if restarted_at.is_some() && status == 200 {
            successes_after_restart += 1;
        }
    }
    let (killed_at, restarted_at) = (killed_at.unwrap(), restarted_at.unwrap());
    let refused = answers.iter().filter(|(_, s)| *s == 503).count();
    let accepted: Vec<&String> = answers
        .iter()
        .filter(|(_, s)| *s == 200)
        .flat_map(|(ids, _)| ids)
        .collect();
    println!(
        "{} requests: {} answered 200 ({} events), {refused} answered 503; killed after request {killed_at}, restarted after {restarted_at}",
        answers.len(),
        answers.iter().filter(|(_, s)| *s == 200).count(),
        accepted.len()
    );
    for (ids, status) in &answers {
        assert!(
            *status == 200 || *status == 503,
            "request {:?} answered {status}: only 200 or 503 are allowed",
            ids[0]
        );
    }
    assert!(
        answers[killed_at..restarted_at]
            .iter()
            .all(|(_, s)| *s == 503),
        "every request while the database was down was refused"
    );
    assert!(answers[..killed_at].iter().all(|(_, s)| *s == 200));
    // Every acknowledged event is in the database.
    let client = mongodb::Client::with_uri_str(ferret.uri()).await.unwrap();
    let mut cursor = client
        .database("shop")
        .collection::<Document>(INTERACTIONS)
        .find(doc! {})
        .projection(doc! { "_id": 1 })
        .await
        .unwrap();
    let mut stored = HashSet::new();
    while cursor.advance().await.unwrap() {
        let doc = Document::try_from(cursor.current()).unwrap();
        stored.insert(doc.get_str("_id").unwrap().to_string());
    }
    for (i, id) in accepted.iter().enumerate() {
        let user = answers
            .iter()
            .position(|(ids, _)| ids.contains(id))
            .map(|r| r % 7)
            .unwrap();
        let key = format!("event:[{user},{}]", serde_json::to_string(id).unwrap());
        assert!(
            stored.contains(&key),
            "accepted event {i} ({key}) is not in the database"
        );
    }
    assert!(stored.len() >= accepted.len());
}

/// Set in the environment of the server processes [`two_server_processes_share_events`]
/// starts (copies of this test binary).
const REPLICA_ENV: &str = "RECSYS_TEST_REPLICA_DATABASE";

/// Runs a server in this process on `MONGODB_URI` / `database` until stdin closes, after
/// printing `LISTENING <address>`.
fn run_replica(uri: &str, database: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = replica(uri, database, &ServerConfig::default()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("LISTENING {}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            // The parent holds our stdin: EOF means it is done (or gone).
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = stop.send(());
        });
        serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
}

/// Two server processes (copies of this test binary, each serving with its own state,
/// poller and database client) on one database: an event posted to one changes the
/// other's answer within the poll delay.
#[test]
fn two_server_processes_share_events() {
    let Some(uri) = uri_from_env() else { return };
    if let Ok(database) = std::env::var(REPLICA_ENV) {
        return run_replica(&uri, &database);
    }
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let database = format!("rs_live_procs_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(drop_database(&uri, &database));
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let mut child = Command::new(&exe)
            .args([
                "two_server_processes_share_events",
                "--exact",
                "--nocapture",
            ])
            .env(REPLICA_ENV, &database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a server process");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let address = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("LISTENING ").map(str::to_string))
            .expect("the server process printed its address");
        addresses.push(address.parse::<std::net::SocketAddr>().unwrap());
        children.push(child);
    }
    assert_ne!(children[0].id(), children[1].id());
    let (a, b) = (addresses[0], addresses[1]);
    let outcome = runtime.block_on(async {
        let path = "/recommendations/process-visitor?n=5";
        let (_, head, _) = http(b, "GET", path, "").await;
        assert_eq!(strategy_of(&head), "popular");
        let event = json!({"user_id": "process-visitor", "product_id": 104, "event_id": "p1"});
        let (status, _, body) = http(a, "POST", "/events", &event.to_string()).await;
        assert_eq!(status, 200, "{body}");
        let posted = Instant::now();
        let (_, head, _) = http(a, "GET", path, "").await;
        assert_eq!(
            strategy_of(&head),
            "recent-activity",
            "at once on the replica that took it"
        );
        loop {
            let (_, head, body) = http(b, "GET", path, "").await;
            if strategy_of(&head) == "recent-activity" {
                assert!(body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["product_id"] != 104));
                return posted.elapsed();
            }
            assert!(
                posted.elapsed() < Duration::from_secs(10),
                "the other server process did not see the event within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    println!("event visible in the other server process after {outcome:?}");
    for mut child in children {
        drop(child.stdin.take()); // EOF: the server shuts down gracefully
        let _ = child.wait();
    }
    runtime.block_on(drop_database(&uri, &database));
}
