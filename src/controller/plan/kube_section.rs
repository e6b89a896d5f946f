//! `[kubernetes]`: the ConfigMap that holds the sidecars' durable target, patched through
//! the Kubernetes API at every flip, and how to reach that API.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::flip_sections::Problem;

/// The service account's files inside a pod.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `[kubernetes]` as validated; `None` when the plan has no `configmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesSection {
    pub namespace: String,
    pub configmap: String,
    /// The ConfigMap's key holding the sidecar config file (TOML).
    pub key: String,
    /// The API server's base URL (`https://HOST:PORT`, or `http://` for a local test server).
    pub api: String,
    /// The bearer token; `None`: send none.
    pub token_file: Option<PathBuf>,
    /// The CA that signs the API server's certificate (for `https`).
    pub ca_file: PathBuf,
}

/// `[kubernetes]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct KubernetesFile {
    configmap: Option<String>,
    key: Option<String>,
    api: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// Validates `[kubernetes]`; `api` defaults to the in-cluster address from
/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.
pub(super) fn kubernetes(file: KubernetesFile, base_dir: &Path) -> Result<Option<KubernetesSection>, Problem> {
    let Some(configmap) = file.configmap else {
        if file.key.is_some() || file.api.is_some() || file.token_file.is_some() || file.ca_file.is_some() {
            return Err(("[kubernetes] configmap", "is required with the other [kubernetes] keys".into()));
        }
        return Ok(None);
    };
    let Some((namespace, name)) = configmap.split_once('/').filter(|(n, c)| !n.is_empty() && !c.is_empty()) else {
        return Err(("[kubernetes] configmap", format!("must be NAMESPACE/NAME, got {configmap:?}")));
    };
    let api = match file.api {
        Some(api) => api.trim_end_matches('/').to_owned(),
        None => match (std::env::var("KUBERNETES_SERVICE_HOST"), std::env::var("KUBERNETES_SERVICE_PORT")) {
            (Ok(host), Ok(port)) if host.contains(':') => format!("https://[{host}]:{port}"),
            (Ok(host), Ok(port)) => format!("https://{host}:{port}"),
            _ => {
                return Err((
                    "[kubernetes] api",
                    "is required outside a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)"
                        .into(),
                ))
            }
        },
    };
    if !(api.starts_with("https://") || api.starts_with("http://")) {
        return Err(("[kubernetes] api", format!("must be an https:// (or http://) URL, got {api:?}")));
    }
    let in_pod = |file: &str| Path::new(SERVICE_ACCOUNT).join(file);
    let token_file = match file.token_file {
        Some(path) => Some(base_dir.join(path)),
        None => Some(in_pod("token")).filter(|path| path.exists()),
    };
    Ok(Some(KubernetesSection {
        namespace: namespace.to_owned(),
        configmap: name.to_owned(),
        key: file.key.unwrap_or_else(|| "proxy.toml".into()),
        api,
        token_file,
        ca_file: file.ca_file.map(|p| base_dir.join(p)).unwrap_or_else(|| in_pod("ca.crt")),
    }))
}
