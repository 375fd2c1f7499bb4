//! The store a command works on: PostgreSQL when `DATABASE_URL` (or `AURORA_URL`) is set, the
//! embedded SQLite store under `BEAST_DATA_DIR` otherwise. Commands run the store's calls on a
//! current-thread runtime of their own.

use anyhow::Context as _;
use beast_engine::config::Config;
use beast_engine::store::Store;

use super::Failure;

/// A store and the runtime its calls run on.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    pub store: Store,
}

impl Session {
    /// Runs one store call to completion.
    pub fn run<T>(&mut self, call: impl AsyncFnOnce(&mut Store) -> T) -> T {
        let store = &mut self.store;
        self.runtime.block_on(call(store))
    }
}

pub fn open_store(config: &Config) -> Result<Session, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the store client")?;
    let dir = &config.stores.beast_data_dir.0;
    let url = config.stores.database().map(|u| u.expose().to_string());
    let store = runtime
        .block_on(Store::open(url.as_deref(), dir))
        .with_context(|| match config.stores.database() {
            Some(url) => format!("opening the store at {}", url.masked()),
            None => format!("opening the embedded store in {}", dir.display()),
        })?;
    Ok(Session { runtime, store })
}
