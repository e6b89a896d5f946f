//! `[blue] url` and `[green] url`: a superuser connection, parsed once, with its TLS, and
//! the forms the controller hands on: a [`Target`] for its own connections, a URL and
//! libpq environment for client programs, the URL as written for another server's use.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use tokio_postgres::Config;

use super::tls::{self, EndpointTls, SslMode};
use super::url::{config_url, Password};
use crate::controller::target::Target;

/// A superuser connection to blue or green. `Debug` shows the URL with the password as `***`.
#[derive(Clone)]
pub struct Endpoint {
    /// The connection string as the plan wrote it (naming the database), for another
    /// server to connect with: a subscription's CONNECTION keeps its `sslmode` and
    /// `sslrootcert` as written.
    pub url: String,
    config: Config,
    tls: EndpointTls,
    /// The plan key, for errors: `[blue] url`.
    key: &'static str,
    allow_plaintext_passwords: bool,
}

impl Endpoint {
    /// Parses the URL of plan key `key`, naming blue's database when it names none;
    /// `base_dir` resolves a relative `sslrootcert`. The error is the problem, for the
    /// caller to name the key.
    pub(super) fn parse(
        key: &'static str,
        url: String,
        blue_database: Option<&str>,
        base_dir: &Path,
        allow_plaintext_passwords: bool,
    ) -> Result<Endpoint, String> {
        let (rest, params) = tls::split(&url)?;
        let tls = EndpointTls::new(params, base_dir)?;
        // tokio-postgres's messages name the option at fault, never the password.
        let mut config = Config::from_str(&rest).map_err(|e| format!("is not a valid connection URL: {e}"))?;
        if config.get_user().is_none() {
            return Err("must name a user: postgres://USER:PASSWORD@HOST:PORT/DATABASE".into());
        }
        if config.get_hosts().is_empty() {
            return Err("must name a host: postgres://USER:PASSWORD@HOST:PORT/DATABASE".into());
        }
        let url = match (config.get_dbname(), blue_database) {
            (None, None) => return Err("must name the database: postgres://USER:PASSWORD@HOST:PORT/DATABASE".into()),
            (None, Some(database)) => {
                config.dbname(database);
                config_url(&config, database, Password::Shown, &tls.written)
            }
            (Some(own), Some(database)) if own != database => {
                return Err(format!(
                    "names database {own:?} but [blue] url names {database:?}: they must be the same (or leave it out)"
                ))
            }
            (Some(_), _) => url,
        };
        Ok(Endpoint { url, config, tls, key, allow_plaintext_passwords })
    }

    /// The parsed connection, naming the database, without its TLS parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database this endpoint connects to.
    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The controller's connection to `database` (this endpoint's own when `None`).
    pub fn target(&self, database: Option<&str>) -> Target {
        let mut config = self.config.clone();
        if let Some(database) = database {
            config.dbname(database);
        }
        Target {
            config,
            tls: self.tls.clone(),
            allow_plaintext_passwords: self.allow_plaintext_passwords,
            key: self.key,
        }
    }

    /// The same connection as a URL naming `database` instead, e.g. `postgres` for CREATE
    /// DATABASE, with the TLS parameters as written.
    pub fn url_for(&self, database: &str) -> String {
        config_url(&self.config, database, Password::Shown, &self.tls.written)
    }

    /// For a client program: the URL naming `database` without the password, and the
    /// password to pass as `PGPASSWORD` (a command line is visible to other local users).
    /// The URL carries the `sslmode` the controller connects with and the resolved
    /// `sslrootcert`, as [`Endpoint::program_env`] does.
    pub fn for_program(&self, database: &str) -> (String, Option<String>) {
        let password = self.config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        let (mode, root_cert) = self.program_tls();
        let mut params = vec![("sslmode", mode.as_str().to_owned())];
        params.extend(root_cert.map(|ca| ("sslrootcert", ca)));
        (config_url(&self.config, database, Password::Left, &params), password)
    }

    /// `PGSSLMODE` and `PGSSLROOTCERT` for a client program, so that it connects the way
    /// the controller does (`require` where a password makes `prefer` insist on TLS).
    pub fn program_env(&self) -> Vec<(&'static str, String)> {
        let (mode, root_cert) = self.program_tls();
        let mut env = vec![("PGSSLMODE", mode.as_str().to_owned())];
        env.extend(root_cert.map(|ca| ("PGSSLROOTCERT", ca)));
        env
    }

    /// The `sslmode` and CA file path a client program connects with.
    fn program_tls(&self) -> (SslMode, Option<String>) {
        let target = self.target(None);
        (target.program_sslmode(), target.root_cert().map(|ca| ca.display().to_string()))
    }

    /// The `sslmode` the URL asks for.
    pub fn sslmode(&self) -> SslMode {
        self.tls.mode
    }

    /// The URL with the password replaced by `***`, for logs.
    pub fn redacted(&self) -> String {
        config_url(&self.config, self.database(), Password::Redacted, &self.tls.written)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.redacted()).finish()
    }
}
