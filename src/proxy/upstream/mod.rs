//! Upstream PostgreSQL servers: their URLs, the registry of named upstreams with the
//! active one and the generation, the credentials used towards them (and where they may
//! go), the hosts the admin API may point upstreams at, and connecting.

mod allowed;
mod auth;
pub(crate) mod connect;
mod error;
pub mod query;
mod registry;
mod secret_scope;
mod secrets;
pub mod url;

pub use allowed::AllowedHosts;
pub use auth::{AuthRefusal, MAX_SCRAM_ITERATIONS};
pub use connect::{connect, Login, ServerConn};
pub use error::UpstreamError;
pub use registry::{check_name, Registry, RegistrySnapshot, RepointError, Upstream, UpstreamConfigError};
pub use secret_scope::SecretScope;
pub use secrets::{Secrets, SecretsError};
pub use url::{ConnectTimeout, SslMode, UpstreamUrl, UrlError};
