//! `GET /image/{file}`: files in the folder are served; traversal, absolute paths, encoded
//! dots, symlinks, folders and FIFOs are refused — also when another process swaps a
//! symlink or a FIFO in while requests run.

mod common;

use common::*;
use recsys_server::{router, ServerConfig};

struct Folders {
    root: std::path::PathBuf,
}

impl Drop for Folders {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn folders(name: &str) -> Folders {
    let root = std::env::temp_dir().join(format!("recsys-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("images/sub")).unwrap();
    std::fs::write(root.join("images/101.jpg"), b"\xff\xd8jpeg bytes").unwrap();
    std::fs::write(root.join("images/sub/a b.png"), b"png").unwrap();
    std::fs::write(root.join("images/.secret"), b"hidden").unwrap();
    std::fs::write(root.join("outside.txt"), b"secret outside").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.join("outside.txt"), root.join("images/link.jpg")).unwrap();
        std::os::unix::fs::symlink(root.join("images"), root.join("images/loop")).unwrap();
    }
    Folders { root }
}

#[tokio::test]
async fn serves_files_and_refuses_everything_else() {
    let dirs = folders("images");
    let app = image_app(&dirs.root.join("images"));
    let a = get(&app, "/image/101.jpg").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "image/jpeg");
    assert_eq!(a.body, b"\xff\xd8jpeg bytes");
    let a = get(&app, "/image/sub/a%20b.png").await;
    assert_eq!((a.status.as_u16(), a.body.as_slice()), (200, &b"png"[..]));

    let refused = [
        "/image/../outside.txt",
        "/image/..%2foutside.txt",
        "/image/%2e%2e/outside.txt",
        "/image/%2e%2e%2foutside.txt",
        "/image/%2E%2E%2Foutside.txt",
        "/image/sub/../../outside.txt",
        "/image//etc/passwd",
        "/image/%2fetc%2fpasswd",
        "/image/..%5coutside.txt",
        "/image/.secret",
        "/image/sub",
        "/image/sub/",
        "/image/missing.jpg",
        "/image/link.jpg",
        "/image/%00.jpg",
        "/image/%FF.jpg",
        "/image/",
    ];
    for uri in refused {
        let a = get(&app, uri).await;
        assert!(
            [400, 403, 404].contains(&a.status.as_u16()),
            "{uri}: {} {}",
            a.status,
            a.text()
        );
        assert!(a.json()["error"].is_string(), "{uri}");
        assert!(!a.text().contains("secret"), "{uri}");
    }
    // The symlink out of the folder is refused as such.
    #[cfg(unix)]
    assert_eq!(get(&app, "/image/link.jpg").await.status, 403);
    // No symbolic link is followed, not even one that stays inside the folder.
    #[cfg(unix)]
    assert_eq!(get(&app, "/image/loop/101.jpg").await.status, 403);
    // A folder is not a file.
    assert_eq!(get(&app, "/image/sub").await.status, 404);
}

#[tokio::test]
async fn no_folder_configured_means_404() {
    let a = get(&app(), "/image/101.jpg").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], "not_found");
}

/// The router serving the images of `images`.
fn image_app(images: &std::path::Path) -> axum::Router {
    router(state(ServerConfig {
        image_dir: Some(images.to_path_buf()),
        ..ServerConfig::default()
    }))
    .expect("valid config")
}

/// One swap of `<name>.jpg` in `images`, as another process would do it atomically
/// (rename): to a special file `make` creates at the path given, then back to a regular
/// file holding `inside bytes`.
#[cfg(unix)]
fn alternating(
    images: &std::path::Path,
    name: &str,
    make: impl Fn(&std::path::Path) + Send + 'static,
) -> impl FnMut() + Send + 'static {
    let target = images.join(format!("{name}.jpg"));
    let special_tmp = images.join(format!("{name}.special.tmp"));
    let file_tmp = images.join(format!("{name}.file.tmp"));
    move || {
        let _ = std::fs::remove_file(&special_tmp);
        make(&special_tmp);
        std::fs::rename(&special_tmp, &target).unwrap();
        std::fs::write(&file_tmp, b"inside bytes").unwrap();
        std::fs::rename(&file_tmp, &target).unwrap();
    }
}

