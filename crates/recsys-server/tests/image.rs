//! `GET /image/{file}`: files in the folder are served; traversal, absolute paths, encoded
//! dots, symlinks out of the folder and folders are refused.

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
    let app = router(state(ServerConfig {
        image_dir: Some(dirs.root.join("images")),
        ..ServerConfig::default()
    }));
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
    // A symlink that stays inside the folder is fine.
    #[cfg(unix)]
    assert_eq!(get(&app, "/image/loop/101.jpg").await.status, 200);
    // A folder is not a file.
    assert_eq!(get(&app, "/image/sub").await.status, 404);
}

#[tokio::test]
async fn no_folder_configured_means_404() {
    let a = get(&app(), "/image/101.jpg").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], "not_found");
}
