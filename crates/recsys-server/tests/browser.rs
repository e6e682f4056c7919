//! The demo storefront (`ServerConfig::demo_ui`) in a real browser: headless Chromium,
//! driven over the Chrome DevTools Protocol, against a server on a loopback port serving the
//! demo shop with in-memory events.
//!
//! The test loads the grid, opens a product, checks both recommendation blocks, switches to
//! a new visitor, picks one of its attributes (cold start), opens three products and checks
//! that "recommended for you" changed (folded in from the visitor's events); then the same
//! pages at 375 px. Every step's screenshot is
//! written to `target/tmp/browser/` (cargo's `CARGO_TARGET_TMPDIR`). Any JavaScript
//! exception, console error or failed request (network error or HTTP status ≥ 400) fails
//! the test.
//!
//! Chromium is found as `$RECSYS_CHROMIUM`, or `chromium`, `chromium-browser`,
//! `google-chrome` on the PATH. Without one the test says so and passes, unless
//! `RECSYS_REQUIRE_BROWSER=1` (set by `scripts/test.sh`, which installs Debian's `chromium`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recsys_server::{AppState, EventStore, MemoryEvents, ServerConfig};
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// The longest wait for one page state (never a speed goal: a failure names what it
/// waited for).
const PATIENCE: Duration = Duration::from_secs(60);

fn chromium_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RECSYS_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A headless Chromium with its own profile folder; killed and cleaned up when dropped.
struct Chromium {
    child: Child,
    profile: PathBuf,
    websocket_url: String,
}

impl Chromium {
    fn start(binary: &Path) -> Chromium {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let profile = std::env::temp_dir().join(format!(
            "recsys-browser-test-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&profile).expect("a profile folder");
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        // Chromium prints its DevTools address on stderr; the pipe is drained for the
        // browser's whole life so it never blocks on a full pipe.
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, receiver) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        let websocket_url = match receiver.recv_timeout(PATIENCE) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("{} printed no DevTools address", binary.display());
            }
        };
        Chromium {
            child,
            profile,
            websocket_url,
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A DevTools Protocol connection to the browser, attached to one page (flat session).
struct Page {
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Problems seen so far: exceptions, console errors, failed requests.
    problems: Vec<String>,
    shots: PathBuf,
}

impl Page {
    fn open(chromium: &Chromium, shots: PathBuf) -> Page {
        let url = &chromium.websocket_url;
        let host = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .expect("a ws:// DevTools address");
        let stream = TcpStream::connect(host).expect("connecting to DevTools");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        let (socket, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        let mut page = Page {
            socket,
            session: String::new(),
            next_id: 0,
            problems: Vec::new(),
            shots,
        };
        let target = page.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = page.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        page.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Network.enable",
            "Log.enable",
        ] {
            page.call(domain, json!({}));
        }
        page
    }

    /// Sends one command (to the page's session once attached) and returns its result;
    /// events read meanwhile are checked for problems.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        loop {
            let frame = self
                .socket
                .read()
                .unwrap_or_else(|e| panic!("waiting for {method}: {e}"));
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            self.observe(&value);
        }
    }