/// Runs `requests` image requests from 4 tasks (each bounded by a hang detector) while
/// `swap` runs on a thread; returns (answers by status, hung requests).
#[cfg(unix)]
async fn while_swapping(
    app: axum::Router,
    uri: &'static str,
    requests: usize,
    outside: &'static [u8],
    swap: impl FnMut() + Send + 'static,
) -> (std::collections::BTreeMap<u16, usize>, usize, usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let mut swap = swap;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                swap();
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::new();
            let (mut hung, mut leaked) = (0, 0);
            for _ in 0..requests / 4 {
                match tokio::time::timeout(std::time::Duration::from_secs(10), get(&app, uri)).await
                {
                    Ok(a) => {
                        *statuses.entry(a.status.as_u16()).or_insert(0) += 1;
                        if a.body.windows(outside.len()).any(|w| w == outside) {
                            leaked += 1;
                        }
                    }
                    Err(_) => {
                        // One hang is enough to fail; do not wait for more.
                        hung += 1;
                        break;
                    }
                }
            }
            (statuses, hung, leaked)
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    let (mut hung, mut leaked) = (0, 0);
    for t in tasks {
        let (s, h, l) = t.await.unwrap();
        for (k, v) in s {
            *statuses.entry(k).or_insert(0) += v;
        }
        hung += h;
        leaked += l;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    (statuses, hung, leaked)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_never_leaks_a_file_outside_the_folder() {
    let dirs = folders("image-race");
    let images = dirs.root.join("images");
    std::fs::write(images.join("race.jpg"), b"inside bytes").unwrap();
    let app = image_app(&images);
    // Another process (here: a thread) swaps race.jpg between a regular file and a
    // symlink to a file outside the folder, atomically (rename).
    let outside = dirs.root.join("outside.txt");
    let swap = alternating(&images, "race", move |at| {
        std::os::unix::fs::symlink(&outside, at).unwrap()
    });
    let requests = 20_000;
    let (statuses, hung, leaked) =
        while_swapping(app, "/image/race.jpg", requests, b"secret outside", swap).await;
    eprintln!("symlink race: {requests} requests: {statuses:?}, hung {hung}, leaked {leaked}");
    assert_eq!(leaked, 0, "{statuses:?}");
    assert_eq!(hung, 0);
    // The race was really run: both states were seen.
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.get(&403).copied().unwrap_or(0) > 0, "{statuses:?}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_swapped_in_never_hangs_a_request() {
    let dirs = folders("image-fifo");
    let images = dirs.root.join("images");
    std::fs::write(images.join("pipe.jpg"), b"inside bytes").unwrap();
    // The FIFO lives outside the folder (so it can be opened for writing at the end to
    // release any reader) and is hard-linked in and renamed over pipe.jpg.
    let fifo = dirs.root.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let app = image_app(&images);
    // A FIFO right in the folder is refused.
    std::fs::hard_link(&fifo, images.join("static-pipe.jpg")).unwrap();
    let a = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        get(&app, "/image/static-pipe.jpg"),
    )
    .await
    .expect("a FIFO in the folder hung the request");
    assert_eq!(a.status, 404);
    let fifo_for_swap = fifo.clone();
    let swap = alternating(&images, "pipe", move |at| {
        std::fs::hard_link(&fifo_for_swap, at).unwrap()
    });
    let requests = 2_000;
    let (statuses, hung, _) =
        while_swapping(app, "/image/pipe.jpg", requests, b"no such bytes", swap).await;
    // Release readers a broken server left blocked on the FIFO (so the test ends).
    if let Ok(writer) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblocking()
        .open(&fifo)
    {
        drop(writer);
    }
    eprintln!("FIFO race: {requests} requests: {statuses:?}, hung {hung}");
    assert_eq!(hung, 0, "{statuses:?}");
    assert!(
        statuses.keys().all(|s| [200, 404].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.get(&404).copied().unwrap_or(0) > 0, "{statuses:?}");
}

#[cfg(unix)]
trait NonBlocking {
    fn custom_flags_nonblocking(&mut self) -> &mut Self;
}

#[cfg(unix)]
impl NonBlocking for std::fs::OpenOptions {
    fn custom_flags_nonblocking(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}
