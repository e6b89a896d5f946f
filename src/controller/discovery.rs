//! Finding the sidecars by DNS: every A and AAAA record of a name (a Kubernetes headless
//! Service has one per pod, ready or not with `publishNotReadyAddresses`), asked of the
//! system's resolver or of the nameserver the plan names (`sidecars_dns_server`).

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{LookupIpStrategy, NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::Resolver;

use super::error::CutoverError;

/// The addresses of `name`, sorted, each once.
pub async fn resolve(name: &str, server: Option<SocketAddr>) -> Result<Vec<IpAddr>, CutoverError> {
    let fail = |why: String| CutoverError::Refused(format!("[cutover] sidecars_dns: resolving {name:?}: {why}"));
    let mut builder = match server {
        Some(addr) => {
            let servers = NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
            let config = ResolverConfig::from_parts(None, Vec::new(), servers);
            Resolver::builder_with_config(config, TokioConnectionProvider::default())
        }
        None => {
            Resolver::builder_tokio().map_err(|e| fail(format!("reading the system's resolver configuration: {e}")))?
        }
    };
    let options = builder.options_mut();
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // Pods come and go between flips: ask every time.
    options.cache_size = 0;
    let resolver = builder.build();
    let lookup = resolver.lookup_ip(name).await.map_err(|e| fail(e.to_string()))?;
    let mut addrs: Vec<IpAddr> = lookup.iter().collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(fail("no address".into()));
    }
    Ok(addrs)
}
