//! [`RedisStore`]: the [`StateStore`] on Redis (the `redis` crate's multiplexed
//! `ConnectionManager`, which reconnects by itself), for tokio (feature `redis-tokio`) or the
//! async-io stack (feature `redis-async-io`, used by the async-std and blocking adapters).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::runtime::BoxFuture;
use crate::store::{StateStore, StoreError};

/// A Redis server (or a Redis-compatible one: Valkey, KeyDB) holding the shared state.
/// Connects on first use, in the runtime that first uses it, and reconnects on its own;
/// commands fail fast while it is down (the driver then falls back to per-process state).
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    /// The connection, once made (read without a lock on every command).
    conn: Arc<OnceLock<ConnectionManager>>,
    /// Serialises making it.
    making: Arc<Mutex<()>>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// Redis's error without the URL or the command's arguments.
fn error(e: redis::RedisError) -> StoreError {
    StoreError(match e.kind() {
        redis::ErrorKind::Io => "Redis connection failed".into(),
        kind => format!("Redis error: {kind:?}"),
    })
}

/// Deletes a key only if it still holds the caller's value.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// A store at `url` (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS with
    /// the `redis` crate's TLS features). Only parses the URL; nothing connects yet. `timeout`
    /// bounds connecting and each answer.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, crate::Error> {
        let client = redis::Client::open(url)
            .map_err(|_| crate::Error::Config("the Redis URL is not valid".into()))?;
        Ok(Self {
            client,
            conn: Arc::new(OnceLock::new()),
            making: Arc::new(Mutex::new(())),
            timeout,
        })
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let _making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let c =
            ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(error)?;
        Ok(self.conn.get_or_init(|| c).clone())
    }
}

impl StateStore for RedisStore {
    fn claim(
        &self,
        key: String,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<Option<String>, StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            // SET NX GET (Redis 7): one round trip claims the key or reads its holder.
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl))
                .arg("GET")
                .query_async::<Option<String>>(&mut c)
                .await
                .map_err(error)
        })
    }

    fn get(&self, key: String) -> BoxFuture<'static, Result<Option<String>, StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            c.get::<_, Option<String>>(&key).await.map_err(error)
        })
    }

    fn put(
        &self,
        key: String,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            c.pset_ex::<_, _, ()>(&key, &value, millis(ttl))
                .await
                .map_err(error)
        })
    }

    fn count(&self, key: String, ttl: Duration) -> BoxFuture<'static, Result<u64, StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            redis::pipe()
                .atomic()
                .incr(&key, 1u64)
                .pexpire(&key, i64::try_from(millis(ttl)).unwrap_or(i64::MAX))
                .ignore()
                .query_async::<(u64,)>(&mut c)
                .await
                .map(|(n,)| n)
                .map_err(error)
        })
    }

    fn map_put(
        &self,
        key: String,
        field: String,
        value: String,
        ttl: Duration,
    ) -> BoxFuture<'static, Result<(), StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            redis::pipe()
                .atomic()
                .hset(&key, &field, &value)
                .ignore()
                .pexpire(&key, i64::try_from(millis(ttl)).unwrap_or(i64::MAX))
                .ignore()
                .query_async::<()>(&mut c)
                .await
                .map_err(error)
        })
    }

    fn map_remove(
        &self,
        key: String,
        field: String,
    ) -> BoxFuture<'static, Result<bool, StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            c.hdel::<_, _, u64>(&key, &field)
                .await
                .map(|n| n > 0)
                .map_err(error)
        })
    }

    fn map_entries(
        &self,
        key: String,
    ) -> BoxFuture<'static, Result<Vec<(String, String)>, StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            c.hgetall::<_, Vec<(String, String)>>(&key)
                .await
                .map_err(error)
        })
    }

    fn release(&self, key: String, value: String) -> BoxFuture<'static, Result<(), StoreError>> {
        let conn = self.connection();
        Box::pin(async move {
            let mut c = conn?;
            redis::Script::new(RELEASE)
                .key(&key)
                .arg(&value)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
                .map_err(error)
        })
    }
}
