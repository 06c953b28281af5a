//! moto's S3 server (`cairn_testvectors::moto`) with the bucket and
//! configuration the tests that run `cairnd` on S3 use.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_storage::{S3Config, TileStore, TileStoreOptions};
use cairn_testvectors::moto::MotoServer;

/// Every wait on moto ends by then.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const BUCKET: &str = "cairn-dev-tiles";

/// moto's S3 server with [`BUCKET`] created, killed when dropped.
pub struct Moto {
    server: MotoServer,
}

impl Moto {
    /// Starts moto and creates [`BUCKET`] with an unsigned `PUT /<bucket>`,
    /// which moto accepts.
    pub async fn start() -> Moto {
        let moto = Moto {
            server: MotoServer::start(),
        };
        let response = http()
            .put(format!("{}/{BUCKET}", moto.endpoint()))
            .send()
            .await
            .expect("PUT bucket");
        assert!(response.status().is_success(), "{}", response.status());
        moto
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Writes credential files `key-id` and `secret` into `dir` and an
    /// object store file `object-store.toml` for the bucket prefix `logs`
    /// at `endpoint` (moto's, or a proxy in front of it); returns its path.
    pub fn store_file(dir: &std::path::Path, endpoint: &str) -> std::path::PathBuf {
        // Relative paths in the file are relative to its directory.
        std::fs::write(dir.join("key-id"), "testing\n").unwrap();
        std::fs::write(dir.join("secret"), "testing\n").unwrap();
        let store_file = dir.join("object-store.toml");
        std::fs::write(
            &store_file,
            format!(
                "[s3]\nendpoint = \"{endpoint}\"\nbucket = \"{BUCKET}\"\nprefix = \"logs\"\n\
                 allow_http = true\naccess_key_id_file = \"key-id\"\n\
                 secret_access_key_file = \"secret\"\n"
            ),
        )
        .unwrap();
        store_file
    }

    /// The shard's objects as the bucket holds them, read with the storage
    /// crate (moto refuses unsigned reads of objects), under the bucket
    /// prefix `logs`.
    pub fn tiles(&self, credentials: &std::path::Path) -> TileStore {
        let mut config = S3Config::new(BUCKET);
        config.endpoint = Some(self.endpoint());
        config.allow_http = true;
        config.prefix = Some("logs".into());
        config.access_key_id_file = Some(credentials.join("key-id"));
        config.secret_access_key_file = Some(credentials.join("secret"));
        TileStore::s3(&config, "dev", TileStoreOptions::default()).expect("s3 store")
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}