    /// Records the events that mean the page is broken.
    fn observe(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                self.problems.push(format!(
                    "JavaScript exception: {} {}",
                    details["text"], details["exception"]["description"]
                ));
            }
            "Runtime.consoleAPICalled" if params["type"] == "error" => {
                self.problems
                    .push(format!("console.error: {}", params["args"]));
            }
            "Log.entryAdded" if params["entry"]["level"] == "error" => {
                self.problems.push(format!(
                    "browser log error: {} ({})",
                    params["entry"]["text"], params["entry"]["url"]
                ));
            }
            "Network.loadingFailed" => {
                self.problems.push(format!(
                    "request failed: {} {}",
                    params["errorText"], params["requestId"]
                ));
            }
            "Network.responseReceived" => {
                let status = params["response"]["status"].as_u64().unwrap_or(0);
                if status >= 400 {
                    self.problems
                        .push(format!("HTTP {status} for {}", params["response"]["url"]));
                }
            }
            _ => {}
        }
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its JSON value.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Polls until `condition` (a JavaScript expression) is true.
    fn wait_for(&mut self, what: &str, condition: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.eval(&format!("Boolean({condition})")) == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let state = self.eval(
                    "JSON.stringify({hash: location.hash, state: document.body && document.body.dataset.state, \
                     main: document.querySelector('main') && document.querySelector('main').innerText.slice(0, 500)})",
                );
                panic!(
                    "waited {PATIENCE:?} for {what}; page: {state}; problems: {:?}",
                    self.problems
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes the location hash (or loads `url`) and waits until the view has rendered.
    fn go(&mut self, hash: &str) {
        // Only a changed hash fires `hashchange`; the state is set first so the wait
        // below cannot see the previous view's "ready".
        self.eval(&format!(
            "if (location.hash !== {h}) {{ document.body.dataset.state = 'loading'; location.hash = {h}; }} true",
            h = json!(hash)
        ));
        self.wait_rendered(hash);
    }

    fn wait_rendered(&mut self, what: &str) {
        self.wait_for(
            &format!("{what} to render"),
            "document.body.dataset.state === 'ready' && !document.querySelector('[data-state=loading]')",
        );
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            &format!("{url} to load"),
            "document.readyState === 'complete' && document.body && document.body.dataset.state === 'ready'",
        );
    }

    fn viewport(&mut self, width: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// A full-page PNG into the screenshot folder.
    fn screenshot(&mut self, name: &str) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = shot["data"].as_str().expect("screenshot data");
        let bytes = base64_decode(data);
        assert!(bytes.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Product ids of a block's cards, in order.
    fn block_items(&mut self, block: &str) -> Vec<String> {
        let ids = self.eval(&format!(
            "Array.from(document.querySelectorAll('[data-block={block}] li.card')).map(li => li.dataset.product)"
        ));
        ids.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn block_strategy(&mut self, block: &str) -> String {
        self.eval(&format!(
            "(document.querySelector('[data-block={block}]') || {{dataset: {{}}}}).dataset.strategy || ''"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    fn assert_no_problems(&self, step: &str) {
        assert!(
            self.problems.is_empty(),
            "after {step}: {:#?}",
            self.problems
        );
    }
}

/// Standard base64 (the screenshot encoding), without a dependency for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn the_storefront_works_in_a_real_browser() {
    let Some(binary) = chromium_binary() else {
        let required = std::env::var("RECSYS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "RECSYS_REQUIRE_BROWSER=1 but no Chromium: install Debian's `chromium` or set RECSYS_CHROMIUM"
        );
        eprintln!("SKIPPED: no Chromium on PATH (set RECSYS_CHROMIUM or install `chromium`)");
        return;
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let events: Arc<dyn EventStore> = Arc::new(MemoryEvents::new());
    let config = ServerConfig {
        demo_ui: true,
        ..ServerConfig::default()
    };
    let state = AppState::with_events(common::demo_bundle(), None, Some(events), config);
    let server = runtime.block_on(common::net::start(state));
    let base = format!("http://{}", server.address);

    // Cargo gives integration tests a folder under target/ at compile time.
    let shots = option_env!("CARGO_TARGET_TMPDIR")
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join("browser");
    std::fs::create_dir_all(&shots).expect("the screenshot folder");
    let chromium = Chromium::start(&binary);
    let mut page = Page::open(&chromium, shots.clone());

    // 1. The grid, as the first shopper from the data.
    page.viewport(1280, false);
    page.navigate(&format!("{base}/"));
    let catalogue = page.block_items("catalogue");
    assert!(
        catalogue.len() >= 12,
        "the grid shows a page of products: {catalogue:?}"
    );
    assert!(
        !page.block_items("for-you").is_empty(),
        "recommended for you on the grid"
    );
    assert_eq!(page.block_strategy("for-you"), "model", "a known shopper");
    page.screenshot("1-grid-1280");
    page.assert_no_problems("loading the grid");

    // 2. A product page, opened by clicking its card.
    page.eval("document.querySelector('[data-block=catalogue] li.card a').click(); true");
    page.wait_for(
        "the product page",
        "location.hash.startsWith('#/product/') && document.querySelector('article.product')",
    );
    page.wait_rendered("the product page");
    let also = page.block_items("also-viewed");
    let for_you = page.block_items("for-you");
    assert!(!also.is_empty(), "customers also viewed is filled");
    assert!(!for_you.is_empty(), "recommended for you is filled");
    let reasons = page.eval(
        "Array.from(document.querySelectorAll('[data-block=for-you] .reason')).map(p => p.textContent)",
    );
    assert!(
        reasons.as_array().is_some_and(|r| !r.is_empty()
            && r.iter().all(|t| t
                .as_str()
                .is_some_and(|t| !t.is_empty() && !t.contains("similar-to-")))),
        "every item's reason in plain words: {reasons}"
    );
    page.screenshot("2-product-1280");
    page.assert_no_problems("opening a product");

    // 3. A new visitor: the user switcher's last option.
    page.go("#/");
    page.eval(
        "const s = document.getElementById('user'); s.value = '__visitor'; \
         s.dispatchEvent(new Event('change')); true",
    );
    page.wait_for(
        "the visitor panel",
        "!document.getElementById('visitor').hidden && document.getElementById('visitor-id').textContent.startsWith('visitor-')",
    );
    page.wait_rendered("the grid for a new visitor");
    let before = page.block_items("for-you");
    let strategy_before = page.block_strategy("for-you");
    assert!(
        !before.is_empty(),
        "a new visitor still gets recommendations"
    );
    assert_eq!(
        strategy_before, "popular",
        "nothing is known about a new visitor"
    );
    page.screenshot("3-new-visitor-1280");

    // The visitor tells the shop one attribute: cold start from it.
    page.eval(
        "const p = document.querySelector('#visitor-attributes select'); \
         document.body.dataset.state = 'loading'; \
         p.value = p.options[1].value; p.dispatchEvent(new Event('change')); true",
    );
    page.wait_rendered("the grid after choosing an attribute");
    let with_attribute = page.block_items("for-you");
    assert_eq!(
        page.block_strategy("for-you"),
        "cold-start-features",
        "an attribute that the model knows"
    );
    assert_ne!(before, with_attribute, "the attribute changed the list");
    let before = with_attribute;
    page.screenshot("3-new-visitor-attribute-1280");
    page.assert_no_problems("switching to a new visitor");

    // 4. Three products opened from the grid (each posts a view event).
    let clicked: Vec<String> = catalogue
        .iter()
        .skip(3)
        .step_by(4)
        .take(3)
        .cloned()
        .collect();
    for (i, product) in clicked.iter().enumerate() {
        page.eval(&format!(
            "document.querySelector('[data-block=catalogue] li.card[data-product=\"{product}\"] a').click(); true"
        ));
        page.wait_for(
            &format!("product {product}"),
            &format!("document.querySelector('article.product[data-product=\"{product}\"]')"),
        );
        page.wait_rendered(&format!("product {product}"));
        page.screenshot(&format!("4-visitor-click-{}-1280", i + 1));
        page.go("#/");
    }
    page.assert_no_problems("opening three products");

    // 5. The visitor's recommendations changed: folded in from the three views.
    let after = page.block_items("for-you");
    let strategy_after = page.block_strategy("for-you");
    page.screenshot("5-visitor-after-clicks-1280");
    assert_eq!(
        strategy_after, "recent-activity",
        "folded in from the events"
    );
    assert!(!after.is_empty());
    assert_ne!(before, after, "recommendations changed after three clicks");
    for product in &clicked {
        assert!(
            !after.contains(product),
            "a product the visitor opened ({product}) is not recommended back: {after:?}"
        );
    }

    // 6. A phone-sized screen: the same pages, nothing wider than the screen.
    page.viewport(375, true);
    page.navigate(&format!("{base}/"));
    let overflow = page.eval("document.documentElement.scrollWidth");
    assert!(
        overflow.as_u64().is_some_and(|w| w <= 375),
        "the grid fits 375 px (scrollWidth {overflow})"
    );
    assert!(!page.block_items("catalogue").is_empty());
    page.screenshot("6-grid-375");
    page.go(&format!("#/product/{}", clicked[0]));
    assert!(!page.block_items("also-viewed").is_empty());
    let overflow = page.eval("document.documentElement.scrollWidth");
    assert!(
        overflow.as_u64().is_some_and(|w| w <= 375),
        "the product page fits 375 px (scrollWidth {overflow})"
    );
    page.screenshot("7-product-375");
    page.assert_no_problems("the pages at 375 px");
    eprintln!("screenshots in {}", shots.display());
    drop(server);
}
