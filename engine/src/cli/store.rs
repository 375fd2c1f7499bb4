//! The store a command works on: PostgreSQL when `DATABASE_URL` (or `AURORA_URL`) is set, the
//! embedded SQLite store under `BEAST_DATA_DIR` otherwise.

use anyhow::Context as _;
use beast_engine::config::Config;
use beast_engine::store::sqlite::SqliteStore;

use super::Failure;

pub fn open_store(config: &Config) -> Result<SqliteStore, Failure> {
    if config.stores.database().is_some() {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "DATABASE_URL is set, but this command only works on the embedded store so far"
        )));
    }
    let dir = &config.stores.beast_data_dir.0;
    Ok(SqliteStore::open(dir).with_context(|| format!("opening the embedded store in {}", dir.display()))?)
}
