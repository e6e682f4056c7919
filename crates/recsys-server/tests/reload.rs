//! Hot reload: a new bundle is swapped in atomically; a corrupt or incompatible one is
//! refused and the old model keeps serving; requests in flight never fail.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use recsys_server::{router, AppState, ServerConfig, ServerError};

struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp(name: &str) -> TempFile {
    TempFile(std::env::temp_dir().join(format!(
        "recsys-server-{name}-{}.bundle",
        std::process::id()
    )))
}

/// A state serving the bundle saved at `file`, with the admin routes on (reloading from
/// `file`) behind `admin_token`.
fn reloadable(file: &TempFile, admin_token: Option<&str>) -> AppState {
    AppState::new(
        recsys_server::load_bundle(&file.0).unwrap(),
        None,
        ServerConfig {
            bundle_path: Some(file.0.clone()),
            admin_routes: true,
            admin_token: admin_token.map(str::to_string),
            ..ServerConfig::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_and_refuses_bad_bundles() {
    let file = temp("reload");
    let old = bundle_with_seed(7);
    let new = bundle_with_seed(8);
    let (old_version, new_version) = (
        old.metadata().model_id.clone(),
        new.metadata().model_id.clone(),
    );
    assert_ne!(old_version, new_version);
    old.save(&file.0).unwrap();
    let state = reloadable(&file, None);
    let app = router(state.clone()).expect("valid config");
    let version = |a: &Answer| a.headers["x-recsys-model"].to_str().unwrap().to_string();
    assert_eq!(
        version(&get(&app, "/similar-products?userId=2").await),
        old_version
    );

    // Hammer the server while reloading: no request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for t in 0..4 {
        let (app, stop) = (app.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let uri = format!(
                    "/similar-products?userId={}&productId={}&n=5",
                    1 + (i + t) % 10,
                    100 + i % 24
                );
                let a = get(&app, &uri).await;
                assert_eq!(a.status, 200, "{uri}: {}", a.text());
                assert_eq!(ids(&a).len(), 5);
                seen.insert(a.headers["x-recsys-model"].to_str().unwrap().to_string());
                i += 1;
                tokio::task::yield_now().await;
            }
            (i, seen)
        }));
    }

    new.save(&file.0).unwrap();
    let outcome = state.reload().await.expect("reload");
    assert_eq!(outcome.model_version, new_version);
    assert_eq!(outcome.previous_model_version, old_version);

    // Corrupt: one byte flipped in the payload -> checksum mismatch, refused.
    let mut bytes = std::fs::read(&file.0).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&file.0, &bytes).unwrap();
    let err = state.reload().await.unwrap_err();
    assert!(matches!(err, ServerError::Bundle { .. }), "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    // The cause is in the message and not repeated as a source (a printed error chain would
    // show it twice).
    assert!(std::error::Error::source(&err).is_none(), "{err}");
    // Incompatible: a future format version.
    let mut bytes = new.to_bytes().unwrap();
    bytes[8] = 99;
    std::fs::write(&file.0, &bytes).unwrap();
    let err = state.reload().await.unwrap_err();
    assert!(err.to_string().contains("format version 99"), "{err}");
    // Not a bundle at all, then a missing file.
    std::fs::write(&file.0, b"{\"not\": \"a bundle\"}").unwrap();
    assert!(state.reload().await.is_err());
    std::fs::remove_file(&file.0).unwrap();
    assert!(state.reload().await.is_err());

    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let mut versions = std::collections::BTreeSet::new();
    let mut total = 0;
    for task in load {
        let (n, seen) = task.await.expect("no request failed");
        total += n;
        versions.extend(seen);
    }
    assert!(total > 0);
    assert!(
        versions.is_subset(&[old_version.clone(), new_version.clone()].into()),
        "{versions:?}"
    );
    // The new model kept serving through the refused reloads.
    assert_eq!(
        version(&get(&app, "/similar-products?userId=2").await),
        new_version
    );
    assert_eq!(
        get(&app, "/ready").await.json()["model_version"],
        new_version
    );

    // The admin route: refused while the file is missing (422, JSON), then fine again.
    let a = call(&app, "POST", "/admin/reload").await;
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["code"], "reload_refused");
    assert!(a.json()["error"].as_str().unwrap().contains(&new_version));
    // The body names no file system path (the log does).
    let dir = std::env::temp_dir();
    assert!(!a.text().contains(dir.to_str().unwrap()), "{}", a.text());
    assert!(!a.text().contains(".bundle"), "{}", a.text());
    old.save(&file.0).unwrap();
    let a = call(&app, "POST", "/admin/reload").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["model_version"], old_version);
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains("recsys_model_reloads_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("recsys_model_reload_failures_total 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn reload_without_a_path_is_an_error() {
    let state = state(ServerConfig::default());
    assert!(matches!(
        state.reload().await,
        Err(ServerError::NoBundlePath)
    ));
}

#[tokio::test]
async fn the_admin_route_needs_the_bearer_token_when_one_is_set() {
    let file = temp("admin-token");
    bundle_with_seed(7).save(&file.0).unwrap();
    let state = reloadable(&file, Some("correct-horse-battery"));
    let app = router(state).expect("valid config");
    let post = |auth: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = axum::http::Request::post("/admin/reload");
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let answer = send(&app, request.body(axum::body::Body::empty()).unwrap()).await;
            (answer.status.as_u16(), answer.text())
        }
    };
    for wrong in [
        None,
        Some("Bearer wrong"),
        Some("Bearer correct-horse-batter"),
        Some("Bearer correct-horse-battery-staple"),
        Some("correct-horse-battery"),
        Some("Basic correct-horse-battery"),
    ] {
        let (status, body) = post(wrong).await;
        assert_eq!(status, 401, "{wrong:?}: {body}");
        assert!(body.contains("\"unauthorized\""), "{body}");
    }
    let (status, body) = post(Some("Bearer correct-horse-battery")).await;
    assert_eq!(status, 200, "{body}");
}
